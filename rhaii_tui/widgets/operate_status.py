"""The Operate page's status pane: the deployment at a glance (steps/operate.py's OpsStatus).

`pane.show(status)` renders the rows (`OpsStatus.lines()`); `pane.show_hint(text)` the cost of the
action being considered under them. Plain Content (never markup): names come from the cluster.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

LABEL_WIDTH = 12


def status_content(status: Any) -> Content:
    if status is None:
        return Content.styled("Reading the deployment…", "$text-muted")
    parts: list[Any] = []
    for i, (label, value) in enumerate(status.lines()):
        if i:
            parts.append("\n")
        style = "bold $warning" if label in ("Cost now", "Problem") else ""
        parts += [(f"{label:<{LABEL_WIDTH}}", "bold $text-muted"), (str(value), style)]
    return Content.assemble(*parts)


class OpsStatusPane(Vertical):
    """Status rows and the 'cost after' hint."""

    DEFAULT_CSS = """
    OpsStatusPane {
        height: auto;
        #ops-status-rows { height: auto; }
        #ops-hint { height: auto; color: $accent; margin: 1 0 0 0; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.status: Any = None
        self._shown: Content | None = None
        self._hint = ""

    def compose(self) -> ComposeResult:
        yield Static(status_content(None), id="ops-status-rows")
        yield Static("", id="ops-hint")

    def show(self, status: Any) -> None:
        """Only a changed text is updated; with as many rows as before, each fitting the width (e.g.
        the running spend), without a re-layout of the page."""
        self.status = status
        content = status_content(status)
        old = self._shown
        if old is not None and content.plain == old.plain:
            return
        rows = self.query_one("#ops-status-rows", Static)
        width = rows.content_size.width
        same_shape = (old is not None and width > 0 and len(content.plain.split("\n")) == len(old.plain.split("\n"))
                      and all(c.cell_length <= width for c in (*content.split("\n"), *old.split("\n"))))
        self._shown = content
        rows.update(content, layout=not same_shape)

    def show_hint(self, text: str) -> None:
        if text == self._hint:
            return
        self._hint = text
        self.query_one("#ops-hint", Static).update(Content(text))

    @property
    def text(self) -> str:
        return str(self.query_one("#ops-status-rows", Static).render())
