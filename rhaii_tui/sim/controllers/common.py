"""Helpers shared by the simulated controllers: types, owner references, conditions, quantities,
deterministic randomness, timestamps."""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import random
from decimal import Decimal
from typing import Any, Iterable

from ..store import ApiError, ResourceType, Store, now_rfc3339

Obj = dict[str, Any]

# Where the emulator keeps its own bookkeeping on objects (documented, sim-only).
ANNOTATION_PREFIX = "sim.rhaii-tui.io/"
KUBELET_ANNOTATION = ANNOTATION_PREFIX + "kubelet"
OPERATORS_ANNOTATION = ANNOTATION_PREFIX + "operators-install-started"

GATEWAY_NAME = "inference-gateway"
GATEWAY_NAMESPACE = "opendatahub"
GATEWAY_CLASS = "istio"
GATEWAY_CONTROLLER = "istio.io/gateway-controller"
GATEWAY_ADDRESS = "127.0.0.1"


def rt(store: Store, plural: str, group: str = "") -> ResourceType | None:
    """The resource type, or None while its CRD is missing."""
    return store.resolve(group, None, plural)


def ts(t: float | None = None) -> str:
    return now_rfc3339(t)


def fmt_micro(t: float) -> str:
    """RFC 3339 with microseconds (metav1.MicroTime)."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj: Obj, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid for r in obj.get("metadata", {}).get("ownerReferences") or [])


def labels_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def key_of(obj: Obj) -> tuple[str, str]:
    md = obj["metadata"]
    return (md.get("namespace") or "", md["name"])


# --- conditions --------------------------------------------------------------------------------


def set_condition(conds: list[Obj], type_: str, status: str, reason: str | None = None,
                  message: str | None = None, at: float | None = None, *, probe_times: bool = False,
                  update_time: bool = False, extra: Obj | None = None) -> list[Obj]:
    """Upsert a condition; lastTransitionTime only moves when the status changes."""
    t = ts(at)
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = t
                if update_time:
                    c["lastUpdateTime"] = t
            if update_time and (c.get("reason") != reason or c.get("message") != message):
                c["lastUpdateTime"] = t
            c["status"] = status
            if reason is not None:
                c["reason"] = reason
            else:
                c.pop("reason", None)
            if message is not None:
                c["message"] = message
            else:
                c.pop("message", None)
            if extra:
                c.update(extra)
            return conds
    c: Obj = {"type": type_, "status": status}
    if probe_times:
        c["lastProbeTime"] = None
    if update_time:
        c["lastUpdateTime"] = t
    c["lastTransitionTime"] = t
    if reason is not None:
        c["reason"] = reason
    if message is not None:
        c["message"] = message
    if extra:
        c.update(extra)
    conds.append(c)
    return conds


def get_condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_true(obj: Obj, type_: str) -> bool:
    c = get_condition(obj, type_)
    return bool(c and c.get("status") == "True")


def pod_ready(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and is_true(pod, "Ready")


def node_ready(node: Obj) -> bool:
    c = get_condition(node, "Ready")
    return c is None or c.get("status") == "True"


# --- quantities --------------------------------------------------------------------------------

_SUFFIX = {
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
}


def quantity(q: Any) -> Decimal:
    """Parse a Kubernetes quantity ("100m", "4", "16Gi", 2) to a Decimal; bad input -> 0."""
    if q is None:
        return Decimal(0)
    if isinstance(q, (int, float)):
        return Decimal(str(q))
    s = str(q).strip()
    for suf in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E"):
        if s.endswith(suf):
            try:
                return Decimal(s[: -len(suf)]) * Decimal(_SUFFIX[suf])
            except Exception:  # noqa: BLE001
                return Decimal(0)
    try:
        return Decimal(s)
    except Exception:  # noqa: BLE001
        return Decimal(0)


def pod_requests(spec: Obj) -> dict[str, Decimal]:
    """Effective pod requests: max(max over init containers, sum over containers), per resource.
    A limit without a request counts as the request (apiserver defaulting)."""

    def reqs(c: Obj) -> dict[str, Decimal]:
        res = c.get("resources") or {}
        out = {k: quantity(v) for k, v in (res.get("limits") or {}).items()}
        out.update({k: quantity(v) for k, v in (res.get("requests") or {}).items()})
        return out

    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for k, v in reqs(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in reqs(c).items():
            if v > total.get(k, Decimal(0)):
                total[k] = v
    return total


def qos_class(spec: Obj) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or (r in req and quantity(req[r]) != quantity(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# --- determinism -------------------------------------------------------------------------------


def stable_int(*parts: Any) -> int:
    h = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def rng(*parts: Any) -> random.Random:
    return random.Random(stable_int(*parts))


def sha256_hex(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj) -> str:
    """pod-template-hash: FNV-32a of the template, SafeEncodeString'd, as the deployment controller."""
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    digest = str(fnv32a(json.dumps(t, sort_keys=True, separators=(",", ":")).encode()))
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in digest)


def image_digest(image: str) -> str:
    """A stable imageID for an image reference: repo@sha256:..."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: repo.rfind(":")]
    if "/" not in repo or "." not in repo.split("/", 1)[0] and ":" not in repo.split("/", 1)[0] \
            and repo.split("/", 1)[0] != "localhost":
        repo = "docker.io/" + (repo if "/" in repo else "library/" + repo)
    return f"{repo}@sha256:{sha256_hex('image', image)}"


def image_registry(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def try_create(store: Store, rtype: ResourceType | None, obj: Obj, namespace: str | None = None) -> Obj | None:
    if rtype is None:
        return None
    try:
        return store.create(rtype, obj, namespace)
    except ApiError as e:
        if e.code == 409:
            return store.try_get(rtype, namespace or obj["metadata"].get("namespace"), obj["metadata"]["name"])
        raise


def merge_by_name(base: list[Obj], overrides: Iterable[Obj]) -> list[Obj]:
    """Merge lists of named dicts (containers, ports...): overrides update same-named entries."""
    out = [copy.deepcopy(x) for x in base]
    idx = {x.get("name"): i for i, x in enumerate(out)}
    for o in overrides or []:
        name = o.get("name")
        if name in idx:
            merged = out[idx[name]]
            for k, v in o.items():
                if isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k] = {**merged[k], **copy.deepcopy(v)}
                else:
                    merged[k] = copy.deepcopy(v)
        else:
            idx[name] = len(out)
            out.append(copy.deepcopy(o))
    return out
