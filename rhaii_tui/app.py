"""The wizard: header (target + SIMULATED badge), step sidebar, the pages, footer, palette.

    app = RhaiiApp(cfg, profile=None, state_store=None, start_step=None)
    app.cfg                  the DeployConfig (reactive: widgets `self.watch(app, "cfg", ...)`)
    app.profile              the connection profile or None (reactive; `.simulated`, `.label`);
                             `connect=` builds it in a thread after the first frame
    app.state_store          config.StateStore or None
    app.step_states          {number: state} (objects with .status and .summary)
    app.set_step_state(n, state)   update the sidebar and the page (safe from threads)
    app.goto_step(n)               show page n (0 Configure, 1-11 steps, 12 Operate)
    app.start_page_ready           asyncio.Event: the shell paints first, the start page right
                                   after (tests: `await app.start_page_ready.wait()`)
    app.save_config(cfg)           make cfg the app's config and write the state file (worker)
    app.action_express()           the Express action (screens/express.py); ctrl+e shows its timeline again
    ConfirmCost                    rhaii_tui.widgets.confirm_cost (re-exported here)

Pages are `screens.base.StepScreen` subclasses hosted in a ContentSwitcher, mounted on first
visit and kept mounted, so navigation is instant and live panes keep their state.

Startup must feel instant: this module imports no cloud client library (kubernetes,
google.cloud, httpx, aiohttp); pages import them lazily inside workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import events
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widget import MountError
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from .config import DeployConfig, StateStore
from .screens import CONFIGURE, OPERATE, PAGES, step_screen_for
from .widgets.marks import StepStateLike, status_of
from .widgets.step_list import StepList
from .widgets.target_header import TargetHeader

if TYPE_CHECKING:
    from .screens.base import StepScreen
    from .widgets.confirm_cost import ConfirmCost

__all__ = ["RhaiiApp", "run_wizard", "ConfirmCost", "StepScreen", "StepStateLike"]


def __getattr__(name: str) -> Any:
    """ConfirmCost and StepScreen are re-exported lazily (not needed for the first frame)."""
    if name == "ConfirmCost":
        from .widgets.confirm_cost import ConfirmCost

        return ConfirmCost
    if name == "StepScreen":
        from .screens.base import StepScreen

        return StepScreen
    if name == "BrowserDriver":  # TEXTUAL_DRIVER of a wizard that `rhaii-tui web` started
        return _browser_driver()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

EXIT_AFTER_PAINT_ENV = "RHAII_TUI_EXIT_AFTER_PAINT"
REPROBE_SECONDS = 15.0  # every step probed again: the sidebar follows changes made from elsewhere
LEASE_RELEASE_SECONDS = 2.0  # at quit: give the deploy lease back if the cluster answers at once (else it expires)
LEASE_POLL_SECONDS = 30.0  # who drives the deployment: one ConfigMap GET, 2 a minute (the API budget of a kind)


class StepCommands(Provider):
    """Command palette: jump to any page, help for the current one, copy its commands."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        app: RhaiiApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, Any, str]] = []
        for p in PAGES:
            name = f"Go to step {p.number}: {p.title}" if p.is_step else f"Go to {p.title}"
            if p.optional:
                name += " (optional)"
            out.append((name, partial(app.goto_step, p.number), p.purpose))
        out.append(("Help for this step", app.action_help, "Purpose, expected duration, success criteria"))
        out.append(("Copy this step's commands", app.action_copy_commands,
                    "Copy the equivalent gcloud/kubectl commands, one per line"))
        out.append(("Re-authenticate", app.action_reauthenticate,
                    "Sign in again when the credentials expired or were revoked (ctrl+r)"))
        out.append(("Express: deploy everything, several steps at once", app.action_express,
                    "Run every step as soon as what it needs holds, with a live timeline (ctrl+e shows it again)"))
        return out

    async def discover(self) -> Hits:
        for name, command, help_text in self._commands():
            yield DiscoveryHit(name, command, help=_first_sentence(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, text=name,
                          help=_first_sentence(help_text))


def release_lease_briefly(keeper: Any, timeout: float = LEASE_RELEASE_SECONDS) -> bool:
    """Give the deploy lease back, waiting at most `timeout` seconds (it expires on its own
    otherwise). True when the release finished in time."""
    t = threading.Thread(target=keeper.release, daemon=True, name="lease-release")
    t.start()
    t.join(timeout)
    return not t.is_alive()


def _first_sentence(text: str) -> str:
    head, dot, _rest = text.partition(". ")
    return head + ("." if dot else "")


def _shown_alike(a: Any, b: Any) -> bool:
    """Two step states that show the same (status, summary, detail, fix): a re-probe that finds
    the same leaves the sidebar and the page alone."""
    return all(getattr(a, k, None) == getattr(b, k, None) for k in ("status", "summary", "detail", "fix"))


class RhaiiApp(App[int]):
    """The rhaii-tui wizard."""

    CSS_PATH = Path(__file__).parent / "styles" / "app.tcss"  # absolute: subclasses elsewhere work
    TITLE = "rhaii-tui"
    SUB_TITLE = "vLLM with prefix caching on GKE TPU v6e"
    COMMANDS = App.COMMANDS | {StepCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    BINDINGS = [
        # `?` is typed into a text field that has focus, so the footer shows it only when it helps;
        # F1 is never typed: it opens help from everywhere (dialogs included), shown or not.
        Binding("question_mark", "help", "Help", key_display="?", id="help",
                tooltip="Purpose, expected duration and success criteria of this step"),
        Binding("f1", "help", "Help", key_display="F1", id="help-f1", show=False, priority=True),
        Binding("left_square_bracket", "prev_step", "Prev", key_display="[", id="prev-step",
                tooltip="Previous page"),
        Binding("right_square_bracket", "next_step", "Next", key_display="]", id="next-step",
                tooltip="Next page"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True,  # from every dialog and field too
                tooltip="Quit (whatever runs in the cloud keeps running)"),
        Binding("ctrl+r", "reauthenticate", "Re-authenticate", id="reauthenticate", show=False,
                tooltip="Sign in again when the credentials expired or were revoked"),
        Binding("ctrl+e", "express_timeline", "Timeline", id="express-timeline",
                tooltip="Show the express run's timeline again (screens/express.py)"),
    ]

    REPROBE_SECONDS = REPROBE_SECONDS
    """How often every step is probed again, so that the sidebar follows the cloud whoever changed it."""
    REPROBE_QUIET_SECONDS = 60.0
    """The re-probe's period once nothing happens: no key or click for QUIET_AFTER_SECONDS and no
    re-probe found a change for as long. The page on show follows its own watches all along; the
    other steps then follow within a minute, for a wizard left open to watch (idle CPU)."""
    QUIET_AFTER_SECONDS = 120.0
    REAUTH_QUIET_SECONDS = 120.0
    """After [Later], new credentials failures stay quiet this long (ctrl+r or the palette still work)."""
    REAUTH_GRACE_SECONDS = 3.0
    """Right after a successful re-authentication, failures of requests already in flight are ignored."""

    cfg: reactive[DeployConfig] = reactive(DeployConfig, always_update=True, init=False)
    profile: reactive[Any] = reactive(None, always_update=True, init=False)
    current_step: reactive[int] = reactive(CONFIGURE, init=False)
    connecting: reactive[bool] = reactive(False, init=False)
    """True while the `connect` callable runs (the header says so)."""

    def __init__(self, cfg: DeployConfig, profile: Any = None, state_store: StateStore | None = None,
                 start_step: int | None = None, *, startup_error: str | None = None,
                 connect: Callable[[], Any] | None = None, resume: bool = False) -> None:
        super().__init__()
        self.set_reactive(RhaiiApp.cfg, cfg)
        self.set_reactive(RhaiiApp.profile, profile)
        self.state_store = state_store
        self.step_states: dict[int, StepStateLike] = {}
        self.startup_error = startup_error
        self._connect = connect
        self._resume = resume  # once connected: probe every step and show where the deployment stands
        self._explicit_start = start_step is not None  # told where to start: the probes only fill the sidebar
        self._probed_once = False  # the start-up probe ran: the periodic re-probe may follow
        self._active_at = time.monotonic()  # the last key, click or change the re-probe found
        self._reprobed_at = -float("inf")  # (a monotonic clock may start near zero: a fresh machine)
        self._probe_sourced: set[int] = set()  # steps whose state came from that probe, not from their page
        self.resume_screen: Any = None  # the ResumeScreen once shown
        self._lease_keeper: Any = None  # screens/lease_ui.WizardLease, made on first use (not before the first frame)
        self.set_reactive(RhaiiApp.connecting, connect is not None and profile is None)
        numbers = [p.number for p in PAGES]
        start = CONFIGURE if start_step is None else int(start_step)
        if start not in numbers:
            raise ValueError(f"start_step must be one of {numbers[0]}-{numbers[-1]}, not {start_step!r}")
        self.set_reactive(RhaiiApp.current_step, start)
        self._pages: dict[int, StepScreen] = {}
        self.first_paint_at: float | None = None  # wall clock of the first frame (benchmarks)
        self.page_ready_at: float | None = None  # ... and of the start page's first frame
        self.first_paint_cpu: float | None = None  # CPU seconds of this process at the first frame
        self.start_page_ready = asyncio.Event()  # set once the start page is mounted and painted
        self._reauth_screen: Any = None  # the open ReauthScreen (only one at a time)
        self._reauth_later_at: float | None = None  # monotonic time of the last [Later]
        self._reauth_ok_at: float | None = None  # monotonic time of the last successful re-authentication
        self._listening_profile: Any = None
        self._update_configure_state(cfg)

    # layout ----------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        from .screens.wizard_screen import WizardScreen

        return WizardScreen(id="_default")  # the page on show answers its keys with focus in the sidebar

    def compose(self) -> ComposeResult:
        yield TargetHeader(id="header")
        with Horizontal(id="main"):
            yield StepList(PAGES, current=self.current_step, states=self.step_states, id="sidebar")
            yield ContentSwitcher(id="pages")
        yield Footer(id="footer")

    def on_load(self) -> None:
        from .threads import DaemonExecutor

        # each worker on a daemon thread, and quitting does not wait for them: pages set their stop
        # events as they go; a worker still in a blocking call (a long poll, a slow connection) does
        # not hold the process. What was sent to the cloud keeps going, as the footer says.
        asyncio.get_running_loop().set_default_executor(DaemonExecutor(wait_on_shutdown=False))

    def on_mount(self) -> None:
        self._listen_for_credentials(self.profile)
        self.query_one(StepList).focus()
        if self.startup_error:
            self.notify(self.startup_error, title="Not connected", severity="error", timeout=15, markup=False)
        # Skeleton first: the shell paints at once, the start page is built right after.
        if os.environ.get(EXIT_AFTER_PAINT_ENV):
            self.call_after_refresh(self._stamp_first_paint)
        self.call_after_refresh(self._open_start_page)
        if self.connecting:
            self.call_after_refresh(self._start_connecting)
        self.set_interval(LEASE_POLL_SECONDS, self._poll_lease)
        self.set_interval(self.REPROBE_SECONDS, self._reprobe)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self._active_at = time.monotonic()  # someone is here: the re-probe keeps its full pace
        await super().on_event(event)

    async def on_unmount(self) -> None:
        """The app is closing (a quit, or a test's run_test ending): give the deploy lease back and
        stop renewing it, waiting at most LEASE_RELEASE_SECONDS (it expires on its own otherwise).
        Without this a lease taken here would keep renewing from a thread after the app is gone."""
        keeper = self._lease_keeper
        if keeper is not None and keeper.lease is not None:
            await asyncio.to_thread(release_lease_briefly, keeper)

    def _start_connecting(self) -> None:
        connect = self._connect

        def work() -> None:
            try:
                result = connect()
            except Exception as e:  # shown in the app, which keeps working (configure is offline)
                self.call_from_thread(self._connect_failed, str(e) or type(e).__name__)
                return
            self.call_from_thread(self._connected, result)

        self.run_worker(work, thread=True, group="connect", exclusive=True, exit_on_error=False)

    def _connected(self, result: Any) -> None:
        profile, cfg = result if isinstance(result, tuple) else (result, None)
        if cfg is not None:
            self.cfg = cfg
        self.connecting = False
        self.profile = profile
        self._start_resume()
        self._poll_lease()  # who drives the deployment, at once (then every LEASE_POLL_SECONDS)

    # where the deployment stands (resume) ------------------------------------------------------
    def _start_resume(self) -> None:
        """Once per run, with a connection: probe every step in parallel (a worker thread), feed the
        sidebar as each answers, and show the summary (screens/resume.py); when the wizard was told
        where to start, the probes only fill the sidebar."""
        if not self._resume or self._exit or not self.start_page_ready.is_set():
            return  # (called again once the start page has painted: it goes first)
        if self.step_context() is None:
            return
        self._resume = False
        screen = None
        if not self._explicit_start:
            from .screens.resume import ResumeScreen

            cfg = self.cfg
            screen = ResumeScreen(f"{cfg.project or '(no project)'} / {cfg.zone} / {cfg.cluster} / {cfg.namespace}",
                                  config_errors=len(cfg.errors()), recheck=self._probe_standing)
            self.resume_screen = screen
            self.push_screen(screen, callback=self._resume_closed)
        self._probe_standing(screen)

    def _probe_standing(self, screen: Any = None) -> None:
        """Probe every step in a worker thread; each state goes to the sidebar (never over a page's
        own), then the standing to `screen` (a ResumeScreen) if given."""
        ctx = self.step_context()
        if ctx is None:
            if screen is not None:
                screen.show_error("Not connected to a cloud.")
            return
        from .steps.registry import probe_all, summary

        self._probed_once = True

        def one(number: int, state: Any) -> None:  # from the probing thread
            def show() -> None:
                self.set_step_state(number, state, from_probe=True)
                if screen is not None:
                    screen.probe_finished(number, state)
            self.call_from_thread(show)

        def work() -> None:
            try:
                standing = summary(probe_all(ctx, one))
            except Exception as e:  # noqa: BLE001 - probes never raise; anything else is said, not thrown
                if screen is not None:
                    self.call_from_thread(screen.show_error, str(e) or type(e).__name__)
                return
            if screen is not None:
                self.call_from_thread(screen.show_standing, standing)

        self.run_worker(work, thread=True, group="resume", exclusive=True, exit_on_error=False)

    def _reprobe(self) -> None:
        """Every REPROBE_SECONDS: probe every step again in a worker (after the start-up probe). A
        teardown, a scale or an apply made from another terminal or by a headless command then
        shows in the sidebar within one period (see set_step_state's `refresh`)."""
        if not self._probed_once or self._exit:
            return  # only after the start-up probe (a wizard told where to start, with no probe, neither)
        if len(self.screen_stack) > 1 or self._reauth_screen is not None:
            return  # a dialog is open (the start-up summary probes by itself; a sign-in is pending)
        if self._reauth_later_at is not None and time.monotonic() - self._reauth_later_at < self.REAUTH_QUIET_SECONDS:
            return  # credentials known to be refused: probing would only fail again
        ctx = self.step_context()
        if ctx is None:
            return
        if any(w.group == "reprobe" and not w.is_finished for w in self.workers):
            return  # a slow cloud: the last round still runs
        now = time.monotonic()
        if (now - self._active_at > self.QUIET_AFTER_SECONDS
                and now - self._reprobed_at < self.REPROBE_QUIET_SECONDS - self.REPROBE_SECONDS / 2):
            return  # nothing happened for a while: a round a minute
        self._reprobed_at = now
        from .steps.registry import STEPS, probe_all

        loop = self._loop
        # the page on show reports its own live state (set_step_state keeps it over a re-probe's): not probed
        numbers = [e.number for e in STEPS if e.number != self.current_step]

        def one(number: int, state: Any) -> None:  # from the probing thread: hand over, never wait for the UI
            if not self._exit and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(functools.partial(self.set_step_state, number, state, refresh=True))

        self.run_worker(lambda: probe_all(ctx, one, steps=numbers), thread=True, group="reprobe",
                        exit_on_error=False)

    # the deploy lease (screens/lease_ui.py) ------------------------------------------------------
    @property
    def lease_keeper(self) -> Any:
        """The wizard's one deploy lease: taken before the first change, renewed until quit."""
        if self._lease_keeper is None:
            from .screens.lease_ui import WizardLease

            self._lease_keeper = WizardLease(self)
        return self._lease_keeper

    def show_lease(self, text: str) -> None:
        self.query_one(TargetHeader).set_lease(text)

    def _poll_lease(self) -> None:
        ctx = self.step_context()
        if ctx is None or self.lease_keeper.held:
            return
        self.run_worker(lambda: self.lease_keeper.poll(ctx), thread=True, group="lease-poll", exclusive=True,
                        exit_on_error=False)

    def _resume_closed(self, goto: int | None) -> None:
        if goto is not None:
            self.goto_step(goto)

    def _connect_failed(self, message: str) -> None:
        self.connecting = False
        self.notify(message, title="Not connected", severity="error", timeout=15, markup=False)

    def _stamp_first_paint(self) -> None:
        self.first_paint_at = time.time()
        self.first_paint_cpu = time.process_time()

    async def _open_start_page(self) -> None:
        number = self.current_step
        if self._exit:  # quit before the first page was built (e.g. ctrl+q at once)
            return
        if number not in self._pages:
            try:
                await self.query_one("#pages", ContentSwitcher).add_content(self._make_page(number))
                self.show_current_page()  # (unless another page was chosen meanwhile: that one shows)
            except (MountError, NoMatches, ScreenStackError):
                if self._exit:
                    return
                raise
        self.call_after_refresh(self._start_page_painted)

    def _start_page_painted(self) -> None:
        self.page_ready_at = time.time()
        self.start_page_ready.set()
        if os.environ.get(EXIT_AFTER_PAINT_ENV):
            self.exit(0)
            return
        self._start_resume()  # (if connected by now; else once connected)
        self._poll_lease()  # who drives the deployment, at once if connected (then every LEASE_POLL_SECONDS)

    # pages ----------------------------------------------------------------------------------
    def _make_page(self, number: int) -> StepScreen:
        cls = step_screen_for(number)
        page = cls(number)
        page.set_reactive(type(page).step_state, self.step_states.get(number))
        self._pages[number] = page
        return page

    def page_widget(self, number: int) -> StepScreen | None:
        """The page's StepScreen if it was opened (pages stay mounted once opened)."""
        return self._pages.get(number)

    @property
    def current_page(self) -> StepScreen | None:
        return self._pages.get(self.current_step)

    def show_current_page(self) -> None:
        """The switcher shows the current step's page, once it is mounted (pages call this on mount)."""
        page = self._pages.get(self.current_step)
        if page is None or not page.is_attached:
            return
        try:
            switcher = self.query_one("#pages", ContentSwitcher)
        except (NoMatches, ScreenStackError):
            return
        if switcher.current != page.id:
            switcher.current = page.id

    def goto_step(self, number: int) -> None:
        """Show page `number` (0 Configure, 1-11 the guide's steps, 12 Operate)."""
        number = int(number)
        if number not in {p.number for p in PAGES}:
            raise ValueError(f"no wizard page {number}")
        if number == self.current_step:
            return
        old = self._pages.get(self.current_step)
        switcher = self.query_one("#pages", ContentSwitcher)
        focus_in_old = old is not None and self.focused is not None and old in self.focused.ancestors_with_self
        if number in self._pages:
            page = self._pages[number]
            self.current_step = number
            self.show_current_page()  # (a page still mounting shows itself once mounted, if still current)
            page.step_entered()
        else:
            page = self._make_page(number)
            self.current_step = number  # the page calls step_entered() once mounted
            # Not set_current=True: a slow page that finishes mounting after the user has moved on
            # (`]` pressed quickly) would then take the screen from the page the wizard says is current.
            switcher.add_content(page)
        if old is not None:
            old.step_left()
        if focus_in_old:
            self.query_one(StepList).focus()

    def watch_current_step(self, number: int) -> None:
        sidebar = self.query_one(StepList)
        sidebar.current = number
        sidebar.refresh_bindings()  # the footer shows the keys of the page on show (see WizardScreen)

    def on_step_list_chosen(self, event: StepList.Chosen) -> None:
        self.goto_step(event.number)

    def action_next_step(self) -> None:
        if self.current_step < OPERATE:
            self.goto_step(self.current_step + 1)

    def action_prev_step(self) -> None:
        if self.current_step > CONFIGURE:
            self.goto_step(self.current_step - 1)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):  # F1 / ? again closes it
            self.screen.dismiss()
            return
        page = self.current_page
        if page is not None:
            page.action_help()

    def action_express(self) -> None:
        """The Express action (also on the start-up summary and the Configure page)."""
        from .screens.express import start_express

        start_express(self)

    def action_express_timeline(self) -> None:
        from .screens.express import show_timeline

        show_timeline(self)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("express_timeline", "prev_step", "next_step"):
            installed = self.is_screen_installed("express")
            on_timeline = installed and self.screen is self.get_screen("express")
            if action == "express_timeline":  # in the footer only once an express run was started
                return installed and not on_timeline
            return not on_timeline  # the pages' keys: not over the express timeline
        return True

    def action_copy_commands(self) -> None:
        page = self.current_page
        if page is not None:
            from .widgets.commands_panel import CommandsPanel

            page.query_one(CommandsPanel).action_copy_all()

    def save_copied(self, text: str) -> str | None:
        """Write copied commands to a file in the state directory (no secret is ever in them): the
        fallback when the terminal ignores the clipboard escape. Returns its path, or None."""
        root = getattr(self.state_store, "root", None)
        if root is None:
            return None
        path = Path(root) / "copied-commands.sh"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text if text.endswith("\n") else text + "\n")
        except OSError:
            return None
        return str(path)

    # state -----------------------------------------------------------------------------------
    def set_step_state(self, number: int, state: StepStateLike, *, from_probe: bool = False,
                       refresh: bool = False) -> None:
        """Record a step's state and show it in the sidebar and on its page. Thread-safe.
        `from_probe`: a result of the start-up probe, which never overwrites what the step's own page
        has reported since (the page's reading is newer).
        `refresh`: a result of the periodic re-probe. The page on show reports its own live state and
        keeps it; elsewhere a new status always wins (the cloud changed, whoever changed it), and a
        state that came from a probe takes the newer summary."""
        if self._loop is not None and threading.get_ident() != self._thread_id:
            self.call_from_thread(lambda: self.set_step_state(number, state, from_probe=from_probe,
                                                              refresh=refresh))
            return
        if refresh:
            if number == self.current_step or number == CONFIGURE:
                return
            old = self.step_states.get(number)
            if old is not None and status_of(old) == status_of(state) and number not in self._probe_sourced:
                return  # the page's own reading says the same, with its own (richer) words
            if old is not None and _shown_alike(old, state):
                return  # nothing a user would see changed: no repaint every round (idle CPU)
            self._probe_sourced.add(number)
            self._active_at = time.monotonic()  # the cloud changed: re-probe at the full pace again
        elif from_probe:
            if number in self.step_states and number not in self._probe_sourced:
                return
            self._probe_sourced.add(number)
        else:
            self._probe_sourced.discard(number)
        self.step_states[number] = state
        try:
            sidebar = self.query_one(StepList)
        except (NoMatches, ScreenStackError):  # not composed yet: compose() reads step_states
            return
        sidebar.set_state(number, state)
        page = self._pages.get(number)
        if page is not None:
            if page.is_mounted:
                page.step_state = state
            else:
                page.set_reactive(type(page).step_state, state)

    def _update_configure_state(self, cfg: DeployConfig) -> None:
        from .steps.base import Status, StepState

        errors = cfg.errors()
        if errors:
            n = len(errors)
            state = StepState(Status.NOT_STARTED, f"{n} field{'s' if n != 1 else ''} to fill in or fix")
        else:
            state = StepState(Status.DONE, "every field valid")
        self.set_step_state(CONFIGURE, state)

    def watch_cfg(self, cfg: DeployConfig) -> None:
        self._update_configure_state(cfg)
        if getattr(self, "_step_context", None) is not None:
            self._step_context.set_config(cfg)

    def watch_profile(self, profile: Any) -> None:
        self._step_context = None  # rebuilt for the new connection on next use
        self._listen_for_credentials(profile)

    # credentials expired or revoked ------------------------------------------------------------
    def _listen_for_credentials(self, profile: Any) -> None:
        """Hear the profile's credentials failures (from any thread; see cloud/profile.py)."""
        old = self._listening_profile
        if old is profile:
            return
        if old is not None and hasattr(old, "remove_credentials_listener"):
            old.remove_credentials_listener(self._credentials_failure_heard)
        self._listening_profile = None
        if profile is not None and hasattr(profile, "add_credentials_listener"):
            profile.add_credentials_listener(self._credentials_failure_heard)
            self._listening_profile = profile

    def _credentials_failure_heard(self, message: str) -> None:
        """The profile's listener: any thread."""
        if self._exit or not self.is_running:
            return
        if self._loop is not None and threading.get_ident() != self._thread_id:
            # posted, never waited for: the reporting thread may hold a lock the UI thread wants
            try:
                self.call_later(self._credentials_failed_posted, message)  # a message: thread-safe
            except RuntimeError:  # the app is closing
                pass
            return
        self.credentials_failed(message)

    def _credentials_failed_posted(self, message: str) -> None:
        if not self._exit and self.is_running:
            self.credentials_failed(message)

    def credentials_failed(self, message: str) -> None:
        """A credentials failure (UI thread): open the re-authenticate modal unless it is open,
        the user chose Later a short while ago, or a re-authentication just succeeded."""
        now = time.monotonic()
        if self._reauth_screen is not None:
            self._reauth_screen.show_failure(message)
            return
        if self._reauth_ok_at is not None and now - self._reauth_ok_at < self.REAUTH_GRACE_SECONDS:
            return
        if self._reauth_later_at is not None and now - self._reauth_later_at < self.REAUTH_QUIET_SECONDS:
            return
        self._open_reauth(message)

    def action_reauthenticate(self) -> None:
        """ctrl+r / palette: open the re-authenticate modal now."""
        if self._reauth_screen is not None:
            return
        if self.profile is None:
            self.notify("Not connected to a cloud yet: nothing to sign in to.", title="Re-authenticate",
                        severity="warning", markup=False)
            return
        self._open_reauth("You asked to sign in again.")

    def _open_reauth(self, message: str) -> None:
        if self.profile is None:
            return
        from .screens.reauth import ReauthScreen

        self._reauth_screen = ReauthScreen(self.profile, message)
        self.push_screen(self._reauth_screen, callback=self._reauth_closed)

    def _reauth_closed(self, ok: bool | None) -> None:
        self._reauth_screen = None
        if ok:
            self._reauth_later_at = None
            self._reauth_ok_at = time.monotonic()
            if self.resume_screen is not None:
                self.resume_screen.credentials_renewed()  # it checks again if the cloud refused the last check
            self.notify("Signed in again. The pages carry on: watches reconnect, and an action that failed "
                        "can be pressed again.", title="Re-authenticated", markup=False)
        else:
            self._reauth_later_at = time.monotonic()
            self.notify("Calls to the cloud keep failing until you sign in again. When you have, press ctrl+r "
                        "(or the command palette's Re-authenticate).", title="Credentials still expired",
                        severity="warning", timeout=8, markup=False)

    def step_context(self):
        """The one StepContext (config + profile + state store) every step screen shares.
        Built on first use; follows config changes. None while no profile is connected."""
        if getattr(self, "_step_context", None) is None:
            if self.profile is None:
                return None
            from .steps.context import StepContext

            self._step_context = StepContext(self.cfg, self.profile, self.state_store)
        return self._step_context

    # config ----------------------------------------------------------------------------------
    def save_config(self, cfg: DeployConfig) -> None:
        """Make `cfg` the app's config (every page follows) and write the state file in a worker."""
        self.cfg = cfg
        if self.state_store is None:
            self.notify("Configuration applied (no state file in this session).", title="Saved")
            return
        self._write_state(cfg)

    def _write_state(self, cfg: DeployConfig) -> None:
        store = self.state_store

        def write() -> None:
            try:
                path = store.save(cfg)
            except (OSError, ValueError) as e:
                self.call_from_thread(self.notify, f"Could not write the state file: {e}",
                                      title="Not saved", severity="error", markup=False)
                return
            self.call_from_thread(self.notify, f"Configuration saved to {path}", title="Saved", markup=False)

        self.run_worker(write, thread=True, group="state-file", exclusive=True, exit_on_error=False)


