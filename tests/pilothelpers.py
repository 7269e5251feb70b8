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
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
