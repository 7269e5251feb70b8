"""PATCH semantics of the emulated apiserver.

- JSON merge patch (RFC 7386), `application/merge-patch+json`.
- JSON patch (RFC 6902, the `jsonpatch` library), `application/json-patch+json`.
- Strategic merge patch, `application/strategic-merge-patch+json`: an approximation of the
  apiserver's: maps merge, `null` deletes, lists of objects merge by their patch merge key (name
  for containers/env/volumes..., containerPort for container ports, port for service ports,
  type for conditions, uid for ownerReferences, mountPath for volumeMounts), `$patch:
  delete|replace|merge`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`,
  `$retainKeys`; other lists are replaced. Custom resources do not support it (415).
- Server-side apply, `application/apply-patch+yaml`: the applied configuration merges into the
  live object like a strategic merge (no directives); fields the same manager applied before and
  no longer applies are removed unless another manager owns them; `metadata.managedFields` gets
  one `Apply` entry per manager with a FieldsV1 set. Conflicts between managers are not detected
  (as if every apply used `force=true`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from ..store import ApiError

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"

CR_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
BUILTIN_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def unsupported_patch(custom: bool) -> ApiError:
    types = CR_PATCH_TYPES if custom else BUILTIN_PATCH_TYPES
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(types))


# --- JSON merge patch (RFC 7386) -----------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- JSON patch -----------------------------------------------------------------------------------


def json_patch(target: Obj, ops: Any) -> Obj:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(target, ops, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}") \
            from None


# --- strategic merge patch ------------------------------------------------------------------------

# list field name -> merge key (the patchMergeKey of the built-in types that matter here)
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
    "subsets": None,
}
# primitive lists with patchStrategy merge (set semantics)
_MERGE_SETS = {"finalizers"}


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":
        for it in items:
            if isinstance(it, dict):
                if "containerPort" in it:
                    return "containerPort"
                if "port" in it:
                    return "port"
        return None
    if field in _MERGE_KEYS:
        return _MERGE_KEYS[field]
    return None


def _item_key(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None


def _order(result: list, order: list, key: str | None) -> list:
    def ident(x: Any) -> Any:
        return json.dumps(_item_key(x, key) if key else x, sort_keys=True)

    pos = {ident(o) if not (key and isinstance(o, dict)) else json.dumps(o.get(key), sort_keys=True): i
           for i, o in enumerate(order)}
    indexed = list(enumerate(result))
    indexed.sort(key=lambda p: (pos.get(ident(p[1]), len(pos) + p[0])))
    return [x for _, x in indexed]


def _merge_list(field: str, orig: Any, patch: list, directives: bool) -> list:
    orig_list = list(orig) if isinstance(orig, list) else []
    if directives and any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if field in _MERGE_SETS and all(not isinstance(p, (dict, list)) for p in patch):
        out = list(orig_list)
        for p in patch:
            if p not in out:
                out.append(p)
        return out
    key = _merge_key(field, patch + orig_list)
    if key is None:  # a list without a merge key is replaced, as the apiserver does
        return [strip_directives(copy.deepcopy(p)) for p in patch]
    out = [copy.deepcopy(o) for o in orig_list]
    for p in patch:
        if not isinstance(p, dict):
            out.append(copy.deepcopy(p))
            continue
        k = p.get(key)
        idx = next((i for i, o in enumerate(out) if _item_key(o, key) == k), None)
        if directives and p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strip_directives(copy.deepcopy(p)))
        else:
            out[idx] = _smp(out[idx], p, directives)
    return out


def strip_directives(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: strip_directives(x) for k, x in v.items()
                if not (k == "$patch" or k == "$retainKeys" or k.startswith("$setElementOrder/")
                        or k.startswith("$deleteFromPrimitiveList/"))}
    if isinstance(v, list):
        return [strip_directives(x) for x in v]
    return v


def _smp(orig: Any, patch: Any, directives: bool = True) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if directives:
        op = patch.get("$patch")
        if op == "replace":
            return strip_directives(copy.deepcopy({k: v for k, v in patch.items() if k != "$patch"}))
        if op == "delete":
            return None
    out = dict(orig) if isinstance(orig, dict) else {}
    if directives and isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        out = {k: v for k, v in out.items() if k in keep}
    orders: dict[str, list] = {}
    for k, v in patch.items():
        if directives and k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v if isinstance(v, list) else []
            continue
        if directives and k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if k in ("$patch", "$retainKeys"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp(out.get(k), v, directives)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _merge_list(k, out.get(k), v, directives)
        else:
            out[k] = copy.deepcopy(v)
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            seq = out[field]
            out[field] = _order(seq, order, _merge_key(field, seq + order))
    return out


def strategic_merge_patch(target: Obj, patch: Any) -> Obj:
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal array into Go value of type map[string]interface {}")
    out = _smp(target, patch, True)
    return out if out is not None else {}


# --- server-side apply (approximation) ------------------------------------------------------------


def field_set(obj: Any, field: str = "") -> Obj:
    """A FieldsV1-style set of the fields present in an applied configuration."""
    out: Obj = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("apiVersion", "kind") and not field:
                continue
            if isinstance(v, dict) and v:
                out[f"f:{k}"] = field_set(v, k)
            elif isinstance(v, list) and v:
                out[f"f:{k}"] = _list_set(k, v)
            else:
                out[f"f:{k}"] = {}
    return out


def _list_set(field: str, items: list) -> Obj:
    key = _merge_key(field, items)
    out: Obj = {}
    if key is None:
        if field in _MERGE_SETS:
            for it in items:
                out[f"v:{json.dumps(it)}"] = {}
        return out  # an atomic list: owned as a whole (empty set at the list's own path)
    for it in items:
        if isinstance(it, dict):
            sub = field_set(it, field)
            sub["."] = {}
            out[f"k:{json.dumps({key: it.get(key)}, separators=(',', ':'))}"] = sub
    return out


def _remove_unowned(obj: Any, old: Obj, new: Obj, others: list[Obj]) -> None:
    """Delete from `obj` the fields in `old` but in neither `new` nor any set in `others`."""
    if not isinstance(obj, (dict, list)):
        return
    for fkey, sub in old.items():
        if fkey == ".":
            continue
        in_new = fkey in new
        owned_elsewhere = [o.get(fkey) for o in others if isinstance(o, dict) and fkey in o]
        if fkey.startswith("f:") and isinstance(obj, dict):
            name = fkey[2:]
            if name not in obj:
                continue
            if not in_new and not owned_elsewhere:
                obj.pop(name, None)
            elif sub:
                _remove_unowned(obj[name], sub, new.get(fkey, {}), [o for o in owned_elsewhere if o])
        elif fkey.startswith("k:") and isinstance(obj, list):
            try:
                ident = json.loads(fkey[2:])
            except ValueError:
                continue
            k, v = next(iter(ident.items()))
            idx = next((i for i, it in enumerate(obj) if isinstance(it, dict) and it.get(k) == v), None)
            if idx is None:
                continue
            if not in_new and not owned_elsewhere:
                obj.pop(idx)
            elif sub:
                _remove_unowned(obj[idx], sub, new.get(fkey, {}), [o for o in owned_elsewhere if o])
        elif fkey.startswith("v:") and isinstance(obj, list):
            if not in_new and not owned_elsewhere:
                try:
                    val = json.loads(fkey[2:])
                except ValueError:
                    continue
                if val in obj:
                    obj.remove(val)


def server_side_apply(live: Obj | None, applied: Obj, manager: str, api_version: str, now: str,
                      subresource: str | None = None) -> Obj:
    """The object after `manager` applies `applied` to `live` (None: create)."""
    applied = copy.deepcopy(applied)
    applied_md = applied.get("metadata") or {}
    applied_md.pop("managedFields", None)
    fs = field_set(applied)
    if live is None:
        out = applied
        entries: list[Obj] = []
    else:
        out = _smp(live, applied, directives=False)
        entries = [copy.deepcopy(e) for e in (live.get("metadata") or {}).get("managedFields") or []]
        mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                     and e.get("subresource") == subresource), None)
        if mine is not None:
            others = [e.get("fieldsV1") or {} for e in entries if e is not mine]
            _remove_unowned(out, mine.get("fieldsV1") or {}, fs, others)
    entries = [e for e in entries if not (e.get("manager") == manager and e.get("operation") == "Apply"
                                          and e.get("subresource") == subresource)]
    entry: Obj = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now,
                  "fieldsType": "FieldsV1", "fieldsV1": fs}
    if subresource:
        entry["subresource"] = subresource
    entries.append(entry)
    out.setdefault("metadata", {})["managedFields"] = entries
    return out
