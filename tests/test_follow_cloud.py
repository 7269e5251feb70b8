"""The sidebar follows the cloud, whoever changes it: a teardown made from another terminal (here:
the same step logic `rhaii-tui ops teardown` runs, on another connection) shows within seconds."""

from __future__ import annotations

import asyncio

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