SERVER_GONE_EXIT_SECONDS = 5.0  # a browser wizard whose server went away exits cleanly within this, else hard


def _browser_driver() -> type:
    """textual-serve's web driver, plus a watchdog: the wizard exits by itself when the server that
    started it goes away (its stdin ends, a write finds the pipe closed, or it is orphaned). Without
    it a wizard outlives a killed server forever, with nobody left to see or stop it."""
    from textual import messages
    from textual.drivers.web_driver import WebDriver

    class BrowserDriver(WebDriver):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self._parent_pid = os.getppid()
            self._gone = threading.Event()
            self._loop: asyncio.AbstractEventLoop | None = None
            raw_write = self._write

            def write(data: bytes) -> int:
                try:
                    return raw_write(data)
                except OSError:  # the server closed our stdout: nobody is watching
                    self._server_gone()
                    return len(data)

            self._write = write

        def start_application_mode(self) -> None:
            self._loop = asyncio.get_running_loop()
            super().start_application_mode()
            threading.Thread(target=self._watch_parent, name="rhaii-web-parent", daemon=True).start()

        def run_input_thread(self) -> None:
            super().run_input_thread()
            if not self.exit_event.is_set():  # stdin ended while the app runs: the server is gone
                self._server_gone()

        def _watch_parent(self) -> None:
            while not self.exit_event.wait(0.5):
                if os.getppid() != self._parent_pid:
                    self._server_gone()
                    return

        def _server_gone(self) -> None:
            if self._gone.is_set():
                return
            self._gone.set()
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(self._app._post_message(messages.ExitApp()), self._loop)
            # the clean exit releases the deploy lease; a stuck one is cut short
            timer = threading.Timer(SERVER_GONE_EXIT_SECONDS, os._exit, args=(0,))
            timer.daemon = True
            timer.start()

    return BrowserDriver


