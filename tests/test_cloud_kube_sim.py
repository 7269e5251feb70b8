"""cloud/kube.py against the simulated cluster: apply/get, the list-watch loop through 410s,
dropped watches, 5xx and revoked credentials, and the log follower."""

from __future__ import annotations

import threading
import time

import pytest

from rhaii_tui.cloud.gke import CloudError, Gke
from rhaii_tui.cloud.kube import CREDENTIALS_STATE, KubeSession, ListWatcher, WatchEvent, follow_logs, obj_name, obj_uid

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
NS = "watch-test"


@pytest.fixture
def cluster(make_sim_world):
    world = make_sim_world("cluster-ready")
    info = Gke(world.profile(), PROJECT, ZONE).get_cluster("rhaii-tpu-scaleout-cluster")
    session = KubeSession(world.profile(), info.access)
    session.ensure_namespace(NS)
    yield world, session
    session.close()


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Rows:
    def __init__(self):
        self.rows: dict[str, str] = {}
        self.duplicates = 0
        self.lock = threading.Lock()

    def __call__(self, ev: WatchEvent):
        with self.lock:
            if ev.type == "RESYNC":
                self.rows = {obj_uid(o): obj_name(o) for o in ev.objects}
            elif ev.type == "ADDED":
                self.duplicates += ev.uid in self.rows
                self.rows[ev.uid] = obj_name(ev.obj)
            elif ev.type == "MODIFIED":
                self.rows[ev.uid] = obj_name(ev.obj)
            elif ev.type == "DELETED":
                self.rows.pop(ev.uid, None)

    def names(self):
        with self.lock:
            return sorted(self.rows.values())


def cm(name, value="1"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


def server_names(session):
    return sorted(obj_name(o) for o in session.list("v1", "ConfigMap", NS) if obj_name(o).startswith("cm-"))


def test_apply_is_idempotent_and_get_or_none(cluster):
    world, s = cluster
    assert s.ensure_namespace(NS) is False
    a = s.apply(cm("cm-a"), NS)
    b = s.apply(cm("cm-a"), NS)
    assert a["metadata"]["uid"] == b["metadata"]["uid"]
    assert s.apply(cm("cm-a", "2"), NS)["data"] == {"v": "2"}
    assert s.get("v1", "ConfigMap", "cm-a", NS)["data"] == {"v": "2"}
    assert s.get("v1", "ConfigMap", "nope", NS) is None
    assert s.get_or_none(s.core.read_namespaced_config_map, "nope", NS) is None
    assert s.delete("v1", "ConfigMap", "cm-a", NS) and not s.delete("v1", "ConfigMap", "cm-a", NS)
    with pytest.raises(CloudError) as ei:
        s.apply(cm("cm-b"), "no-such-namespace")
    assert ei.value.kind == "not_found" and ei.value.fix


def test_watch_survives_410_drops_and_errors_without_duplicates(cluster):
    world, s = cluster
    for i in range(3):
        s.apply(cm(f"cm-{i}"), NS)
    rows, states = Rows(), []
    sim = world.sim()
    sim.faults.watch_drop_seconds = 0.2  # every watch is cut after 0.2 s: resumes from its rv
    w = ListWatcher(s.core.list_namespaced_config_map, NS, None, rows, states.append,
                    backoff_min=0.05, backoff_max=0.2, watch_timeout=30).start()
    try:
        wait_for(lambda: rows.names() == server_names(s), what="first list")
        assert w.state == "live"
        rt = world.call(lambda: sim.store.type_for("configmaps"))
        # the next resume gets 410 Expired (as after a compaction) and the re-list fails (500s)
        sim.faults.error_rate = 1.0
        sim.faults.expire_once = True
        world.call(lambda: [sim.store.create(rt, cm(f"cm-new-{i}"), NS) for i in range(2)])
        world.call(lambda: sim.store.delete(rt, NS, "cm-0"))
        world.call(lambda: sim.store.compact(rt))
        wait_for(lambda: w.state.startswith("reconnecting"), what="reconnecting state")
        world.call(lambda: sim.store.delete(rt, NS, "cm-1"))
        sim.faults.error_rate = 0.0
        wait_for(lambda: w.state == "live", what="live again")
        world.call(lambda: sim.store.create(rt, cm("cm-after"), NS))
        wait_for(lambda: rows.names() == server_names(s), what="rows to match the server")
    finally:
        w.stop()
    assert rows.names() == ["cm-2", "cm-after", "cm-new-0", "cm-new-1"]
    assert rows.duplicates == 0
    assert w.lists >= 2, "re-listed after the 410"
    assert any(x.startswith("reconnecting (attempt 1,") for x in states)
    assert states[-1] == "stopped" and not w.running


def test_expire_once_fault_relists(cluster):
    world, s = cluster
    s.apply(cm("cm-x"), NS)
    sim = world.sim()
    sim.faults.expire_once = True
    sim.faults.watch_drop_seconds = 0.1
    rows = Rows()
    w = ListWatcher(s.core.list_namespaced_config_map, NS, None, rows, None, backoff_min=0.05).start()
    try:
        wait_for(lambda: w.lists >= 2, what="a re-list after 410")
        s.apply(cm("cm-y"), NS)
        wait_for(lambda: rows.names() == ["cm-x", "cm-y"])
    finally:
        w.stop()
    assert rows.duplicates == 0


def test_revoked_credentials_show_as_a_state_and_recover(cluster):
    world, s = cluster
    states = []
    w = ListWatcher(s.core.list_namespaced_config_map, NS, None, Rows(), states.append,
                    backoff_min=0.05, backoff_max=0.1, watch_timeout=1).start()
    try:
        wait_for(lambda: w.state == "live")
        world.sim().faults.watch_drop_seconds = 0.1
        world.call(world.world.revoke_token)
        wait_for(lambda: w.state == CREDENTIALS_STATE, what="credentials state")
        world.call(world.world.restore_token)
        wait_for(lambda: w.state == "live", what="recovered")
    finally:
        w.stop()
    with pytest.raises(CloudError) as ei:
        world.call(world.world.revoke_token)
        s.apply(cm("cm-z"), NS)
    assert ei.value.kind == "credentials" and "application-default login" in ei.value.fix


def test_custom_objects_and_nodes_watch(cluster):
    world, s = cluster
    rows = Rows()
    w = ListWatcher(s.core.list_node, None, "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice", rows, None).start()
    try:
        wait_for(lambda: len(rows.names()) == 3, what="3 TPU nodes")
    finally:
        w.stop()


def _make_running_pod(world, name="logpod"):
    sim = world.sim()
    rt = world.call(lambda: sim.store.type_for("pods"))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
           # never scheduled (no node matches), so no simulated kubelet plays it: the test does
           "spec": {"containers": [{"name": "main", "image": "x"}], "nodeSelector": {"test.example/none": "x"}},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "main", "ready": True, "restartCount": 0, "image": "x", "imageID": "x",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}

    def create():
        obj = sim.store.create(rt, pod, NS)
        # status as the kubelet would set it (the create path may reset status)
        def set_status(o):
            o["status"] = pod["status"]
        sim.store.mutate(rt, NS, name, set_status, subresource="status")
        return obj

    world.call(create)
    return sim, rt


