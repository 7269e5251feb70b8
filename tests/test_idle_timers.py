"""Idle cost: a watching page's timers sleep while nothing changes (benchmarks/bench_idle.py measures it).

Mechanisms only (no timing): the 10 Hz render timer pauses once the watch is quiet and a change from a
watch thread wakes it; a hidden page's once-a-second tick does nothing and the page catches up on entry.
"""

from __future__ import annotations

import threading

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig


async def _until(pilot, cond, tries: int = 600) -> bool:
    for _ in range(tries):
        if cond():
            return True
        await pilot.pause(0.05)
    return cond()


@pytest.mark.asyncio
async def test_render_timer_sleeps_while_quiet_and_a_watch_change_wakes_it():
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        app.goto_step(3)  # hidden: its once-a-second tick stays out of the way (see the next test)
        await pilot.pause()
        renders: list[bool] = []
        page.render_live = lambda live, tick: renders.append(tick)  # type: ignore[method-assign]
        timer = page._render_timer
        pauses: list[int] = []
        real_pause = timer.pause
        timer.pause = lambda: (pauses.append(1), real_pause())  # type: ignore[method-assign]
        page._live = object()  # a running watch (stands in for OperatorWatch)
        threading.Thread(target=page.mark_dirty).start()  # a watch event, from its thread
        assert await _until(pilot, lambda: False in renders)  # woken: the change is rendered
        assert await _until(pilot, lambda: bool(pauses))  # then quiet again: the timer sleeps
        n = renders.count(False)
        threading.Thread(target=page.mark_dirty).start()
        assert await _until(pilot, lambda: renders.count(False) > n)  # a later change wakes it again
        page._live = None


@pytest.mark.asyncio
async def test_a_hidden_pages_tick_does_nothing_and_entering_it_catches_up():
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        renders: list[bool] = []
        page.render_live = lambda live, tick: renders.append(tick)  # type: ignore[method-assign]
        page.ensure_watch = lambda: None  # type: ignore[method-assign]
        page._live = object()
        page._tick()
        assert renders == [True]  # on show: the time-dependent cells are refreshed
        app.goto_step(3)
        await pilot.pause()
        renders.clear()
        page._tick()
        assert renders == []  # hidden: no rendering work
        app.goto_step(4)
        await pilot.pause()
        assert True in renders  # back on show: refreshed at once, not a second later
        page._live = None
