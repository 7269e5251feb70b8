"""Server-side tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as `kubectl get`
asks for them: the columns of the apiserver's printers for the built-in kinds and, for custom
resources, Name + the CRD's additionalPrinterColumns (or Name + Age).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable

from ...cloud.podstatus import pod_summary
from ..store import ResourceType, parse_rfc3339

Obj = dict[str, Any]

_NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some "
              "resources may allow a client to request the generation of an appropriate name automatically. "
              "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
              "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
             "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
             "not set this value. It is represented in RFC3339 form and is in UTC.")


def col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name, "priority": priority}


NAME = col("Name", fmt="name", desc=_NAME_DESC)
AGE = col("Age", desc=_AGE_DESC)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        r = s % 60
        return f"{minutes}m" if r == 0 else f"{minutes}m{r}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(ts: str | None, now: float | None = None) -> str:
    t = parse_rfc3339(ts)
    if t is None:
        return "<unknown>"
    return human_duration((now if now is not None else time.time()) - t)


def age(obj: Obj) -> str:
    return since((obj.get("metadata") or {}).get("creationTimestamp"))


def _none(v: Any) -> Any:
    return "<none>" if v in (None, "", []) else v


def _selector_str(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        vals = ",".join(e.get("values") or [])
        if op == "In":
            parts.append(f"{e.get('key')} in ({vals})")
        elif op == "NotIn":
            parts.append(f"{e.get('key')} notin ({vals})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
    return ",".join(parts) or "<none>"


def _containers_images(tpl_spec: Obj) -> tuple[str, str]:
    cs = tpl_spec.get("containers") or []
    return ",".join(c.get("name", "") for c in cs) or "<none>", ",".join(c.get("image", "") for c in cs) or "<none>"


# --- per kind -------------------------------------------------------------------------------------

def _pod_row(o: Obj) -> list:
    s = pod_summary(o)
    restarts = str(s.restarts)
    if s.restarts and s.last_restart:
        restarts = f"{s.restarts} ({since(s.last_restart)} ago)"
    st, spec = o.get("status") or {}, o.get("spec") or {}
    gates = spec.get("readinessGates") or []
    if gates:
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_s = f"{ok}/{len(gates)}"
    else:
        gates_s = "<none>"
    return [o["metadata"]["name"], f"{s.ready}/{s.total}", s.status, restarts, age(o),
            _none(st.get("podIP")), _none(spec.get("nodeName")), _none(st.get("nominatedNodeName")), gates_s]


POD_COLS = [NAME,
            col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
            col("Status", desc="The aggregate status of the containers in this pod."),
            col("Restarts", desc="The number of times the containers in this pod have been restarted and when "
                                 "the last container in this pod has restarted."),
            AGE,
            col("IP", priority=1, desc="IP address allocated to the pod. Routable at least within the cluster."),
            col("Node", priority=1, desc="Name of the node the pod is scheduled on."),
            col("Nominated Node", priority=1, desc="Name of the node the pod is nominated to."),
            col("Readiness Gates", priority=1, desc="Readiness gates of the pod.")]


def _node_row(o: Obj) -> list:
    st, spec, md = o.get("status") or {}, o.get("spec") or {}, o.get("metadata") or {}
    ready = next((c.get("status") for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = {"True": "Ready", "False": "NotReady"}.get(ready or "", "Unknown")
    if spec.get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted({k.split("/", 1)[1] for k in (md.get("labels") or {})
                    if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1]})
    if (md.get("labels") or {}).get("kubernetes.io/role"):
        roles.append(md["labels"]["kubernetes.io/role"])
    info = st.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    return [md["name"], status, ",".join(roles) or "<none>", age(o), info.get("kubeletVersion", ""),
            _none(addrs.get("InternalIP")), _none(addrs.get("ExternalIP")), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "<unknown>")]


NODE_COLS = [NAME, col("Status", desc="The status of the node"), col("Roles", desc="The roles of the node"), AGE,
             col("Version", desc="Kubelet Version reported by the node."),
             col("Internal-IP", priority=1), col("External-IP", priority=1), col("OS-Image", priority=1),
             col("Kernel-Version", priority=1), col("Container-Runtime", priority=1)]


def _deploy_row(o: Obj) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    cs, images = _containers_images(((spec.get("template") or {}).get("spec")) or {})
    desired = spec.get("replicas", 1)
    return [o["metadata"]["name"], f"{int(st.get('readyReplicas') or 0)}/{int(desired or 0)}",
            int(st.get("updatedReplicas") or 0), int(st.get("availableReplicas") or 0), age(o),
            cs, images, _selector_str(spec.get("selector"))]


DEPLOY_COLS = [NAME, col("Ready", desc="Number of the pod with ready state"),
               col("Up-to-date", "integer", desc="Total number of non-terminated pods targeted by this "
                                                 "deployment that have the desired template spec."),
               col("Available", "integer", desc="Total number of available pods (ready for at least "
                                                "minReadySeconds) targeted by this deployment."),
               AGE, col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)]


def _rs_row(o: Obj) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    cs, images = _containers_images(((spec.get("template") or {}).get("spec")) or {})
    return [o["metadata"]["name"], int(spec.get("replicas", 1) or 0), int(st.get("replicas") or 0),
            int(st.get("readyReplicas") or 0), age(o), cs, images, _selector_str(spec.get("selector"))]


RS_COLS = [NAME, col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"), AGE,
           col("Containers", priority=1), col("Images", priority=1), col("Selector", priority=1)]


def _svc_row(o: Obj) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    typ = spec.get("type") or "ClusterIP"
    ext: str
    if typ == "LoadBalancer":
        ing = [i.get("ip") or i.get("hostname") for i in ((st.get("loadBalancer") or {}).get("ingress") or [])]
        ext = ",".join(x for x in ing if x) or "<pending>"
    elif typ == "ExternalName":
        ext = spec.get("externalName") or "<none>"
    else:
        ext = ",".join(spec.get("externalIPs") or []) or "<none>"
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port')}/{proto}")
    sel = spec.get("selector") or {}
    return [o["metadata"]["name"], typ, spec.get("clusterIP") or "<none>", ext, ",".join(ports) or "<none>",
            age(o), ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"]


SVC_COLS = [NAME, col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), AGE,
            col("Selector", priority=1)]


def _event_row(o: Obj) -> list:
    inv = o.get("involvedObject") or {}
    first = o.get("firstTimestamp") or o.get("eventTime") or (o.get("metadata") or {}).get("creationTimestamp")
    last = o.get("lastTimestamp") or first
    count = int(o.get("count") or 1)
    interval = since(last)
    if count > 1:
        interval = f"{since(last)} (x{count} over {since(first)})"
    src = o.get("source") or {}
    source = src.get("component") or o.get("reportingComponent") or ""
    if src.get("host"):
        source += ", " + src["host"]
    return [interval, o.get("type", ""), o.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}", inv.get("fieldPath", ""), source,
            (o.get("message") or "").strip(), since(first), count, o["metadata"]["name"]]


EVENT_COLS = [col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Subobject", priority=1),
              col("Source", priority=1), col("Message"), col("First Seen", priority=1),
              col("Count", "integer", priority=1), {**NAME, "priority": 1}]


def _data_count(o: Obj) -> int:
    return len(o.get("data") or {}) + len(o.get("binaryData") or {}) + len(o.get("stringData") or {})


_BUILTIN: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj], list]]] = {
    ("", "pods"): (POD_COLS, _pod_row),
    ("", "nodes"): (NODE_COLS, _node_row),
    ("apps", "deployments"): (DEPLOY_COLS, _deploy_row),
    ("apps", "replicasets"): (RS_COLS, _rs_row),
    ("", "services"): (SVC_COLS, _svc_row),
    ("", "events"): (EVENT_COLS, _event_row),
    ("", "secrets"): ([NAME, col("Type"), col("Data", "integer"), AGE],
                      lambda o: [o["metadata"]["name"], o.get("type") or "Opaque", _data_count(o), age(o)]),
    ("", "configmaps"): ([NAME, col("Data", "integer"), AGE],
                         lambda o: [o["metadata"]["name"], _data_count(o), age(o)]),
    ("", "namespaces"): ([NAME, col("Status"), AGE],
                         lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), age(o)]),
    ("", "serviceaccounts"): ([NAME, col("Secrets", "integer"), AGE],
                              lambda o: [o["metadata"]["name"], len(o.get("secrets") or []), age(o)]),
    ("", "endpoints"): ([NAME, col("Endpoints"), AGE],
                        lambda o: [o["metadata"]["name"], _endpoints_str(o), age(o)]),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [NAME, col("Created At", "date")],
        lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]),
    ("coordination.k8s.io", "leases"): (
        [NAME, col("Holder"), AGE],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""), age(o)]),
    ("networking.k8s.io", "networkpolicies"): (
        [NAME, col("Pod-Selector"), AGE],
        lambda o: [o["metadata"]["name"], _selector_str((o.get("spec") or {}).get("podSelector")), age(o)]),
}


def _endpoints_str(o: Obj) -> str:
    out = []
    for sub in o.get("subsets") or []:
        ports = [p.get("port") for p in sub.get("ports") or []] or [None]
        for a in sub.get("addresses") or []:
            for p in ports:
                out.append(f"{a.get('ip')}:{p}" if p else str(a.get("ip")))
    if not out:
        return "<none>"
    if len(out) > 3:
        return ",".join(out[:3]) + f" + {len(out) - 3} more..."
    return ",".join(out)


# --- JSONPath (the subset CRD printer columns use) ----------------------------------------------

_TOKEN_RE = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|-?\d+)\]|\[\?\(@((?:\.[A-Za-z0-9_\-]+)+)\s*(==|!=)\s*"
                       r"(?:'([^']*)'|\"([^\"]*)\"|([^)\s]+))\)\]|\.\*")


def jsonpath(obj: Any, path: str) -> list:
    """Evaluate a simple JSONPath (`.a.b`, `[0]`, `[*]`, `.*`, `[?(@.k=='v')]`) -> list of values."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    cur = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list = []
        if m.group(1) is not None:
            for c in cur:
                if isinstance(c, dict) and m.group(1) in c:
                    nxt.append(c[m.group(1)])
        elif m.group(2) is not None:
            for c in cur:
                if isinstance(c, list):
                    if m.group(2) == "*":
                        nxt.extend(c)
                    else:
                        i = int(m.group(2))
                        if -len(c) <= i < len(c):
                            nxt.append(c[i])
        elif m.group(3) is not None:
            keys = m.group(3).strip(".").split(".")
            want = next(g for g in (m.group(5), m.group(6), m.group(7)) if g is not None)
            eq = m.group(4) == "=="
            for c in cur:
                for it in (c if isinstance(c, list) else []):
                    v: Any = it
                    for k in keys:
                        v = v.get(k) if isinstance(v, dict) else None
                    if (str(v) == want if v is not None else False) == eq:
                        nxt.append(it)
        else:  # .*
            for c in cur:
                if isinstance(c, dict):
                    nxt.extend(c.values())
                elif isinstance(c, list):
                    nxt.extend(c)
        cur = nxt
    return cur


