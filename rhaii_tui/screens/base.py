"""StepScreen: the base of every wizard page (Configure, the eleven steps, Operate).

A step screen is a container hosted in the wizard's ContentSwitcher, not a pushed Textual Screen:
the sidebar and header stay put, navigation is instant, and each page stays mounted once opened,
so its workers, tables and logs keep running while the user looks at another step.

It composes: heading (title, expected duration), purpose, the live state line, a body (the
subclass hook `compose_body`), and the commands panel (`commands(cfg)`, kept in step with the
config). `?` opens help for the step.

What a subclass gets:
    self.number, self.page (pages.Page), self.step (guide.Step or None)
    self.cfg, self.profile, self.state_store      (the app's; cfg changes -> config_changed(cfg))
    self.step_state                               (set by app.set_step_state -> state_changed(state))
    self.set_state(state)                         (report this step's state; thread-safe)
Hooks (all optional): compose_body(), commands(cfg), config_changed(cfg), state_changed(state),
    step_entered() (shown; also right after first mount), step_left() (another page shown).

Blocking I/O belongs in `@work(thread=True)` workers that report with messages or
`self.app.call_from_thread(...)`; import cloud libraries inside the worker, not at module level.
"""

from __future__ import annotations

from typing import Any, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label, Static

from ..config import DeployConfig
from ..widgets.commands_panel import CommandsPanel
from ..widgets.marks import StepStateLike, mark_and_word, status_of
from .pages import Page, page
from .protocol import Wizard



def state_content(state: StepStateLike | None) -> Content:
    """'✔ done — summary' (+ a 'Fix:' line when the state carries one)."""
    parts: list[Any] = [mark_and_word(status_of(state))]
    summary = getattr(state, "summary", "") if state is not None else ""
    if summary:
        parts += [("  ", ""), str(summary)]
    fix = getattr(state, "fix", None) if state is not None else None
    if fix:
        parts += ["\n", ("Fix: ", "bold $warning"), str(fix)]
    return Content.assemble(*parts)


def detail_lines(state: StepStateLike | None) -> list[str]:
    detail = getattr(state, "detail", None) if state is not None else None
    if not detail:
        return []
    if isinstance(detail, str):
        return detail.splitlines()
    return [str(d) for d in detail]


