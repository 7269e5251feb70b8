"""Timeline: the express run as a chart, one row per piece of work, bars on a time axis in minutes.

Fed with `steps.express.PieceEvent`s (piece id, status, seconds since the run started on the
cloud's clock, message); it draws, per piece (steps/graph.py `Piece`): the critical-path marker,
a status mark, the guide step it belongs to, its title, a bar and how long it took. A piece that
waits for what it needs shows a dotted band until it runs; a running bar grows with the latest
time any event reported (no wall clock here: the same events always draw the same chart). The
axis scales to the run and the bars to the width; titles are cut only on very narrow terminals.

    timeline = Timeline(run.pieces)
    timeline.apply(event)                 # from the UI thread, one per PieceEvent
    timeline.set_critical(run.critical_path())
    on_timeline_selected(self, event)     # event.step: the guide step of the chosen row (enter / click)

The rows are an OptionList: up/down/home/end and enter, or a click, choose one. The highlighted
row's last message is shown under the legend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..steps.podlife import fmt_duration

# status -> (glyph, style, bar style)
STATUS_LOOK: dict[str, tuple[str, str, str]] = {
    "pending": ("○", "$text-muted", "$text-muted"),
    "waiting": ("…", "$text-muted", "$text-muted"),
    "running": ("◐", "bold $warning", "$warning"),
    "done": ("✔", "bold $success", "$success"),
    "failed": ("✘", "bold $error", "$error"),
    "skipped": ("✔", "$text-muted", "$text-muted"),  # done before this run (express: nothing to redo)
    "stopped": ("■", "$text-muted", "$text-muted"),
}
ENDED = ("done", "failed", "skipped", "stopped")
CRITICAL_MARK = "◆"
CRITICAL_STYLE = "bold $accent"
BAR = "█"
WAIT = "·"
MIN_SPAN_S = 300.0  # the axis shows at least 5 minutes
TICK_MINUTES = (1, 2, 5, 10, 15, 20, 30, 60, 120)
TITLE_MAX = 30  # titles in steps/graph.py are up to 28 ("First completion via gateway")
TITLE_MIN = 10
TIME_WIDTH = 7  # "12m05s", "waiting"
LEGEND = Content.assemble(
    (CRITICAL_MARK, CRITICAL_STYLE), " critical path  ", (BAR, "$warning"), " running  ",
    (BAR, "$success"), " done  ", (BAR, "$error"), " failed  ", (WAIT * 2, "$text-muted"),
    " waiting  ", ("axis: minutes", "italic"))


@dataclass
class TimelineRow:
    """What the chart knows of one piece of work."""

    id: str
    title: str
    step: int
    status: str = "pending"
    waiting_since: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    message: str = ""

    def apply(self, status: str, at_s: float, message: str = "") -> None:
        if status == "waiting":
            if self.waiting_since is None:
                self.waiting_since = at_s
        elif status == "running":
            if self.start_s is None:
                self.start_s = at_s
            self.end_s = None
        elif status in ENDED:
            if self.start_s is None and status in ("done", "failed"):
                self.start_s = at_s  # ended without a running event: a mark where it ended
            self.end_s = at_s
        self.status = status if status in STATUS_LOOK else self.status
        if message:
            self.message = message

    def took(self, now_s: float) -> float | None:
        if self.start_s is None:
            return None
        return (self.end_s if self.end_s is not None else now_s) - self.start_s


@dataclass(frozen=True)
class Layout:
    """Where each column of a row goes at a given width."""

    title: int  # title column width
    bar: int    # bar column width

    @classmethod
    def for_width(cls, width: int, longest_title: int = TITLE_MAX) -> "Layout":
        title = max(TITLE_MIN, min(longest_title, TITLE_MAX))
        fixed = 2 + 2 + 3 + 1 + 1 + TIME_WIDTH  # critical mark, status mark, step, spaces, time
        bar = width - fixed - title
        if bar < 20:  # narrow: the title gives way first (down to TITLE_MIN), the bar keeps 20
            title = max(TITLE_MIN, title - (20 - bar))
            bar = max(5, width - fixed - title)
        return cls(title, bar)

    @property
    def bar_offset(self) -> int:
        return 2 + 2 + 3 + self.title + 1


def axis_span(now_s: float, bar: int) -> tuple[float, int]:
    """(span of the axis in seconds, minutes between labels): at least MIN_SPAN_S and a little past
    `now_s` (a running bar does not touch the edge), a whole number of ticks, no more labels than the
    bar has room for (6 cells each)."""
    seconds = max(MIN_SPAN_S, now_s * 1.05)
    room = max(1, bar // 6)
    for k in TICK_MINUTES:
        span = math.ceil(seconds / (k * 60)) * k * 60
        if span / (k * 60) <= room:
            return float(span), k
    k = TICK_MINUTES[-1]
    return float(math.ceil(seconds / (k * 60)) * k * 60), k


def _cell(t: float, span: float, bar: int) -> int:
    return min(bar, max(0, int(t / span * bar)))


def axis_content(layout: Layout, now_s: float) -> Content:
    span, k = axis_span(now_s, layout.bar)
    cells = [" "] * layout.bar
    minute = 0
    while minute * 60 <= span:
        text = str(minute)
        at = _cell(minute * 60, span, layout.bar)
        if at + len(text) > layout.bar:
            at = layout.bar - len(text)
        if all(c == " " for c in cells[max(0, at - 1):at + len(text) + 1]):
            cells[at:at + len(text)] = list(text)
        minute += k
    head = "piece of work".ljust(2 + 2 + 3 + layout.title)[: 2 + 2 + 3 + layout.title]
    return Content.assemble((head, "bold"), " ", ("".join(cells), "$text-muted"), " ",
                            ("took".rjust(TIME_WIDTH), "bold"))


def row_content(row: TimelineRow, layout: Layout, now_s: float, critical: bool) -> Content:
    glyph, style, bar_style = STATUS_LOOK.get(row.status, STATUS_LOOK["pending"])
    span, _k = axis_span(now_s, layout.bar)
    title = row.title if len(row.title) <= layout.title else row.title[: layout.title - 1] + "…"
    parts: list[Any] = [
        (CRITICAL_MARK if critical else " ", CRITICAL_STYLE), " ",
        (glyph, style), " ",
        (f"{row.step:>2} " if row.step else "   ", "$text-muted"),
        (title.ljust(layout.title), "bold" if critical else ""), " ",
    ]
    cells: list[tuple[str, str]] = [(" ", "")] * layout.bar
    if row.waiting_since is not None:
        until = row.start_s if row.start_s is not None else (row.end_s if row.end_s is not None else now_s)
        a, b = _cell(row.waiting_since, span, layout.bar), _cell(until, span, layout.bar)
        for i in range(a, b):
            cells[i] = (WAIT, "$text-muted")
    if row.start_s is not None and row.status != "skipped":
        end = row.end_s if row.end_s is not None else now_s
        a = min(_cell(row.start_s, span, layout.bar), layout.bar - 1)
        b = max(a + 1, min(layout.bar, math.ceil(end / span * layout.bar)))
        for i in range(a, b):
            cells[i] = (BAR, bar_style)
    for text, st in _runs(cells):
        parts.append((text, st))
    parts += [" ", (_took_text(row, now_s).rjust(TIME_WIDTH), style if row.status == "failed" else "$text-muted")]
    return Content.assemble(*parts)


def _runs(cells: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ch, st in cells:
        if out and out[-1][1] == st:
            out[-1] = (out[-1][0] + ch, st)
        else:
            out.append((ch, st))
    return out


def _took_text(row: TimelineRow, now_s: float) -> str:
    if row.status in ("pending",):
        return ""
    if row.status == "skipped":
        return "already"
    if row.status in ("waiting", "stopped") and row.start_s is None:
        return row.status
    took = row.took(now_s)
    return fmt_duration(took) if took is not None else ""


class TimelineRows(OptionList):
    """The rows of the timeline (one option per piece)."""

    DEFAULT_CSS = """
    TimelineRows {
        height: auto;
        max-height: 100%;
        border: none;
        padding: 0;
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
        text-wrap: nowrap;
        text-overflow: clip;
        &:focus { border: none; }
        & > .option-list--option { padding: 0 1; }
    }
    """

    BINDINGS = [Binding("space", "select", "Open", show=False)]

    def text_width(self) -> int:
        """Cells available for a row's text (80 columns before the first layout)."""
        if not self.is_mounted or self.scrollable_content_region.width <= 0:
            return 78
        padding = self.get_component_styles("option-list--option").padding
        return self.scrollable_content_region.width - padding.width


