"""The transcript: every change the wizard makes, as it makes it.

Each mutating Google or Kubernetes request (create, apply, patch, replace, delete, resize, enable) is
one JSON line in `<state dir>/transcripts/<target>.jsonl`: when, during which step, the equivalent
`gcloud` / `kubectl` command, and the outcome. Recorded at one place per client (the Kubernetes
session's ApiClient, the GKE client's mutating calls, the Service Usage enable), never at call sites.
Secret values never reach the file: no request body is stored (only names), and every text goes
through the log masking and the session's known secret values first.

No textual here: the TUI subscribes with `add_listener` (called from the thread that made the call).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

FILE_SUFFIX = ".jsonl"
MAX_TEXT = 400


def transcript_path(root: str | Path, project: str, zone: str, cluster: str) -> Path:
    """Where a target's transcript lives (next to the target's state file)."""
    from .config import _target_key

    return Path(root) / "transcripts" / f"{_target_key(project, zone, cluster)}{FILE_SUFFIX}"


_GLOBAL_LOCK = threading.Lock()
_GLOBAL_LISTENERS: list[Callable[[dict[str, Any]], None]] = []


def add_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Hear every entry any recorder of this process makes (from the thread that made the change).
    Each entry carries `target` ("project/zone/cluster") to filter on."""
    with _GLOBAL_LOCK:
        _GLOBAL_LISTENERS.append(fn)


def remove_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    with _GLOBAL_LOCK:
        if fn in _GLOBAL_LISTENERS:
            _GLOBAL_LISTENERS.remove(fn)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    """Appends transcript entries for one target. Thread-safe; best effort (a full disk never fails
    the change itself). `path` None: kept in memory only."""

    def __init__(self, path: Path | None = None, *, secrets: Callable[[], Iterable[str]] | None = None,
                 clock: Callable[[], float] = time.time, target: str = "") -> None:
        self.path = path
        self.target = target
        self._secrets = secrets or (lambda: ())
        self.clock = clock
        self.step = ""                      # the step being run (set by the runner / page)
        self._local = threading.local()     # a thread's own step (express runs pieces side by side)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._memory: list[dict[str, Any]] = []

    # listening --------------------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    # masking ----------------------------------------------------------------------------------------
    def mask(self, text: str) -> str:
        from .logfile import mask_secrets

        text = mask_secrets(str(text or ""))
        try:
            values = [v for v in self._secrets() if v]
        except Exception:  # noqa: BLE001
            values = []
        for v in sorted(values, key=len, reverse=True):
            text = text.replace(v, "****")
        return text[:MAX_TEXT]

    @contextlib.contextmanager
    def in_step(self, step: str) -> Iterator[None]:
        """Changes recorded from this thread meanwhile name `step`, whatever other threads run
        (several pieces of an express run change the cloud at once)."""
        before = getattr(self._local, "step", None)
        self._local.step = step
        try:
            yield
        finally:
            self._local.step = before

    # recording --------------------------------------------------------------------------------------
    def record(self, *, client: str, action: str, command: str, outcome: str, ok: bool,
               status: int | None = None, started: float | None = None) -> dict[str, Any]:
        now = self.clock()
        entry: dict[str, Any] = {
            "time": _iso(started if started is not None else now),
            "ts": round(started if started is not None else now, 3),
            "duration_s": round(max(0.0, now - started), 3) if started is not None else 0.0,
            "step": getattr(self._local, "step", None) or self.step,
            "client": client,
            "action": self.mask(action),
            "command": self.mask(command),
            "outcome": self.mask(outcome),
            "ok": bool(ok),
            "target": self.target,
        }
        if status is not None:
            entry["status"] = int(status)
        with self._lock:
            self._memory.append(entry)
            listeners = list(self._listeners)
        with _GLOBAL_LOCK:
            listeners += _GLOBAL_LISTENERS
        with self._lock:
            if self.path is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    with os.fdopen(fd, "a", encoding="utf-8") as f:
                        f.write(json.dumps(entry, sort_keys=True) + "\n")
                except OSError as e:
                    log.warning("could not write the transcript: %s", e)
        for fn in listeners:
            try:
                fn(entry)
            except Exception:  # noqa: BLE001
                log.exception("transcript listener failed")
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Everything recorded for this target (the file, else what this process recorded)."""
        if self.path is not None:
            return read_entries(self.path)
        with self._lock:
            return list(self._memory)


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a transcript file, oldest first; unreadable lines are skipped."""
    out: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict):
            out.append(e)
    return out


def format_entry(e: dict[str, Any]) -> str:
    """One line for a terminal: time, step, outcome, command."""
    step = f" [{e.get('step')}]" if e.get("step") else ""
    mark = "ok" if e.get("ok") else "FAILED"
    return f"{e.get('time', '')}{step} {mark}: {e.get('command', '')}" + (
        f"  ({e.get('outcome')})" if e.get("outcome") and e.get("outcome") != "ok" else "")


# --- Kubernetes: the equivalent kubectl line ------------------------------------------------------


MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def _parse_kube_path(path: str) -> dict[str, str]:
    """group, version, namespace, plural, name, subresource of an API path."""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    out = {"group": "", "version": "", "namespace": "", "plural": "", "name": "", "sub": ""}
    if not parts:
        return out
    if parts[0] == "api":
        out["version"] = parts[1] if len(parts) > 1 else ""
        rest = parts[2:]
    elif parts[0] == "apis":
        out["group"] = parts[1] if len(parts) > 1 else ""
        out["version"] = parts[2] if len(parts) > 2 else ""
        rest = parts[3:]
    else:
        rest = parts
    if len(rest) >= 3 and rest[0] == "namespaces":
        out["namespace"] = rest[1]
        rest = rest[2:]
    elif len(rest) <= 2 and rest and rest[0] == "namespaces":  # the namespace object itself
        out["plural"] = "namespaces"
        out["name"] = rest[1] if len(rest) > 1 else ""
        return out
    if rest:
        out["plural"] = rest[0]
    if len(rest) > 1:
        out["name"] = rest[1]
    if len(rest) > 2:
        out["sub"] = rest[2]
    return out


def _body_dict(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    if isinstance(body, (str, bytes)):
        try:
            doc = json.loads(body)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}
    return {}


def kubectl_command(method: str, url: str, body: Any = None, content_type: str = "") -> tuple[str, str]:
    """(action, the equivalent kubectl line) for a mutating request. Never includes a Secret's data."""
    u = urlsplit(url)
    q = dict(parse_qsl(u.query))
    p = _parse_kube_path(u.path)
    doc = _body_dict(body)
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    kind = str(doc.get("kind") or "")
    name = p["name"] or str(meta.get("name") or "")
    rtype = p["plural"] + (f".{p['group']}" if p["group"] else "")
    ns = f" -n {p['namespace']}" if p["namespace"] else ""
    label = kind or p["plural"]
    what = f"{label} {name}".strip() + (f" in {p['namespace']}" if p["namespace"] else "")
    ct = (content_type or "").lower()
    secret = p["plural"] == "secrets" or kind == "Secret"
    if method == "PATCH" and "apply-patch" in ct:
        fm = q.get("fieldManager", "rhaii-tui")
        force = " --force-conflicts" if q.get("force") == "true" else ""
        fname = f"{(kind or p['plural']).lower()}-{name}.yaml"
        return (f"apply {what}",
                f"kubectl apply --server-side --field-manager={fm}{force}{ns} -f {fname}")
    if method == "PATCH" and p["sub"] == "scale":
        replicas = (doc.get("spec") or {}).get("replicas") if isinstance(doc.get("spec"), dict) else None
        return (f"scale {what} to {replicas}",
                f"kubectl scale {rtype}/{name} --replicas={replicas}{ns}")
    if method == "PATCH":
        ptype = {"application/merge-patch+json": "merge", "application/json-patch+json": "json"}.get(
            ct.split(";")[0].strip(), "strategic")
        payload = "'<secret data not shown>'" if secret else "'" + json.dumps(body if body is not None else {},
                                                                            separators=(",", ":")) + "'"
        sub = f" --subresource={p['sub']}" if p["sub"] else ""
        return (f"patch {what}", f"kubectl patch {rtype} {name}{ns}{sub} --type={ptype} -p {payload}")
    if method == "DELETE":
        return (f"delete {what}", f"kubectl delete {rtype} {name}{ns}")
    if method == "PUT":
        fname = f"{(kind or p['plural']).lower()}-{name}.yaml"
        return (f"replace {what}", f"kubectl replace{ns} -f {fname}")
    # POST: create (or a subresource such as eviction)
    if p["sub"] or (p["name"] and p["plural"] != "namespaces"):
        return (f"{p['sub'] or 'post'} {what}",
                f"kubectl create --raw {u.path}" + (" -f -" if body is not None else ""))
    if p["plural"] == "namespaces" and not p["namespace"]:
        return (f"create Namespace {name}", f"kubectl create namespace {name}")
    fname = f"{(kind or p['plural']).lower()}-{name}.yaml"
    return (f"create {what}", f"kubectl create{ns} -f {fname}")


