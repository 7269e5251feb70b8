"""Express in the TUI: the timeline widget (widgets/timeline.py) and the express screen
(screens/express.py).

The snapshots and the screen tests feed fixed PieceEvents (no clock, no cloud): a stand-in run
reports them and then waits for its stop event, as the real run would wait for the cloud.
Update the snapshots deliberately with: python -m pytest tests/test_express_tui.py --snapshot-update
"""

from __future__ import annotations

import threading

import pytest
from textual.app import App, ComposeResult

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.screens.express import SCREEN_NAME, ExpressScreen
from rhaii_tui.steps.express import ExpressResult, PieceEvent
from rhaii_tui.steps.graph import PIECES
from rhaii_tui.widgets.timeline import Layout, Timeline, TimelineRows, axis_span

from pilothelpers import until

E = PieceEvent
EVENTS = (
    E("preflight", "running", 0), E("cluster", "running", 5), E("preflight", "done", 40),
    E("tpu-pool", "waiting", 5), E("namespace-secrets", "waiting", 5), E("operators", "waiting", 5),
    E("cluster", "done", 300), E("tpu-pool", "running", 300, "creating node pool tpu-pool"),
    E("namespace-secrets", "running", 300), E("operators", "running", 300),
    E("namespace-secrets", "done", 330), E("netpol", "running", 330), E("netpol", "done", 345),
    E("llmisvc", "waiting", 330), E("operators", "done", 480), E("llmisvc", "running", 480),
    E("llmisvc", "done", 500), E("epp-sidecar", "waiting", 500), E("envoyfilters", "running", 500),
    E("envoyfilters", "failed", 540, "EnvoyFilter CRD not found: install the operators first"),
    E("tpu-pool", "running", 900, "2/3 TPU nodes Ready"),
)
CRITICAL = ("cluster", "tpu-pool", "replicas", "verify")


class TimelineApp(App):
    """Just the timeline, fed the fixed events."""

    def compose(self) -> ComposeResult:
        yield Timeline(PIECES)


async def fed(pilot) -> None:
    timeline = pilot.app.query_one(Timeline)
    timeline.apply_all(EVENTS)
    timeline.set_critical(CRITICAL)
    await pilot.pause()
    await pilot.press("down", "down")  # the TPU pool's row: its message under the legend
    await pilot.pause()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_timeline_snapshot(snap_compare, size):
    assert snap_compare(TimelineApp(), terminal_size=size, run_before=fed)


# --- the chart's arithmetic (no app) ---------------------------------------------------------------


def test_bars_scale_to_the_width_and_titles_stay_whole_at_80_columns():
    longest = max(len(p.title) for p in PIECES)
    wide, narrow = Layout.for_width(118, longest), Layout.for_width(76, longest)
    assert wide.title == narrow.title == longest  # nothing that matters is cut
    assert wide.bar > narrow.bar >= 30
    tiny = Layout.for_width(50, longest)
    assert tiny.bar >= 20 and tiny.title >= 10


def test_axis_covers_the_run_with_readable_labels():
    span, k = axis_span(900, 60)
    assert span > 900 and span % (k * 60) == 0 and span / (k * 60) <= 10
    assert axis_span(0, 60)[0] == 300  # five minutes before anything happened


@pytest.mark.asyncio
async def test_rows_follow_events_and_mark_the_critical_path():
    app = TimelineApp()
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        timeline.apply_all(EVENTS)
        timeline.set_critical(CRITICAL)
        await pilot.pause()
        pool = timeline.row_text("tpu-pool")
        assert pool.startswith("◆ ◐") and "TPU v6e node pool" in pool and "█" in pool and "·" in pool
        assert timeline.row_text("envoyfilters").startswith("  ✘")
        assert timeline.row_text("preflight").rstrip().endswith("40s")
        assert timeline.row_text("epp-sidecar").rstrip().endswith("waiting")
        assert "█" not in timeline.row_text("replicas")  # not started: no bar
        timeline.apply(E("identity", "skipped", 0, "done before this run"))
        await pilot.pause()
        assert timeline.row_text("identity").rstrip().endswith("already") and "█" not in timeline.row_text("identity")
        # every row is as wide as the list: the time column is never cut
        width = app.query_one(TimelineRows).text_width()
        assert all(len(timeline.row_text(p.id)) == width for p in PIECES)
        before = timeline.row_text("tpu-pool").count("█")
        timeline.apply(E("tpu-pool", "done", 1200))
        await pilot.pause()
        assert timeline.row_text("tpu-pool").startswith("◆ ✔")
        assert timeline.row_text("tpu-pool").count("█") != before or "15m" in timeline.row_text("tpu-pool")


# --- the express screen with a stand-in run ------------------------------------------------------------


