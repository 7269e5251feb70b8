"""Encoding helpers of the emulated apiserver: Status bodies, JSON/YAML request bodies, query
parameters, Accept negotiation."""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from ..store import ApiError

Obj = dict[str, Any]

JSON_CT = "application/json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON_CT, headers=headers)


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> Obj:
    return ApiError(code, reason, message, details).status()


def error_response(err: ApiError, headers: dict | None = None) -> web.Response:
    return json_response(err.status(), status=err.code, headers=headers)


def success_status(details: dict | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


NOT_FOUND_RESOURCE = "the server could not find the requested resource"


def resource_not_found() -> ApiError:
    return ApiError(404, "NotFound", NOT_FOUND_RESOURCE, {})


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


# --- YAML without timestamp conversion (the apiserver keeps strings as strings) -----------------


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def decode_body(raw: bytes, content_type: str | None, what: str = "object") -> Any:
    """Decode a request body: JSON (also when no Content-Type is sent), YAML; protobuf -> 415."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if "protobuf" in ct or "cbor" in ct:
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media types include: "
                       "application/json, application/yaml")
    if not raw.strip():
        raise ApiError(400, "BadRequest", f"the body of the request was empty; expected a {what}")
    if ct in ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml"):
        try:
            return json.loads(raw)
        except ValueError:
            pass
        try:
            return load_yaml(raw)
        except yaml.YAMLError as e:
            raise ApiError(400, "BadRequest", f"error converting YAML to JSON: {e}") from None
    try:
        return json.loads(raw)
    except ValueError as e:
        if not ct:  # no Content-Type: the apiserver would only accept JSON; be lenient with YAML
            try:
                return load_yaml(raw)
            except yaml.YAMLError:
                pass
        raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {e}") from None


# --- query parameters ----------------------------------------------------------------------------


def qbool(v: str | None) -> bool:
    return (v or "").strip() in ("1", "t", "T", "true", "TRUE", "True")


def qint(q, name: str) -> int | None:
    v = q.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid value for {name}: {v!r}: must be an integer") from None


def is_dry_run(q, body: Obj | None = None) -> bool:
    vals = q.getall("dryRun", []) if hasattr(q, "getall") else [q.get("dryRun")] if q.get("dryRun") else []
    if body and isinstance(body.get("dryRun"), list):
        vals = list(vals) + body["dryRun"]
    for v in vals:
        if v and v != "All":
            raise ApiError(400, "BadRequest", f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return "All" in vals


# --- Accept negotiation --------------------------------------------------------------------------


def wants_table(accept: str) -> str | None:
    """'meta.k8s.io/v1' / 'meta.k8s.io/v1beta1' when the client asks for a Table, else None."""
    if "as=Table" not in accept:
        return None
    for part in accept.split(","):
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return "meta.k8s.io/v1beta1" if "v=v1beta1" in part else "meta.k8s.io/v1"
    return None


def wants_partial(accept: str) -> bool:
    for part in accept.split(","):
        if "as=PartialObjectMetadata" in part:
            return True
    return False


def check_acceptable(accept: str) -> None:
    """406 when the client only accepts protobuf (kubectl's generator commands do)."""
    if not accept:
        return
    kinds = [p.split(";")[0].strip().lower() for p in accept.split(",")]
    if any(k in ("application/json", "*/*", "application/*", "application/yaml", "text/plain", "")
           or k.endswith("+json") for k in kinds):
        return
    if all("protobuf" in k or "cbor" in k for k in kinds):
        raise ApiError(406, "NotAcceptable",
                       "only the following media types are accepted: application/json, application/yaml")
