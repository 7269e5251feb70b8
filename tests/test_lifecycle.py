"""Lifecycle: quitting returns at once whatever runs, and no worker thread holds the process."""

from __future__ import annotations

import asyncio
import threading
import time

from textual.widgets import Log

from rhaii_tui.app import RhaiiApp, release_lease_briefly
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.screens.operate import OperateScreen

SIZE = (120, 40)
QUIT_BOUND = 10.0  # generous for a loaded CI machine; measured well under 2 s


async def until(pilot, predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting in the app")
        await pilot.pause(0.05)


def blocking_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since `before` that would keep the interpreter from exiting."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
            and t is not threading.main_thread()]


def test_quit_during_a_long_scale_returns_at_once(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=2)  # a slow world: the node pool grows for minutes
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "state"), start_step=12)
    before = set(threading.enumerate())
    quit_at: list[float] = []

    async def walk() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            assert isinstance(page, OperateScreen)
            await until(pilot, lambda: page.status is not None and page.status.replicas_ready == 3)
            page.start("scale", "Scale to 4", n=4)
            await until(pilot, lambda: "Resizing node pool" in "\n".join(page.query_one(Log).lines))
            assert page.busy and page.result is None  # the action is under way
            quit_at.append(time.monotonic())
            await pilot.press("ctrl+q")

    asyncio.run(walk())  # asyncio.run waits for the loop's executor threads, as the real app's run does
    elapsed = time.monotonic() - quit_at[0]
    assert elapsed < QUIT_BOUND, f"quitting took {elapsed:.1f} s"
    deadline = time.monotonic() + QUIT_BOUND
    while blocking_threads(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not blocking_threads(before), [t.name for t in blocking_threads(before)]


def test_lease_release_at_quit_has_a_time_limit():
    gate = threading.Event()

    class StuckKeeper:
        def release(self) -> None:
            gate.wait(60)  # a cluster that does not answer

    started = time.monotonic()
    try:
        assert release_lease_briefly(StuckKeeper(), timeout=0.2) is False
        assert time.monotonic() - started < 5
    finally:
        gate.set()

    class QuickKeeper:
        released = False

        def release(self) -> None:
            QuickKeeper.released = True

    assert release_lease_briefly(QuickKeeper(), timeout=5) is True and QuickKeeper.released


# --- step 4's installer: Stop ends the whole process group ---------------------------------------------


def _gone(pid: int) -> bool:
    """No such process (or only a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        import os

        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def test_stopping_the_installer_stops_every_process_it_started(tmp_path):
    import os
    import signal
    import sys

    from rhaii_tui.steps import operators

    pidfile = tmp_path / "child.pid"
    script = tmp_path / "fake-installer.sh"
    # like make running a recipe: a shell that starts a long child and waits for it
    script.write_text(f"#!/bin/sh\n{sys.executable} -c 'import time; time.sleep(120)' &\n"
                      f"echo $! > {pidfile}\necho started\nwait\n")
    script.chmod(0o755)
    lines: list[str] = []
    stop = threading.Event()
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(
        operators.run_streaming([str(script)], lines.append, stop=stop, grace=2.0)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while not ("started" in lines and pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and runner.is_alive(), lines
        time.sleep(0.02)
    child = int(pidfile.read_text())
    try:
        stop.set()
        runner.join(30)
        assert not runner.is_alive(), "run_streaming still reads the output of a child left running"
        assert codes == [-1]
        deadline = time.monotonic() + 30
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(child), "the installer's child survived Stop"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- never wait for the UI thread while holding a lock ---------------------------------------------------


def test_a_failed_token_refresh_while_building_the_kube_session_does_not_deadlock(tmp_path):
    """The session is built outside the context's lock: a credentials listener that waits for
    another thread (the UI, saving the config: set_config takes the lock) does not wait forever."""
    from types import SimpleNamespace

    from rhaii_tui.cloud.gke import CloudError
    from rhaii_tui.cloud.profile import ClusterAccess, ConnectionProfile, CredentialsError
    from rhaii_tui.steps.context import StepContext

    class ExpiredProfile(ConnectionProfile):
        def kube_api_client(self, access):
            self._notify_credentials_failure("expired")  # as access_token() does when a refresh fails
            raise CredentialsError("expired")

    profile = ExpiredProfile()
    cfg = DeployConfig(project="p", zone="europe-west4-a", cluster="c")
    ctx = StepContext(cfg, profile, None)
    access = ClusterAccess("10.0.0.1:443", "Q0E=")
    ctx.cluster = lambda refresh=False: SimpleNamespace(endpoint=access.endpoint, ca_cert_b64=access.ca_cert_b64,
                                                        access=access, name="c", status="RUNNING")
    saved: list[bool] = []

    def listener(_message: str) -> None:  # the app's listener hands over to the UI thread, which...
        ui = threading.Thread(target=lambda: (ctx.set_config(cfg.replace(replicas=4)), saved.append(True)),
                              daemon=True)
        ui.start()  # ... is saving the config at that moment
        ui.join(10)

    profile.add_credentials_listener(listener)
    outcome: list[str] = []

    def build() -> None:
        try:
            ctx.kube()
            outcome.append("built")
        except CloudError as e:
            outcome.append(e.kind)

    builder = threading.Thread(target=build, daemon=True)
    started = time.monotonic()
    builder.start()
    builder.join(30)
    assert not builder.is_alive()
    assert outcome == ["credentials"]
    assert saved == [True], "the config save waited for the lock held while fetching a token"
    assert time.monotonic() - started < 9
    assert ctx.cfg.replicas == 4


# --- pages 6-11 run their mount handlers once --------------------------------------------------------------


def test_pages_6_to_11_mount_once_and_page_6_polls_on_one_timer(monkeypatch, tmp_path):
    from collections import Counter

    from rhaii_tui.screens import epp_sidecar, verify
    from rhaii_tui.screens.base import StepScreen
    from rhaii_tui.widgets.throughput_chart import ThroughputChart

    calls: Counter = Counter()

    def counting(cls):
        original = cls.__dict__["on_mount"]

        def on_mount(self) -> None:
            calls[(cls.__name__, getattr(self, "number", id(self)))] += 1
            original(self)

        monkeypatch.setattr(cls, "on_mount", on_mount)

    for cls in (StepScreen, epp_sidecar.ProbingScreen, verify.ResultsPage, ThroughputChart):
        counting(cls)
    app = RhaiiApp(DeployConfig(project="p"), profile=None, state_store=StateStore(tmp_path / "state"), start_step=6)

    async def walk() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await app.start_page_ready.wait()
            for number in range(7, 12):
                app.goto_step(number)
                await until(pilot, lambda: app.page_widget(number) is not None
                            and app.page_widget(number).is_mounted)
            await pilot.pause()
            page6 = app.page_widget(6)
            polls = [t for t in page6._timers if getattr(t, "name", "") == "probe-poll"]
            assert len(polls) == 1, f"page 6 polls on {len(polls)} timers"

    asyncio.run(walk())
    assert all(c == 1 for c in calls.values()), {k: c for k, c in calls.items() if c != 1}
    assert {n for (name, n) in calls if name == "StepScreen"} >= set(range(6, 12))
    assert {n for (name, n) in calls if name == "ProbingScreen"} >= {6, 7, 8}


# --- the DOM is queried on the UI thread only --------------------------------------------------------------


def test_operate_workers_never_query_the_dom_from_their_thread(monkeypatch):
    """A failed status read and a checklist probe report through the UI thread: the widget
    lookups happen there, not in the worker (Textual's DOM is not thread-safe)."""
    from rhaii_tui.steps import operate

    class FakeSimProfile:
        simulated = True
        label = "Simulated cloud"

    def unreachable(ctx, **kw):
        raise RuntimeError("the cluster does not answer")

    monkeypatch.setattr(operate, "read_status", unreachable)
    monkeypatch.setattr(operate, "migration_status", lambda ctx, **kw: [])
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a", replicas=3)
    app = RhaiiApp(cfg, profile=FakeSimProfile(), start_step=12)
    off_thread: list[str] = []
    original = OperateScreen.query_one

    def query_one(self, *args, **kwargs):
        if threading.get_ident() != app._thread_id:
            off_thread.append(repr(args))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OperateScreen, "query_one", query_one)

    async def walk() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            assert isinstance(page, OperateScreen)
            hint = page.query_one("#ops-hint")
            await until(pilot, lambda: "Could not read the status" in str(hint.render()))
            page._probe_checklist()
            await until(pilot, lambda: not any(w.is_running for w in app.workers
                                               if w.group == "ops-checklist"))
            await pilot.pause()

    asyncio.run(walk())
    assert off_thread == []


# --- thread pools that never hold the process at exit ------------------------------------------------------


def test_daemon_executor_bounds_its_tasks_and_never_holds_the_process():
    from rhaii_tui.threads import DaemonExecutor

    gate = threading.Event()
    running: list[int] = []
    most = [0]
    lock = threading.Lock()

    def task(i: int) -> int:
        with lock:
            running.append(i)
            most[0] = max(most[0], len(running))
        try:
            gate.wait(30)
            return i * i
        finally:
            with lock:
                running.remove(i)

    with DaemonExecutor(max_workers=2, thread_name_prefix="t") as pool:
        futures = [pool.submit(task, i) for i in range(5)]
        threads = [t for t in threading.enumerate() if t.name.startswith("t-")]
        assert threads and all(t.daemon for t in threads)
        deadline = time.monotonic() + 30
        while len(running) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert most[0] == 2
        gate.set()
    assert [f.result(0) for f in futures] == [0, 1, 4, 9, 16]  # the with block waited for them
    assert most[0] == 2

    stuck = threading.Event()
    app_pool = DaemonExecutor(wait_on_shutdown=False)  # the app's: quitting never waits for a worker
    f = app_pool.submit(stuck.wait, 30)
    started = time.monotonic()
    app_pool.shutdown(wait=True)
    assert time.monotonic() - started < 5 and not f.done()
    stuck.set()
