"""HelpScreen: `?` / F1 on any page: purpose, expected duration, success criteria, state, keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..widgets.marks import StepStateLike, mark_and_word, status_of
from .pages import Page

KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ enter / click", "choose a page in the sidebar"),
    ("[  ]", "previous / next page"),
    ("ctrl+p", "command palette: jump to any step"),
    ("tab", "move between the sidebar, the page and its commands"),
    ("c  a", "copy the highlighted command / all commands"),
    ("? f1", "this help"),
    ("ctrl+q", "quit (the deployment keeps running)"),
)


def help_content(page: Page, state: StepStateLike | None) -> Content:
    status = status_of(state)
    parts: list = [
        ("Expected duration: ", "bold"), page.expected_text,
        ("   Status: ", "bold"), mark_and_word(status),
    ]
    summary = getattr(state, "summary", "") if state is not None else ""
    if summary:
        parts += [" — ", summary]
    fix = getattr(state, "fix", None) if state is not None else None
    if fix:
        parts += ["\n", ("Fix: ", "bold $warning"), str(fix)]
    if page.optional:
        parts += ["\n", ("Optional: ", "bold"), "you may skip this step."]
    parts += ["\n\n", ("What it does\n", "bold $accent"), page.purpose, "\n\n",
              ("Done when\n", "bold $accent")]
    parts += [piece for s in page.success for piece in (("  ✓ ", "$success"), s, "\n")]
    parts += ["\n", ("Keys\n", "bold $accent")]
    width = max(len(k) for k, _ in KEYS)
    parts += [piece for k, d in KEYS for piece in ((f"  {k:<{width}}  ", "bold"), d, "\n")]
    return Content.assemble(*parts).rstrip()


class HelpScreen(ModalScreen[None]):
    """Help for one page."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
        #help-box {
            width: 90;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $accent;
            border-title-style: bold;
            background: $surface;
            padding: 0 2;
        }
        #help-text { height: auto; }
        #help-buttons { height: 1; align-horizontal: right; margin: 1 0 0 0; }
    }
    """

    BINDINGS = [
        Binding("escape,q,f1,question_mark", "close", "Close"),
    ]

    def __init__(self, page: Page, state: StepStateLike | None = None) -> None:
        super().__init__()
        self.page = page
        self.step_state = state

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = f"Help · {self.page.heading}"
            yield Static(help_content(self.page, self.step_state), id="help-text")
            with Horizontal(id="help-buttons"):
                yield Button("Close", id="help-close", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
