"""Fidelity check of the emulated Kubernetes API with the real kubectl (skipped where it is absent).

Each test runs kubectl with an isolated HOME, KUBECONFIG and --cache-dir against its own emulated
API server (HTTPS with the emulator's CA, bearer token), as a user would against GKE.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from kubehelpers import KubeThread, running_pod

pytestmark = pytest.mark.kubectl


def _version_key(path: str) -> tuple:
    m = re.search(r"kubectl\.(\d+)\.(\d+)$", path)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _binaries() -> list[str]:
    found = sorted((p for p in glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*")
                    if _version_key(p) >= (1, 30) and os.access(p, os.X_OK)), key=_version_key)
    if not found and shutil.which("kubectl"):
        found = [shutil.which("kubectl")]
    return found


BINARIES = _binaries()
NEWEST = BINARIES[-1] if BINARIES else None
needs_kubectl = pytest.mark.skipif(not BINARIES, reason="kubectl is not installed on this machine")
# the oldest and the newest kubectl present (1.30+), for the version-sensitive apply paths
EDGE_BINARIES = sorted({BINARIES[0], BINARIES[-1]}, key=_version_key) if BINARIES else []


class Kubectl:
    def __init__(self, k: KubeThread, binary: str, tmp):
        self.binary = binary
        self.home = str(tmp)
        self.kubeconfig = k.kubeconfig(os.path.join(self.home, "kubeconfig"))
        self.env = {"HOME": self.home, "KUBECONFIG": self.kubeconfig, "PATH": "/usr/bin:/bin"}
        self.cache = os.path.join(self.home, "cache")

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--cache-dir", self.cache, *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), env=self.env, input=input, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str, input: str | None = None, timeout: float = 30) -> str:
        r = self(*args, input=input, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout


@pytest.fixture
def kube_kubectl(tmp_path):
    with KubeThread() as k:
        yield k, Kubectl(k, NEWEST, tmp_path) if NEWEST else None


APP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  model: Qwen/Qwen2.5-3B-Instruct
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: vllm}
  template:
    metadata:
      labels: {app: vllm}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-tpu:v0.11
        ports: [{containerPort: 8000}]
        resources:
          limits: {google.com/tpu: 4}
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: llminferenceservices.serving.kserve.io
spec:
  group: serving.kserve.io
  scope: Namespaced
  names: {plural: llminferenceservices, singular: llminferenceservice, kind: LLMInferenceService,
          shortNames: [llmisvc]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: URL, type: string, jsonPath: .status.url}
    - {name: Ready, type: string, jsonPath: ".status.conditions[?(@.type=='Ready')].status"}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""

CR = """\
apiVersion: serving.kserve.io/v1alpha1
kind: LLMInferenceService
metadata: {name: qwen, namespace: default}
spec:
  replicas: 3
