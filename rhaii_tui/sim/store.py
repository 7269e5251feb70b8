"""The emulator's Kubernetes object store: one per simulated cluster.

Holds objects as JSON-shaped dicts with real apiserver semantics: uid, resourceVersion (one
monotonic counter per store, like etcd's revision), generation, creationTimestamp, generateName,
graceful deletion with finalizers, label and field selectors, per-resource watch history with
compaction (a watch from a compacted revision gets 410 Expired), and change hooks that the
controllers use. It is used from one asyncio event loop only (the emulator's); nothing here blocks.

Resource types are the built-in ones below plus whatever CustomResourceDefinitions exist in the
store: a kind is unknown (404) until its CRD is created, as on a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import re
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

Obj = dict[str, Any]


# --- errors --------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Kubernetes Status error. `status()` is the body the API returns."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: "ResourceType", name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def already_exists(rt: "ResourceType", name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" already exists',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt: "ResourceType", name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {rt.plural}{"." + rt.group if rt.group else ""} "{name}": '
                    "the object has been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": rt.group, "kind": rt.plural})


def invalid(rt: "ResourceType", name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {message}',
                    {"name": name, "group": rt.group, "kind": rt.kind})


def expired(rv: int | str, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")


# --- resource types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status",), ("status", "scale"), ("log", "status")
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    categories: tuple[str, ...] = ()
    custom: bool = False  # served from a CRD (strategic-merge patch answers 415)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _rt(group, version, kind, plural, namespaced=True, short=(), sub=(), **kw) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, tuple(short), tuple(sub), **kw)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _rt("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",)),
    _rt("", "v1", "Node", "nodes", False, ("no",), ("status",)),
    _rt("", "v1", "Pod", "pods", True, ("po",), ("status", "log", "eviction"), categories=("all",)),
    _rt("", "v1", "Service", "services", True, ("svc",), ("status", "proxy"), categories=("all",)),
    _rt("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    _rt("", "v1", "Secret", "secrets"),
    _rt("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _rt("", "v1", "Event", "events", True, ("ev",)),
    _rt("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"), categories=("all",)),
    _rt("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), categories=("all",)),
    _rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    _rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    _rt("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
        ("crd", "crds"), ("status",)),
    _rt("coordination.k8s.io", "v1", "Lease", "leases"),
    # the scheduled scale-to-zero (controllers/jobs.py): CronJob -> Job -> Pod, run as a ServiceAccount
    _rt("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("status",), categories=("all",)),
    _rt("batch", "v1", "Job", "jobs", True, (), ("status",), categories=("all",)),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
)

_BUILTIN_BY_KEY = {rt.key: rt for rt in BUILTIN_TYPES}


def crd_types(crd: Obj) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        subs = tuple(sorted((v.get("subresources") or {}).keys()))
        out.append(ResourceType(
            spec.get("group", ""), v["name"], names.get("kind", ""), names.get("plural", ""),
            spec.get("scope", "Namespaced") == "Namespaced", tuple(names.get("shortNames", []) or ()),
            subs, categories=tuple(names.get("categories", []) or ()), custom=True))
    return out


# --- selectors -----------------------------------------------------------------------------------

_REQ_RE = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9_.-]*))?\s*$"
)


def _split_selector(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_label_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector string (=, ==, !=, in, notin, exists, !exists). Raises ApiError 400."""
    if not selector:
        return lambda labels: True
    reqs = []
    for part in _split_selector(selector):
        m = _REQ_RE.match(part)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
        key, neg, op, val = m["key"], bool(m["neg"]), (m["op"] or "").strip(), m["val"]
        if op in ("in", "notin"):
            values = {v.strip() for v in (val or "").strip("()").split(",") if v.strip()}
            reqs.append((key, op, values))
        elif op in ("=", "=="):
            reqs.append((key, "=", val or ""))
        elif op == "!=":
            reqs.append((key, "!=", val or ""))
        else:
            reqs.append((key, "!exists" if neg else "exists", None))

    def match(labels: dict[str, str]) -> bool:
        labels = labels or {}
        for key, op, val in reqs:
            present = key in labels
            if op == "=" and labels.get(key) != val:
                return False
            if op == "!=" and present and labels[key] == val:
                return False
            if op == "in" and (not present or labels[key] not in val):
                return False
            if op == "notin" and present and labels[key] in val:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True

    return match


