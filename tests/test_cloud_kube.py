"""cloud/kube.py without a cluster: the list-watch-relist loop's state machine, log dedupe, errors."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes.client.exceptions import ApiException

from rhaii_tui.cloud import kube
from rhaii_tui.cloud.kube import CREDENTIALS_STATE, ListWatcher, WatchEvent, _Dedupe, kube_error
from rhaii_tui.cloud.profile import CredentialsError


def obj(uid, rv, name=None):
    return {"metadata": {"uid": uid, "name": name or uid, "resourceVersion": str(rv)}}


class Server:
    """Scripted list results and watch streams."""

    def __init__(self, lists, watches):
        self.lists = list(lists)
        self.watches = list(watches)
        self.list_calls = 0
        self.watch_rvs = []

    def list_fn(self, *args, **kwargs):
        self.list_calls += 1
        item = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(item, BaseException):
            raise item
        return item


class FakeWatch:
    server: Server

    def __init__(self):
        self._stop = False

    def stop(self):
        self._stop = True

    def stream(self, func, *args, **kwargs):
        self.server.watch_rvs.append(kwargs.get("resource_version"))
        script = self.server.watches.pop(0) if self.server.watches else "idle"
        if script == "idle":
            while not self._stop:
                time.sleep(0.005)
            return
        for step in script:
            if isinstance(step, BaseException):
                raise step
            yield step


@pytest.fixture
def fake_watch(monkeypatch):
    import kubernetes.watch

    def install(server):
        FakeWatch.server = server
        monkeypatch.setattr(kubernetes.watch, "Watch", FakeWatch)

    return install


def run_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Rows:
    """A consumer keyed by uid that notices duplicates (ADDED for a row it already shows)."""

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.duplicates = 0
        self.resyncs = 0
        self.lock = threading.Lock()

    def __call__(self, ev: WatchEvent):
        with self.lock:
            if ev.type == "RESYNC":
                self.resyncs += 1
                self.rows = {kube.obj_uid(o): o for o in ev.objects}
            elif ev.type == "ADDED":
                if ev.uid in self.rows:
                    self.duplicates += 1
                self.rows[ev.uid] = ev.obj
            elif ev.type == "MODIFIED":
                self.rows[ev.uid] = ev.obj
            elif ev.type == "DELETED":
                self.rows.pop(ev.uid, None)


def test_410_relists_and_drops_vanished_rows(fake_watch):
    first = {"items": [obj("a", 1), obj("b", 2)], "metadata": {"resourceVersion": "2"}}
    second = {"items": [obj("a", 5), obj("c", 6)], "metadata": {"resourceVersion": "6"}}
    server = Server([first, second], [
        [{"type": "ADDED", "object": obj("x", 3)}, ApiException(status=410, reason="Expired")],
        "idle",
    ])
    fake_watch(server)
    rows, states = Rows(), []
    w = ListWatcher(server.list_fn, "ns", "app=x", rows, states.append, backoff_min=0.01).start()
    try:
        run_until(lambda: server.list_calls >= 2 and len(server.watch_rvs) >= 2)
        run_until(lambda: set(rows.rows) == {"a", "c"})
    finally:
        w.stop()
    assert rows.duplicates == 0 and rows.resyncs == 2
    assert server.watch_rvs[:2] == ["2", "6"], "watch from the list's rv, then from the re-list's rv"
    assert set(w.snapshot()) == {"a", "c"}
    assert states[0] == "live" and states[-1] == "stopped"
    assert not any(s.startswith("reconnecting") for s in states), "a 410 is a re-list, not an outage"


def test_stream_end_rewatches_from_last_rv_without_relist(fake_watch):
    lst = {"items": [obj("a", 1)], "metadata": {"resourceVersion": "1"}}
    server = Server([lst], [[{"type": "MODIFIED", "object": obj("a", 7)}], [{"type": "DELETED", "object": obj("a", 8)}],
                            "idle"])
    fake_watch(server)
    rows = Rows()
    w = ListWatcher(server.list_fn, "ns", None, rows, None).start()
    try:
        run_until(lambda: len(server.watch_rvs) >= 3)
    finally:
        w.stop()
    assert server.watch_rvs[:3] == ["1", "7", "8"]
    assert server.list_calls == 1 and rows.rows == {}


def test_errors_back_off_report_reconnecting_then_recover(fake_watch):
    lst = {"items": [obj("a", 1)], "metadata": {"resourceVersion": "1"}}
    server = Server([ApiException(status=500, reason="boom"), ConnectionResetError("reset"), lst],
                    ["idle"])
    fake_watch(server)
    states = []
    w = ListWatcher(server.list_fn, "ns", None, Rows(), states.append, backoff_min=0.01, backoff_max=0.02).start()
    try:
        run_until(lambda: w.state == "live")
    finally:
        w.stop()
    recon = [s for s in states if s.startswith("reconnecting")]
    assert recon[0].startswith("reconnecting (attempt 1,") and recon[1].startswith("reconnecting (attempt 2,")
    assert "ConnectionResetError" in recon[1]
    assert states[-1] == "stopped" and not w.running


def test_expired_credentials_become_a_state_not_a_crash(fake_watch):
    server = Server([ApiException(status=401, reason="Unauthorized"), CredentialsError("refresh failed")], ["idle"])
    fake_watch(server)
    states = []
    w = ListWatcher(server.list_fn, None, None, None, states.append, backoff_min=0.01, backoff_max=0.01).start()
    try:
        run_until(lambda: server.list_calls >= 2)
    finally:
        w.stop()
    assert CREDENTIALS_STATE in states
    assert "sign in again" in CREDENTIALS_STATE  # says what to do, for any profile


def test_consumer_exceptions_do_not_kill_the_loop(fake_watch):
    lst = {"items": [obj("a", 1)], "metadata": {"resourceVersion": "1"}}
    server = Server([lst], [[{"type": "ADDED", "object": obj("b", 2)}], "idle"])
    fake_watch(server)

    def bad(ev):
        raise RuntimeError("consumer bug")

    w = ListWatcher(server.list_fn, "ns", None, bad, None).start()
    try:
        run_until(lambda: len(server.watch_rvs) >= 2)
        assert w.running
    finally:
        w.stop()
    assert set(w.snapshot()) == {"a", "b"}


def test_dedupe_drops_replayed_lines():
    d = _Dedupe()
    lines = ["2026-01-01T00:00:01.000000000Z one", "2026-01-01T00:00:02.000000000Z two",
             "2026-01-01T00:00:02.000000000Z two-b"]
    assert [d.accept(l) for l in lines] == ["one", "two", "two-b"]
    d.reconnect()
    replay = lines[1:] + ["2026-01-01T00:00:02.000000000Z two-c", "2026-01-01T00:00:03.5Z three"]
    assert [d.accept(l) for l in replay] == [None, None, "two-c", "three"]
    assert _Dedupe().accept("no timestamp here") == "no timestamp here"


def test_kube_error_mapping_and_scrubbing():
    e = ApiException(status=422, reason="Invalid")
    e.body = '{"kind":"Status","message":"Secret \\"x\\" is invalid: data: value s3cr3t-VALUE bad"}'
    err = kube_error(e, "apply Secret x", ["s3cr3t-VALUE"])
    assert "s3cr3t-VALUE" not in str(err) and "***" in err.message and err.fix
    assert kube_error(ApiException(status=401), "x").kind == "credentials"
    assert kube_error(ApiException(status=403), "x").kind == "permission"
    assert kube_error(ApiException(status=503), "x").kind == "unavailable"
    assert kube_error(ConnectionRefusedError("no"), "x").kind == "unavailable"


class FakeResp:
    def __init__(self, chunks):
        self.chunks = chunks

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks

    def close(self):
        pass

    def release_conn(self):
        pass


class FakeCore:
    """Two log streams that overlap (the second replays the end of the first), then termination."""

    def __init__(self):
        self.calls = []
        self.streams = [
            [b"2026-01-01T00:00:01.000000000Z a\n2026-01-01T00:00:02.0000", b"00000Z b\n"],
            [b"2026-01-01T00:00:02.000000000Z b\n2026-01-01T00:00:03.000000000Z c\n"],
        ]
        self.states = ["running", "terminated"]

    def read_namespaced_pod_log(self, pod, ns, **kw):
        self.calls.append(kw)
        if len(self.calls) == 1:
            raise ApiException(status=400, reason="BadRequest")  # waiting to start: see body
        return FakeResp(self.streams.pop(0))

    def read_namespaced_pod(self, pod, ns, **kw):
        from kubernetes.client import V1ContainerState, V1ContainerStateRunning, V1ContainerStateTerminated, \
            V1ContainerStatus, V1Pod, V1PodStatus

        st = self.states.pop(0)
        state = V1ContainerState(running=V1ContainerStateRunning()) if st == "running" else \
            V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=0, reason="Completed"))
        return V1Pod(status=V1PodStatus(container_statuses=[V1ContainerStatus(
            name="main", image="x", image_id="x", ready=False, restart_count=0, state=state)]))


def test_follow_logs_waits_reconnects_and_dedupes():
    core = FakeCore()
    orig = core.read_namespaced_pod_log

    def first_waiting(pod, ns, **kw):
        try:
            return orig(pod, ns, **kw)
        except ApiException as e:
            e.body = '{"message": "container \\"main\\" in pod \\"p\\" is waiting to start: ContainerCreating"}'
            raise

    core.read_namespaced_pod_log = first_waiting
    lines, states = [], []
    result = kube.follow_logs(core, "ns", "p", "main", lines.extend, threading.Event(), tail=50,
                              on_state=states.append, backoff_min=0.001, wait_poll=0.001)
    assert result == "terminated: Completed"
    assert lines == ["a", "b", "c"]
    assert core.calls[0]["tail_lines"] == 50 and core.calls[1]["tail_lines"] == 50, "tail kept until connected"
    assert "since_seconds" in core.calls[2] and "tail_lines" not in core.calls[2]
    assert all(c["timestamps"] and c["follow"] for c in core.calls)
    assert states[0].startswith("waiting: ") and "following" in states