def test_follow_logs_until_the_container_terminates(cluster):
    world, s = cluster
    sim, rt = _make_running_pod(world)
    world.call(lambda: sim.logs.append(NS, "logpod", "main", "line 1\nline 2"))
    got: list[str] = []
    states: list[str] = []
    stop = threading.Event()
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(
        follow_logs(s.core, NS, "logpod", "main", got.extend, stop, on_state=states.append)), daemon=True)
    t.start()
    wait_for(lambda: got == ["line 1", "line 2"], what="first lines")
    world.call(lambda: sim.logs.append(NS, "logpod", "main", "line 3"))
    wait_for(lambda: len(got) == 3, what="followed line")

    def terminate():
        def st(o):
            o["status"]["phase"] = "Succeeded"
            o["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        sim.store.mutate(rt, NS, "logpod", st, subresource="status")
        sim.logs.append(NS, "logpod", "main", "bye")
        sim.logs.terminate(NS, "logpod", "main")

    world.call(terminate)
    t.join(10)
    assert result == ["terminated: Completed"]
    assert got == ["line 1", "line 2", "line 3", "bye"], "every line once, no timestamps"


def test_follow_logs_stops_on_request(cluster):
    world, s = cluster
    _make_running_pod(world, "quiet")
    stop = threading.Event()
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(
        follow_logs(s.core, NS, "quiet", "main", lambda lines: None, stop)), daemon=True)
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(5)
    assert result == ["stopped"]


def test_as_many_open_streams_as_a_big_deploy_page_keeps_its_connections(cluster, caplog):
    """Step 5 with 8 replicas holds 16 log streams and 4 watches at once: each connection goes back
    to the pool afterwards instead of being discarded (a new TLS handshake for the next request)."""
    _world, session = cluster
    n = 20
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def watch_once() -> None:
        try:
            barrier.wait(timeout=10)
            resp = session.core.list_namespaced_config_map(NS, watch=True, timeout_seconds=1,
                                                           _preload_content=False)
            resp.read()
            resp.release_conn()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=watch_once) for _ in range(n)]
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert not errors
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
