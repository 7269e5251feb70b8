"""The kubelets of the simulated nodes: they play a bound pod's life as the guide describes it.

Per pod, a small timeline (a state machine with wall-clock stage start times) is kept in memory
and persisted as the annotation `sim.rhaii-tui.io/kubelet` (JSON; sim-only bookkeeping), so a
restarted emulator resumes every pod where its clock says it should be.

Stages, per container group (each init container in turn, then the regular containers):
    pull -> [pullerr -> pullbackoff -> pull ...] -> [config (CreateContainerConfigError)] -> run
    run (init) -> exit 0 -> next group | exit != 0 -> exited (Init:Error) -> backoff
                 (Init:CrashLoopBackOff, 10s, 20s, 40s ... 300s) -> run (restartCount + 1)
    run (main) -> a container whose image tag contains "broken" crashes -> exited -> backoff -> run

What decides the outcomes (evaluated when the attempt starts, with the world as it is then):
- image pulls from registry.redhat.io need an imagePullSecret whose dockerconfigjson has auth for
  registry.redhat.io (and scenario.pull_secret_rejected false): else ErrImagePull/ImagePullBackOff
  with containerd's 401 message;
- env from a Secret that does not exist (or lacks the key): CreateContainerConfigError, retried
  when the Secret appears (a missing HF token secret therefore shows CreateContainerConfigError,
  exactly as on a real cluster);
- the storage-initializer's HF_TOKEN: rejected by huggingface.co (401 in its log, exit 1) when
  scenario.hf_token_rejected, or when the value is not shaped like a token (hf_ + >= 30 chars);
  no HF_TOKEN at all downloads anonymously (the guide's model is public).

Readiness follows the container's readinessProbe: the first probe at initialDelaySeconds, then
every periodSeconds; ready at the first probe after the process serves (vLLM: "Uvicorn running").
Failed probes before that are Unhealthy events. Liveness failures are not acted upon (the
emulator assumes the compile finishes; a real kubelet would restart a container still compiling
after initialDelay + period x failureThreshold of the liveness probe).

Pods marked for deletion stop their containers (shutdown lines in the log) and are removed after
min(grace period, 3) simulated seconds; pods on a deleted node are removed at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store import ApiError
from ..vllm import is_vllm_container, parse_vllm_args
from . import kubectl, logscripts, netprobe
from .common import (
    KUBELET_ANNOTATION,
    Obj,
    image_digest,
    image_registry,
    labels_of,
    pod_ready,
    qos_class,
    rng,
    sha256_hex,
    stable_int,
    ts,
)

PULL_REGISTRY = "registry.redhat.io"
EPP_COMPONENT = "llminferenceservice-router-scheduler"
ISTIO_PROXY_IMAGE = "gcr.io/istio-release/proxyv2:1.27.5"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 300.0
TERMINATION_SECONDS = 3.0


def backoff(n: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * (2 ** max(0, n)))


@dataclass
class Timeline:
    bound: float
    stage: str
    since: float
    attempt: int = 0
    init_done: list = field(default_factory=list)  # [[started, finished, restarts], ...]
    init_restarts: int = 0
    last: dict | None = None  # last termination of the current (init) / crashing container
    main_started: float | None = None
    run_started: float | None = None
    restarts: int = 0
    plan: dict | None = None  # {"exit": code, "dur": sim seconds, "variant": ...} of the current run
    msg: str | None = None
    probes: int = 0
    term: float | None = None
    ip: str | None = None
    secrets_warned: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Timeline | None":
        try:
            d = json.loads(text)
            return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None

    def shift(self, dt: float) -> None:
        self.bound -= dt
        self.since -= dt
        for x in self.init_done:
            x[0] -= dt
            x[1] -= dt
        if self.last:
            for k in ("started", "finished"):
                if self.last.get(k) is not None:
                    self.last[k] -= dt
        for k in ("main_started", "run_started", "term"):
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, v - dt)

    @property
    def group(self) -> str:
        return self.stage.split(":", 1)[0]

    @property
    def phase(self) -> str:
        return self.stage.split(":", 1)[1]


def _b64(v: str) -> str:
    try:
        return base64.b64decode(v).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def is_broken(image: str) -> bool:
    return "broken" in image.rsplit("/", 1)[-1]


class Kubelet:
    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.logs = ctl.logs
        self.pt = self.store.type_for("pods")
        self.nt = self.store.type_for("nodes")
        self.st = self.store.type_for("secrets")
        self.nst = self.store.type_for("namespaces")
        self._tl: dict[str, Timeline] = {}
        self._dirty: set[tuple[str, str, str]] = set()
        self._config_wait: set[tuple[str, str]] = set()
        self._ips: dict[str, set[str]] | None = None
        self._images: dict[str, set[str]] = {}
        self._scripts: dict[tuple, logscripts.Script] = {}
        ctl.register("pod", self.reconcile)

    # --- plumbing ----------------------------------------------------------------------------
    def resync(self) -> None:
        for p in self.store.list(self.pt)[0]:
            if p["spec"].get("nodeName"):
                self.ctl.enqueue(("pod", p["metadata"]["namespace"], p["metadata"]["name"]))

    def shift(self, dt: float) -> None:
        for uid, tl in self._tl.items():
            tl.shift(dt)
        for p in self.store.list(self.pt)[0]:
            if p["metadata"]["uid"] in self._tl:
                self._dirty.add((p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]))

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for ns, name, uid in dirty:
            tl = self._tl.get(uid)
            if tl is not None:
                self._persist(ns, name, uid, tl, force=True)
                self.ctl.enqueue(("pod", ns, name))

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        if rtype.key == self.pt.key:
            if etype == "DELETED":
                self._forget(md["namespace"], md["name"], md["uid"])
                return
            if not obj["spec"].get("nodeName"):
                return
            if etype == "MODIFIED" and old is not None:
                a = {k: v for k, v in obj.items() if k != "status"}
                b = {k: v for k, v in old.items() if k != "status"}
                for x in (a, b):
                    x["metadata"] = {k: v for k, v in x["metadata"].items()
                                     if k not in ("resourceVersion", "annotations", "managedFields")}
                if a == b:
                    return
            self.ctl.enqueue(("pod", md["namespace"], md["name"]))
        elif rtype.key == self.st.key:
            ns = md.get("namespace")
            for pns, pname in list(self._config_wait):
                if pns == ns:
                    self.ctl.enqueue(("pod", pns, pname))
        elif rtype.key == self.nt.key and etype == "DELETED":
            for p in self.store.list(self.pt, field_selector=f"spec.nodeName={md['name']}")[0]:
                self.ctl.enqueue(("pod", p["metadata"]["namespace"], p["metadata"]["name"]))

    def _forget(self, ns: str, name: str, uid: str) -> None:
        tl = self._tl.pop(uid, None)
        self._config_wait.discard((ns, name))
        self._dirty = {d for d in self._dirty if d[2] != uid}
        for k in [k for k in self._scripts if k[0] == uid]:
            del self._scripts[k]
        if tl is not None and tl.ip and self._ips is not None:
            for s in self._ips.values():
                s.discard(tl.ip)
        self.logs.drop_pod(ns, name)

    def _persist(self, ns: str, name: str, uid: str, tl: Timeline, force: bool = False) -> None:
        if self.ctl.fast_forwarding and not force:
            self._dirty.add((ns, name, uid))
            return
        text = tl.to_json()

        def put(o: Obj) -> None:
            if o["metadata"].get("uid") != uid:
                return
            o["metadata"].setdefault("annotations", {})[KUBELET_ANNOTATION] = text
        try:
            self.store.mutate(self.pt, ns, name, put)
        except ApiError:
            pass

    # --- admission (the Istio sidecar injector webhook) ---------------------------------------
    def _istiod_ready(self) -> bool:
        pods = self.store.select(self.pt, "istio-system", {"app": "istiod"})
        return any(pod_ready(p) for p in pods)

    def admit(self, labels: dict[str, str], annotations: dict[str, str], spec: Obj, namespace: str) -> None:
        """Mutating admission for pods created by controllers: Istio sidecar injection."""
        # Istio's rules: the pod label wins over the (deprecated) annotation, which wins over the
        # namespace label (istio-injection=enabled or istio.io/rev)
        label = labels.get("sidecar.istio.io/inject")
        ann = annotations.get("sidecar.istio.io/inject")
        ns_obj = self.store.try_get(self.nst, None, namespace) or {}
        ns_labels = ns_obj.get("metadata", {}).get("labels") or {}
        ns_on = ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels
        if label is not None:
            inject = label == "true"
        elif ann is not None:
            inject = ann == "true"
        else:
            inject = ns_on
        if not inject:
            return
        if not self._istiod_ready():
            return
        containers = spec.setdefault("containers", [])
        if any(c.get("name") == "istio-proxy" for c in containers):
            return
        name = labels.get("app.kubernetes.io/name") or labels.get("app") or "unknown"
        containers.append({
            "name": "istio-proxy",
            "image": ISTIO_PROXY_IMAGE,
            "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                     "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
            "env": [{"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                    {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}},
                    {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"}],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                               "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30,
                               "timeoutSeconds": 3, "successThreshold": 1},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "2", "memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "privileged": False, "readOnlyRootFilesystem": True, "runAsGroup": 1337,
                                "runAsNonRoot": True, "runAsUser": 1337},
            "volumeMounts": [{"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
                             {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
                             {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
                             {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
                             {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
                             {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"}],
        })
        vols = spec.setdefault("volumes", [])
        for v in ({"name": "workload-socket", "emptyDir": {}}, {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
                  {"name": "istio-data", "emptyDir": {}},
                  {"name": "istio-podinfo", "downwardAPI": {"items": [
                      {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                      {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
                  {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                      "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
                  {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}):
            if not any(x.get("name") == v["name"] for x in vols):
                vols.append(v)
        labels["security.istio.io/tlsMode"] = "istio"
        labels["service.istio.io/canonical-name"] = name
        labels["service.istio.io/canonical-revision"] = labels.get("app.kubernetes.io/version", "latest")
        annotations["istio.io/rev"] = "default"
        annotations["kubectl.kubernetes.io/default-container"] = containers[0].get("name", "main")
        annotations["sidecar.istio.io/status"] = json.dumps({
            "initContainers": None, "containers": ["istio-proxy"],
            "volumes": ["workload-socket", "istio-envoy", "istio-data", "istio-podinfo", "istio-token",
                        "istiod-ca-cert"], "imagePullSecrets": None, "revision": "default"})

    # --- timelines ---------------------------------------------------------------------------
    def bound(self, pod: Obj) -> None:
        """The scheduler bound the pod: its kubelet starts now."""
        uid = pod["metadata"]["uid"]
        if uid not in self._tl:
            tl = self._new_timeline(pod, self.ctl.now())
            self._tl[uid] = tl
            self._persist(pod["metadata"]["namespace"], pod["metadata"]["name"], uid, tl)
        self.ctl.enqueue(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _new_timeline(self, pod: Obj, now: float) -> Timeline:
        first = "init0" if pod["spec"].get("initContainers") else "main"
        tl = Timeline(bound=now, stage=f"{first}:start", since=now)
        tl.ip = self._alloc_ip(pod["spec"]["nodeName"], pod["metadata"]["name"])
        return tl

    def _timeline(self, pod: Obj) -> Timeline:
        uid = pod["metadata"]["uid"]
        tl = self._tl.get(uid)
        if tl is None:
            text = (pod["metadata"].get("annotations") or {}).get(KUBELET_ANNOTATION)
            tl = Timeline.from_json(text) if text else None
            if tl is None:
                tl = self._new_timeline(pod, self.ctl.now())
                self._persist(pod["metadata"]["namespace"], pod["metadata"]["name"], uid, tl)
            elif tl.ip:
                self._ip_set(pod["spec"]["nodeName"]).add(tl.ip)
            self._tl[uid] = tl
        return tl

    def _ip_set(self, node: str) -> set[str]:
        if self._ips is None:
            self._ips = {}
            for p in self.store.list(self.pt)[0]:
                text = (p["metadata"].get("annotations") or {}).get(KUBELET_ANNOTATION)
                t = Timeline.from_json(text) if text else None
                if t and t.ip and p["spec"].get("nodeName"):
                    self._ips.setdefault(p["spec"]["nodeName"], set()).add(t.ip)
        return self._ips.setdefault(node, set())

    def _alloc_ip(self, node_name: str, pod_name: str) -> str:
        node = self.store.try_get(self.nt, None, node_name) or {}
        cidr = (node.get("spec") or {}).get("podCIDR") or f"10.{56 + stable_int(node_name) % 60}.{stable_int('b', node_name) % 250}.0/24"
        prefix = cidr.split("/")[0].rsplit(".", 1)[0]
        used = self._ip_set(node_name)
        start = stable_int(pod_name) % 250
        for i in range(253):
            ip = f"{prefix}.{(start + i) % 252 + 2}"
            if ip not in used:
                used.add(ip)
                return ip
        return f"{prefix}.254"

    # --- world checks ------------------------------------------------------------------------
    def _secret(self, ns: str, name: str) -> Obj | None:
        return self.store.try_get(self.st, ns, name)

    @staticmethod
    def _secret_value(secret: Obj, key: str) -> str | None:
        data = secret.get("data") or {}
        if key in data:
            return _b64(data[key])
        sd = secret.get("stringData") or {}
        if key in sd:
            return str(sd[key])
        return None

    def _config_error(self, pod: Obj, containers: list[Obj]) -> tuple[str, str] | None:
        ns = pod["metadata"]["namespace"]
        cmt = self.store.type_for("configmaps")
        for c in containers:
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                ref = vf.get("secretKeyRef")
                if ref and not ref.get("optional"):
                    s = self._secret(ns, ref.get("name", ""))
                    if s is None:
                        return c["name"], f'secret "{ref.get("name")}" not found'
                    if self._secret_value(s, ref.get("key", "")) is None:
                        return c["name"], f'couldn\'t find key {ref.get("key")} in Secret {ns}/{ref.get("name")}'
                ref = vf.get("configMapKeyRef")
                if ref and not ref.get("optional"):
                    cm = self.store.try_get(cmt, ns, ref.get("name", ""))
                    if cm is None:
                        return c["name"], f'configmap "{ref.get("name")}" not found'
                    if ref.get("key") not in (cm.get("data") or {}):
                        return c["name"], f'couldn\'t find key {ref.get("key")} in ConfigMap {ns}/{ref.get("name")}'
            for ef in c.get("envFrom") or []:
                ref = ef.get("secretRef")
                if ref and not ref.get("optional") and self._secret(ns, ref.get("name", "")) is None:
                    return c["name"], f'secret "{ref.get("name")}" not found'
                ref = ef.get("configMapRef")
                if ref and not ref.get("optional") and self.store.try_get(cmt, ns, ref.get("name", "")) is None:
                    return c["name"], f'configmap "{ref.get("name")}" not found'
        return None

    def _env_value(self, pod: Obj, c: Obj, names: tuple[str, ...]) -> tuple[bool, str | None]:
        """(present, value) of the first env var of `names` in container `c`."""
        for e in c.get("env") or []:
            if e.get("name") not in names:
                continue
            if "value" in e:
                return True, str(e.get("value") or "")
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                s = self._secret(pod["metadata"]["namespace"], ref.get("name", ""))
                return True, self._secret_value(s, ref.get("key", "")) if s else None
            return True, None
        return False, None

    def _hf_rejected(self, pod: Obj, c: Obj) -> bool:
        present, value = self._env_value(pod, c, ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))
        if self.ctl.knob("hf_token_rejected", False):
            return True
        if not present:
            return False
        v = (value or "").strip()
        return not (v.startswith("hf_") and len(v) >= 33 and v[3:].isalnum())

    def _pull_secret_ok(self, pod: Obj, registry: str) -> bool:
        ns = pod["metadata"]["namespace"]
        for ref in pod["spec"].get("imagePullSecrets") or []:
            s = self._secret(ns, ref.get("name", ""))
            if s is None:
                continue
            raw = self._secret_value(s, ".dockerconfigjson") or self._secret_value(s, ".dockercfg")
            try:
                cfg = json.loads(raw or "")
            except ValueError:
                continue
            auths = cfg.get("auths", cfg) if isinstance(cfg, dict) else {}
            for host, entry in (auths or {}).items():
                h = host.split("://", 1)[-1].split("/", 1)[0]
                if h != registry or not isinstance(entry, dict):
                    continue
                auth = _b64(entry.get("auth", "")) if entry.get("auth") else ""
                user, _, pw = auth.partition(":")
                if (user and pw) or (entry.get("username") and entry.get("password")):
                    return True
        return False

    def _pull_error(self, pod: Obj, image: str) -> str | None:
        registry = image_registry(image)
        if registry != PULL_REGISTRY:
            return None
        if not self.ctl.knob("pull_secret_rejected", False) and self._pull_secret_ok(pod, registry):
            return None
        ref = image.split("/", 1)[1] if "/" in image else image
        repo, _, tag = ref.partition(":")
        has_secret = any(self._secret(pod["metadata"]["namespace"], r.get("name", ""))
                         for r in pod["spec"].get("imagePullSecrets") or [])
        if has_secret:
            return (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": failed to '
                    "authorize: failed to fetch oauth token: unexpected status from GET request to "
                    "https://registry.redhat.io/auth/realms/rhcc/protocol/redhat-docker-v2/auth?scope=repository%3A"
                    f"{repo.replace('/', '%2F')}%3Apull&service=docker-registry: 401 Unauthorized")
        return (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": unexpected '
                f"status from HEAD request to https://{registry}/v2/{repo}/manifests/{tag or 'latest'}: "
                "401 Unauthorized")

    # --- containers and scripts --------------------------------------------------------------
    @staticmethod
    def _group_containers(pod: Obj, grp: str) -> list[Obj]:
        if grp.startswith("init"):
            inits = pod["spec"].get("initContainers") or []
            k = int(grp[4:])
            return [inits[k]] if k < len(inits) else []
        return list(pod["spec"].get("containers") or [])

    @staticmethod
    def _model_uri(pod: Obj) -> str | None:
        for c in pod["spec"].get("initContainers") or []:
            if c.get("name") == "storage-initializer" and c.get("args"):
                return str(c["args"][0])
        return None

    def _script(self, pod: Obj, c: Obj, init: bool, instance: int, variant: str | None = None) -> logscripts.Script:
        uid = pod["metadata"]["uid"]
        key = (uid, c["name"], instance, variant)
        s = self._scripts.get(key)
        if s is not None:
            return s
        r = rng(uid, c["name"], instance)
        image = c.get("image", "")
        labels = labels_of(pod)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        tl = self._tl.get(uid)
        ip = tl.ip if tl and tl.ip else "10.0.0.1"
        if init and (c["name"] == "storage-initializer" or "storage-initializer" in image):
            args = [str(a) for a in c.get("args") or []]
            uri = args[0] if args else "hf://model"
            dest = args[1] if len(args) > 1 else "/mnt/models"
            s = logscripts.storage_initializer(uri, dest, r, rejected=(variant == "401"))
        elif not init and is_vllm_container(c):
            s = logscripts.vllm(parse_vllm_args(c), self._model_uri(pod), r,
                                compile_factor=float(self.ctl.knob("compile_factor", 1.0) or 1.0),
                                broken=is_broken(image),
                                accelerator="TPU" if "google.com/tpu" in str(c.get("resources")) else "GPU")
        elif c["name"] == "istio-proxy" or "proxyv2" in image:
            s = logscripts.istio_proxy(name, ns, ip, r,
                                       router="gateway.networking.k8s.io/gateway-name" in labels)
        elif not init and (patch_cmd := kubectl.parse(c)) is not None:
            s = kubectl.run(self.ctl.store, pod, patch_cmd,
                            self._connect(pod, netprobe.ProbeCommand("curl", kubectl.API_HOST, 443, 30.0)))
        elif not init and (probe_cmd := netprobe.parse(c)) is not None:
            s = netprobe.script(probe_cmd, self._connect(pod, probe_cmd))
        elif labels.get("app.kubernetes.io/component") == EPP_COMPONENT and c["name"] == "main":
            args = [str(a) for a in c.get("args") or []]
            pool = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--pool-name", "-pool-name")),
                        labels.get("app.kubernetes.io/name", "pool") + "-inference-pool")
            s = logscripts.epp(pool, ns, r, secure="--secure-serving" in " ".join(args))
        else:
            s = logscripts.generic(c["name"], image, r)
        if not init and is_broken(image) and s.exit_at is None:
            s.add(2.0, f"panic: {c['name']}: cannot start: the image {image} is a broken build")
            s.exit_at, s.exit_code, s.up = 2.2, 2, 1e12
        if init and s.exit_at is None:
            s.exit_at = max(2.0, s.lines[-1][0] + 0.5 if s.lines else 2.0)
        self._scripts[key] = s
        return s

    def _crashes(self, c: Obj) -> bool:
        return is_broken(c.get("image", ""))

    def _connect(self, pod: Obj, cmd: netprobe.ProbeCommand) -> str:
        """Ask the cluster's data plane what a connection from this pod does (no data plane: open)."""
        dp = getattr(self.ctl.cluster, "dataplane", None)
        if dp is None or not hasattr(dp, "connect"):
            return "open"
        try:
            return dp.connect(pod, cmd.host, cmd.port)
        except Exception:  # noqa: BLE001 - a probe never takes the kubelet down
            return "timeout"

    @staticmethod
    def _completes(pod: Obj, exit_code: int) -> bool:
        """restartPolicy Never (or OnFailure and exit 0): the pod ends Succeeded/Failed, no restart."""
        policy = pod["spec"].get("restartPolicy") or "Always"
        return policy == "Never" or (policy == "OnFailure" and exit_code == 0)

    def _instance_start(self, tl: Timeline, c: Obj) -> float | None:
        return tl.run_started if self._crashes(c) else tl.main_started

    def _instance(self, tl: Timeline, c: Obj, init: bool) -> int:
        if init:
            return tl.init_restarts
        return tl.restarts if self._crashes(c) else 0

    def _ready_time(self, pod: Obj, tl: Timeline, c: Obj) -> float | None:
        start = self._instance_start(tl, c)
        if start is None:
            return None
        s = self._script(pod, c, False, self._instance(tl, c, False))
        if s.exit_at is not None:
            return None
        probe = c.get("readinessProbe")
        up = s.up
        if isinstance(probe, dict):
            delay = float(probe.get("initialDelaySeconds", 0) or 0)
            period = float(probe.get("periodSeconds", 10) or 10)
            k = max(0, math.ceil((up - delay) / period - 1e-9))
            up = delay + k * period
        return start + up / self.ctl.speed

    # --- events ------------------------------------------------------------------------------
    def _event(self, pod: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        try:
            self.store.record_event(pod, reason, message, type_, component="kubelet")
        except ApiError:
            pass

    # --- stage machine -----------------------------------------------------------------------
    def _stage_end(self, pod: Obj, tl: Timeline) -> float | None:
        sp = self.ctl.speed
        grp, phase = tl.group, tl.phase
        if phase == "start":
            return tl.since
        if phase == "pull":
            big = any(is_vllm_container(c) for c in self._group_containers(pod, grp))
            r = rng(pod["metadata"]["uid"], grp, "pull", tl.attempt)
            dur = r.uniform(6.0, 9.0) if big else r.uniform(1.0, 3.0)
            if any(self._pull_error(pod, c.get("image", "")) for c in self._group_containers(pod, grp)):
                dur = r.uniform(1.0, 2.0)
            return tl.since + dur / sp
        if phase == "pullerr":
            return tl.since + 1.5 / sp
        if phase == "pullbackoff":
            return tl.since + backoff(tl.attempt) / sp
        if phase == "run":
            if tl.plan and tl.plan.get("exit") is not None:
                return tl.since + float(tl.plan.get("dur", 1.0)) / sp
            return None
        if phase == "exited":
            return tl.since + 1.5 / sp
        if phase == "backoff":
            n = tl.init_restarts if grp.startswith("init") else tl.restarts
            return tl.since + backoff(n) / sp
        return None

    def _enter_pull(self, pod: Obj, tl: Timeline, grp: str, t: float) -> None:
        containers = self._group_containers(pod, grp)
        node = pod["spec"]["nodeName"]
        present = self._images.setdefault(node, set())
        tl.attempt = 0
        if not tl.secrets_warned:
            tl.secrets_warned = True
            missing = [r.get("name") for r in pod["spec"].get("imagePullSecrets") or []
                       if self._secret(pod["metadata"]["namespace"], r.get("name", "")) is None]
            if missing:
                self._event(pod, "FailedToRetrieveImagePullSecret",
                            f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to pull "
                            "the image may not succeed.", "Warning")
        need = [c for c in containers if c.get("image") not in present or c.get("imagePullPolicy") == "Always"]
        if not need:
            for c in containers:
                self._event(pod, "Pulled", f'Container image "{c.get("image")}" already present on machine')
            self._start(pod, tl, grp, t)
            return
        tl.stage, tl.since = f"{grp}:pull", t
        for c in need:
            self._event(pod, "Pulling", f'Pulling image "{c.get("image")}"')

    def _start(self, pod: Obj, tl: Timeline, grp: str, t: float, restart: bool = False) -> None:
        containers = self._group_containers(pod, grp)
        err = self._config_error(pod, containers)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if err:
            tl.stage, tl.since = f"{grp}:config", t
            tl.msg = err[1]
            self._event(pod, "Failed", f"Error: {err[1]}", "Warning")
            self._config_wait.add((ns, name))
            return
        self._config_wait.discard((ns, name))
        tl.msg = None
        tl.stage, tl.since = f"{grp}:run", t
        tl.plan = None
        if grp == "main":
            first = tl.main_started is None
            if first:
                tl.main_started = t
            tl.run_started = t
            tl.probes = 0
            started = containers if first else [c for c in containers if self._crashes(c)]
            for c in started:
                if restart:
                    self.logs.restart(ns, name, c["name"])
                s = self._script(pod, c, False, self._instance(tl, c, False))
                if s.exit_at is not None:
                    tl.plan = {"exit": s.exit_code, "dur": s.exit_at}
        else:
            c = containers[0]
            if restart:
                self.logs.restart(ns, name, c["name"])
            variant = "401" if (c.get("name") == "storage-initializer" and self._hf_rejected(pod, c)) else None
            s = self._script(pod, c, True, tl.init_restarts, variant)
            tl.plan = {"exit": s.exit_code, "dur": s.exit_at, "variant": variant}
            started = [c]
        for c in started:
            self._event(pod, "Created", f"Created container: {c['name']}")
            self._event(pod, "Started", f"Started container: {c['name']}")

    def _next_group(self, pod: Obj, grp: str) -> str:
        if grp.startswith("init"):
            k = int(grp[4:]) + 1
            if k < len(pod["spec"].get("initContainers") or []):
                return f"init{k}"
        return "main"

    def _transition(self, pod: Obj, tl: Timeline, t: float) -> None:
        grp, phase = tl.group, tl.phase
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        containers = self._group_containers(pod, grp)
        if phase == "start":
            self._enter_pull(pod, tl, grp, t)
        elif phase == "pull":
            errs = [(c, self._pull_error(pod, c.get("image", ""))) for c in containers]
            errs = [(c, e) for c, e in errs if e]
            if errs:
                c, e = errs[0]
                tl.msg = e
                tl.stage, tl.since = f"{grp}:pullerr", t
                self._event(pod, "Failed", f'Failed to pull image "{c.get("image")}": {e}', "Warning")
                self._event(pod, "Failed", "Error: ErrImagePull", "Warning")
            else:
                node = pod["spec"]["nodeName"]
                dur = (t - tl.since) * self.ctl.speed
                for c in containers:
                    self._images.setdefault(node, set()).add(c.get("image"))
                    size = 9_800_000_000 if is_vllm_container(c) else 60_000_000 + stable_int(c.get("image")) % 200_000_000
                    self._event(pod, "Pulled", f'Successfully pulled image "{c.get("image")}" in {dur:.3f}s '
                                               f"({dur:.3f}s including waiting). Image size: {size} bytes.")
                tl.msg = None
                self._start(pod, tl, grp, t)
        elif phase == "pullerr":
            tl.stage, tl.since = f"{grp}:pullbackoff", t
            bad = next((c for c in containers if self._pull_error(pod, c.get("image", ""))), containers[0])
            self._event(pod, "BackOff", f'Back-off pulling image "{bad.get("image")}"')
            self._event(pod, "Failed", "Error: ImagePullBackOff", "Warning")
        elif phase == "pullbackoff":
            tl.attempt += 1
            tl.stage, tl.since = f"{grp}:pull", t
            for c in containers:
                self._event(pod, "Pulling", f'Pulling image "{c.get("image")}"')
        elif phase == "run":
            exit_code = int((tl.plan or {}).get("exit", 0))
            if grp.startswith("init"):
                c = containers[0]
                if exit_code != 0 or not self.ctl.fast_forwarding:
                    # (a successful run's lines are written after a fast-forward, from the final timeline)
                    self._write_container_logs(pod, c, True, tl.init_restarts, tl.since, t,
                                               (tl.plan or {}).get("variant"))
                self.logs.terminate(ns, name, c["name"])
                if exit_code == 0:
                    tl.init_done.append([tl.since, t, tl.init_restarts])
                    tl.init_restarts = 0
                    tl.last = None
                    tl.plan = None
                    self._enter_pull(pod, tl, self._next_group(pod, grp), t)
                    return
                tl.last = {"started": tl.since, "finished": t, "exit": exit_code, "reason": "Error"}
                tl.stage, tl.since = f"{grp}:exited", t
            elif self._completes(pod, exit_code):
                for c in containers:
                    self._write_container_logs(pod, c, False, self._instance(tl, c, False),
                                               self._instance_start(tl, c) or tl.since, t)
                    self.logs.terminate(ns, name, c["name"])
                tl.last = {"started": tl.run_started or tl.since, "finished": t, "exit": exit_code,
                           "reason": "Completed" if exit_code == 0 else "Error"}
                tl.stage, tl.since = f"{grp}:done", t
            else:
                for c in containers:
                    if self._crashes(c):
                        self._write_container_logs(pod, c, False, tl.restarts, tl.run_started or tl.since, t)
                        self.logs.terminate(ns, name, c["name"])
                tl.last = {"started": tl.run_started or tl.since, "finished": t, "exit": exit_code, "reason": "Error"}
                tl.stage, tl.since = f"{grp}:exited", t
        elif phase == "exited":
            tl.stage, tl.since = f"{grp}:backoff", t
            for c in containers:
                if grp.startswith("init") or self._crashes(c):
                    self._event(pod, "BackOff", f"Back-off restarting failed container {c['name']} in pod "
                                                f"{name}_{ns}({pod['metadata']['uid']})", "Warning")
        elif phase == "backoff":
            if grp.startswith("init"):
                tl.init_restarts += 1
            else:
                tl.restarts += 1
            for c in containers:
                if grp.startswith("init") or self._crashes(c):
                    self._event(pod, "Pulled", f'Container image "{c.get("image")}" already present on machine')
            self._start(pod, tl, grp, t, restart=True)

    def _advance(self, pod: Obj, tl: Timeline, now: float) -> bool:
        changed = False
        for _ in range(2000):
            if tl.phase == "config":
                containers = self._group_containers(pod, tl.group)
                err = self._config_error(pod, containers)
                if err:
                    if tl.msg != err[1]:
                        tl.msg = err[1]
                        changed = True
                        self._event(pod, "Failed", f"Error: {err[1]}", "Warning")
                    break
                self._start(pod, tl, tl.group, max(tl.since, now))
                changed = True
                continue
            end = self._stage_end(pod, tl)
            if end is None or end > now:
                break
            self._transition(pod, tl, end)
            changed = True
        return changed

    # --- logs --------------------------------------------------------------------------------
    def _write_container_logs(self, pod: Obj, c: Obj, init: bool, instance: int, start: float, upto: float,
                              variant: str | None = None) -> float | None:
        """Write the script lines due by `upto`; return the time of the next line (None: done)."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        s = self._script(pod, c, init, instance, variant)
        written = self.logs.read(ns, name, c["name"])
        have = len(written)
        # a container's log times never go backwards (log followers dedupe reconnects by time), even
        # when a later fast-forward has backdated the timeline after earlier lines were written
        floor = written[-1][0] if written else 0.0
        sp = self.ctl.speed
        lines = s.lines
        i = have
        while i < len(lines):
            off, text = lines[i]
            t = start + off / sp
            if t > upto + 1e-9:
                return t
            t = max(t, floor)
            self.logs.append(ns, name, c["name"], logscripts.fill(text, t), ts=t)
            i += 1
        return None

    def _write_logs(self, pod: Obj, tl: Timeline, now: float) -> float | None:
        """Progress logs of the running containers (and completed init containers whose lines a
        fast-forward deferred); the next line's time."""
        nxt: float | None = None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        inits = pod["spec"].get("initContainers") or []
        for k, (st, fin, rc) in enumerate(tl.init_done[: len(inits)]):
            c = inits[k]
            if not self.logs.read(ns, name, c["name"], tail=1):
                self._write_container_logs(pod, c, True, rc, st, fin)
                self.logs.terminate(ns, name, c["name"])
        grp, phase = tl.group, tl.phase
        if phase != "run" and not (grp == "main" and tl.main_started is not None):
            return None
        if grp.startswith("init") and phase == "run":
            c = self._group_containers(pod, grp)[0]
            return self._write_container_logs(pod, c, True, tl.init_restarts, tl.since, now,
                                              (tl.plan or {}).get("variant"))
        if tl.main_started is None:
            return None
        for c in pod["spec"].get("containers") or []:
            if self._crashes(c) and phase != "run":
                continue
            start = self._instance_start(tl, c)
            if start is None:
                continue
            t = self._write_container_logs(pod, c, False, self._instance(tl, c, False), start, now)
            if t is not None and (nxt is None or t < nxt):
                nxt = t
        return nxt

    def _probe_events(self, pod: Obj, tl: Timeline, now: float) -> float | None:
        """Unhealthy events for readiness probes that fail while the process starts; next probe time."""
        if tl.group != "main" or tl.phase != "run":
            return None
        sp = self.ctl.speed
        nxt = None
        for c in pod["spec"].get("containers") or []:
            probe = c.get("readinessProbe")
            if not isinstance(probe, dict) or not is_vllm_container(c):
                continue
            start = self._instance_start(tl, c)
            if start is None:
                continue
            s = self._script(pod, c, False, self._instance(tl, c, False))
            up_t = start + (s.up if s.exit_at is None else 1e12) / sp
            delay = float(probe.get("initialDelaySeconds", 0) or 0)
            period = float(probe.get("periodSeconds", 10) or 10)
            k = 0
            count = 0
            while True:
                t = start + (delay + k * period) / sp
                if t >= up_t or t > now:
                    if t < up_t:
                        nxt = t
                    break
                count += 1
                k += 1
                if k > 100000:
                    break
            new = count - tl.probes
            if new > 0:
                get = probe.get("httpGet") or {}
                scheme = str(get.get("scheme", "HTTP")).lower()
                url = f'{scheme}://{tl.ip}:{get.get("port", 8000)}{get.get("path", "/")}'
                for _ in range(min(new, 20)):
                    self._event(pod, "Unhealthy", f'Readiness probe failed: Get "{url}": dial tcp '
                                                  f'{tl.ip}:{get.get("port", 8000)}: connect: connection refused',
                                "Warning")
                tl.probes = count
        return nxt

    # --- status ------------------------------------------------------------------------------
    def _cid(self, pod: Obj, c: Obj, instance: int) -> str:
        return "containerd://" + sha256_hex(pod["metadata"]["uid"], c["name"], instance)

    def _cs(self, c: Obj, state: Obj, *, ready: bool = False, started: bool | None = None, restarts: int = 0,
            last: Obj | None = None, pulled: bool = False, cid: str | None = None) -> Obj:
        d: Obj = {"name": c["name"], "image": c.get("image", ""),
                  "imageID": image_digest(c.get("image", "")) if pulled else "",
                  "ready": ready, "restartCount": restarts, "state": state, "lastState": last or {}}
        if started is not None:
            d["started"] = started
        if cid:
            d["containerID"] = cid
        return d

    def _waiting(self, reason: str, message: str | None = None) -> Obj:
        w: Obj = {"reason": reason}
        if message:
            w["message"] = message
        return {"waiting": w}

    def _term_state(self, last: Obj, cid: str | None = None) -> Obj:
        t: Obj = {"exitCode": int(last.get("exit", 1)), "reason": last.get("reason", "Error"),
                  "startedAt": ts(last["started"]), "finishedAt": ts(last["finished"])}
        if cid:
            t["containerID"] = cid
        return {"terminated": t}

    def _status(self, pod: Obj, tl: Timeline, now: float, node: Obj, terminating: bool = False) -> Obj:
        spec = pod["spec"]
        old = pod.get("status") or {}
        inits = spec.get("initContainers") or []
        mains = spec.get("containers") or []
        grp, phase = tl.group, tl.phase
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        k_cur = int(grp[4:]) if grp.startswith("init") else len(inits)
        default_wait = "PodInitializing" if inits else "ContainerCreating"

        def waiting_for(c: Obj, init: bool) -> Obj:
            bad = self._pull_error(pod, c.get("image", "")) if phase in ("pull", "pullerr", "pullbackoff") else None
            if bad is not None:
                if phase == "pullerr":
                    return self._waiting("ErrImagePull", tl.msg or bad)
                # in back-off, and while a retried pull runs, the status shows the back-off
                if phase == "pullbackoff" or (phase == "pull" and tl.attempt > 0 and tl.msg):
                    return self._waiting("ImagePullBackOff",
                                         f'Back-off pulling image "{c.get("image")}": ErrImagePull: {tl.msg or bad}')
            if phase == "config":
                err = self._config_error(pod, [c])
                if err:
                    return self._waiting("CreateContainerConfigError", err[1])
            return self._waiting("PodInitializing" if init else default_wait)

        init_cs = []
        for k, c in enumerate(inits):
            pulled_any = k < len(tl.init_done) or (k == k_cur and phase not in ("start", "pull", "pullerr",
                                                                                "pullbackoff"))
            if k < len(tl.init_done):
                st, fin, rc = tl.init_done[k]
                cid = self._cid(pod, c, rc)
                init_cs.append(self._cs(c, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts(st),
                                                           "finishedAt": ts(fin), "containerID": cid}},
                                        ready=True, started=False, restarts=rc, pulled=True, cid=cid))
            elif k == k_cur:
                rc = tl.init_restarts
                last = self._term_state(tl.last, self._cid(pod, c, rc - 1)) if tl.last and rc > 0 else None
                if phase == "run":
                    cid = self._cid(pod, c, rc)
                    init_cs.append(self._cs(c, {"running": {"startedAt": ts(tl.since)}}, started=True, restarts=rc,
                                            last=last, pulled=True, cid=cid))
                elif phase == "exited" and tl.last:
                    cid = self._cid(pod, c, rc)
                    prev = self._term_state(tl.last, self._cid(pod, c, rc - 1)) if rc > 0 else None
                    init_cs.append(self._cs(c, self._term_state(tl.last, cid), started=False, restarts=rc,
                                            last=prev, pulled=True, cid=cid))
                elif phase == "backoff" and tl.last:
                    n = backoff(rc)
                    msg = f"back-off {int(n) if n < 60 else str(int(n // 60)) + 'm' + str(int(n % 60)) + 's'} " \
                          f"restarting failed container={c['name']} pod={name}_{ns}({uid})"
                    init_cs.append(self._cs(c, self._waiting("CrashLoopBackOff", msg), started=False, restarts=rc,
                                            last=self._term_state(tl.last, self._cid(pod, c, rc)), pulled=True))
                else:
                    init_cs.append(self._cs(c, waiting_for(c, True), started=False, restarts=rc, pulled=pulled_any))
            else:
                init_cs.append(self._cs(c, self._waiting("PodInitializing"), started=False))

        main_cs = []
        ready_all = True
        ready_at: list[float] = []
        unready: list[str] = []
        for c in mains:
            if grp != "main" or tl.main_started is None:
                pulled = grp == "main" and phase not in ("start", "pull", "pullerr", "pullbackoff")
                main_cs.append(self._cs(c, waiting_for(c, False) if grp == "main" else self._waiting(default_wait),
                                        started=False, pulled=pulled))
                ready_all = False
                unready.append(c["name"])
                continue
            crashing = self._crashes(c)
            inst = self._instance(tl, c, False)
            cid = self._cid(pod, c, inst)
            if phase == "done" and tl.last:  # a completed pod (restartPolicy Never / OnFailure)
                main_cs.append(self._cs(c, self._term_state(tl.last, cid), started=False, restarts=inst,
                                        pulled=True, cid=cid))
                ready_all = False
                unready.append(c["name"])
                continue
            if crashing:
                last = self._term_state(tl.last, self._cid(pod, c, inst - 1)) if tl.last and inst > 0 else None
                if phase == "run":
                    main_cs.append(self._cs(c, {"running": {"startedAt": ts(tl.run_started)}}, started=True,
                                            restarts=inst, last=last, pulled=True, cid=cid))
                elif phase == "exited" and tl.last:
                    main_cs.append(self._cs(c, self._term_state(tl.last, cid), started=False, restarts=inst,
                                            last=last, pulled=True, cid=cid))
                elif phase == "backoff" and tl.last:
                    n = backoff(inst)
                    msg = f"back-off {int(n) if n < 60 else str(int(n // 60)) + 'm' + str(int(n % 60)) + 's'} " \
                          f"restarting failed container={c['name']} pod={name}_{ns}({uid})"
                    main_cs.append(self._cs(c, self._waiting("CrashLoopBackOff", msg), started=False, restarts=inst,
                                            last=self._term_state(tl.last, cid), pulled=True))
                else:
                    main_cs.append(self._cs(c, waiting_for(c, False), started=False, restarts=inst, pulled=True))
                ready_all = False
                unready.append(c["name"])
                continue
            rt = self._ready_time(pod, tl, c)
            ready = rt is not None and rt <= now and not terminating
            if ready:
                ready_at.append(rt)  # type: ignore[arg-type]
            else:
                ready_all = False
                unready.append(c["name"])
            main_cs.append(self._cs(c, {"running": {"startedAt": ts(tl.main_started)}}, ready=ready, started=True,
                                    pulled=True, cid=cid))

        # every condition time derives from the timeline (so a backdated timeline moves them too)
        def cond(type_: str, ok: bool, at: float, reason: str | None = None, message: str | None = None) -> Obj:
            c: Obj = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
                      "lastTransitionTime": ts(at)}
            if not ok and reason:
                c["reason"] = reason
            if not ok and message:
                c["message"] = message
            return c

        conds = [cond("PodReadyToStartContainers", True, tl.bound + 1.0 / self.ctl.speed)]
        if inits and len(tl.init_done) < len(inits):
            pending = [c["name"] for c in inits[len(tl.init_done):]]
            conds.append(cond("Initialized", False, tl.bound, "ContainersNotInitialized",
                              f"containers with incomplete status: [{' '.join(pending)}]"))
        else:
            conds.append(cond("Initialized", True, tl.init_done[-1][1] if inits else tl.bound))
        if ready_all and mains:
            t_ready = max(ready_at) if ready_at else tl.bound
            conds.append(cond("Ready", True, t_ready))
            conds.append(cond("ContainersReady", True, t_ready))
        else:
            if terminating and tl.term:
                since = tl.term
            elif tl.last and tl.group == "main":
                since = tl.last.get("finished") or tl.bound
            else:
                since = tl.bound
            msg = f"containers with unready status: [{' '.join(unready)}]"
            why = "PodCompleted" if phase == "done" else "ContainersNotReady"
            conds.append(cond("Ready", False, since, why, None if phase == "done" else msg))
            conds.append(cond("ContainersReady", False, since, why, None if phase == "done" else msg))
        conds.append(cond("PodScheduled", True, tl.bound))

        host_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), "10.128.0.2")
        status: Obj = {
            "phase": ("Succeeded" if int((tl.last or {}).get("exit", 1)) == 0 else "Failed") if phase == "done"
            else "Running" if tl.main_started is not None else "Pending",
            "conditions": conds,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": tl.ip,
            "podIPs": [{"ip": tl.ip}],
            "startTime": ts(tl.bound),
            "containerStatuses": main_cs,
            "qosClass": old.get("qosClass") or qos_class(spec),
        }
        if inits:
            status["initContainerStatuses"] = init_cs
        return status

    # --- reconcile ---------------------------------------------------------------------------
    def reconcile(self, key: tuple) -> None:
        _, ns, name = key
        pod = self.store.try_get(self.pt, ns, name)
        if pod is None or not pod["spec"].get("nodeName"):
            return
        uid = pod["metadata"]["uid"]
        node = self.store.try_get(self.nt, None, pod["spec"]["nodeName"])
        if node is None:
            try:
                self.store.delete(self.pt, ns, name, grace_period_seconds=0)
            except ApiError:
                pass
            return
        tl = self._timeline(pod)
        now = self.ctl.now()
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod, tl, now, node)
            return
        before = tl.to_json()
        self._advance(pod, tl, now)
        # during a fast-forward, running containers' lines are written once at the end (flush), so
        # their timestamps come from the final, fully backdated timeline and stay in order
        next_log = None if self.ctl.fast_forwarding else self._write_logs(pod, tl, now)
        next_probe = self._probe_events(pod, tl, now)
        status = self._status(pod, tl, now, node)
        self._write_status(pod, status)
        if tl.to_json() != before:
            self._persist(ns, name, uid, tl)
        # wake-ups: the next transition (major), readiness flips (major), log lines and probes (minor)
        k = ("pod", ns, name)
        end = self._stage_end(pod, tl)
        if end is not None:
            self.ctl.wake_at(k, max(end, now + 1e-6))
        if tl.phase == "config":  # retried on Secret events; this periodic retry cannot matter in a fast-forward
            self.ctl.wake_at(k, now + 10.0 / self.ctl.speed, minor=True)
        if tl.group == "main" and tl.main_started is not None:
            for c in pod["spec"].get("containers") or []:
                rt = self._ready_time(pod, tl, c)
                if rt is not None and rt > now:
                    self.ctl.wake_at(k, rt)
        if next_log is not None:
            self.ctl.wake_at(k, next_log, minor=True)
        if next_probe is not None:
            self.ctl.wake_at(k, next_probe, minor=True)

    def _write_status(self, pod: Obj, status: Obj) -> None:
        if status == pod.get("status"):
            return
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]

        def put(o: Obj) -> None:
            if o["metadata"].get("uid") == uid:
                o["status"] = status
        try:
            self.store.mutate(self.pt, ns, name, put, subresource="status")
        except ApiError:
            pass

    def _terminate(self, pod: Obj, tl: Timeline, now: float, node: Obj) -> None:
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        running = []
        if tl.phase == "done":
            pass  # completed: nothing left to stop
        elif tl.group == "main" and tl.main_started is not None:
            running = [c for c in pod["spec"].get("containers") or [] if not self._crashes(c) or tl.phase == "run"]
        elif tl.phase == "run":
            running = self._group_containers(pod, tl.group)
        if tl.term is None:
            tl.term = now
            for c in running:
                self._event(pod, "Killing", f"Stopping container {c['name']}")
                init = c in (pod["spec"].get("initContainers") or [])
                s = self._script(pod, c, init, self._instance(tl, c, init))
                for line in s.shutdown:
                    self.logs.append(ns, name, c["name"], logscripts.fill(line, now), ts=now)
            self._persist(ns, name, uid, tl)
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        end = tl.term + min(float(grace or 0), TERMINATION_SECONDS) / self.ctl.speed
        if now >= end - 1e-9:
            for c in list(pod["spec"].get("initContainers") or []) + list(pod["spec"].get("containers") or []):
                self.logs.terminate(ns, name, c["name"])
            self.store.force_remove(self.pt, ns, name)
            return
        status = self._status(pod, tl, now, node, terminating=True)
        self._write_status(pod, status)
        self.ctl.wake_at(("pod", ns, name), end)
