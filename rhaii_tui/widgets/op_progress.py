"""PhaseProgress: one row per long phase (control plane, node pool, nodes Ready): a progress bar,
the time elapsed against the guide's expected time, and a short note.

    bar = PhaseProgress("Control plane", expected=300, id="phase-cluster")
    bar.start(elapsed=12.0, note="Creating the control plane")   # running; elapsed ticks on
    bar.advance(fraction=0.4, elapsed=130.0, note="...")          # a report from the follower
    bar.follow_operation(op_info, elapsed=130.0, note="...")      # a GKE operation: the bar follows time
    bar.finish("done")  /  bar.finish("failed", note=...)  /  bar.reset()

An operation's bar follows the guide time elapsed against the guide's estimate (GKE reports no
progress while it creates a control plane), capped below 100% until the operation is DONE; past
the estimate a line under the bar says so and why ("longer than the guide's ~5 min: GKE is still
creating the control plane (this happens; the operation is RUNNING)").

Times are guide time (wall seconds x the profile's time_scale), so the simulated cloud's
fast-forward reads the same as the guide. Between reports the elapsed time ticks on locally
once a second.
"""

from __future__ import annotations

import time
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Label, ProgressBar

STATES: dict[str, tuple[str, str]] = {
    "waiting": ("○", "$text-muted"),
    "running": ("◐", "bold $warning"),
    "done": ("✔", "bold $success"),
    "failed": ("✘", "bold $error"),
    "stopped": ("⊘", "$text-muted"),
}


def fmt_duration(seconds: float | None) -> str:
    """12s, 4m 05s, 1h 02m."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def fmt_expected(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"~{s}s"
    if s < 3600:
        return f"~{round(s / 60)} min"
    return f"~{s / 3600:.1f} h"



class QuietProgressBar(ProgressBar):
    """Textual's ProgressBar without its once-a-second refresh, which is there for the ETA countdown
    (not shown here): the bar repaints only when its progress changes (idle CPU, issue 15)."""

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # ProgressBar.on_mount would start the 1 s interval
        self.update()

class PhaseProgress(Vertical):
    """A labelled progress bar with elapsed vs expected."""

    DEFAULT_CSS = """
    PhaseProgress {
        height: auto;
        .phase-row { height: 1; }
        .phase-why { display: none; height: auto; color: $warning; padding: 0 0 0 2; }
        .phase-why.-shown { display: block; }
        .phase-mark { width: 2; }
        .phase-label { width: 16; text-style: bold; }
        ProgressBar { width: 30; }
        ProgressBar Bar { width: 20; }
        .phase-time { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        .phase-time.-overdue { color: $warning; }
        .phase-note { display: none; width: 1fr; height: auto; color: $text-muted; padding: 0 0 0 18; }
        .phase-note.-shown { display: block; }
    }
    """

    def __init__(self, label: str, expected: float, *, time_scale: float = 1.0, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.expected = float(expected)
        self.time_scale = time_scale
        self.state = "waiting"
        self.fraction = 0.0
        self.note = ""
        self._elapsed: float | None = None  # guide seconds at the last report
        self._reported_at = 0.0  # monotonic time of the last report
        self._ticker = None
        # a GKE operation followed by time (follow_operation): what it reports, its type and status
        self.follows_time = False
        self.reported: float | None = None
        self.op_type = ""
        self.op_status = ""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="phase-row"):
            yield Label(self._mark(), classes="phase-mark")
            yield Label(self.label, classes="phase-label")
            yield QuietProgressBar(total=100, show_eta=False, show_percentage=True)
            yield Label("", classes="phase-time")
        # what the operation reports, whole on its own line under the bar (it never fits beside it)
        yield Label("", classes="phase-note", markup=False)
        yield Label("", classes="phase-why", markup=False)

    def on_mount(self) -> None:
        self._ticker = self.set_interval(1.0, self._tick, pause=True)
        self._render_state()

    def _mark(self) -> Content:
        glyph, style = STATES.get(self.state, STATES["waiting"])
        return Content.styled(glyph, style)

    # reporting -----------------------------------------------------------------------------------
    def reset(self, note: str = "") -> None:
        self.state, self.fraction, self.note, self._elapsed = "waiting", 0.0, note, None
        self.follows_time, self.reported, self.op_type, self.op_status = False, None, "", ""
        self._render_state()

    def follow_operation(self, op: Any, elapsed: float, note: str, *, expected: float | None = None) -> None:
        """A report on a running GKE operation (`cloud.gke.OperationInfo`): the bar follows the guide
        time against the estimate (what the operation reports, when further), below 100% until DONE."""
        self.follows_time = True
        self.reported = op.fraction
        self.op_type, self.op_status = op.op_type, op.status
        self.advance(None, elapsed, note, expected=expected)

    def start(self, elapsed: float | None = None, note: str = "") -> None:
        self.advance(self.fraction, elapsed, note)

    def advance(self, fraction: float | None = None, elapsed: float | None = None, note: str | None = None,
                *, expected: float | None = None) -> None:
        self.state = "running"
        if fraction is not None:
            self.fraction = max(0.0, min(1.0, fraction))
        if elapsed is not None:
            self._elapsed = elapsed
            self._reported_at = time.monotonic()
        if expected:
            self.expected = float(expected)
        if note is not None:
            self.note = note
        self._render_state()

    def finish(self, state: str = "done", note: str | None = None) -> None:
        self.state = state
        if state == "done":
            self.fraction = 1.0
        if note is not None:
            self.note = note
        self._render_state()

    # display ------------------------------------------------------------------------------------
    def elapsed_now(self) -> float | None:
        if self._elapsed is None:
            return None
        if self.state != "running":
            return self._elapsed
        return self._elapsed + (time.monotonic() - self._reported_at) * self.time_scale

    def time_text(self) -> str:
        if self.expected <= 0:
            return ""
        elapsed = self.elapsed_now()
        if elapsed is None:
            return f"expected {fmt_expected(self.expected)}"
        return f"{fmt_duration(elapsed)} of {fmt_expected(self.expected)}"

    def _tick(self) -> None:
        if self.state == "running" and self.is_attached:
            self._render_time()

    def why_text(self) -> str:
        """Past the guide's estimate, while the operation runs: that it is longer, and why."""
        if not (self.follows_time and self.state == "running"):
            return ""
        from ..steps.cluster import overdue_text

        return overdue_text(self.op_type, self.op_status, self.elapsed_now(), self.expected)

    def _render_time(self) -> None:
        label = self.query_one(".phase-time", Label)
        label.update(self.time_text())
        elapsed = self.elapsed_now()
        label.set_class(self.state == "running" and elapsed is not None and elapsed > self.expected, "-overdue")
        if self.follows_time and self.state == "running":
            from ..steps.cluster import op_fraction

            self.fraction = op_fraction(elapsed, self.expected, self.reported)
            self.query_one(ProgressBar).update(progress=round(self.fraction * 100, 1))
        why = self.why_text()
        line = self.query_one(".phase-why", Label)
        line.update(why)
        line.set_class(bool(why), "-shown")

    def _render_state(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(".phase-mark", Label).update(self._mark())
        self.query_one(ProgressBar).update(progress=round(self.fraction * 100, 1))
        self._render_time()
        note = self.query_one(".phase-note", Label)
        note.update(self.note)
        note.set_class(bool(self.note), "-shown")
        if self._ticker is not None:
            if self.state == "running":
                self._ticker.resume()
            else:
                self._ticker.pause()