"""


def _columns(out: str) -> list[str]:
    return out.splitlines()[0].split()


@needs_kubectl
@pytest.mark.parametrize("binary", EDGE_BINARIES, ids=lambda p: os.path.basename(p))
def test_kubectl_apply_client_and_server_side(binary, tmp_path):
    with KubeThread() as k:
        kc = Kubectl(k, binary, tmp_path)
        out = kc.ok("apply", "-f", "-", input=APP)
        assert out.split("\n")[:3] == ["namespace/demo created", "configmap/settings created",
                                       "deployment.apps/vllm created"]
        out = kc.ok("apply", "-f", "-", input=APP.replace("replicas: 2", "replicas: 3"))
        assert "deployment.apps/vllm configured" in out and "configmap/settings unchanged" in out
        out = kc.ok("apply", "--server-side", "-f", "-", input=APP.replace("replicas: 2", "replicas: 4"))
        assert "deployment.apps/vllm serverside-applied" in out
        d = k.call(lambda: k.store.get(k.rt("deployments", "apps"), "demo", "vllm"))
        assert d["spec"]["replicas"] == 4
        assert d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"google.com/tpu": "4"}
        assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in d["metadata"]["managedFields"])
        out = kc.ok("get", "deployments", "-n", "demo")
        assert _columns(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert out.splitlines()[1].split()[:4] == ["vllm", "0/4", "0", "0"]


@needs_kubectl
def test_kubectl_get_pods_table_and_watch(kube_kubectl):
    k, kc = kube_kubectl
    k.create("pods", running_pod("vllm-0"), "default")
    creating = running_pod("vllm-1")
    creating["status"]["containerStatuses"][0].update(ready=False, state={"waiting": {"reason": "ContainerCreating"}})
    k.create("pods", creating, "default")
    out = kc.ok("get", "pods")
    assert _columns(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()[1:]}
    assert rows == {"vllm-0": ["1/1", "Running", "0"], "vllm-1": ["0/1", "ContainerCreating", "0"]}

    proc = subprocess.Popen(kc.argv("get", "pods", "-w"), env=kc.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # header + the two pods
        assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]

        def ready(o):
            o["status"]["containerStatuses"][0].update(ready=True, state={"running": {}})
        k.mutate("pods", "default", "vllm-1", ready, subresource="status")
        line = proc.stdout.readline()
        assert line.split()[:3] == ["vllm-1", "1/1", "Running"]
    finally:
        proc.kill()
        proc.communicate()


@needs_kubectl
def test_kubectl_crd_then_cr_patch_and_wait(kube_kubectl):
    k, kc = kube_kubectl
    r = kc("apply", "-f", "-", input=CRD + "---\n" + CR)  # as on a real cluster: the kind is not known yet
    assert r.returncode != 0 and "ensure CRDs are installed first" in r.stderr
    kc.ok("wait", "--for=condition=established", "crd/llminferenceservices.serving.kserve.io", "--timeout=10s")
    out = kc.ok("apply", "-f", "-", input=CRD + "---\n" + CR)
    assert "llminferenceservice.serving.kserve.io/qwen created" in out
    r = kc("patch", "llmisvc", "qwen", "-p", '{"spec":{"replicas":2}}')
    assert r.returncode != 0
    assert "the body of the request was in an unknown format - accepted media types include: " \
           "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml" in r.stderr
    kc.ok("patch", "llmisvc", "qwen", "--type", "merge", "-p", '{"spec":{"replicas":2}}')
    assert kc.ok("get", "llmisvc", "qwen", "-o", "jsonpath={.spec.replicas}") == "2"

    def become_ready():
        time.sleep(0.5)
        k.mutate("llminferenceservices", "default", "qwen",
                 lambda o: o.update(status={"url": "http://gw/qwen", "conditions": [
                     {"type": "Ready", "status": "True", "reason": "Ready"}]}),
                 group="serving.kserve.io", subresource="status")

    threading.Thread(target=become_ready, daemon=True).start()
    out = kc.ok("wait", "--for=condition=Ready", "llminferenceservice/qwen", "--timeout=20s")
    assert "condition met" in out
    out = kc.ok("get", "llminferenceservices")
    assert _columns(out) == ["NAME", "URL", "READY", "AGE"]
    assert out.splitlines()[1].split()[:3] == ["qwen", "http://gw/qwen", "True"]
    out = kc.ok("apply", "--server-side", "-f", "-", input=CR.replace("replicas: 3", "replicas: 5"))
    assert "serverside-applied" in out
    assert "deleted" in kc.ok("delete", "llmisvc", "qwen")
    assert "No resources found" in kc("get", "llmisvc").stderr


@needs_kubectl
def test_kubectl_logs_follow_and_tail(kube_kubectl):
    k, kc = kube_kubectl
    k.create("pods", running_pod("vllm-0"), "default")
    k.call(lambda: k.logs.append("default", "vllm-0", "app", "INFO Loading weights"))

    def feed():
        time.sleep(0.5)
        k.call(lambda: k.logs.append("default", "vllm-0", "app", "INFO Compiling\nINFO Application startup complete."))
        time.sleep(0.2)
        k.call(lambda: k.logs.terminate("default", "vllm-0", "app"))

    threading.Thread(target=feed, daemon=True).start()
    out = kc.ok("logs", "-f", "vllm-0", timeout=20)
    assert out.splitlines() == ["INFO Loading weights", "INFO Compiling", "INFO Application startup complete."]
    assert kc.ok("logs", "vllm-0", "--tail=1") == "INFO Application startup complete.\n"
    waiting = running_pod("vllm-1")
    waiting["status"]["containerStatuses"][0].update(ready=False, state={"waiting": {"reason": "ContainerCreating"}})
    k.create("pods", waiting, "default")
    r = kc("logs", "vllm-1")
    assert r.returncode != 0
    assert 'container "app" in pod "vllm-1" is waiting to start: ContainerCreating' in r.stderr


@needs_kubectl
def test_kubectl_wait_patch_scale_and_delete(kube_kubectl):
    k, kc = kube_kubectl
    kc.ok("apply", "-f", "-", input=APP)
    out = kc.ok("patch", "deployment", "vllm", "-n", "demo", "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"vllm","env":[{"name":"X","value":"1"}]}]}}}}')
    assert "patched" in out
    d = k.call(lambda: k.store.get(k.rt("deployments", "apps"), "demo", "vllm"))
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "vllm/vllm-tpu:v0.11" and c["env"] == [{"name": "X", "value": "1"}]
    assert "scaled" in kc.ok("scale", "deployment", "vllm", "-n", "demo", "--replicas=3")

    def available():
        time.sleep(0.5)
        k.mutate("deployments", "demo", "vllm", lambda o: o.update(status={
            "replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
            "observedGeneration": o["metadata"]["generation"],
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}),
            group="apps", subresource="status")

    threading.Thread(target=available, daemon=True).start()
    assert "condition met" in kc.ok("wait", "--for=condition=Available", "deployment/vllm", "-n", "demo",
                                    "--timeout=20s")
    assert kc.ok("get", "deploy", "vllm", "-n", "demo").splitlines()[1].split()[1] == "3/3"
    out = kc.ok("delete", "configmap", "settings", "-n", "demo")
    assert out.strip() == 'configmap "settings" deleted'
    out = kc.ok("delete", "-f", "-", input=APP.split("---\n")[2], timeout=30)
    assert 'deployment.apps "vllm" deleted' in out
    assert kc.ok("delete", "namespace", "demo", timeout=30).strip() == 'namespace "demo" deleted'
    assert k.call(lambda: k.store.try_get(k.rt("namespaces"), None, "demo")) is None
