"""What the apiserver does to an object written through the API before it is stored: decoding
checks (400), defaulting (the fields `kubectl get -o yaml` shows on a real cluster: imagePullPolicy,
clusterIP, strategy, ...), a few validations (422 Invalid) and status reset on create.

Only requests through the API go through here; the emulator's controllers write the store
directly and fill what they need themselves.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import random
import re
from typing import Any

from ..store import ApiError, ResourceType, Store

Obj = dict[str, Any]

_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_SERVICE_CIDR = ipaddress.ip_network("34.118.224.0/20")  # GKE's default service range
_QUANTITY_KEYS = {"limits", "requests", "capacity", "allocatable", "hard", "used", "allocatedResources"}


def _invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, reason, message) like field.ErrorList."""
    msgs = [f"{f}: {m}" for f, _, m in causes]
    text = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return ApiError(422, "Invalid", f'{rt.kind}{"." + rt.group if rt.group else ""} "{name}" is invalid: {text}',
                    {"name": name, "group": rt.group, "kind": rt.kind,
                     "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes]})


def _decode_error(rt: ResourceType, field: str, typ: str) -> ApiError:
    return ApiError(400, "BadRequest",
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot unmarshal '
                    f"number into Go struct field {field} of type {typ}")


# --- decoding checks ---------------------------------------------------------------------------


def check_type_meta(rt: ResourceType, obj: Any) -> Obj:
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", f"Object '{rt.kind}' is invalid: the body must be a JSON object")
    av, kind = obj.get("apiVersion"), obj.get("kind")
    if av and av != rt.api_version:
        raise ApiError(400, "BadRequest", f"the API version in the data ({av}) does not match the expected API "
                                          f"version ({rt.api_version})")
    if kind and kind != rt.kind:
        raise ApiError(400, "BadRequest", f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                          f'the kind in the data ({kind}) does not match the expected kind ({rt.kind})')
    md = obj.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise ApiError(400, "BadRequest", f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                          "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta")
    for key in ("labels", "annotations"):
        m = (md or {}).get(key)
        if m is None:
            continue
        if not isinstance(m, dict) or any(not isinstance(v, str) for v in m.values()):
            raise _decode_error(rt, f"ObjectMeta.metadata.{key}", "string")
    if rt.key in (("", "configmaps"),):
        for key in ("data",):
            if any(not isinstance(v, str) for v in (obj.get(key) or {}).values()):
                raise _decode_error(rt, f"ConfigMap.{key}", "string")
    return obj


# --- normalization -------------------------------------------------------------------------------


def _quantity(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer():
            return str(int(v))
        milli = round(v * 1000)
        return f"{milli}m"
    return v


def normalize_quantities(obj: Any) -> None:
    """Quantities are strings in the API ("4", "500m"); YAML numbers become strings as the apiserver
    serializes them (the typed client's models require strings)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _QUANTITY_KEYS and isinstance(v, dict):
                for rk, rv in list(v.items()):
                    v[rk] = _quantity(rv)
            else:
                normalize_quantities(v)
    elif isinstance(obj, list):
        for x in obj:
            normalize_quantities(x)


# --- defaults ------------------------------------------------------------------------------------


def _default_container(c: Obj) -> None:
    image = str(c.get("image") or "")
    if "imagePullPolicy" not in c:
        tagless = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = "Always" if tagless or image.endswith(":latest") else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("path", "/")
                pr["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)


def _qos(spec: Obj) -> str:
    cs = spec.get("containers") or []
    reqs = [((c.get("resources") or {}).get("requests") or {}) for c in cs]
    lims = [((c.get("resources") or {}).get("limits") or {}) for c in cs]
    if not any(reqs) and not any(lims):
        return "BestEffort"
    guaranteed = all(lim.get("cpu") and lim.get("memory") and
                     (req.get("cpu") in (None, lim.get("cpu"))) and (req.get("memory") in (None, lim.get("memory")))
                     for req, lim in zip(reqs, lims))
    return "Guaranteed" if guaranteed else "Burstable"


def _allocate_cluster_ip(store: Store) -> str:
    used = set()
    svc = store.type_for("services")
    for o in store.list(svc)[0]:
        ip = (o.get("spec") or {}).get("clusterIP")
        if ip:
            used.add(ip)
    hosts = _SERVICE_CIDR.num_addresses
    rnd = random.Random()
    for _ in range(200):
        ip = str(_SERVICE_CIDR.network_address + rnd.randrange(10, hosts - 1))
        if ip not in used:
            return ip
    raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full")


# a field the defaulting above always sets: its absence marks an object the emulator's controllers
# wrote straight into the store (undefaulted); an update through the API must not add defaults to
# it, or a Deployment's pod template would change and roll its pods
_DEFAULTED_MARK = {("", "pods"): "dnsPolicy", ("apps", "deployments"): "revisionHistoryLimit",
                   ("apps", "replicasets"): "revisionHistoryLimit"}


def apply_defaults(store: Store, rt: ResourceType, obj: Obj, *, create: bool, old: Obj | None = None) -> None:
    if rt.custom:
        return
    key = rt.key
    mark = _DEFAULTED_MARK.get(key)
    if not create and mark and old is not None and mark not in (old.get("spec") or {}):
        normalize_quantities(obj)
        return
    if key == ("", "pods"):
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        if spec.get("serviceAccountName") or spec.get("serviceAccount"):
            spec.setdefault("serviceAccountName", spec.get("serviceAccount"))
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
        else:
            spec["serviceAccountName"] = spec["serviceAccount"] = "default"
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        tol = spec.setdefault("tolerations", [])
        for t in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(isinstance(x, dict) and x.get("key") == t for x in tol):
                tol.append({"key": t, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
        if create:
            obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
    elif key in (("apps", "deployments"), ("apps", "replicasets")):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if key == ("apps", "deployments"):
            spec.setdefault("progressDeadlineSeconds", 600)
            strat = spec.setdefault("strategy", {})
            strat.setdefault("type", "RollingUpdate")
            if strat["type"] == "RollingUpdate":
                ru = strat.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        tpl = spec.setdefault("template", {})
        tpl.setdefault("metadata", {})
        default_pod_spec(tpl.setdefault("spec", {}))
        if create:
            obj.pop("status", None)
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
            if not spec.get("clusterIP"):
                spec["clusterIP"] = old_ip or _allocate_cluster_ip(store)
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
                if spec["type"] in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                    p["nodePort"] = random.randint(30000, 32767)
        if spec["type"] == "LoadBalancer":
            spec.setdefault("externalTrafficPolicy", "Cluster")
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if create:
            obj["status"] = {"loadBalancer": {}}
    elif key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("scope", "Namespaced")
        spec.setdefault("conversion", {"strategy": "None"})
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")
        if create:
            obj.pop("status", None)  # the store gives a new CRD the Established status
    if key != ("apiextensions.k8s.io", "customresourcedefinitions"):
        normalize_quantities(obj)


# --- validation ------------------------------------------------------------------------------------


def _validate_meta(rt: ResourceType, obj: Obj, causes: list) -> None:
    md = obj.get("metadata") or {}
    for k, v in (md.get("labels") or {}).items():
        name = k.rsplit("/", 1)[-1]
        prefix = k.rsplit("/", 1)[0] if "/" in k else ""
        if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name) or \
                (prefix and not _DNS1123_SUBDOMAIN_RE.match(prefix)):
            causes.append(("metadata.labels", "FieldValueInvalid",
                           f'Invalid value: "{k}": name part must consist of alphanumeric characters, \'-\', \'_\' '
                           "or '.', and must start and end with an alphanumeric character"))
        if len(v) > 63 or not _LABEL_VALUE_RE.match(v):
            causes.append(("metadata.labels", "FieldValueInvalid",
                           f'Invalid value: "{v}": a valid label must be an empty string or consist of alphanumeric '
                           "characters, '-', '_' or '.', and must start and end with an alphanumeric character"))


def _validate_pod_spec(spec: Any, path: str, causes: list) -> None:
    if not isinstance(spec, dict):
        causes.append((path, "FieldValueRequired", "Required value"))
        return
    cs = spec.get("containers")
    if not cs:
        causes.append((f"{path}.containers", "FieldValueRequired", "Required value"))
        return
    seen = set()
    for i, c in enumerate(cs if isinstance(cs, list) else []):
        if not isinstance(c, dict):
            continue
        name = c.get("name")
        if not name:
            causes.append((f"{path}.containers[{i}].name", "FieldValueRequired", "Required value"))
        elif not _DNS1123_LABEL_RE.match(str(name)):
            causes.append((f"{path}.containers[{i}].name", "FieldValueInvalid",
                           f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                           "alphanumeric characters or '-', and must start and end with an alphanumeric character"))
        elif name in seen:
            causes.append((f"{path}.containers[{i}].name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not c.get("image"):
            causes.append((f"{path}.containers[{i}].image", "FieldValueRequired", "Required value"))


def _labels_match(sel: Obj, labels: dict) -> bool:
    from ..store import match_label_selector
    return match_label_selector(sel, labels)


def validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """422 Invalid for objects a real apiserver refuses (the common mistakes)."""
    name = (obj.get("metadata") or {}).get("name", "")
    causes: list[tuple[str, str, str]] = []
    _validate_meta(rt, obj, causes)
    key = rt.key
    if rt.custom:
        pass
    elif key == ("", "pods"):
        _validate_pod_spec(obj.get("spec"), "spec", causes)
        if old is not None:
            oc = [(c.get("name"), c.get("image")) for c in (old.get("spec") or {}).get("containers") or []]
            nc = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
            if [n for n, _ in oc] != nc:
                causes.append(("spec", "FieldValueForbidden",
                               "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                               "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                               "(allow it to be set to 1 if it was previously negative)"))
    elif key in (("apps", "deployments"), ("apps", "replicasets")):
        spec = obj.get("spec") or {}
        sel = spec.get("selector")
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        tpl = spec.get("template") or {}
        labels = (tpl.get("metadata") or {}).get("labels") or {}
        if sel and (sel.get("matchLabels") or sel.get("matchExpressions")) and not _labels_match(sel, labels):
            causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                           f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
        _validate_pod_spec(tpl.get("spec"), "spec.template.spec", causes)
        r = spec.get("replicas")
        if isinstance(r, int) and r < 0:
            causes.append(("spec.replicas", "FieldValueInvalid",
                           f"Invalid value: {r}: must be greater than or equal to 0"))
        if old is not None and (old.get("spec") or {}).get("selector") != sel:
            causes.append(("spec.selector", "FieldValueInvalid",
                           f"Invalid value: {sel!r}: field is immutable"))
    elif key == ("", "services"):
        spec = obj.get("spec") or {}
        if spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None" \
                and not spec.get("ports"):
            causes.append(("spec.ports", "FieldValueRequired", "Required value"))
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port") if isinstance(p, dict) else None
            if not isinstance(port, int) or not 0 < port < 65536:
                causes.append((f"spec.ports[{i}].port", "FieldValueInvalid",
                               f"Invalid value: {port}: must be between 1 and 65535, inclusive"))
        if len(spec.get("ports") or []) > 1 and any(not p.get("name") for p in spec.get("ports") or []):
            causes.append(("spec.ports[0].name", "FieldValueRequired", "Required value"))
    elif key == ("", "secrets"):
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(v), validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "BadRequest",
                               f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                               f"input byte 0 (data[{k}])") from None
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group") or ""
        if not group:
            causes.append(("spec.group", "FieldValueRequired", "Required value"))
        if not names.get("plural"):
            causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
        if not names.get("kind"):
            causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
        if names.get("plural") and group and name != f"{names['plural']}.{group}":
            causes.append(("metadata.name", "FieldValueInvalid",
                           f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(("spec.versions", "FieldValueRequired", "Required value: must have exactly one version "
                                                                   "marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(("spec.versions", "FieldValueInvalid",
                           "Invalid value: must have exactly one version marked as storage version"))
    if causes:
        raise _invalid(rt, name, causes)
