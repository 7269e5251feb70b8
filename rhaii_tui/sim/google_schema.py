"""Strict request bodies for the simulated Google APIs: refuse what Google refuses.

Google's front end parses every JSON request body into the method's request message before the
service sees it: an unknown field, a value of the wrong JSON type or a bad enum value (nested
included) is answered 400 INVALID_ARGUMENT with a `google.rpc.BadRequest` detail, e.g.

    {"error": {"code": 400, "status": "INVALID_ARGUMENT",
               "message": "Invalid JSON payload received. Unknown name \"foo\" at 'cluster': Cannot find field.",
               "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [{"field": "cluster", "description": "Invalid JSON payload ..."}]}]}}

(Wording as Google's APIs answer, quoted in public reports such as github.com/google-gemini/
gemini-cli issues 13972 and 4415: the path uses the proto field names, one line per violation joined
by newlines; a top-level unknown name has no " at '...'" and no `field`; a bad value reads
`Invalid value at 'node_count' (TYPE_INT32), "abc"`, an enum's type is named by its full proto name
`(type.googleapis.com/google.container.v1.ReleaseChannel.Channel)`.)

Which message a request carries is not listed here by hand: it comes from the client libraries the
real services are defined by. Each installed REST transport (container v1, Resource Manager v3,
Cloud Quotas v1) declares, per method, its HTTP bindings (`_get_http_options()`: method, URI
template, body field) and its request type (the annotation of the method's `__call__`), so every
route anyone adds to the emulator is checked with the real message type. Services without an
installed client (Service Usage v1, Compute v1, Resource Manager v1) are checked against Google's
discovery documents when `google-api-python-client` (which ships them) is importable, else not.
(container v1beta1 has no REST transport in the client: its bodies are not checked.)

GKE's own semantic checks on top of the parse (`RULES`) follow the API reference (the field
comments of google.container.v1, also in `google.cloud.container_v1.types.cluster_service`):
- Cluster.initial_node_count / Cluster.node_config: "For requests, this field should only be used
  in lieu of a "node_pool" object ... Do not use this and a node_pool at the same time."
- NodePoolAutoscaling.min_node_count: "Must be greater than or equal to 0 and less than or equal to
  max_node_count"; max_node_count: "Must be >= min_node_count"; "The total_*_node_count fields are
  mutually exclusive with the *_node_count fields."
- SetNodePoolSizeRequest.node_count: "Required. The desired node count for the pool."
- SetNodePoolAutoscalingRequest.autoscaling: "Required. Autoscaling configuration for the node
  pool." (the NodePoolAutoscaling limits above; enabled with no maximum is refused).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .world import GoogleError

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# the REST transports of the installed clients whose methods the emulator serves (module, class)
_TRANSPORTS = (
    ("google.cloud.container_v1.services.cluster_manager.transports.rest", "ClusterManagerRestTransport"),
    ("google.cloud.resourcemanager_v3.services.projects.transports.rest", "ProjectsRestTransport"),
    ("google.cloud.cloudquotas_v1.services.cloud_quotas.transports.rest", "CloudQuotasRestTransport"),
)
# Google's discovery documents for the services without an installed client (paths under their
# servicePath: compute's is compute/v1/, as the emulator serves it)
_DISCOVERY = ("serviceusage.v1.json", "cloudresourcemanager.v1.json", "compute.v1.json")


@dataclass(frozen=True)
class Violation:
    """One field violation: Google's description and the field path (None at the top level)."""

    description: str
    field: str | None


def bad_request(violations: list[Violation]) -> GoogleError:
    """Google's 400 for an unparseable body: every violation on its own line and in the details."""
    fvs = [{"field": v.field, "description": v.description} if v.field else {"description": v.description}
           for v in violations]
    return GoogleError(400, "INVALID_ARGUMENT", "\n".join(v.description for v in violations),
                       [{"@type": BAD_REQUEST, "fieldViolations": fvs}])


def invalid(message: str) -> GoogleError:
    """A service-side refusal of a parsed request (a combination GKE does not accept)."""
    return GoogleError(400, "INVALID_ARGUMENT", message)


def _unknown(name: str, at: str) -> Violation:
    where = f" at '{at}'" if at else ""
    return Violation(f"Invalid JSON payload received. Unknown name \"{name}\"{where}: Cannot find field.", at or None)


