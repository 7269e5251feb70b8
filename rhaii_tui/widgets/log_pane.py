"""LogPane: live logs of many streams (pods x containers, or one installer), at scale.

Built on the lessons in STYLE_ANCHORS (toolong, k9s, Textual's Log):

- `ingest(source, container, lines)` is safe from any thread and cheap: it appends the batch to a
  pending list under a lock. Nothing touches widgets off the UI thread.
- The UI thread drains the pending batches and writes them with one `Log.write_lines` per drain:
  batches, never one message per line. Nothing runs while no line arrives: the batch that finds the
  pending list empty wakes the UI loop (a message: `post_message` is thread-safe), which drains one cadence (1/15 s)
  later, taking every batch that came meanwhile. Showing the pane, scrolling it, a new pod label or
  stream state also ask for one drain.
- Memory is bounded twice: a ring buffer of the last `ring_lines` lines (all streams, unfiltered,
  so a new filter or pod choice re-renders at once) and the Log's own `max_lines`. If the UI ever
  falls behind, pending batches beyond `pending_limit` lines are dropped and counted on screen.
- Follow mode: new lines are written only while the view is at the bottom. Scroll up and the pane
  pauses (the view stays still; "N new lines" counts what arrived); End (or scrolling back to the
  bottom) resumes from the ring buffer.
- Pickers: a pod (default: all, lines prefixed by replica) and a container (storage-initializer /
  main / both), a filter box (substring; case-insensitive unless it has capitals).
- A per-stream state line (following / reconnecting n / ended) set by the owner.
- Writes to a pane that is not on screen (another page, another tab) only fill the ring; the pane
  re-renders when it is shown again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Iterable, Mapping, Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Input, Label, Log, Select

ALL = "__all__"
CONTAINER_SHORT = {"storage-initializer": "init", "main": "main"}
DEFAULT_CONTAINERS: tuple[tuple[str, str], ...] = (
    ("storage-initializer", "storage-initializer"),
    ("main", "main (vLLM)"),
)


class DrainWanted(Message, bubble=False):
    """Lines arrived in an empty inbox (posted from the producing thread)."""


class PaneLog(Log):
    """The pane's Log: painting it while the pane has lines it does not show yet (it was hidden: on
    another tab or page) asks the pane for a drain. Textual sends no Show event to a widget whose
    ancestor is displayed again, but it paints it."""

    def render_lines(self, crop: Any) -> list[Strip]:
        pane = self.parent
        if isinstance(pane, LogPane) and pane._stale and not pane.drain_scheduled:
            self.call_later(pane._schedule_drain, 0.0)
        return super().render_lines(crop)


class LogPane(Vertical):
    """Follows many log streams with batching, bounded memory, filter and follow mode."""

    ALLOW_MAXIMIZE = True  # the pages' zoom (f) takes the whole pane, not just the part in focus

    DEFAULT_CSS = """
    LogPane {
        height: 1fr;
        min-height: 5;
        .log-controls { height: 1; }
        .log-controls Select { width: 26; margin: 0 1 0 0; }
        .log-filter { width: 1fr; }
        .log-status { height: 1; width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        .log-view { height: 1fr; border: none; overflow-x: auto; scrollbar-size-vertical: 1; }
    }
    """

    BINDINGS = [
        Binding("end", "follow", "Follow", tooltip="Jump to the newest line and follow"),
        Binding("slash", "focus_filter", "Filter", key_display="/", tooltip="Filter the lines"),
    ]

    def __init__(self, *, pickers: bool = True, containers: Sequence[tuple[str, str]] = DEFAULT_CONTAINERS,
                 max_lines: int = 10_000, ring_lines: int = 50_000, pending_limit: int = 200_000,
                 cadence: float = 1 / 15, placeholder: str = "", id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.pickers = pickers
        self.containers = tuple(containers)
        self.max_lines = max_lines
        self.ring_lines = ring_lines
        self.pending_limit = pending_limit
        self.cadence = cadence
        self.placeholder = placeholder
        # cross-thread inbox
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, Sequence[str]]] = []
        self._pending_lines = 0
        self._dropped = 0
        # UI-thread state
        self._ring: deque[tuple[str, str, Sequence[str]]] = deque()
        self._ring_count = 0
        self.received = 0  # lines received in total
        self.written = 0  # lines written to the Log in total
        self._unseen = 0  # matching lines that arrived while paused
        self._following = True
        self._pinned_y = 0.0  # the Log's scroll_y when we last put it at the bottom
        self._stale = False  # the Log does not show the ring's latest (hidden, or a selection changed)
        self._labels: dict[str, str] = {}
        self._sources: list[tuple[str, str]] = []
        self._pod = ALL
        self._container = ALL
        self._filter = ""
        self._filter_timer = None
        self._stream_states: dict[str, str] = {}
        self._status_text = ""
        self._status_at = 0.0
        self._drain_timer = None  # the one drain asked for, while one is
        self.drains = 0  # drains run (tests read it)

    # composition ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(classes="log-controls"):
            if self.pickers:
                yield Select([("All pods", ALL)], value=ALL, allow_blank=False, compact=True,
                             classes="log-pod", tooltip="Whose log: all pods (prefixed by replica) or one")
                yield Select([("All containers", ALL)] + [(label, key) for key, label in self.containers],
                             value=ALL, allow_blank=False, compact=True, classes="log-container",
                             tooltip="Which container: the model download (storage-initializer) or vLLM (main)")
            yield Input(placeholder="filter (/)", compact=True, classes="log-filter")
        yield Label(self.placeholder or "waiting for log lines", classes="log-status", markup=False)
        yield PaneLog(max_lines=self.max_lines, auto_scroll=True, classes="log-view")

    def on_mount(self) -> None:
        self._log = self.query_one(".log-view", Log)
        self._status = self.query_one(".log-status", Label)
        self.watch(self._log, "scroll_y", self._scrolled, init=False)
        with self._lock:
            waiting = bool(self._pending)
        if waiting:
            self._schedule_drain()

    def on_show(self) -> None:
        self._schedule_drain(0.0)  # written while hidden: catch up now

    def _scrolled(self, _y: float) -> None:
        self._schedule_drain()  # scrolled up (pause) or back to the bottom (follow again)

    def _wake(self) -> None:
        """Ask the UI loop for a drain (any thread: post_message is thread-safe, and the handler runs
        in the app's context, where a timer may be set)."""
        try:
            self.post_message(DrainWanted())
        except RuntimeError:  # the loop closed meanwhile: the app has gone
            pass

    @on(DrainWanted)
    def _drain_wanted(self, event: DrainWanted) -> None:
        event.stop()
        self._schedule_drain()

    def _schedule_drain(self, delay: float | None = None) -> None:
        """One drain `delay` (default: the cadence) from now, unless one is already due (UI thread)."""
        if self._drain_timer is not None or not self.is_attached:
            return
        self._drain_timer = self.set_timer(self.cadence if delay is None else max(0.01, delay), self._drain_fired,
                                           name="log-drain")

    def _drain_fired(self) -> None:
        self._drain_timer = None
        self._drain()

    @property
    def drain_scheduled(self) -> bool:
        """A drain is due (none while no line waits and nothing else asked for one)."""
        return self._drain_timer is not None

    # the owner's API (ingest: any thread; the rest: UI thread) -----------------------------------
    def ingest(self, source: str, container: str, lines: Sequence[str]) -> None:
        """Queue lines of one stream. Safe and cheap from any thread."""
        if not lines:
            return
        with self._lock:
            wake = not self._pending
            self._pending.append((source, container, lines))
            self._pending_lines += len(lines)
            if self._pending_lines > self.pending_limit:  # the UI is behind: drop the oldest
                while self._pending and self._pending_lines > self.pending_limit // 2:
                    _s, _c, old = self._pending.pop(0)
                    self._pending_lines -= len(old)
                    self._dropped += len(old)
        if wake:
            self._wake()

    def set_label(self, source: str, label: str) -> None:
        """The prefix shown for a source (e.g. a pod name -> 'r1')."""
        if self._labels.get(source) != label:
            self._labels[source] = label
            self._mark_stale()

    def set_sources(self, sources: Iterable[tuple[str, str]]) -> None:
        """The pods to pick from: (source, label). Keeps the current choice while it exists."""
        sources = list(sources)
        relabel = False
        for src, label in sources:
            relabel = relabel or src not in self._labels
            self._labels.setdefault(src, label)
        if self._pod == ALL and (relabel or bool(sources) != bool(self._sources)):
            self._mark_stale()  # lines already shown get their replica prefix (or lose it)
        if sources == self._sources or not self.pickers:
            self._sources = sources
            return
        self._sources = sources
        select = self.query_one(".log-pod", Select)
        current = self._pod
        options = [("All pods", ALL)] + [(f"{label}  {src}", src) for src, label in sources]
        with self.prevent(Select.Changed):
            select.set_options(options)
            if current in {s for s, _ in sources}:
                select.value = current
            else:
                select.value = ALL
        if select.value != self._pod:
            self._pod = str(select.value)
            self._mark_stale()

    def select(self, pod: str | None = None, container: str | None = None) -> None:
        """Pick a pod (ALL or a source) and/or a container (ALL or a name)."""
        if pod is not None and self.pickers:
            self.query_one(".log-pod", Select).value = pod
        if container is not None and self.pickers:
            self.query_one(".log-container", Select).value = container

    def set_stream_states(self, states: Mapping[str, str]) -> None:
        """{stream label: state} (following / reconnecting (...) / terminated: ... / pod deleted)."""
        states = dict(states)
        if states != self._stream_states:
            self._stream_states = states
            self._schedule_drain()  # the status line says it

    @property
    def following(self) -> bool:
        return self._following

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def shown_lines(self) -> list[str]:
        return list(self._log.lines)

    # actions ---------------------------------------------------------------------------------------
    def action_follow(self) -> None:
        if not self._following:
            self._rebuild()
        else:
            self._pin()

    def action_focus_filter(self) -> None:
        self.query_one(".log-filter", Input).focus()

    @on(Select.Changed, ".log-pod")
    def _pod_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = str(event.value)
        if value != self._pod:
            self._pod = value
            self._rebuild()

    @on(Select.Changed, ".log-container")
    def _container_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = str(event.value)
        if value != self._container:
            self._container = value
            self._rebuild()

    @on(Input.Changed, ".log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._filter = event.value
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.15, self._rebuild)  # debounce typing

    @on(Input.Submitted, ".log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._filter = event.value
        self._rebuild()
        self._log.focus()

    # internals ---------------------------------------------------------------------------------------
    def _mark_stale(self) -> None:
        self._stale = True
        self._schedule_drain()

    def _accepts(self, source: str, container: str) -> bool:
        return (self._pod == ALL or source == self._pod) and (self._container == ALL or not container
                                                              or container == self._container)

    def _prefix(self, source: str, container: str) -> str:
        short = CONTAINER_SHORT.get(container, container)
        if self._pod == ALL and self._sources:
            label = self._labels.get(source, source)
            if self._container == ALL and container:
                return f"{label} {short:<4}│ "
            return f"{label}│ "
        if self._container == ALL and container and self.pickers:
            return f"{short:<4}│ "
        return ""

    def _format(self, chunks: Iterable[tuple[str, str, Sequence[str]]]) -> list[str]:
        needle = self._filter
        lower = needle.islower()
        out: list[str] = []
        for source, container, lines in chunks:
            if not self._accepts(source, container):
                continue
            p = self._prefix(source, container)
            if not needle:
                if p:
                    out += [p + line for line in lines]
                else:
                    out += lines
            elif lower:
                out += [p + line for line in lines if needle in line.lower()]
            else:
                out += [p + line for line in lines if needle in line]
        return out

    def _drain(self) -> None:
        self.drains += 1
        with self._lock:
            chunks, self._pending = self._pending, []
            self._pending_lines = 0
        log = self._log
        visible = log.is_on_screen
        if chunks:
            n = 0
            ring = self._ring
            for chunk in chunks:
                ring.append(chunk)
                n += len(chunk[2])
            self.received += n
            self._ring_count += n
            while self._ring_count > self.ring_lines and ring:
                excess = self._ring_count - self.ring_lines
                source, container, lines = ring[0]
                if len(lines) <= excess:
                    ring.popleft()
                    self._ring_count -= len(lines)
                else:
                    ring[0] = (source, container, lines[excess:])
                    self._ring_count -= excess
        if not visible:
            if chunks:
                self._stale = True
            self._update_status()
            return
        if self._stale:
            self._rebuild()
            return
        at_end = log.is_vertical_scroll_end
        if self._following and not at_end:
            if log.scroll_y < self._pinned_y - 0.5:
                self._following = False  # the user scrolled up: hold the view still
            else:
                self._pin()  # the pane was resized or re-laid out: stay at the bottom
                at_end = True
        elif not self._following and at_end:
            self._rebuild()  # back at the bottom (End, or scrolled down): follow again
            return
        if chunks:
            if self._following:
                out = self._format(chunks)
                if out:
                    log.write_lines(out, scroll_end=True)
                    self.written += len(out)
                    self._pinned_y = log.scroll_y
            else:
                self._unseen += len(self._format(chunks))
        self._update_status()

    def _pin(self) -> None:
        self._log.scroll_end(animate=False, immediate=True)
        self._pinned_y = self._log.scroll_y

    def on_resize(self) -> None:
        if self._following:
            self.call_after_refresh(self._pin)
        self._schedule_drain()  # (shown again after being hidden: Textual may send a Resize, not a Show)

    def _rebuild(self) -> None:
        """Show the newest `max_lines` matching lines of the ring and follow."""
        parts: list[list[str]] = []
        count = 0
        for chunk in reversed(self._ring):
            got = self._format((chunk,))
            if got:
                parts.append(got)
                count += len(got)
                if count >= self.max_lines:
                    break
        out = [line for part in reversed(parts) for line in part][-self.max_lines:]
        log = self._log
        log.clear()
        if out:
            log.write_lines(out, scroll_end=True)
            self.written += len(out)
        self._pin()
        self._following = True
        self._unseen = 0
        self._stale = False
        self._update_status(force=True)

    def status_text(self) -> str:
        parts = []
        if self.received == 0:
            parts.append(self.placeholder or "waiting for log lines")
        elif self._following:
            parts.append(f"● following · {self.received:,} lines")
        else:
            parts.append(f"⏸ paused: {self._unseen:,} new lines (End to follow)")
        if self._filter:
            parts.append(f"filter {self._filter!r}")
        if self._dropped:
            parts.append(f"{self._dropped:,} dropped (display behind)")
        if self._stream_states:
            parts.append(stream_summary(self._stream_states))
        return " · ".join(parts)

    def _update_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_at < 0.25:
            self._schedule_drain(0.25 - (now - self._status_at))  # (then it says it)
            return
        self._status_at = now
        text = self.status_text()
        if text != self._status_text:
            self._status_text = text
            self._status.update(Content(text), layout=False)  # one line of fixed size: no re-layout of the page


def stream_summary(states: Mapping[str, str]) -> str:
    """'streams: 3 live, r2 main reconnecting (attempt 2, ...)' (short: the status is one line)."""
    following = [k for k, v in states.items() if v == "following"]
    ended = [k for k, v in states.items() if v.startswith(("terminated", "pod deleted", "stopped"))]
    other = [(k, v) for k, v in states.items() if k not in following and k not in ended]
    parts = []
    if following:
        parts.append(f"{len(following)} live")
    if ended:
        parts.append(f"{len(ended)} ended")
    for k, v in other:
        parts.append(f"{k} {v}")
    return "streams: " + ", ".join(parts) if parts else ""


__all__ = ["LogPane", "PaneLog", "ALL", "stream_summary"]
