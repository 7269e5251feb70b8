"""Step 5: the LLMInferenceService, its pods through the guide's lifecycle, their logs.

- The rendered LLMInferenceService (`steps.deploy.rendered_yaml`) in a collapsible YAML view, and
  Apply: server-side apply in a thread worker (idempotent: applying again changes nothing).
- The pod table: one row per workload pod (r1, r2, ... by creation) and the EPP pod. Fed by
  `steps.deploy.DeployWatch` (list-watch-relist of the pods, events, nodes and the service; a
  PodTable that yields minimal row diffs) and a list-watch of the EPP pods into its own PodTable.
  Watch threads only queue diffs and wake the screen, which applies them (at most at 10 Hz) with
  DataTable.update_cell (changed cells only) and assesses the step again. The time-dependent cells
  tick when their text next changes: every second while a pod is in a timed stage (time in stage
  vs the guide's range, severity), else when the first age changes (once a minute for ages shown
  in minutes); a steady deployment does nothing in between. A dropped watch re-lists: rows stay keyed,
  none duplicated or lost; the watch state ("reconnecting ...") is shown; nothing ever ends the app.
- Logs: DeployWatch follows every pod's storage-initializer and main container (reconnecting when
  a stream ends while the container runs); the LogPane batches them (drained as they arrive, at
  most 15 times a second; bounded), with pod and container pickers, a filter and follow mode.
- Milestones per pod (download line, the five vLLM milestones, KV cache size) and the diagnosis
  of stuck pods (`steps.diagnose` with live evidence: events, last log lines, nodes).
- The step is done when the LLMInferenceService is Ready=True and N pods are 1/1 on N distinct
  TPU nodes (`steps.deploy.assess`). Times are guide times: the connection profile's time scale.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Button, Collapsible, DataTable, Label, Static, TabbedContent, TabPane

from ..steps import deploy as dep
from ..steps.podlife import (INIT_CONTAINER, MAIN_CONTAINER, TIMESTAMP_PRECISION, PodTable, fmt_duration,
                             fmt_duration_changes_in, to_epoch)
from ..widgets.diagnosis import DiagnosisPanel
from ..widgets.log_pane import LogPane
from ..widgets.milestones import MilestoneChecklist
from ..widgets.pod_table import PodTableWidget
from . import register_step_screen
from .operators import WatchingScreen, watch_state_summary

EPP_LABEL = "EPP"


class DeployLive:
    """DeployWatch plus a list-watch of the EPP pods (their own PodTable): what the screen shows."""

    def __init__(self, ctx: Any, *, on_change: Any = None, on_log: Any = None) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.on_change = on_change
        self.dw = dep.DeployWatch(ctx, on_change=on_change, on_log=on_log)
        self.time_scale = self.dw.time_scale
        self.epp_table = PodTable(time_scale=self.time_scale)
        self._lock = threading.Lock()
        self._epp_diffs: list[Any] = []
        self.epp_state = "starting"
        self._epp: Any = None

    def start(self) -> "DeployLive":
        from ..cloud.kube import ListWatcher
        from ..steps.epp import epp_selector

        self.dw.start()
        session = self.ctx.kube()
        self._epp = ListWatcher(session.core.list_namespaced_pod, namespace=self.cfg.namespace,
                                label_selector=epp_selector(self.cfg), on_event=self._on_epp,
                                on_state=self._epp_state, name="deploy-epp").start()
        return self

    def stop(self) -> None:
        if self._epp is not None:
            self._epp.stop(join=False)
        self.dw.stop()

    def _epp_state(self, state: str) -> None:
        self.epp_state = state
        if self.on_change is not None:
            self.on_change()

    def _on_epp(self, ev: Any) -> None:
        with self._lock:
            self._epp_diffs.extend(self.epp_table.apply_watch_event(ev))
        if self.on_change is not None:
            self.on_change()

    # what the screen reads (UI thread) -----------------------------------------------------------
    def drain(self) -> list[Any]:
        out = self.dw.drain_diffs()
        with self._lock:
            out += self._epp_diffs
            self._epp_diffs = []
        return out

    def tick(self) -> list[Any]:
        out = self.dw.tick()
        with self._lock:
            out += self._epp_diffs + self.epp_table.tick()
            self._epp_diffs = []
        return out

    def pod(self, key: str) -> dict | None:
        return self.dw.table.pod(key) or self.epp_table.pod(key)

    def is_epp(self, key: str) -> bool:
        return key in self.epp_table

    def states(self) -> dict[str, str]:
        out = {k: v for k, v in dict(self.dw.states).items() if not k.startswith("logs:")}
        out["epp"] = self.epp_state
        if "could not find the requested resource" in out.get("service", ""):
            # no LLMInferenceService API before step 4: the watch retries, nothing is wrong here
            out["service"] = "waiting for the LLMInferenceService API (step 4 installs it)"
        return out

    def service_watch_live(self) -> bool:
        return self.dw.states.get("service") == "live"

    def log_states(self) -> dict[str, str]:
        return {k[5:]: v for k, v in dict(self.dw.states).items() if k.startswith("logs:")}


@register_step_screen(5)
class DeployScreen(WatchingScreen):
    """Step 5: apply the LLMInferenceService and follow its pods to Ready."""

    DEFAULT_CSS = """
    DeployScreen {
        .step-state { max-height: 3; }  /* wraps: whole at 80 columns */
        .step-commands CommandList { max-height: 3; }
        .step-purpose { max-height: 2; }
        .step-body { margin: 0; }
        #dp-actions { height: 1; margin: 0 1 0 0; }
        #dp-apply { margin: 0 1 0 0; min-width: 12; }
        #dp-watch { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #dp-yaml { margin: 0 1 0 0; padding: 0; border-top: none; }
        #dp-yaml Contents { padding: 0 0 0 2; }
        #dp-yaml-scroll { height: auto; max-height: 14; overflow-x: auto; scrollbar-size-vertical: 1;
                          scrollbar-size-horizontal: 1; }
        #dp-yaml-text { width: auto; text-wrap: nowrap; }
        #dp-pods { height: auto; max-height: 8; margin: 0 1 0 0; }
        #dp-tabs { height: 1fr; min-height: 8; }
        #dp-tabs TabPane { padding: 0; }
        #dp-tabs ContentSwitcher { height: 1fr; }
        &.-short .step-purpose { display: none; }
        &.-short .step-commands CommandList { max-height: 1; }  /* one row, not a heading over nothing */
        &.-short #dp-pods { max-height: 6; }
    }
    """

    BINDINGS = [
        Binding("A", "apply", "Apply", key_display="A",
                tooltip="Server-side apply of the LLMInferenceService (idempotent)"),
        Binding("f", "zoom", "Zoom", tooltip="Give the focused pane the whole screen (f again: back)"),
        Binding("l", "show_tab('dp-tab-logs')", "Logs", show=False),
        Binding("m", "show_tab('dp-tab-ms')", "Milestones", show=False),
        Binding("d", "show_tab('dp-tab-diag')", "Diagnosis", show=False),
    ]

    ASSESS_MIN_INTERVAL = 0.25

    def __init__(self, number: int = 5, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._applying = False
        self._last_state: tuple[str, str] | None = None
        self._assessed_at = 0.0
        self._assess_due = False  # the watch changed since the last assessment
        self._ticking = False
        self._missed = False  # a render skipped while a tick ran: render once it is done
        self._ages_at = 0.0  # when the ages were last computed ...
        self._age_change_in: float | None = None  # ... and how long after that the first one changes
        self._seen_causes: set[str] = set()
        self._pod_labels: dict[str, str] = {}  # row key -> r1 / EPP
        self._first_seen: dict[str, float] = {}  # row key -> when its add diff arrived
        self._shown_diag_count = -1
        self.assessment: Any = None

    # composition ---------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        cfg = self.cfg
        with Horizontal(id="dp-actions"):
            yield Button("Apply", id="dp-apply", compact=True, variant="primary",
                         tooltip="Server-side apply (A): idempotent, applying again changes nothing")
            yield Label(Content.styled("not connected to a cloud yet", "$text-muted"), id="dp-watch")
        with Collapsible(title=self._yaml_title(cfg), collapsed=True, id="dp-yaml"):
            with VerticalScroll(id="dp-yaml-scroll"):
                yield Static(self._yaml_content(cfg), id="dp-yaml-text")
        yield PodTableWidget(id="dp-pods")
        with TabbedContent(id="dp-tabs", initial="dp-tab-logs"):
            with TabPane("Logs", id="dp-tab-logs"):
                self._log_pane = LogPane(id="dp-log", placeholder="pod logs appear here once the pods start")
                yield self._log_pane
            with TabPane("Milestones", id="dp-tab-ms"):
                yield MilestoneChecklist(id="dp-milestones")
            with TabPane("Diagnosis", id="dp-tab-diag"):
                yield DiagnosisPanel(id="dp-diagnosis", empty="No stuck pod.")

    @staticmethod
    def _yaml_title(cfg: Any) -> str:
        return f"LLMInferenceService {cfg.service} ({cfg.replicas} replicas) — rendered YAML"

    @staticmethod
    def _yaml_content(cfg: Any) -> Content:
        try:
            return highlight(dep.rendered_yaml(cfg), language="yaml")
        except (ValueError, KeyError) as e:
            return Content.styled(f"Cannot render the manifest: {e}", "$error")

    def config_changed(self, cfg: Any) -> None:
        self.query_one("#dp-yaml", Collapsible).title = self._yaml_title(cfg)
        self.query_one("#dp-yaml-text", Static).update(self._yaml_content(cfg))
        super().config_changed(cfg)

    def stop_watch(self) -> None:
        super().stop_watch()
        self._ticking = False
        self._missed = False
        if self.is_attached:
            try:
                table = self.query_one(PodTableWidget)
            except Exception:  # noqa: BLE001 - unmounting
                return
            table.sync_keys(())
            self._pod_labels.clear()
            self._first_seen.clear()

    # the live watch ----------------------------------------------------------------------------------
    def make_watch(self, ctx: Any) -> DeployLive:
        pane = self._log_pane  # (this runs in a thread: no DOM queries here)

        def on_log(pod: str, container: str, lines: list[str]) -> None:
            pane.ingest(pod, container, lines)

        return DeployLive(ctx, on_change=self.mark_dirty, on_log=on_log).start()

    def show_watch_state(self, text: str, style: str = "$text-muted") -> None:
        if self.shown_watch_state((text, style)):  # unchanged: no update (a label update re-lays out the page)
            self.query_one("#dp-watch", Label).update(Content.styled(text, style), layout=False)  # (fixed size)

    def _assign_labels(self, live: DeployLive, diffs: list[Any]) -> None:
        """r1, r2, ... by creation (lowest free number), EPP for the scheduler pod."""
        table = self.query_one(PodTableWidget)
        removed = {d.key for d in diffs if d.op == "remove"}
        for key in removed:
            self._pod_labels.pop(key, None)
            self._first_seen.pop(key, None)
        now = time.time()
        for d in diffs:
            if d.op == "add":
                self._first_seen.setdefault(d.key, now)
        new = [d.key for d in diffs if d.op == "add" and d.key not in self._pod_labels]
        if not new:
            return

        def created(key: str) -> tuple[float, str]:
            pod = live.pod(key) or {}
            return (to_epoch((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0, key)

        used = {int(v[1:]) for v in self._pod_labels.values() if v.startswith("r") and v[1:].isdigit()}
        for key in sorted(new, key=created):
            if live.is_epp(key):
                label = EPP_LABEL
            else:
                n = 1
                while n in used:
                    n += 1
                used.add(n)
                label = f"r{n}"
            self._pod_labels[key] = label
            table.labels[key] = label

    def _apply(self, live: DeployLive, diffs: list[Any]) -> bool:
        if not diffs:
            return False
        self._assign_labels(live, diffs)
        self.query_one(PodTableWidget).apply_diffs(diffs)
        return True

    def render_live(self, live: DeployLive, tick: bool) -> None:
        """On a watch change (10 Hz at most): apply the queued row diffs and assess the deployment
        again (at most every ASSESS_MIN_INTERVAL). On a tick (when the time-dependent display next
        changes, see next_tick_in): while a pod is in a timed stage (time in stage vs the guide's
        range, severity, the milestones' running times), the table's time-dependent cells and the
        assessment, computed in a thread (classify + diagnose cost grows with the pods; the UI thread
        only applies the result); with every pod steady, only the ages (the cells whose text changed).
        While a thread pass runs, no diffs are drained, so they are applied in the order they were
        made; a render asked for meanwhile runs once it is done."""
        if self._ticking:
            self._missed = True
            return
        self.show_watch_state(*watch_state_summary(live.states()))
        if not tick:
            self._assess_due = True  # pods, the service, events or nodes changed
        timed = self.query_one(PodTableWidget).has_timed_rows()
        if tick and timed:
            self._start_tick(live)
            return
        if self._assess_due and time.time() - self._assessed_at >= self.ASSESS_MIN_INTERVAL:
            self._start_tick(live, table_tick=False)
            return
        self._apply(live, live.drain())
        if tick:
            self._update_ages(live, time.time())

    def next_tick_in(self, live: DeployLive) -> float | None:
        if self._ticking:
            return None  # its end arms the next one
        if self._assess_due:
            return max(0.05, self.ASSESS_MIN_INTERVAL - (time.time() - self._assessed_at))
        if self.query_one(PodTableWidget).has_timed_rows():
            return self.TICK_SECONDS
        if self._age_change_in is None:
            return None
        # (an age shown in seconds at a fast simulated pace changes many times a second: once a second)
        return max(self.TICK_SECONDS, self._age_change_in) - (time.time() - self._ages_at)

    def _start_tick(self, live: DeployLive, table_tick: bool = True) -> None:
        self._ticking = True
        self._assess_due = False
        self._assessed_at = time.time()

        def work() -> None:
            now = time.time()
            diffs: list[Any] = []
            assessment = None
            try:
                diffs = live.tick() if table_tick else live.drain()
                assessment = live.dw.assessment(now=now)
            finally:
                self._from_thread(self._ticked, live, diffs, assessment, now)

        self.run_worker(work, thread=True, group="dp-tick", exit_on_error=False)

    def _ticked(self, live: DeployLive, diffs: list[Any], assessment: Any, now: float) -> None:
        if live is not self.live or not self.is_attached:
            return  # a watch since replaced (stop_watch reset the flag)
        self._ticking = False
        self._apply(live, diffs)
        self._update_ages(live, now)
        if assessment is not None:
            self._show_assessment(live, assessment, now)
        if self._missed:
            self._missed = False
            self.mark_dirty()
        self.schedule_tick(self.next_tick_in(live))

    def _update_ages(self, live: DeployLive, now: float) -> None:
        """Each row's age (guide time); only the cells whose text changed are updated. Remembers when
        the first of them will change (next_tick_in)."""
        table = self.query_one(PodTableWidget)
        soonest: float | None = None
        with self.app.batch_update():
            for key in table.row_keys():
                pod = live.pod(key)
                if pod is None:
                    continue
                created = to_epoch((pod.get("metadata") or {}).get("creationTimestamp"))
                seen = self._first_seen.setdefault(key, now)
                if created is not None and created <= seen <= created + TIMESTAMP_PRECISION + 0.5:
                    created = seen  # whole-second API timestamps: refine with when it appeared (+ delivery)
                if created is None:
                    age = "-"
                else:
                    seconds = max(0.0, now - created) * live.time_scale
                    age = fmt_duration(seconds)
                    wait = fmt_duration_changes_in(seconds) / (live.time_scale or 1.0)
                    soonest = wait if soonest is None else min(soonest, wait)
                table.upsert(key, {"age": age})
        self._ages_at = now
        self._age_change_in = soonest

    def _show_assessment(self, live: DeployLive, a: Any, now: float) -> None:
        self.assessment = a
        state = a.state
        sig = (str(state.status), state.summary)
        if sig != self._last_state:
            self._last_state = sig
            self.set_state(state)
        # log sources and stream states (pods in replica order)
        workload = sorted(((k, v) for k, v in self._pod_labels.items() if v != EPP_LABEL),
                          key=lambda kv: int(kv[1][1:]) if kv[1][1:].isdigit() else 0)
        names = {k: k.split("/", 1)[-1] for k, _ in workload}
        pane = self.query_one("#dp-log", LogPane)
        pane.set_sources([(names[k], label) for k, label in workload])
        label_of = {names[k]: label for k, label in workload}
        streams = {}
        for stream, st in live.log_states().items():
            pod, _, container = stream.partition("/")
            if pod in label_of:
                short = "init" if container == INIT_CONTAINER else "main" if container == MAIN_CONTAINER else container
                streams[f"{label_of[pod]} {short}"] = st
        pane.set_stream_states(streams)
        # milestones
        self.query_one(MilestoneChecklist).show(
            [(label_of[n], n, live.dw.milestones(n)) for n in label_of], now=now, time_scale=live.time_scale)
        # diagnosis
        diags = list(a.diagnoses)
        self.query_one(DiagnosisPanel).show(diags, label_of)
        if len(diags) != self._shown_diag_count:
            self._shown_diag_count = len(diags)
            tab = self.query_one("#dp-tabs", TabbedContent).get_tab("dp-tab-diag")
            tab.label = Content.assemble("Diagnosis", (f" ({len(diags)})", "bold $error")) if diags else "Diagnosis"
        fresh = {d.cause for d in diags if d.severity == "error"} - self._seen_causes
        if fresh:
            self._seen_causes |= fresh
            self.query_one("#dp-tabs", TabbedContent).active = "dp-tab-diag"

    # actions -----------------------------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        self.query_one("#dp-tabs", TabbedContent).active = tab

    @on(Button.Pressed, "#dp-apply")
    def _apply_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_apply()

    @on(DataTable.RowSelected, "#dp-pods")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a pod: its logs."""
        event.stop()
        key = str(event.row_key.value)
        if self._pod_labels.get(key, EPP_LABEL) == EPP_LABEL:
            return
        pane = self.query_one("#dp-log", LogPane)
        pane.select(pod=key.split("/", 1)[-1])
        self.action_show_tab("dp-tab-logs")

    def action_apply(self) -> None:
        if self._applying:
            return
        ctx = self.ctx
        if ctx is None:
            self.notify("Connect to a cloud first (the wizard is not connected).", title="Not connected",
                        severity="warning", markup=False)
            return
        if not self.lease_first("applying the LLMInferenceService", self.action_apply):
            return
        self._applying = True
        self.query_one("#dp-apply", Button).disabled = True

        def work() -> None:
            from ..cloud.gke import CloudError

            try:
                done = dep.apply(ctx)
            except CloudError as e:
                self._from_thread(self._apply_done, None, e.message, e.fix)
                return
            except Exception as e:  # noqa: BLE001 - shown, never a traceback
                self._from_thread(self._apply_done, None, str(e) or type(e).__name__, "")
                return
            self._from_thread(self._apply_done, done, "", "")

        self.run_worker(work, thread=True, group="dp-apply", exit_on_error=False)
        self.ensure_watch()

    def _apply_done(self, done: list[str] | None, message: str, fix: str) -> None:
        self._applying = False
        self.query_one("#dp-apply", Button).disabled = False
        if done is None:
            self.notify(message + (f"\n{fix}" if fix else ""), title="Apply failed", severity="error",
                        timeout=12, markup=False)
            return
        self.notify("Applied (server-side): " + ", ".join(done), title="Applied", markup=False)
        live = self.live
        if live is not None and not live.service_watch_live():
            self.restart_watch()  # its watch was backing off while the API did not exist yet
        self.mark_dirty()


__all__ = ["DeployScreen", "DeployLive"]
