"""The emulator's timing model: real wall-clock timestamps, guide durations divided by `speed`.

Objects carry real timestamps (so kubectl's AGE and the wizard's ages are right), and every
simulated duration (a 5-minute control plane, a 4-minute XLA compile) takes duration/speed of
wall time. A controller that needs "how far along is this pod" computes it from a stored start
time: `clock.sim_elapsed(start)`. That makes the world restartable: after the emulator was down
for a while, progress has advanced as if it had been running.
"""

from __future__ import annotations

import asyncio
import time


class SimClock:
    def __init__(self, speed: float = 1.0):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self.skipped = 0.0  # simulated seconds let pass at once (World.fast_forward)

    def sim_now(self) -> float:
        """The simulated clock, in seconds: wall time times `speed`, plus what was fast-forwarded.
        Only differences mean anything (the emulator's `/_emu/clock` answers it)."""
        return time.time() * self.speed + self.skipped

    def now(self) -> float:
        """Wall-clock time (epoch seconds): what timestamps carry."""
        return time.time()

    def sim_elapsed(self, since: float) -> float:
        """Simulated seconds elapsed since the wall-clock instant `since`."""
        return max(0.0, (time.time() - since) * self.speed)

    def wall(self, sim_seconds: float) -> float:
        """Wall seconds a simulated duration takes."""
        return sim_seconds / self.speed

    def at(self, start: float, sim_offset: float) -> float:
        """The wall-clock instant `sim_offset` simulated seconds after `start`."""
        return start + sim_offset / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds / self.speed))
