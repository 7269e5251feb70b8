"""The sidebar follows the cloud, whoever changes it: a teardown made from another terminal (here:
the same step logic `rhaii-tui ops teardown` runs, on another connection) shows within seconds."""

from __future__ import annotations

import asyncio
import time

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps import operate
from rhaii_tui.steps.context import StepContext
from rhaii_tui.widgets.marks import status_of

from pilothelpers import until

CLUSTER = "rhaii-tpu-scaleout-cluster"


@pytest.mark.asyncio
async def test_sidebar_follows_a_teardown_made_from_elsewhere(make_sim_world, tmp_path, monkeypatch):
    monkeypatch.setattr(RhaiiApp, "REPROBE_SECONDS", 0.5)
    world = make_sim_world("deployed")
    cfg = DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "a"), start_step=0,
                   resume=True)

    def status(n: int) -> str:
        return status_of(app.step_states.get(n))

    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await until(pilot, lambda: status(2) == "done" and status(5) == "done", timeout=60,
                    what="steps 2 and 5 done in the sidebar")

        other = StepContext(DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3),
                            world.profile(), StateStore(tmp_path / "b"))
        res = await asyncio.to_thread(operate.teardown, other, "cluster")
        assert res.ok, res.summary

        await until(pilot, lambda: status(2) != "done" and status(5) != "done", timeout=60,
                    what="the sidebar to follow the teardown")


@pytest.mark.asyncio
async def test_sidebar_follows_the_headless_cli_tearing_the_cluster_down(make_sim_world, tmp_path, monkeypatch):
    """`rhaii-tui ops teardown --cluster --yes` (the real CLI, in-process, on the same world) while the
    wizard is open: within seconds the sidebar shows the cluster and everything on it gone."""
    import contextlib
    import io

    from rhaii_tui import cli

    monkeypatch.setattr(RhaiiApp, "REPROBE_SECONDS", 0.5)
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "cli-state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    world = make_sim_world("deployed")
    cfg = DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "a"), start_step=12,
                   resume=True)

    def status(n: int) -> str:
        return status_of(app.step_states.get(n))

    def teardown() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["--sim", "--sim-state", str(world.state_dir), "ops", "teardown", "--cluster", "--yes"])
        return code, out.getvalue()

    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await until(pilot, lambda: all(status(n) == "done" for n in (2, 3, 4, 5)), timeout=60,
                    what="steps 2-5 done in the sidebar")
        code, out = await asyncio.to_thread(teardown)
        assert code == 0, out
        assert not world.state()["clusters"], "the CLI deleted the cluster"
        await until(pilot, lambda: all(status(n) == "not_started" for n in (2, 3, 4, 5, 9)), timeout=60,
                    what="the sidebar to follow the headless teardown")
        page = app.current_page  # Operate says it too
        await until(pilot, lambda: status(12) != "done", timeout=60, what="Operate to follow")
        assert page.step_state is app.step_states[12]


@pytest.mark.asyncio
async def test_left_alone_the_wizard_re_probes_once_a_minute_and_a_key_brings_the_full_pace_back(
        make_sim_world, tmp_path, monkeypatch):
    """Idle CPU (issue 15): with nobody at the keyboard and nothing changing, the re-probe of every
    step slows to REPROBE_QUIET_SECONDS; a key press (or a change the re-probe finds) restores the pace."""
    from rhaii_tui.steps import registry

    monkeypatch.setattr(RhaiiApp, "REPROBE_SECONDS", 0.2)
    monkeypatch.setattr(RhaiiApp, "QUIET_AFTER_SECONDS", 3600.0)  # at first: someone is here
    monkeypatch.setattr(RhaiiApp, "REPROBE_QUIET_SECONDS", 3600.0)  # "quiet" here: no round within the test
    rounds: list[float] = []
    real = registry.probe_all

    def counted(ctx, *a, **kw):
        if kw.get("steps") is not None:  # a re-probe round (the start-up probe takes every step)
            rounds.append(time.monotonic())
        return real(ctx, *a, **kw)

    monkeypatch.setattr(registry, "probe_all", counted)
    world = make_sim_world("deployed")
    cfg = DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "a"), start_step=0,
                   resume=True)

    def quiet_for(seconds: float) -> bool:
        running = any(w.group == "reprobe" and not w.is_finished for w in app.workers)
        return not running and time.monotonic() - app._active_at > app.QUIET_AFTER_SECONDS + seconds

    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await until(pilot, lambda: len(rounds) >= 2, timeout=60, what="re-probe rounds at the full pace")
        # nobody types and nothing changes: past QUIET_AFTER_SECONDS the rounds stop
        app.QUIET_AFTER_SECONDS = 1.0
        await until(pilot, lambda: quiet_for(0.5), timeout=60, what="a quiet wizard")
        quiet = len(rounds)
        await until(pilot, lambda: quiet_for(2.0), timeout=60, what="more quiet")
        assert len(rounds) <= quiet + 1, rounds  # (at most a round that had just started)
        await pilot.press("down")  # someone is back
        await until(pilot, lambda: len(rounds) >= quiet + 3, timeout=60, what="the full pace again")
