"""A page's own keys work, and show in the footer, while the focus is in the sidebar."""

from __future__ import annotations

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.widgets.step_list import StepList


def _keys_on_show(app: RhaiiApp) -> set[str]:
    return {b.binding.key for b in app.screen.active_bindings.values()}


@pytest.mark.asyncio
async def test_page_keys_answer_with_the_focus_in_the_sidebar(tmp_path):
    store = StateStore(tmp_path / "state")
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, state_store=store, start_step=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        assert isinstance(app.focused, StepList)
        assert "ctrl+s" in _keys_on_show(app)  # the configure page's Save is in the footer
        await pilot.press("ctrl+s")
        for _ in range(100):
            if store.path_for(cfg.project, cfg.zone, cfg.cluster).exists():
                break
            await pilot.pause(0.05)
        assert store.path_for(cfg.project, cfg.zone, cfg.cluster).exists()
        assert isinstance(app.focused, StepList)  # the sidebar keeps its focus and its own keys
        sidebar = app.query_one(StepList)
        before = sidebar.highlighted
        await pilot.press("down")
        assert sidebar.highlighted != before  # arrows still move in the sidebar


@pytest.mark.asyncio
async def test_another_pages_keys_do_not_leak(tmp_path):
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        app.goto_step(12)
        await pilot.pause()
        assert "ctrl+s" not in _keys_on_show(app)


@pytest.mark.asyncio
async def test_footer_follows_the_page_on_show(tmp_path):
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        footer_keys = lambda: {b.key for b in app.query_one("#footer").query("FooterKey").results()}  # noqa: E731
        assert "ctrl+s" in footer_keys()
        await pilot.press("right_square_bracket")  # to step 1, focus stays in the sidebar
        for _ in range(100):
            if "ctrl+s" not in footer_keys():
                break
            await pilot.pause(0.05)
        assert "ctrl+s" not in footer_keys()  # Configure's Save left with its page
        await pilot.press("left_square_bracket")  # back to Configure
        for _ in range(100):
            if "ctrl+s" in footer_keys():
                break
            await pilot.pause(0.05)
        assert "ctrl+s" in footer_keys()
        app.goto_step(2)  # a page built now: its keys join the footer once it is mounted
        for _ in range(100):
            if "r" in footer_keys():
                break
            await pilot.pause(0.05)
        assert "r" in footer_keys()  # step 2's Refresh


def test_wizard_screen_uses_only_public_binding_api():
    """No override of Textual's private binding chain, no reading of private binding state: a Textual
    upgrade must not silently drop the pages' keys (textual is pinned; the public API is BINDINGS +
    check_action + run_action)."""
    import inspect

    from rhaii_tui.screens import wizard_screen
    from rhaii_tui.screens.wizard_screen import WizardScreen

    assert "_binding_chain" not in WizardScreen.__dict__
    assert "_modal_binding_chain" not in WizardScreen.__dict__
    assert "active_bindings" not in WizardScreen.__dict__
    source = inspect.getsource(wizard_screen)
    for private in ("._bindings", "._keymap", "_binding_chain", "._merged_bindings"):
        assert private not in source, private


def test_the_screens_list_of_page_keys_matches_every_pages_bindings():
    """WizardScreen lists the pages' keys (pages are imported lazily): the list must follow the pages."""
    from rhaii_tui.screens import step_screen_for
    from rhaii_tui.screens.base import StepScreen
    from rhaii_tui.screens.pages import PAGES
    from rhaii_tui.screens.wizard_screen import PAGE_KEYS, STEP_KEYS, WizardScreen

    def fields(b):
        return (b.key, b.action, b.description, b.show, b.key_display, b.tooltip, b.priority)

    assert [fields(b) for b in StepScreen.BINDINGS] == [fields(b) for b in STEP_KEYS]
    for p in PAGES:
        cls = step_screen_for(p.number)
        own = [fields(b) for k in reversed(cls.__mro__) if issubclass(k, StepScreen) and k is not StepScreen
               for b in k.__dict__.get("BINDINGS", ())]
        assert own == [fields(b) for b in PAGE_KEYS.get(p.number, ())], (
            f"{cls.__name__}.BINDINGS changed: update PAGE_KEYS[{p.number}] in rhaii_tui/screens/wizard_screen.py")
        # the footer lists the screen's keys in their first-appearance order: each page's order is kept
        page_keys = [b.key for b in STEP_KEYS + PAGE_KEYS.get(p.number, ())]
        screen_order = list(dict.fromkeys(b.key for b in WizardScreen.BINDINGS))
        assert [k for k in screen_order if k in page_keys] == page_keys


@pytest.mark.asyncio
async def test_page_key_runs_from_the_sidebar_and_a_focused_field_still_types_it(tmp_path):
    """Step 3: `r` (Refresh) from the sidebar runs the page's refresh; typed into the page's text field
    it is a letter of the value, not a refresh. With focus in the page its key shows once."""
    from textual.widgets import Input

    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=3)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        refreshed: list[int] = []
        page.action_refresh = lambda: refreshed.append(1)  # type: ignore[method-assign]
        assert isinstance(app.focused, StepList)
        await pilot.press("r")
        for _ in range(100):
            if refreshed:
                break
            await pilot.pause(0.05)
        assert refreshed == [1]  # the page on show answered its key with focus in the sidebar
        field = page.query(Input).first()
        field.focus()
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert "r" in field.value  # typed, not stolen by the page's (or the screen's) binding
        assert refreshed == [1]
        page.query_one("#sc-body").focus()  # focus in the page, not in a text field
        await pilot.pause()
        footer_r = [k for k in app.query_one("#footer").query("FooterKey").results() if k.key == "r"]
        assert len(footer_r) == 1  # focus in the page: its own binding, no duplicate from the screen


@pytest.mark.asyncio
async def test_page_keys_do_nothing_under_a_dialog(tmp_path):
    """A dialog on top (help) keeps the page's keys away: `r` reaches no page behind it."""
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=3)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        refreshed: list[int] = []
        page.action_refresh = lambda: refreshed.append(1)  # type: ignore[method-assign]
        await pilot.press("f1")
        for _ in range(100):
            if app.screen is not app.screen_stack[0]:
                break
            await pilot.pause(0.05)
        assert app.screen is not app.screen_stack[0]
        await pilot.press("r")
        await pilot.pause()
        assert refreshed == []
