"""Legacy discovery documents (/api, /api/v1, /apis, /apis/G, /apis/G/V) and /version, built live
from the store's types, so a CRD's kind appears as soon as the CRD exists.

Aggregated discovery (apidiscovery.k8s.io/v2) is not served: clients that ask for it (kubectl)
get the legacy documents with `Content-Type: application/json` and fall back to them.
"""

from __future__ import annotations

import re
from typing import Any

from ..store import ResourceType

Obj = dict[str, Any]

GIT_VERSION = "v1.33.5-gke.1080000"  # the simulated GKE master version (sim/cluster.py GKE_VERSION)

# subresources discovery lists beyond what the store's types carry
_EXTRA_SUBRESOURCES = {
    ("", "pods"): ("proxy", "binding"),
    ("", "namespaces"): ("finalize",),
    ("", "nodes"): ("proxy",),
}

_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "eviction": ["create"],
    "binding": ["create"],
    "finalize": ["update"],
    "proxy": ["create", "delete", "get", "patch", "update"],
}

_SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "", "Binding"),
}


def version_info(git_version: str = GIT_VERSION) -> Obj:
    m = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("1", "32")
    return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(0, int(minor) - 1)),
            "gitVersion": git_version, "gitCommit": "5f8b6a7c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6",
            "gitTreeState": "clean", "buildDate": "2025-04-15T09:12:00Z", "goVersion": "go1.23.6 X:boringcrypto",
            "compiler": "gc", "platform": "linux/amd64"}


def version_priority(v: str) -> tuple:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first; others last, by name."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, v)


def groups(types: list[ResourceType]) -> dict[str, list[str]]:
    """group -> versions (preferred first); core ("") included."""
    out: dict[str, set[str]] = {}
    for rt in types:
        out.setdefault(rt.group, set()).add(rt.version)
    return {g: sorted(vs, key=version_priority) for g, vs in out.items()}


def api_versions() -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.128.0.2:443"}]}


def _group_doc(name: str, versions: list[str]) -> Obj:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(types: list[ResourceType]) -> Obj:
    gs = groups(types)
    gs.pop("", None)
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in sorted(gs.items())]}


def api_group(types: list[ResourceType], group: str) -> Obj | None:
    vs = groups(types).get(group)
    if not vs or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, vs)}


def resource_list(types: list[ResourceType], group: str, version: str) -> Obj | None:
    rts = [rt for rt in types if rt.group == group and rt.version == version]
    if not rts:
        return None
    resources: list[Obj] = []
    for rt in sorted(rts, key=lambda r: r.plural):
        res: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": list(rt.verbs)}
        if rt.short_names:
            res["shortNames"] = list(rt.short_names)
        if rt.categories:
            res["categories"] = list(rt.categories)
        resources.append(res)
        subs = list(rt.subresources) + [s for s in _EXTRA_SUBRESOURCES.get(rt.key, ()) if s not in rt.subresources]
        for sub in sorted(subs):
            sres: Obj = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                         "kind": rt.kind, "verbs": _SUB_VERBS.get(sub, ["get"])}
            if sub in _SUB_KIND:
                g, v, k = _SUB_KIND[sub]
                if g:
                    sres["group"], sres["version"] = g, v
                sres["kind"] = k
            if sub == "proxy":
                sres["kind"] = f"{rt.kind}ProxyOptions"
            if sub == "log":
                sres["kind"] = "Pod"
            resources.append(sres)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}