class StandInRun:
    """An ExpressRun's interface: reports EVENTS, then waits for stop (as the real run waits for the cloud)."""

    instances: list["StandInRun"] = []

    def __init__(self, ctx, *, on_event=None, stop=None, **_kw) -> None:
        self.ctx = ctx
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.pieces = list(PIECES)
        self.reported = threading.Event()
        StandInRun.instances.append(self)

    def billable_plan(self):
        return ["cluster c in z", "node pool tpu-pool: 3 x ct6e-standard-4t"], 123.0

    def critical_path(self):
        return list(CRITICAL)

    def run(self) -> ExpressResult:
        for ev in EVENTS:
            self.on_event(ev)
        self.reported.set()
        self.stop.wait(120)
        return ExpressResult(ok=False, time_to_serving_s=None, timing={"clock": "simulated"}, failure=None)


def fixed_cfg() -> DeployConfig:
    return DeployConfig(project="demo-project-01", zone="europe-west4-a", namespace="rhaii-inference", replicas=3)


async def show_express(pilot) -> ExpressScreen:
    app = pilot.app
    await app.start_page_ready.wait()
    screen = ExpressScreen(None, target="demo-project-01 / europe-west4-a / rhaii-tpu-scaleout-cluster",
                           run_factory=StandInRun)
    app.install_screen(screen, SCREEN_NAME)
    app.push_screen(screen)
    await until(pilot, lambda: len(screen.events) == len(EVENTS), timeout=30, what="the timeline filled")
    await pilot.pause()
    return screen


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_express_screen_snapshot(snap_compare, size):
    """The whole screen while a branch has failed and the TPU pool still provisions: the heading, the
    status, every row, the legend, the failure and the buttons fit."""
    app = RhaiiApp(fixed_cfg(), start_step=0)
    app.animation_level = "none"
    assert snap_compare(app, terminal_size=size, run_before=show_express)


@pytest.mark.asyncio
async def test_a_row_opens_its_step_page_and_ctrl_e_comes_back():
    app = RhaiiApp(fixed_cfg(), start_step=0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await show_express(pilot)
        assert app.screen is screen
        await pilot.press("right_square_bracket")  # the pages' keys do nothing here
        await pilot.pause()
        assert app.screen is screen and app.current_step == 0
        await pilot.press("home", "down", "down", "down", "down", "enter")  # Operators and gateway: step 4
        await until(pilot, lambda: app.screen is not screen and app.current_step == 4
                    and app.current_page is not None and app.current_page.is_mounted, timeout=30,
                    what="step 4's page")
        assert screen.running  # the run goes on meanwhile
        await pilot.press("ctrl+e")
        await until(pilot, lambda: app.screen is screen, timeout=10, what="the timeline again")
        # a click on a row too: the LLMInferenceService row opens step 5
        rows = screen.query_one(TimelineRows)
        index = rows.get_option_index("llmisvc")
        assert await pilot.click(TimelineRows, offset=(10, index))
        await until(pilot, lambda: app.screen is not screen and app.current_step == 5, timeout=30,
                    what="step 5's page")
        await pilot.press("ctrl+e")
        await until(pilot, lambda: app.screen is screen, timeout=10, what="the timeline again")
        await pilot.press("escape")  # back to the wizard, the run goes on
        await until(pilot, lambda: app.screen is not screen, timeout=10, what="the wizard")
        assert screen.running and app.current_step == 5
        await pilot.press("ctrl+e")
        await until(pilot, lambda: app.screen is screen, timeout=10, what="the timeline again")
        await pilot.press("s")  # Stop: the run returns at its next safe point
        await until(pilot, lambda: screen.finished, timeout=30, what="the run to stop")
        status = str(screen.query_one("#ex-status").render())
        assert "Stopped" in status


@pytest.mark.asyncio
async def test_ctrl_q_quits_from_the_express_screen():
    app = RhaiiApp(fixed_cfg(), start_step=0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_express(pilot)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app._exit, timeout=10, what="the app to quit")
    assert screen.stop_event.is_set()  # the run was told to stop at its next safe point


# --- the Express action: one confirmation, then the timeline (stand-in run, simulated cloud for the probes) ---


def connected_app(world) -> RhaiiApp:
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    return RhaiiApp(cfg, profile=world.profile(), state_store=None, resume=True)


HF_TOKEN = "hf_" + "ExpressTuiTok9" * 3


def give_secrets(app) -> None:
    from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form

    ctx = app.step_context()
    ctx.secrets.add(hf_secret_from_form(HF_TOKEN))
    ctx.secrets.add(pull_secret_from_form("express-user", "Express-Tui-Pa55word"))


async def summary_read(pilot):
    from rhaii_tui.screens.resume import ResumeScreen

    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, ResumeScreen), what="the summary")
    screen = app.screen
    await until(pilot, lambda: screen.standing is not None, what="every probe")
    await pilot.pause()
    return screen