def _bad_value(at: str, type_name: str, value: Any) -> Violation:
    shown = "{...}" if isinstance(value, dict) else "[...]" if isinstance(value, list) else json.dumps(value)
    return Violation(f"Invalid value at '{at}' ({type_name}), {shown}", at or None)


def _not_repeating(name: str, at: str) -> Violation:
    where = f" at '{at}'" if at else ""
    return Violation(f"Invalid JSON payload received. Unknown name \"{name}\"{where}: "
                     "Proto field is not repeating, cannot start list.", at or None)


def _join(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


# --- proto messages ------------------------------------------------------------------------------

_WKT_STRINGS = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
_WRAPPERS = {"google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
             "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
             "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue"}
_ANYTHING = {"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Any"}

_INT_RANGE = {"TYPE_INT32": (-2**31, 2**31 - 1), "TYPE_SINT32": (-2**31, 2**31 - 1),
              "TYPE_SFIXED32": (-2**31, 2**31 - 1), "TYPE_UINT32": (0, 2**32 - 1), "TYPE_FIXED32": (0, 2**32 - 1),
              "TYPE_INT64": (-2**63, 2**63 - 1), "TYPE_SINT64": (-2**63, 2**63 - 1),
              "TYPE_SFIXED64": (-2**63, 2**63 - 1), "TYPE_UINT64": (0, 2**64 - 1), "TYPE_FIXED64": (0, 2**64 - 1)}


_TYPE_NAMES: dict[int, str] = {}


def _type_name(field) -> str:
    """TYPE_INT32, TYPE_STRING... as Google names a scalar field's type in its errors."""
    if not _TYPE_NAMES:
        from google.protobuf.descriptor import FieldDescriptor

        _TYPE_NAMES.update({v: k for k, v in vars(FieldDescriptor).items()
                            if k.startswith("TYPE_") and isinstance(v, int)})
    return _TYPE_NAMES[field.type]


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _scalar_ok(field, value: Any) -> bool:
    from google.protobuf.descriptor import FieldDescriptor as F

    t = field.type
    if t == F.TYPE_STRING:
        return isinstance(value, str)
    if t == F.TYPE_BOOL:
        return isinstance(value, bool)
    if t == F.TYPE_BYTES:
        if not isinstance(value, str):
            return False
        urlsafe = "-" in value or "_" in value  # proto3 JSON takes both base64 alphabets
        try:
            base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if urlsafe else None, validate=True)
            return True
        except ValueError:
            return False
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        if isinstance(value, str):
            if value in ("NaN", "Infinity", "-Infinity"):
                return True
            try:
                return math.isfinite(float(value))
            except ValueError:
                return False
        return False
    n = _integer(value)
    lo, hi = _INT_RANGE[_type_name(field)]
    return n is not None and lo <= n <= hi


def check_message(desc, data: Any, at: str = "") -> list[Violation]:
    """Every way `data` (parsed JSON) is not the proto3 JSON form of message `desc`."""
    if desc.full_name in _ANYTHING:
        return []
    if desc.full_name in _WKT_STRINGS:
        return [] if isinstance(data, str) else [_bad_value(at, f"type.googleapis.com/{desc.full_name}", data)]
    if desc.full_name in _WRAPPERS:
        return [] if data is None else _check_value(desc.fields_by_name["value"], data, at)
    if not isinstance(data, dict):
        return [_bad_value(at, f"type.googleapis.com/{desc.full_name}", data)]
    by_json = {f.json_name: f for f in desc.fields}
    out: list[Violation] = []
    for key, value in data.items():
        field = by_json.get(key) or desc.fields_by_name.get(key)
        if field is None:
            out.append(_unknown(key, at))
            continue
        if value is None:  # JSON null is the field's default
            continue
        path = _join(at, field.name)
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            if not isinstance(value, dict):
                out.append(_bad_value(path, f"type.googleapis.com/{field.message_type.full_name}", value))
                continue
            vfield = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                out += _check_value(vfield, v, f"{path}[{json.dumps(k)}]")
        elif _repeated(field):
            if not isinstance(value, list):
                out.append(_bad_value(path, _field_type(field), value))
                continue
            for i, item in enumerate(value):
                out += _check_value(field, item, f"{path}[{i}]")
        elif isinstance(value, list):
            out.append(_not_repeating(key, at))
        else:
            out += _check_value(field, value, path)
    return out


def _repeated(field) -> bool:
    rep = getattr(field, "is_repeated", None)  # protobuf >= 6; older ones have only .label
    return bool(rep) if rep is not None else field.label == field.LABEL_REPEATED


