"""Step 2 · GKE cluster and TPU node pool.

Shows exactly what will be created, reused or resized (`steps.cluster.plan`) and the cost per day.
Create and resize go through ConfirmCost (type the cluster name). Then one progress row per phase
(control plane, TPU node pool, TPU nodes Ready) with elapsed against the guide's expected time,
and a live node table (name, ready, zone, TPU label, age) that fills as nodes become Ready.

The work is `steps.cluster.ensure_cluster` in a thread worker with a stop event; progress comes
back as messages. Pages stay mounted, so leaving and returning keeps the follow running. A wizard
started while an operation runs reattaches to it (the plan's `in_flight`) and says so; following
is free, so it starts on its own, but anything billable after it still asks first.

Errors are CloudError: message and fix shown plainly; a stockout lists the zones that offer v6e
with a picker that saves the zone into the config. A button writes a kubeconfig entry.
"""

from __future__ import annotations

import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from ..config import CHIPS_PER_REPLICA, TPU_MACHINE_TYPE, TPU_POOL_NAME, DeployConfig
from ..steps.base import Status, StepState
from ..widgets.confirm_cost import ConfirmCost, cost_text
from ..widgets.op_progress import PhaseProgress, fmt_duration
from . import register_step_screen
from .base import StepScreen

NOT_CONNECTED = ("Not connected to a cloud: start the wizard with Google credentials "
                 "(gcloud auth application-default login) or with --sim.")
EXPECTED_CLUSTER = 300
EXPECTED_POOL = 900
NODE_COLUMNS = (("name", "Name"), ("ready", "Ready"), ("zone", "Zone"), ("tpu", "TPU"), ("age", "Age"))


def _get(row: Any, key: str, default: Any = None) -> Any:
    """NodeRow objects (progress) and their dicts (probe data) alike."""
    if isinstance(row, dict):
        return row.get(key, default)
    return getattr(row, key, default)


def stockout_parts(diag: dict[str, Any]) -> list[Any]:
    """Content parts for a named stockout (steps.stockout.Diagnosis.to_dict()): what bills now and
    each option with its cost, quota and the exact commands."""
    parts: list[Any] = ["\n", ("Already running and billing: ", "bold $warning"),
                        str((diag.get("billing") or {}).get("text", ""))]
    parts += ["\n", ("Options", "bold $warning"), " (run the commands; or, above, choose a zone or press "
              "Wait here):"]
    for i, o in enumerate(diag.get("options") or [], 1):
        cost = f"  ~${o['cost_per_day']:,.2f}/day" if o.get("cost_per_day") is not None else ""
        style = "bold" if o.get("available", True) else "$text-muted"
        parts += ["\n", (f" {i}. {o.get('title', '')}", style), (cost, "$accent"),
                  ("" if o.get("available", True) else "  (not available)", "$text-muted")]
        parts += ["\n", (f"    {o.get('detail', '')}", "$text-muted" if not o.get("available", True) else "")]
        for c in o.get("commands") or []:
            parts += ["\n", (f"    $ {c}", "$text-muted")]
    return parts


def _error_text(e: BaseException) -> tuple[str, str]:
    """(message, fix) of any exception, without a traceback."""
    message = getattr(e, "message", None)
    if message:
        return str(message), str(getattr(e, "fix", "") or "")
    return (f"Unexpected error: {e.__class__.__name__}: {e}",
            "Press r to read the cluster again; if it persists, report it with the log file.")


# --- messages from the workers ------------------------------------------------------------------


class PlanLoaded(Message, bubble=False):
    def __init__(self, gen: int, state: Any, plan: Any, elsewhere: list[str], error: Any, auto: bool,
                 time_scale: float, keep_error: bool = False) -> None:
        super().__init__()
        self.gen, self.state, self.plan, self.elsewhere = gen, state, plan, elsewhere
        self.error, self.auto, self.time_scale, self.keep_error = error, auto, time_scale, keep_error


class Progress(Message, bubble=False):
    def __init__(self, run: int, progress: Any) -> None:
        super().__init__()
        self.run = run
        self.progress = progress


class RunEnded(Message, bubble=False):
    def __init__(self, run: int, result: Any = None, error: Any = None, followed: Any = None) -> None:
        super().__init__()
        self.run = run
        self.result = result
        self.error = error
        self.followed = followed  # the operation a follow-only run followed


class KubeconfigWritten(Message, bubble=False):
    def __init__(self, path: Any = None, context: str = "", error: Any = None) -> None:
        super().__init__()
        self.path = path
        self.context = context
        self.error = error


