"""A stub of /openapi/v3, enough for `kubectl apply`'s default `--validate=strict`.

kubectl reads the index, then the document of the object's group-version, and looks for a PATCH
operation tagged with the object's `x-kubernetes-group-version-kind` that takes a
`fieldValidation` query parameter; finding it, it leaves validation to the server and sends
`fieldValidation=Strict`. No schemas are served: kubectl then builds client-side apply patches
from its built-in types (strategic merge) or as JSON merge patches (custom resources).
/openapi/v2 is not served (404), as kubectl >= 1.30 does not need it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..store import ResourceType
from .discovery import GIT_VERSION, groups

Obj = dict[str, Any]

_PARAMS = [
    {"name": "dryRun", "in": "query", "description": "When present, indicates that modifications should not be "
                                                     "persisted.", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "description": "fieldManager is a name associated with the actor or "
                                                           "entity that is making these changes.",
     "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle "
                                                              "objects in the request containing unknown or "
                                                              "duplicate fields.",
     "schema": {"type": "string", "uniqueItems": True}},
    {"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.",
     "schema": {"type": "boolean", "uniqueItems": True}},
]


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def gv_document(types: list[ResourceType], group: str, version: str) -> Obj | None:
    rts = [rt for rt in types if rt.group == group and rt.version == version]
    if not rts:
        return None
    paths: Obj = {}
    prefix = "/" + gv_path(group, version)
    for rt in sorted(rts, key=lambda r: r.plural):
        gvk = {"group": group, "version": version, "kind": rt.kind}
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        op = {"operationId": f"patch{rt.kind}", "x-kubernetes-action": "patch",
              "x-kubernetes-group-version-kind": gvk, "parameters": _PARAMS,
              "responses": {"200": {"description": "OK"}}}
        paths[base + "/{name}"] = {"patch": op}
        for sub in rt.subresources:
            if sub in ("status", "scale"):
                paths[f"{base}/{{name}}/{sub}"] = {"patch": {**op, "operationId": f"patch{rt.kind}{sub.title()}"}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths,
            "components": {"schemas": {}}}


def _hash(doc: Obj) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def index(types: list[ResourceType]) -> Obj:
    out: Obj = {}
    for group, versions in sorted(groups(types).items()):
        for v in versions:
            doc = gv_document(types, group, v)
            if doc is not None:
                p = gv_path(group, v)
                out[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={_hash(doc)}"}
    return {"paths": out}


def v2_stub() -> Obj:
    """An empty OpenAPI v2 document (no definitions): kubectl's fallback validation then treats
    unknown kinds as a real cluster does ("ensure CRDs are installed first")."""
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": {},
            "definitions": {}}


V2_PROTO_CT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _pb_field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2); lengths here stay below 128."""
    assert len(payload) < 128
    return bytes([(num << 3) | 2, len(payload)]) + payload


def v2_stub_protobuf() -> bytes:
    """The same empty document in gnostic's openapi_v2.Document protobuf (what kubectl asks for):
    swagger=1, info=2 {title=1, version=2}, paths=8 {}."""
    info = _pb_field(1, b"Kubernetes") + _pb_field(2, GIT_VERSION.encode())
    return _pb_field(1, b"2.0") + _pb_field(2, info) + _pb_field(8, b"")