def match_label_selector(sel: Obj | None, labels: dict[str, str] | None) -> bool:
    """Match a metav1.LabelSelector dict (matchLabels + matchExpressions). None/{} matches all."""
    labels = labels or {}
    if not sel:
        return True
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def get_path(obj: Obj, dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def parse_field_selector(selector: str | None) -> Callable[[Obj], bool]:
    """Field selectors: metadata.name, metadata.namespace, spec.nodeName, status.phase,
    involvedObject.* and any dotted path; operators =, ==, !=."""
    if not selector:
        return lambda obj: True
    reqs = []
    for part in _split_selector(selector):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part.strip()!r}")
        reqs.append((m[1], m[2] != "!=", m[3]))

    def match(obj: Obj) -> bool:
        for path, eq, val in reqs:
            actual = get_path(obj, path)
            actual = "" if actual is None else str(actual)
            if (actual == val) != eq:
                return False
        return True

    return match


# --- helpers -------------------------------------------------------------------------------------


def now_rfc3339(ts: float | None = None) -> str:
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc) if ts is not None else _dt.datetime.now(_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()
    except ValueError:
        try:
            return _dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _crd_established(crd: Obj, ts: str) -> Obj:
    """The status apiextensions gives an accepted CRD (so `kubectl wait --for condition=established` works)."""
    spec = crd.get("spec") or {}
    return {
        "acceptedNames": dict(spec.get("names") or {}),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
             "lastTransitionTime": ts},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": ts},
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage") and v.get("name")],
    }


@dataclass
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    rv: int
    obj: Obj

    def wire(self) -> Obj:
        return {"type": self.type, "object": self.obj}