def run_wizard(cfg: DeployConfig, profile: Any = None, state_store: StateStore | None = None,
               start_step: int | None = None, *, startup_error: str | None = None,
               connect: Callable[[], Any] | None = None) -> int:
    """Run the wizard in the terminal; returns the exit code (the CLI's entry to the TUI).

    `connect`: optional; instead of a ready `profile`, a blocking callable that returns the profile
    (or `(profile, cfg)` to also replace the config). It runs in a thread after the first frame, so
    starting or health-checking the simulated world never delays the first paint; the header says
    "connecting…" meanwhile, and an exception becomes an error notification.

    Once connected the wizard probes every step: with no `start_step` it opens on where the
    deployment stands (screens/resume.py); with one, the probes only fill the sidebar.

    With RHAII_TUI_EXIT_AFTER_PAINT=1 the app exits once the start page has painted and prints
    `first-paint <unix time>` (the shell's first frame) and `page-ready <unix time>` (the start
    page's first frame) to stderr (benchmarks/startup.py uses them).
    """
    app = RhaiiApp(cfg, profile=profile, state_store=state_store, start_step=start_step,
                   startup_error=startup_error, connect=connect, resume=True)
    try:
        result = app.run()
    finally:
        if app._lease_keeper is not None:
            release_lease_briefly(app._lease_keeper)  # the next wizard need not wait for it to expire
    if os.environ.get(EXIT_AFTER_PAINT_ENV):  # benchmark mode only: users see no timing noise
        if app.first_paint_at is not None:
            print(f"first-paint {app.first_paint_at:.6f} cpu {app.first_paint_cpu:.6f}", file=sys.stderr)
        if app.page_ready_at is not None:
            print(f"page-ready {app.page_ready_at:.6f}", file=sys.stderr)
    return int(result or 0) if app.return_code in (0, None) else int(app.return_code or 1)


if __name__ == "__main__":  # pragma: no cover - manual run: python -m rhaii_tui.app
    from .config import resolve_config

    raise SystemExit(run_wizard(resolve_config(state=StateStore()), None, StateStore()))
