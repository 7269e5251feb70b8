"""Shared fixtures. Each test that needs the cloud gets its own simulated world on port 0.

- `sim_world`: a fresh world (speed 2000) in the test's tmp_path; the handle of
  `rhaii_tui.sim.testing.run_world` (`.endpoints`, `.endpoints_file`, `.world`, `.call(fn)`,
  `.profile()`, `.wait_until(pred)`, `.fast_forward(s)`).
- `make_sim_world(scenario="fresh", speed=2000, plain_http=False, **knobs)`: start more worlds (or
  other scenarios); each in its own directory, all stopped at teardown.
- `fake(**kw)` (async): start a `rhaii_tui.loadtest.testserver.FakeVllm` on port 0; all stopped at
  teardown.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
import pytest_asyncio


@pytest.fixture(autouse=True)
def _notifications_kept(monkeypatch):
    """Every notification an app made, kept on the app (`_notes_seen`) so a timed-out wait can report
    the ones that already expired (pilothelpers.until)."""
    from textual.app import App

    original = App.notify

    def notify(self, message, *args, **kwargs):
        self.__dict__.setdefault("_notes_seen", []).append(str(message))
        return original(self, message, *args, **kwargs)

    monkeypatch.setattr(App, "notify", notify)


@pytest.fixture
def make_sim_world(tmp_path):
    from rhaii_tui.sim.testing import run_world

    stack = contextlib.ExitStack()
    counter = itertools.count()

    def make(scenario: str = "fresh", speed: float = 2000, plain_http: bool = False, state_dir=None, **knobs):
        d = state_dir if state_dir is not None else tmp_path / f"world-{next(counter)}"
        return stack.enter_context(run_world(d, scenario=scenario, speed=speed, plain_http=plain_http, **knobs))

    with stack:
        yield make


@pytest.fixture
def sim_world(make_sim_world):
    return make_sim_world("fresh", speed=2000)


@pytest_asyncio.fixture
async def fake():
    servers = []

    async def make(**kw):
        from rhaii_tui.loadtest.testserver import FakeVllm

        f = FakeVllm(**kw)
        await f.start()
        servers.append(f)
        return f

    yield make
    for f in servers:
        await f.stop()
