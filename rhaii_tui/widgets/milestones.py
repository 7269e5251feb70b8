"""MilestoneChecklist: per pod, the model download and the five vLLM start-up milestones.

Each pod gets a block: its replica label and name, the KV cache size once vLLM logged it, then one
line per milestone of `steps.podlife.MILESTONES` (download success line, checkpoint shards,
weights, KV cache, compile start, compile done): ✔ with the wall-clock time it was logged and the
guide-time since the previous milestone, … for the next one expected, ○ for the rest. While XLA
compiles, the compile line says for how long.

`show(pods)` takes (label, pod name, MilestoneTracker | None) triples; it re-renders only when the
text changed (call it every second).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from ..steps.podlife import MILESTONES, fmt_duration


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def checklist_content(pods: Sequence[tuple[str, str, Any]], now: float | None = None,
                      time_scale: float = 1.0) -> Content:
    if not pods:
        return Content.styled("No workload pods yet: apply the LLMInferenceService.", "$text-muted")
    now = time.time() if now is None else now
    parts: list[Any] = []
    for i, (label, name, mt) in enumerate(pods):
        if i:
            parts.append("\n\n")
        parts += [(f"{label} ", "bold"), (name, "")]
        rows = mt.durations() if mt is not None else [(k, lbl, None, None) for k, lbl in MILESTONES]
        next_marked = False
        for key, text, at, dur in rows:
            parts.append("\n")
            if at is not None:
                extra = ""
                if key == "weights" and mt.weights_seconds is not None:
                    extra = f" ({mt.weights_seconds:g} s)"
                parts += [("  ✔ ", "bold $success"), (f"{text}{extra}".ljust(28), ""),
                          (_clock(at), "$text-muted")]
                if dur is not None:
                    parts.append((f"  +{fmt_duration(dur)}".ljust(10), "$text-muted"))
                if key == "kv_cache" and mt.kv_cache_tokens is not None:
                    dev = f" ({mt.kv_cache_device})" if mt.kv_cache_device else ""
                    parts.append((f"{mt.kv_cache_tokens:,} tokens{dev}", "bold $accent"))
            elif not next_marked:
                next_marked = True
                parts += [("  … ", "bold $warning"), (text, "")]
                if key == "compile_done" and mt is not None and mt.compiling:
                    start = mt.reached["compile_start"].at
                    parts.append((f"   compiling for {fmt_duration(max(0.0, now - start) * time_scale)}",
                                  "$warning"))
            else:
                parts += [("  ○ ", "$text-muted"), (text, "$text-muted")]
    return Content.assemble(*parts)


class MilestoneChecklist(VerticalScroll):
    """The milestone checklist of every workload pod."""

    ALLOW_MAXIMIZE = True  # the pages' zoom (f) takes the whole pane, not just the part in focus

    DEFAULT_CSS = """
    MilestoneChecklist {
        height: 1fr;
        scrollbar-size-vertical: 1;
        .milestones-text { height: auto; }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._plain = None

    def compose(self):
        yield Static(checklist_content(()), classes="milestones-text")

    def show(self, pods: Sequence[tuple[str, str, Any]], *, now: float | None = None,
             time_scale: float = 1.0) -> bool:
        """Render; True when the text changed."""
        content = checklist_content(pods, now=now, time_scale=time_scale)
        if content.plain == self._plain:
            return False
        self._plain = content.plain
        self.query_one(".milestones-text", Static).update(content)
        return True

    @property
    def text(self) -> str:
        return self._plain or ""


__all__ = ["MilestoneChecklist", "checklist_content"]
