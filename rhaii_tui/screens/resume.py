"""Where the deployment stands: the summary the wizard opens with once it is connected.

The app probes every step in parallel (`steps.registry.probe_all`, in a worker thread) and feeds each
result here as it arrives (`probe_finished`); the screen shows a progress line meanwhile, then the
standing (`steps.registry.summary`): what is done, what is in progress and with what, what failed
and why with its fix, what is not started. Enter goes to the first step not done (Operate when
everything is done; Configure while the configuration has errors); Escape stays on the page the
wizard opened on; x (Express) runs every step as soon as what it needs holds, after one
confirmation of what costs money (screens/express.py). The cluster is the source of truth: it works
with no state file at all.

When the cloud refuses the credentials, every probe fails the same way: the summary says so once,
with the fix, instead of eleven copies; `r` (or re-authenticating) checks again.
"""

from __future__ import annotations

from typing import Any, Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from ..widgets.modal import WizardModal
from textual.widgets import Button, Label, Static

from ..guide import STEPS
from .pages import CONFIGURE, OPERATE, page

MARKS = {"done": ("✔", "$success"), "skipped": ("⊘", "$text-muted"), "in_progress": ("◐", "$warning"),
         "failed": ("✘", "$error"), "not_started": ("○", "$text-muted"), "unknown": ("?", "$warning")}
CREDENTIALS = "credentials"
REAUTH_FIX = ("Sign in again: ctrl+r (Re-authenticate) says how. Once you are signed in, the summary checks "
              "again (or press r).")


def destination(standing: Any, config_errors: int = 0) -> int:
    """The page Enter leads to: Configure while the config has errors, else the first step not done,
    else Operate."""
    if config_errors:
        return CONFIGURE
    first = getattr(standing, "first_not_done", None)
    return OPERATE if first is None else int(first)


def credentials_failure(standing: Any) -> Any:
    """The first step whose probe failed because the cloud refused the credentials (its state), or None."""
    for n in [*getattr(standing, "failed", ()), *getattr(standing, "unknown", ())]:
        st = standing.states[n]
        if (st.data or {}).get("error_kind") == CREDENTIALS:
            return st
    return None


def nothing_deployed(standing: Any) -> bool:
    """Fresh target: no step done, none under way, none failed."""
    return bool(standing.states) and not (standing.done or standing.in_progress or standing.failed
                                          or getattr(standing, "unknown", None))


def headline(standing: Any, config_errors: int = 0) -> str:
    """The summary's first line, in plain words."""
    if credentials_failure(standing) is not None:
        return "Could not read where the deployment stands: the cloud refused the credentials."
    if getattr(standing, "unknown", None) and not standing.failed:
        return f"Could not read where the deployment stands: {standing.causes[0].get('message')}"
    if nothing_deployed(standing):
        first = page(1)
        then = "fix the configuration, then start" if config_errors else "start"
        return f"Nothing is deployed for this target yet: {then} with step 1 ({first.title})."
    text = standing.headline
    return text[:1].upper() + text[1:]


def standing_content(standing: Any, config_errors: int = 0) -> Content:
    """The summary as text: headline, then one line per step (mark, number, title, what). A failure
    repeated by later steps (same message and fix) is told once; the others point back to it."""
    parts: list[Any] = [(headline(standing, config_errors), "bold"), "\n"]
    creds = credentials_failure(standing)
    if creds is not None:
        parts += ["\n", ("Fix: ", "bold"), REAUTH_FIX, "\n"]
    if config_errors:
        parts += [("\nThe configuration has ", ""), (f"{config_errors} field(s) to fix", "bold $error"),
                  (" before any step can run.\n", "")]
    told: dict[tuple[str, str], int] = {}
    for n, st in standing.states.items():
        key = st.status.value if st.status.value in MARKS else "not_started"
        mark, style = MARKS[key]
        summary = st.summary
        fix = st.fix if key == "failed" else ""
        if key == "failed":
            first = told.setdefault((st.summary, st.fix), n)
            if (st.data or {}).get("error_kind") == CREDENTIALS:
                summary, fix = "Not read: the credentials were refused (see above).", ""
            elif first != n:
                summary, fix = f"Same error as step {first}.", ""
        elif key == "unknown":  # could not be read: the cause once, the other steps point back to it
            first = told.setdefault((st.summary, st.fix), n)
            fix = st.fix if first == n else ""
            if (st.data or {}).get("error_kind") == CREDENTIALS:
                summary, fix = "Not read: the credentials were refused (see above).", ""
            elif first != n:
                summary = f"Not read: same cause as step {first}."
        parts += ["\n", (f"{mark} ", style), (f"{n:>2} {page(n).title}", "bold" if not st.done else ""),
                  ("  " + summary if summary else "", "$text-muted" if st.done else "")]
        if fix:
            parts += ["\n      ", ("Fix: ", "bold"), fix]
    return Content.assemble(*parts)


