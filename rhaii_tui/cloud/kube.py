"""Kubernetes: a session per cluster, idempotent apply, a list-watch-relist loop and a log follower.

- `KubeSession(profile, access)`: typed API accessors (core, apps, custom, networking) over one
  ApiClient whose bearer token the profile refreshes before each request; `ensure_namespace`,
  server-side `apply` (field manager "rhaii-tui", force) for any kind through the dynamic path,
  `get` (None when absent), `delete`.
- `ListWatcher`: list -> watch from the list's resourceVersion (timeoutSeconds) -> re-watch; on 410
  (or after an error) it re-lists and emits one RESYNC event carrying the full list, so a consumer
  keyed by uid neither duplicates nor keeps vanished rows. Errors back off 1 s -> 30 s and show as
  a state ("live", "reconnecting (attempt N, reason)", "credentials expired: ...", "stopped").
  A 401 is reported to the profile's credentials listeners; after `profile.reauthenticate()` a
  watch in the credentials state reconnects at once. It never raises out of its thread.
- `follow_logs`: follows one container's log, reconnects when the stream ends while the container
  still runs (no repeated lines: timestamps dedupe), stops when it terminated.

Every failure surfaced to callers is a `CloudError` with a fix; secret values never appear in them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable

from . import retry as _retry
from .gke import CREDENTIALS_FIX, CloudError
from .profile import (ClusterAccess, ConnectionProfile, CredentialsError, credentials_generation,
                      report_credentials_failure, wait_for_renewal)

log = logging.getLogger(__name__)

FIELD_MANAGER = "rhaii-tui"
CREDENTIALS_STATE = "credentials expired or revoked: sign in again (the watch resumes by itself)"

# kinds we know without asking discovery: (group/version, kind) -> (plural, namespaced)
_BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
}


# --- errors ---------------------------------------------------------------------------------------


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body) if isinstance(body, (str, bytes)) else body
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
    reason = getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


TRANSIENT_STATUS = (429, 500, 502, 503, 504)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: an overloaded/restarting apiserver or a dropped connection."""
    return kube_verdict(exc).retry


