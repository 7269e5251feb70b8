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