@register_step_screen(2)
class ClusterScreen(StepScreen):
    """Step 2: plan, confirm, follow, nodes."""

    DEFAULT_CSS = """
    ClusterScreen {
        .step-state { max-height: 4; }  /* wraps: the summary and its fix, whole at 80 columns */
        .step-commands CommandList { max-height: 4; }
        #cl-body { height: 1fr; padding: 0 1 0 0; }
        #cl-plan { display: none; }
        #cl-plan.-shown { display: block; }
        #cl-plan { height: auto; border: round $primary 50%; border-title-color: $accent;
                   border-title-style: bold; padding: 0 1; }
        #cl-actions { height: auto; max-height: 3; margin: 1 0 0 0; }
        #cl-actions Button { margin: 0 2 0 0; display: none; }
        #cl-actions Button.-shown { display: block; }
        #cl-status { width: 1fr; height: auto; max-height: 3; color: $text-muted; }
        #cl-reattached { display: none; color: $accent; text-style: bold; margin: 0 0 1 0; }
        #cl-reattached.-shown { display: block; }
        #cl-error { display: none; height: auto; border: round $error; padding: 0 1; margin: 0 0 1 0; }
        #cl-error.-shown { display: block; }
        #cl-zone-row { display: none; height: 1; margin: 0 0 1 0; }
        #cl-zone-row.-shown { display: block; }
        #cl-zone-row Label { width: auto; padding: 0 1 0 0; }
        #cl-zone { width: 23; }
        #cl-zone-use { margin: 0 0 0 1; min-width: 13; }
        #cl-wait { margin: 0 0 0 1; min-width: 11; display: none; }
        #cl-wait.-shown { display: block; }
        #cl-phases { height: auto; margin: 1 0 0 0; display: none; }
        #cl-nodes-box { height: auto; display: none; }
        #cl-kube-box { height: auto; display: none; }
        #cl-phases.-shown, #cl-nodes-box.-shown, #cl-kube-box.-shown { display: block; }
        #cl-nodes { height: auto; max-height: 12; }
        #cl-kube-row { height: 1; margin: 1 0 0 0; }
        #cl-kube-row Label { width: 12; }
        #cl-kubeconfig { width: 1fr; }
        #cl-kube-write { margin: 0 0 0 2; }
        #cl-kube-msg { height: auto; color: $text-muted; }
        #cl-kube-msg.-error { color: $error; }
        .section-title { margin: 1 0 0 0; }
    }
    """

    BINDINGS = [
        Binding("A", "main", "Create / continue", key_display="A",
                tooltip="The step's main action as the plan stands: create, resize, replace or continue"),
        Binding("r", "refresh", "Refresh", tooltip="Read the cluster and the plan again"),
    ]

    MAIN_ACTIONS = ("#cl-create", "#cl-resize", "#cl-replace", "#cl-continue")

    def action_main(self) -> None:
        """A: the main action the plan offers now (the same button, with its confirmation), wherever the
        page is scrolled (at 80x24 the buttons can be below the fold)."""
        for sel in self.MAIN_ACTIONS:
            button = self.query_one(sel, Button)
            if button.has_class("-shown") and not button.disabled:
                button.scroll_visible()
                button.press()
                return
        self.notify("Nothing to create or continue now: " + ("wait for the plan to load."
                    if self._plan is None or self._loading else "the step is running or done."),
                    title=self.page.heading, timeout=4, markup=False)

    def __init__(self, number: int = 2, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._gen = 0  # plan loads
        self._run_id = 0  # ensure/follow runs
        self._busy = ""  # "" | "ensure" | "follow"
        self._loading = False
        self._need_load = True
        self._stop: threading.Event | None = None
        self._plan: Any = None
        self._state: Any = None
        self._last_error: Any = None
        self._time_scale = 1.0
        self._stale = False
        self._failed_pool = False
        self._stockout_waitable = False  # a stockout was named while GKE's operation still runs
        self._wait_note = ""  # "still waiting, as asked": shown while a Wait here run goes on
        self._op_clock: dict[str, tuple[float, float]] = {}  # op name -> (monotonic first seen, guide s then)

    # composition -------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="cl-body"):
            yield Label("", id="cl-reattached")
            with Horizontal(id="cl-zone-row"):  # above the error: a stockout's options make that long
                yield Label("Zones with TPU v6e:")
                yield Select([], id="cl-zone", compact=True, prompt="choose a zone", allow_blank=True)
                yield Button("Use this zone", id="cl-zone-use", compact=True)
                yield Button("Wait here", id="cl-wait", compact=True,
                             tooltip="Keep following the TPU pool although its instance group reports a stockout "
                                     "(GKE retries; it gives up after about 35 min)")
            yield Static("", id="cl-error")
            yield Static(Content.styled("Not read yet.", "$text-muted"), id="cl-plan")
            with Horizontal(id="cl-actions"):
                yield Button("Create…", id="cl-create", compact=True, variant="warning",
                             tooltip="Create what the plan lists (asks you to type the cluster name)")
                yield Button("Resize pool…", id="cl-resize", compact=True, variant="warning",
                             tooltip="Change the TPU pool's size (asks you to type the cluster name)")
                yield Button("Replace the failed pool…", id="cl-replace", compact=True, variant="warning",
                             tooltip="Delete the TPU pool in ERROR and create it again")
                yield Button("Continue", id="cl-continue", compact=True, variant="primary",
                             tooltip="Follow what is running and wait for the TPU nodes (nothing billable)")
                yield Button("Stop following", id="cl-stop", compact=True,
                             tooltip="Stop watching; the operation keeps running in Google Cloud")
                yield Label("", id="cl-status")
            with Vertical(id="cl-phases"):
                yield PhaseProgress("Control plane", EXPECTED_CLUSTER, id="phase-cluster")
                yield PhaseProgress("TPU node pool", EXPECTED_POOL, id="phase-pool")
                yield PhaseProgress("TPU nodes Ready", 0, id="phase-nodes")
            with Vertical(id="cl-nodes-box"):
                yield Label("TPU v6e nodes", classes="section-title")
                table: DataTable = DataTable(id="cl-nodes", cursor_type="row", zebra_stripes=False,
                                             show_cursor=False)
                for key, label in NODE_COLUMNS:
                    table.add_column(label, key=key)
                yield table
            with Vertical(id="cl-kube-box"):
                with Horizontal(id="cl-kube-row"):
                    yield Label("Kubeconfig")
                    yield Input(id="cl-kubeconfig", compact=True, placeholder="path of the kubeconfig to update")
                    yield Button("Write kubeconfig entry", id="cl-kube-write", compact=True,
                                 tooltip="Add this cluster's context (gke-gcloud-auth-plugin; no token stored)")
                yield Static("", id="cl-kube-msg")

    def on_mount(self) -> None:  # StepScreen.on_mount runs too
        self.watch(self.app, "profile", self._profile_changed, init=False)

    def on_unmount(self) -> None:
        if self._stop is not None:
            self._stop.set()  # the cloud operation keeps running; a later run reattaches

    # hooks ------------------------------------------------------------------------------------
    def step_entered(self) -> None:
        # re-read on every visit (the cluster may have moved on); a run in progress keeps going
        if not self._busy and not self._loading:
            self.load(auto=True, keep_error=not self._need_load)

    def config_changed(self, cfg: DeployConfig) -> None:
        if self._busy:
            self._stale = True  # reread once the current run ends (it targets the old config)
            return
        self._reset_view()
        self._need_load = True
        if self.is_current:
            self.load(auto=True)

    def _profile_changed(self, profile: Any) -> None:
        if self._stop is not None:
            self._stop.set()
        self._run_id += 1  # what the old connection's run still reports is ignored
        self._busy = ""
        self._reset_view()
        self._need_load = True
        if self.is_current:
            self.load(auto=True)

    def _reset_view(self) -> None:
        self._plan = None
        self._last_error = None
        self._show_error(None)
        self._set_reattached("")
        for bar in self.query(PhaseProgress):
            bar.reset()
        self.query_one("#cl-nodes", DataTable).clear()
        self.query_one("#cl-plan", Static).update(Content.styled("Not read yet.", "$text-muted"))
        self._show_buttons()

    # loading the plan -------------------------------------------------------------------------
    def action_refresh(self) -> None:
        if not self._busy:
            self.load(auto=True)

    def load(self, auto: bool = False, keep_error: bool = False) -> None:
        """Read the state and the plan (worker). `auto`: follow an operation already running.
        `keep_error`: the error a run just ended with stays shown (it says more than the probe)."""
        ctx = self.ctx
        if ctx is None:
            self._status(NOT_CONNECTED)
            return
        self._need_load = False
        self._gen += 1
        self._loading = True
        self._status(f"Reading cluster {self.cfg.cluster} in {self.cfg.zone}…")
        self._show_buttons()
        self._load_worker(ctx, self._gen, auto, keep_error)

    @work(thread=True, exclusive=True, group="cluster-plan", exit_on_error=False)
    def _load_worker(self, ctx: Any, gen: int, auto: bool, keep_error: bool) -> None:
        from ..steps import cluster as step

        state = plan = error = None
        elsewhere: list[str] = []
        time_scale = 1.0
        try:
            time_scale = float(getattr(ctx.profile, "time_scale", 1.0) or 1.0)
            state = step.probe(ctx)
            plan = step.plan(ctx)
            if not plan.exists:
                elsewhere = ctx.gke.find_elsewhere(ctx.cfg.cluster)
        except Exception as e:  # noqa: BLE001 - CloudError or anything: a message, not a traceback
            error = e
        self._post(PlanLoaded(gen, state, plan, elsewhere, error, auto, time_scale, keep_error))

    def _post(self, message: Message) -> None:
        try:
            self.post_message(message)
        except RuntimeError:  # the app is gone
            pass

    @on(PlanLoaded)
    def _plan_loaded(self, event: PlanLoaded) -> None:
        if event.gen != self._gen:
            return
        self._loading = False
        self._time_scale = event.time_scale
        for bar in self.query(PhaseProgress):
            bar.time_scale = event.time_scale
        if event.error is not None:
            self._fail(event.error, "Could not read the cluster")
            self._show_buttons()
            return
        self._plan, self._state = event.plan, event.state
        if event.elsewhere and event.plan is not None:
            event.plan.warnings.append(
                f"A cluster named {event.plan.cluster} already exists in {', '.join(event.elsewhere)}: step 2 "
                f"will refuse to create another in {event.plan.zone}. Set the zone back to {event.elsewhere[0]} "
                "to use it, delete it (Operate), or choose another cluster name (Configure).")
        self._show_plan(event.plan, event.state)
        self._show_state_nodes(event.state)
        self._show_phases_from_plan(event.plan, event.state)
        state = event.state
        keep = event.keep_error and self._last_error is not None
        if state is not None and not self._busy and not keep:
            self.set_state(state)
            self._status(state.summary)
        failed_pool = bool(state is not None and state.data.get("failed_pool"))
        if keep:
            self._failed_pool = self._failed_pool or failed_pool
            message, _fix = _error_text(self._last_error)
            self._status(f"Stopped: {message}")
        else:
            self._last_error = None
            self._show_error(None)
            if state is not None and state.status == Status.FAILED:
                self._show_error_text(state.summary, state.fix or "", failed_pool=failed_pool)
        self._show_buttons()
        if event.auto and not self._busy and event.plan.in_flight is not None:
            # a run started earlier (another wizard, a crash): follow it; following is free
            if event.plan.billable:
                self._start_follow(event.plan.in_flight)
            else:
                self._start_ensure()

    def _show_plan(self, plan: Any, state: Any) -> None:
        lines: list[Any] = []
        actions = list(plan.actions)
        pool_error = state is not None and state.data.get("pool_status") == "ERROR"
        if pool_error:  # a resize cannot mend a pool in ERROR: it is replaced (asks first)
            actions = [a for a in actions if not a.startswith("Resize")]
            actions.insert(0, f"Node pool {TPU_POOL_NAME} is in ERROR: once the cause is fixed, replace it "
                              "(delete and create again; asks you to confirm).")
        if plan.exists:
            # a short title (a border title is cut, not wrapped); the cluster's name heads the checks
            title = "Cluster exists: reused after these checks"
            checks = [
                (True, f"{plan.cluster} in {plan.zone}"),
                (plan.status == "RUNNING", f"status {plan.status}"),
                (plan.pool_exists and not pool_error, f"node pool {TPU_POOL_NAME} "
                 + ("in ERROR" if pool_error else "exists" if plan.pool_exists else "missing")),
            ]
            if plan.pool_exists and plan.pool_nodes is not None and not pool_error:
                checks.append((plan.pool_nodes >= plan.replicas, f"{plan.pool_nodes} of {plan.replicas} TPU nodes"))
            pieces: list[Any] = []
            for i, (ok, text) in enumerate(checks):
                pieces += [("   " if i else ""), ("✔ " if ok else "✘ ", "bold $success" if ok else "bold $error"), text]
            lines.append(Content.assemble(*pieces))
            # reuse lines are said by the checks above; list only what will change or be waited for
            actions = [a for a in actions if not a.startswith("Reuse")]
        else:
            title = "What step 2 will create"
        for action in actions:
            lines.append(Content.assemble(("• ", "$accent"), action))
        if plan.in_flight is not None:
            lines.append(Content.assemble(("⟳ ", "bold $accent"), f"Running now: {plan.in_flight.describe()}"))
        for warning in plan.warnings:
            lines.append(Content.assemble(("▲ ", "bold $warning"), (warning, "$warning")))
        lines.append(Content.assemble(cost_text(plan.cost_per_day)))
        lines.append(Content.styled(
            f"{plan.replicas} × {TPU_MACHINE_TYPE} ({plan.chips} TPU v6e chips); with the TPU pool at zero nodes "
            f"the cluster alone is ≈ ${plan.cost_scaled_to_zero:,.2f}/day."
            + (" Creating or resizing asks you to confirm first." if plan.billable else ""), "$text-muted"))
        box = self.query_one("#cl-plan", Static)
        box.border_title = title
        box.update(Content("\n").join(lines))

    def _show_phases_from_plan(self, plan: Any, state: Any) -> None:
        """Phases already behind us (cluster/pool exist) read as done, without timings."""
        if self._busy:
            return
        cluster_bar = self.query_one("#phase-cluster", PhaseProgress)
        pool_bar = self.query_one("#phase-pool", PhaseProgress)
        if plan.exists and plan.status == "RUNNING":
            cluster_bar.finish("done", f"{plan.cluster} RUNNING")
        if plan.pool_exists and (state is None or state.data.get("pool_status") not in ("ERROR", "PROVISIONING")):
            pool_bar.finish("done", f"{TPU_POOL_NAME} exists")
        elif state is not None and state.data.get("pool_status") == "ERROR":
            pool_bar.finish("failed", f"{TPU_POOL_NAME} is in ERROR")
        data = state.data if state is not None else {}
        if "nodes_ready" in data:
            self._show_nodes_bar(int(data["nodes_ready"]), int(data.get("nodes_wanted") or plan.replicas), final=True)

    def _show_state_nodes(self, state: Any) -> None:
        if state is not None and "nodes" in state.data:
            self._update_nodes(state.data["nodes"])

    # creating, resizing, following --------------------------------------------------------------
    def _confirm(self, title: str, lines: list[str], cost: float, then: Any, what: str | None = None) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmCost(title, lines, cost, self.cfg.cluster, confirm_label="Create"
                                         if "Create" in title else "Confirm", what=what), callback=answered)

    @on(Button.Pressed, "#cl-create")
    def _create_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        plan = self._plan
        if plan is None or self._busy or not (plan.creates_cluster or plan.creates_pool):
            return
        lines = [a for a in plan.actions if a.startswith("Create")]
        title = "Create the GKE cluster and TPU node pool" if plan.creates_cluster else "Create the TPU node pool"
        self._confirm(title, lines, plan.cost_per_day, lambda: self._start_ensure())

    @on(Button.Pressed, "#cl-resize")
    def _resize_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        plan = self._plan
        if plan is None or self._busy or plan.resize is None:
            return
        current, wanted = plan.resize
        verb = "adds" if wanted > current else "removes"
        lines = [f"node pool {TPU_POOL_NAME}: {current} → {wanted} × {TPU_MACHINE_TYPE} ({verb} "
                 f"{abs(wanted - current)} node(s), {wanted * CHIPS_PER_REPLICA} chips in all)"]
        self._confirm(f"Resize node pool {TPU_POOL_NAME}", lines, self.cfg.cost_per_day(wanted),
                      lambda: self._start_ensure(resize=True), what="This will change:")

    @on(Button.Pressed, "#cl-replace")
    def _replace_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self._busy:
            return
        n = self.cfg.replicas
        lines = [f"delete node pool {TPU_POOL_NAME} (in ERROR, no working nodes)",
                 f"create node pool {TPU_POOL_NAME}: {n} × {TPU_MACHINE_TYPE} ({n * CHIPS_PER_REPLICA} chips)"]
        self._confirm("Replace the failed TPU node pool", lines, self.cfg.cost_per_day(),
                      lambda: self._start_ensure(replace_failed_pool=True), what="This will:")

    @on(Button.Pressed, "#cl-continue")
    def _continue_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        plan = self._plan
        if self._busy or (plan is not None and plan.billable and plan.in_flight is None):
            return
        self._start_ensure()

    @on(Button.Pressed, "#cl-wait")
    def _wait_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self._busy:
            return
        self._stockout_waitable = False
        self._start_ensure(keep_waiting=True)

    @on(Button.Pressed, "#cl-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self._stop is not None:
            self._stop.set()
            self._status("Stopping… (the operation keeps running in Google Cloud)")

    def _begin_run(self, kind: str) -> tuple[Any, int, threading.Event] | None:
        ctx = self.ctx
        if ctx is None:
            self._status(NOT_CONNECTED)
            return None
        from ..steps.context import StepContext

        # a private context: a config saved meanwhile must not retarget a run in flight
        run_ctx = StepContext(ctx.cfg, ctx.profile, ctx.state_store, secrets=ctx.secrets)
        self._run_id += 1
        self._wait_note = ""
        self._busy = kind
        self._stop = threading.Event()
        self._last_error = None
        self._show_error(None)
        self._show_buttons()
        return run_ctx, self._run_id, self._stop

    def _start_ensure(self, *, resize: bool = False, replace_failed_pool: bool = False,
                      keep_waiting: bool = False) -> None:
        what = ("resizing the TPU node pool" if resize else "replacing the TPU node pool" if replace_failed_pool
                else "creating the cluster or its TPU node pool")  # no lease while there is no cluster yet
        if not self.lease_first(what, lambda: self._start_ensure(resize=resize, replace_failed_pool=replace_failed_pool,
                                                                 keep_waiting=keep_waiting)):
            return
        begun = self._begin_run("ensure")
        if begun is None:
            return
        run_ctx, run_id, stop = begun
        self._status("Starting…")
        self.set_state(StepState(Status.IN_PROGRESS, f"Working on cluster {run_ctx.cfg.cluster}…"))
        self._ensure_worker(run_ctx, run_id, stop, resize, replace_failed_pool, keep_waiting)

    @work(thread=True, exclusive=True, group="cluster-run", exit_on_error=False)
    def _ensure_worker(self, ctx: Any, run_id: int, stop: threading.Event, resize: bool,
                       replace_failed_pool: bool, keep_waiting: bool = False) -> None:
        from ..steps.cluster import ensure_cluster

        try:
            result = ensure_cluster(ctx, lambda p: self._post(Progress(run_id, p)), resize=resize, stop=stop,
                                    replace_failed_pool=replace_failed_pool, keep_waiting=keep_waiting)
        except Exception as e:  # noqa: BLE001
            self._post(RunEnded(run_id, error=e))
            return
        self._post(RunEnded(run_id, result=result))

    def _start_follow(self, op: Any) -> None:
        begun = self._begin_run("follow")
        if begun is None:
            return
        run_ctx, run_id, stop = begun
        self._set_reattached(f"⟳ Reattached to operation {op.name} ({op.op_type.replace('_', ' ').lower()}), "
                             "started earlier; following it.")
        self.set_state(StepState(Status.IN_PROGRESS, f"Following {op.describe()}."))
        self._follow_worker(run_ctx, run_id, stop, op)

    @work(thread=True, exclusive=True, group="cluster-run", exit_on_error=False)
    def _follow_worker(self, ctx: Any, run_id: int, stop: threading.Event, op: Any) -> None:
        from ..steps.cluster import ClusterProgress

        phase = {"CREATE_CLUSTER": "create-cluster", "CREATE_NODE_POOL": "create-pool"}.get(op.op_type, "resize-pool")
        try:
            done = ctx.gke.wait(op, lambda p: self._post(Progress(run_id, ClusterProgress(
                phase, f"Reattached to {p.op.describe()}: {p.message}", p, reattached=True))), stop=stop)
        except Exception as e:  # noqa: BLE001
            self._post(RunEnded(run_id, error=e))
            return
        self._post(RunEnded(run_id, followed=done))

    # progress --------------------------------------------------------------------------------
    @on(Progress)
    def _progress(self, event: Progress) -> None:
        if event.run != self._run_id:
            return
        p = event.progress
        self._status(p.message)
        if isinstance(p.stockout, dict) and p.stockout.get("waiting"):  # stays up while the follow goes on
            self._wait_note = f"⏳ {p.message}"
            self._set_reattached(self._wait_note)
        bar = {"create-cluster": "#phase-cluster", "create-pool": "#phase-pool",
               "resize-pool": "#phase-pool"}.get(p.phase)
        if p.op is not None and p.reattached and not self._wait_note:
            self._set_reattached(f"⟳ Reattached to operation {p.op.op.name} "
                                 f"({p.op.op.op_type.replace('_', ' ').lower()}), started earlier; following it.")
        if bar is not None:
            widget = self.query_one(bar, PhaseProgress)
            if p.phase == "resize-pool":
                widget.query_one(".phase-label", Label).update("Pool resize")
            if p.phase == "create-pool":
                self.query_one("#phase-cluster", PhaseProgress).finish("done")
            if p.op is not None:
                op = p.op.op
                elapsed = self._op_elapsed(op.name, p.op.elapsed, p.reattached or self._busy == "follow")
                note = op.stage or op.detail or op.status.lower()
                if p.op.reconnecting:
                    note = f"reconnecting ({p.op.reconnecting})"
                if op.done and not op.error_text:
                    widget.advance(p.op.fraction, elapsed, "done", expected=p.op.expected)
                    widget.finish("done")
                elif op.done:
                    widget.finish("failed", "failed")
                else:  # the bar follows time against the guide's estimate; past it, says why
                    widget.follow_operation(op, elapsed, note, expected=p.op.expected)
            elif widget.state != "done":
                widget.advance(note=p.message)
        elif p.phase == "wait-nodes":
            for sel in ("#phase-cluster", "#phase-pool"):
                other = self.query_one(sel, PhaseProgress)
                if other.state in ("running", "waiting"):
                    other.finish("done")
            self._show_nodes_bar(p.nodes_ready, p.nodes_wanted)
            if p.nodes:
                self._update_nodes(p.nodes)
        elif p.phase == "done":
            for bar_widget in self.query(PhaseProgress):
                if bar_widget.state != "failed":
                    bar_widget.finish("done")
            if p.nodes:
                self._update_nodes(p.nodes)
            self._show_nodes_bar(p.nodes_ready, p.nodes_wanted, final=True)

    def _op_elapsed(self, name: str, reported: float, reattached: bool) -> float:
        """Guide seconds an operation has run. Measured here from when it was first seen (the
        operation's timestamps have one-second resolution, too coarse at the emulator's speed); an
        operation found running (reattached) starts from the age its start time gives."""
        import time

        now = time.monotonic()
        first = self._op_clock.get(name)
        if first is None:
            first = (now, reported * self._time_scale if reattached else 0.0)
            self._op_clock[name] = first
        return first[1] + (now - first[0]) * self._time_scale

    def _show_nodes_bar(self, ready: int, wanted: int, final: bool = False) -> None:
        bar = self.query_one("#phase-nodes", PhaseProgress)
        note = f"{ready} of {wanted} Ready"
        bar.advance((ready / wanted) if wanted else 0.0, None, note)
        if final:
            bar.finish("done" if wanted and ready >= wanted else "waiting", note)

    def _update_nodes(self, nodes: list[Any]) -> None:
        """Keyed rows: add new nodes, update changed cells, drop vanished ones (no clear())."""
        table = self.query_one("#cl-nodes", DataTable)
        seen = set()
        for n in nodes:
            name = str(_get(n, "name", ""))
            if not name:
                continue
            seen.add(name)
            ready = bool(_get(n, "ready", False))
            status = str(_get(n, "status", "Ready" if ready else "NotReady"))
            cells = {
                "name": name,
                "ready": ("✔ " if ready else "… ") + status,
                "zone": str(_get(n, "zone", "")),
                "tpu": f"{_get(n, 'accelerator', '') or '—'} {_get(n, 'topology', '')}".strip()
                       + (f" · {_get(n, 'tpu_chips', 0)} chips" if _get(n, "tpu_chips", 0) else ""),
                "age": fmt_duration(float(_get(n, "age_seconds", 0.0) or 0.0) * self._time_scale),
            }
            if name in table.rows:
                for key, value in cells.items():
                    table.update_cell(name, key, value, update_width=True)
            else:
                table.add_row(*[cells[k] for k, _ in NODE_COLUMNS], key=name)
        for key in list(table.rows):
            if key.value not in seen:
                table.remove_row(key)

    @on(RunEnded)
    def _run_ended(self, event: RunEnded) -> None:
        if event.run != self._run_id:
            return
        kind = self._busy
        self._busy = ""
        self._stop = None
        stale, self._stale = self._stale, False
        if stale:
            self._reset_view()
        if event.error is not None:
            details = getattr(event.error, "details", {}) or {}
            if details.get("detached"):
                message, fix = _error_text(event.error)
                self._status(f"{message} {fix}".strip())
                self.set_state(StepState(Status.IN_PROGRESS, message, fix=fix))
                self._show_buttons()
                return
            for bar in self.query(PhaseProgress):
                if bar.state == "running":
                    bar.finish("failed")
            self._fail(event.error, "Step 2 stopped")
            self.load(auto=False, keep_error=True)
            return
        result = event.result
        if result is not None and result.resize_needed is not None:
            current, wanted = result.resize_needed
            self._status(f"Node pool {TPU_POOL_NAME} has {current} node(s); {wanted} wanted: resize it to go on.")
        elif result is not None:
            ready = result.nodes_ready
            self._status(f"Cluster {result.cluster.name} RUNNING with {ready} TPU v6e node(s) Ready.")
        elif kind == "follow" and event.followed is not None:
            if not event.followed.done:  # stopped by the user: do not pick it up again by itself
                self._status(f"Stopped following {event.followed.describe()}; it keeps running in Google Cloud. "
                             "Press r to follow it again.")
                self.set_state(StepState(Status.IN_PROGRESS, f"{event.followed.describe()} (not followed)."))
                self._show_buttons()
                return
            self._status(f"{event.followed.describe()} finished.")
        self.load(auto=kind == "follow")

    # errors -----------------------------------------------------------------------------------
    def _fail(self, error: Any, summary: str) -> None:
        self._last_error = error
        message, fix = _error_text(error)
        details = getattr(error, "details", {}) or {}
        self._show_error_text(message, fix, alternatives=details.get("alternatives") or (),
                              failed_pool=bool(details.get("failed_pool")), stockout=details.get("stockout"))
        self._status(f"{summary}: {message}")
        self.set_state(StepState(Status.FAILED, message, fix=fix,
                                 data={"error_kind": getattr(error, "kind", "unknown")}))

    def _show_error_text(self, message: str, fix: str, alternatives: Any = (), failed_pool: bool = False,
                         stockout: Any = None) -> None:
        box = self.query_one("#cl-error", Static)
        parts: list[Any] = [("✘ ", "bold $error"), (message, "bold")]
        if fix:  # with a stockout's options below, the fix's own summary of them is left out
            parts += ["\n", ("Fix: ", "bold $warning"),
                      fix.split(" Options: ")[0] if isinstance(stockout, dict) else fix]
        if isinstance(stockout, dict):
            parts += stockout_parts(stockout)
        box.update(Content.assemble(*parts))
        self._stockout_waitable = isinstance(stockout, dict) and any(
            "--keep-waiting" in c for o in stockout.get("options", []) if o.get("key") == "wait"
            for c in o.get("commands", []))
        box.add_class("-shown")
        zones = [z for z in alternatives if z != self.cfg.zone]
        row = self.query_one("#cl-zone-row")
        row.set_class(bool(zones), "-shown")
        if zones:
            self.query_one("#cl-zone", Select).set_options([(z, z) for z in zones])
        self._failed_pool = failed_pool
        self._show_buttons()

    def _show_error(self, error: Any) -> None:
        if error is None:
            self.query_one("#cl-error", Static).remove_class("-shown")
            self.query_one("#cl-zone-row").remove_class("-shown")
            self._failed_pool = False
            self._stockout_waitable = False

    @on(Button.Pressed, "#cl-zone-use")
    def _zone_use(self, event: Button.Pressed) -> None:
        event.stop()
        zone = self.query_one("#cl-zone", Select).value
        if zone is Select.NULL or not zone:
            self.notify("Choose a zone first.", severity="warning", timeout=3)
            return
        self.wizard.save_config(self.cfg.replace(zone=str(zone)))
        self._status(f"Zone set to {zone}; reading the plan for it…")

    # kubeconfig -------------------------------------------------------------------------------
    @on(Button.Pressed, "#cl-kube-write")
    def _kube_write(self, event: Button.Pressed) -> None:
        event.stop()
        ctx = self.ctx
        if ctx is None:
            return
        path = self.query_one("#cl-kubeconfig", Input).value.strip() or None
        self.query_one("#cl-kube-write", Button).disabled = True
        self._kube_worker(ctx, path)

    @work(thread=True, exclusive=True, group="cluster-kubeconfig", exit_on_error=False)
    def _kube_worker(self, ctx: Any, path: str | None) -> None:
        try:
            info = ctx.cluster(refresh=True)
            if info is None:
                from ..cloud.gke import CloudError

                raise CloudError("not_found", f"Cluster {ctx.cfg.cluster} does not exist in {ctx.cfg.zone}.",
                                 "Create it first.")
            written = ctx.gke.write_kubeconfig(info, path)
            self._post(KubeconfigWritten(written, ctx.gke.context_name(info.name)))
        except Exception as e:  # noqa: BLE001
            self._post(KubeconfigWritten(error=e))

    @on(KubeconfigWritten)
    def _kube_written(self, event: KubeconfigWritten) -> None:
        self.query_one("#cl-kube-write", Button).disabled = False
        msg = self.query_one("#cl-kube-msg", Static)
        if event.error is not None:
            message, fix = _error_text(event.error)
            msg.update(Content.assemble(("✘ ", "bold"), message, (" " + fix if fix else "", "")))
            msg.add_class("-error")
            return
        msg.remove_class("-error")
        msg.update(Content.assemble(("✔ ", "bold $success"), f"Context {event.context} written to {event.path} "
                                    "(mode 0600; kubectl uses gke-gcloud-auth-plugin, no token stored)."))
        self.notify(f"kubeconfig entry written to {event.path}", title="Kubeconfig", timeout=4, markup=False)

    # display helpers --------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        self.query_one("#cl-status", Label).update(text)

    def _set_reattached(self, text: str) -> None:
        label = self.query_one("#cl-reattached", Label)
        label.update(text)
        label.set_class(bool(text), "-shown")

    def _show_buttons(self) -> None:
        plan = self._plan
        busy = bool(self._busy) or self._loading
        state = self._state
        done = state is not None and state.status == Status.DONE
        failed_pool = getattr(self, "_failed_pool", False) or bool(
            state is not None and state.data.get("failed_pool"))
        shown = {
            "#cl-create": plan is not None and not busy and (plan.creates_cluster or plan.creates_pool)
                          and not failed_pool,
            "#cl-resize": plan is not None and not busy and plan.resize is not None and not failed_pool,
            "#cl-replace": plan is not None and not busy and failed_pool,
            "#cl-continue": plan is not None and not busy and not done and not plan.billable and not failed_pool,
            "#cl-stop": bool(self._busy),
            "#cl-wait": not busy and self._stockout_waitable,
        }
        for sel, on_ in shown.items():
            self.query_one(sel, Button).set_class(on_, "-shown")
        running = plan is not None and plan.exists and plan.status == "RUNNING"
        table = self.query_one("#cl-nodes", DataTable)
        self.query_one("#cl-plan").set_class(plan is not None, "-shown")
        self.query_one("#cl-phases").set_class(plan is not None or bool(self._busy), "-shown")
        self.query_one("#cl-nodes-box").set_class(bool(self._busy) or table.row_count > 0 or
                                                  (plan is not None and plan.exists), "-shown")
        self.query_one("#cl-kube-box").set_class(running, "-shown")
        path = self.query_one("#cl-kubeconfig", Input)
        if running and not path.value:
            from ..cloud.gke import default_kubeconfig_path

            path.value = str(default_kubeconfig_path())
        if plan is not None:
            create = self.query_one("#cl-create", Button)
            create.label = "Create cluster and TPU pool…" if plan.creates_cluster else "Create the TPU pool…"
            if plan.resize is not None:
                self.query_one("#cl-resize", Button).label = f"Resize {TPU_POOL_NAME} to {plan.resize[1]}…"
