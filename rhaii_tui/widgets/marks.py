"""State marks for steps: one glyph, colour and word per status (shared by sidebar and screens)."""

from __future__ import annotations

from typing import Any, Protocol

from textual.content import Content

STATUSES = ("not_started", "in_progress", "done", "failed", "skipped", "unknown")

# status -> (glyph, style, word)
MARKS: dict[str, tuple[str, str, str]] = {
    "not_started": ("○", "$text-muted", "not started"),
    "in_progress": ("◐", "bold $warning", "in progress"),
    "done": ("✔", "bold $success", "done"),
    "failed": ("✘", "bold $error", "failed"),
    "skipped": ("⊘", "$text-muted", "skipped"),
    "unknown": ("?", "$warning", "unknown"),
}


class StepStateLike(Protocol):
    """What the UI needs from a step's state (rhaii_tui.steps.base.StepState fits)."""

    status: Any  # one of STATUSES (a str or a str Enum)
    summary: str


def status_of(state: StepStateLike | None) -> str:
    """The status string of a state ('not_started' for None or anything unknown)."""
    if state is None:
        return "not_started"
    status = getattr(state, "status", None)
    value = str(getattr(status, "value", status))
    return value if value in MARKS else "not_started"


def mark(status: str) -> Content:
    glyph, style, _word = MARKS.get(status, MARKS["not_started"])
    return Content.styled(glyph, style)


def mark_and_word(status: str) -> Content:
    glyph, style, word = MARKS.get(status, MARKS["not_started"])
    return Content.styled(f"{glyph} {word}", style)