def _field_type(field) -> str:
    if field.message_type is not None:
        return f"type.googleapis.com/{field.message_type.full_name}"
    if field.enum_type is not None:
        return f"type.googleapis.com/{field.enum_type.full_name}"
    return _type_name(field)


def _check_value(field, value: Any, at: str) -> list[Violation]:
    if field.message_type is not None:
        if value is None and field.message_type.full_name == "google.protobuf.Value":
            return []
        return check_message(field.message_type, value, at)
    if field.enum_type is not None:
        enum = field.enum_type
        ok = (isinstance(value, str) and value in enum.values_by_name) or \
            (isinstance(value, int) and not isinstance(value, bool))  # ?$alt=json;enum-encoding=int
        return [] if ok else [_bad_value(at, f"type.googleapis.com/{enum.full_name}", value)]
    return [] if _scalar_ok(field, value) else [_bad_value(at, _type_name(field), value)]


# --- discovery documents -------------------------------------------------------------------------


def check_discovery(schemas: dict, schema: dict, data: Any, at: str = "") -> list[Violation]:
    """Every way `data` does not fit a discovery-document schema (following $ref, items,
    additionalProperties, enums and JSON types)."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    t = schema.get("type")
    if data is None:
        return []
    if t == "object" or "properties" in schema:
        if not isinstance(data, dict):
            return [_bad_value(at, schema.get("id", "object"), data)]
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: list[Violation] = []
        for key, value in data.items():
            if props is not None and key in props:
                out += check_discovery(schemas, props[key], value, _join(at, key))
            elif extra is not None:
                out += check_discovery(schemas, extra, value, f"{at}[{json.dumps(key)}]")
            elif props is not None or schema.get("id"):
                out.append(_unknown(key, at))
        return out
    if t == "array":
        if not isinstance(data, list):
            return [_bad_value(at, "array", data)]
        out = []
        for i, item in enumerate(data):
            out += check_discovery(schemas, schema.get("items", {}), item, f"{at}[{i}]")
        return out
    if t == "any" or t is None:
        return []
    if t == "string":
        if not isinstance(data, str):
            return [_bad_value(at, "TYPE_STRING", data)]
        if "enum" in schema and data not in schema["enum"]:
            return [_bad_value(at, "TYPE_ENUM", data)]
        if schema.get("format") in ("int64", "uint64") and _integer(data) is None:
            return [_bad_value(at, f"TYPE_{schema['format'].upper()}", data)]
        return []
    if t == "boolean":
        return [] if isinstance(data, bool) else [_bad_value(at, "TYPE_BOOL", data)]
    if t == "integer":
        return [] if _integer(data) is not None else [_bad_value(at, "TYPE_INT32", data)]
    if t == "number":
        ok = isinstance(data, (int, float)) and not isinstance(data, bool)
        return [] if ok else [_bad_value(at, "TYPE_DOUBLE", data)]
    return []


def discovery_doc(filename: str) -> dict | None:
    """One of Google's discovery documents as shipped by google-api-python-client (None without it)."""
    try:
        from importlib import resources

        ref = resources.files("googleapiclient.discovery_cache") / "documents" / filename
        return json.loads(ref.read_text(encoding="utf-8"))
    except (ImportError, FileNotFoundError, ModuleNotFoundError, OSError, ValueError):
        return None


def discovery_methods(doc: dict) -> Iterator[dict]:
    """Every method of a discovery document (nested resources included)."""
    def walk(res: dict) -> Iterator[dict]:
        yield from res.get("methods", {}).values()
        for sub in res.get("resources", {}).values():
            yield from walk(sub)

    yield from walk(doc)