def kube_verdict(exc: BaseException, idempotent: bool = True) -> _retry.Verdict:
    """The retry policy's verdict on a Kubernetes client failure: 429 always (the API server
    refused the request before doing anything), 5xx and dropped connections only for idempotent
    requests; the server's Retry-After (header, else the Status body's retryAfterSeconds)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        if status != 429 and not idempotent:
            return _retry.NO
        return _retry.http_verdict(status, getattr(exc, "headers", None), getattr(exc, "body", None))
    if isinstance(exc, (CredentialsError, CloudError)) or not idempotent:
        return _retry.NO
    if _retry.is_connection_failure(exc):
        return _retry.Verdict(True, None, exc.__class__.__name__)
    return _retry.NO


def retry_transient(fn: Callable[[], Any], *, idempotent: bool = True,
                    policy: _retry.RetryPolicy | None = None) -> Any:
    """Call fn under the wizard's retry policy (`cloud/retry.py`): 429, 5xx and dropped connections
    are retried with back-off and jitter, honouring Retry-After, bounded in time. Non-idempotent
    requests (creates) are retried on 429 only."""
    return _retry.call(fn, lambda e: kube_verdict(e, idempotent), policy=policy or _retry.DEFAULT_POLICY,
                       what="Kubernetes API")


def kube_error(exc: BaseException, what: str = "", secrets: Iterable[str] = ()) -> CloudError:
    """An exception from the kubernetes client (or the transport) -> CloudError with a fix."""
    if isinstance(exc, CloudError):
        return exc
    prefix = f"Could not {what}: " if what else ""
    if isinstance(exc, CredentialsError):
        return CloudError("credentials", f"{prefix}{exc}", CREDENTIALS_FIX)
    from kubernetes.client.exceptions import ApiException

    secrets = list(secrets)
    if isinstance(exc, ApiException):
        status = int(getattr(exc, "status", 0) or 0)
        msg = scrub(" ".join(_status_message(exc).split())[:500], secrets)
        if status == 401:
            message = f"{prefix}the cluster rejected the credentials ({msg})."
            report_credentials_failure(message)
            return CloudError("credentials", message, CREDENTIALS_FIX)
        if status == 403:
            return CloudError("permission", f"{prefix}{msg}",
                              "Your account lacks Kubernetes permissions on this cluster: ask for roles/container.admin "
                              "(or roles/container.developer) on the project, then retry.")
        if status == 404:
            return CloudError("not_found", f"{prefix}{msg}", "Check the namespace and names; earlier steps create them.")
        if status == 409:
            return CloudError("conflict", f"{prefix}{msg}", "Someone changed the object at the same time; retry.")
        if status in (400, 422):
            return CloudError("unknown", f"{prefix}the cluster refused the object: {msg}",
                              "Check the values you entered; the message names the field.")
        if status == 410:
            return CloudError("unavailable", f"{prefix}{msg}", "Retry (the wizard re-lists automatically).")
        if status == 429:
            return CloudError("unavailable", f"{prefix}the cluster's Kubernetes API server refused the request "
                              f"(429 Too Many Requests{_retry.attempts_text(exc)}: {msg}).",
                              "The control plane is overloaded: wait a minute and retry.")
        if status >= 500 or status == 0:
            return CloudError("unavailable", f"{prefix}the cluster's Kubernetes API server failed "
                              f"({status}{_retry.attempts_text(exc)}: {msg}).",
                              "Retry in a moment; the control plane may be busy or upgrading.")
        return CloudError("unknown", f"{prefix}{status}: {msg}", "Retry; if it keeps failing, check the message.")
    text = scrub(" ".join(str(exc).split())[:300], secrets)
    name = exc.__class__.__name__
    if "SSL" in name or "CERTIFICATE" in text.upper():
        return CloudError("unavailable", f"{prefix}TLS to the cluster failed ({name}: {text}).",
                          "The cluster's CA changed or the endpoint is wrong: re-run step 2 to refresh the cluster access.")
    return CloudError("unavailable", f"{prefix}cannot reach the cluster's API ({name}{_retry.attempts_text(exc)}: "
                      f"{text}).",
                      "Check your network; if the cluster was just created or deleted, re-run step 2.")


def _meta(obj: Any) -> Any:
    return obj.get("metadata") or {} if isinstance(obj, dict) else getattr(obj, "metadata", None)


def obj_uid(obj: Any) -> str:
    m = _meta(obj)
    if isinstance(m, dict):
        return str(m.get("uid") or f"{m.get('namespace', '')}/{m.get('name', '')}")
    if m is None:
        return ""
    return str(getattr(m, "uid", None) or f"{getattr(m, 'namespace', '')}/{getattr(m, 'name', '')}")


def obj_name(obj: Any) -> str:
    m = _meta(obj)
    if isinstance(m, dict):
        return str(m.get("name") or "")
    return str(getattr(m, "name", "") or "") if m is not None else ""


def obj_rv(obj: Any) -> str | None:
    m = _meta(obj)
    if isinstance(m, dict):
        return m.get("resourceVersion")
    return getattr(m, "resource_version", None) if m is not None else None


def _list_items_rv(result: Any) -> tuple[list[Any], str | None]:
    if isinstance(result, dict):
        return list(result.get("items") or []), (result.get("metadata") or {}).get("resourceVersion")
    items = list(getattr(result, "items", None) or [])
    meta = getattr(result, "metadata", None)
    return items, getattr(meta, "resource_version", None) if meta is not None else None


# --- the session ----------------------------------------------------------------------------------


@dataclass
class ResourceInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise CloudError("unknown", f"{self.kind} is namespaced but no namespace was given.",
                                 "Set metadata.namespace or pass the namespace.")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


class KubeSession:
    """One cluster's Kubernetes API, as the current Google identity."""

    def __init__(self, profile: ConnectionProfile, access: ClusterAccess, *, request_timeout: float = 30.0) -> None:
        self.profile = profile
        self.access = access
        self.request_timeout = request_timeout
        try:
            self.api_client = profile.kube_api_client(access)
        except CredentialsError as e:
            raise CloudError("credentials", str(e), CREDENTIALS_FIX) from None
        self._resources: dict[tuple[str, str], ResourceInfo] = {}
        self._lock = threading.Lock()
        # transcript.Recorder: every mutating request (typed or raw) is recorded there
        self.recorder: Any = None
        from ..transcript import wrap_kube_api_client

        wrap_kube_api_client(self.api_client, lambda: self.recorder)

    # typed accessors -------------------------------------------------------------------------------
    @cached_property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @cached_property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @cached_property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    @cached_property
    def networking(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client)

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # noqa: BLE001
            pass

    # raw requests ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str | None = None, timeout: float | None = None,
                retry: bool | None = None) -> Any:
        """One request through the ApiClient (auth, TLS, token refresh); returns parsed JSON.
        Raises the client's ApiException on a non-2xx answer. Idempotent methods (GET, PATCH with
        apply, DELETE) are retried on transient failures unless retry=False."""
        idempotent = method in ("GET", "PATCH", "DELETE", "PUT")
        if retry is None:
            retry = True  # a non-idempotent request is retried on 429 only (nothing was done)
        if retry:
            return retry_transient(lambda: self._request_once(method, path, query=query, body=body,
                                                              content_type=content_type, timeout=timeout),
                                   idempotent=idempotent)
        return self._request_once(method, path, query=query, body=body, content_type=content_type, timeout=timeout)

    def _request_once(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                      body: Any = None, content_type: str | None = None, timeout: float | None = None) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        m, url, hdrs, b, post = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"])
        resp = self.api_client.call_api(m, url, header_params=hdrs, body=b, post_params=post,
                                        _request_timeout=timeout or self.request_timeout)
        resp.read()
        text = (resp.data or b"").decode("utf-8", errors="replace")
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=text, data=None)
        return json.loads(text) if text.strip() else {}

    def resource(self, api_version: str, kind: str) -> ResourceInfo:
        key = (api_version, kind)
        with self._lock:
            if key in self._resources:
                return self._resources[key]
        if key in _BUILTIN:
            plural, namespaced = _BUILTIN[key]
            info = ResourceInfo(api_version, kind, plural, namespaced)
        else:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                doc = self.request("GET", path)
            except Exception as e:  # noqa: BLE001
                err = kube_error(e, f"discover {kind} ({api_version})")
                if err.kind == "not_found":
                    raise CloudError("not_found", f"The cluster does not serve {api_version} (kind {kind}).",
                                     "Install the operator that provides it (step 4), then retry.") from None
                raise err from None
            match = next((r for r in doc.get("resources", []) if r.get("kind") == kind and "/" not in r.get("name", "")),
                         None)
            if match is None:
                raise CloudError("not_found", f"The cluster has no resource of kind {kind} in {api_version}.",
                                 "Install the operator that provides it (step 4), then retry.")
            info = ResourceInfo(api_version, kind, match["name"], bool(match.get("namespaced")))
        with self._lock:
            self._resources[key] = info
        return info

    # idempotent helpers ----------------------------------------------------------------------------
    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> bool:
        """Create the namespace when absent. True when it was created now."""
        from kubernetes.client.exceptions import ApiException

        try:
            retry_transient(lambda: self.core.read_namespace(name, _request_timeout=self.request_timeout))
            return False
        except ApiException as e:
            if e.status != 404:
                raise kube_error(e, f"read namespace {name}") from None
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"read namespace {name}") from None
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}
        try:
            retry_transient(lambda: self.core.create_namespace(body, _request_timeout=self.request_timeout))
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise kube_error(e, f"create namespace {name}") from None
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"create namespace {name}") from None

    def apply(self, obj: dict[str, Any], namespace: str | None = None, *, force: bool = True,
              field_manager: str = FIELD_MANAGER, secrets: Iterable[str] = ()) -> dict[str, Any]:
        """Server-side apply (application/apply-patch+yaml, fieldManager, force) of any object.
        Returns the object as the server stored it. `secrets`: values to keep out of error text
        (found automatically for kind Secret)."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not api_version or not kind or not name:
            raise CloudError("unknown", "An object to apply needs apiVersion, kind and metadata.name.",
                             "Fix the manifest.")
        hidden = list(secrets) + (_secret_values(obj) if kind == "Secret" else [])
        info = self.resource(api_version, kind)
        ns = (namespace or meta.get("namespace")) if info.namespaced else None
        body = obj
        if info.namespaced and ns and meta.get("namespace") != ns:
            body = {**obj, "metadata": {**meta, "namespace": ns}}
        query = [("fieldManager", field_manager)] + ([("force", "true")] if force else [])
        what = f"apply {kind} {name}" + (f" in {ns}" if ns else "")
        try:
            return self.request("PATCH", info.path(ns, name), query=query, body=body,
                                content_type="application/apply-patch+yaml")
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, what, hidden) from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as a dict, or None when it (or its namespace) does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            info = self.resource(api_version, kind)
        except CloudError as e:
            if e.kind == "not_found":
                return None
            raise
        try:
            return self.request("GET", info.path(namespace if info.namespaced else None, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise kube_error(e, f"read {kind} {name}") from None
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"read {kind} {name}") from None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete; True when something was deleted, False when it was already gone."""
        from kubernetes.client.exceptions import ApiException

        info = self.resource(api_version, kind)
        try:
            self.request("DELETE", info.path(namespace if info.namespaced else None, name))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise kube_error(e, f"delete {kind} {name}") from None
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"delete {kind} {name}") from None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        info = self.resource(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            return list(self.request("GET", info.path(namespace if info.namespaced else None), query=query)
                        .get("items") or [])
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"list {kind}") from None

    def call(self, what: str, fn: Callable[..., Any], *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """Call a typed API method (retried on transient failures unless retry=False: pass False for
        non-idempotent calls); failures become CloudError."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            # retry=False (non-idempotent): still retried on 429, which the API server answers
            # before doing anything
            return retry_transient(lambda: fn(*args, **kwargs), idempotent=retry)
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, what) from None

    def get_or_none(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A typed read (e.g. core.read_namespaced_secret), None on 404."""
        from kubernetes.client.exceptions import ApiException

        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return retry_transient(lambda: fn(*args, **kwargs))
        except ApiException as e:
            if e.status == 404:
                return None
            raise kube_error(e, getattr(fn, "__name__", "read")) from None
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, getattr(fn, "__name__", "read")) from None


