"""Checklist: one row per check (mark, title, status, detail, fix), filled in as results arrive.

    checklist = Checklist([("credentials", "Google credentials"), ...], id="checks")
    checklist.set_running()                          # every row: "checking…"
    checklist.set_result("quota", "fail", detail, fix)
    checklist.status("quota")  -> "fail"
    checklist.row_text("quota") -> the row as plain text (tests, copy)

Row states: "pending" (not checked), "running" (checking…), and the check statuses "pass",
"warn", "fail", "skip" ("not checked": an earlier check failed). A row never says pass unless a
result said so. Rows are focusable (up/down move between them); Enter or a click copies the
row's fix to the clipboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.events import Click
from textual.message import Message
from textual.widgets import Label, Static

# state -> (glyph, style, word)
ROW_MARKS: dict[str, tuple[str, str, str]] = {
    "pending": ("○", "$text-muted", "not checked"),
    "running": ("◌", "$accent", "checking…"),
    "pass": ("✔", "bold $success", "pass"),
    "warn": ("▲", "bold $warning", "warning"),
    "fail": ("✘", "bold $error", "failed"),
    "skip": ("⊘", "$text-muted", "not checked"),
}


@dataclass
class Row:
    id: str
    title: str
    status: str = "pending"
    detail: str = ""
    fix: str = ""


def one_line(text: str) -> str:
    """Collapse whitespace and line breaks: a detail or fix reads as one line (wrapped by width)."""
    return " ".join(str(text or "").split())


def mark_content(row: Row) -> Content:
    glyph, style, _word = ROW_MARKS.get(row.status, ROW_MARKS["pending"])
    return Content.styled(glyph, style)


def body_content(row: Row) -> Content:
    """Title and status word, the detail after it; the fix on its own line for warn/fail/skip."""
    _glyph, style, word = ROW_MARKS.get(row.status, ROW_MARKS["pending"])
    parts: list = [(row.title, "bold"), ("  ", ""), (word, style)]
    detail = one_line(row.detail)
    if detail:
        parts += [("  ", ""), (detail, "$text-muted" if row.status in ("pending", "skip") else "")]
    fix = one_line(row.fix)
    if fix and row.status in ("warn", "fail", "skip"):
        parts += ["\n", ("Fix: ", "bold $warning"), fix]
    return Content.assemble(*parts)


class CheckRow(Horizontal, can_focus=True):
    """One check: the mark in its own column, so wrapped lines stay aligned."""

    DEFAULT_CSS = """
    CheckRow {
        height: auto;
        .check-mark { width: 2; }
        .check-body { width: 1fr; }
        &:focus { background: $block-cursor-background 25%; }
    }
    """

    def __init__(self, row: Row) -> None:
        super().__init__(id=f"check-{row.id}", classes=f"-{row.status}")
        self.row = row

    def compose(self) -> ComposeResult:
        yield Label(mark_content(self.row), classes="check-mark")
        yield Static(body_content(self.row), classes="check-body")

    def refresh_row(self) -> None:
        for status in ROW_MARKS:
            self.set_class(self.row.status == status, f"-{status}")
        if self.is_mounted:
            self.query_one(".check-mark", Label).update(mark_content(self.row))
            self.query_one(".check-body", Static).update(body_content(self.row))

    def on_click(self, event: Click) -> None:
        self.focus()
        checklist = self.parent
        if isinstance(checklist, Checklist):
            checklist.copy_fix(self.row.id)


class Checklist(Vertical):
    """The checks as rows."""

    DEFAULT_CSS = """
    Checklist {
        height: auto;
    }
    """

    BINDINGS = [
        Binding("down,j", "move(1)", "Next", show=False),
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("enter", "copy_fix", "Copy fix", tooltip="Copy the fix of the highlighted check"),
    ]

    class FixCopied(Message):
        """A row's fix was copied to the clipboard."""

        def __init__(self, check_id: str, fix: str) -> None:
            super().__init__()
            self.check_id = check_id
            self.fix = fix

    def __init__(self, items: Sequence[tuple[str, str]], *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows: dict[str, Row] = {cid: Row(cid, title) for cid, title in items}

    def compose(self) -> ComposeResult:
        for row in self._rows.values():
            yield CheckRow(row)

    # state -----------------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return list(self._rows)

    def status(self, check_id: str) -> str:
        return self._rows[check_id].status

    def row(self, check_id: str) -> Row:
        return self._rows[check_id]

    def row_text(self, check_id: str) -> str:
        row = self._rows[check_id]
        return f"{mark_content(row).plain} {body_content(row).plain}"

    def _show(self, check_id: str) -> None:
        if self.is_mounted:
            self.query_one(f"#check-{check_id}", CheckRow).refresh_row()

    def set_result(self, check_id: str, status: str, detail: str = "", fix: str = "") -> None:
        if check_id not in self._rows:
            return
        row = self._rows[check_id]
        row.status, row.detail, row.fix = status, detail, fix
        self._show(check_id)

    def set_all(self, status: str, detail: str = "", ids: Iterable[str] | None = None) -> None:
        """Every row (or `ids`) to "pending" or "running", forgetting earlier results."""
        for cid in list(ids) if ids is not None else list(self._rows):
            if cid in self._rows:
                row = self._rows[cid]
                row.status, row.detail, row.fix = status, detail, ""
                self._show(cid)

    def set_running(self) -> None:
        self.set_all("running")

    def set_pending(self, detail: str = "") -> None:
        self.set_all("pending", detail)

    # keyboard and copying -----------------------------------------------------------------------
    def _focused_row(self) -> CheckRow | None:
        focused = self.app.focused
        return focused if isinstance(focused, CheckRow) and focused.parent is self else None

    def action_move(self, delta: int) -> None:
        rows = list(self.query(CheckRow))
        current = self._focused_row()
        if not rows:
            return
        index = rows.index(current) if current in rows else -1
        target = rows[max(0, min(len(rows) - 1, index + delta))]
        target.focus()
        target.scroll_visible()

    def action_copy_fix(self) -> None:
        current = self._focused_row()
        if current is not None:
            self.copy_fix(current.row.id)

    def copy_fix(self, check_id: str) -> None:
        row = self._rows.get(check_id)
        if row is None:
            return
        if not row.fix or row.status not in ("warn", "fail", "skip"):
            self.notify(f"{row.title}: nothing to fix.", timeout=3, markup=False)
            return
        self.app.copy_to_clipboard(one_line(row.fix))
        self.notify(f"The fix for “{row.title}” is on the clipboard.", title="Copied", timeout=3, markup=False)
        self.post_message(self.FixCopied(check_id, row.fix))
