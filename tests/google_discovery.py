"""Check a Google API request against Google's published discovery documents (the ones
`google-api-python-client` ships under googleapiclient/discovery_cache/documents/): an independent
oracle for what the wizard sends, written apart from the emulator's own request parsing.

    google_discovery.problems("POST", "/v1/projects/p/locations/z/clusters", "$alt=json;enum-encoding=int", body) -> []

A request must match a method's HTTP verb and `flatPath` (else `path`) template under the document's
`servicePath`; its query parameters must be the method's or the API's standard ones; its JSON body
must use only the fields of the method's request schema, recursively (following `$ref`, `items`,
`additionalProperties`), with values of the schema's JSON type and enum values from its lists.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

DOCUMENTS = ("container.v1.json", "compute.v1.json", "serviceusage.v1.json", "cloudresourcemanager.v3.json",
             "cloudresourcemanager.v1.json", "cloudquotas.v1.json")

# Google's system parameter the Python clients add (`?$alt=json;enum-encoding=int`): not a method
# parameter, accepted by every API (https://cloud.google.com/apis/docs/system-parameters).
SYSTEM_PARAMETERS = {"$alt"}


@functools.lru_cache(maxsize=None)
def document(name: str) -> dict | None:
    try:
        ref = resources.files("googleapiclient.discovery_cache") / "documents" / name
        return json.loads(ref.read_text(encoding="utf-8"))
    except (FileNotFoundError, ModuleNotFoundError):
        return None


def _methods(res: dict):
    yield from res.get("methods", {}).values()
    for sub in res.get("resources", {}).values():
        yield from _methods(sub)


def _template(t: str) -> str:
    """Regex of a discovery path (`{projectsId}`, `{+name}`) or a google.api.http one (`{parent=projects/*}`)."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\+?)([^}=]+)(?:=([^}]+))?\}", t):
        out.append(re.escape(t[pos:m.start()]))
        if m.group(3):
            out.append("/".join("[^/:]+" if s == "*" else ".+" if s == "**" else re.escape(s)
                                for s in m.group(3).split("/")))
        else:
            out.append(".+" if m.group(1) else "[^/:]+")
        pos = m.end()
    return "".join(out) + re.escape(t[pos:])


# Cloud Quotas ships no discovery document with google-api-python-client: its GET paths are checked
# against the installed client's REST bindings instead (the wizard only reads quotas).
CLIENT_TRANSPORTS = ("google.cloud.cloudquotas_v1.services.cloud_quotas.transports.rest_base",)


@functools.lru_cache(maxsize=None)
def client_gets() -> list[re.Pattern]:
    import importlib

    out = []
    for mod in CLIENT_TRANSPORTS:
        module = importlib.import_module(mod)
        for base in vars(module).values():
            if not isinstance(base, type):
                continue
            for name, inner in vars(base).items():
                opts = getattr(inner, "_get_http_options", None) if name.startswith("_Base") else None
                for o in (opts() if opts else []):
                    if o["method"] == "get":
                        out.append(re.compile("^" + _template(o["uri"]) + "$"))
    return out


@functools.lru_cache(maxsize=None)
def methods() -> list[tuple[str, re.Pattern, dict, dict]]:
    """(http method, path regex, method, its document) of every method of every shipped document."""
    out = []
    for name in DOCUMENTS:
        doc = document(name)
        if doc is None:
            continue
        base = "/" + doc.get("servicePath", "")
        for m in _methods(doc):
            tmpl = m.get("flatPath") or m["path"]
            out.append((m["httpMethod"], re.compile("^" + re.escape(base) + _template(tmpl) + "$"), m, doc))
    return out


def match(method: str, path: str) -> list[tuple[dict, dict]]:
    """The (method, document) pairs whose verb and path template fit."""
    return [(m, doc) for verb, rx, m, doc in methods() if verb == method and rx.match(path)]


def body_problems(doc: dict, schema: dict, value: Any, at: str = "", *, int_enums: bool = False) -> list[str]:
    """How `value` does not fit `schema` (a discovery-document schema) of `doc`."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    where = at or "<body>"
    t = schema.get("type")
    if value is None:
        return []
    if t == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = []
        for k, v in value.items():
            sub = f"{at}.{k}" if at else k
            if k in props:
                out += body_problems(doc, props[k], v, sub, int_enums=int_enums)
            elif extra is not None:
                out += body_problems(doc, extra, v, f"{at}[{k!r}]", int_enums=int_enums)
            else:
                out.append(f"{where}: unknown field {k!r} (schema {schema.get('id', '?')} has {sorted(props)})")
        return out
    if t == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {value!r}"]
        return [p for i, v in enumerate(value)
                for p in body_problems(doc, schema.get("items", {}), v, f"{at}[{i}]", int_enums=int_enums)]
    if t == "string":
        if "enum" in schema:
            # with enum-encoding=int the clients send the enum's number, the list holds its names
            if int_enums and isinstance(value, int) and not isinstance(value, bool):
                return [] if value >= 0 else [f"{where}: bad enum number {value}"]
            return [] if value in schema["enum"] else [f"{where}: {value!r} is not one of {schema['enum']}"]
        if schema.get("format") in ("int64", "uint64"):
            ok = (isinstance(value, str) and re.fullmatch(r"-?\d+", value)) or \
                (isinstance(value, int) and not isinstance(value, bool))
            return [] if ok else [f"{where}: expected an {schema['format']} (string of digits), got {value!r}"]
        return [] if isinstance(value, str) else [f"{where}: expected a string, got {value!r}"]
    if t == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, str) and re.fullmatch(r"-?\d+", value))
        return [] if ok else [f"{where}: expected an integer, got {value!r}"]
    if t == "number":
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            [f"{where}: expected a number, got {value!r}"]
    if t == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
    return []  # "any"


def query_problems(doc: dict, m: dict, query: str) -> list[str]:
    allowed = set(doc.get("parameters", {})) | SYSTEM_PARAMETERS | {
        k for k, p in m.get("parameters", {}).items() if p.get("location") == "query"}
    out = []
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k not in allowed:
            out.append(f"query parameter {k!r} is not one of {sorted(allowed)}")
            continue
        spec = m.get("parameters", {}).get(k) or doc.get("parameters", {}).get(k) or {}
        if "enum" in spec and v not in spec["enum"]:
            out.append(f"query parameter {k}={v!r} is not one of {spec['enum']}")
    return out


def problems(method: str, path: str, query: str, body: Any) -> list[str]:
    """Why Google would not take this request ([] when one of its methods fits it)."""
    candidates = match(method, path)
    if not candidates and method == "GET" and not body and any(rx.match(path) for rx in client_gets()):
        return []
    if not candidates:
        return [f"{method} {path}: no method of {', '.join(DOCUMENTS)} has this verb and path"]
    int_enums = any("enum-encoding=int" in v for _, v in parse_qsl(query, keep_blank_values=True))
    best: list[str] | None = None
    for m, doc in candidates:
        found = query_problems(doc, m, query)
        if "request" in m:
            found += body_problems(doc, m["request"], body if body is not None else {}, int_enums=int_enums)
        elif body:
            found.append(f"{m['id']} takes no request body, got {sorted(body)}")
        if not found:
            return []
        if best is None or len(found) < len(best):
            best = [f"{method} {path} ({m['id']}): {p}" for p in found]
    return best or []