def _secret_values(obj: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for v in (obj.get("data") or {}).values():
        if isinstance(v, str):
            out.append(v)
            try:
                out.append(base64.b64decode(v).decode("utf-8", errors="ignore"))
            except (ValueError, TypeError):
                pass
    for v in (obj.get("stringData") or {}).values():
        if isinstance(v, str):
            out.append(v)
            out.append(base64.b64encode(v.encode()).decode())
    return [s for s in out if s]


# --- list / watch / relist ------------------------------------------------------------------------


@dataclass
class WatchEvent:
    """ADDED / MODIFIED / DELETED carry `obj`; RESYNC carries the full list in `objects` and the uids
    that vanished since the previous snapshot in `removed` (drop those rows)."""

    type: str
    obj: Any = None
    objects: list[Any] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return obj_uid(self.obj) if self.obj is not None else ""


class ListWatcher:
    """list -> watch -> (410 | error) -> relist, in a daemon thread. Never raises out.

    `list_fn` is a typed list method (core.list_namespaced_pod, core.list_node,
    custom.list_namespaced_custom_object...). Positional arguments: `args` when given, else
    (namespace,) when a namespace is given, else none.
    """

    def __init__(self, list_fn: Callable[..., Any], namespace: str | None = None,
                 label_selector: str | None = None,
                 on_event: Callable[[WatchEvent], None] | None = None,
                 on_state: Callable[[str], None] | None = None, *,
                 args: tuple[Any, ...] | None = None, field_selector: str | None = None,
                 watch_timeout: int = 60, backoff_min: float = 1.0, backoff_max: float = 30.0,
                 request_timeout: float = 30.0, name: str = "") -> None:
        self.list_fn = list_fn
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_event = on_event
        self.on_state = on_state
        self.args: tuple[Any, ...] = tuple(args) if args is not None else ((namespace,) if namespace else ())
        self.watch_timeout = max(1, int(watch_timeout))
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.name = name or getattr(list_fn, "__name__", "watch")
        self.state = "starting"
        self.resource_version: str | None = None
        self.lists = 0  # how many times it listed (1 + re-lists)
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread: threading.Thread | None = None

    # public ----------------------------------------------------------------------------------------
    def start(self) -> "ListWatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"listwatch-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, join: bool = True, timeout: float = 5.0) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            try:
                w.stop()
            except Exception:  # noqa: BLE001
                pass
        if join and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> dict[str, Any]:
        """The current objects keyed by uid."""
        with self._lock:
            return dict(self._items)

    # internals -------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:  # noqa: BLE001
                log.exception("on_state callback failed")

    def _emit(self, ev: WatchEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001
                log.exception("on_event callback failed")

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.label_selector:
            kw["label_selector"] = self.label_selector
        if self.field_selector:
            kw["field_selector"] = self.field_selector
        return kw

    def _list(self) -> None:
        result = self.list_fn(*self.args, **self._kwargs(), _request_timeout=self.request_timeout)
        items, rv = _list_items_rv(result)
        new = {obj_uid(o): o for o in items}
        with self._lock:
            removed = [u for u in self._items if u not in new]
            self._items = new
        self.resource_version = rv
        self.lists += 1
        self._emit(WatchEvent("RESYNC", objects=list(new.values()), removed=removed))

    def _watch_once(self) -> int:
        """One watch request; returns how many events it delivered."""
        from kubernetes import watch

        w = watch.Watch()
        self._watch = w
        count = 0
        if self._stop.is_set():
            return 0
        try:
            kw = self._kwargs()
            kw.update(resource_version=self.resource_version or "", timeout_seconds=self.watch_timeout,
                      allow_watch_bookmarks=True,
                      _request_timeout=(self.request_timeout, self.watch_timeout + self.request_timeout))
            for ev in w.stream(self.list_fn, *self.args, **kw):
                if self._stop.is_set():
                    break
                etype = ev.get("type") if isinstance(ev, dict) else None
                obj = ev.get("object") if isinstance(ev, dict) else None
                if etype == "BOOKMARK":
                    rv = obj_rv(ev.get("raw_object") or obj)
                    if rv:
                        self.resource_version = rv
                    continue
                if etype not in ("ADDED", "MODIFIED", "DELETED") or obj is None:
                    continue
                rv = obj_rv(obj)
                if rv:
                    self.resource_version = rv
                uid = obj_uid(obj)
                with self._lock:
                    if etype == "DELETED":
                        self._items.pop(uid, None)
                    else:
                        self._items[uid] = obj
                self._emit(WatchEvent(etype, obj=obj))
                self._set_state("live")
                count += 1
        finally:
            self._watch = None
        return count

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        attempt = 0
        need_list = True
        try:
            while not self._stop.is_set():
                generation = credentials_generation()
                try:
                    if need_list:
                        self._list()
                        need_list = False
                        attempt = 0
                        self._set_state("live")
                    t0 = time.monotonic()
                    events = self._watch_once()
                    if not events and time.monotonic() - t0 < 0.05 and self._stop.wait(0.1):
                        break  # a watch that ends at once with nothing: do not spin
                    continue  # the server closed the watch after timeoutSeconds: watch again from rv
                except ApiException as e:
                    if self._stop.is_set():
                        break
                    if e.status == 410:
                        need_list = True  # expired resourceVersion: re-list at once
                        continue
                    if e.status == 401:
                        reason = CREDENTIALS_STATE
                        report_credentials_failure(f"The cluster rejected the credentials (watch {self.name}).")
                    else:
                        reason = kube_error(e).message
                except CredentialsError:
                    reason = CREDENTIALS_STATE
                except Exception as e:  # noqa: BLE001 - transport errors, bad payloads
                    if self._stop.is_set():
                        break
                    reason = f"{e.__class__.__name__}: {' '.join(str(e).split())[:120]}"
                need_list = True
                attempt += 1
                if reason == CREDENTIALS_STATE:
                    self._set_state(CREDENTIALS_STATE)
                    # back off, but reconnect at once when the user re-authenticates
                    wait_for_renewal(generation, self.backoff_max, self._stop)
                    if self._stop.is_set():
                        break
                    continue
                self._set_state(f"reconnecting (attempt {attempt}, {reason})")
                delay = min(self.backoff_max, self.backoff_min * (2 ** (attempt - 1)))
                if self._stop.wait(delay):
                    break
        finally:
            self._set_state("stopped")


# --- logs -----------------------------------------------------------------------------------------

_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) (.*)$", re.S)