def _cr_columns(crd: Obj | None, version: str) -> list[Obj]:
    if not crd:
        return []
    spec = crd.get("spec") or {}
    for v in spec.get("versions") or []:
        if v.get("name") == version:
            return list(v.get("additionalPrinterColumns") or [])
    return list(spec.get("additionalPrinterColumns") or [])


def _cr_cell(o: Obj, c: Obj) -> Any:
    vals = jsonpath(o, c.get("jsonPath", ""))
    typ = c.get("type", "string")
    if not vals:
        return None
    if typ == "date":
        v = vals[0]
        return since(v) if isinstance(v, str) else None
    if len(vals) == 1:
        v = vals[0]
        if typ == "integer" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
        if typ == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if typ == "boolean" and isinstance(v, bool):
            return v
        return v if isinstance(v, str) else json.dumps(v)
    return ",".join(v if isinstance(v, str) else json.dumps(v) for v in vals)


class TableMaker:
    """Builds Table columns + rows for one resource type (CRD columns resolved once)."""

    def __init__(self, rt: ResourceType, crd: Obj | None = None):
        self.rt = rt
        if not rt.custom and rt.key in _BUILTIN:
            self.columns, self._row = _BUILTIN[rt.key]
        elif not rt.custom:
            self.columns, self._row = [NAME, AGE], (lambda o: [o["metadata"]["name"], age(o)])
        else:
            extra = _cr_columns(crd, rt.version)
            if not extra:
                self.columns = [NAME, AGE]
                self._row = lambda o: [o["metadata"]["name"], age(o)]
            else:
                self.columns = [NAME] + [col(c.get("name", ""), c.get("type", "string"), int(c.get("priority", 0)),
                                             c.get("format", ""), c.get("description", ""))
                                         for c in extra]
                self._row = lambda o: [o["metadata"]["name"]] + [_cr_cell(o, c) for c in extra]

    def row(self, obj: Obj, include: str = "Metadata") -> Obj:
        r: Obj = {"cells": self._row(obj)}
        if include == "Object":
            r["object"] = obj
        elif include != "None":
            r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": obj.get("metadata", {})}
        return r

    def table(self, objs: list[Obj], rv: str, include: str = "Metadata",
              api_version: str = "meta.k8s.io/v1") -> Obj:
        return {"kind": "Table", "apiVersion": api_version, "metadata": {"resourceVersion": rv},
                "columnDefinitions": self.columns,
                "rows": [self.row(o, include) for o in objs]}
