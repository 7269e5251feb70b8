"""The guide's step 4: the operators the upstream rhaii-on-xks installer deploys, played over
~10 simulated minutes, and Istio's Gateway API controller.

Install timeline (sim seconds after `install_operators()`; the start time is kept as the
annotation `sim.rhaii-tui.io/operators-install-started` on the cert-manager-operator namespace):
    0    cert-manager-operator (namespace cert-manager-operator)
    25   cert-manager CRDs; cert-manager, cainjector, webhook (app.kubernetes.io/instance=cert-manager)
    110  Gateway API + Istio CRDs; istio-system; Sail operator (servicemesh-operator3)
    150  Istio CR "default"; istiod (app=istiod)
    260  openshift-lws-operator (name=openshift-lws-operator) + LeaderWorkerSet CRD
    310  lws-controller-manager
    360  InferencePool (both groups) + KServe CRDs; opendatahub; kserve-controller-manager
         (control-plane=kserve-controller-manager); the well-known LLMInferenceServiceConfigs
    480  Gateway opendatahub/inference-gateway (class istio)
Istio (once istiod is Ready) creates the GatewayClass "istio" and, per Gateway, the Deployment and
LoadBalancer Service `<gateway>-istio` whose pods carry gateway.networking.k8s.io/gateway-name;
the load balancer gets its address ~100 s after the gateway pod is Ready: then the Gateway's
status has address 127.0.0.1 (IPAddress) and Programmed=True (about 10 minutes after the start).
HTTPRoutes parented to a Gateway get Accepted/ResolvedRefs parent status.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from .. import crds
from ..store import ApiError, parse_rfc3339
from .common import (
    GATEWAY_ADDRESS,
    GATEWAY_CLASS,
    GATEWAY_CONTROLLER,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    OPERATORS_ANNOTATION,
    Obj,
    owner_ref,
    pod_ready,
    rt,
    set_condition,
    stable_int,
    try_create,
)

ISTIO_VERSION = "1.27.5"
KSERVE_VERSION = "3.4.0-ea.1"  # what the upstream installer pins (values.yaml kserveChartVersion)
LB_DELAY = 100.0  # sim seconds from a Ready gateway pod to its load balancer address
STEP_OFFSETS = (0.0, 25.0, 110.0, 150.0, 260.0, 310.0, 360.0, 480.0)
INSTALL_NS = "cert-manager-operator"


def deployment(ns: str, name: str, labels: dict[str, str], image: str, *, args: list[str] | None = None,
               ports: list[Obj] | None = None, cpu: str = "100m", memory: str = "128Mi", replicas: int = 1,
               extra_pod_labels: dict[str, str] | None = None, readiness: Obj | None = None,
               service_account: str | None = None) -> Obj:
    container: Obj = {"name": name if len(name) < 40 else "manager", "image": image,
                      "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    if args:
        container["args"] = args
    if ports:
        container["ports"] = ports
    if readiness:
        container["readinessProbe"] = readiness
    pod_labels = dict(labels)
    pod_labels.update(extra_pod_labels or {})
    spec: Obj = {"containers": [container]}
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": pod_labels}, "spec": spec},
        },
    }


def _cm_labels(name: str, component: str) -> dict[str, str]:
    return {"app": name, "app.kubernetes.io/instance": "cert-manager", "app.kubernetes.io/name": name,
            "app.kubernetes.io/component": component}


class Operators:
    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.nst = self.store.type_for("namespaces")
        self.crdt = self.store.type_for("customresourcedefinitions", "apiextensions.k8s.io")
        self.dt = self.store.type_for("deployments", "apps")
        self._start: float | None = None
        self._done: set[int] = set()
        self._dirty = False
        ctl.register("ops", self.reconcile)
        self._steps: list[Callable[[], None]] = [
            self._cert_manager_operator, self._cert_manager, self._istio_operator, self._istiod,
            self._lws_operator, self._lws_controller, self._kserve, self._gateway,
        ]

    # --- plumbing ----------------------------------------------------------------------------
    def resync(self) -> None:
        ns = self.store.try_get(self.nst, None, INSTALL_NS)
        if ns is not None:
            v = (ns["metadata"].get("annotations") or {}).get(OPERATORS_ANNOTATION)
            try:
                self._start = float(v) if v else None
            except ValueError:
                self._start = None
        if self._start is not None:
            self.ctl.enqueue(("ops",))

    def shift(self, dt: float) -> None:
        if self._start is not None:
            self._start -= dt
            self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self._save()

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        return

    def _save(self) -> None:
        if self._start is None:
            return
        if self.ctl.fast_forwarding:
            self._dirty = True
            return
        v = repr(self._start)

        def put(o: Obj) -> None:
            o["metadata"].setdefault("annotations", {})[OPERATORS_ANNOTATION] = v
        try:
            self.store.mutate(self.nst, None, INSTALL_NS, put)
        except ApiError:
            pass

    @property
    def started(self) -> bool:
        return self._start is not None

    def begin_install(self) -> None:
        if self._start is not None:
            self.ctl.enqueue(("ops",))
            return
        self._start = self.ctl.now()
        self._ns(INSTALL_NS)
        self._save()
        self.ctl.enqueue(("ops",))

    def reconcile(self, key: tuple) -> None:
        if self._start is None:
            return
        elapsed = (self.ctl.now() - self._start) * self.ctl.speed
        for i, off in enumerate(STEP_OFFSETS):
            if i in self._done:
                continue
            if elapsed + 1e-6 < off:
                self.ctl.wake_at(("ops",), self._start + off / self.ctl.speed)
                break
            self._done.add(i)
            try:
                self._steps[i]()
            except ApiError:
                pass

    # --- helpers -----------------------------------------------------------------------------
    def _ns(self, name: str, labels: dict[str, str] | None = None) -> None:
        md: Obj = {"name": name}
        if labels:
            md["labels"] = labels
        try_create(self.store, self.nst, {"metadata": md})

    def _crds(self, bundle: str) -> None:
        for c in crds.bundle(bundle):
            try_create(self.store, self.crdt, c)
            self._accept_crd(c["metadata"]["name"])

    def _accept_crd(self, name: str) -> None:
        cur = self.store.try_get(self.crdt, None, name)
        if cur is None or (cur.get("status") or {}).get("acceptedNames"):
            return
        now = self.ctl.now()

        def put(o: Obj) -> None:
            conds: list[Obj] = []
            set_condition(conds, "NamesAccepted", "True", "NoConflicts", "no conflicts found", at=now)
            set_condition(conds, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted",
                          at=now)
            o["status"] = {"acceptedNames": copy.deepcopy(o["spec"]["names"]), "conditions": conds,
                           "storedVersions": [v["name"] for v in o["spec"]["versions"] if v.get("storage")]}
        try:
            self.store.mutate(self.crdt, None, name, put, subresource="status")
        except ApiError:
            pass

    def _deploy(self, obj: Obj) -> None:
        try_create(self.store, self.dt, obj)

    # --- steps -------------------------------------------------------------------------------
    def _cert_manager_operator(self) -> None:
        self._ns(INSTALL_NS)
        self._deploy(deployment(INSTALL_NS, "cert-manager-operator-controller-manager",
                                {"name": "cert-manager-operator"},
                                "quay.io/openshift/origin-cert-manager-operator:1.17"))

    def _cert_manager(self) -> None:
        self._crds("cert-manager")
        self._ns("cert-manager")
        self._deploy(deployment("cert-manager", "cert-manager", _cm_labels("cert-manager", "controller"),
                                "quay.io/jetstack/cert-manager-controller:v1.17.2",
                                ports=[{"containerPort": 9402, "name": "http-metrics"}]))
        self._deploy(deployment("cert-manager", "cert-manager-cainjector", _cm_labels("cainjector", "cainjector"),
                                "quay.io/jetstack/cert-manager-cainjector:v1.17.2"))
        self._deploy(deployment("cert-manager", "cert-manager-webhook", _cm_labels("webhook", "webhook"),
                                "quay.io/jetstack/cert-manager-webhook:v1.17.2",
                                ports=[{"containerPort": 10250, "name": "https"}]))

    def _istio_operator(self) -> None:
        self._crds("gateway-api")
        self._crds("istio")
        self._ns("istio-system")
        self._deploy(deployment("istio-system", "servicemesh-operator3",
                                {"app.kubernetes.io/name": "sail-operator", "control-plane": "sail-operator"},
                                "quay.io/sail-dev/sail-operator:1.27.0"))

    def _istiod(self) -> None:
        it = rt(self.store, "istios", "sailoperator.io")
        try_create(self.store, it, {"metadata": {"name": "default"},
                                    "spec": {"namespace": "istio-system", "version": f"v{ISTIO_VERSION}",
                                             "profile": "default", "updateStrategy": {"type": "InPlace"}}})
        self._deploy(deployment("istio-system", "istiod", {"app": "istiod", "istio": "pilot",
                                                            "istio.io/rev": "default"},
                                f"gcr.io/istio-release/pilot:{ISTIO_VERSION}",
                                args=["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info",
                                      "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"],
                                ports=[{"containerPort": 8080, "name": "http-debug"},
                                       {"containerPort": 15010, "name": "grpc-xds"},
                                       {"containerPort": 15012, "name": "tls-xds"},
                                       {"containerPort": 15017, "name": "https-webhooks"}],
                                cpu="500m", memory="2Gi", service_account="istiod"))
        svc = self.store.type_for("services")
        try_create(self.store, svc, {
            "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod", "istio": "pilot"}},
            "spec": {"type": "ClusterIP", "selector": {"app": "istiod", "istio": "pilot"},
                     "clusterIP": _cluster_ip("istio-system/istiod"),
                     "ports": [{"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
                               {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                               {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
                               {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014}]},
        })

    def _lws_operator(self) -> None:
        self._ns("openshift-lws-operator")
        self._crds("lws")
        self._deploy(deployment("openshift-lws-operator", "openshift-lws-operator",
                                {"name": "openshift-lws-operator"},
                                "quay.io/openshift/origin-lws-operator:1.0"))

    def _lws_controller(self) -> None:
        self._deploy(deployment("openshift-lws-operator", "lws-controller-manager",
                                {"control-plane": "controller-manager", "app.kubernetes.io/name": "lws"},
                                "registry.k8s.io/lws/lws:v0.7.0", args=["--zap-log-level=2"]))

    def _kserve(self) -> None:
        self._crds("inference-extension")
        self._crds("kserve")
        self._ns(GATEWAY_NAMESPACE)
        ctrl = deployment(GATEWAY_NAMESPACE, "kserve-controller-manager",
                          {"control-plane": "kserve-controller-manager",
                           "app.kubernetes.io/name": "kserve-controller-manager"},
                          "quay.io/opendatahub/kserve-controller:v0.15",
                          args=["--metrics-addr=127.0.0.1:8080", "--leader-elect"],
                          ports=[{"containerPort": 9443, "name": "webhook-server"}],
                          cpu="100m", memory="300Mi", service_account="kserve-controller-manager")
        # the chart's release (scenario knob kserve_version): which InferencePool API KServe writes
        ctrl["metadata"]["labels"]["app.kubernetes.io/version"] = self.ctl.knob("kserve_version", KSERVE_VERSION)
        self._deploy(ctrl)
        cfg = rt(self.store, "llminferenceserviceconfigs", "serving.kserve.io")
        for name, spec in (
            ("kserve-config-llm-template", {"template": {"containers": [{"name": "main", "image": "vllm"}]}}),
            ("kserve-config-llm-scheduler", {"router": {"scheduler": {}}}),
            ("kserve-config-llm-router-route", {"router": {"route": {}}}),
        ):
            try_create(self.store, cfg, {"metadata": {"name": name, "namespace": GATEWAY_NAMESPACE}, "spec": spec})

    def _gateway(self) -> None:
        gw = rt(self.store, "gateways", "gateway.networking.k8s.io")
        try_create(self.store, gw, {
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {"gatewayClassName": GATEWAY_CLASS,
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                    "allowedRoutes": {"namespaces": {"from": "All"}}}],
                     "infrastructure": {"labels": {"serving.kserve.io/gateway": "kserve-ingress-gateway"}}},
        })


def _cluster_ip(key: str) -> str:
    n = stable_int("svc", key)
    return f"34.118.{226 + n % 28}.{n // 28 % 250 + 2}"


class GatewayController:
    """Istio as a Gateway API implementation (class "istio")."""

    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.pt = self.store.type_for("pods")
        self.dt = self.store.type_for("deployments", "apps")
        self.svct = self.store.type_for("services")
        self._lb_at: dict[tuple[str, str], float] = {}
        ctl.register("gw", self.reconcile_gateway)
        ctl.register("route", self.reconcile_route)
        ctl.register("gwclass", self.reconcile_class)

    def _gw_rt(self):
        return rt(self.store, "gateways", "gateway.networking.k8s.io")

    def _route_rt(self):
        return rt(self.store, "httproutes", "gateway.networking.k8s.io")

    def resync(self) -> None:
        self.ctl.enqueue(("gwclass",))
        g = self._gw_rt()
        if g is not None:
            for o in self.store.list(g)[0]:
                self.ctl.enqueue(("gw", o["metadata"]["namespace"], o["metadata"]["name"]))
        r = self._route_rt()
        if r is not None:
            for o in self.store.list(r)[0]:
                self.ctl.enqueue(("route", o["metadata"]["namespace"], o["metadata"]["name"]))

    def shift(self, dt: float) -> None:
        self._lb_at = {k: t - dt for k, t in self._lb_at.items()}

    def flush(self) -> None:
        pass

    def _all_gateways(self) -> None:
        g = self._gw_rt()
        if g is not None:
            for o in self.store.list(g)[0]:
                self.ctl.enqueue(("gw", o["metadata"]["namespace"], o["metadata"]["name"]))

    def _all_routes(self) -> None:
        r = self._route_rt()
        if r is not None:
            for o in self.store.list(r)[0]:
                self.ctl.enqueue(("route", o["metadata"]["namespace"], o["metadata"]["name"]))

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        group, plural = rtype.group, rtype.plural
        if group == "gateway.networking.k8s.io" and plural == "gateways":
            self.ctl.enqueue(("gw", md["namespace"], md["name"]))
            if etype != "MODIFIED" or (old or {}).get("spec") != obj.get("spec"):
                self._all_routes()
        elif group == "gateway.networking.k8s.io" and plural == "httproutes":
            if etype == "MODIFIED" and old is not None and old.get("spec") == obj.get("spec"):
                return
            self.ctl.enqueue(("route", md["namespace"], md["name"]))
            self._all_gateways()
        elif group == "gateway.networking.k8s.io" and plural == "gatewayclasses":
            self.ctl.enqueue(("gwclass",))
        elif rtype.key == self.pt.key:
            labels = md.get("labels") or {}
            if labels.get("app") == "istiod" and md.get("namespace") == "istio-system":
                if old is None or pod_ready(old) != pod_ready(obj) or etype == "DELETED":
                    self.ctl.enqueue(("gwclass",))
                    self._all_gateways()
                    self._all_routes()
        elif rtype.key == self.dt.key:
            labels = md.get("labels") or {}
            name = labels.get("gateway.networking.k8s.io/gateway-name")
            if name:
                self.ctl.enqueue(("gw", md["namespace"], name))
        elif rtype.key == self.svct.key or (plural == "inferencepools"):
            if etype != "MODIFIED":
                self._all_routes()
        elif plural == "customresourcedefinitions" and etype == "ADDED":
            if (obj.get("spec") or {}).get("group") == "gateway.networking.k8s.io":
                self.ctl.enqueue(("gwclass",))

    def istiod_ready(self) -> bool:
        return any(pod_ready(p) for p in self.store.select(self.pt, "istio-system", {"app": "istiod"}))

    # --- GatewayClass ------------------------------------------------------------------------
    def reconcile_class(self, key: tuple) -> None:
        gct = rt(self.store, "gatewayclasses", "gateway.networking.k8s.io")
        if gct is None or not self.istiod_ready():
            return
        cur = try_create(self.store, gct, {
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": GATEWAY_CONTROLLER,
                     "description": "The default Istio GatewayClass"},
        })
        if cur is None:
            return
        conds = copy.deepcopy((cur.get("status") or {}).get("conditions") or [])
        set_condition(conds, "Accepted", "True", "Accepted", "Handled by Istio controller", at=self.ctl.now(),
                      extra={"observedGeneration": cur["metadata"].get("generation", 1)})
        status = {"conditions": conds}
        if status != cur.get("status"):
            try:
                self.store.mutate(gct, None, GATEWAY_CLASS, lambda o: o.__setitem__("status", status),
                                  subresource="status")
            except ApiError:
                pass
        self._all_gateways()

    # --- Gateway -----------------------------------------------------------------------------
    def _attached_routes(self, gw: Obj) -> int:
        r = self._route_rt()
        if r is None:
            return 0
        n = 0
        for route in self.store.list(r)[0]:
            for ref in (route.get("spec") or {}).get("parentRefs") or []:
                if ref.get("name") == gw["metadata"]["name"] and \
                        (ref.get("namespace") or route["metadata"]["namespace"]) == gw["metadata"]["namespace"]:
                    n += 1
                    break
        return n

    def reconcile_gateway(self, key: tuple) -> None:
        _, ns, name = key
        g = self._gw_rt()
        if g is None:
            return
        gw = self.store.try_get(g, ns, name)
        if gw is None:
            self._lb_at.pop((ns, name), None)
            return
        if (gw.get("spec") or {}).get("gatewayClassName") != GATEWAY_CLASS or not self.istiod_ready():
            return
        dep_name = f"{name}-istio"
        labels = {"gateway.networking.k8s.io/gateway-name": name, "istio.io/gateway-name": name}
        pod_labels = dict(labels)
        pod_labels.update({"sidecar.istio.io/inject": "false", "service.istio.io/canonical-name": dep_name,
                           "service.istio.io/canonical-revision": "latest", "istio.io/dataplane-mode": "none"})
        pod_labels.update(((gw.get("spec") or {}).get("infrastructure") or {}).get("labels") or {})
        dep = deployment(ns, dep_name, labels, f"gcr.io/istio-release/proxyv2:{ISTIO_VERSION}",
                         args=["proxy", "router", "--domain", f"{ns}.svc.cluster.local", "--proxyLogLevel=warning",
                               "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
                         ports=[{"containerPort": 15021, "name": "status-port"},
                                {"containerPort": 15090, "name": "http-envoy-prom"}],
                         extra_pod_labels=pod_labels, service_account=dep_name,
                         readiness={"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                                    "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30})
        dep["spec"]["template"]["spec"]["containers"][0]["name"] = "istio-proxy"
        dep["metadata"]["ownerReferences"] = [owner_ref(gw)]
        try_create(self.store, self.dt, dep)
        ports = [{"name": f"{lst.get('protocol', 'HTTP').lower()}", "port": int(lst.get("port", 80)),
                  "protocol": "TCP", "targetPort": int(lst.get("port", 80)),
                  "nodePort": 30000 + stable_int(ns, name, lst.get("port")) % 2767}
                 for lst in (gw.get("spec") or {}).get("listeners") or []]
        ports.insert(0, {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021,
                         "nodePort": 30000 + stable_int(ns, name, 15021) % 2767})
        svc = try_create(self.store, self.svct, {
            "metadata": {"name": dep_name, "namespace": ns, "labels": dict(labels),
                         "ownerReferences": [owner_ref(gw)]},
            "spec": {"type": "LoadBalancer", "selector": {"gateway.networking.k8s.io/gateway-name": name},
                     "clusterIP": _cluster_ip(f"{ns}/{dep_name}"), "ports": ports,
                     "externalTrafficPolicy": "Cluster", "sessionAffinity": "None"},
            "status": {"loadBalancer": {}},
        })
        d = self.store.try_get(self.dt, ns, dep_name) or {}
        available = int((d.get("status") or {}).get("availableReplicas") or 0) > 0
        now = self.ctl.now()
        programmed = False
        if available:
            lb = self._lb_at.get((ns, name))
            if lb is None:
                cur = next((c for c in (gw.get("status") or {}).get("conditions") or []
                            if c.get("type") == "Programmed" and c.get("status") == "True"), None)
                lb = parse_rfc3339(cur["lastTransitionTime"]) if cur else now + LB_DELAY / self.ctl.speed
                self._lb_at[(ns, name)] = lb
            if now + 1e-9 >= lb:
                programmed = True
            else:
                self.ctl.wake_at(("gw", ns, name), lb)
        else:
            self._lb_at.pop((ns, name), None)
        if svc is not None and programmed and not ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            try:
                self.store.mutate(self.svct, ns, dep_name, lambda o: o.__setitem__(
                    "status", {"loadBalancer": {"ingress": [{"ip": GATEWAY_ADDRESS, "ipMode": "VIP"}]}}),
                    subresource="status")
            except ApiError:
                pass
        gen = gw["metadata"].get("generation", 1)
        conds = copy.deepcopy((gw.get("status") or {}).get("conditions") or [])
        set_condition(conds, "Accepted", "True", "Accepted", "Resource accepted", at=now,
                      extra={"observedGeneration": gen})
        if programmed:
            set_condition(conds, "Programmed", "True", "Programmed", "Resource programmed, assigned to service(s) "
                          f"{dep_name}.{ns}.svc.cluster.local:80", at=self._lb_at.get((ns, name), now),
                          extra={"observedGeneration": gen})
        else:
            set_condition(conds, "Programmed", "False", "AddressNotAssigned",
                          "Assigned to service(s) " f"{dep_name}.{ns}.svc.cluster.local:80, but failed to assign to "
                          "all requested addresses: address pending for hostname "
                          f'"{dep_name}.{ns}.svc.cluster.local"', at=now, extra={"observedGeneration": gen})
        attached = self._attached_routes(gw)
        listeners = []
        for lst in (gw.get("spec") or {}).get("listeners") or []:
            lconds: list[Obj] = []
            old_l = next((x for x in (gw.get("status") or {}).get("listeners") or [] if x.get("name") == lst.get("name")),
                         None)
            if old_l:
                lconds = copy.deepcopy(old_l.get("conditions") or [])
            for t, reason in (("Accepted", "Accepted"), ("NoConflicts", "NoConflicts"), ("Programmed", "Programmed"),
                              ("ResolvedRefs", "ResolvedRefs")):
                ok = "True" if (t != "Programmed" or programmed) else "False"
                set_condition(lconds, t, ok, reason if ok == "True" else "Pending",
                              "No errors found" if ok == "True" else "Waiting for an address", at=now,
                              extra={"observedGeneration": gen})
            listeners.append({"name": lst.get("name"), "attachedRoutes": attached, "conditions": lconds,
                              "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                                 {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]})
        status: Obj = {"conditions": conds, "listeners": listeners}
        if programmed:
            status["addresses"] = [{"type": "IPAddress", "value": GATEWAY_ADDRESS}]
        if status != gw.get("status"):
            try:
                self.store.mutate(g, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass

    # --- HTTPRoute ---------------------------------------------------------------------------
    def reconcile_route(self, key: tuple) -> None:
        _, ns, name = key
        r = self._route_rt()
        g = self._gw_rt()
        if r is None or g is None:
            return
        route = self.store.try_get(r, ns, name)
        if route is None or not self.istiod_ready():
            return
        now = self.ctl.now()
        gen = route["metadata"].get("generation", 1)
        # backends
        resolved, why = True, ""
        for rule in (route.get("spec") or {}).get("rules") or []:
            for b in rule.get("backendRefs") or []:
                kind = b.get("kind", "Service")
                bns = b.get("namespace") or ns
                if kind == "Service":
                    ok = self.store.try_get(self.svct, bns, b.get("name", "")) is not None
                elif kind == "InferencePool":
                    grp = b.get("group") or "inference.networking.k8s.io"
                    pt = rt(self.store, "inferencepools", grp)
                    ok = pt is not None and self.store.try_get(pt, bns, b.get("name", "")) is not None
                else:
                    ok = False
                if not ok:
                    resolved, why = False, f"backend({b.get('name')}.{bns}) not found"
        parents = []
        old_parents = (route.get("status") or {}).get("parents") or []
        for ref in (route.get("spec") or {}).get("parentRefs") or []:
            if ref.get("kind", "Gateway") != "Gateway":
                continue
            gns = ref.get("namespace") or ns
            gw = self.store.try_get(g, gns, ref.get("name", ""))
            if gw is None or (gw.get("spec") or {}).get("gatewayClassName") != GATEWAY_CLASS:
                continue
            pref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": ref.get("name"),
                    "namespace": gns}
            if ref.get("sectionName"):
                pref["sectionName"] = ref["sectionName"]
            old = next((p for p in old_parents if p.get("parentRef", {}).get("name") == ref.get("name")
                        and p.get("parentRef", {}).get("namespace", gns) == gns), None)
            conds = copy.deepcopy(old.get("conditions") or []) if old else []
            set_condition(conds, "Accepted", "True", "Accepted", "Route was valid", at=now,
                          extra={"observedGeneration": gen})
            if resolved:
                set_condition(conds, "ResolvedRefs", "True", "ResolvedRefs", "All references resolved", at=now,
                              extra={"observedGeneration": gen})
            else:
                set_condition(conds, "ResolvedRefs", "False", "BackendNotFound", why, at=now,
                              extra={"observedGeneration": gen})
            parents.append({"parentRef": pref, "controllerName": GATEWAY_CONTROLLER, "conditions": conds})
        status = {"parents": parents}
        if status != route.get("status"):
            try:
                self.store.mutate(r, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass
