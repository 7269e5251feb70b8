"""CheckRows: pass/fail rows with their evidence and, when a row fails, the fix.

Each row: a mark (✔ PASS, ✘ FAIL, ? n/a, ○ pending, ◐ running), the check's title, and under it
the evidence (status code, latency, the first words of the answer...) and the fix. Rows are keyed
(the check's `key`); a result replaces the row with the same key. Planned rows can be shown
before a run ("pending"), so the user sees what will be checked; a planned key ending in `*`
("replica:*") is a placeholder that the first matching result ("replica:pod-a") replaces, later
ones ("replica:pod-b") land right after it.

    rows = CheckRows()
    rows.plan([("health", "GET /health"), ("replica:*", "Each replica answers on its own")])
    rows.show(check)      # any object with key, title, ok (True/False/None), evidence, fix
    rows.finish()         # rows still pending become "not run"

Text is plain (never parsed as markup): evidence comes from the cluster and the service.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

# state -> (mark, style)
ROW_MARKS: dict[str, tuple[str, str]] = {
    "pass": ("✔ PASS", "bold $success"),
    "fail": ("✘ FAIL", "bold $error"),
    "unknown": ("? n/a", "bold $warning"),
    "pending": ("○", "$text-muted"),
    "running": ("◐ …", "bold $accent"),
    "not_run": ("– not run", "$text-muted"),
}


def row_state(ok: bool | None) -> str:
    return {True: "pass", False: "fail"}.get(ok, "unknown")  # type: ignore[arg-type]


def row_body(title: str, evidence: str = "", fix: str = "", state: str = "pending") -> Content:
    title_style = "bold" if state in ("pass", "fail", "unknown") else "$text-muted"
    parts: list[Any] = [(title, title_style)]
    if evidence:
        parts += ["\n", (evidence, "$text-muted" if state == "pass" else "")]
    if fix:
        parts += ["\n", ("Fix: ", "bold $warning"), fix]
    return Content.assemble(*parts)


class CheckRow(Horizontal):
    """One row: mark and body."""

    DEFAULT_CSS = """
    CheckRow {
        height: auto;
        margin: 0 0 0 0;
        .check-mark { width: 10; padding: 0 1 0 0; text-wrap: nowrap; }
        .check-body { width: 1fr; }
    }
    """

    def __init__(self, key: str, title: str, state: str = "pending", evidence: str = "", fix: str = "") -> None:
        super().__init__(classes=f"check-row -{state}")
        self.key = key
        self.title = title
        self.state = state
        self.evidence = evidence
        self.fix = fix

    def compose(self) -> ComposeResult:
        yield Label(self._mark(), classes="check-mark")
        yield Static(row_body(self.title, self.evidence, self.fix, self.state), classes="check-body")

    def _mark(self) -> Content:
        text, style = ROW_MARKS.get(self.state, ROW_MARKS["pending"])
        return Content.styled(text, style)

    def set(self, state: str, title: str | None = None, evidence: str = "", fix: str = "") -> None:
        self.remove_class(f"-{self.state}")
        self.state = state
        self.add_class(f"-{state}")
        if title is not None:
            self.title = title
        self.evidence, self.fix = evidence, fix
        if self.is_mounted:
            self._sync()

    def on_mount(self) -> None:
        self._sync()  # a result may have come between compose and mount: show the row as it is now

    def _sync(self) -> None:
        self.query_one(".check-mark", Label).update(self._mark())
        self.query_one(".check-body", Static).update(row_body(self.title, self.evidence, self.fix, self.state))

    @property
    def plain(self) -> str:
        """The row as one line of plain text (tests, copy)."""
        text, _ = ROW_MARKS.get(self.state, ROW_MARKS["pending"])
        return " ".join(x for x in (text, self.title, self.evidence, f"Fix: {self.fix}" if self.fix else "") if x)


class CheckRows(VerticalScroll):
    """Keyed pass/fail rows with evidence (see the module docstring)."""

    DEFAULT_CSS = """
    CheckRows {
        height: 1fr;
        padding: 0 1 0 0;
        CheckRow { margin: 0 0 0 0; }
    }
    """

    def __init__(self, planned: Sequence[tuple[str, str]] = (), *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._planned = list(planned)
        self._rows: dict[str, CheckRow] = {}
        self._order: list[str] = []   # keys in display order
        self.results: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        for key, title in self._planned:
            row = CheckRow(key, title)
            self._rows[key] = row
            self._order.append(key)
            yield row

    # API ---------------------------------------------------------------------------------------
    def plan(self, planned: Iterable[tuple[str, str]]) -> None:
        """Replace every row with the planned ones, all pending."""
        self.remove_children()
        self._rows.clear()
        self._order.clear()
        self.results.clear()
        rows = []
        for key, title in planned:
            row = CheckRow(key, title)
            self._rows[key] = row
            self._order.append(key)
            rows.append(row)
        if rows:
            self.mount_all(rows)

    def start(self) -> None:
        """A run began: the first pending row is running."""
        self._advance()

    def show(self, check: Any) -> None:
        """Show a result (key, title, ok, evidence, fix)."""
        key = str(getattr(check, "key", ""))
        ok = getattr(check, "ok", None)
        state = row_state(ok)
        title = str(getattr(check, "title", key))
        evidence = str(getattr(check, "evidence", "") or "")
        fix = str(getattr(check, "fix", "") or "") if ok is not True else ""
        self.results[key] = check
        row = self._rows.get(key)
        if row is not None:
            row.set(state, title, evidence, fix)
        else:
            row = CheckRow(key, title, state, evidence, fix)
            anchor = self._anchor_for(key)
            if anchor is None:
                self._order.append(key)
                self.mount(row)
            else:
                where, how = anchor
                ref = self._rows[where]
                idx = self._order.index(where)
                if how == "after":
                    self._order.insert(idx + 1, key)
                    self.mount(row, after=ref)
                else:
                    self._order.insert(idx, key)
                    self.mount(row, before=ref)
                    if how == "replace":
                        self._drop(where)
            self._rows[key] = row
        self._advance()

    def finish(self) -> None:
        """The run ended: rows still pending or running were not run."""
        for key in list(self._order):
            row = self._rows[key]
            if row.state in ("pending", "running"):
                if key.endswith("*"):
                    row.set("not_run", evidence="")
                else:
                    row.set("not_run", evidence=row.evidence)

    def rows(self) -> list[CheckRow]:
        return [self._rows[k] for k in self._order]

    def row(self, key: str) -> CheckRow | None:
        return self._rows.get(key)

    @property
    def plain(self) -> str:
        return "\n".join(r.plain for r in self.rows())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows():
            out[r.state] = out.get(r.state, 0) + 1
        return out

    # plumbing ------------------------------------------------------------------------------------
    def _anchor_for(self, key: str) -> tuple[str, str] | None:
        """Where an unplanned row goes: (key of a row, "replace" a placeholder / "after" the last row
        with the same prefix / "before" the first row still waiting), or None (append)."""
        for k in self._order:
            if k.endswith("*") and key.startswith(k[:-1]):
                return k, "replace"
        prefix = key.split(":", 1)[0] + ":" if ":" in key else None
        if prefix:
            same = [k for k in self._order if k.startswith(prefix) and not k.endswith("*")]
            if same:
                return same[-1], "after"
        waiting = next((k for k in self._order if self._rows[k].state in ("pending", "running")), None)
        if waiting is not None:
            return waiting, "before"
        return None

    def _drop(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if key in self._order:
            self._order.remove(key)
        if row is not None:
            row.remove()

    def _advance(self) -> None:
        """Mark the first pending row as running (the checks run in the planned order)."""
        for k in self._order:
            row = self._rows[k]
            if row.state == "running":
                return
            if row.state == "pending":
                row.set("running", evidence=row.evidence)
                return


__all__ = ["CheckRow", "CheckRows", "ROW_MARKS", "row_body", "row_state"]