class ResumeScreen(WizardModal[int | None]):
    """Result: the page to go to, or None to stay.

    `recheck(screen)`: how the app probes again (`r`, "Check again", or after re-authenticating);
    without it the screen offers no re-check."""

    DEFAULT_CSS = """
    ResumeScreen {
        align: center middle;
        background: $background 60%;
        #resume-box {
            width: 96;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $primary;
            border-title-style: bold;
            border-title-color: $accent;
            background: $surface;
            padding: 0 2;
        }
        #resume-target { color: $text-muted; width: 100%; height: auto; }  /* wraps: the namespace is part of it */
        #resume-progress { height: auto; margin: 1 0 0 0; }
        #resume-scroll { height: auto; max-height: 20; margin: 1 0 0 0; }  /* see _fit() */
        #resume-summary { height: auto; }
        #resume-buttons { height: auto; align-horizontal: right; margin: 1 0 0 0; }
        #resume-buttons Button { margin: 0 0 0 2; width: auto; }
        #resume-stay, #resume-recheck, #resume-express { min-width: 0; }  /* the row fits 80 columns */
        #resume-recheck { display: none; }
        &.-can-recheck #resume-recheck { display: block; }
    }
    """

    AUTO_FOCUS = "#resume-scroll"  # not a button: Enter while the probes run must not pick "Stay here"
    BINDINGS = [Binding("escape", "stay", "Stay here"),
                Binding("enter", "go", "Go to the first step not done", show=False),
                Binding("r", "recheck", "Check again", show=False),
                Binding("x", "express", "Express", show=False),
                Binding("up", "scroll_summary('up')", show=False),
                Binding("down", "scroll_summary('down')", show=False),
                Binding("pageup", "scroll_summary('page_up')", show=False),
                Binding("pagedown", "scroll_summary('page_down')", show=False)]

    def __init__(self, target: str, total: int = len(STEPS), config_errors: int = 0,
                 recheck: Callable[["ResumeScreen"], None] | None = None) -> None:
        super().__init__()
        self.target = target
        self.total = total
        self.config_errors = config_errors
        self._recheck = recheck
        self.received: dict[int, Any] = {}
        self.standing: Any = None
        self.error: str | None = None
        self.goto: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="resume-box") as box:
            box.border_title = "Where the deployment stands"
            yield Label(self.target, id="resume-target")
            yield Label(self._progress_text(), id="resume-progress")
            with VerticalScroll(id="resume-scroll"):
                yield Static("", id="resume-summary")
            with Horizontal(id="resume-buttons"):
                yield Button("Stay here", id="resume-stay", compact=True)
                yield Button("Check again", id="resume-recheck", compact=True)
                yield Button("Express", id="resume-express", compact=True, disabled=True,
                             tooltip="Every step as soon as what it needs holds, several at once (x)")
                yield Button("Go to …", id="resume-go", compact=True, variant="primary", disabled=True)

    # the summary scrolls; the buttons stay on screen however short the terminal -----------------------
    CHROME_ROWS = 10  # the box's border, target, progress (up to 2 lines), margins and buttons

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        inner = min(96, self.size.width) - 6  # the box's thick border and padding
        target_rows = max(1, -(-len(self.target) // inner)) if inner > 0 else 1  # an 80-column terminal: 2
        room = max(3, min(20, self.size.height - self.CHROME_ROWS - (target_rows - 1)))
        self.query_one("#resume-scroll").styles.max_height = room

    # fed by the app -------------------------------------------------------------------------------
    @property
    def checking(self) -> bool:
        """The probes are running (no standing and no error yet)."""
        return self.standing is None and self.error is None

    def _progress_text(self) -> str:
        return f"Checking where the deployment stands… {len(self.received)}/{self.total} steps read"

    def start_check(self) -> None:
        """A new round of probes begins (the app calls this before probing again)."""
        self.received.clear()
        self.standing = None
        self.error = None
        self.goto = None
        if not self.is_mounted:
            return
        self.remove_class("-can-recheck")
        self.query_one("#resume-progress", Label).update(self._progress_text())
        self.query_one("#resume-summary", Static).update("")
        go = self.query_one("#resume-go", Button)
        go.label = "Go to …"
        go.disabled = True
        self.query_one("#resume-express", Button).disabled = True
        go.refresh(layout=True)
        self.query_one("#resume-scroll").focus()

    def probe_finished(self, number: int, state: Any) -> None:
        self.received[number] = state
        if self.checking and self.is_mounted:
            self.query_one("#resume-progress", Label).update(self._progress_text())

    def show_standing(self, standing: Any) -> None:
        """All probes are in: the summary and where Enter leads."""
        self.standing = standing
        if not self.is_mounted:  # dismissed meanwhile (the sidebar has the states anyway)
            return
        self.goto = destination(standing, self.config_errors)
        n_done = len(standing.done)
        self.query_one("#resume-progress", Label).update(
            f"Read {len(standing.states)} steps from the live environment: {n_done} done, "
            f"{len(standing.in_progress)} in progress, {len(standing.failed)} failed.")
        self.query_one("#resume-summary", Static).update(standing_content(standing, self.config_errors))
        self.set_class(bool(standing.failed) and self._recheck is not None, "-can-recheck")
        go = self.query_one("#resume-go", Button)
        target = page(self.goto)
        go.label = f"Go to step {target.number}: {target.title}" if target.is_step else f"Go to {target.title}"
        go.disabled = False
        go.refresh(layout=True)  # a Button's label change does not re-measure its width
        self.query_one("#resume-express", Button).disabled = not self._can_express()
        go.focus()

    def show_error(self, message: str) -> None:
        self.error = message
        if not self.is_mounted:
            return
        self.query_one("#resume-progress", Label).update(Content.assemble(
            ("Could not read where the deployment stands: ", "bold $error"), message,
            ("\nEscape stays here; " + ("r checks again." if self._recheck is not None else "the pages still work."),
             "")))
        self.set_class(self._recheck is not None, "-can-recheck")

    def credentials_renewed(self) -> None:
        """The user signed in again: if the last check was refused for its credentials, check again."""
        if self.is_mounted and ((self.standing is not None and credentials_failure(self.standing) is not None)
                                or self.error is not None):
            self.action_recheck()

    # actions --------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "go":
            return self.goto is not None
        if action == "recheck":
            return self._recheck is not None and not self.checking
        if action == "express":
            return self._can_express()
        return True

    def _can_express(self) -> bool:
        """Express is offered once the standing is read, with a valid configuration and credentials."""
        return (self.standing is not None and not self.config_errors
                and credentials_failure(self.standing) is None)

    def action_express(self) -> None:
        if not self._can_express():
            return
        from .express import start_express

        app = self.app
        self.dismiss(None)
        start_express(app)

    def action_scroll_summary(self, how: str) -> None:
        """Arrow/page keys scroll the summary wherever the focus is (e.g. on a button)."""
        getattr(self.query_one("#resume-scroll", VerticalScroll), f"scroll_{how}")()

    def action_stay(self) -> None:
        self.dismiss(None)

    def action_go(self) -> None:
        if self.goto is not None:
            self.dismiss(self.goto)

    def action_recheck(self) -> None:
        if self._recheck is None or self.checking:
            return
        self.start_check()
        self._recheck(self)

    @on(Button.Pressed, "#resume-stay")
    def _stay(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    @on(Button.Pressed, "#resume-go")
    def _go(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_go()

    @on(Button.Pressed, "#resume-express")
    def _express_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_express()

    @on(Button.Pressed, "#resume-recheck")
    def _recheck_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_recheck()

    @property
    def summary_text(self) -> str:
        """Plain text of what the screen shows (tests, logs)."""
        parts = [str(self.query_one("#resume-progress", Label).render())]
        if self.standing is not None:
            parts.append(standing_content(self.standing, self.config_errors).plain)
        return "\n".join(parts)