class StepScreen(Vertical):
    """A wizard page. Subclass and register with `screens.register_step_screen(number)`."""

    DEFAULT_CSS = """
    StepScreen {
        height: 1fr;
        padding: 0 0 0 1;
        .step-heading { height: 1; }
        .step-title { width: 1fr; text-style: bold; color: $accent; text-wrap: nowrap; text-overflow: ellipsis; }
        .step-expected { width: auto; color: $text-muted; padding: 0 1; }
        .step-purpose { color: $text-muted; max-height: 4; margin: 0 1 0 0; }
        .step-state { height: auto; margin: 0 1 0 0; }
        .step-body { height: 1fr; margin: 1 0 0 0; }
        .generic-body { height: 1fr; }
        .section-title { text-style: bold; color: $accent; }
        .criterion { height: auto; }
        .criterion-mark { width: 4; padding: 0 1 0 2; color: $success; }
        .criterion-text { width: 1fr; }
    }
    """

    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Help for this step"),
    ]

    step_state: reactive[StepStateLike | None] = reactive(None, always_update=True, init=False)
    """This step's state (set by `app.set_step_state`)."""

    def __init__(self, number: int, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id or f"page-{number}", classes=classes)
        self.number = number
        self.page: Page = page(number)

    # what the page works with ---------------------------------------------------------------
    @property
    def wizard(self) -> Wizard:
        return self.app  # type: ignore[return-value]

    @property
    def step(self):
        return self.page.step

    @property
    def cfg(self) -> DeployConfig:
        return self.wizard.cfg

    @property
    def profile(self) -> Any:
        return getattr(self.app, "profile", None)

    @property
    def state_store(self) -> Any:
        return getattr(self.app, "state_store", None)

    @property
    def ctx(self):
        """The shared steps.context.StepContext (None while not connected)."""
        return self.wizard.step_context()

    @property
    def is_current(self) -> bool:
        return getattr(self.app, "current_step", None) == self.number

    def lease_first(self, what: str, again: Callable[[], None]) -> bool:
        """The first thing an action that changes the deployment does (UI thread), e.g.
        `if not self.lease_first("applying X", self.action_apply): return`. True: go on now. False:
        the deploy lease is checked first (screens/lease_ui.py; another rhaii-tui may hold it and the
        user is asked); `again()` is called once this wizard may change things, else a notification
        says nothing was done (watch only)."""
        keeper = getattr(self.app, "lease_keeper", None)
        ctx = self.ctx
        if ctx is not None:  # the transcript names the page each change comes from
            ctx.step = f"{self.number}. {self.page.heading}"
        return True if keeper is None else keeper.ready(ctx, what, again)

    def context_for_run(self, running: bool, not_connected: str) -> Any:
        """The cloud context for a page's run or action (UI thread), or None with a notification when
        one is already running (`running`) or the wizard is not connected (`not_connected` says what
        to do)."""
        if running:
            self.notify("Already running; wait for it to finish.", title=self.page.heading, markup=False)
            return None
        ctx = self.ctx
        if ctx is None:
            self.notify(not_connected, title="Not connected", severity="error", markup=False)
        return ctx

    def set_state(self, state: StepStateLike) -> None:
        """Report this step's state (updates the sidebar and this page). Safe from threads."""
        self.wizard.set_step_state(self.number, state)

    # composition ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(classes="step-heading"):
            yield Label(Content(self.page.heading), classes="step-title")
            yield Label(self.page.expected_text, classes="step-expected")
        yield Static(Content(self.page.purpose), classes="step-purpose")
        yield Static(state_content(self.step_state), classes="step-state")
        with Vertical(classes="step-body"):
            yield from self.compose_body()
        yield CommandsPanel(self.commands(self.cfg), classes="step-commands")

    def compose_body(self) -> ComposeResult:
        """The page's main body. The generic one: success criteria and the state's detail."""
        with VerticalScroll(classes="generic-body"):
            yield Label("Done when", classes="section-title")
            for criterion in self.page.success:
                with Horizontal(classes="criterion"):
                    yield Label("✓", classes="criterion-mark")
                    yield Static(Content(criterion), classes="criterion-text")
            yield Static(self._detail_content(self.step_state), classes="state-detail")

    @staticmethod
    def _detail_content(state: StepStateLike | None) -> Content:
        lines = detail_lines(state)
        if not lines:
            return Content("")
        return Content.assemble(("\nDetail\n", "bold $accent"), "\n".join(lines))

    def commands(self, cfg: DeployConfig) -> list[str]:
        """The equivalent gcloud/kubectl commands for `cfg` (default: the guide's)."""
        return list(self.page.commands(cfg))

    # hooks ----------------------------------------------------------------------------------
    def config_changed(self, cfg: DeployConfig) -> None:
        """The app's config changed (after the commands panel was updated)."""

    def state_changed(self, state: StepStateLike | None) -> None:
        """This step's state changed (after the state line was updated)."""

    def step_entered(self) -> None:
        """The page is now on show (called after first mount too)."""

    def step_left(self) -> None:
        """Another page is on show now (this one stays mounted)."""

    # plumbing --------------------------------------------------------------------------------
    def on_mount(self) -> None:
        show = getattr(self.app, "show_current_page", None)
        if show is not None:
            show()  # if this is (still) the page to show
        if hasattr(self.app, "cfg"):
            self.watch(self.app, "cfg", self._cfg_changed, init=False)
        if self.is_current:
            self.screen.refresh_bindings()  # its keys join the footer (see WizardScreen)
            self.call_after_refresh(self._entered_once_mounted)

    def _entered_once_mounted(self) -> None:
        # another page may have been chosen before this refresh (it already got step_left): no late step_entered
        if self.is_current:
            self.step_entered()

    def _cfg_changed(self, cfg: DeployConfig) -> None:
        self.refresh_commands(cfg)
        self.config_changed(cfg)

    def refresh_commands(self, cfg: DeployConfig | None = None) -> None:
        self.query_one(CommandsPanel).commands = tuple(self.commands(cfg or self.cfg))

    def watch_step_state(self, state: StepStateLike | None) -> None:
        self.query_one(".step-state", Static).update(state_content(state))
        for detail in self.query(".state-detail").results(Static):
            detail.update(self._detail_content(state))
        self.state_changed(state)

    def action_help(self) -> None:
        from .help import HelpScreen

        self.app.push_screen(HelpScreen(self.page, self.step_state))
