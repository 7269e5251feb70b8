"""The emulated Kubernetes API server of one simulated cluster (aiohttp, HTTPS or plain HTTP).

    srv = KubeApiServer(store, logs, token="secret", tls=make_tls(), proxy=dataplane.proxy,
                        faults=Faults())
    port = await srv.start("127.0.0.1", 0)
    ...
    await srv.stop()

Serves: /version /healthz /readyz /livez (no auth, like GKE's public-info-viewer), legacy
discovery, an /openapi/v3 stub, and for every store type (built-in and CRD-served) the REST
paths: list (all namespaces too), watch, create, get, replace, patch (merge, json, strategic,
apply), delete, deletecollection, and the subresources status, scale, log, proxy, eviction.

`proxy` is an async callable `(request, kind, namespace, name, port, path) -> web.Response` for
`.../services/NAME[:PORT]/proxy/PATH` and `.../pods/NAME[:PORT]/proxy/PATH`: kind is "services"
or "pods", port the string after ":" (a number or a port name) or None, path starts with "/" and
excludes the query string (read it from `request`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..logs import LogBook
from ..store import (ApiError, ResourceType, Store, already_exists, conflict, invalid, not_found, now_rfc3339,
                     random_suffix)
from . import admission, discovery, openapi, patch as patches
from .codec import (check_acceptable, decode_body, error_response, is_dry_run, json_response,
                    method_not_allowed, qbool, qint, resource_not_found, success_status, wants_partial,
                    wants_table)
from .faults import Faults
from .podlogs import serve_log
from .tables import TableMaker
from .watch import serve_watch

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ProxyFn = Callable[[web.Request, str, str, str, "str | None", str], Awaitable[web.StreamResponse]]

_PUBLIC = {"/healthz", "/readyz", "/livez", "/version", "/version/"}
_RETURNS_DELETED = {("", "pods"), ("", "services")}  # ReturnDeletedObject in the apiserver registries
_STATUS_RESET_ON_CREATE = {("", "pods"), ("apps", "deployments"), ("apps", "replicasets"), ("", "services")}
_SCALE_BUILTIN = {("apps", "deployments"), ("apps", "replicasets")}

# Served without objects in the store: the caller's own permissions (the token is cluster-admin).
VIRTUAL_TYPES = (
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                 verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
                 verbs=("create",)),
)


@dataclass
class Route:
    group: str
    version: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    raw_index: int  # index in the raw path segments of the first segment after the subresource
    watch_prefix: bool = False


class KubeApiServer:
    def __init__(self, store: Store, logs: LogBook, *, token: str | None, tls=None,
                 proxy: ProxyFn | None = None, faults: Faults | None = None,
                 git_version: str = discovery.GIT_VERSION):
        self.store = store
        self.logs = logs
        self.token = token
        self.tls = tls
        self.proxy = proxy
        self.faults = faults
        self.git_version = git_version
        self.closing = False
        self.port: int | None = None
        self.host: str | None = None
        self.requests = 0
        self._streams: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tables: dict[tuple, TableMaker] = {}

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        ssl_ctx = self.tls.server_context() if self.tls is not None else None
        self._site = web.TCPSite(self._runner, host, port, ssl_context=ssl_ctx, reuse_address=True)
        await self._site.start()
        sockets = self._site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self.host = host
        self.closing = False
        return self.port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self.port}"

    async def stop(self) -> None:
        self.closing = True
        for t in list(self._streams):
            t.cancel()
        if self._streams:
            await asyncio.wait(list(self._streams), timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._site = None

    # --- helpers -----------------------------------------------------------------------------------
    def table_maker(self, rt: ResourceType) -> TableMaker:
        crd = None
        if rt.custom:
            crd = self.store.try_get(self.store.type_for("customresourcedefinitions", "apiextensions.k8s.io"),
                                     None, f"{rt.plural}.{rt.group}")
            key = (rt, (crd or {}).get("metadata", {}).get("resourceVersion"))
        else:
            key = (rt, None)
        maker = self._tables.get(key)
        if maker is None:
            if len(self._tables) > 256:
                self._tables.clear()
            maker = self._tables[key] = TableMaker(rt, crd)
        return maker

    def _authenticate(self, request: web.Request) -> None:
        if not self.token:
            return
        auth = request.headers.get("Authorization", "")
        scheme, _, presented = auth.partition(" ")
        ok = scheme.lower() == "bearer" and presented.strip() == self.token
        if ok and self.faults is not None and self.faults.token_revoked(self.token):
            ok = False
        if not ok:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    # --- entry point ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        path = request.path
        try:
            if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
                return web.Response(text="ok", content_type="text/plain")
            if path.rstrip("/") == "/version":
                return json_response(discovery.version_info(self.git_version))
            self._authenticate(request)
            resp = await self._route(request, path)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s", request.method, request.path_qs, resp.status)
            return resp
        except ApiError as e:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s %s", request.method, request.path_qs, e.code, e.message)
            headers = {"Retry-After": "1"} if e.code == 429 else None
            return error_response(e, headers)
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug must not kill the server: 500 like the apiserver
            log.exception("emulated apiserver: %s %s", request.method, request.path_qs)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {type(e).__name__}: {e}"))

    def _maybe_fault(self, request: web.Request) -> None:
        if self.faults is None:
            return
        code = self.faults.pick_error()
        if code == 429:
            raise ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                           {"retryAfterSeconds": 1})
        if code == 500:
            raise ApiError(500, "InternalError",
                           "Internal error occurred: etcdserver: request timed out (simulated fault)")

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        segs = [s for s in path.split("/")]
        segs = segs[1:] if segs and segs[0] == "" else segs
        if segs and segs[-1] == "" and "proxy" not in segs:
            segs = segs[:-1]
        types = self.store.types() + list(VIRTUAL_TYPES)
        method = request.method
        if not segs:
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3",
                                            "/readyz", "/version"]})
        head = segs[0]
        if head == "openapi":
            return self._openapi(segs, types, request.headers.get("Accept", ""))
        if head == "api":
            if len(segs) == 1:
                return json_response(discovery.api_versions())
            if segs[1] != "v1":
                raise resource_not_found()
            if len(segs) == 2:
                return json_response(discovery.resource_list(types, "", "v1"))
            group, version, rest, base = "", "v1", segs[2:], 2
        elif head == "apis":
            if len(segs) == 1:
                return json_response(discovery.api_group_list(types))
            if len(segs) == 2:
                doc = discovery.api_group(types, segs[1])
                if doc is None:
                    raise resource_not_found()
                return json_response(doc)
            if len(segs) == 3:
                doc = discovery.resource_list(types, segs[1], segs[2])
                if doc is None:
                    raise resource_not_found()
                return json_response(doc)
            group, version, rest, base = segs[1], segs[2], segs[3:], 3
        else:
            raise resource_not_found()

        if group == "authorization.k8s.io" and version == "v1" and len(rest) == 1 and \
                rest[0] in ("selfsubjectaccessreviews", "selfsubjectrulesreviews"):
            if method != "POST":
                raise method_not_allowed()
            return await self._self_review(request, rest[0])
        route = self._parse(group, version, rest, base)
        q = request.query
        is_watch = route.watch_prefix or (qbool(q.get("watch")) and route.sub is None and
                                          (route.name is None or route.watch_prefix) and method == "GET")
        if not is_watch:
            self._maybe_fault(request)
        return await self._dispatch(request, route, is_watch)

    def _parse(self, group: str, version: str, rest: list[str], base: int) -> Route:
        watch_prefix = False
        if rest and rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
            base += 1
        if not rest:
            raise resource_not_found()
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and len(rest) == 3 and
                                                                rest[2] in ("status", "finalize")):
            namespace = rest[1]
            rest = rest[2:]
            base += 2
        plural = rest[0]
        rt = self.store.resolve(group, version, plural)
        if rt is None:
            raise resource_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise resource_not_found()
        if namespace is None and rt.namespaced and name is not None:
            raise resource_not_found()
        if sub is not None:
            allowed = set(rt.subresources)
            if rt.key in (("", "pods"), ("", "services"), ("", "nodes")):
                allowed.add("proxy")
            if rt.key == ("", "namespaces"):
                allowed.add("finalize")
            if sub not in allowed:
                raise resource_not_found()
            if len(rest) > 3 and sub != "proxy":
                raise resource_not_found()
        if name is not None and name == "":
            raise resource_not_found()
        return Route(group, version, rt, namespace, name, sub, base + 3, watch_prefix)

    # --- dispatch --------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request, r: Route, is_watch: bool) -> web.StreamResponse:
        m = request.method
        q = request.query
        accept = request.headers.get("Accept", "")
        if r.sub == "proxy":
            return await self._proxy(request, r)
        check_acceptable(accept)
        table_api = wants_table(accept)
        include = q.get("includeObject") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise ApiError(400, "BadRequest", f"includeObject: Unsupported value: {include!r}")
        if is_watch:
            if m != "GET":
                raise method_not_allowed()
            fs = q.get("fieldSelector")
            if r.name is not None:  # /watch/.../NAME: the legacy single-object watch
                fs = f"metadata.name={r.name}" + (f",{fs}" if fs else "")
                q = q.copy()
                q["fieldSelector"] = fs
            return await serve_watch(self, request, r.rt, r.namespace, q, table_api, include)
        if r.sub is None:
            if r.name is None:
                if m == "GET":
                    return self._list(r, q, table_api, include, accept)
                if m == "POST":
                    if r.rt.namespaced and r.namespace is None:
                        raise method_not_allowed()
                    return await self._create(request, r)
                if m == "DELETE":
                    return await self._delete_collection(request, r)
                raise method_not_allowed()
            if m == "GET":
                obj = self.store.get(r.rt, r.namespace, r.name)
                return self._render_one(r.rt, obj, table_api, include, accept)
            if m == "PUT":
                return await self._replace(request, r)
            if m == "PATCH":
                return await self._patch(request, r)
            if m == "DELETE":
                return await self._delete(request, r)
            raise method_not_allowed()
        if r.sub == "status":
            if m == "GET":
                return json_response(self.store.get(r.rt, r.namespace, r.name))
            if m == "PUT":
                return await self._replace(request, r, subresource="status")
            if m == "PATCH":
                return await self._patch(request, r, subresource="status")
            raise method_not_allowed()
        if r.sub == "scale":
            return await self._scale(request, r)
        if r.sub == "log":
            if m != "GET":
                raise method_not_allowed()
            return await serve_log(self, request, r.namespace or "default", r.name or "", q)
        if r.sub == "eviction":
            if m != "POST":
                raise method_not_allowed()
            return await self._evict(request, r)
        if r.sub == "finalize":
            if m != "PUT":
                raise method_not_allowed()
            return await self._finalize(request, r)
        raise resource_not_found()

    # --- reads -----------------------------------------------------------------------------------
    def _render_one(self, rt: ResourceType, obj: Obj, table_api: str | None, include: str, accept: str):
        if table_api:
            return json_response(self.table_maker(rt).table([obj], obj["metadata"].get("resourceVersion", ""),
                                                            include, table_api))
        if wants_partial(accept):
            return json_response({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": obj.get("metadata", {})})
        return json_response(obj)

    def _list(self, r: Route, q, table_api: str | None, include: str, accept: str) -> web.Response:
        items, rv = self.store.list(r.rt, r.namespace, q.get("labelSelector"), q.get("fieldSelector"))
        if table_api:
            return json_response(self.table_maker(r.rt).table(items, str(rv), include, table_api))
        if wants_partial(accept):
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": {"resourceVersion": str(rv)},
                                  "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                             "metadata": o.get("metadata", {})} for o in items]})
        return json_response({"kind": r.rt.list_kind, "apiVersion": r.rt.api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": items})

    # --- writes ----------------------------------------------------------------------------------
    async def _body(self, request: web.Request, what: str = "object") -> Any:
        raw = await request.read()
        return decode_body(raw, request.headers.get("Content-Type"), what)

    def _prepare_new(self, r: Route, obj: Obj) -> Obj:
        """Decode checks, defaults and validation of an object to create (namespace from the URL)."""
        rt = r.rt
        admission.check_type_meta(rt, obj)
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if rt.namespaced:
            if md.get("namespace") and r.namespace and md["namespace"] != r.namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            md["namespace"] = r.namespace
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "selfLink"):
            md.pop(k, None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.key in _STATUS_RESET_ON_CREATE or (rt.custom and "status" in rt.subresources):
            obj.pop("status", None)
        admission.apply_defaults(self.store, rt, obj, create=True)
        if not md.get("name") and not md.get("generateName"):
            raise invalid(rt, "", "metadata.name: Required value: name or generateName is required")
        admission.validate(rt, obj)
        return obj

    def _check_namespace(self, r: Route) -> None:
        if r.rt.namespaced and r.namespace is not None:
            ns = self.store.try_get(self.store.type_for("namespaces"), None, r.namespace)
            if ns is None:
                raise ApiError(404, "NotFound", f'namespaces "{r.namespace}" not found',
                               {"name": r.namespace, "kind": "namespaces"})
            if (ns.get("metadata") or {}).get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"{r.rt.plural} \"{(r.name or '')}\" is forbidden: unable to create "
                                                 f"new content in namespace {r.namespace} because it is being "
                                                 "terminated")

    def _dry_create(self, r: Route, obj: Obj) -> Obj:
        md = obj["metadata"]
        if not md.get("name"):
            md["name"] = md["generateName"] + random_suffix()
        if self.store.try_get(r.rt, r.namespace, md["name"]) is not None:
            raise already_exists(r.rt, md["name"])
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        return obj

    async def _create(self, request: web.Request, r: Route) -> web.Response:
        body = await self._body(request)
        obj = self._prepare_new(r, body)
        self._check_namespace(r)
        q = request.query
        if is_dry_run(q):
            return json_response(self._dry_create(r, obj), status=201)
        created = self.store.create(r.rt, obj, r.namespace)
        return json_response(created, status=201)

    def _carry_over(self, cur: Obj, new: Obj) -> None:
        """Fields a PUT keeps when the body leaves them out."""
        nmd, cmd = new.setdefault("metadata", {}), cur.get("metadata", {})
        if "managedFields" not in nmd and cmd.get("managedFields"):
            nmd["managedFields"] = cmd["managedFields"]

    async def _replace(self, request: web.Request, r: Route, subresource: str | None = None) -> web.Response:
        body = await self._body(request)
        rt = r.rt
        admission.check_type_meta(rt, body)
        md = body.setdefault("metadata", {})
        if md.get("name") and md["name"] != r.name:
            raise ApiError(400, "BadRequest", f"the name of the object ({md['name']}) does not match the name on "
                                              f"the URL ({r.name})")
        if rt.namespaced and md.get("namespace") and md["namespace"] != r.namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                              "sent on the request")
        md["name"] = r.name
        if rt.namespaced:
            md["namespace"] = r.namespace
        cur = self.store.get(rt, r.namespace, r.name)
        if md.get("uid") and md["uid"] != cur["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: {cur["metadata"]["uid"]}, '
                                            f'UID in object meta: {md["uid"]}')
        return self._write(request, r, cur, body, subresource, check_rv=True)

    def _write(self, request: web.Request, r: Route, cur: Obj, new: Obj, subresource: str | None,
               check_rv: bool) -> web.Response:
        rt = r.rt
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        self._carry_over(cur, new)
        if subresource is None:
            admission.apply_defaults(self.store, rt, new, create=False, old=cur)
            admission.validate(rt, new, old=cur)
        if check_rv and new["metadata"].get("resourceVersion") and \
                new["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise conflict(rt, r.name or "")
        if is_dry_run(request.query):
            out = copy.deepcopy(cur)
            if subresource == "status":
                out["status"] = new.get("status", {})
            else:
                keep_status = out.get("status") if "status" in rt.subresources else None
                out = new
                for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                    if k in cur["metadata"]:
                        out["metadata"][k] = cur["metadata"][k]
                if keep_status is not None:
                    out["status"] = keep_status
            return json_response(out)
        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        updated = self.store.update(rt, new, subresource=subresource, check_rv=True)
        return json_response(updated)

    async def _patch(self, request: web.Request, r: Route, subresource: str | None = None) -> web.Response:
        rt = r.rt
        ct = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        q = request.query
        if ct not in (patches.MERGE_PATCH, patches.JSON_PATCH, patches.STRATEGIC_PATCH, patches.APPLY_PATCH):
            raise patches.unsupported_patch(rt.custom)
        if ct == patches.STRATEGIC_PATCH and rt.custom:
            raise patches.unsupported_patch(True)
        if ct == patches.APPLY_PATCH:
            if not q.get("fieldManager"):
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                                               "value: is required for apply patch",
                               {"group": "meta.k8s.io", "kind": "PatchOptions",
                                "causes": [{"reason": "FieldValueRequired", "field": "fieldManager",
                                            "message": "Required value: is required for apply patch"}]})
        elif "force" in q:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                                           "specified for non-apply patch")
        body = await self._body(request, "patch")
        if ct == patches.APPLY_PATCH:
            return self._apply(request, r, body, subresource)
        cur = self.store.get(rt, r.namespace, r.name)
        if ct == patches.MERGE_PATCH:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal array into Go value of type "
                                                  "map[string]interface {}")
            new = patches.merge_patch(cur, body)
        elif ct == patches.JSON_PATCH:
            new = patches.json_patch(cur, body)
        else:
            new = patches.strategic_merge_patch(cur, body)
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patch produced an invalid object")
        nmd = new.setdefault("metadata", {})
        if nmd.get("name") != r.name:
            raise ApiError(400, "BadRequest", f"the name of the object ({nmd.get('name')}) does not match the name "
                                              f"on the URL ({r.name})")
        nmd["name"] = r.name
        if rt.namespaced:
            nmd["namespace"] = r.namespace
        if nmd.get("uid") != cur["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition does not match")
        return self._write(request, r, cur, new, subresource, check_rv=True)

    def _apply(self, request: web.Request, r: Route, body: Any, subresource: str | None) -> web.Response:
        rt = r.rt
        q = request.query
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "error decoding YAML: the body must be an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise ApiError(400, "BadRequest", "invalid object type: /, Kind=")
        admission.check_type_meta(rt, body)
        md = body.get("metadata") or {}
        if md.get("name") and md["name"] != r.name:
            raise ApiError(400, "BadRequest", f"the name of the object ({md['name']}) does not match the name on "
                                              f"the URL ({r.name})")
        if md.get("managedFields"):
            raise ApiError(400, "BadRequest", "metadata.managedFields must be nil")
        manager = q.get("fieldManager", "")
        cur = self.store.try_get(rt, r.namespace, r.name)
        now = now_rfc3339()
        if cur is None:
            if subresource is not None:
                raise self._not_found(rt, r.name or "")
            applied = copy.deepcopy(body)
            applied.setdefault("metadata", {})["name"] = r.name
            new = patches.server_side_apply(None, applied, manager, rt.api_version, now)
            obj = self._prepare_new(r, new)
            self._check_namespace(r)
            if is_dry_run(q):
                return json_response(self._dry_create(r, obj), status=201)
            return json_response(self.store.create(rt, obj, r.namespace), status=201)
        rv = md.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(rt, r.name or "")
        new = patches.server_side_apply(cur, body, manager, rt.api_version, now, subresource)
        new.setdefault("metadata", {})["name"] = r.name
        if rt.namespaced:
            new["metadata"]["namespace"] = r.namespace
        return self._write(request, r, cur, new, subresource, check_rv=False)

    def _not_found(self, rt: ResourceType, name: str) -> ApiError:
        return not_found(rt, name)

    async def _delete_options(self, request: web.Request) -> Obj:
        opts: Obj = {}
        raw = await request.read()
        if raw.strip():
            body = decode_body(raw, request.headers.get("Content-Type"), "DeleteOptions")
            if isinstance(body, dict):
                opts.update(body)
        q = request.query
        if q.get("gracePeriodSeconds") not in (None, ""):
            opts["gracePeriodSeconds"] = qint(q, "gracePeriodSeconds")
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents"):
            opts["orphanDependents"] = qbool(q["orphanDependents"])
        if opts.get("propagationPolicy") not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                                           f'value: "{opts["propagationPolicy"]}": supported values: "Foreground", '
                                           '"Background", "Orphan", "nil"')
        g = opts.get("gracePeriodSeconds")
        if g is not None and (not isinstance(g, int) or g < 0):
            raise ApiError(422, "Invalid", f"DeleteOptions.meta.k8s.io \"\" is invalid: gracePeriodSeconds: Invalid "
                                           f"value: {g}: must be greater than or equal to 0")
        return opts

    def _delete_one(self, rt: ResourceType, namespace: str | None, name: str, opts: Obj, dry: bool) -> Obj:
        cur = self.store.get(rt, namespace, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != cur["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.plural} "{name}": Precondition '
                                            f'failed: UID in precondition: {pre["uid"]}, UID in object meta: '
                                            f'{cur["metadata"]["uid"]}')
        if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.plural} "{name}": Precondition '
                                            f'failed: ResourceVersion in precondition: {pre["resourceVersion"]}, '
                                            f'ResourceVersion in object meta: {cur["metadata"]["resourceVersion"]}')
        if dry:
            return cur
        propagation = opts.get("propagationPolicy")
        if propagation is None and opts.get("orphanDependents"):
            propagation = "Orphan"
        return self.store.delete(rt, namespace, name, grace_period_seconds=opts.get("gracePeriodSeconds"),
                                 propagation=propagation)

    async def _delete(self, request: web.Request, r: Route) -> web.Response:
        opts = await self._delete_options(request)
        rt = r.rt
        dry = is_dry_run(request.query, opts)
        out = self._delete_one(rt, r.namespace, r.name or "", opts, dry)
        still_there = dry or self.store.try_get(rt, r.namespace, r.name or "") is not None
        if still_there or rt.key in _RETURNS_DELETED or rt.custom \
                or rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            return json_response(out)
        return json_response(success_status({"name": r.name, "group": rt.group, "kind": rt.plural,
                                             "uid": out["metadata"].get("uid")}))

    async def _delete_collection(self, request: web.Request, r: Route) -> web.Response:
        opts = await self._delete_options(request)
        q = request.query
        dry = is_dry_run(q, opts)
        items, rv = self.store.list(r.rt, r.namespace, q.get("labelSelector"), q.get("fieldSelector"))
        out = []
        for o in items:
            md = o["metadata"]
            try:
                out.append(self._delete_one(r.rt, md.get("namespace"), md["name"], opts, dry))
            except ApiError as e:
                if e.code != 404:
                    raise
        return json_response({"kind": r.rt.list_kind, "apiVersion": r.rt.api_version,
                              "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": out})

    async def _self_review(self, request: web.Request, plural: str) -> web.Response:
        ct = request.headers.get("Content-Type", "")
        if "protobuf" in ct:  # kubectl auth can-i: the answer does not depend on the question
            await request.read()
            body: Any = {}
        else:
            body = await self._body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        kind = "SelfSubjectAccessReview" if plural == "selfsubjectaccessreviews" else "SelfSubjectRulesReview"
        out: Obj = {"kind": kind, "apiVersion": "authorization.k8s.io/v1",
                    "metadata": {"creationTimestamp": None}, "spec": body.get("spec") or {}}
        if kind == "SelfSubjectAccessReview":
            out["status"] = {"allowed": True}
        else:
            out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                             "incomplete": False}
        return json_response(out, status=201)

    # --- subresources ----------------------------------------------------------------------------
    def _scale_paths(self, rt: ResourceType) -> tuple[str, str, str | None]:
        if rt.key in _SCALE_BUILTIN:
            return ".spec.replicas", ".status.replicas", None
        crd = self.store.try_get(self.store.type_for("customresourcedefinitions", "apiextensions.k8s.io"),
                                 None, f"{rt.plural}.{rt.group}")
        for v in ((crd or {}).get("spec") or {}).get("versions") or []:
            if v.get("name") == rt.version:
                sc = ((v.get("subresources") or {}).get("scale")) or {}
                return (sc.get("specReplicasPath", ".spec.replicas"), sc.get("statusReplicasPath", ".status.replicas"),
                        sc.get("labelSelectorPath"))
        return ".spec.replicas", ".status.replicas", None

    @staticmethod
    def _get_path(obj: Obj, path: str) -> Any:
        cur: Any = obj
        for p in path.strip(".").split("."):
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    @staticmethod
    def _set_path(obj: Obj, path: str, value: Any) -> None:
        parts = path.strip(".").split(".")
        cur = obj
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value

    def _to_scale(self, rt: ResourceType, obj: Obj) -> Obj:
        spec_p, status_p, sel_p = self._scale_paths(rt)
        md = obj["metadata"]
        if rt.key in _SCALE_BUILTIN:
            sel = (obj.get("spec") or {}).get("selector") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items()))
        else:
            selector = self._get_path(obj, sel_p) if sel_p else None
        status: Obj = {"replicas": int(self._get_path(obj, status_p) or 0)}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md["uid"],
                             "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"]},
                "spec": {"replicas": int(self._get_path(obj, spec_p) or 0)}, "status": status}

    async def _scale(self, request: web.Request, r: Route) -> web.Response:
        rt, m = r.rt, request.method
        cur = self.store.get(rt, r.namespace, r.name or "")
        scale = self._to_scale(rt, cur)
        if m == "GET":
            return json_response(scale)
        if m == "PUT":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body must be a Scale object")
            new_scale = body
        elif m == "PATCH":
            ct = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            body = await self._body(request, "patch")
            if ct == patches.MERGE_PATCH:
                new_scale = patches.merge_patch(scale, body)
            elif ct == patches.JSON_PATCH:
                new_scale = patches.json_patch(scale, body)
            elif ct == patches.STRATEGIC_PATCH:
                new_scale = patches.strategic_merge_patch(scale, body)
            elif ct == patches.APPLY_PATCH:
                new_scale = patches.merge_patch(scale, {"spec": (body or {}).get("spec") or {}})
            else:
                raise patches.unsupported_patch(rt.custom)
        else:
            raise method_not_allowed()
        rv = ((new_scale.get("metadata") or {}).get("resourceVersion"))
        if m == "PUT" and rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(rt, r.name or "")
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{r.name}" is invalid: spec.replicas: Invalid value: '
                                           f"{replicas!r}: must be greater than or equal to 0")
        if is_dry_run(request.query):
            scale["spec"]["replicas"] = replicas
            return json_response(scale)
        spec_p = self._scale_paths(rt)[0]
        new = copy.deepcopy(cur)
        self._set_path(new, spec_p, replicas)
        updated = self.store.update(rt, new, check_rv=False)
        return json_response(self._to_scale(rt, updated))

    async def _evict(self, request: web.Request, r: Route) -> web.Response:
        body = await self._body(request, "Eviction")
        opts = (body or {}).get("deleteOptions") or {}
        self._delete_one(r.rt, r.namespace, r.name or "", opts, is_dry_run(request.query, opts))
        return json_response(success_status(), status=201)

    async def _finalize(self, request: web.Request, r: Route) -> web.Response:
        body = await self._body(request)
        cur = self.store.get(r.rt, None, r.name or "")
        new = copy.deepcopy(cur)
        new.setdefault("spec", {})["finalizers"] = ((body or {}).get("spec") or {}).get("finalizers") or []
        return json_response(self.store.update(r.rt, new, check_rv=False))

    async def _proxy(self, request: web.Request, r: Route) -> web.StreamResponse:
        if r.rt.key not in (("", "services"), ("", "pods")):
            raise ApiError(503, "ServiceUnavailable", f"no proxy is available for {r.rt.plural}")
        target = r.name or ""
        parts = target.split(":")
        scheme = None
        if len(parts) == 3:
            scheme, name, port = parts
        elif len(parts) == 2:
            name, port = parts
        else:
            name, port = parts[0], None
        del scheme
        kind = r.rt.plural
        self.store.get(r.rt, r.namespace, name)  # 404 when missing
        raw_segs = request.rel_url.raw_path.split("/")
        # raw_segs[0] == "" (leading slash); Route.raw_index counts segments after it
        rest = raw_segs[r.raw_index + 1:] if len(raw_segs) > r.raw_index + 1 else []
        path = "/" + "/".join(rest)
        if self.proxy is None:
            raise ApiError(503, "ServiceUnavailable",
                           f'no endpoints available for {"service" if kind == "services" else "pod"} "{name}"')
        return await self.proxy(request, kind, r.namespace or "default", name, port or None, path)

    # --- openapi ---------------------------------------------------------------------------------
    def _openapi(self, segs: list[str], types: list[ResourceType], accept: str) -> web.Response:
        if segs[1:] == ["v2"]:
            if "protobuf" in accept.split(",")[0]:
                return web.Response(body=openapi.v2_stub_protobuf(), content_type=openapi.V2_PROTO_CT)
            return json_response(openapi.v2_stub())
        if len(segs) >= 2 and segs[1] == "v3":
            if len(segs) == 2:
                return json_response(openapi.index(types))
            rest = segs[2:]
            if rest[0] == "api" and len(rest) == 2:
                doc = openapi.gv_document(types, "", rest[1])
            elif rest[0] == "apis" and len(rest) == 3:
                doc = openapi.gv_document(types, rest[1], rest[2])
            else:
                doc = None
            if doc is not None:
                return json_response(doc, headers={"Cache-Control": "no-cache, private"})
        raise resource_not_found()


__all__ = ["KubeApiServer", "Faults", "Route"]