class Timeline(Vertical):
    """The express timeline. Posts `Timeline.Selected(step, piece)` when a row is chosen."""

    DEFAULT_CSS = """
    Timeline {
        height: auto;
        max-height: 100%;
        #tl-axis { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: clip; }
        #tl-legend { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        #tl-detail { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    }
    """

    class Selected(Message):
        """A row was chosen (enter or click): `step` is its guide step (its page's number)."""

        def __init__(self, step: int, piece: str) -> None:
            super().__init__()
            self.step = step
            self.piece = piece

    def __init__(self, pieces: Iterable[Any], *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: dict[str, TimelineRow] = {
            p.id: TimelineRow(p.id, p.title, int(p.step)) for p in pieces}
        self.critical: frozenset[str] = frozenset()
        self.critical_path: list[str] = []
        self.now_s = 0.0
        self._axis_plain = ""
        self._layout: Layout | None = None

    def compose(self) -> ComposeResult:
        layout = self.layout_now()
        yield Static(axis_content(layout, self.now_s), id="tl-axis")
        yield TimelineRows(*[Option(self._row(r, layout), id=r.id) for r in self.rows.values()], id="tl-rows")
        yield Static(LEGEND, id="tl-legend")
        yield Static("", id="tl-detail")

    # API -------------------------------------------------------------------------------------
    def apply(self, event: Any) -> None:
        """One PieceEvent (UI thread)."""
        self.apply_all((event,))

    def apply_all(self, events: Iterable[Any]) -> None:
        changed: set[str] = set()
        for ev in events:
            row = self.rows.get(ev.piece)
            if row is None:  # a piece this chart was not told of: shown anyway, last
                row = self.rows[ev.piece] = TimelineRow(ev.piece, ev.piece, 0)
                if self.is_mounted:
                    self.query_one(TimelineRows).add_option(Option(Content(ev.piece), id=ev.piece))
            row.apply(str(ev.status), float(ev.at_s), str(ev.message or ""))
            self.now_s = max(self.now_s, float(ev.at_s))
            changed.add(row.id)
        self._redraw(changed)

    def set_critical(self, ids: Iterable[str]) -> None:
        """The pieces on the critical path, in order (first to last)."""
        self.critical_path = list(ids)
        critical = frozenset(self.critical_path)
        if critical != self.critical:
            changed = self.critical ^ critical
            self.critical = critical
            self._redraw(changed)

    def set_now(self, now_s: float) -> None:
        """The run's clock moved on (bars of running pieces grow)."""
        if now_s > self.now_s:
            self.now_s = now_s
            self._redraw(set())

    def layout_now(self) -> Layout:
        width = self.query_one(TimelineRows).text_width() if self.is_mounted else 78
        longest = max((len(r.title) for r in self.rows.values()), default=TITLE_MIN)
        return Layout.for_width(width, longest)

    def row_text(self, piece: str) -> str:
        """The plain text of a piece's row (tests, screen readers)."""
        return self._row(self.rows[piece], self.layout_now()).plain

    @property
    def axis_text(self) -> str:
        return axis_content(self.layout_now(), self.now_s).plain

    def highlighted_piece(self) -> str | None:
        rows = self.query_one(TimelineRows)
        if rows.highlighted is None:
            return None
        return rows.get_option_at_index(rows.highlighted).id

    # drawing ---------------------------------------------------------------------------------
    def _row(self, row: TimelineRow, layout: Layout) -> Content:
        return row_content(row, layout, self.now_s, row.id in self.critical)

    def _redraw(self, changed: set[str]) -> None:
        """Every row when the axis moved (its span or the width), else only the changed ones."""
        if not self.is_mounted:
            return
        layout = self.layout_now()
        axis = axis_content(layout, self.now_s)
        moved = axis.plain != self._axis_plain or layout != self._layout
        self._axis_plain, self._layout = axis.plain, layout
        if moved:
            self.query_one("#tl-axis", Static).update(axis)
        rows = self.query_one(TimelineRows)
        anything_running = any(r.status in ("running", "waiting") for r in self.rows.values())
        for row in self.rows.values():
            if moved or row.id in changed or (anything_running and row.end_s is None):
                prompt = self._row(row, layout)
                old = rows.get_option(row.id).prompt
                if not (isinstance(old, Content) and old.plain == prompt.plain and old.spans == prompt.spans):
                    rows.replace_option_prompt(row.id, prompt)
        self._show_detail()

    def on_resize(self) -> None:
        self.call_after_refresh(self._redraw, set())

    def on_mount(self) -> None:
        self.call_after_refresh(self._redraw, set())

    def _show_detail(self) -> None:
        piece = self.highlighted_piece() if self.is_mounted else None
        row = self.rows.get(piece) if piece else None
        detail = self.query_one("#tl-detail", Static)
        if row is None:
            detail.update(Content.styled("↑↓ choose a piece of work, enter (or a click) opens its step's page.",
                                         "$text-muted"))
            return
        glyph, style, _bar = STATUS_LOOK.get(row.status, STATUS_LOOK["pending"])
        where = f"step {row.step}" if row.step else "no step page"
        detail.update(Content.assemble((f"{glyph} ", style), (row.title, "bold"), (f" ({where})", "$text-muted"),
                                       ": " if row.message else "", row.message))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        row = self.rows.get(event.option.id or "")
        if row is not None:
            self.post_message(self.Selected(row.step, row.id))


__all__ = ["Timeline", "TimelineRow", "TimelineRows", "Layout", "axis_span", "axis_content", "row_content",
           "LEGEND", "STATUS_LOOK"]