def template_regex(template: str) -> str:
    """A regex for a URI template: google.api.http `{name=projects/*}` / `{name}` or a discovery
    `{+name}` / `{projectsId}` (one segment; `**` and `+` many)."""
    out, pos = [], 0
    for m in re.finditer(r"\{([^}]+)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        var = m.group(1)
        if "=" in var:
            pattern = var.split("=", 1)[1]
            parts = [r"[^/:]+" if seg == "*" else (r".+?" if seg == "**" else re.escape(seg))
                     for seg in pattern.split("/")]
            out.append("/".join(parts))
        elif var.startswith("+"):
            out.append(r".+?")
        else:
            out.append(r"[^/:]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


# --- the route table -----------------------------------------------------------------------------


@dataclass
class Binding:
    method: str               # HTTP method, upper case
    regex: re.Pattern
    name: str                 # what the binding is, e.g. "CreateClusterRequest" / "serviceusage.services.enable"
    check: Callable[[Any], list[Violation]]
    parse: Callable[[Any], Any] | None = None  # body -> the request message (for RULES)


def _proto_bindings() -> list[Binding]:
    import importlib

    out: list[Binding] = []
    for mod_name, cls_name in _TRANSPORTS:
        try:
            transport = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError):
            continue
        for attr in dir(transport):
            if not (attr.startswith("_") and attr[1:2].isupper()) or attr.startswith("_Base"):
                continue
            method = getattr(transport, attr)
            options = getattr(method, "_get_http_options", None)
            call = getattr(method, "__call__", None)
            if options is None or call is None:
                continue
            try:
                req_type = inspect.signature(call).parameters["request"].annotation
            except (KeyError, ValueError, TypeError):
                continue
            pb = getattr(req_type, "pb", None)
            pb_cls = pb() if callable(pb) and getattr(req_type, "meta", None) is not None else req_type
            desc = getattr(pb_cls, "DESCRIPTOR", None)
            if desc is None or not hasattr(desc, "fields_by_name"):
                continue
            for opt in options():
                body = opt.get("body")
                if not body:
                    continue  # a method without a body: its fields come from the URL
                target = desc if body == "*" else desc.fields_by_name[body].message_type
                out.append(Binding(opt["method"].upper(), re.compile("^" + template_regex(opt["uri"]) + "$"),
                                   desc.name, _proto_check(target), _proto_parse(pb_cls, body)))
    return out


def _proto_check(desc) -> Callable[[Any], list[Violation]]:
    return lambda body: check_message(desc, body)


def _proto_parse(pb_cls, body_field: str) -> Callable[[Any], Any]:
    def parse(body: Any) -> Any:
        from google.protobuf import json_format

        msg = pb_cls()
        target = msg if body_field == "*" else getattr(msg, body_field)
        json_format.ParseDict(body, target, ignore_unknown_fields=False)
        return msg

    return parse


def _discovery_bindings(filename: str) -> list[Binding]:
    out: list[Binding] = []
    doc = discovery_doc(filename)
    if doc is not None:
        base = "/" + doc.get("servicePath", "")
        schemas = doc.get("schemas", {})
        for m in discovery_methods(doc):
            req = m.get("request")
            if not req or m.get("httpMethod") not in ("POST", "PUT", "PATCH"):
                continue
            path = m.get("flatPath") or m["path"]
            schema = {"$ref": req["$ref"]}
            out.append(Binding(m["httpMethod"], re.compile("^" + re.escape(base) + template_regex(path) + "$"),
                               m.get("id", path), _discovery_check(schemas, schema)))
    return out


def _discovery_check(schemas: dict, schema: dict) -> Callable[[Any], list[Violation]]:
    return lambda body: check_discovery(schemas, schema, body)


_lock = threading.Lock()
_tables: dict[str, list[Binding]] = {}
_SOURCES = ("proto", *_DISCOVERY)


def _sources(path: str) -> list[str]:
    """The tables a path can be in: compute's document for /compute/..., the others otherwise."""
    compute = path.startswith("/compute/")
    return [s for s in _SOURCES if s.startswith("compute.") == compute]


def _table(source: str) -> list[Binding]:
    """One source's bindings, built once, on the first request that needs it."""
    with _lock:
        if source not in _tables:
            _tables[source] = _proto_bindings() if source == "proto" else _discovery_bindings(source)
        return _tables[source]


def prepare(path: str) -> None:
    """Build the tables `path` needs (imports the transports / reads a document: ~1 s once)."""
    for src in _sources(path):
        _table(src)


def bindings() -> list[Binding]:
    """Every binding (the installed clients' first, then the discovery documents')."""
    return [b for src in _SOURCES for b in _table(src)]


def binding_for(method: str, path: str) -> Binding | None:
    for src in _sources(path):
        for b in _table(src):
            if b.method == method and b.regex.match(path):
                return b
    return None


# --- GKE's checks on a parsed request ------------------------------------------------------------


def _rule_create_cluster(req) -> None:
    c = req.cluster
    if not c.name:
        raise invalid("Cluster.name must be specified.")
    pools = list(c.node_pools)
    if pools and c.initial_node_count:
        raise invalid("Cluster.initial_node_count must be unset when Cluster.node_pools is specified: "
                      "set the node count on each node pool (node_pools[].initial_node_count).")
    if pools and c.HasField("node_config"):
        raise invalid("Cluster.node_config must be unset when Cluster.node_pools is specified: set the "
                      "node configuration on each node pool (node_pools[].config).")
    if c.initial_node_count < 0:
        raise invalid("Cluster.initial_node_count must be greater than or equal to zero.")
    seen: set[str] = set()
    for i, p in enumerate(pools):
        _check_pool(p, f"Cluster.node_pools[{i}]")
        if p.name in seen:
            raise invalid(f"Cluster.node_pools[{i}].name \"{p.name}\" is used by more than one node pool.")
        seen.add(p.name)


def _check_pool(p, where: str) -> None:
    if not p.name:
        raise invalid(f"{where}.name must be specified.")
    if p.initial_node_count < 0:
        raise invalid(f"{where}.initial_node_count must be greater than or equal to zero.")
    a = p.autoscaling
    if a.min_node_count < 0 or a.max_node_count < 0:
        raise invalid(f"{where}.autoscaling: min_node_count and max_node_count must be greater than or equal to zero.")
    if (a.total_min_node_count or a.total_max_node_count) and (a.min_node_count or a.max_node_count):
        raise invalid(f"{where}.autoscaling: total_min_node_count/total_max_node_count and "
                      "min_node_count/max_node_count are mutually exclusive.")
    if a.enabled and a.max_node_count < a.min_node_count:
        raise invalid(f"{where}.autoscaling.max_node_count ({a.max_node_count}) must be greater than or equal to "
                      f"min_node_count ({a.min_node_count}).")


def _rule_create_node_pool(req) -> None:
    _check_pool(req.node_pool, "NodePool")


def _rule_set_size(req) -> None:
    if req.node_count < 0:
        raise invalid(f"NodePool.node_count must be greater than or equal to zero (got {req.node_count}).")


def _rule_set_autoscaling(req) -> None:
    """SetNodePoolAutoscalingRequest.autoscaling: "Required"; the same limits as a pool's."""
    a = req.autoscaling
    where = "NodePool.autoscaling"
    if a.min_node_count < 0 or a.max_node_count < 0:
        raise invalid(f"{where}: min_node_count and max_node_count must be greater than or equal to zero.")
    if (a.total_min_node_count or a.total_max_node_count) and (a.min_node_count or a.max_node_count):
        raise invalid(f"{where}: total_min_node_count/total_max_node_count and "
                      "min_node_count/max_node_count are mutually exclusive.")
    if a.enabled and max(a.max_node_count, a.total_max_node_count) < max(a.min_node_count, a.total_min_node_count):
        raise invalid(f"{where}.max_node_count ({a.max_node_count or a.total_max_node_count}) must be greater than "
                      f"or equal to min_node_count ({a.min_node_count or a.total_min_node_count}).")
    if a.enabled and not (a.max_node_count or a.total_max_node_count):
        raise invalid(f"{where}.max_node_count must be greater than zero when autoscaling is enabled.")


RULES: dict[str, Callable[[Any], None]] = {
    "CreateClusterRequest": _rule_create_cluster,
    "CreateNodePoolRequest": _rule_create_node_pool,
    "SetNodePoolSizeRequest": _rule_set_size,
    "SetNodePoolAutoscalingRequest": _rule_set_autoscaling,
}


async def check(method: str, path: str, body: Any) -> None:
    """check_request for the emulator's event loop: the first request building a table does it
    in a worker thread, so the loop never waits on imports."""
    if method in ("POST", "PUT", "PATCH") and not all(src in _tables for src in _sources(path)):
        await asyncio.get_running_loop().run_in_executor(None, prepare, path)
    check_request(method, path, body)


def check_request(method: str, path: str, body: Any) -> None:
    """Raise Google's 400 when the body of `method path` is not what the service accepts; a route
    the table does not know (or a method without a body) is left to its handler."""
    if method not in ("POST", "PUT", "PATCH"):
        return
    b = binding_for(method, path)
    if b is None:
        return
    violations = b.check(body)
    if violations:
        raise bad_request(violations)
    if b.parse is None:
        return
    try:
        msg = b.parse(body)
    except Exception as e:  # noqa: BLE001 - anything the walk above let through is still Google's 400
        raise bad_request([Violation(f"Invalid JSON payload received. {e}".strip(), None)]) from None
    rule = RULES.get(b.name)
    if rule is not None:
        rule(msg)