def _parse_ts(value: str) -> float | None:
    v = value[:-1] + "+00:00" if value.endswith("Z") else value
    v = re.sub(r"(\.\d{6})\d+", r"\1", v)
    try:
        return _dt.datetime.fromisoformat(v).timestamp()
    except ValueError:
        return None


def container_state(core: Any, namespace: str, pod: str, container: str,
                    timeout: float = 15.0) -> tuple[str, str] | None:
    """('running'|'waiting'|'terminated'|'unknown', reason) for a (init) container; None if the pod
    is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        p = core.read_namespaced_pod(pod, namespace, _request_timeout=timeout)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    st = p.status
    statuses = list(getattr(st, "container_statuses", None) or []) + list(getattr(st, "init_container_statuses", None) or [])
    cs = next((c for c in statuses if c.name == container), None)
    if cs is None or cs.state is None:
        return ("waiting", "not started")
    if cs.state.running is not None:
        return ("running", "")
    if cs.state.terminated is not None:
        return ("terminated", cs.state.terminated.reason or f"exit code {cs.state.terminated.exit_code}")
    if cs.state.waiting is not None:
        return ("waiting", cs.state.waiting.reason or "")
    return ("unknown", "")


class _Dedupe:
    """Drops lines a reconnected stream repeats: timestamps are non-decreasing, so everything older
    than the last delivered line, and as many lines at exactly that instant as were delivered, are
    repeats. Strips the timestamp prefix."""

    def __init__(self) -> None:
        self.last_ts: float | None = None
        self.count_at_last = 0
        self.ts_supported = True
        self._replay_ts: float | None = None
        self._replay_skip = 0

    def reconnect(self) -> None:
        self._replay_ts, self._replay_skip = self.last_ts, self.count_at_last

    def accept(self, line: str) -> str | None:
        m = _TS_RE.match(line)
        ts = _parse_ts(m.group(1)) if m else None
        if m is None or ts is None:
            self.ts_supported = False
            return line
        text = m.group(2)
        if self._replay_ts is not None:
            if ts < self._replay_ts:
                return None
            if ts == self._replay_ts and self._replay_skip > 0:
                self._replay_skip -= 1
                return None
            self._replay_ts = None
        if self.last_ts is not None and ts == self.last_ts:
            self.count_at_last += 1
        else:
            self.last_ts, self.count_at_last = ts, 1
        return text


def _rfc3339_seconds(ts: float) -> str:
    """sinceTime: whole seconds (metav1.Time), rounded down so the last line's second is included
    (the dedupe drops what was delivered already)."""
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open_log(core: Any, pod: str, namespace: str, kw: dict[str, Any], since: float | None) -> Any:
    """Open a pod log stream (urllib3 response). `since`: resume at that instant of the server's
    clock (sinceTime, which the generated client does not offer: the request is made through its
    ApiClient, auth and TLS included)."""
    if since is None:
        return core.read_namespaced_pod_log(pod, namespace, **kw)
    api = getattr(core, "api_client", None)
    if api is None or not hasattr(api, "param_serialize"):  # a client without raw requests
        return core.read_namespaced_pod_log(pod, namespace, since_seconds=max(1, int(time.time() - since) + 10),
                                            **kw)
    from kubernetes.client.exceptions import ApiException

    query: list[tuple[str, Any]] = [("container", kw["container"]), ("follow", kw.get("follow", False)),
                                    ("timestamps", kw.get("timestamps", False)), ("sinceTime", _rfc3339_seconds(since))]
    param = api.param_serialize(method="GET", resource_path="/api/v1/namespaces/{namespace}/pods/{name}/log",
                                path_params={"namespace": namespace, "name": pod}, query_params=query,
                                header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"])
    data = api.call_api(*param, _request_timeout=kw.get("_request_timeout"))
    if not 200 <= data.status <= 299:
        data.read()
        raise ApiException.from_response(http_resp=data, body=None, data=None)
    return data.response


def _shutdown(resp: Any) -> None:
    try:
        if hasattr(resp, "shutdown"):
            resp.shutdown()
            return
    except Exception:  # noqa: BLE001
        pass
    try:
        conn = getattr(resp, "connection", None)
        sock = getattr(conn, "sock", None) if conn else None
        if sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001
        pass


def follow_logs(core: Any, namespace: str, pod: str, container: str,
                on_lines: Callable[[list[str]], None], stop_event: threading.Event,
                tail: int | None = None, *, on_state: Callable[[str], None] | None = None,
                backoff_min: float = 0.5, backoff_max: float = 10.0, request_timeout: float = 30.0,
                quiet_reconnect: float = 600.0, wait_poll: float = 1.0, keep_timestamps: bool = False) -> str:
    """Follow one container's log until it terminates (or the pod is gone, or stop_event is set).
    Lines reach `on_lines` in batches, without timestamps and without repeats across reconnects.
    `keep_timestamps`: lines keep the API's RFC 3339 prefix ('2026-01-01T10:00:00.123456789Z text'),
    so a caller can date what a line says by the line itself (lines read again after a reconnect
    were written earlier than they arrive).
    Returns why it ended: "terminated: <reason>", "pod deleted", "stopped". Never raises."""
    from kubernetes.client.exceptions import ApiException

    dedupe = _Dedupe()
    first = True
    attempt = 0

    def state(s: str) -> None:
        if on_state is not None:
            try:
                on_state(s)
            except Exception:  # noqa: BLE001
                log.exception("on_state callback failed")

    def deliver(lines: list[str]) -> None:
        if lines:
            try:
                on_lines(lines)
            except Exception:  # noqa: BLE001
                log.exception("on_lines callback failed")

    got_data = False
    while not stop_event.is_set():
        reason = ""
        generation = credentials_generation()
        try:
            kw: dict[str, Any] = {"container": container, "follow": True, "timestamps": True,
                                  "_preload_content": False, "_request_timeout": (request_timeout, quiet_reconnect)}
            since: float | None = None
            if first and tail is not None:
                kw["tail_lines"] = int(tail)
            elif not first and dedupe.last_ts is not None:
                since = dedupe.last_ts  # resume from the last line's own timestamp (never the local clock)
            elif not first and not dedupe.ts_supported:
                kw["tail_lines"] = 0
            dedupe.reconnect()
            resp = _open_log(core, pod, namespace, kw, since)
            done = threading.Event()

            def interrupter(r: Any = resp, d: threading.Event = done) -> None:
                while not d.is_set():
                    if stop_event.wait(0.2):
                        _shutdown(r)
                        return

            threading.Thread(target=interrupter, daemon=True, name=f"logstop-{pod}").start()
            state("following")
            first = False
            attempt = 0
            buf = b""
            got_data = False
            try:
                for chunk in resp.stream(amt=None, decode_content=False):
                    if stop_event.is_set():
                        break
                    got_data = got_data or bool(chunk)
                    buf += chunk if isinstance(chunk, bytes) else str(chunk).encode()
                    if b"\n" not in buf:
                        continue
                    *complete, buf = buf.split(b"\n")
                    out: list[str] = []
                    for raw in complete:
                        line = raw.decode("utf-8", errors="replace").rstrip("\r")
                        text = dedupe.accept(line)
                        if text is not None:
                            out.append(line if keep_timestamps else text)
                    deliver(out)
            finally:
                done.set()
                try:
                    resp.close()
                    resp.release_conn()
                except Exception:  # noqa: BLE001
                    pass
            if buf.strip():
                line = buf.decode("utf-8", errors="replace")
                text = dedupe.accept(line)
                deliver([line if keep_timestamps else text] if text is not None else [])
        except ApiException as e:
            msg = _status_message(e)
            if e.status == 404:
                state("pod deleted")
                return "pod deleted"
            if e.status == 400 and re.search(r"waiting to start|ContainerCreating|PodInitializing|is not valid for pod|"
                                             r"not (yet )?running|waiting", msg, re.I):
                state(f"waiting: {msg}")
                if stop_event.wait(wait_poll):
                    break
                continue
            if e.status == 401:
                reason = CREDENTIALS_STATE
                report_credentials_failure(f"The cluster rejected the credentials (logs of {pod}).")
            else:
                reason = f"{e.status}: {' '.join(msg.split())[:120]}"
        except CredentialsError:
            reason = CREDENTIALS_STATE
        except Exception as e:  # noqa: BLE001
            if stop_event.is_set():
                break
            if "ReadTimeout" not in e.__class__.__name__:  # a quiet log is not an error
                reason = f"{e.__class__.__name__}: {' '.join(str(e).split())[:120]}"
        if stop_event.is_set():
            break
        if reason:
            attempt += 1
            state(reason if reason == CREDENTIALS_STATE else f"reconnecting (attempt {attempt}, {reason})")
            delay = min(backoff_max, backoff_min * (2 ** (attempt - 1)))
            if reason == CREDENTIALS_STATE:
                wait_for_renewal(generation, delay, stop_event)  # re-authenticated: at once
                if stop_event.is_set():
                    break
            elif stop_event.wait(delay):
                break
            continue
        # the stream ended cleanly: did the container stop, or did the connection drop?
        try:
            cs = container_state(core, namespace, pod, container, timeout=request_timeout)
        except Exception as e:  # noqa: BLE001
            attempt += 1
            state(f"reconnecting (attempt {attempt}, {e.__class__.__name__})")
            if stop_event.wait(min(backoff_max, backoff_min * (2 ** (attempt - 1)))):
                break
            continue
        if cs is None:
            state("pod deleted")
            return "pod deleted"
        if cs[0] == "running":
            state("reconnecting (stream ended, container still running)")
            if not got_data and stop_event.wait(backoff_min):  # do not spin on streams that end at once
                break
            continue
        if cs[0] == "waiting" and cs[1] in ("", "not started", "ContainerCreating", "PodInitializing"):
            if stop_event.wait(backoff_min):
                break
            continue
        result = f"terminated: {cs[1] or cs[0]}"
        state(result)
        return result
    state("stopped")
    return "stopped"


__all__ = ["KubeSession", "ResourceInfo", "ListWatcher", "WatchEvent", "follow_logs", "container_state",
           "kube_error", "scrub", "retry_transient", "is_transient", "FIELD_MANAGER", "CREDENTIALS_STATE", "obj_uid", "obj_name"]