@dataclass
class _Watcher:
    key: tuple[str, str]
    namespace: str | None
    label_match: Callable[[dict], bool]
    field_match: Callable[[Obj], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def wants(self, ev: WatchEvent) -> bool:
        md = ev.obj.get("metadata", {})
        if self.namespace and md.get("namespace") != self.namespace:
            return False
        return self.label_match(md.get("labels") or {}) and self.field_match(ev.obj)


Hook = Callable[[str, ResourceType, Obj, Obj | None], None]


class Store:
    """In-memory objects of one cluster. All reads return deep copies."""

    def __init__(self, clock: Callable[[], float] | None = None, history_limit: int = 2000):
        import time

        self._clock = clock or time.time
        self._rv = 0
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self._history: dict[tuple[str, str], deque[WatchEvent]] = {}
        self._compacted: dict[tuple[str, str], int] = {}
        self._history_limit = history_limit
        self._watchers: list[_Watcher] = []
        self._hooks: list[Hook] = []
        self._crd_types: dict[tuple[str, str], list[ResourceType]] = {}

    # --- types -------------------------------------------------------------------------------
    def types(self) -> list[ResourceType]:
        out = list(BUILTIN_TYPES)
        for ts in self._crd_types.values():
            out.extend(ts)
        return out

    def resolve(self, group: str, version: str | None, plural: str) -> ResourceType | None:
        if (group, plural) in _BUILTIN_BY_KEY:
            rt = _BUILTIN_BY_KEY[(group, plural)]
            return rt if version in (None, rt.version) else None
        for rt in self._crd_types.get((group, plural), []):
            if version in (None, rt.version):
                return rt
        return None

    def resolve_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def type_for(self, plural: str, group: str = "") -> ResourceType:
        rt = self.resolve(group, None, plural)
        if rt is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural})")
        return rt

    @property
    def resource_version(self) -> int:
        return self._rv

    # --- hooks and watches -------------------------------------------------------------------
    def add_hook(self, hook: Hook) -> None:
        """hook(event_type, rtype, obj, old) is called synchronously after every change."""
        self._hooks.append(hook)

    def _emit(self, etype: str, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        ev = WatchEvent(etype, int(obj["metadata"]["resourceVersion"]), copy.deepcopy(obj))
        hist = self._history.setdefault(rt.key, deque())
        hist.append(ev)
        while len(hist) > self._history_limit:
            dropped = hist.popleft()
            self._compacted[rt.key] = dropped.rv
        for w in list(self._watchers):
            if w.key == rt.key and w.wants(ev):
                w.queue.put_nowait(ev)
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            self._refresh_crd(obj, etype)
        for hook in list(self._hooks):
            hook(etype, rt, obj, old)

    def _refresh_crd(self, crd: Obj, etype: str) -> None:
        spec = crd.get("spec", {})
        key = (spec.get("group", ""), spec.get("names", {}).get("plural", ""))
        if etype == "DELETED":
            self._crd_types.pop(key, None)
            self._objects.pop(key, None)
        else:
            self._crd_types[key] = crd_types(crd)

    def compact(self, rt: ResourceType, upto_rv: int | None = None) -> None:
        """Drop history (as etcd compaction does) so older watches get 410 Expired."""
        upto = self._rv if upto_rv is None else upto_rv
        hist = self._history.get(rt.key, deque())
        while hist and hist[0].rv <= upto:
            hist.popleft()
        self._compacted[rt.key] = max(self._compacted.get(rt.key, 0), upto)

    def watch(self, rt: ResourceType, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None
              ) -> tuple[list[WatchEvent], _Watcher]:
        """Register a watcher. Returns (initial events to send, watcher with a live queue).

        rv empty/"0": synthetic ADDED events for the current state. Otherwise the history after rv;
        a compacted rv raises ApiError 410. Call `unwatch` when done."""
        lm = parse_label_selector(label_selector)
        fm = parse_field_selector(field_selector)
        w = _Watcher(rt.key, namespace, lm, fm)
        initial: list[WatchEvent] = []
        if resource_version in (None, "", "0"):
            for obj in self._iter(rt, namespace):
                ev = WatchEvent("ADDED", int(obj["metadata"]["resourceVersion"]), copy.deepcopy(obj))
                if w.wants(ev):
                    initial.append(ev)
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {resource_version!r}") from None
            oldest = self._compacted.get(rt.key, 0)
            if since < oldest:
                raise expired(since, oldest + 1)
            for ev in self._history.get(rt.key, ()):
                if ev.rv > since and w.wants(ev):
                    initial.append(ev)
        self._watchers.append(w)
        return initial, w

    def unwatch(self, w: _Watcher) -> None:
        try:
            self._watchers.remove(w)
        except ValueError:
            pass

    def watcher_count(self) -> int:
        return len(self._watchers)

    # --- reads -------------------------------------------------------------------------------
    def _iter(self, rt: ResourceType, namespace: str | None) -> Iterator[Obj]:
        bucket = self._objects.get(rt.key, {})
        for (ns, _), obj in sorted(bucket.items()):
            if namespace and rt.namespaced and ns != namespace:
                continue
            yield obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get(rt.key, {}).get((namespace or "" if rt.namespaced else "", name))
        if obj is None:
            raise not_found(rt, name)
        return copy.deepcopy(obj)

    def try_get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get(rt, namespace, name)
        except ApiError:
            return None

    def list(self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[Obj], int]:
        lm = parse_label_selector(label_selector)
        fm = parse_field_selector(field_selector)
        items = [copy.deepcopy(o) for o in self._iter(rt, namespace)
                 if lm(o.get("metadata", {}).get("labels") or {}) and fm(o)]
        return items, self._rv

    def select(self, rt: ResourceType, namespace: str | None = None, labels: dict[str, str] | None = None
               ) -> list[Obj]:
        """Controller helper: objects whose labels include all of `labels`."""
        want = labels or {}
        return [copy.deepcopy(o) for o in self._iter(rt, namespace)
                if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())]

    # --- writes ------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if rt.namespaced:
            ns = namespace or md.get("namespace") or "default"
            if md.get("namespace") and namespace and md["namespace"] != namespace:
                raise ApiError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
            if rt.kind != "Namespace" and self.try_get(self.type_for("namespaces"), None, ns) is None:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
        else:
            ns = ""
            md.pop("namespace", None)
        if not md.get("name"):
            if md.get("generateName"):
                for _ in range(20):
                    candidate = md["generateName"] + random_suffix()
                    if (ns, candidate) not in self._objects.get(rt.key, {}):
                        md["name"] = candidate
                        break
            else:
                raise invalid(rt, "", "metadata.name: Required value: name or generateName is required")
        name = md["name"]
        if len(name) > 253 or not _NAME_RE.match(name):
            raise invalid(rt, name, f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must "
                          "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
                          "with an alphanumeric character")
        bucket = self._objects.setdefault(rt.key, {})
        if (ns, name) in bucket:
            raise already_exists(rt, name)
        if rt.kind == "Namespace":
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        if rt.kind == "CustomResourceDefinition" and not (obj.get("status") or {}).get("conditions"):
            obj["status"] = _crd_established(obj, now_rfc3339(self._clock()))
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339(self._clock())
        md["generation"] = 1
        md["resourceVersion"] = self._next_rv()
        md.pop("deletionTimestamp", None)
        bucket[(ns, name)] = obj
        self._emit("ADDED", rt, obj, None)
        return copy.deepcopy(obj)

    def update(self, rt: ResourceType, obj: Obj, subresource: str | None = None,
               check_rv: bool = True) -> Obj:
        """Replace an object (PUT semantics). With subresource="status" only status changes;
        without it, status is kept when the type has a status subresource. Generation bumps when
        anything but metadata/status changes."""
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        ns = (md.get("namespace") or "default") if rt.namespaced else ""
        name = md.get("name", "")
        bucket = self._objects.get(rt.key, {})
        cur = bucket.get((ns, name))
        if cur is None:
            raise not_found(rt, name)
        if check_rv and md.get("resourceVersion") and md["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        old = copy.deepcopy(cur)
        if subresource == "status":
            new = copy.deepcopy(cur)
            new["status"] = obj.get("status", {})
        else:
            new = obj
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            for keep in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                         "deletionGracePeriodSeconds"):
                if keep in cur["metadata"]:
                    new["metadata"][keep] = cur["metadata"][keep]
                else:
                    new["metadata"].pop(keep, None)
            if rt.namespaced:
                new["metadata"]["namespace"] = ns
            if "status" in rt.subresources and "status" in cur:
                new["status"] = cur["status"]
            if _spec_part(new) != _spec_part(cur):
                new["metadata"]["generation"] = int(cur["metadata"].get("generation", 1)) + 1
        if new == cur:
            return copy.deepcopy(cur)  # no-op writes do not bump resourceVersion (as the apiserver)
        new["metadata"]["resourceVersion"] = self._next_rv()
        bucket[(ns, name)] = new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and not self._graceful(rt, new):
            return self._remove(rt, ns, name, new)
        self._emit("MODIFIED", rt, new, old)
        return copy.deepcopy(new)

    def mutate(self, rt: ResourceType, namespace: str | None, name: str, fn: Callable[[Obj], Any],
               subresource: str | None = None) -> Obj:
        """Controller helper: read-modify-write without an rv check."""
        obj = self.get(rt, namespace, name)
        fn(obj)
        return self.update(rt, obj, subresource=subresource, check_rv=False)

    def _graceful(self, rt: ResourceType, obj: Obj) -> bool:
        return rt.kind == "Pod" and bool(obj["metadata"].get("deletionGracePeriodSeconds"))

    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               grace_period_seconds: int | None = None, propagation: str | None = None) -> Obj:
        """Delete. Objects with finalizers, and pods with a grace period (> 0), get a
        deletionTimestamp and stay until the finalizers are gone / the kubelet finishes them.
        Returns the object as the apiserver returns it from DELETE."""
        ns = (namespace or "default") if rt.namespaced else ""
        bucket = self._objects.get(rt.key, {})
        cur = bucket.get((ns, name))
        if cur is None:
            raise not_found(rt, name)
        grace = grace_period_seconds
        if rt.kind == "Pod" and grace is None:
            grace = int(cur.get("spec", {}).get("terminationGracePeriodSeconds", 30))
        if rt.kind == "Pod" and not cur.get("spec", {}).get("nodeName"):
            grace = 0  # an unscheduled pod goes at once
        if cur["metadata"].get("finalizers") or (rt.kind == "Pod" and grace and grace > 0) \
                or rt.kind == "Namespace":
            if cur["metadata"].get("deletionTimestamp"):
                if rt.kind == "Pod" and grace == 0:
                    return self._remove(rt, ns, name, cur)
                return copy.deepcopy(cur)
            old = copy.deepcopy(cur)
            cur["metadata"]["deletionTimestamp"] = now_rfc3339(self._clock())
            if rt.kind == "Pod":
                cur["metadata"]["deletionGracePeriodSeconds"] = int(grace or 0)
            if rt.kind == "Namespace":
                cur["status"] = {"phase": "Terminating"}
            cur["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("MODIFIED", rt, cur, old)
            if rt.kind == "Namespace":
                self._delete_namespace_contents(ns_name=name)
            return copy.deepcopy(cur)
        return self._remove(rt, ns, name, cur)

    def force_remove(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        """Controller helper: remove now (kubelet finished a terminating pod, GC)."""
        ns = (namespace or "default") if rt.namespaced else ""
        cur = self._objects.get(rt.key, {}).get((ns, name))
        if cur is not None:
            self._remove(rt, ns, name, cur)

    def _remove(self, rt: ResourceType, ns: str, name: str, cur: Obj) -> Obj:
        bucket = self._objects.get(rt.key, {})
        bucket.pop((ns, name), None)
        gone = copy.deepcopy(cur)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", rt, gone, cur)
        if rt.kind == "Namespace":
            pass
        else:
            self._collect_dependents(cur["metadata"]["uid"])
        return copy.deepcopy(gone)

    def _collect_dependents(self, owner_uid: str) -> None:
        """Garbage collection: delete objects whose ownerReferences name a deleted owner."""
        for rt in self.types():
            for (ns, name), obj in list(self._objects.get(rt.key, {}).items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    try:
                        self.delete(rt, ns or None, name)
                    except ApiError:
                        pass

    def _delete_namespace_contents(self, ns_name: str) -> None:
        for rt in self.types():
            if not rt.namespaced:
                continue
            for (ns, name) in [k for k in self._objects.get(rt.key, {}) if k[0] == ns_name]:
                try:
                    self.delete(rt, ns, name, grace_period_seconds=0)
                except ApiError:
                    pass
        nst = self.type_for("namespaces")
        cur = self._objects.get(nst.key, {}).get(("", ns_name))
        if cur is not None:
            self._remove(nst, "", ns_name, cur)

    # --- events ------------------------------------------------------------------------------
    def record_event(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
                     component: str = "default-scheduler") -> None:
        """Write a core/v1 Event about an object (deduplicated by reason+message: count bumps)."""
        md = involved.get("metadata", {})
        ns = md.get("namespace") or "default"
        evt = self.type_for("events")
        bucket = self._objects.get(evt.key, {})
        for (ens, ename), e in bucket.items():
            if ens == ns and e["involvedObject"].get("uid") == md.get("uid") and e["reason"] == reason \
                    and e["message"] == message:
                def bump(x: Obj) -> None:
                    x["count"] = int(x.get("count", 1)) + 1
                    x["lastTimestamp"] = now_rfc3339(self._clock())
                self.mutate(evt, ens, ename, bump)
                return
        ts = now_rfc3339(self._clock())
        self.create(evt, {
            "metadata": {"name": f"{md.get('name', 'x')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": {"kind": involved.get("kind"), "namespace": ns, "name": md.get("name"),
                               "uid": md.get("uid"), "apiVersion": involved.get("apiVersion"),
                               "resourceVersion": md.get("resourceVersion")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": ts, "lastTimestamp": ts, "source": {"component": component},
            "reportingComponent": component, "reportingInstance": "",
        })

    # --- persistence -------------------------------------------------------------------------
    def dump(self) -> Obj:
        return {"rv": self._rv, "objects": [o for b in self._objects.values() for o in b.values()]}

    def load(self, data: Obj) -> None:
        """Restore objects from `dump()`. History is not persisted: a watch resumed across an
        emulator restart gets 410 Expired and must re-list, as after an etcd compaction."""
        self._objects.clear()
        self._history.clear()
        objs = data.get("objects", [])
        # CRDs first so their types resolve
        objs = sorted(objs, key=lambda o: o.get("kind") != "CustomResourceDefinition")
        for obj in objs:
            if obj.get("kind") == "CustomResourceDefinition":
                self._refresh_crd(obj, "ADDED")
            rt = self.resolve_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            if rt is None:
                continue
            md = obj["metadata"]
            ns = md.get("namespace", "") if rt.namespaced else ""
            self._objects.setdefault(rt.key, {})[(ns, md["name"])] = obj
        self._rv = int(data.get("rv", 0))
        for rt in self.types():
            self._compacted[rt.key] = self._rv

    def all_objects(self) -> Iterable[Obj]:
        for b in self._objects.values():
            yield from (copy.deepcopy(o) for o in b.values())
