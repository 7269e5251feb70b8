"""Step 1's screen when the TPU quota cannot be read: the quota row fails with the one command
that fixes it, and Enter on the row copies that command."""

from __future__ import annotations

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.widgets.checklist import Checklist

from pilothelpers import until


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario,command", [
    ("adc-no-quota-project", "gcloud auth application-default set-quota-project rhaii-demo-project"),
    ("quotas-api-disabled", "gcloud services enable cloudquotas.googleapis.com --project rhaii-demo-project"),
])
async def test_the_quota_row_fails_with_the_command_that_fixes_it(make_sim_world, tmp_path, scenario, command):
    world = make_sim_world(scenario)
    app = RhaiiApp(DeployConfig(project=world.endpoints["project"]), profile=world.profile(),
                   state_store=StateStore(tmp_path / "state"), start_step=1)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        page = app.current_page
        await until(pilot, lambda: page.is_mounted and page.query(Checklist), what="step 1's page")
        await until(pilot, lambda: page._results and not page._checking, what="the checks to finish")
        await pilot.pause()
        checklist = page.query_one(Checklist)
        assert checklist.status("quota") == "fail"
        assert command in checklist.row_text("quota")
        app.query_one("#check-quota").focus()
        await pilot.press("enter")
        assert command in app.clipboard
