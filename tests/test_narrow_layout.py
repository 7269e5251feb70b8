"""At 80x24 nothing that matters is cut (issue 14, item 14): the pod tables keep each pod's unique
suffix, step 4's detail is readable whole, step descriptions wrap instead of ending in an ellipsis.

Snapshots at 80x24 of the pages these change (deterministic: the fixed worlds of the 120x40 snapshot
tests, no clocks). Update deliberately with:
python -m pytest tests/test_narrow_layout.py --snapshot-update
"""

from __future__ import annotations

import asyncio

from rhaii_tui.screens.pages import PAGES
from rhaii_tui.widgets.operate_tables import OpsPodTable
from rhaii_tui.widgets.operator_status import OperatorStatusTable
from rhaii_tui.widgets.pod_table import PodTableWidget, fit_middle

from pilothelpers import until
from test_operate_screen import operate_app
from test_screens_1_3 import screen_text
from test_screens_4_5_fixtures import deploy_pods, epp_pod
from test_screens_4_5_snapshots import app_at, page_ready, show_failing_operator, show_three_stages

NARROW = (80, 24)


def widget_text(widget) -> str:
    """What a widget shows, its lines joined by spaces."""
    return " ".join(line.text.strip() for line in widget.render_lines(widget.region.reset_offset))


def test_a_pod_name_is_shortened_in_the_middle_keeping_what_tells_pods_apart():
    name = "qwen-3b-tpu-svc-kserve-6f7d9c8b5-a1b2c"
    assert fit_middle(name, 60) == name
    assert fit_middle(name, 24) == "qwen-3b…-6f7d9c8b5-a1b2c"

    assert fit_middle(name, 10).endswith("-a1b2c") and len(fit_middle(name, 10)) == 10
    assert all(len(fit_middle(name, w)) == w for w in range(1, len(name)))


def test_step_5_at_80_columns_shows_every_pods_stage_time_and_unique_suffix():
    async def walk() -> None:
        app = app_at(5)
        async with app.run_test(size=NARROW) as pilot:
            await show_three_stages(pilot)
            table = app.query_one(PodTableWidget)
            await until(pilot, lambda: table.narrow, what="the narrow columns")
            await pilot.pause()
            text = screen_text(app)
            for pod in deploy_pods() + [epp_pod()]:
                suffix = pod["metadata"]["name"].rsplit("-", 1)[1]
                assert f"…{suffix}" in text, (suffix, text)
            for shown in ("r1", "r2", "r3", "EPP", "Running 0/1", "Init:0/1", "7m (3-5m)", "40s (30-60s)",
                          "In stage"):
                assert shown in text, (shown, text)
            # a failure stage stays whole (the stage column takes the room left)
            for stage in ("Init:ErrImagePull", "Init:CrashLoopBackOff", "Init:ImagePullBackOff"):
                table.upsert(table.row_keys()[2], {"stage": stage, "severity": "red"})
                await pilot.pause()
                assert stage in screen_text(app), (table.size.width, table.column_width("stage"), screen_text(app))
            # the In stage column as wide as its longest text: the guide's estimates stay whole too
            assert "7m (3-5m)" in screen_text(app) and "40s (30-60s)" in screen_text(app)

    asyncio.run(walk())


def test_step_5_at_120_columns_keeps_its_full_table():
    async def walk() -> None:
        app = app_at(5)
        async with app.run_test(size=(120, 40)) as pilot:
            await show_three_stages(pilot)
            table = app.query_one(PodTableWidget)
            assert not table.narrow
            assert "milestone" in table.column_keys and "node" in table.column_keys

    asyncio.run(walk())


def test_step_4_at_80_columns_every_rows_detail_is_readable_under_the_table():
    async def walk() -> None:
        app = app_at(4)
        async with app.run_test(size=NARROW) as pilot:
            await show_failing_operator(pilot)
            table = app.query_one(OperatorStatusTable)
            assert table.narrow and "detail" not in table.column_keys
            table.focus()
            for i, key in enumerate(table.row_keys()):
                table.move_cursor(row=i, animate=False)
                await pilot.pause()
                detail = str(table.model(key).get("detail") or "")
                line = app.query_one("#op-detail")
                text = widget_text(line) \
                    if line.display and line.region.height else ""
                if len(detail) > 10:  # longer than any room a detail column could have at 80 columns
                    assert " ".join(detail.split()) in " ".join(text.split()), (key, detail, text)

    asyncio.run(walk())


