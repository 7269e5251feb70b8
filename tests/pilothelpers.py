"""Shared by the Pilot tests: wait for what a user would wait for, never for a fixed time."""

from __future__ import annotations

import time
from typing import Any, Callable


async def until(pilot: Any, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Let the app run until `predicate()` is truthy (returned), or fail after `timeout` wall seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}{_seen(pilot)}")
        await pilot.pause(0.05)


def _seen(pilot: Any) -> str:
    """What the app showed when a wait timed out: its screen and notifications (for the failure report)."""
    app = pilot.app
    try:
        notes = [n.message for n in app._notifications]
        seen = app.__dict__.get("_notes_seen", [])[-8:]  # conftest keeps them, expired ones too
        page = getattr(app, "current_page", None)
        where = f"{type(app.screen).__name__}" + (f" / {type(page).__name__}" if page is not None else "")
        return f" (screen {where}, notifications {notes}, the last made {seen})"
    except Exception:  # noqa: BLE001 - a report detail only
        return ""
