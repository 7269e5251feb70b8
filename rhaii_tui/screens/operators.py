"""Step 4: the operators, live from watches, and the Install action.

The status table (cert-manager, istiod, the KServe controller, LWS, the inference gateway with its
address, then the CRDs) is fed by `steps.operators.OperatorWatch`: list-watch-relist of the
operator namespaces' pods and of the Gateway (CRDs polled). Watch threads only raise a flag; the
screen re-renders from the watch cache when something changed (at most 10 times a second), and for
the ages when their text next changes (an age shown in minutes: once a minute; every second while
a component is not ready yet), updating only the cells that changed.

Install: `steps.operators.install(ctx, checkout, on_line)` in a thread worker. The connection
profile decides what that means: on a real cluster it runs the upstream rhaii-on-xks installer
from the checkout path given here and its output streams into the log pane (Stop ends it); where
the profile can install on the cluster side, the path is not needed. The guide's troubleshooting
appears when operator pods do not start or the gateway gets no address. Done when every operator
is ready, the gateway has an address and the CRDs exist.

`WatchingScreen` (used by step 5 too): starts a live watch when the page is shown and a cluster is
reachable (retrying while it is not), restarts it when the connection or the config changes, and
stops it when the page goes away. Watches never end the app: their state ("live",
"reconnecting ...") is shown.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Static

from ..steps import operators as ops
from ..steps.diagnose import Diagnosis
from ..steps.podlife import fmt_duration_changes_in
from ..widgets.diagnosis import DiagnosisPanel
from ..widgets.log_pane import LogPane
from ..widgets.operator_status import OperatorStatusTable
from . import register_step_screen
from .base import StepScreen


def watch_state_summary(states: dict[str, str]) -> tuple[str, str]:
    """(text, style) for a dict of watch states: 'live' when all are, else the first other one."""
    if not states:
        return "starting watches…", "$text-muted"
    bad = [(k, v) for k, v in states.items() if v not in ("live", "starting") and not v.startswith("waiting")]
    if not bad:
        waiting = [(k, v) for k, v in states.items() if v.startswith("waiting")]
        if waiting:
            return f"● live; {waiting[0][0]}: {waiting[0][1]}", "$text-muted"
        if all(v == "live" for v in states.values()):
            return f"● live ({len(states)} watches)", "$success"
        return "starting watches…", "$text-muted"
    name, state = bad[0]
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    style = "bold $error" if state.startswith("credentials") else "bold $warning"
    return f"◌ {name}: {state}{more}", style


class LiveChanged(Message, bubble=False):
    """A watch cache changed (posted from the watch threads to wake the page's render timer)."""


class WatchingScreen(StepScreen):
    """A step page that runs a live watch object (start()/stop()) while a cluster is reachable."""

    RETRY_SECONDS = 3.0
    RENDER_HZ = 10.0
    TICK_SECONDS = 1.0

    def __init__(self, number: int, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._live: Any = None
        self._starting = False
        self._gen = 0
        self._retry_timer: Any = None
        self._tick_timer: Any = None
        self._tick_due = 0.0  # monotonic time the armed tick fires
        self._dirty = threading.Event()
        self.watch_error: str = ""

    # hooks for subclasses ------------------------------------------------------------------------
    def make_watch(self, ctx: Any) -> Any:
        """Build and start the live object (runs in a thread; may raise CloudError)."""
        raise NotImplementedError

    def watch_started(self, live: Any) -> None:
        """The live object runs (UI thread)."""

    def render_live(self, live: Any, tick: bool) -> None:
        """Re-render from the live object (UI thread). `tick`: the pass for the time-dependent cells."""

    def next_tick_in(self, live: Any) -> float | None:
        """Seconds until the time-dependent display (ages, timed stages) next changes, or None when
        nothing on show depends on time: the tick sleeps until then (a watch change renders anyway)."""
        return self.TICK_SECONDS

    def show_watch_state(self, text: str, style: str = "$text-muted") -> None:
        """Show the watches' state (UI thread)."""

    def shown_watch_state(self, value: Any) -> bool:
        """Remember `value` as the watch state on show; True when it differs from the last one."""
        if getattr(self, "_watch_state_shown", None) == value:
            return False
        self._watch_state_shown = value
        return True

    # plumbing ----------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.watch(self.app, "profile", self._profile_changed, init=False)
        # the render timer sleeps while nothing changed (mark_dirty wakes it); the tick (a one-shot timer)
        # runs on the page on show when the time-dependent display next changes (schedule_tick)
        self._render_timer = self.set_interval(1 / self.RENDER_HZ, self._render_if_dirty, name="live-render",
                                               pause=True)

    def on_unmount(self) -> None:
        self.stop_watch()

    def on_resize(self) -> None:
        # short terminals: the live panes first (purpose and commands stay one key away: ?, palette)
        self.set_class(self.size.height < 30, "-short")

    ZOOM_DEFAULT = ".step-body"
    """Where `f` looks for a pane to zoom when nothing in the page has focus: its first focusable pane."""

    def action_zoom(self) -> None:
        """The focused pane gets the whole screen (with nothing focused: the page's main pane); again: back."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        target = self.app.focused
        if target is None or self not in target.ancestors:
            target = next((w for w in self.query(self.ZOOM_DEFAULT).first().query("*")
                           if w.focusable and w.display), None)
            if target is None:
                self.notify("Nothing to zoom here: Tab to a pane first.", timeout=3, markup=False)
                return
            target.focus()
        screen.maximize(target)

    def step_entered(self) -> None:
        self.ensure_watch()
        self._tick()  # catch up at once: a hidden page skipped its ticks

    def config_changed(self, cfg: Any) -> None:
        self.restart_watch()

    def _profile_changed(self, _profile: Any) -> None:
        self.restart_watch()

    def mark_dirty(self, *_args: Any) -> None:
        """Something changed in the watch cache (any thread): wake the render timer (post_message is
        thread-safe; one wake per quiet-to-dirty change)."""
        if not self._dirty.is_set():
            self._dirty.set()
            self.post_message(LiveChanged())

    def on_live_changed(self, _message: LiveChanged) -> None:
        timer = getattr(self, "_render_timer", None)
        if timer is not None:
            timer.resume()

    @property
    def live(self) -> Any:
        return self._live

    def ensure_watch(self) -> None:
        if self._live is not None or self._starting:
            return
        ctx = self.ctx
        if ctx is None:
            self.watch_error = "not connected"
            self.show_watch_state("not connected to a cloud yet", "$text-muted")
            return
        self._starting = True
        gen = self._gen
        self.show_watch_state("connecting to the cluster…", "$text-muted")

        def work() -> None:
            try:
                live = self.make_watch(ctx)
            except Exception as e:  # noqa: BLE001 - CloudError mostly; shown, retried
                message = getattr(e, "message", None) or str(e) or type(e).__name__
                fix = getattr(e, "fix", "") or ""
                self._from_thread(self._watch_failed, gen, message, fix)
                return
            if not self._from_thread(self._watch_ready, gen, live):
                _stop_quietly(live)

        self.run_worker(work, thread=True, group=f"watch-{self.number}", exit_on_error=False)

    def _from_thread(self, fn: Any, *args: Any) -> bool:
        try:
            self.app.call_from_thread(fn, *args)
            return True
        except Exception:  # noqa: BLE001 - the app is closing
            return False

    def _watch_ready(self, gen: int, live: Any) -> None:
        self._starting = False
        if gen != self._gen or not self.is_attached:
            _stop_in_thread(live)
            return
        self._live = live
        self.watch_error = ""
        self.watch_started(live)
        self._dirty.set()
        self._render_if_dirty()

    def _watch_failed(self, gen: int, message: str, fix: str) -> None:
        self._starting = False
        if gen != self._gen or not self.is_attached:
            return
        self.watch_error = message
        self.show_watch_state(f"cannot watch the cluster yet: {message}" + (f" — {fix}" if fix else ""),
                              "$warning")
        if self._retry_timer is not None:
            self._retry_timer.stop()
        self._retry_timer = self.set_timer(self.RETRY_SECONDS, self.ensure_watch)

    def stop_watch(self) -> None:
        self._gen += 1
        self._starting = False
        live, self._live = self._live, None
        if live is not None:
            _stop_in_thread(live)

    def restart_watch(self) -> None:
        if self._live is None and not self._starting and not self.is_current:
            return
        self.stop_watch()
        self.ensure_watch()

    def _render_if_dirty(self) -> None:
        if self._live is None or not self._dirty.is_set():
            self._render_timer.pause()  # nothing changed: sleep until mark_dirty
            return
        self._dirty.clear()
        live = self._live
        self.render_live(live, tick=False)
        if live is self._live:
            self.schedule_tick(self.next_tick_in(live))

    def schedule_tick(self, delay: float | None) -> None:
        """Arm the tick `delay` seconds from now (an earlier armed tick stays: it recomputes when it
        fires). None: no tick until the watch changes. Only the page on show ticks."""
        if delay is None or self._live is None or not self.is_current or not self.is_attached:
            return
        due = time.monotonic() + max(0.05, float(delay))
        if self._tick_timer is not None:
            if self._tick_due <= due + 0.01:
                return
            self._tick_timer.stop()
        self._tick_due = due
        self._tick_timer = self.set_timer(due - time.monotonic(), self._tick_fired, name="live-tick")

    def _tick_fired(self) -> None:
        self._tick_timer = None  # (it has run: nothing to stop)
        self._tick()

    def _tick(self) -> None:
        """The time-dependent cells (ages, timed stages) of the page on show, when they change; a
        hidden page does nothing (entering it renders at once: step_entered)."""
        if self._tick_timer is not None:
            self._tick_timer.stop()
            self._tick_timer = None
        if self._live is not None and self.is_current:
            self._dirty.clear()
            live = self._live
            self.render_live(live, tick=True)
            if live is self._live:
                self.schedule_tick(self.next_tick_in(live))


def _stop_quietly(live: Any) -> None:
    try:
        live.stop()
    except Exception:  # noqa: BLE001
        pass


def _stop_in_thread(live: Any) -> None:
    threading.Thread(target=_stop_quietly, args=(live,), daemon=True, name="live-stop").start()


def troubleshooting_diagnoses(view: Any) -> list[Diagnosis]:
    """The guide's troubleshooting for the rows that need it, with the live evidence."""
    out: list[Diagnosis] = []
    for key in ("operator-pods", "gateway-address"):
        rows = [r for r in view.rows if r.troubleshooting == key]
        if not rows:
            continue
        t = ops.TROUBLESHOOTING[key]
        evidence: list[str] = []
        for r in rows:
            if r.problem_pods:
                evidence += [f"{r.label} ({r.namespace}): {p}" for p in r.problem_pods]
            else:
                evidence.append(f"{r.label} ({r.namespace}): {r.detail}")
        out.append(Diagnosis(key, t["title"], tuple(evidence), t["text"], tuple(t["commands"]),
                             "error" if any(r.state == ops.FAILED for r in rows) else "warning"))
    return out


@register_step_screen(4)
class OperatorsScreen(WatchingScreen):
    """Step 4: operator status from watches, Install, troubleshooting."""

    DEFAULT_CSS = """
    OperatorsScreen {
        .step-state { max-height: 4; }  /* wraps: whole at 80 columns */
        .step-commands CommandList { max-height: 3; }
        .step-body { margin: 0; }
        #op-actions { height: 1; margin: 0 1 0 0; }
        #op-install { margin: 0 1 0 0; min-width: 20; }
        #op-checkout { width: 1fr; }
        #op-watch { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #op-table { height: auto; max-height: 13; margin: 0 1 0 0; }
        #op-detail { height: auto; max-height: 4; margin: 0 1 0 0; display: none; }
        #op-detail.-shown { display: block; }
        #op-trouble { height: auto; max-height: 7; display: none; border-top: solid $warning 50%; }
        #op-trouble.-shown { display: block; }
        #op-log { height: 1fr; min-height: 4; border-top: solid $primary 30%; }
        &.-short .step-purpose { display: none; }
        &.-short .step-commands CommandList { max-height: 1; }  /* one row, not a heading over nothing */
        &.-short #op-table { max-height: 8; }
        &.-short #op-trouble { max-height: 5; }
    }
    """

    BINDINGS = [
        Binding("i", "install", "Install", tooltip="Install the operators (rhaii-on-xks installer)"),
        Binding("f", "zoom", "Zoom", tooltip="Give the focused pane the whole screen (f again: back)"),
    ]

    CRD_INTERVAL = 2.0
    """Seconds between CRD polls (CRDs are few and change once, at install)."""

    def __init__(self, number: int = 4, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._gateway_restarted_at = -1e9
        self._installing = False
        self._install_stop: threading.Event | None = None
        self._last_state: tuple[str, str] | None = None
        self.view: Any = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="op-actions"):
            yield Button("Install operators", id="op-install", compact=True, variant="primary",
                         tooltip="Run the rhaii-on-xks installer (i); idempotent")
            yield Input(placeholder="rhaii-on-xks path (optional)", id="op-checkout", compact=True,
                        tooltip="The rhaii-on-xks checkout, when the installer runs on this machine")
        yield Label(Content.styled("not connected to a cloud yet", "$text-muted"), id="op-watch")
        yield OperatorStatusTable(id="op-table")
        yield Static(id="op-detail")  # the highlighted row's detail, whole, when the table cuts it
        yield DiagnosisPanel(id="op-trouble")
        yield LogPane(pickers=False, id="op-log", placeholder="installer output appears here")

    def on_unmount(self) -> None:
        if self._install_stop is not None:
            self._install_stop.set()  # the installer stops with the page (and with the app)

    # the live watch ---------------------------------------------------------------------------------
    def make_watch(self, ctx: Any) -> Any:
        return ops.OperatorWatch(ctx, on_change=self.mark_dirty, on_state=self.mark_dirty,
                                 crd_interval=self.CRD_INTERVAL).start()

    def show_watch_state(self, text: str, style: str = "$text-muted") -> None:
        if self.shown_watch_state((text, style)):  # unchanged: no update (a label update re-lays out the page)
            self.query_one("#op-watch", Label).update(Content.styled(text, style), layout=False)  # (fixed size)

    def render_live(self, live: Any, tick: bool) -> None:
        view = live.view()
        self.view = view
        self.query_one(OperatorStatusTable).show_view(view)
        self.show_detail_line()
        states = dict(live.states)
        gateway_crd = any(c.key == "gateways" and c.present for c in view.crds)
        if not states.get("gateway", "live").startswith(("live", "starting")):
            if not gateway_crd:
                # before the install the Gateway API does not exist: the watch retries, nothing is wrong
                states["gateway"] = "waiting for the Gateway API (comes with the operators)"
            elif time.monotonic() - self._gateway_restarted_at > 30.0:
                # the CRD just arrived; the gateway watch may be in a long back-off: start afresh
                self._gateway_restarted_at = time.monotonic()
                self.restart_watch()
                return
        self.show_watch_state(*watch_state_summary(states))
        diags = troubleshooting_diagnoses(view)
        panel = self.query_one("#op-trouble", DiagnosisPanel)
        panel.show(diags)
        panel.set_class(bool(diags), "-shown")
        state = view.state()
        sig = (str(state.status), state.summary)
        if sig != self._last_state:
            self._last_state = sig
            self.set_state(state)

    def next_tick_in(self, live: Any) -> float | None:
        """A row that is not ready yet may change with time alone (its detail, its state): every
        second. Ready rows only show their age: when its text next changes (at most once a second)."""
        view = self.view
        if view is None:
            return self.TICK_SECONDS
        scale = ops.time_scale_of(getattr(live, "ctx", None) or self.profile)
        soonest: float | None = None
        for r in view.rows:
            if r.age_seconds is None:
                continue
            if r.state != ops.READY:
                return self.TICK_SECONDS
            wait = fmt_duration_changes_in(r.age_seconds) / scale
            soonest = wait if soonest is None else min(soonest, wait)
        # (an age shown in seconds at a fast simulated pace changes many times a second: once a second)
        return None if soonest is None else max(self.TICK_SECONDS, soonest)

    # install -----------------------------------------------------------------------------------------
    def show_detail_line(self) -> None:
        """Under the table, the highlighted row's detail whole when the table cuts it (80 columns)."""
        line = self.query_one(OperatorStatusTable).detail_line()
        detail = self.query_one("#op-detail", Static)
        if getattr(detail, "_line", None) != line:
            detail._line = line  # type: ignore[attr-defined]
            detail.update(Content(line))
            detail.set_class(bool(line), "-shown")

    def on_resize(self) -> None:  # Textual calls each class's on_resize: no super() here
        self.call_after_refresh(self.show_detail_line)  # the table's columns follow the width

    @on(DataTable.RowHighlighted, "#op-table")
    def _row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_detail_line()

    @on(Button.Pressed, "#op-install")
    def _install_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_install()

    @on(Input.Submitted, "#op-checkout")
    def _checkout_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_install()

    def action_install(self) -> None:
        if self._installing:
            if self._install_stop is not None:
                self._install_stop.set()
            return
        ctx = self.ctx
        if ctx is None:
            self.notify("Connect to a cloud first (the wizard is not connected).", title="Not connected",
                        severity="warning", markup=False)
            return
        checkout = self.query_one("#op-checkout", Input).value.strip() or None
        if checkout is not None:
            path = Path(checkout).expanduser()
            if not path.is_dir():
                self.notify(f"{checkout} is not a directory. Enter the path of a rhaii-on-xks checkout "
                            "(git clone https://github.com/opendatahub-io/rhaii-on-xks).",
                            title="Installer checkout", severity="error", markup=False)
                return
            checkout = str(path)
        if not self.lease_first("installing the operators", self.action_install):
            return
        self._installing = True
        stop = threading.Event()
        self._install_stop = stop
        button = self.query_one("#op-install", Button)
        button.label = "Stop installer"
        button.variant = "warning"
        pane = self.query_one("#op-log", LogPane)
        pane.ingest("installer", "", [f"— install started {time.strftime('%H:%M:%S')} —"])

        def on_line(line: str) -> None:
            pane.ingest("installer", "", [line])

        def work() -> None:
            from ..cloud.gke import CloudError

            try:
                result = ops.install(ctx, checkout, on_line, stop=stop)
            except CloudError as e:
                self._from_thread(self._install_failed, e.message, e.fix, e.kind)
                return
            except Exception as e:  # noqa: BLE001 - shown, never a traceback
                self._from_thread(self._install_failed, str(e) or type(e).__name__, "", "unknown")
                return
            self._from_thread(self._install_done, result)

        self.run_worker(work, thread=True, group="op-install", exit_on_error=False)
        self.ensure_watch()

    def _install_finished(self) -> None:
        self._installing = False
        self._install_stop = None
        button = self.query_one("#op-install", Button)
        button.label = "Install operators"
        button.variant = "primary"

    def _install_done(self, result: Any) -> None:
        self._install_finished()
        code = getattr(result, "exit_code", None)
        severity = "error" if code not in (None, 0) else "information"
        self.notify(result.message, title="Operators", severity=severity, markup=False)
        self.mark_dirty()

    def _install_failed(self, message: str, fix: str, kind: str) -> None:
        self._install_finished()
        pane = self.query_one("#op-log", LogPane)
        pane.ingest("installer", "", [f"install failed: {message}"] + ([f"fix: {fix}"] if fix else []))
        self.notify(message + (f"\n{fix}" if fix else ""), title="Install failed", severity="error",
                    timeout=12, markup=False)
        if kind == "not_found":  # the installer needs a checkout: take the user there
            self.query_one("#op-checkout", Input).focus()


__all__ = ["OperatorsScreen", "WatchingScreen", "watch_state_summary", "troubleshooting_diagnoses"]