@pytest.mark.asyncio
async def test_express_from_the_summary_asks_once_with_the_cost_then_shows_the_timeline(make_sim_world,
                                                                                      monkeypatch):
    from textual.widgets import Input

    from rhaii_tui.screens import express
    from rhaii_tui.widgets.confirm_cost import ConfirmCost

    monkeypatch.setattr(express, "_run_factory", lambda: StandInRun)
    StandInRun.instances.clear()
    world = make_sim_world("fresh")
    app = connected_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await summary_read(pilot)
        give_secrets(app)  # as if typed on step 3's page (the secrets-first path: the test on the emulator)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmCost), what="the confirmation")
        confirm = app.screen
        assert confirm.lines == ["cluster c in z", "node pool tpu-pool: 3 x ct6e-standard-4t"]
        assert confirm.cost_per_day == 123.0 and confirm.confirm_word == app.cfg.cluster
        await pilot.press("escape")  # cancelled: nothing starts
        await until(pilot, lambda: not isinstance(app.screen, ConfirmCost), what="the confirmation to close")
        assert not app.is_screen_installed(SCREEN_NAME)
        assert not any(r.reported.is_set() for r in StandInRun.instances)
        app.action_express()  # again (the palette's Express): confirmed this time
        await until(pilot, lambda: isinstance(app.screen, ConfirmCost), what="the confirmation")
        app.screen.query_one(Input).value = app.cfg.cluster
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExpressScreen), what="the timeline")
        screen = app.screen
        await until(pilot, lambda: len(screen.events) == len(EVENTS), what="the timeline filled")
        assert screen.query_one(Timeline).row_text("envoyfilters").startswith("  ✘")
        assert "EnvoyFilter CRD not found" in str(screen.query_one("#ex-outcome").render())
        app.action_express()  # while it runs, Express shows this run instead of starting another
        await pilot.pause()
        assert app.screen is screen and len([r for r in StandInRun.instances if r.reported.is_set()]) == 1
        await pilot.press("s")
        await until(pilot, lambda: screen.finished, what="the run to stop")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen, what="the wizard")
        app.action_express()  # a new run once the last one ended: a new timeline replaces the old
        await until(pilot, lambda: isinstance(app.screen, ConfirmCost), what="the confirmation")
        app.screen.query_one(Input).value = app.cfg.cluster
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExpressScreen) and app.screen is not screen,
                    what="the new timeline")
        assert not screen.is_attached and app.get_screen(SCREEN_NAME) is app.screen
        await until(pilot, lambda: len(app.screen.events) == len(EVENTS), what="the new timeline filled")


@pytest.mark.asyncio
async def test_configure_express_asks_to_save_unsaved_changes_first(make_sim_world, monkeypatch):
    from textual.widgets import Input

    from rhaii_tui.screens import express
    from rhaii_tui.widgets.confirm_cost import ConfirmCost

    monkeypatch.setattr(express, "_run_factory", lambda: StandInRun)
    world = make_sim_world("fresh")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=None, start_step=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        give_secrets(app)
        page = app.current_page
        page.query_one("#cfg-replicas", Input).value = "2"
        await pilot.click("#cfg-express")
        await until(pilot, lambda: any("Save the changes first" in n.message for n in app._notifications),
                    what="the notification")
        assert not isinstance(app.screen, ConfirmCost)
        page.query_one("#cfg-replicas", Input).value = "3"
        await until(pilot, lambda: not page.edited(), what="the form back to the saved values")
        button = page.query_one("#cfg-express")
        # a click during the first press's 0.2 s animation is dropped by Textual's Button, as for a user
        await until(pilot, lambda: not button.has_class("-active"), what="the press animation to end")
        assert await pilot.click("#cfg-express"), "the click landed elsewhere"
        await until(pilot, lambda: isinstance(app.screen, ConfirmCost), what="the confirmation")


# --- on the emulator: Express from the start-up summary of a fresh project, to serving ---------------------


def wizard_on(world, tmp_path, monkeypatch) -> RhaiiApp:
    """The wizard as `run_wizard` builds it on `world` (a state store, the start-up summary), with
    no target, secret or gcloud setting from the environment."""
    from rhaii_tui.config import StateStore

    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    return RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(), resume=True)


