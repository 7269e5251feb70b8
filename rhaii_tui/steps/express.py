"""Express mode: every piece of steps/graph.py starts as soon as its needs hold, several at once.

Interface first; see the issue (#16). No Textual here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .graph import PIECES, Piece


@dataclass(frozen=True)
class PieceEvent:
    piece: str
    status: str         # "waiting" | "running" | "done" | "failed" | "skipped" | "stopped"
    at_s: float         # seconds since the run started, on the cloud's clock (simulated under --sim)
    message: str = ""


@dataclass
class ExpressResult:
    ok: bool
    time_to_serving_s: float | None
    timing: dict        # {"clock": "simulated"|"wall", "time_to_serving_s": N, "steps": {"1": {...}}}
    failure: str | None  # the diagnosis text, None when ok
    data: dict = field(default_factory=dict)


class ExpressRun:
    def __init__(self, ctx: Any, *, on_event: Callable[[PieceEvent], None] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.ctx = ctx
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.pieces: list[Piece] = list(PIECES)

    def billable_plan(self) -> tuple[list[str], float]:
        """Lines for the one up-front confirmation, and the total cost per day."""
        raise NotImplementedError

    def run(self) -> "ExpressResult":
        """Blocking, from a worker thread; calls on_event from that thread."""
        raise NotImplementedError

    def critical_path(self) -> list[str]:
        """Piece ids on the critical path (of the finished or running run)."""
        raise NotImplementedError
