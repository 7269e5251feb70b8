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
