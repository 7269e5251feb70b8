"""KServe's LLMInferenceService controller (what `kserve-controller-manager` creates), once the
KServe controller pod is Ready.

For an LLMInferenceService <svc> in <ns> (names and labels as rhaii_tui/manifests.py derives them):
- Secret <svc>-kserve-self-signed-certs (the serving certificate mounted at /var/run/kserve/tls);
- Deployment <svc>-kserve: the vLLM pods from spec.template (containers, args, nodeSelector,
  tolerations, resources, probes, imagePullSecrets, env...) plus a storage-initializer init
  container that copies spec.model.uri to /mnt/models (it gets the main container's HF_TOKEN);
  labels kserve.io/component=workload, app.kubernetes.io/part-of=llminferenceservice,
  app.kubernetes.io/name=<svc>, app.kubernetes.io/component=llminferenceservice-workload;
- with spec.router.scheduler: Deployment <svc>-kserve-router-scheduler (the EPP, label
  app.kubernetes.io/component=llminferenceservice-router-scheduler; containers of
  spec.router.scheduler.template merge by name into KServe's default), Service
  <svc>-epp-service (9002 grpc, 9003 grpc-health, 9090 metrics) and InferencePool
  <svc>-inference-pool in the API of the KServe release installed (label app.kubernetes.io/version
  on kserve-controller-manager, from the scenario knob kserve_version): 3.4.0-ea.1 writes
  inference.networking.x-k8s.io/v1alpha2 (selector, targetPortNumber, extensionRef), 3.4.0-ea.2
  inference.networking.k8s.io/v1 (selector.matchLabels, targetPorts, endpointPickerRef); both with
  failureMode FailOpen, as the releases' kserve-config-llm-scheduler writes it. No pool when that
  release's CRD is not served;
- Service <svc>-kserve-workload-svc (8000 https);
- with spec.router.route: HTTPRoute <svc>-kserve-route on the gateway (default
  opendatahub/inference-gateway), rules in the order kserve-config-llm-router-route writes them
  (3.4.0-ea.1 and ea.2): rule 0 /<ns>/<svc>/v1/completions and rule 1 /<ns>/<svc>/v1/chat/completions
  to the InferencePool (backendRef group = the release's pool group), rule 2 the /<ns>/<svc>
  catch-all to the workload Service (URL rewrites strip the prefix);
- status: observedGeneration, url/addresses from the gateway address, and the conditions KServe
  reports (HTTPRoutesReady, InferencePoolReady, MainWorkloadReady, PresetsCombined, RouterReady,
  SchedulerWorkloadReady, WorkloadsReady, Ready).

A KServe upgrade (the controller's version label changes, e.g. 3.4.0-ea.1 -> ea.2) re-renders every
service: the pool moves to the new release's API (the old one is deleted), the route names the new
group, and the scheduler Deployment's pod template is replaced as the new release writes it (labels
others added to it, such as the guide's step 6 label, are gone).

Pod templates carry the annotation sidecar.istio.io/inject="false" (no sidecar even in a namespace
labelled istio-injection=enabled); the guide's label sidecar.istio.io/inject=true on the EPP
template overrides it. Child specs are re-rendered only when the service's generation changes (replicas, image...), so
patches others make to the children (the guide's step 6 label on the EPP pod template) stay.
Everything carries an ownerReference to the service: deleting it deletes them (store GC).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from ..store import ApiError
from .common import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    Obj,
    get_condition,
    merge_by_name,
    owner_ref,
    pod_ready,
    rt,
    set_condition,
    stable_int,
    try_create,
)

# The names and labels KServe derives from an LLMInferenceService. Written here on purpose and not
# imported from rhaii_tui/manifests.py: the emulator plays KServe, so it must not share the
# wizard's idea of these names (a wrong name in the wizard would then go unnoticed by the tests).


def workload_deployment_name(svc: str) -> str:
    return f"{svc}-kserve"


def epp_deployment_name(svc: str) -> str:
    return f"{svc}-kserve-router-scheduler"


def epp_service_name(svc: str) -> str:
    return f"{svc}-epp-service"


def workload_service_name(svc: str) -> str:
    return f"{svc}-kserve-workload-svc"


def inference_pool_name(svc: str) -> str:
    return f"{svc}-inference-pool"


def route_name(svc: str) -> str:
    return f"{svc}-kserve-route"


def tls_secret_name(svc: str) -> str:
    return f"{svc}-kserve-self-signed-certs"


def workload_labels(svc: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "llminferenceservice",
            "kserve.io/component": "workload"}


def epp_labels(svc: str) -> dict[str, str]:
    return {"app.kubernetes.io/component": "llminferenceservice-router-scheduler",
            "app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "llminferenceservice"}


# The InferencePool API each KServe release writes (its kserve-config-llm-scheduler/-router-route).
POOL_API_BY_KSERVE: dict[str, tuple[str, str]] = {
    "3.4.0-ea.1": ("inference.networking.x-k8s.io", "v1alpha2"),
    "3.4.0-ea.2": ("inference.networking.k8s.io", "v1"),
}
DEFAULT_KSERVE_VERSION = "3.4.0-ea.1"
STORAGE_INITIALIZER_IMAGE = "quay.io/opendatahub/kserve-storage-initializer:v0.15"
EPP_DEFAULT_IMAGE = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.1"
TLS_DIR = "/var/run/kserve/tls"
MODEL_DIR = "/mnt/models"
WORKLOAD_COMPONENT = "llminferenceservice-workload"
# KServe opts its pods out of Istio injection with the annotation; the pod LABEL wins over it in
# Istio, which is why the guide's step 6 label patch turns the EPP's sidecar on (and KServe, which
# manages only the annotation, never reverts the label).
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


def _fake_pem(kind: str, seed: str) -> str:
    body = base64.b64encode(stable_int(kind, seed).to_bytes(8, "big") * 96).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


class LLMISvcController:
    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.pt = self.store.type_for("pods")
        self.dt = self.store.type_for("deployments", "apps")
        self.svct = self.store.type_for("services")
        self.st = self.store.type_for("secrets")
        ctl.register("llmisvc", self.reconcile)

    def _lt(self):
        return rt(self.store, "llminferenceservices", "serving.kserve.io")

    def resync(self) -> None:
        self._all()

    def shift(self, dt: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def _all(self) -> None:
        lt = self._lt()
        if lt is None:
            return
        for o in self.store.list(lt)[0]:
            self.ctl.enqueue(("llmisvc", o["metadata"]["namespace"], o["metadata"]["name"]))

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        labels = md.get("labels") or {}
        if rtype.group == "serving.kserve.io" and rtype.plural == "llminferenceservices":
            if etype == "MODIFIED" and old is not None and old.get("spec") == obj.get("spec") \
                    and old["metadata"].get("deletionTimestamp") == md.get("deletionTimestamp"):
                return
            self.ctl.enqueue(("llmisvc", md["namespace"], md["name"]))
            return
        if rtype.key == self.dt.key and md.get("name") == "kserve-controller-manager" \
                and md.get("namespace") == GATEWAY_NAMESPACE:
            old_v = (((old or {}).get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version")
            if old is not None and old_v != labels.get("app.kubernetes.io/version"):
                self._all()  # an upgrade: every service is re-rendered by the new release
            return
        if rtype.key == self.pt.key:
            if labels.get("control-plane") == "kserve-controller-manager":
                if old is None or pod_ready(old) != pod_ready(obj) or etype == "DELETED":
                    self._all()
            return
        if rtype.group == "gateway.networking.k8s.io" and rtype.plural == "gateways":
            if old is None or (old.get("status") or {}).get("addresses") != (obj.get("status") or {}).get("addresses") \
                    or etype == "DELETED":
                self._all()
            return
        owner = next((r for r in md.get("ownerReferences") or [] if r.get("kind") == "LLMInferenceService"), None)
        if owner is not None:
            if rtype.key == self.dt.key and etype == "MODIFIED" and old is not None \
                    and old.get("status") == obj.get("status") and old.get("spec") == obj.get("spec"):
                return
            self.ctl.enqueue(("llmisvc", md["namespace"], owner["name"]))

    def kserve_ready(self) -> bool:
        return any(pod_ready(p) for p in self.store.select(self.pt, GATEWAY_NAMESPACE,
                                                           {"control-plane": "kserve-controller-manager"}))

    # --- desired children --------------------------------------------------------------------
    def _gateway_ref(self, svc_obj: Obj) -> tuple[str, str]:
        refs = ((((svc_obj.get("spec") or {}).get("router") or {}).get("gateway") or {}).get("refs") or [])
        if refs:
            return refs[0].get("namespace") or GATEWAY_NAMESPACE, refs[0].get("name") or GATEWAY_NAME
        return GATEWAY_NAMESPACE, GATEWAY_NAME

    def kserve_version(self) -> str:
        """The installed release: the kserve-controller-manager's version label (else the knob)."""
        dep = self.store.try_get(self.dt, GATEWAY_NAMESPACE, "kserve-controller-manager")
        v = ((dep or {}).get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/version")
        return v if v in POOL_API_BY_KSERVE else self.ctl.knob("kserve_version", DEFAULT_KSERVE_VERSION)

    def pool_group(self) -> str:
        return POOL_API_BY_KSERVE.get(self.kserve_version(), POOL_API_BY_KSERVE[DEFAULT_KSERVE_VERSION])[0]

    def _pool_type(self):
        """The InferencePool type of the installed release (None while its CRD is not served)."""
        return rt(self.store, "inferencepools", self.pool_group())

    def workload_deployment(self, svc_obj: Obj) -> Obj:
        svc = svc_obj["metadata"]["name"]
        ns = svc_obj["metadata"]["namespace"]
        spec = svc_obj.get("spec") or {}
        tmpl = copy.deepcopy(spec.get("template") or {})
        containers = tmpl.pop("containers", None) or [{"name": "main", "image": "vllm/vllm-openai:latest"}]
        pod_spec: Obj = dict(tmpl)
        uri = ((spec.get("model") or {}).get("uri") or "")
        main = next((c for c in containers if c.get("name") == "main"), containers[0])
        ports = main.setdefault("ports", [])
        if not any(p.get("containerPort") == 8000 for p in ports):
            ports.append({"containerPort": 8000, "name": "https", "protocol": "TCP"})
        mounts = main.setdefault("volumeMounts", [])
        for m in ({"name": "model-cache", "mountPath": MODEL_DIR, "readOnly": True},
                  {"name": "tls-certs", "mountPath": TLS_DIR, "readOnly": True},
                  {"name": "home", "mountPath": "/home"}, {"name": "dshm", "mountPath": "/dev/shm"}):
            if not any(x.get("name") == m["name"] for x in mounts):
                mounts.append(m)
        pod_spec["containers"] = containers
        vols = pod_spec.setdefault("volumes", [])
        for v in ({"name": "model-cache", "emptyDir": {}}, {"name": "home", "emptyDir": {}},
                  {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                  {"name": "tls-certs", "secret": {"secretName": tls_secret_name(svc), "defaultMode": 420}}):
            if not any(x.get("name") == v["name"] for x in vols):
                vols.append(v)
        if uri and not uri.startswith("pvc://"):
            env = [copy.deepcopy(e) for e in main.get("env") or []
                   if e.get("name") in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE")]
            init = {"name": "storage-initializer", "image": STORAGE_INITIALIZER_IMAGE,
                    "args": [uri, MODEL_DIR],
                    "resources": {"requests": {"cpu": "100m", "memory": "100Mi"},
                                  "limits": {"cpu": "1", "memory": "1Gi"}},
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "model-cache", "mountPath": MODEL_DIR}]}
            if env:
                init["env"] = env
            pod_spec["initContainers"] = [init] + [c for c in pod_spec.get("initContainers") or []
                                                   if c.get("name") != "storage-initializer"]
        pod_spec.setdefault("terminationGracePeriodSeconds", 30)
        sel = workload_labels(svc)
        labels = dict(sel)
        labels["app.kubernetes.io/component"] = WORKLOAD_COMPONENT
        replicas = spec.get("replicas")
        return {
            "metadata": {"name": workload_deployment_name(svc), "namespace": ns, "labels": dict(labels),
                         "ownerReferences": [owner_ref(svc_obj)]},
            "spec": {"replicas": 1 if replicas is None else int(replicas), "selector": {"matchLabels": sel},
                     "template": {"metadata": {"labels": labels, "annotations": dict(NO_SIDECAR)}, "spec": pod_spec},
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
        }

    def epp_deployment(self, svc_obj: Obj) -> Obj:
        svc = svc_obj["metadata"]["name"]
        ns = svc_obj["metadata"]["namespace"]
        sched = ((svc_obj.get("spec") or {}).get("router") or {}).get("scheduler") or {}
        group = self.pool_group()
        default = {
            "name": "main", "image": EPP_DEFAULT_IMAGE, "imagePullPolicy": "IfNotPresent",
            "args": ["--pool-name", inference_pool_name(svc), "--pool-namespace", ns, "--pool-group", group,
                     "--zap-encoder", "json", "--grpc-port", "9002", "--grpc-health-port", "9003",
                     "--secure-serving", "--cert-path", TLS_DIR],
            "ports": [{"containerPort": 9002, "name": "grpc", "protocol": "TCP"},
                      {"containerPort": 9003, "name": "grpc-health", "protocol": "TCP"},
                      {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}],
            "readinessProbe": {"grpc": {"port": 9003, "service": "inference-extension"},
                               "initialDelaySeconds": 5, "periodSeconds": 10},
            "livenessProbe": {"grpc": {"port": 9003, "service": "inference-extension"},
                              "initialDelaySeconds": 5, "periodSeconds": 10},
            "resources": {"requests": {"cpu": "256m", "memory": "500Mi"}},
            "volumeMounts": [{"name": "tls-certs", "mountPath": TLS_DIR, "readOnly": True}],
        }
        tmpl = copy.deepcopy(sched.get("template") or {})
        containers = merge_by_name([default], tmpl.pop("containers", None) or [])
        pod_spec: Obj = {"containers": containers, "terminationGracePeriodSeconds": 30,
                         "volumes": [{"name": "tls-certs", "secret": {"secretName": tls_secret_name(svc),
                                                                      "defaultMode": 420}}]}
        pod_spec.update(tmpl)
        pod_spec["containers"] = containers
        labels = epp_labels(svc)
        return {
            "metadata": {"name": epp_deployment_name(svc), "namespace": ns, "labels": dict(labels),
                         "ownerReferences": [owner_ref(svc_obj)]},
            "spec": {"replicas": int(sched.get("replicas", 1) or 1), "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels), "annotations": dict(NO_SIDECAR)},
                                  "spec": pod_spec},
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
        }

    def _stale_pools(self, ns: str, svc: str) -> list[tuple[Any, Obj]]:
        """The service's pools in an API the installed release does not write (left by an upgrade)."""
        out = []
        for group in POOL_API_BY_KSERVE.values():
            t = rt(self.store, "inferencepools", group[0])
            if t is None or group[0] == self.pool_group():
                continue
            p = self.store.try_get(t, ns, inference_pool_name(svc))
            if p is not None and any(r.get("kind") == "LLMInferenceService" and r.get("name") == svc
                                     for r in p["metadata"].get("ownerReferences") or []):
                out.append((t, p))
        return out

    def _ensure_deployment(self, desired: Obj, full: bool, replace: bool = False) -> Obj | None:
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        cur = self.store.try_get(self.dt, ns, name)
        if cur is None:
            return try_create(self.store, self.dt, desired)
        if not full:
            return cur

        def sync(o: Obj) -> None:
            tmd = (o["spec"].get("template") or {}).get("metadata") or {}
            want = copy.deepcopy(desired["spec"])
            wmd = want["template"].setdefault("metadata", {})
            if replace:  # a new release writes its own template: what others added is gone
                o["spec"] = want
                o["metadata"].setdefault("labels", {}).update(desired["metadata"]["labels"])
                return
            # keep labels/annotations others added to the pod template (e.g. sidecar injection)
            wmd["labels"] = {**(tmd.get("labels") or {}), **(wmd.get("labels") or {})}
            if tmd.get("annotations") or wmd.get("annotations"):
                wmd["annotations"] = {**(tmd.get("annotations") or {}), **(wmd.get("annotations") or {})}
            o["spec"] = want
            o["metadata"].setdefault("labels", {}).update(desired["metadata"]["labels"])
        try:
            return self.store.mutate(self.dt, ns, name, sync)
        except ApiError:
            return None

    def _ensure_service(self, ns: str, name: str, selector: dict[str, str], ports: list[Obj], owner: Obj) -> None:
        try_create(self.store, self.svct, {
            "metadata": {"name": name, "namespace": ns, "labels": dict(selector), "ownerReferences": [owner_ref(owner)]},
            "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": ports,
                     "clusterIP": f"34.118.{226 + stable_int('svc', ns, name) % 28}.{stable_int(ns, name) % 250 + 2}",
                     "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {}},
        })

    def _ensure_pool(self, svc_obj: Obj, gw_ns: str, gw_name: str, full: bool) -> Obj | None:
        pt = self._pool_type()
        if pt is None:
            return None
        svc = svc_obj["metadata"]["name"]
        ns = svc_obj["metadata"]["namespace"]
        sel = workload_labels(svc)
        if pt.group == "inference.networking.k8s.io":
            spec = {"selector": {"matchLabels": sel}, "targetPorts": [{"number": 8000}],
                    "endpointPickerRef": {"kind": "Service", "name": epp_service_name(svc),
                                          "port": {"number": 9002}, "failureMode": "FailOpen"}}
        else:
            spec = {"selector": sel, "targetPortNumber": 8000,
                    "extensionRef": {"kind": "Service", "name": epp_service_name(svc),
                                     "failureMode": "FailOpen"}}
        name = inference_pool_name(svc)
        cur = self.store.try_get(pt, ns, name)
        if cur is None:
            cur = try_create(self.store, pt, {"metadata": {"name": name, "namespace": ns, "labels": dict(sel),
                                                           "ownerReferences": [owner_ref(svc_obj)]}, "spec": spec})
        elif full and cur.get("spec") != spec:
            cur = self.store.mutate(pt, ns, name, lambda o: o.__setitem__("spec", spec))
        if cur is None:
            return None
        g = rt(self.store, "gateways", "gateway.networking.k8s.io")
        gw = self.store.try_get(g, gw_ns, gw_name) if g is not None else None
        parents = []
        if gw is not None:
            conds: list[Obj] = []
            old_parents = (cur.get("status") or {}).get("parents") or (cur.get("status") or {}).get("parent") or []
            if old_parents:
                conds = copy.deepcopy(old_parents[0].get("conditions") or [])
            now = self.ctl.now()
            gen = cur["metadata"].get("generation", 1)
            set_condition(conds, "Accepted", "True", "Accepted", "InferencePool has been Accepted by controller "
                          "istio.io/gateway-controller", at=now, extra={"observedGeneration": gen})
            set_condition(conds, "ResolvedRefs", "True", "ResolvedRefs", "All references resolved", at=now,
                          extra={"observedGeneration": gen})
            parents.append({"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name,
                                          "namespace": gw_ns}, "conditions": conds})
        status = {"parents": parents} if pt.group == "inference.networking.k8s.io" else {"parent": parents}
        if status != cur.get("status"):
            try:
                cur = self.store.mutate(pt, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass
        return cur

    def _route(self, svc_obj: Obj, gw_ns: str, gw_name: str, scheduler: bool) -> Obj:
        svc = svc_obj["metadata"]["name"]
        ns = svc_obj["metadata"]["namespace"]
        base = f"/{ns}/{svc}"
        if scheduler:  # the release's template names its pool group, served or not
            pool_backend = {"group": self.pool_group(), "kind": "InferencePool", "name": inference_pool_name(svc),
                            "port": 8000, "weight": 1}
        else:
            pool_backend = {"group": "", "kind": "Service", "name": workload_service_name(svc), "port": 8000,
                            "weight": 1}
        svc_backend = {"group": "", "kind": "Service", "name": workload_service_name(svc), "port": 8000, "weight": 1}

        def rule(prefix: str, replace: str, backend: Obj) -> Obj:
            return {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                        "type": "ReplacePrefixMatch", "replacePrefixMatch": replace}}}],
                    "backendRefs": [dict(backend)], "timeouts": {"backendRequest": "0s", "request": "0s"}}
        return {
            "metadata": {"name": route_name(svc), "namespace": ns,
                         "labels": {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "llminferenceservice",
                                    "app.kubernetes.io/component": "llminferenceservice-router"},
                         "ownerReferences": [owner_ref(svc_obj)]},
            "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name,
                                     "namespace": gw_ns}],
                     "rules": [rule(f"{base}/v1/completions", "/v1/completions", pool_backend),
                               rule(f"{base}/v1/chat/completions", "/v1/chat/completions", pool_backend),
                               rule(base, "/", svc_backend)]},
        }

    # --- reconcile ---------------------------------------------------------------------------
    def reconcile(self, key: tuple) -> None:
        _, ns, name = key
        lt = self._lt()
        if lt is None:
            return
        obj = self.store.try_get(lt, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        if not self.kserve_ready():
            return
        spec = obj.get("spec") or {}
        gen = obj["metadata"].get("generation", 1)
        full = (obj.get("status") or {}).get("observedGeneration") != gen
        router = spec.get("router") or {}
        scheduler = "scheduler" in router and router.get("scheduler") is not None
        gw_ns, gw_name = self._gateway_ref(obj)
        stale = self._stale_pools(ns, name)
        upgraded = bool(stale)  # the pool is in the previous release's API: re-render everything
        full = full or upgraded
        for t, p in stale:
            try:
                self.store.delete(t, ns, p["metadata"]["name"])
            except ApiError:
                pass

        try_create(self.store, self.st, {
            "metadata": {"name": tls_secret_name(name), "namespace": ns, "ownerReferences": [owner_ref(obj)],
                         "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "llminferenceservice"}},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(_fake_pem("CERTIFICATE", f"{ns}/{name}").encode()).decode(),
                     "tls.key": base64.b64encode(_fake_pem("PRIVATE KEY", f"{ns}/{name}").encode()).decode()},
        })
        wl = self._ensure_deployment(self.workload_deployment(obj), full)
        self._ensure_service(ns, workload_service_name(name), workload_labels(name),
                             [{"name": "https", "port": 8000, "protocol": "TCP", "targetPort": 8000,
                               "appProtocol": "https"}], obj)
        epp = pool = route = None
        if scheduler:
            epp = self._ensure_deployment(self.epp_deployment(obj), full, replace=upgraded)
            self._ensure_service(ns, epp_service_name(name), epp_labels(name), [
                {"name": "grpc", "port": 9002, "protocol": "TCP", "targetPort": 9002, "appProtocol": "http2"},
                {"name": "grpc-health", "port": 9003, "protocol": "TCP", "targetPort": 9003, "appProtocol": "http2"},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}], obj)
            pool = self._ensure_pool(obj, gw_ns, gw_name, full)
        rtt = rt(self.store, "httproutes", "gateway.networking.k8s.io")
        if "route" in router and router.get("route") is not None and rtt is not None:
            desired = self._route(obj, gw_ns, gw_name, scheduler)
            route = self.store.try_get(rtt, ns, desired["metadata"]["name"])
            if route is None:
                route = try_create(self.store, rtt, desired)
            elif full and route.get("spec") != desired["spec"]:
                route = self.store.mutate(rtt, ns, desired["metadata"]["name"],
                                          lambda o: o.__setitem__("spec", desired["spec"]))
        self._status(obj, lt, wl, epp, pool, route, scheduler, gw_ns, gw_name, gen)

    def _deploy_ready(self, dep: Obj | None) -> tuple[bool, str, str]:
        if dep is None:
            return False, "DeploymentNotFound", "Deployment not created yet."
        st = dep.get("status") or {}
        want = int(dep["spec"].get("replicas", 1) or 0)
        avail = int(st.get("availableReplicas") or 0)
        updated = int(st.get("updatedReplicas") or 0)
        if st.get("observedGeneration") == dep["metadata"].get("generation") and avail >= want and updated >= want:
            return True, "", ""
        prog = get_condition(dep, "Progressing")
        if prog and prog.get("reason") == "ProgressDeadlineExceeded":
            return False, "ProgressDeadlineExceeded", prog.get("message", "")
        return False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."

    def _status(self, obj: Obj, lt: Any, wl: Obj | None, epp: Obj | None, pool: Obj | None, route: Obj | None,
                scheduler: bool, gw_ns: str, gw_name: str, gen: int) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        now = self.ctl.now()
        old = obj.get("status") or {}
        conds = copy.deepcopy(old.get("conditions") or [])
        results: dict[str, tuple[bool, str, str]] = {}
        results["MainWorkloadReady"] = self._deploy_ready(self.store.try_get(
            self.dt, ns, workload_deployment_name(name)) if wl is not None else None)
        results["WorkloadsReady"] = results["MainWorkloadReady"]
        if scheduler:
            results["SchedulerWorkloadReady"] = self._deploy_ready(
                self.store.try_get(self.dt, ns, epp_deployment_name(name)) if epp is not None else None)
            results["InferencePoolReady"] = (True, "", "") if pool is not None else \
                (False, "InferencePoolNotFound", "InferencePool not created yet.")
        router = (obj.get("spec") or {}).get("router") or {}
        if "route" in router:
            accepted = False
            if route is not None:
                for p in (route.get("status") or {}).get("parents") or []:
                    if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in p.get("conditions") or []):
                        accepted = True
            results["HTTPRoutesReady"] = (True, "", "") if accepted else \
                (False, "HTTPRouteNotReady", f"HTTPRoute {route_name(name)} is not accepted by the gateway yet.")
        router_parts = [results[k] for k in ("SchedulerWorkloadReady", "InferencePoolReady", "HTTPRoutesReady")
                        if k in results]
        bad = next((r for r in router_parts if not r[0]), None)
        results["RouterReady"] = (True, "", "") if bad is None else bad
        results["PresetsCombined"] = (True, "", "")
        first_bad = next((results[k] for k in ("MainWorkloadReady", "RouterReady") if not results[k][0]), None)
        results["Ready"] = (True, "", "") if first_bad is None else first_bad
        for t in sorted(results):
            ok, reason, msg = results[t]
            if ok:
                set_condition(conds, t, "True", at=now)
                for c in conds:
                    if c["type"] == t:
                        c.pop("severity", None)
            else:
                set_condition(conds, t, "False", reason, msg, at=now, extra={"severity": "Info"} if t != "Ready" else None)
        conds.sort(key=lambda c: c["type"])
        status: Obj = {"observedGeneration": gen, "conditions": conds}
        g = rt(self.store, "gateways", "gateway.networking.k8s.io")
        gw = self.store.try_get(g, gw_ns, gw_name) if g is not None else None
        addrs = ((gw or {}).get("status") or {}).get("addresses") or []
        if addrs:
            url = f"http://{addrs[0].get('value')}/{ns}/{name}"
            status["url"] = url
            status["addresses"] = [{"url": url}]
        if status != old:
            try:
                self.store.mutate(lt, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass
