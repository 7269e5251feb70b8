"""The deploy lease: one rhaii-tui at a time changes a deployment; the others watch.

A ConfigMap `rhaii-tui-lease` in the workload namespace names its holder (user@host:pid) with the
times it was acquired and last renewed and its TTL (default 60 s). The holder renews it while it
mutates (every TTL/3). Another rhaii-tui that finds a fresh lease held by someone else refuses:
"another rhaii-tui (user@host, pid N) is deploying; watch-only". A lease is stale (and may be taken
over) when it was not renewed within its TTL, or when its holder ran on this host and that process
is gone (a killed rhaii-tui does not block the next run for a whole TTL).

Every write is checked: creation fails with 409 when someone else created it first, a takeover or a
renewal is a PUT carrying the resourceVersion that was read (409: someone else won), release is a
DELETE with a resourceVersion precondition. Before the namespace exists there is nothing to lease
(`acquire()` returns False: say so).

    lease = Lease(ctx.kube, ctx.cfg.namespace)
    try:
        if not lease.acquire():
            print("no lease: the namespace does not exist yet")
    except LeaseHeld as e:
        print(e)                      # another rhaii-tui (...) is deploying; watch-only
    lease.start_renewing(on_lost=...)
    ...
    lease.release()

`read_lease(session, namespace)` reads the current holder (for a status line or the UI).
No Textual here.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .cloud.gke import CloudError

log = logging.getLogger(__name__)

LEASE_NAME = "rhaii-tui-lease"
DEFAULT_TTL = 60.0
MANAGED_BY = {"app.kubernetes.io/managed-by": "rhaii-tui"}


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


@dataclass(frozen=True)
class Identity:
    user: str
    host: str
    pid: int

    @property
    def holder(self) -> str:
        return f"{self.user}@{self.host}:{self.pid}"

    @classmethod
    def current(cls) -> "Identity":
        return cls(_user(), socket.gethostname(), os.getpid())


@dataclass
class LeaseInfo:
    """What the ConfigMap says."""

    holder: str
    user: str
    host: str
    pid: int
    acquired: float
    renewed: float
    ttl: float
    command: str = ""
    resource_version: str | None = None

    @classmethod
    def from_configmap(cls, cm: dict[str, Any]) -> "LeaseInfo | None":
        d = cm.get("data") or {}
        if not d.get("holder"):
            return None

        def num(key: str, default: float = 0.0) -> float:
            try:
                return float(d.get(key, default))
            except (TypeError, ValueError):
                return default

        return cls(holder=str(d.get("holder")), user=str(d.get("user", "")), host=str(d.get("host", "")),
                   pid=int(num("pid")), acquired=num("acquiredEpoch"), renewed=num("renewedEpoch"),
                   ttl=num("ttlSeconds", DEFAULT_TTL) or DEFAULT_TTL, command=str(d.get("command", "")),
                   resource_version=(cm.get("metadata") or {}).get("resourceVersion"))

    def age(self, now: float | None = None) -> float:
        """Seconds since the last renewal."""
        return max(0.0, (time.time() if now is None else now) - self.renewed)

    def fresh(self, now: float | None = None) -> bool:
        return self.age(now) <= self.ttl

    def holder_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False
        return False

    def live(self, now: float | None = None) -> bool:
        """Held: fresh and its holder not known to be gone."""
        return self.fresh(now) and not self.holder_gone()

    def who(self) -> str:
        return f"{self.user}@{self.host}, pid {self.pid}"

    def describe(self, now: float | None = None) -> str:
        state = "held" if self.live(now) else "stale"
        return (f"{state} by {self.who()}" + (f" ({self.command})" if self.command else "")
                + f", renewed {self.age(now):.0f} s ago, TTL {self.ttl:.0f} s")

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        return {"holder": self.holder, "user": self.user, "host": self.host, "pid": self.pid,
                "acquired": _iso(self.acquired) if self.acquired else None,
                "renewed": _iso(self.renewed) if self.renewed else None, "ttl_seconds": self.ttl,
                "command": self.command, "age_seconds": round(self.age(now), 1), "live": self.live(now)}


class LeaseHeld(Exception):
    """Someone else holds a fresh lease: watch only."""

    def __init__(self, info: LeaseInfo) -> None:
        self.info = info
        super().__init__(f"another rhaii-tui ({info.who()}) is deploying; watch-only")


def _path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _status(exc: BaseException) -> int:
    return int(getattr(exc, "status", 0) or 0)


def read_lease(session: Any, namespace: str) -> LeaseInfo | None:
    """The lease as it is now (None: no lease, or no namespace). Raises CloudError."""
    cm = session.get("v1", "ConfigMap", LEASE_NAME, namespace)
    return LeaseInfo.from_configmap(cm) if cm else None


class Lease:
    """One process's claim on a deployment. `session_fn` returns the KubeSession (e.g. ctx.kube)."""

    def __init__(self, session_fn: Callable[[], Any], namespace: str, *, ttl: float = DEFAULT_TTL,
                 identity: Identity | None = None, command: str = "apply") -> None:
        self.session_fn = session_fn
        self.namespace = namespace
        self.ttl = float(ttl)
        self.identity = identity or Identity.current()
        self.command = command
        self.held = False
        self.lost: LeaseInfo | None = None   # set when someone else took it from us
        self.taken_over: LeaseInfo | None = None  # the stale lease this one replaced
        self._rv: str | None = None
        self._acquired = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # the object ---------------------------------------------------------------------------------
    def _body(self, now: float, rv: str | None = None) -> dict[str, Any]:
        md: dict[str, Any] = {"name": LEASE_NAME, "namespace": self.namespace, "labels": dict(MANAGED_BY)}
        if rv:
            md["resourceVersion"] = rv
        ident = self.identity
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {
            "holder": ident.holder, "user": ident.user, "host": ident.host, "pid": str(ident.pid),
            "acquired": _iso(self._acquired), "acquiredEpoch": f"{self._acquired:.3f}",
            "renewed": _iso(now), "renewedEpoch": f"{now:.3f}", "ttlSeconds": f"{self.ttl:g}",
            "command": self.command}}

    def _mine(self, info: LeaseInfo | None) -> bool:
        return info is not None and info.holder == self.identity.holder

    def _read(self, session: Any) -> tuple[LeaseInfo | None, str | None, bool]:
        """(info, resourceVersion, exists)."""
        cm = session.get("v1", "ConfigMap", LEASE_NAME, self.namespace)
        if cm is None:
            return None, None, False
        return LeaseInfo.from_configmap(cm), (cm.get("metadata") or {}).get("resourceVersion"), True

    # acquire / renew / release ------------------------------------------------------------------
    def acquire(self, force: bool = False) -> bool:
        """Take the lease. True: held. False: the namespace does not exist yet (nothing to lease).
        Raises LeaseHeld (someone else holds a fresh lease; `force`: take it over anyway, the user
        said so) or CloudError."""
        from .cloud.kube import kube_error

        session = self.session_fn()
        if session.get("v1", "Namespace", self.namespace) is None:
            return False
        delay = 0.1
        for _attempt in range(8):
            info, rv, exists = self._read(session)
            now = time.time()
            if exists and info is not None and not self._mine(info) and info.live(now) and not force:
                raise LeaseHeld(info)
            if not self._acquired or not self._mine(info):
                self._acquired = now
            try:
                if not exists:
                    got = session.request("POST", _path(self.namespace), body=self._body(now), retry=False,
                                          content_type="application/json")
                else:
                    got = session.request("PUT", _path(self.namespace, LEASE_NAME), body=self._body(now, rv),
                                          retry=False, content_type="application/json")
            except Exception as e:  # noqa: BLE001
                status = _status(e)
                if status == 409:
                    continue  # someone else wrote it first: read again and judge
                if status == 404 and not exists:
                    if session.get("v1", "Namespace", self.namespace) is None:
                        return False
                    continue
                if status == 404:
                    continue  # deleted between our read and write
                err = kube_error(e, f"take the lease {LEASE_NAME} in {self.namespace}")
                if err.kind == "unavailable" and _attempt < 7:  # 5xx, 429, a dropped connection: the write
                    time.sleep(delay)                           # may or may not have happened: read again
                    delay = min(2.0, delay * 2)
                    continue
                raise err from None
            with self._lock:
                if info is not None and exists and not self._mine(info):
                    self.taken_over = info
                self._rv = (got.get("metadata") or {}).get("resourceVersion")
                self.held = True
                self.lost = None
            return True
        info, _rv, _exists = self._read(session)
        if info is not None and not self._mine(info) and not force:
            raise LeaseHeld(info)
        raise CloudError("conflict", f"Could not take the lease {LEASE_NAME} in {self.namespace}: it kept changing.",
                         "Another rhaii-tui may be starting: retry in a moment.")

    def renew(self) -> bool:
        """Renew a held lease (resourceVersion-checked). False (and `lost` set) when someone else
        holds it now. Raises CloudError on API failures."""
        from .cloud.kube import kube_error

        if not self.held:
            return False
        session = self.session_fn()
        with self._lock:
            rv = self._rv
        now = time.time()
        try:
            got = session.request("PUT", _path(self.namespace, LEASE_NAME), body=self._body(now, rv), retry=False,
                                  content_type="application/json")
        except Exception as e:  # noqa: BLE001
            status = _status(e)
            if status not in (404, 409):
                raise kube_error(e, f"renew the lease {LEASE_NAME}") from None
            info, cur_rv, exists = self._read(session)
            if exists and self._mine(info):  # our own earlier write (a lost answer): carry on from it
                with self._lock:
                    self._rv = cur_rv
                return self.renew()
            if not exists:  # deleted under us: nobody holds it, take it again
                self.held = False
                try:
                    return self.acquire()
                except LeaseHeld as held:
                    self.lost = held.info
                    return False
            with self._lock:
                self.held = False
                self.lost = info
            return False
        with self._lock:
            self._rv = (got.get("metadata") or {}).get("resourceVersion")
        return True

    def release(self) -> None:
        """Give the lease back (only if it is still ours). Best effort, never raises."""
        self.stop_renewing()
        if not self.held:
            return
        self.held = False
        try:
            session = self.session_fn()
            with self._lock:
                rv = self._rv
            for _attempt in range(2):
                try:
                    session.request("DELETE", _path(self.namespace, LEASE_NAME),
                                    body={"apiVersion": "v1", "kind": "DeleteOptions",
                                          "preconditions": {"resourceVersion": rv}} if rv else None, retry=False,
                                    content_type="application/json")
                    return
                except Exception as e:  # noqa: BLE001
                    if _status(e) != 409:
                        raise
                    info, rv, exists = self._read(session)  # renewed by this same process since: still ours?
                    if not exists or not self._mine(info):
                        return
        except Exception as e:  # noqa: BLE001 - it expires on its own
            log.info("could not release the lease: %s", e)

    # renewing in the background ---------------------------------------------------------------------
    def start_renewing(self, on_lost: Callable[[LeaseInfo | None], None] | None = None,
                       interval: float | None = None) -> None:
        """Renew every TTL/3 on a daemon thread; `on_lost(info)` runs once if someone else takes it."""
        if self._thread is not None:
            return
        every = interval if interval is not None else max(0.05, self.ttl / 3)
        self._stop.clear()

        def loop() -> None:
            failures = 0
            while not self._stop.wait(every):
                try:
                    ok = self.renew()
                    failures = 0
                except CloudError as e:
                    failures += 1
                    log.info("lease renewal failed (%d): %s", failures, e.message)
                    continue
                if not ok:
                    if on_lost is not None:
                        try:
                            on_lost(self.lost)
                        except Exception:  # noqa: BLE001
                            log.exception("on_lost callback failed")
                    return

        self._thread = threading.Thread(target=loop, daemon=True, name="lease-renew")
        self._thread.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(2.0)
        self._thread = None

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = ["LEASE_NAME", "DEFAULT_TTL", "Identity", "LeaseInfo", "LeaseHeld", "Lease", "read_lease"]