_REASONS = {404: "not found", 409: "already exists", 403: "forbidden", 401: "unauthorized",
            422: "invalid", 429: "throttled", 500: "server error", 503: "unavailable", 504: "timeout"}


def kube_outcome(method: str, status: int, reason: str = "") -> tuple[str, bool]:
    if 200 <= status <= 299:
        return (f"ok ({status})", True)
    if method == "DELETE" and status == 404:
        return ("already gone (404)", True)
    text = _REASONS.get(status) or (reason or "error")
    if method == "POST" and status == 409:
        return ("already exists (409)", True)
    return (f"failed: {text} ({status})", False)


def _bookkeeping(url: str, body: Any) -> bool:
    """The wizard's own deploy lease (taken and renewed every few seconds): not a change to the
    deployment, so not in the transcript."""
    from .lease import LEASE_NAME

    p = _parse_kube_path(urlsplit(str(url)).path)
    if p["plural"] != "configmaps":
        return False
    meta = _body_dict(body).get("metadata") or {}
    return (p["name"] or (meta.get("name") if isinstance(meta, dict) else "")) == LEASE_NAME


def wrap_kube_api_client(api_client: Any, recorder: Callable[[], "Recorder | None"]) -> None:
    """Record every mutating request that goes through this kubernetes ApiClient (typed and raw alike:
    both end in `call_api`). `recorder()` gives the current recorder (None: record nothing)."""
    orig = getattr(api_client, "call_api", None)
    if orig is None:  # not a kubernetes ApiClient (a stand-in): nothing to record through
        return

    def call_api(method: str, url: str, header_params: Any = None, body: Any = None, post_params: Any = None,
                 _request_timeout: Any = None) -> Any:
        rec = recorder()
        m = str(method or "").upper()
        if rec is None or m not in MUTATING or "dryRun=" in str(url) or _bookkeeping(url, body):
            return orig(method, url, header_params=header_params, body=body, post_params=post_params,
                        _request_timeout=_request_timeout)
        ct = str((header_params or {}).get("Content-Type") or "")
        started = rec.clock()
        try:
            action, command = kubectl_command(m, url, body, ct)
        except Exception:  # noqa: BLE001 - the transcript never breaks a change
            action, command = f"{m} {urlsplit(url).path}", f"kubectl {m.lower()} --raw {urlsplit(url).path}"
        try:
            resp = orig(method, url, header_params=header_params, body=body, post_params=post_params,
                        _request_timeout=_request_timeout)
        except Exception as e:  # noqa: BLE001 - transport errors: recorded, then raised as before
            status = getattr(e, "status", None)
            reason = str(getattr(e, "reason", "") or "")[:120]  # never the body: it may echo the object
            rec.record(client="kubernetes", action=action, command=command,
                       outcome=f"failed: {type(e).__name__}" + (f" ({status} {reason})" if status or reason else ""),
                       ok=False,
                       status=status if isinstance(status, int) else None, started=started)
            raise
        status = int(getattr(resp, "status", 0) or 0)
        outcome, ok = kube_outcome(m, status, str(getattr(resp, "reason", "") or ""))
        rec.record(client="kubernetes", action=action, command=command, outcome=outcome, ok=ok,
                   status=status, started=started)
        return resp

    api_client.call_api = call_api


# --- Google: gcloud lines ----------------------------------------------------------------------------


def record_google(rec: "Recorder | None", client: str, action: str, command: str, fn: Callable[[], Any]) -> Any:
    """Run one mutating Google call and record it (raised errors recorded as failures, then raised)."""
    if rec is None:
        return fn()
    started = rec.clock()
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001
        msg = getattr(e, "message", None) or str(e)
        rec.record(client=client, action=action, command=command, outcome=f"failed: {msg}", ok=False,
                   started=started)
        raise
    op = getattr(result, "name", "") if not isinstance(result, dict) else result.get("name", "")
    rec.record(client=client, action=action, command=command,
               outcome="ok" + (f" (operation {str(op).rsplit('/', 1)[-1]})" if op else ""), ok=True,
               started=started)
    return result


__all__ = ["Recorder", "add_listener", "remove_listener", "transcript_path", "read_entries", "format_entry", "kubectl_command", "kube_outcome",
           "wrap_kube_api_client", "record_google"]
