"""SVG snapshots of step 4 (operators) and step 5 (deploy) at 120x40.

Deterministic: no connection (profile None: no watch runs, nothing ticks), fixed data fed through
the pages' own render paths (operators: a fixed OperatorsView through `render_live`; deploy: row
diffs from PodTables on a fixed clock, fixed log lines, a fixed diagnosis), fixed step states, no
ports, no random pod-name suffixes, no wall-clock times.
Update deliberately with: python -m pytest tests/test_screens_4_5_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.steps.base import Status, StepState
from rhaii_tui.widgets.diagnosis import DiagnosisPanel
from rhaii_tui.widgets.log_pane import LogPane
from rhaii_tui.widgets.pod_table import PodTableWidget

from test_screens_4_5_fixtures import LOG_LINES, FakeOperatorWatch, operators_view, pod_table_diffs, stuck_diagnosis

SIZE = (120, 40)


def fixed_cfg() -> DeployConfig:
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a", namespace="rhaii-inference", replicas=3)
    cfg.sources = {name: "default" for name in cfg.to_dict()}
    return cfg


def app_at(step: int) -> RhaiiApp:
    app = RhaiiApp(fixed_cfg(), start_step=step)
    app.animation_level = "none"  # the tabs' underline would be caught mid-slide
    return app


async def page_ready(pilot):
    await pilot.app.start_page_ready.wait()
    await pilot.pause()


def test_operators_screen_not_connected(snap_compare):
    assert snap_compare(app_at(4), terminal_size=SIZE, run_before=page_ready)


async def show_failing_operator(pilot):
    await page_ready(pilot)
    page = pilot.app.current_page
    page.render_live(FakeOperatorWatch(operators_view()), tick=True)
    page.query_one("#op-log", LogPane).ingest("installer", "", [
        "$ make deploy-all  (in /home/me/rhaii-on-xks)", "helmfile apply ...", "Release \"kserve\" deployed"])
    await pilot.pause(0.3)


def test_operators_screen_with_a_failing_operator(snap_compare):
    assert snap_compare(app_at(4), terminal_size=SIZE, run_before=show_failing_operator)


def test_deploy_screen_not_connected(snap_compare):
    assert snap_compare(app_at(5), terminal_size=SIZE, run_before=page_ready)


async def show_three_stages(pilot):
    await page_ready(pilot)
    app = pilot.app
    page = app.current_page
    app.set_step_state(5, StepState(Status.IN_PROGRESS, "1/3 pods ready, replica 2 compiling for 7m, "
                                                        "replica 3 downloading the model for 40s."))
    workload, epp, table, epp_table = pod_table_diffs()
    widget = page.query_one(PodTableWidget)
    for label, key in zip(("r1", "r2", "r3"), table.keys()):
        widget.labels[key] = label
    widget.labels[epp_table.keys()[0]] = "EPP"
    widget.apply_diffs(workload + epp)
    for key, age in zip(widget.row_keys(), ("15m", "15m", "10m", "15m")):
        widget.upsert(key, {"age": age})
    pane = page.query_one(LogPane)
    names = [k.split("/")[1] for k in table.keys()]
    pane.set_sources([(n, f"r{i + 1}") for i, n in enumerate(names)])
    for name in names:
        pane.ingest(name, "storage-initializer", LOG_LINES["storage-initializer"])
    pane.ingest(names[1], "main", LOG_LINES["main"])
    page.query_one(DiagnosisPanel).show([stuck_diagnosis()])
    await pilot.pause(0.3)


def test_deploy_screen_with_pods_in_three_stages(snap_compare):
    assert snap_compare(app_at(5), terminal_size=SIZE, run_before=show_three_stages)
