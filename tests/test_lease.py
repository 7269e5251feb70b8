"""The deploy lease (rhaii_tui/lease.py) against the emulator's Kubernetes API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from rhaii_tui import cli
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.lease import LEASE_NAME, Identity, Lease, LeaseHeld, read_lease
from rhaii_tui.steps.context import StepContext

NS = "rhaii-inference"
ALICE = Identity("alice", "otherhost", 4242)
BOB = Identity("bob", "thirdhost", 777)


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def make_ctx(world) -> StepContext:
    cfg = DeployConfig(project="rhaii-demo-project", zone="europe-west4-a", cluster="rhaii-tpu-scaleout-cluster")
    return StepContext(cfg, world.profile(), StateStore())


@pytest.fixture
def ctx(make_sim_world):
    c = make_ctx(make_sim_world("cluster-ready"))
    c.kube().ensure_namespace(NS)
    return c


def test_no_namespace_no_lease(make_sim_world):
    c = make_ctx(make_sim_world("cluster-ready"))
    lease = Lease(c.kube, NS)
    assert lease.acquire() is False and not lease.held
    assert read_lease(c.kube(), NS) is None


def test_acquire_renew_release(ctx):
    lease = Lease(ctx.kube, NS, ttl=60)
    assert lease.acquire() is True and lease.held
    cm = ctx.kube().get("v1", "ConfigMap", LEASE_NAME, NS)
    d = cm["data"]
    me = Identity.current()
    assert d["holder"] == f"{me.user}@{me.host}:{os.getpid()}" and d["pid"] == str(os.getpid())
    assert d["ttlSeconds"] == "60" and d["acquired"] and d["renewed"]
    first = float(d["renewedEpoch"])
    time.sleep(0.05)
    assert lease.renew() is True
    info = read_lease(ctx.kube(), NS)
    assert info.renewed > first and info.acquired == pytest.approx(float(d["acquiredEpoch"]))
    assert info.live() and info.holder == me.holder
    # acquiring again from the same process is a renewal, not a refusal
    assert Lease(ctx.kube, NS).acquire() is True
    lease.release()
    assert ctx.kube().get("v1", "ConfigMap", LEASE_NAME, NS) is None


def test_a_fresh_lease_of_someone_else_is_refused_watch_only(ctx):
    alice = Lease(ctx.kube, NS, identity=ALICE)
    assert alice.acquire()
    with pytest.raises(LeaseHeld) as e:
        Lease(ctx.kube, NS).acquire()
    assert str(e.value) == "another rhaii-tui (alice@otherhost, pid 4242) is deploying; watch-only"
    assert read_lease(ctx.kube(), NS).holder == ALICE.holder     # untouched


def test_a_stale_lease_is_taken_over_and_its_old_holder_learns_it_lost(ctx):
    alice = Lease(ctx.kube, NS, identity=ALICE, ttl=0.2)
    assert alice.acquire()
    time.sleep(0.3)
    me = Lease(ctx.kube, NS)
    assert me.acquire() is True
    assert me.taken_over is not None and me.taken_over.holder == ALICE.holder
    assert read_lease(ctx.kube(), NS).holder == me.identity.holder
    # alice comes back: her resourceVersion-checked renewal fails and she knows who holds it now
    assert alice.renew() is False
    assert alice.lost is not None and alice.lost.holder == me.identity.holder and not alice.held
    me.release()


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(ctx):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = Identity("someone", socket.gethostname(), proc.pid)
    assert Lease(ctx.kube, NS, identity=dead, ttl=600).acquire()
    me = Lease(ctx.kube, NS)
    assert me.acquire() is True and me.taken_over.pid == proc.pid


class _RacingSession:
    """Holds every PUT until both contenders are about to send theirs."""

    def __init__(self, session, barrier):
        self._s = session
        self._barrier = barrier

    def __getattr__(self, name):
        return getattr(self._s, name)

    def request(self, method, path, **kw):
        if method == "PUT":
            self._barrier.wait(5)
        return self._s.request(method, path, **kw)


def test_two_takeovers_at_once_one_wins_the_other_is_refused(ctx):
    assert Lease(ctx.kube, NS, identity=ALICE, ttl=0.1).acquire()
    time.sleep(0.2)
    barrier = threading.Barrier(2)
    contenders = [Lease(lambda: _RacingSession(ctx.kube(), barrier), NS, identity=ident) for ident in (BOB, Identity(
        "carol", "fourthhost", 99))]
    results: dict[str, object] = {}

    def go(lease):
        try:
            results[lease.identity.user] = lease.acquire()
        except LeaseHeld as e:
            results[lease.identity.user] = e

    threads = [threading.Thread(target=go, args=(c,)) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    winners = [u for u, r in results.items() if r is True]
    losers = [r for r in results.values() if isinstance(r, LeaseHeld)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert read_lease(ctx.kube(), NS).user == winners[0]
    assert losers[0].info.user == winners[0]


def test_renewing_in_the_background_and_losing_it(ctx):
    lease = Lease(ctx.kube, NS, ttl=0.3)
    assert lease.acquire()
    lost = threading.Event()
    lease.start_renewing(on_lost=lambda info: lost.set(), interval=0.05)
    before = read_lease(ctx.kube(), NS).renewed
    time.sleep(0.4)
    info = read_lease(ctx.kube(), NS)
    assert info.renewed > before and info.live()          # kept fresh past its TTL
    # someone overwrites it (as a takeover would): the renewal notices and reports it
    cm = ctx.kube().get("v1", "ConfigMap", LEASE_NAME, NS)
    cm["data"].update(holder=BOB.holder, user=BOB.user, host=BOB.host, pid=str(BOB.pid))
    ctx.kube().request("PUT", f"/api/v1/namespaces/{NS}/configmaps/{LEASE_NAME}", body=cm,
                       content_type="application/json")
    assert lost.wait(3)
    assert lease.lost.holder == BOB.holder and not lease.held
    lease.release()                                       # not ours any more: left alone
    assert read_lease(ctx.kube(), NS).holder == BOB.holder


def test_headless_apply_refuses_while_another_rhaii_tui_deploys(make_sim_world, capsys):
    world = make_sim_world("partial")               # steps 6-8 still to do
    c = make_ctx(world)
    assert Lease(c.kube, NS, identity=ALICE).acquire()
    capsys.readouterr()
    code = cli.main(["--sim", "--sim-state", str(world.state_dir), "apply", "--json", "--netpol", "skip",
                     "--poll", "0.05"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip() == "rhaii-tui: another rhaii-tui (alice@otherhost, pid 4242) is deploying; watch-only"
    doc = json.loads(out)
    assert doc["error"]["lease"]["holder"] == ALICE.holder
    assert all(s["action"] != "ran" for s in doc["steps"])
    # status shows who holds it
    cli.main(["--sim", "--sim-state", str(world.state_dir), "status", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["lease"]["holder"] == ALICE.holder and doc["lease"]["live"] is True
    # the EPP was not touched
    from rhaii_tui.steps import epp
    assert epp.probe(c).status.value != "done"
