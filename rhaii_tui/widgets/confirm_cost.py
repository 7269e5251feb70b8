"""ConfirmCost: the one confirmation path for billable or destructive actions.

Shows what will be created or deleted, the cost per day, and asks the user to type a word
(the cluster name) before the confirm button works. Dismisses with True (confirmed) or False.

    ok = await self.app.push_screen_wait(ConfirmCost(
        "Create the GKE cluster and TPU node pool",
        [f"cluster {cfg.cluster} in {cfg.zone}", f"node pool tpu-pool: {cfg.replicas} x ct6e-standard-4t"],
        cfg.cost_per_day(), cfg.cluster))          # from a worker

    self.app.push_screen(ConfirmCost(...), callback=on_answer)   # from a handler
"""

from __future__ import annotations

from typing import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from .modal import WizardModal
from textual.widgets import Button, Input, Label, Static


def cost_text(cost_per_day: float | None) -> Content:
    if cost_per_day is None:
        return Content("")
    if cost_per_day <= 0:
        return Content.assemble(("Cost: ", "bold"), "no added charges")
    return Content.assemble(
        ("Cost: ", "bold"), (f"≈ ${cost_per_day:,.2f}/day", "bold $warning"),
        (f" (≈ ${cost_per_day / 24:,.2f}/hour, ≈ ${cost_per_day * 30:,.0f}/month)", "$text-muted"))


class ConfirmCost(WizardModal[bool]):
    """Type `confirm_word` to confirm a costly or destructive action. Result: bool."""

    DEFAULT_CSS = """
    ConfirmCost {
        align: center middle;
        background: $background 70%;
        #confirm-box {
            width: 76;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $warning;
            border-title-style: bold;
            background: $surface;
            padding: 1 2;
        }
        &.-destructive #confirm-box { border: thick $error; }
        #confirm-what { color: $text-muted; }
        #confirm-scroll { height: auto; margin: 0 0 1 0; scrollbar-size-vertical: 1; }
        #confirm-lines { height: auto; }
        #confirm-cost { margin: 0 0 1 0; }
        #confirm-prompt { margin: 0 0 0 0; }
        #confirm-input { margin: 0 0 1 0; }
        #confirm-buttons { height: auto; align-horizontal: right; }
        #confirm-buttons Button { margin: 0 0 0 2; }
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, lines: Iterable[str], cost_per_day: float | None, confirm_word: str,
                 *, confirm_label: str = "Confirm", destructive: bool = False,
                 what: str | None = None) -> None:
        super().__init__(classes="-destructive" if destructive else None)
        self.confirm_title = title
        self.lines = [str(line) for line in lines]
        self.cost_per_day = cost_per_day
        self.confirm_word = confirm_word
        self.confirm_label = confirm_label
        self.destructive = destructive
        self.what = what or ("This will delete:" if destructive else "This will create:")

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self.confirm_title
            yield Label(self.what, id="confirm-what")
            with VerticalScroll(id="confirm-scroll", can_focus=False):
                yield Static(Content("\n".join(f"• {line}" for line in self.lines)), id="confirm-lines")
            if self.cost_per_day is not None:
                yield Static(cost_text(self.cost_per_day), id="confirm-cost")
            yield Label(Content.assemble("Type ", (self.confirm_word, "bold"), " to confirm:"),
                        id="confirm-prompt")
            yield Input(placeholder="type it here", id="confirm-input", compact=True)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(self.confirm_label, id="confirm", compact=True, disabled=True,
                             variant="error" if self.destructive else "warning")

    def on_mount(self) -> None:
        self._fit()
        self.query_one("#confirm-input", Input).focus()

    def on_resize(self) -> None:
        self._fit()

    # rows around the list: border 2, padding 2, heading 1, list margin 1, prompt 1, field 2, buttons 1
    # (+ the cost line and its margin)
    _ROWS_AROUND = 10

    def _fit(self) -> None:
        """A long list scrolls inside the box so the field and the buttons stay on a short terminal."""
        around = self._ROWS_AROUND + (2 if self.cost_per_day is not None else 0)
        self.query_one("#confirm-scroll").styles.max_height = max(2, self.size.height - around)

    @property
    def matches(self) -> bool:
        return self.query_one("#confirm-input", Input).value.strip() == self.confirm_word

    @on(Input.Changed, "#confirm-input")
    def _changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not self.matches

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.matches:
            self.dismiss(True)
        else:
            self.notify(f"Type {self.confirm_word} exactly, or press Escape to cancel.",
                        severity="warning", timeout=4, markup=False)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.matches:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
