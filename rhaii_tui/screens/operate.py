"""Operate (page 12): the deployment at a glance and the day-two actions.

Status (replicas desired/ready, TPU nodes, pool size, gateway, image, cost per day now and after
the action being considered), the workload pods, and the actions of steps/operate/: scale the
replicas with the node pool, scale to zero and resume, rolling image update and roll back, tear
down (service, TPU pool, cluster), and the scale-out guide's migration checklist. Every billable or
destructive action goes through ConfirmCost (type the cluster name); progress lines go to the log
and the pods table follows the change. Reads and actions run in thread workers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Button, Collapsible, Input, Label, Log

from ..config import TPU_POOL_NAME, DeployConfig
from ..manifests import workload_deployment_name
from ..widgets.operate_status import OpsStatusPane
from ..widgets.operate_tables import ChecklistTable, OpsPodTable
from ..widgets.transcript_view import TranscriptPanel
from . import register_step_screen
from .base import StepScreen
from .pages import OPERATE

ACTION_BUTTONS = ("ops-scale", "ops-zero", "ops-resume", "ops-update", "ops-rollback", "ops-teardown-service",
                  "ops-teardown-node-pool", "ops-teardown-cluster", "ops-migrate", "ops-mig-rollback",
                  "ops-schedule", "ops-unschedule")


def cost_hint(status: Any, replicas_text: str = "") -> str:
    """'Cost per day now → after' for the action being considered (the replicas typed, else the
    usual alternatives)."""
    if status is None or status.cluster_status is None:
        return ""
    now = status.cost_now
    text = replicas_text.strip()
    if text.isdigit() and int(text) >= 1:
        n = int(text)
        if n == status.replicas_desired and n == status.pool_nodes:
            return f"Already {n} replica(s) on {n} TPU node(s) (≈ ${now:,.2f}/day): nothing to change"
        return (f"Scale to {n}: ≈ ${now:,.2f}/day now → ≈ ${status.cost_after('scale', n):,.2f}/day "
                f"({n} TPU node(s), {4 * n} chips)")
    zero = status.cost_after("scale-to-zero")
    if status.pool_nodes == 0:
        return (f"Now ≈ ${now:,.2f}/day. Resume to {status.resume_size}: "
                f"≈ ${status.cost_after('resume'):,.2f}/day · delete the cluster: $0/day")
    return (f"Now ≈ ${now:,.2f}/day. After: scale to zero ≈ ${zero:,.2f}/day · "
            f"delete the TPU pool ≈ ${zero:,.2f}/day · delete the cluster $0/day")


@register_step_screen(OPERATE)
class OperateScreen(StepScreen):
    """Day-two operations."""

    DEFAULT_CSS = """
    OperateScreen {
        .step-purpose { max-height: 2; }
        .step-commands CommandList { max-height: 3; }
        #ops-body { height: 1fr; padding: 0 1 0 0; }
        .ops-row { height: 1; margin: 1 0 0 0; }
        .ops-label { width: 11; color: $text-muted; }
        #ops-replicas { width: 8; }
        #ops-tag { width: 18; }
        #ops-when { width: 18; }
        .ops-row Button { margin: 0 0 0 1; min-width: 8; }
        .ops-section { margin: 1 0 0 0; }
        .ops-progress-head { height: 1; margin: 1 0 0 0; }
        .ops-progress-head .section-title { width: auto; }
        .ops-progress-head Button { margin: 0 0 0 2; min-width: 8; }
        #ops-log { height: 8; border: round $primary 40%; background: $surface; }
        #ops-migration { margin: 1 0 0 0; padding: 0; }
        #ops-migration .ops-row { margin: 0 0 1 0; }
    }
    """

    REFRESH_SECONDS = 3.0

    busy: reactive[bool] = reactive(False, init=False)

    def __init__(self, number: int = OPERATE, **kw: Any) -> None:
        super().__init__(number, **kw)
        self.status: Any = None
        self.result: Any = None            # the last action's OpResult
        self._stop: threading.Event | None = None
        self._app: Any = None
        self._gone = False
        self._timer: Any = None
        self._last_refresh = 0.0
        self._shown_sig: Any = None  # what the last status showed (minus the running spend)
        self._unchanged_reads = 0  # reads in a row that brought nothing new
        self._shown_state: Any = None
        self.status_reads = 0  # (tests read it)

    # composition -------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="ops-body"):
            yield OpsStatusPane(id="ops-status")
            with Horizontal(classes="ops-row"):
                yield Label("Replicas", classes="ops-label")
                yield Input(placeholder="N", id="ops-replicas", type="integer", compact=True)
                yield Button("Scale", id="ops-scale", compact=True)
                yield Button("Scale to zero", id="ops-zero", compact=True)
                yield Button("Resume", id="ops-resume", compact=True)
            with Horizontal(classes="ops-row"):
                yield Label("Zero at", classes="ops-label")
                yield Input(placeholder="2h, or 18:30 UTC", id="ops-when", compact=True)
                yield Button("Schedule", id="ops-schedule", compact=True)
                yield Button("Cancel", id="ops-unschedule", compact=True)
            with Horizontal(classes="ops-row"):
                yield Label("Image", classes="ops-label")
                yield Input(placeholder="tag, e.g. 3.3.0", id="ops-tag", compact=True)
                yield Button("Update image", id="ops-update", compact=True)
                yield Button("Roll back", id="ops-rollback", compact=True)
            with Horizontal(classes="ops-row"):
                yield Label("Tear down", classes="ops-label")
                yield Button("Service", id="ops-teardown-service", compact=True)
                yield Button(f"Node pool {TPU_POOL_NAME}", id="ops-teardown-node-pool", compact=True)
                yield Button("Cluster", id="ops-teardown-cluster", compact=True)
            yield Label("Replicas", classes="section-title ops-section")
            yield OpsPodTable(id="ops-pods")
            with Horizontal(classes="ops-progress-head"):
                yield Label("Progress", classes="section-title")
                yield Button("Stop following", id="ops-stop", compact=True, disabled=True)
            yield Log(id="ops-log", max_lines=400, auto_scroll=True)
            with Collapsible(title="Migrate from a single-model deployment (scale-out guide)", collapsed=True,
                             id="ops-migration"):
                with Horizontal(classes="ops-row"):
                    yield Button("Probe the checklist", id="ops-mig-probe", compact=True)
                    yield Button("Migrate", id="ops-migrate", compact=True)
                    yield Button("Roll back the migration", id="ops-mig-rollback", compact=True)
                yield ChecklistTable(id="ops-checklist")
            with Collapsible(title="Transcript: every change made, with its command", collapsed=True,
                             id="ops-transcript"):
                yield TranscriptPanel(id="transcript")

    def commands(self, cfg: DeployConfig) -> list[str]:
        base = list(self.page.commands(cfg))
        return base + [
            f"kubectl patch llminferenceservice {cfg.service} -n {cfg.namespace} --type merge "
            f"-p '{{\"spec\":{{\"replicas\":{cfg.replicas}}}}}'",
            f"gcloud container clusters resize {cfg.cluster} --node-pool {TPU_POOL_NAME} --num-nodes {cfg.replicas} "
            f"--project {cfg.project} --zone {cfg.zone}",
        ]

    # lifecycle ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._app = self.app  # workers report through it (a page that has gone has no app)

    def on_unmount(self) -> None:
        self._gone = True  # workers stop reporting
        if self._stop is not None:
            self._stop.set()  # the cloud operation keeps running; the status shows it on the next visit

    def step_entered(self) -> None:
        self._unchanged_reads = 0
        self._shown_state = None  # the first read on entry reports the page's state again
        self.refresh_status()

    IDLE_REFRESH_SECONDS = 15.0
    """With no operation running, the status is read this often (as the sidebar's re-probe); every
    REFRESH_SECONDS while one runs."""
    QUIET_REFRESH_SECONDS = 45.0
    """... and this often once QUIET_AFTER reads in a row brought nothing new (entering the page, an
    action or a read that shows a change go back to IDLE_REFRESH_SECONDS)."""
    QUIET_AFTER = 2

    def next_read_in(self) -> float | None:
        """Seconds until the next status read; None: none (a hidden page with nothing running reads
        when it is entered again)."""
        if self.busy:
            return self.REFRESH_SECONDS
        if not self.is_current:
            return None
        if self.ctx is None:
            return self.REFRESH_SECONDS  # not connected yet: look again soon
        return self.QUIET_REFRESH_SECONDS if self._unchanged_reads >= self.QUIET_AFTER else self.IDLE_REFRESH_SECONDS

    def _schedule_read(self) -> None:
        """One timer, armed after each read (no timer wakes between reads)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        delay = self.next_read_in()
        if delay is not None and not self._gone and self.is_attached:
            self._timer = self.set_timer(delay, self._tick, name="ops-read")

    def _tick(self) -> None:
        self._timer = None  # (it has run)
        if self.busy or self.is_current:
            self.refresh_status()

    def refresh_status(self) -> None:
        ctx = self.ctx
        self._last_refresh = time.monotonic()
        if ctx is None:
            self._show_hint("Not connected yet.")
            self._schedule_read()
            return
        self._read_status(ctx)

    def _ui(self, fn: Any, *args: Any, **kw: Any) -> bool:
        """Run `fn` on the UI thread (from a worker); False once the page or the app has gone."""
        app = self._app
        if app is None or self._gone:
            return False
        try:
            app.call_from_thread(fn, *args, **kw)
            return True
        except Exception:  # noqa: BLE001 - the app is closing
            return False

    def _show_hint(self, text: str) -> None:
        self.query_one(OpsStatusPane).show_hint(text)

    @work(thread=True, group="ops-status", exclusive=True, exit_on_error=False)
    def _read_status(self, ctx: Any) -> None:
        from ..steps import operate

        try:
            st = operate.read_status(ctx)
        except Exception as e:  # noqa: BLE001 - shown, never a traceback
            self._ui(self._read_failed, f"Could not read the status: {e}")
            return
        self._ui(self.show_status, st)

    def _read_failed(self, text: str) -> None:
        self._unchanged_reads = 0
        self._show_hint(text)
        self._schedule_read()

    @staticmethod
    def _signature(st: Any) -> Any:
        """What a read shows, but the running spend (it grows with every read)."""
        try:
            rows = tuple((k, v) for k, v in st.lines() if k != "Spent")
        except Exception:  # noqa: BLE001 - a status without its rows: always new
            return object()
        pods = tuple((p.get("metadata") or {}).get("resourceVersion") for p in st.raw_pods)
        return rows, pods, st.replicas_desired

    def show_status(self, st: Any) -> None:
        """Show a read; what did not change is not updated (an update re-lays out the page)."""
        self.status = st
        self.status_reads += 1
        sig = self._signature(st)
        self._unchanged_reads = self._unchanged_reads + 1 if sig == self._shown_sig else 0
        self._shown_sig = sig
        self.query_one(OpsStatusPane).show(st)
        self.query_one(OpsPodTable).show(st.raw_pods, time_scale=self._time_scale(),
                                         prefix=workload_deployment_name(st.service) + "-",
                                         pool_at_zero=st.pool_exists and st.pool_nodes == 0)
        self._update_hint()
        replicas = self.query_one("#ops-replicas", Input)
        if st.replicas_desired and replicas.placeholder != str(st.replicas_desired):
            replicas.placeholder = str(st.replicas_desired)
        state = st.state
        state_sig = (str(getattr(state, "status", "")), getattr(state, "summary", ""), getattr(state, "fix", None),
                     str(getattr(state, "detail", None)))
        if state_sig != self._shown_state:
            self._shown_state = state_sig
            self.set_state(state)
        self._schedule_read()

    def _time_scale(self) -> float:
        from ..steps.operators import time_scale_of

        return time_scale_of(self.profile) if self.profile is not None else 1.0

    def _update_hint(self) -> None:
        text = self.query_one("#ops-replicas", Input).value
        self.query_one(OpsStatusPane).show_hint(cost_hint(self.status, text))

    @on(Input.Changed, "#ops-replicas")
    def _replicas_changed(self) -> None:
        self._update_hint()

    def watch_busy(self, busy: bool) -> None:
        for bid in ACTION_BUTTONS:
            self.query_one(f"#{bid}", Button).disabled = busy
        self.query_one("#ops-stop", Button).disabled = not busy
        self._unchanged_reads = 0
        self._schedule_read()  # an operation runs: follow it every REFRESH_SECONDS

    # actions -------------------------------------------------------------------------------------
    @on(Button.Pressed, "#ops-scale")
    @on(Input.Submitted, "#ops-replicas")
    def _scale(self) -> None:
        raw = self.query_one("#ops-replicas", Input).value.strip()
        if not raw.isdigit() or int(raw) < 1:
            self.notify("Type the replicas wanted (1 or more); scale to zero stops the TPU nodes.",
                        severity="warning", markup=False)
            return
        self.ask("scale", n=int(raw))

    @on(Button.Pressed, "#ops-zero")
    def _zero(self) -> None:
        self.ask("scale-to-zero")

    @on(Button.Pressed, "#ops-resume")
    def _resume(self) -> None:
        self.ask("resume")

    @on(Button.Pressed, "#ops-schedule")
    @on(Input.Submitted, "#ops-when")
    def _schedule(self) -> None:
        """The scheduled scale-to-zero: a CronJob and the pool's autoscaling do it, the wizard need not run."""
        from ..steps.operate.schedule import deadline_from_text

        raw = self.query_one("#ops-when", Input).value
        try:
            deadline = deadline_from_text(raw, time.time())
        except ValueError as e:
            self.notify(str(e).replace("--after ", "").replace("--at ", ""), severity="warning", markup=False)
            return
        self.ask("schedule-zero", deadline=deadline)

    @on(Button.Pressed, "#ops-unschedule")
    def _unschedule(self) -> None:
        self.ask("cancel-schedule-zero")

    @on(Button.Pressed, "#ops-update")
    @on(Input.Submitted, "#ops-tag")
    def _update(self) -> None:
        tag = self.query_one("#ops-tag", Input).value.strip()
        if not tag:
            self.notify("Type the new image tag (e.g. 3.3.0) or a full image reference.", severity="warning",
                        markup=False)
            return
        self.ask("update-image", tag=tag)

    @on(Button.Pressed, "#ops-rollback")
    def _rollback(self) -> None:
        self.ask("rollback-image")

    @on(Button.Pressed, "#ops-teardown-service")
    @on(Button.Pressed, "#ops-teardown-node-pool")
    @on(Button.Pressed, "#ops-teardown-cluster")
    def _teardown(self, event: Button.Pressed) -> None:
        self.ask(str(event.button.id).removeprefix("ops-"))

    @on(Button.Pressed, "#ops-migrate")
    def _migrate(self) -> None:
        self.ask("migrate", n=int(self.cfg.replicas))

    @on(Button.Pressed, "#ops-mig-rollback")
    def _mig_rollback(self) -> None:
        self.ask("rollback-migration")

    @on(Button.Pressed, "#ops-stop")
    def _stop_pressed(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self.log_line("Stopping (what was sent to the cloud keeps going; run the action again to follow it)...")

    def ask(self, action: str, **kw: Any) -> None:
        """Describe the action (what, cost now and after); confirm it through ConfirmCost when it is
        billable or destructive; then run it."""
        from ..steps import operate
        from ..widgets.confirm_cost import ConfirmCost

        ctx = self.ctx
        if ctx is None or self.status is None:
            self.notify("Not connected yet: wait for the status to show.", severity="warning", markup=False)
            return
        if self.busy:
            self.notify("Another action is running: wait for it, or stop following it.", severity="warning",
                        markup=False)
            return
        try:
            conf = operate.describe(ctx, action, status=self.status, **kw)
        except Exception as e:  # noqa: BLE001 - a clear message, never a traceback
            self.notify(f"Cannot prepare {action}: {e}", severity="error", markup=False)
            return
        if conf.refused:
            self.notify(conf.refused + (f" {conf.fix}" if conf.fix else ""), title=conf.title, severity="error",
                        markup=False)
            return
        if not conf.needed:
            self.start(action, conf.title, **kw)
            return
        lines = list(conf.lines) + [f"now ≈ ${conf.cost_now:,.2f}/day; the cost below is once this is done"]

        def answered(ok: bool | None) -> None:
            if ok:
                self.start(action, conf.title, **kw)
            else:
                self.log_line(f"{conf.title}: cancelled, nothing changed.")

        self.app.push_screen(ConfirmCost(conf.title, lines, conf.cost_after, self.cfg.cluster,
                                         destructive=conf.destructive, what=conf.what,
                                         confirm_label="Delete" if conf.action.startswith("teardown") else "Confirm"),
                             callback=answered)

    def start(self, action: str, title: str, **kw: Any) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        if not self.lease_first(title, lambda: self.start(action, title, **kw)):
            return  # the wizard's one deploy lease first (asks when another rhaii-tui drives)
        self.busy = True
        self.result = None
        self._stop = threading.Event()
        self.app.lease_keeper.stop_on_loss(self._stop)  # another rhaii-tui took over: stop at the next step
        self.log_line(f"▶ {title}")
        self._run_action(ctx, action, kw, self._stop)

    @work(thread=True, group="ops-action", exclusive=True, exit_on_error=False)
    def _run_action(self, ctx: Any, action: str, kw: dict[str, Any], stop: threading.Event) -> None:
        from ..steps import operate

        def on_event(ev: Any) -> None:
            self._ui(self._event, ev)

        try:
            res = operate.run_action(ctx, action, on_event=on_event, stop=stop, **kw)
        except Exception as e:  # noqa: BLE001 - shown, never a traceback
            from ..logfile import report_hint

            logging.getLogger(__name__).exception("%s failed", action)
            res = operate.OpResult(action, False, f"Unexpected error: {type(e).__name__}: {e}",
                                   f"Please report it with {report_hint()}; the status shows where things stand.")
        if action == "teardown-cluster" and res.ok and self._app is not None:
            self._app.lease_keeper.release()  # the lease went with the cluster: stop renewing it
        self._ui(self._done, res)

    def _event(self, ev: Any) -> None:
        if ev.phase not in ("done", "failed"):
            self.log_line(f"{ev.phase}: {ev.message}")
        if time.monotonic() - self._last_refresh > 0.5:
            self.refresh_status()

    def _done(self, res: Any) -> None:
        self.result = res
        self.busy = False
        mark = "✔" if res.ok else ("↩" if res.rolled_back else "✘")
        self.log_line(f"{mark} {res.summary}")
        if res.fix and not res.ok:
            self.log_line(f"  Fix: {res.fix}")
        self.notify(res.summary, title=res.action, severity="information" if res.ok else "error", markup=False,
                    timeout=8)
        if res.config is not None:
            self.wizard.save_config(res.config)
        self.refresh_status()

    def log_line(self, text: str) -> None:
        self.query_one("#ops-log", Log).write_line(f"{time.strftime('%H:%M:%S')} {text}")

    # migration checklist -------------------------------------------------------------------------
    @on(Collapsible.Expanded, "#ops-migration")
    @on(Button.Pressed, "#ops-mig-probe")
    def _probe_checklist(self) -> None:
        ctx = self.ctx
        if ctx is not None:
            self._read_checklist(ctx)

    @work(thread=True, group="ops-checklist", exclusive=True, exit_on_error=False)
    def _read_checklist(self, ctx: Any) -> None:
        from ..steps import operate

        try:
            items = operate.migration_status(ctx)
        except Exception as e:  # noqa: BLE001
            self._ui(self.notify, f"Could not probe the checklist: {e}", severity="error", markup=False)
            return
        self._ui(self._show_checklist, items)

    def _show_checklist(self, items: Any) -> None:
        self.query_one(ChecklistTable).show(items)


__all__ = ["OperateScreen", "cost_hint"]
