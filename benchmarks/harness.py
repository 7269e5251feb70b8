"""What the UI benchmarks share: percentiles, frame timing under the headless driver, the machine.

Imported by the scripts in this directory (`python benchmarks/<name>.py` puts it on sys.path).
"""

from __future__ import annotations

import os
import platform
import time


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))]


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def instrument_frames(app, frames: list[float]) -> None:
    """Time each screen update of `app` into `frames`, and build the ANSI a terminal driver would
    write (the headless driver skips only that write), so it counts in the frame time."""
    from textual._compositor import CompositorUpdate

    screen = app.screen
    original = screen._on_timer_update
    display = app._display

    def timed_update() -> None:
        t0 = time.perf_counter()
        original()
        frames.append(time.perf_counter() - t0)

    def display_with_ansi(scr, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)
        display(scr, renderable)

    screen._on_timer_update = timed_update  # type: ignore[method-assign]
    app._display = display_with_ansi  # type: ignore[method-assign]
    screen._update_timer._callback = timed_update