def test_operate_at_80_columns_shows_each_pods_unique_suffix(monkeypatch):
    async def walk() -> None:
        app = operate_app(monkeypatch)
        async with app.run_test(size=NARROW) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            await until(pilot, lambda: page.status is not None)
            table = app.query_one(OpsPodTable)
            await until(pilot, lambda: table.row_count == 3, what="three pods")
            table.scroll_visible(animate=False)
            await pilot.pause()
            text = screen_text(app)
            for suffix in ("abcde", "fghij", "klmno"):
                assert f"…{suffix}" in text, (suffix, text)
            assert "Running 1/1" in text

    asyncio.run(walk())


def test_every_pages_description_is_whole_at_80_columns():
    async def walk() -> None:
        app = app_at(0)
        async with app.run_test(size=NARROW) as pilot:
            await page_ready(pilot)
            for p in PAGES:
                app.goto_step(p.number)
                page = await until(pilot, lambda: getattr(app.current_page, "number", None) == p.number
                                   and app.current_page, what=f"page {p.number}")
                await pilot.pause()
                purpose = page.query_one(".step-purpose")
                if not purpose.display or purpose.region.height == 0:
                    continue  # a short terminal on a live page: the description is one key away (?)
                shown = widget_text(purpose)
                assert " ".join(shown.split()) == p.purpose, (p.number, shown)

    asyncio.run(walk())


def test_step_5_at_80x24(snap_compare):
    assert snap_compare(app_at(5), terminal_size=NARROW, run_before=show_three_stages)


def test_step_4_at_80x24(snap_compare):
    assert snap_compare(app_at(4), terminal_size=NARROW, run_before=show_failing_operator)


def test_operate_at_80x24(snap_compare, monkeypatch):
    async def ready(pilot):
        await pilot.app.start_page_ready.wait()
        page = pilot.app.current_page
        await until(pilot, lambda: page.status is not None)
        pilot.app.query_one(OpsPodTable).scroll_visible(animate=False)
        await pilot.pause()

    assert snap_compare(operate_app(monkeypatch), terminal_size=NARROW, run_before=ready)


def test_step_8_at_80_columns_every_connection_says_what_decided_it_and_what_was_seen():
    import test_screens_6_8_snapshots as s68
    from rhaii_tui.steps import netpol
    from rhaii_tui.widgets.reachability import ReachabilityPanel, decided_by

    from rhaii_tui.screens import register_step_screen
    from rhaii_tui.screens.netpol import NetpolScreen

    register_step_screen(8)(NetpolScreen)  # as the step 6-8 snapshot tests do

    async def walk() -> None:
        app = s68.app_at(8)
        async with app.run_test(size=(80, 50)) as pilot:
            await s68.page_ready(pilot)
            cfg = s68.fixed_cfg()
            page = app.current_page
            seen = {"otherns-vllm": netpol.Observation(
                "otherns-vllm", "pod in a new namespace -> vLLM:8000", "rhaii-probe-abc123", "rhaii-probe-ns-abc123",
                "10.8.1.10:8000", False, True, "10.8.1.10 (10.8.1.10:8000) open")}
            enforced = netpol.Enforcement(True, "GKE Dataplane V2", cfg.cluster)
            rep = netpol.with_observations(netpol.report(netpol.rendered(cfg), cfg, enforced=enforced, live=True),
                                           seen)
            page.show_report("live", rep)
            page.query_one("#np-tabs").active = "np-tab-live"
            panel = page.query_one("#np-live", ReachabilityPanel)
            table = panel.table
            await until(pilot, lambda: table.narrow and table.row_count > 0, what="the narrow reachability table")
            assert table.shown_text("otherns-vllm", "mark") == "✘"
            table.focus()
            rows = {r.key: r for r in rep.rows}
            explain = panel.query_one(".reach-explain")
            for i, key in enumerate(table.row_keys()):
                if key not in rows:
                    continue  # a section heading
                table.move_cursor(row=i, animate=False)
                await pilot.pause()
                text = widget_text(explain)
                text = " ".join(text.split())
                assert f"Decided by: {decided_by(rows[key])}" in text, (key, text)
                if key == "otherns-vllm":
                    assert "Observed:" in text, text

    asyncio.run(walk())


