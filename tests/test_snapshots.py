"""SVG snapshots of the wizard shell and the configure screen at 120x40 and 80x24.

Deterministic: a fixed config with fixed sources, a stub simulated profile (for the badge) on the
configure screen and no connection on the shell page, fixed step states, no clock, no state file,
focus on the sidebar (no blinking cursor).
Update deliberately with: python -m pytest tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.steps.base import Status, StepState


class SimProfile:
    simulated = True
    label = "Simulated cloud"


def fixed_cfg() -> DeployConfig:
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a", namespace="rhaii-inference", replicas=3)
    cfg.sources = {"project": "env", "zone": "flag", "cluster": "state", "namespace": "state",
                   "service": "default", "model": "default", "replicas": "flag", "image": "default",
                   "price_per_node_hour": "default"}
    return cfg


def shell_app() -> RhaiiApp:
    """The shell on step 2 before any connection: sidebar marks, header, state line, commands panel.
    (Step pages on a connected cloud have their own snapshots next to their tests.)"""
    app = RhaiiApp(fixed_cfg(), profile=None, start_step=2)
    app.set_step_state(1, StepState(Status.DONE, "all 7 checks passed"))
    app.set_step_state(2, StepState(Status.IN_PROGRESS, "creating node pool tpu-pool (2 of 3 nodes ready)"))
    app.set_step_state(8, StepState(Status.SKIPPED, "skipped by choice"))
    return app


def configure_app() -> RhaiiApp:
    return RhaiiApp(fixed_cfg(), profile=SimProfile(), start_step=0)


async def page_ready(pilot):
    """The shell paints first and the start page right after: shoot once the page is there."""
    await pilot.app.start_page_ready.wait()
    await pilot.pause()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_shell_step_page(snap_compare, size):
    assert snap_compare(shell_app(), terminal_size=size, run_before=page_ready)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_configure_screen(snap_compare, size):
    assert snap_compare(configure_app(), terminal_size=size, run_before=page_ready)


def test_configure_screen_shows_a_broken_rule(snap_compare):
    async def type_bad_project(pilot):
        await page_ready(pilot)
        project = pilot.app.query_one("#cfg-project")
        project.cursor_blink = False
        project.value = "My_Project"
        pilot.app.query_one("#sidebar").focus()
        await pilot.pause()

    assert snap_compare(configure_app(), terminal_size=(120, 40), run_before=type_bad_project)
