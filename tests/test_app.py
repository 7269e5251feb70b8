"""Pilot walks through the wizard shell: sidebar, navigation, palette, help, commands, state marks,
the SIMULATED badge, the configure form (validation as you type, sources, saving), ConfirmCost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
from textual.widgets import Button, ContentSwitcher, Input, Label, Select, Static

from rhaii_tui import guide
from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import VALIDATORS, DeployConfig, StateStore, cost_per_day, resolve_config
from rhaii_tui.screens import register_step_screen, step_screen_for
from rhaii_tui.screens import _REGISTRY
from rhaii_tui.screens.base import StepScreen
from rhaii_tui.screens.configure import ConfigureScreen
from rhaii_tui.screens.help import HelpScreen
from rhaii_tui.steps.base import Status, StepState
from rhaii_tui.widgets.commands_panel import CommandList, CommandsPanel
from rhaii_tui.widgets.confirm_cost import ConfirmCost
from rhaii_tui.widgets.step_list import StepList
from rhaii_tui.widgets.target_header import HeaderBar, TargetHeader, TargetLine

SIZE = (120, 40)


class SimProfile:
    simulated = True
    label = "Simulated cloud"


class RealProfile:
    simulated = False
    label = "Google Cloud (ADC: alice@example.com)"


@contextlib.asynccontextmanager
async def running(app: RhaiiApp, size: tuple[int, int] = SIZE):
    """run_test, once the start page is built (the shell paints first, the page right after)."""
    async with app.run_test(size=size) as pilot:
        await app.start_page_ready.wait()
        yield pilot


async def until(pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def make_cfg(**changes) -> DeployConfig:
    cfg = DeployConfig(project="demo-project-01", **changes)
    cfg.sources = {name: "default" for name in cfg.to_dict()} | {"project": "env"}
    return cfg


def heading(app: RhaiiApp) -> str:
    page = app.current_page
    assert page is not None
    return str(page.query_one(".step-title", Label).render())


def shown_page_id(app: RhaiiApp) -> str | None:
    return app.query_one("#pages", ContentSwitcher).current


# --- the shell ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sidebar_lists_configure_the_eleven_steps_and_operate():
    app = RhaiiApp(make_cfg())
    async with running(app):
        sidebar = app.query_one(StepList)
        lines = [sidebar.prompt_text(n) for n in range(0, 13)]
        assert "Configure" in lines[0] and "Operate" in lines[12]
        from rhaii_tui.screens.pages import page

        for s in guide.STEPS:
            assert page(s.number).short in lines[s.number]  # the sidebar's short title
            assert f"{s.number:>2}" in lines[s.number]
        assert "(optional)" in lines[8]
        assert sum("(optional)" in line for line in lines) == 1
        # not started everywhere, except Configure which is complete for a valid config
        assert lines[1].startswith("○") and lines[0].startswith("✔")


@pytest.mark.asyncio
async def test_sidebar_marks_optional_step_even_when_narrow():
    app = RhaiiApp(make_cfg())
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        sidebar = app.query_one(StepList)
        assert "(opt.)" in sidebar.prompt_text(8) or "(optional)" in sidebar.prompt_text(8)
        assert "NetPolicies" in sidebar.prompt_text(8) or "NetworkPolicies" in sidebar.prompt_text(8)


@pytest.mark.asyncio
async def test_keyboard_navigation_in_the_sidebar():
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        assert app.focused is app.query_one(StepList)
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.current_step == 2
        assert shown_page_id(app) == "page-2"
        assert heading(app) == "Step 2 · GKE cluster and TPU node pool"
        await pilot.press("end", "enter")
        await pilot.pause()
        assert app.current_step == 12 and "Operate" in heading(app)


@pytest.mark.asyncio
async def test_mouse_click_in_the_sidebar_opens_the_step():
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        sidebar = app.query_one(StepList)
        line = sidebar._index_to_line[sidebar.get_option_index("5")]
        await pilot.click(StepList, offset=(6, line))
        await pilot.pause()
        assert app.current_step == 5
        assert heading(app) == f"Step 5 · {guide.step(5).title}"


@pytest.mark.asyncio
async def test_bracket_keys_move_to_next_and_previous_page():
    app = RhaiiApp(make_cfg(), start_step=3)
    async with running(app) as pilot:
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.current_step == 4
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        assert app.current_step == 2
        assert app.query_one(StepList).highlighted == app.query_one(StepList).get_option_index("2")


@pytest.mark.asyncio
async def test_command_palette_jumps_to_a_step():
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        from textual.command import CommandList, CommandPalette

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen.is_mounted, what="the command palette")
        await pilot.press(*"envoyfilters")

        def top_hit() -> str:
            hits = app.screen.query_one(CommandList)
            if hits.highlighted is None:
                return ""
            return hits.get_option_at_index(hits.highlighted).hit.text or ""

        # the search runs in the background: Enter picks what is highlighted once it has answered
        await until(pilot, lambda: top_hit().startswith("Go to step 7:"), what="step 7 as the top hit")
        await pilot.press("enter")
        await until(pilot, lambda: app.current_step == 7 and app.current_page.query(".step-title"),
                    what="step 7 shown")   # the palette closes first, then the page is built
        assert heading(app) == f"Step 7 · {guide.step(7).title}"


@pytest.mark.asyncio
async def test_pages_stay_mounted_and_keep_their_state():
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        configure = app.current_page
        project = app.query_one("#cfg-project", Input)
        project.value = "half-typed"
        app.goto_step(6)
        await pilot.pause()
        assert app.current_step == 6 and not configure.display
        app.goto_step(0)
        await pilot.pause()
        assert app.current_page is configure
        assert app.query_one("#cfg-project", Input).value == "half-typed"
        # only the pages visited were mounted (lazily)
        assert {int(p.id.split("-")[1]) for p in app.query(StepScreen)} == {0, 6}


@pytest.mark.asyncio
async def test_help_shows_purpose_duration_and_success_criteria_of_current_step():
    app = RhaiiApp(make_cfg(), start_step=4)
    async with running(app) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        step = guide.step(4)
        assert step.expected_text in text
        assert step.purpose.split(",")[0] in text
        for criterion in step.success:
            assert criterion in text.replace("\n", " ") or criterion[:30] in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        # f1 works too, also while typing in a field
        app.goto_step(0)
        await pilot.pause()
        app.query_one("#cfg-cluster", Input).focus()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and app.screen.page.number == 0


@pytest.mark.asyncio
async def test_set_step_state_updates_sidebar_and_page_also_from_a_thread():
    app = RhaiiApp(make_cfg(), start_step=2)
    async with running(app) as pilot:
        app.set_step_state(2, StepState(Status.FAILED, "TPU quota too low", fix="Request 12 chips of quota"))
        await pilot.pause()
        sidebar = app.query_one(StepList)
        assert sidebar.prompt_text(2).startswith("✘")
        state_line = str(app.current_page.query_one(".step-state", Static).render())
        assert "failed" in state_line and "TPU quota too low" in state_line
        assert "Request 12 chips of quota" in state_line

        # from a worker thread; the page for step 9 is not open yet
        done = threading.Event()

        def worker() -> None:
            app.set_step_state(9, StepState(Status.IN_PROGRESS, "calling the gateway"))
            app.set_step_state(8, StepState(Status.SKIPPED, "skipped by choice"))
            done.set()

        await asyncio.to_thread(worker)
        await pilot.pause()
        assert done.is_set()
        assert sidebar.prompt_text(9).startswith("◐") and sidebar.prompt_text(8).startswith("⊘")
        app.goto_step(9)
        await pilot.pause()
        assert "calling the gateway" in str(app.current_page.query_one(".step-state", Static).render())


@pytest.mark.asyncio
async def test_commands_panel_shows_the_guide_commands_and_copies_them():
    cfg = make_cfg()
    app = RhaiiApp(cfg, start_step=2)
    async with running(app) as pilot:
        panel = app.current_page.query_one(CommandsPanel)
        assert list(panel.commands) == guide.step(2).commands(cfg)
        app.current_page.query_one(CommandList).focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.clipboard == guide.step(2).commands(cfg)[1]
        await pilot.press("a")
        assert app.clipboard == "\n".join(guide.step(2).commands(cfg)) + "\n"
        app.copy_to_clipboard("")
        await pilot.click("#copy-all")
        await pilot.pause()
        assert app.clipboard.splitlines() == guide.step(2).commands(cfg)
        # a new config reaches every open page's commands
        app.save_config(cfg.replace(cluster="other-cluster"))
        await pilot.pause()
        assert all("other-cluster" in c for c in panel.commands[:3])


@pytest.mark.asyncio
async def test_header_names_the_target_and_shows_the_simulated_badge():
    app = RhaiiApp(make_cfg(namespace="team-a"), profile=SimProfile())
    async with running(app) as pilot:
        header = app.query_one(TargetHeader)
        target = str(app.query_one(TargetLine).render())
        for part in ("demo-project-01", "europe-west4-a", "rhaii-tpu-scaleout-cluster", "team-a"):
            assert part in target
        bar = str(header.query_one(HeaderBar).render())
        assert header.has_class("-simulated") and bar.startswith(" SIMULATED ")
        assert "no real resources" in bar
        # connecting to the real cloud later drops the badge
        app.profile = RealProfile()
        await pilot.pause()
        bar = str(header.query_one(HeaderBar).render())
        assert not header.has_class("-simulated") and "SIMULATED" not in bar
        assert "alice@example.com" in bar


@pytest.mark.asyncio
async def test_no_profile_means_not_connected_and_no_badge():
    app = RhaiiApp(make_cfg(), profile=None, startup_error="No credentials: run gcloud auth application-default login")
    async with running(app) as pilot:
        header = app.query_one(TargetHeader)
        assert not header.has_class("-simulated")
        assert "not connected" in str(header.query_one(HeaderBar).render())
        assert any("gcloud auth application-default login" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_exit_after_first_paint_for_the_startup_benchmark(monkeypatch):
    monkeypatch.setenv("RHAII_TUI_EXIT_AFTER_PAINT", "1")
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        await pilot.pause(0.2)
    assert app.first_paint_at is not None and app.return_code == 0


def test_bad_start_step_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="start_step"):
        RhaiiApp(make_cfg(), start_step=42)


# --- the step screen registry -----------------------------------------------------------------


def test_registry_generic_fallback_and_configure():
    assert step_screen_for(0) is ConfigureScreen
    assert step_screen_for(3) is StepScreen or issubclass(step_screen_for(3), StepScreen)
    with pytest.raises(KeyError):
        step_screen_for(99)
    with pytest.raises(ValueError):
        register_step_screen(13)


@pytest.mark.asyncio
async def test_registered_step_screen_is_used_and_gets_cfg_profile_and_hooks():
    # restore only page 10: pages opened during the test import their modules, which register
    # themselves once per process; dropping those entries would leave later tests the generic page
    had_10, saved_10 = 10 in _REGISTRY, _REGISTRY.get(10)
    events: list[str] = []
    try:
        @register_step_screen(10)
        class PerfScreen(StepScreen):
            def compose_body(self):
                yield Label(f"bench against {self.cfg.service} via {self.profile.label}", id="perf-body")

            def step_entered(self):
                events.append("entered")

            def step_left(self):
                events.append("left")

            def config_changed(self, cfg):
                events.append(f"cfg:{cfg.replicas}")

        assert step_screen_for(10) is PerfScreen
        app = RhaiiApp(make_cfg(), profile=SimProfile())
        async with running(app) as pilot:
            app.goto_step(10)
            # a new page is entered once mounted and painted
            await until(pilot, lambda: events == ["entered"], what="step 10 entered")
            assert isinstance(app.current_page, PerfScreen)
            assert "bench against qwen-3b-tpu-svc via Simulated cloud" in str(
                app.query_one("#perf-body", Label).render())
            app.save_config(app.cfg.replace(replicas=5))
            app.goto_step(11)
            await pilot.pause()
            assert events == ["entered", "cfg:5", "left"]
    finally:
        if had_10:
            _REGISTRY[10] = saved_10
        else:
            _REGISTRY.pop(10, None)


# --- configure -------------------------------------------------------------------------------


def msg(app: RhaiiApp, name: str) -> str:
    widget = app.query_one(f"#msg-{name}", Static)
    return str(widget.render()) if widget.has_class("-shown") else ""


@pytest.mark.asyncio
async def test_configure_validates_as_you_type_with_the_rule():
    app = RhaiiApp(make_cfg())
    async with running(app) as pilot:
        project = app.query_one("#cfg-project", Input)
        project.value = ""
        project.focus()
        await pilot.pause()
        assert msg(app, "project") == "✘ " + VALIDATORS["project"]("")
        await pilot.press(*"My-proj")
        await pilot.pause()
        assert msg(app, "project") == "✘ Project id must start with a lowercase letter."
        assert project.has_class("-invalid")
        await pilot.press("home", "delete", "m", "end", "_")
        await pilot.pause()
        assert project.value == "my-proj_"
        assert msg(app, "project") == "✘ " + VALIDATORS["project"]("my-proj_")
        assert "only lowercase letters, digits and hyphens" in msg(app, "project")
        await pilot.press("backspace", "7")
        await pilot.pause()
        assert project.value == "my-proj7" and msg(app, "project") == ""
        assert not project.has_class("-invalid")
        assert "edited" in str(app.query_one("#src-project", Label).render())
        # the namespace rule, too
        ns = app.query_one("#cfg-namespace", Input)
        ns.value = "Bad_NS"
        await pilot.pause()
        assert "DNS-1123" in msg(app, "namespace")
        # and the Configure mark in the sidebar shows what still needs doing once saved
        status = str(app.query_one("#cfg-status", Label).render())
        assert "1 field needs attention" == status


@pytest.mark.asyncio
async def test_configure_replicas_show_chips_and_cost_per_day_live():
    cfg = make_cfg()
    app = RhaiiApp(cfg)
    async with running(app) as pilot:
        replicas = app.query_one("#cfg-replicas", Input)
        replicas.focus()
        replicas.value = ""
        await pilot.press("5")
        await pilot.pause()
        expected = f"${cost_per_day(5, cfg.price_per_node_hour):,.2f}/day"
        assert "20 TPU v6e chips" in msg(app, "replicas") and expected in msg(app, "replicas")
        assert "20 TPU v6e chips" in str(app.query_one("#cfg-summary", Static).render())
        price = app.query_one("#cfg-price_per_node_hour", Input)
        price.value = "10"
        await pilot.pause()
        assert f"${cost_per_day(5, 10.0):,.2f}/day" in msg(app, "replicas")
        await pilot.press("backspace")
        replicas.value = "0"
        await pilot.pause()
        assert msg(app, "replicas") == "✘ " + VALIDATORS["replicas"]("0")


@pytest.mark.asyncio
async def test_configure_shows_where_each_value_came_from(tmp_path):
    state = StateStore(tmp_path / "state")
    target = state.path_for("env-project-1", "us-east5-a", "saved-cluster")
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"config": {"cluster": "saved-cluster", "namespace": "saved-ns"}}))
    state.last_target_path().write_text(json.dumps(
        {"project": "env-project-1", "zone": "us-east5-a", "cluster": "saved-cluster"}))
    env = {"PROJECT_ID": "env-project-1", "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    cfg = resolve_config(flags={"zone": "us-east5-a", "replicas": 2}, env=env, state=state)

    app = RhaiiApp(cfg, state_store=state)
    async with running(app):
        def src(name: str) -> str:
            return str(app.query_one(f"#src-{name}", Label).render())

        assert src("project") == "env PROJECT_ID"
        assert src("zone") == "flag --zone" and app.query_one("#cfg-zone", Select).value == "us-east5-a"
        assert src("replicas") == "flag --replicas"
        assert src("cluster") == "saved state" and app.query_one("#cfg-cluster", Input).value == "saved-cluster"
        assert src("namespace") == "saved state"
        assert src("service") == "default" and src("image") == "default"


@pytest.mark.asyncio
async def test_configure_save_writes_the_state_store_and_updates_the_app(tmp_path):
    state = StateStore(tmp_path)
    app = RhaiiApp(make_cfg(), profile=SimProfile(), state_store=state)
    async with running(app) as pilot:
        ns = app.query_one("#cfg-namespace", Input)
        ns.focus()
        ns.value = "team-b"
        await pilot.pause()
        assert "Unsaved" in str(app.query_one("#cfg-status", Label).render())
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.cfg.namespace == "team-b" and app.cfg.sources["namespace"] == "user"
        assert app.cfg.sources["project"] == "env"  # untouched fields keep their source
        assert str(app.query_one("#src-namespace", Label).render()) == "set here"
        assert "team-b" in str(app.query_one(TargetLine).render())
        saved = json.loads(state.path_for("demo-project-01", "europe-west4-a",
                                          "rhaii-tpu-scaleout-cluster").read_text())
        assert saved["config"]["namespace"] == "team-b"
        assert not any(bad in json.dumps(saved).lower() for bad in ("token", "password", "secret"))
        # the other pages follow the new config
        app.goto_step(3)
        await pilot.pause()
        assert any("team-b" in c for c in app.current_page.query_one(CommandsPanel).commands)


@pytest.mark.asyncio
async def test_configure_refuses_to_save_invalid_values(tmp_path):
    state = StateStore(tmp_path)
    app = RhaiiApp(make_cfg(), state_store=state)
    async with running(app) as pilot:
        app.query_one("#cfg-cluster", Input).value = "Bad Cluster"
        await pilot.pause()
        await pilot.click("#cfg-save")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.cfg.cluster == "rhaii-tpu-scaleout-cluster"
        assert not (tmp_path / "targets").exists()
        assert app.focused is app.query_one("#cfg-cluster", Input)
        assert any("Cluster name" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_configure_without_project_starts_not_done_and_explains():
    cfg = DeployConfig()
    app = RhaiiApp(cfg)
    async with running(app):
        assert app.query_one(StepList).prompt_text(0).startswith("○")
        assert msg(app, "project").startswith("✘ Project id is required")


# --- ConfirmCost ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_confirm_cost_needs_the_typed_word():
    app = RhaiiApp(make_cfg())
    answers: list[bool] = []
    async with running(app) as pilot:
        screen = ConfirmCost("Create the cluster", ["cluster c1 in europe-west4-a", "3 x ct6e-standard-4t"],
                             376.8, "c1")
        app.push_screen(screen, callback=answers.append)
        await pilot.pause()
        text = " ".join(str(w.render()) for w in screen.query(Static))
        assert "cluster c1 in europe-west4-a" in text and "$376.80/day" in text
        confirm = screen.query_one("#confirm", Button)
        assert confirm.disabled
        await pilot.press(*"c2", "enter")
        await pilot.pause()
        assert answers == [] and confirm.disabled
        await pilot.press("backspace", "1")
        await pilot.pause()
        assert not confirm.disabled
        await pilot.press("enter")
        await pilot.pause()
        assert answers == [True]

        app.push_screen(ConfirmCost("Delete", ["cluster c1"], None, "c1", destructive=True),
                        callback=answers.append)
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert answers == [True, False]


@pytest.mark.asyncio
@pytest.mark.parametrize("cost", [376.8, None])
async def test_confirm_cost_keeps_its_field_and_buttons_on_an_80x24_terminal(cost):
    """A long list (the service's teardown names a dozen lines) scrolls inside the dialog: what to
    type, the field and the buttons stay on the terminal."""
    app = RhaiiApp(make_cfg())
    lines = [f"line {i}: something that will be deleted, long enough to wrap on a narrow terminal" for i in range(14)]
    answers: list[bool] = []
    async with running(app, size=(80, 24)) as pilot:
        screen = ConfirmCost("Tear down", lines, cost, "c1", confirm_label="Delete", destructive=True)
        app.push_screen(screen, callback=answers.append)
        await pilot.pause()
        await pilot.pause()
        shown = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "Type c1 to confirm:" in shown and "type it here" in shown, shown
        assert "Cancel" in shown and "Delete" in shown, shown
        assert "line 0:" in shown  # the list starts at its top; the rest scrolls
        assert screen.query_one("#confirm-scroll").max_scroll_y > 0  # the rest scrolls
        await pilot.press("c", "1")
        await pilot.pause()
        assert await pilot.click("#confirm")
        await pilot.pause()
        assert answers == [True]


@pytest.mark.asyncio
async def test_confirm_cost_from_a_worker_with_push_screen_wait():
    app = RhaiiApp(make_cfg())
    result: list[bool] = []
    async with running(app) as pilot:
        async def ask() -> None:
            result.append(await app.push_screen_wait(ConfirmCost("Resize", ["tpu-pool to 0 nodes"], 6.0, "c1")))

        app.run_worker(ask())
        await pilot.pause()
        await pilot.press(*"c1")
        await pilot.click("#confirm")
        await app.workers.wait_for_complete()
        assert result == [True]


@pytest.mark.asyncio
async def test_connect_runs_after_the_first_frame_and_sets_profile_and_config():
    started = threading.Event()
    release = threading.Event()

    def connect():
        started.set()
        release.wait(5)
        return SimProfile(), make_cfg().replace(project="sim-world-project")

    app = RhaiiApp(make_cfg(), connect=connect)
    async with running(app) as pilot:
        header = app.query_one(TargetHeader)
        assert "connecting…" in str(header.query_one(HeaderBar).render())
        assert app.profile is None and not header.has_class("-simulated")
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert started.is_set() and isinstance(app.profile, SimProfile)
        assert header.has_class("-simulated") and app.cfg.project == "sim-world-project"
        assert "sim-world-project" in str(app.query_one(TargetLine).render())


@pytest.mark.asyncio
async def test_connect_failure_is_a_message_not_a_crash():
    def connect():
        raise RuntimeError("The simulated world did not start: port in use. Retry with --sim-state DIR.")

    app = RhaiiApp(make_cfg(), connect=connect)
    async with running(app) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.profile is None and not app.connecting
        assert "not connected" in str(app.query_one(HeaderBar).render())
        assert any("port in use" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_quitting_before_the_start_page_is_built_is_clean(monkeypatch):
    """ctrl+q within the first frame: the deferred page build must not crash the exit."""
    monkeypatch.setenv("RHAII_TUI_EXIT_AFTER_PAINT", "1")

    class QuitAtFirstFrame(RhaiiApp):
        def _stamp_first_paint(self) -> None:
            super()._stamp_first_paint()
            self.exit(0)

    app = QuitAtFirstFrame(make_cfg())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
    assert app.return_code == 0 and app.first_paint_at is not None


@pytest.mark.asyncio
async def test_copy_also_writes_the_commands_to_a_file_and_says_where(tmp_path):
    """OSC 52 may be ignored by the terminal (nothing tells us): the commands also land in a file."""
    cfg = make_cfg()
    app = RhaiiApp(cfg, start_step=7, state_store=StateStore(tmp_path / "state"))
    async with running(app) as pilot:
        app.current_page.query_one(CommandsPanel).action_copy_all()
        await pilot.pause()
        path = tmp_path / "state" / "copied-commands.sh"
        await until(pilot, path.exists, what="the copied commands' file")
        assert path.read_text().splitlines() == guide.step(7).commands(cfg)
        await until(pilot, lambda: any(str(path) in str(n.message) for n in app._notifications),
                    what="the toast naming the file")


def test_steps_7_and_8_say_how_to_make_the_manifests_they_apply():
    cfg = make_cfg()
    for n in (7, 8):
        cmds = guide.step(n).commands(cfg)
        uses = [i for i, c in enumerate(cmds) if "manifests-out/" in c]
        made = [i for i, c in enumerate(cmds) if c.startswith("rhaii-tui render-manifests --out manifests-out")]
        assert uses and made and made[0] < uses[0], cmds


@pytest.mark.asyncio
async def test_the_page_on_show_is_the_current_page_even_when_pages_are_left_while_mounting():
    """`]` pressed quickly: a page still mounting when the user has moved on must not take the screen
    (the sidebar and help said one page, another was on show, its commands pane 0x0)."""
    app = RhaiiApp(make_cfg(), start_step=1)
    async with running(app) as pilot:
        for n in (2, 3, 4, 5, 6, 7):  # each new page starts mounting; none waited for
            app.goto_step(n)
        app.goto_step(1)
        await until(pilot, lambda: all(app.page_widget(n) is not None and app.page_widget(n).is_mounted
                                       for n in (2, 3, 4, 5, 6, 7)), what="the pages mounted")
        await pilot.pause()
        await pilot.pause()
        switcher = app.query_one("#pages", ContentSwitcher)
        assert switcher.current == app.current_page.id == "page-1"
        assert app.current_page.region.height > 0 and app.current_page.query_one(CommandList).region.height > 0