def test_step_8_at_80x24_the_three_tabs_fit(snap_compare):
    import test_screens_6_8_snapshots as s68
    from rhaii_tui.screens import register_step_screen
    from rhaii_tui.screens.netpol import NetpolScreen

    register_step_screen(8)(NetpolScreen)
    captured = {}
    s68.test_step_8_preview_says_the_gateway_would_be_cut_off(
        lambda app, terminal_size, run_before: captured.update(app=app, run_before=run_before) or True)
    assert snap_compare(captured["app"], terminal_size=NARROW, run_before=captured["run_before"])


def test_step_9_at_80x24(snap_compare):
    import test_screens_9_11_snapshots as s911

    assert snap_compare(s911.app_at(9), terminal_size=NARROW, run_before=s911.page_ready)


def test_steps_9_to_11_hints_are_whole_under_their_buttons_at_80_columns():
    import test_screens_9_11_snapshots as s911

    async def walk() -> None:
        for number in (9, 10, 11):
            app = s911.app_at(number)
            async with app.run_test(size=NARROW) as pilot:
                await s911.page_ready(pilot)
                hint = app.current_page.query_one(".run-status")
                bar = hint.parent
                text = widget_text(hint)
                assert " ".join(text.split()) == " ".join(str(hint.render()).split()), (number, text)
                assert not text.rstrip().endswith("…"), (number, text)
                for button in bar.query("Button"):
                    assert button.region.y < hint.region.y, (number, str(button.label))
                    assert button.region.width >= len(str(button.label)) + 2, (number, str(button.label))

    asyncio.run(walk())


def test_step_2_progress_rows_keep_their_time_and_note_whole_at_80_columns():
    from textual.app import App

    from rhaii_tui.app import RhaiiApp
    from rhaii_tui.widgets.op_progress import PhaseProgress

    class BarApp(App):
        HORIZONTAL_BREAKPOINTS = RhaiiApp.HORIZONTAL_BREAKPOINTS
        CSS_PATH = RhaiiApp.CSS_PATH  # the wizard's layout rules

        def compose(self):
            yield PhaseProgress("TPU node pool", 900, id="bar")

    note = "rhaii-tpu-scaleout-cluster RUNNING, node pool tpu-pool exists"

    async def walk() -> None:
        app = BarApp()
        async with app.run_test(size=(52, 8)) as pilot:  # the page's width in an 80-column terminal
            bar = app.query_one(PhaseProgress)
            bar.finish("done", note)
            await pilot.pause()
            time = bar.query_one(".phase-time")
            shown_time = "".join(s.text for s in time.render_lines(time.region.reset_offset)).strip()
            assert bar.time_text() and time.region.right <= 52 and shown_time == bar.time_text(), shown_time
            label = bar.query_one(".phase-note")
            shown = widget_text(label)
            assert " ".join(shown.split()) == note

    asyncio.run(walk())


def test_the_start_up_summary_shows_the_whole_target_and_its_buttons_at_80x24():
    from textual.app import App

    from rhaii_tui.screens.resume import ResumeScreen

    target = "rhaii-demo-project / europe-west4-a / rhaii-tpu-scaleout-cluster / rhaii-inference"

    class SummaryApp(App):
        def on_mount(self):
            self.push_screen(ResumeScreen(target))

    async def walk() -> None:
        app = SummaryApp()
        async with app.run_test(size=NARROW) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, ResumeScreen) and app.screen,
                                 what="the summary")
            await pilot.pause()
            label = screen.query_one("#resume-target")
            shown = widget_text(label)
            assert " ".join(shown.split()) == target, shown
            box = screen.query_one("#resume-box").content_region
            assert label.region.right <= box.right and label.region.height >= 2, (label.region, box)  # wraps
            for button in screen.query("#resume-buttons Button"):
                if button.display:
                    assert 0 < button.region.bottom <= NARROW[1], (str(button.label), button.region)

    asyncio.run(walk())


def test_step_3_form_titles_keep_the_secrets_name_whole_at_80_columns():
    from textual.app import App

    from rhaii_tui.widgets.secret_form import SecretForm

    class FormApp(App):
        def compose(self):
            yield SecretForm("pull", id="f")

    async def walk(width: int) -> str:
        app = FormApp()
        async with app.run_test(size=(width, 12)) as pilot:
            form = app.query_one(SecretForm)
            await pilot.pause()
            title = str(form.border_title)
            assert len(title) + 6 <= form.size.width, (title, form.size)
            return title

    assert asyncio.run(walk(50)) == "Pull secret · rhaiis-pull-secret"  # the page's width at 80 columns
    assert asyncio.run(walk(86)) == "Red Hat registry pull secret · rhaiis-pull-secret"
