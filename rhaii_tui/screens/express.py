"""Express: every piece of work starts as soon as what it needs holds, and a live timeline shows it.

The Express action (the start-up summary's button, the Configure page's E, the command palette)
calls `start_express(app)`: the billable plan of the run (`steps.express.ExpressRun.billable_plan`,
read in a worker) goes into ONE ConfirmCost with the total cost per day; once confirmed and the
deploy lease is checked, `ExpressScreen` shows the timeline (widgets/timeline.py) while the run
goes in a worker thread. The order of the work lives in steps/graph.py and steps/express.py only.

ExpressScreen is a full screen installed under the name "express", so it outlives being left:
a row (enter or a click) opens that step's page in the wizard (its live panes as ever) while the
run goes on; ctrl+e (or the palette) shows the timeline again. `s` / Stop sets the run's stop
event (running work reaches a safe point, nothing new starts); a failure in one branch shows its
diagnosis; when done, the time to serving on the cloud's clock. ctrl+q quits from here as
everywhere (what runs in the cloud keeps running).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Label, Static

from ..steps.podlife import fmt_duration
from ..widgets.confirm_cost import ConfirmCost
from ..widgets.timeline import Timeline, TimelineRows

SCREEN_NAME = "express"
THROUGH = 11  # the last step an express run takes (as `apply --express`); serving is said at step 9
SERVING_PIECES = ("first-serve", "verify")  # the first of these done: a completion answered through the gateway
NOT_CONNECTED = "Express needs a connection to the cloud: connect first (or run with --sim)."


def _error_text(e: BaseException) -> str:
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    fix = getattr(e, "fix", "")
    return f"{message} Fix: {fix}" if fix else str(message)


class _LeaseForRun:
    """The wizard's deploy lease (screens/lease_ui.WizardLease) as ExpressRun wants it: `ensure(step)`
    before a piece that changes the deployment (from the run's thread; the user may be asked, and
    choosing to watch only fails the run with that message), `lost` (a takeover sets the run's stop
    event instead, through `stop_on_loss`)."""

    lost = None

    def __init__(self, keeper: Any, ctx: Any) -> None:
        self.keeper = keeper
        self.ctx = ctx

    def ensure(self, step: Any) -> None:
        self.keeper.claim(self.ctx, "the express run")


def _run_factory() -> Callable[..., Any]:
    """How the screen builds its run: steps.express.ExpressRun through step THROUGH."""
    from ..steps.express import ExpressRun

    def make(ctx: Any, *, on_event: Any = None, stop: threading.Event | None = None, keeper: Any = None) -> Any:
        lease = _LeaseForRun(keeper, ctx) if keeper is not None else None
        return ExpressRun(ctx, on_event=on_event, stop=stop, through=THROUGH, lease=lease)

    return make


class ExpressScreen(Screen):
    """The timeline of an express run. `run_factory(ctx, on_event=, stop=)` builds the run."""

    DEFAULT_CSS = """
    ExpressScreen {
        layout: vertical;
        #ex-heading { height: 1; padding: 0 1; }
        #ex-title { width: auto; text-style: bold; color: $accent; text-wrap: nowrap; }
        #ex-target { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; text-align: right; }
        #ex-status { height: auto; max-height: 2; padding: 0 1; }
        #ex-timeline { height: auto; max-height: 1fr; margin: 1 0 0 0; }
        #ex-outcome-box { height: 1fr; min-height: 2; padding: 0 1; scrollbar-size-vertical: 1; }
        #ex-outcome { height: auto; }
        #ex-buttons { height: 1; padding: 0 1; }
        #ex-buttons Button { margin: 0 2 0 0; width: auto; }
    }
    """

    BINDINGS = [
        Binding("s", "stop", "Stop", tooltip="Stop the run: work under way reaches a safe point, nothing new starts"),
        Binding("escape", "back", "Back to the wizard",
                tooltip="The pages; the run goes on (ctrl+e shows the timeline again)"),
    ]

    class Heard(Message):
        """A PieceEvent from the run's thread, with the critical path as it stands."""

        def __init__(self, event: Any, critical: list[str] | None) -> None:
            super().__init__()
            self.event = event
            self.critical = critical

    class Finished(Message):
        """The run returned (result) or raised (error)."""

        def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, ctx: Any, *, target: str = "", run_factory: Callable[..., Any] | None = None,
                 keeper: Any = None) -> None:
        super().__init__()
        self.stop_event = threading.Event()
        self.ctx = ctx
        self.run = (run_factory or _run_factory())(ctx, on_event=self._heard, stop=self.stop_event, keeper=keeper)
        self.target = target
        self.served_at: float | None = None  # when verify finished (the result has the exact time)
        self._clock_done = threading.Event()  # set when the run ends or the screen goes
        self.started = False
        self.finished = False
        self.result: Any = None
        self.error: str | None = None
        self.events: list[Any] = []

    # composition -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="ex-heading"):
            yield Label("Express run", id="ex-title")
            yield Label(Content(self.target), id="ex-target")
        yield Static(Content.styled("Starting…", "$text-muted"), id="ex-status")
        yield Timeline(self.run.pieces, id="ex-timeline")
        with VerticalScroll(id="ex-outcome-box", can_focus=False):
            yield Static("", id="ex-outcome")
        with Horizontal(id="ex-buttons"):
            yield Button("Stop", id="ex-stop", compact=True, variant="warning",
                         tooltip="Stop: work under way reaches a safe point, nothing new starts")
            yield Button("Back to the wizard", id="ex-back", compact=True,
                         tooltip="The pages; the run goes on (ctrl+e shows the timeline again)")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TimelineRows).focus()
        if not self.started:
            self.started = True
            keeper = getattr(self.app, "lease_keeper", None)
            if keeper is not None and hasattr(keeper, "stop_on_loss"):
                keeper.stop_on_loss(self.stop_event)  # another wizard taking over stops the run
            self._status(Content.styled("Reading where the deployment stands…", "$text-muted"))
            self._run_worker()
            self._clock_worker()

    # the run (worker thread) ------------------------------------------------------------------------
    def _heard(self, event: Any) -> None:
        """ExpressRun's on_event, on the run's thread: hand over to the UI, never wait for it."""
        try:
            critical = list(self.run.critical_path())
        except Exception:  # noqa: BLE001 - not known yet (or not at all): the rows show without the mark
            critical = None
        try:
            self.post_message(self.Heard(event, critical))  # thread-safe, returns at once
        except RuntimeError:  # the app is closing
            pass

    @work(thread=True, exclusive=True, group="express-run", exit_on_error=False)
    def _run_worker(self) -> None:
        try:
            result = self.run.run()
        except Exception as e:  # noqa: BLE001 - said on screen, never a traceback
            self._post_finished(self.Finished(error=e))
            return
        self._post_finished(self.Finished(result=result))

    CLOCK_SECONDS = 1.0
    """How often the running bars grow between events (one read of the cloud's clock)."""

    class Clock(Message):
        """The run's clock (seconds since its start) read between events."""

        def __init__(self, now_s: float) -> None:
            super().__init__()
            self.now_s = now_s

    @work(thread=True, exclusive=True, group="express-clock", exit_on_error=False)
    def _clock_worker(self) -> None:
        """While the run goes: read the cloud's clock (simulated under --sim) so that running bars grow
        while no piece reports. The run's start on that clock is taken from the first event heard."""
        profile = getattr(self.ctx, "profile", None)
        read = getattr(profile, "cloud_now", None)
        if read is None:
            return
        t0: float | None = None
        while not self._clock_done.wait(self.CLOCK_SECONDS):
            if not self.events:
                continue
            try:
                now = float(read())
            except Exception:  # noqa: BLE001 - the bars wait for the next event instead
                continue
            # the run's start: never earlier than it was (an event is heard after it happened), so the
            # lowest estimate so far is the best one, and bars never run ahead of the run
            start = now - float(self.events[-1].at_s)
            if t0 is None or start < t0:
                t0 = start
            try:
                self.post_message(self.Clock(now - t0))
            except RuntimeError:  # the app is closing
                return

    @on(Clock)
    def _on_clock(self, message: "ExpressScreen.Clock") -> None:
        if not self.finished:
            self.query_one(Timeline).set_now(message.now_s)

    def _post_finished(self, message: "ExpressScreen.Finished") -> None:
        try:
            self.post_message(message)
        except RuntimeError:  # the app is closing
            pass

    @on(Heard)
    def _on_heard(self, message: "ExpressScreen.Heard") -> None:
        if not self.events:
            self._status(Content.styled("Running: each piece starts as soon as what it needs holds.", "$warning"))
        self.events.append(message.event)
        timeline = self.query_one(Timeline)
        if message.critical is not None:
            timeline.set_critical(message.critical)
        timeline.apply(message.event)
        self._follow_step(message.event.piece)
        ev = message.event
        if ev.piece in SERVING_PIECES and ev.status == "done" and self.served_at is None and not self.finished:
            self.served_at = float(ev.at_s)
            self._status(Content.assemble(("✔ Serving", "bold $success"),
                                          f": verified through the gateway {fmt_duration(ev.at_s)} after the "
                                          "start; the steps after it go on."))
        if message.event.status == "failed" and not self.finished:
            self._status(Content.assemble(
                ("✘ A branch failed: ", "bold $error"),
                "no new work starts; work under way reaches a safe point…"))
            if message.event.message:
                self._outcome(Content.assemble(("✘ ", "bold $error"), (self._title(message.event.piece), "bold"),
                                               ": ", str(message.event.message)))

    @on(Finished)
    def _on_finished(self, message: "ExpressScreen.Finished") -> None:
        self.finished = True
        self._clock_done.set()
        self.query_one("#ex-stop", Button).display = False
        self.refresh_bindings()
        timeline = self.query_one(Timeline)
        if message.error is not None:
            self.error = _error_text(message.error)
            self._status(Content.assemble(("✘ The express run stopped: ", "bold $error"), "see below."))
            self._outcome(Content.assemble(("✘ ", "bold $error"), self.error))
            return
        result = self.result = message.result
        try:
            timeline.set_critical(self.run.critical_path())
        except Exception:  # noqa: BLE001 - keep the mark as it stood
            pass
        timing = getattr(result, "timing", None) or {}
        clock = {"simulated": "simulated clock", "wall": "wall clock"}.get(str(timing.get("clock", "")), "cloud's clock")
        if getattr(result, "ok", False):
            tts = getattr(result, "time_to_serving_s", None)
            if tts is not None:
                timeline.set_now(float(tts))
            took = fmt_duration(tts) if tts is not None else "?"
            self._status(Content.assemble(("✔ Serving", "bold $success"),
                                          f": verified through the gateway {took} after the start ({clock})."))
            path = " → ".join(self._title(p) for p in timeline.critical_path if p in timeline.rows)
            self._outcome(Content.assemble(
                ("Time to serving: ", "bold"), (took, "bold $success"), f" ({clock})",
                *((("\nCritical path: ", "bold"), path) if path else ()),
                ("\nEnter on a row opens its step's page; Escape goes back to the wizard.", "$text-muted")))
            return
        failure = getattr(result, "failure", None)
        if self.stop_event.is_set() and not failure:
            self._status(Content.assemble(("■ Stopped", "bold"), ": nothing new started; what ran reached a safe "
                                          "point. Express again carries on from where the cloud stands."))
            return
        self._status(Content.assemble(("✘ A branch failed", "bold $error"),
                                      ": the run stopped at a safe point. Fix the cause, then Express again "
                                      "carries on from where the cloud stands."))
        step = (getattr(result, "data", None) or {}).get("step")
        self._outcome(Content.assemble(
            ("✘ Diagnosis\n", "bold $error"), str(failure or "no diagnosis given"),
            (f"\nEnter on its row opens step {step}'s page, with its live panes." if step else "", "$text-muted")))
        if step:
            self._highlight_step(int(step))

    def _follow_step(self, piece: str) -> None:
        """The sidebar follows the run: a step is in progress while one of its pieces runs; once all
        have ended it is probed (the cloud says, as everywhere in the wizard)."""
        timeline = self.query_one(Timeline)
        row = timeline.rows.get(piece)
        if row is None or not 1 <= row.step <= 11 or not hasattr(self.app, "set_step_state"):
            return
        mine = [r for r in timeline.rows.values() if r.step == row.step]
        from ..steps.base import Status, StepState

        if row.status == "running":
            self.app.set_step_state(row.step, StepState(Status.IN_PROGRESS, f"Express: {row.title.lower()}…"))
        elif all(r.status in ("done", "failed", "stopped", "skipped") for r in mine) and row.status != "skipped":
            self._probe_step(row.step)

    @work(thread=True, group="express-probe", exit_on_error=False)
    def _probe_step(self, number: int) -> None:
        if self.ctx is None:
            return
        from ..steps.registry import probe_all

        try:
            states = probe_all(self.ctx, steps=[number])
        except Exception:  # noqa: BLE001 - the periodic re-probe catches up
            return
        state = states.get(number)
        if state is not None:
            self.app.set_step_state(number, state)  # thread-safe

    def _highlight_step(self, step: int) -> None:
        """Put the cursor on the failed piece's row (Enter opens its page)."""
        timeline = self.query_one(Timeline)
        rows = self.query_one(TimelineRows)
        for row in timeline.rows.values():
            if row.step == step and row.status == "failed":
                rows.highlighted = rows.get_option_index(row.id)
                return

    def _title(self, piece: str) -> str:
        row = self.query_one(Timeline).rows.get(piece)
        return row.title if row is not None else piece

    def _status(self, content: Content) -> None:
        self.query_one("#ex-status", Static).update(content)

    def _outcome(self, content: Content) -> None:
        self.query_one("#ex-outcome", Static).update(content)

    # what the user does ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.started and not self.finished

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running and not self.stop_event.is_set()
        return True

    def action_stop(self) -> None:
        if not self.running or self.stop_event.is_set():
            return
        self.stop_event.set()
        self.query_one("#ex-stop", Button).disabled = True
        self.refresh_bindings()
        self._status(Content.assemble(("Stopping", "bold $warning"),
                                      ": work under way reaches a safe point, nothing new starts…"))

    def action_back(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()
            if self.running:
                self.app.notify("The express run goes on. ctrl+e shows its timeline again.", title="Express",
                                timeout=5, markup=False)

    @on(Button.Pressed, "#ex-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_stop()

    @on(Button.Pressed, "#ex-back")
    def _back_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_back()

    @on(Timeline.Selected)
    def _row_chosen(self, event: Timeline.Selected) -> None:
        """A row opens its step's page (the wizard's, with its live panes); the run goes on."""
        event.stop()
        if not 1 <= event.step <= 11:
            return
        if self.app.screen is self:
            self.app.pop_screen()
        self.app.goto_step(event.step)
        self.app.notify("ctrl+e shows the express timeline again.", title="Express", timeout=4, markup=False)

    def on_unmount(self) -> None:
        self.stop_event.set()  # the app is closing: the run stops at its next safe point
        self._clock_done.set()


# entry points (UI thread) ---------------------------------------------------------------------------


def express_screen(app: Any) -> ExpressScreen | None:
    """The installed express screen (the last run's), or None."""
    try:
        if app.is_screen_installed(SCREEN_NAME):
            screen = app.get_screen(SCREEN_NAME)
            return screen if isinstance(screen, ExpressScreen) else None
    except Exception:  # noqa: BLE001 - not installed
        return None
    return None


def show_timeline(app: Any) -> bool:
    """Show the express timeline if there is one (ctrl+e). True when shown."""
    screen = express_screen(app)
    if screen is None:
        return False
    if app.screen is not screen:
        app.push_screen(screen)
    return True


def start_express(app: Any, *, run_factory: Callable[..., Any] | None = None) -> None:
    """The Express action: the one confirmation of every billable action with the total cost per day,
    then the timeline. A run still going is shown instead of starting another."""
    current = express_screen(app)
    if current is not None and current.running:
        show_timeline(app)
        return
    ctx = app.step_context()
    if ctx is None:
        app.notify(NOT_CONNECTED, title="Express", severity="error", markup=False)
        return
    cfg = ctx.cfg
    errors = cfg.errors()
    if errors:
        app.notify(f"Fix the configuration first (Configure page): {errors[0]}", title="Express",
                   severity="error", markup=False)
        return
    from ..steps.context import StepContext

    # a private context: a config saved meanwhile must not retarget a run in flight
    run_ctx = StepContext(ctx.cfg, ctx.profile, ctx.state_store, secrets=ctx.secrets)
    target = f"{cfg.project} / {cfg.zone} / {cfg.cluster} / {cfg.namespace}"
    screen = ExpressScreen(run_ctx, target=target, run_factory=run_factory,
                           keeper=getattr(app, "lease_keeper", None))
    app.notify("Reading what the express run would create…", title="Express", timeout=3, markup=False)

    def plan() -> None:
        missing = _secrets_missing(run_ctx)
        if missing:
            _call(app, _secrets_first, app, missing)
            return
        try:
            lines, cost = screen.run.billable_plan()
        except Exception as e:  # noqa: BLE001 - said, not thrown
            _call(app, app.notify, f"Could not plan the express run: {_error_text(e)}", title="Express",
                  severity="error", timeout=12, markup=False)
            return
        _call(app, _confirm, app, screen, list(lines), float(cost), ctx)

    app.run_worker(plan, thread=True, group="express-plan", exclusive=True, exit_on_error=False)


def _secrets_missing(ctx: Any) -> list[str]:
    """The secrets step 3 will need that were not typed on its page (worker thread; [] when unknown:
    the run's step 3 then says it)."""
    try:
        from ..steps.registry import secrets_needed

        needed = secrets_needed(ctx)
        have = {spec.name for spec in ctx.secrets.specs}
    except Exception:  # noqa: BLE001
        return []
    return [n for n in needed if n not in have]


def _secrets_first(app: Any, missing: list[str]) -> None:
    """Before anything is asked or started: step 3's page, where the secrets are typed."""
    names = " and ".join(missing)
    app.goto_step(3)
    app.notify(f"Step 3 needs {names}, not in the cluster yet: type {'them' if len(missing) > 1 else 'it'} here "
               "(kept in memory only), then Express again (ctrl+p, Express; or the Configure page).",
               title="Express: secrets first", severity="warning", timeout=15, markup=False)


def _call(app: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        app.call_from_thread(fn, *args, **kwargs)
    except RuntimeError:  # the app is closing
        pass


def _confirm(app: Any, screen: ExpressScreen, lines: list[str], cost: float, ctx: Any) -> None:
    cfg = screen.run.ctx.cfg if hasattr(screen.run, "ctx") else ctx.cfg
    if not lines:  # the cluster and the TPU pool are there already: nothing to confirm
        app.notify("Nothing billable to create (the cluster and the TPU pool are there): starting.",
                   title="Express", timeout=5, markup=False)
        _begin(app, screen, ctx)
        return

    def answered(ok: bool | None) -> None:
        if ok:
            _begin(app, screen, ctx)

    app.push_screen(ConfirmCost("Express: deploy everything, several steps at once", lines, cost, cfg.cluster,
                                confirm_label="Start",
                                what="Express runs every step as soon as what it needs holds. It will create:"),
                    callback=answered)


def _begin(app: Any, screen: ExpressScreen, ctx: Any) -> None:
    keeper = getattr(app, "lease_keeper", None)
    ctx.step = "Express"  # the transcript names where the changes come from
    if keeper is not None and not keeper.ready(ctx, "the express run", lambda: _begin(app, screen, ctx)):
        return
    old = express_screen(app)
    if old is not None:
        if old in app.screen_stack:
            return  # (shown meanwhile: never two)
        app.uninstall_screen(SCREEN_NAME)
        old.remove()
    app.install_screen(screen, SCREEN_NAME)
    app.push_screen(screen)


__all__ = ["ExpressScreen", "start_express", "show_timeline", "express_screen", "SCREEN_NAME"]