@pytest.mark.asyncio
async def test_express_from_the_summary_on_a_fresh_world_reaches_serving(make_sim_world, tmp_path, monkeypatch):
    from test_walk import click, confirm, goto, type_text

    app = wizard_on(make_sim_world("fresh", speed=2000), tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        summary = await summary_read(pilot)
        assert "Nothing is deployed" in summary.summary_text
        await pilot.press("x")  # Express, from the summary: step 3's secrets are asked for first
        await until(pilot, lambda: app.current_step == 3 and app.current_page is not None
                    and app.current_page.is_mounted, timeout=60, what="step 3's page (secrets first)")
        assert any("Step 3 needs" in n.message for n in app._notifications)
        await type_text(pilot, "#hf-token", HF_TOKEN)
        await type_text(pilot, "#pull-user", "express-user")
        await type_text(pilot, "#pull-password", "Express-Tui-Pa55word")
        await goto(pilot, 0)
        await click(pilot, "#cfg-express")  # Express again: one confirmation for everything billable
        await confirm(pilot)
        await until(pilot, lambda: isinstance(app.screen, ExpressScreen), timeout=30, what="the timeline")
        screen = app.screen
        timeline = screen.query_one(Timeline)
        await until(pilot, lambda: timeline.rows["cluster"].status in ("running", "done"), timeout=60,
                    what="the cluster's row running")
        await until(pilot, lambda: screen.finished, timeout=600, what="the express run to end")
        result = screen.result
        assert screen.error is None and result is not None and result.ok, (screen.error, result.failure, screen.events)
        assert all(r.status == "done" for r in timeline.rows.values()), {k: r.status for k, r in timeline.rows.items()}
        assert result.time_to_serving_s is not None and result.time_to_serving_s > 0
        assert "Serving" in str(screen.query_one("#ex-status").render())
        assert "█" in timeline.row_text("tpu-pool") and timeline.critical  # bars drawn, critical path marked
        assert app.lease_keeper.held  # the run's changes were made under this wizard's deploy lease
        # the sidebar follows: step 9 verified
        await until(pilot, lambda: str(getattr(app.step_states.get(9), "status", "")).endswith("done")
                    or getattr(getattr(app.step_states.get(9), "status", None), "value", "") == "done",
                    timeout=60, what="step 9 done in the sidebar")


@pytest.mark.asyncio
async def test_a_failing_branch_stops_the_run_and_shows_its_diagnosis(make_sim_world, tmp_path, monkeypatch):
    from test_walk import confirm

    app = wizard_on(make_sim_world("bad-hf-token", speed=2000), tmp_path, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await summary_read(pilot)
        give_secrets(app)
        await pilot.press("x")
        await confirm(pilot)
        await until(pilot, lambda: isinstance(app.screen, ExpressScreen), timeout=30, what="the timeline")
        screen = app.screen
        await until(pilot, lambda: screen.finished, timeout=600, what="the express run to end")
        result = screen.result
        assert result is not None and not result.ok
        timeline = screen.query_one(Timeline)
        failed = [r for r in timeline.rows.values() if r.status == "failed"]
        assert failed, {k: r.status for k, r in timeline.rows.items()}
        assert "A branch failed" in str(screen.query_one("#ex-status").render())
        outcome = str(screen.query_one("#ex-outcome").render())
        assert "Diagnosis" in outcome and result.failure.splitlines()[0] in outcome
        # nothing started after the failure: the pieces still waiting then are stopped, never run
        assert all(r.start_s is None for r in timeline.rows.values() if r.status == "stopped" and r.step >= 9)
        # Enter on the failed row (the cursor is there) opens its step's page
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not screen and app.current_step == failed[0].step, timeout=30,
                    what="the failed step's page")


@pytest.mark.asyncio
async def test_express_needs_a_connection_and_says_so():
    app = RhaiiApp(fixed_cfg(), start_step=0)  # not connected
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        await pilot.press("E")  # the Configure page's key, with the focus in the sidebar
        await until(pilot, lambda: any("Express needs a connection" in n.message for n in app._notifications),
                    timeout=10, what="the notification")
        assert app.screen.id == "_default" and not app.is_screen_installed(SCREEN_NAME)


@pytest.mark.asyncio
async def test_express_carries_on_from_where_the_cloud_stands(make_sim_world, tmp_path, monkeypatch):
    """On a project whose cluster and TPU pool exist: nothing billable, so no confirmation; their rows
    say they were there already, the rest runs to serving."""
    from rhaii_tui.widgets.confirm_cost import ConfirmCost

    app = wizard_on(make_sim_world("cluster-ready", speed=2000), tmp_path, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await summary_read(pilot)
        give_secrets(app)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, (ExpressScreen, ConfirmCost)), timeout=60,
                    what="the timeline")
        assert isinstance(app.screen, ExpressScreen), "nothing billable: no confirmation"
        screen = app.screen
        await until(pilot, lambda: screen.finished, timeout=600, what="the express run to end")
        assert screen.result is not None and screen.result.ok, (screen.error, screen.result.failure)
        timeline = screen.query_one(Timeline)
        for piece in ("cluster", "tpu-pool"):
            assert timeline.rows[piece].status == "skipped" and timeline.row_text(piece).rstrip().endswith("already")
        assert timeline.rows["verify"].status == "done"
