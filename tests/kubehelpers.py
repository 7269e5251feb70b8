"""Test helper: a KubeApiServer (with its own Store and LogBook) on a background thread's event loop.

    with KubeThread() as k:                      # HTTPS + CA + bearer token, port 0
        v1 = client.CoreV1Api(k.api_client())
        k.call(lambda: k.store.create(...))      # touch store/logs on the server's loop only
    host, ca_file, token = k.host, k.ca_file, k.token

`kube` is a pytest fixture yielding a started KubeThread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
import threading
from typing import Any, Callable

import pytest

from rhaii_tui.sim.kube import Faults, KubeApiServer
from rhaii_tui.sim.logs import LogBook
from rhaii_tui.sim.store import Store
from rhaii_tui.sim.tls import TlsMaterial, make_tls

_TLS: TlsMaterial | None = None


def shared_tls() -> TlsMaterial:
    global _TLS
    if _TLS is None:
        _TLS = make_tls(("127.0.0.1", "localhost"))
    return _TLS


class KubeThread:
    def __init__(self, *, tls: bool = True, token: str | None = "test-token-123", faults: Faults | None = None,
                 proxy: Callable | None = None, history_limit: int = 2000, namespaces=("default",)):
        self.tls = shared_tls() if tls else None
        self.token = token
        self.faults = faults
        self.proxy = proxy
        self.history_limit = history_limit
        self.namespaces = namespaces
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: KubeApiServer | None = None
        self.store: Store | None = None
        self.logs: LogBook | None = None
        self._thread: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="kubetest-")
        self.ca_file: str | None = None
        self.port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "KubeThread":
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="kube-api-test", daemon=True)
        self._thread.start()
        ready.wait()

        async def boot() -> int:
            self.store = Store(history_limit=self.history_limit)
            self.logs = LogBook()
            nst = self.store.type_for("namespaces")
            for ns in self.namespaces:
                self.store.create(nst, {"metadata": {"name": ns}})
            self.server = KubeApiServer(self.store, self.logs, token=self.token, tls=self.tls, proxy=self.proxy,
                                        faults=self.faults)
            return await self.server.start("127.0.0.1", 0)

        self.port = self.run(boot())
        if self.tls is not None:
            self.ca_file = os.path.join(self._tmp.name, "ca.crt")
            self.tls.write_ca(self.ca_file)
        return self

    def stop(self) -> None:
        if self.loop is None:
            return
        try:
            self.run(self.server.stop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()
            self.loop = None
            self._tmp.cleanup()

    def __enter__(self) -> "KubeThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- running things on the server's loop ---------------------------------------------------------
    def run(self, coro, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def go() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(go)
        return fut.result(timeout)

    # --- clients -------------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def configuration(self, token: str | None = None):
        from kubernetes import client
        cfg = client.Configuration()
        cfg.host = self.host
        if self.ca_file:
            cfg.ssl_ca_cert = self.ca_file
        tok = token if token is not None else self.token
        if tok:
            cfg.api_key = {"BearerToken": f"Bearer {tok}"}
        return cfg

    def api_client(self, token: str | None = None):
        from kubernetes import client
        return client.ApiClient(self.configuration(token))

    def aio_configuration(self, token: str | None = None):
        from kubernetes.aio import client as aclient
        cfg = aclient.Configuration()
        cfg.host = self.host
        if self.ca_file:
            cfg.ssl_ca_cert = self.ca_file
        tok = token if token is not None else self.token
        if tok:
            cfg.api_key = {"BearerToken": f"Bearer {tok}"}
        return cfg

    def kubeconfig(self, path: str, token: str | None = None) -> str:
        """A kubeconfig for real kubectl (certificate-authority-data + token)."""
        import yaml
        cluster: dict = {"server": self.host}
        if self.tls is not None:
            cluster["certificate-authority-data"] = self.tls.ca_b64
        user: dict = {}
        tok = token if token is not None else self.token
        if tok:
            user["token"] = tok
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "sim",
               "clusters": [{"name": "sim", "cluster": cluster}],
               "users": [{"name": "sim", "user": user}],
               "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim", "namespace": "default"}}]}
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    # --- store shortcuts (run on the loop) --------------------------------------------------------------
    def rt(self, plural: str, group: str = ""):
        return self.store.type_for(plural, group)

    def create(self, plural: str, obj: dict, namespace: str | None = None, group: str = "") -> dict:
        return self.call(lambda: self.store.create(self.rt(plural, group), obj, namespace))

    def mutate(self, plural: str, namespace: str | None, name: str, fn, group: str = "",
               subresource: str | None = None) -> dict:
        return self.call(lambda: self.store.mutate(self.rt(plural, group), namespace, name, fn, subresource))


@pytest.fixture
def kube():
    k = KubeThread().start()
    try:
        yield k
    finally:
        k.stop()


def running_pod(name: str, ns: str = "default", containers=("app",), image: str = "busybox:1.36",
                labels: dict | None = None, node: str = "node-1") -> dict:
    """A pod as the kubelet reports a running one (validates against the client's models)."""
    ts = "2026-01-01T00:00:00Z"
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": c, "image": image} for c in containers]},
        "status": {
            "phase": "Running", "podIP": "10.8.0.5", "podIPs": [{"ip": "10.8.0.5"}], "hostIP": "10.128.0.9",
            "hostIPs": [{"ip": "10.128.0.9"}], "startTime": ts, "qosClass": "BestEffort",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": c, "image": image, "imageID": f"docker.io/library/{image}@sha256:ab",
                                   "containerID": "containerd://0123", "ready": True, "restartCount": 0,
                                   "started": True, "state": {"running": {"startedAt": ts}}} for c in containers],
        },
    }
