"""Step 6: the Istio sidecar in the EPP scheduler pod, patched and followed live to 2/2.

- Why, in one sentence (`steps.epp.WHY`).
- Patch (`P`): `steps.epp.apply` in a thread worker — the idempotent strategic-merge patch of the
  pod template label `sidecar.istio.io/inject=true`, then `follow_rollout`: a list-watch of the
  EPP pods while the old pod terminates and the new one starts, until a pod is Ready 2/2 with
  istio-proxy. The watcher thread only queues row diffs; the page drains them at 10 Hz into the
  EPP pod table (changed cells only). A rollout that does not finish in time ends with the
  diagnosis (`steps.epp.diagnose_rollout`: no sidecar injected, proxy not ready, pending...), never
  a hang; Stop ends the following (the cluster keeps rolling out).
- On every visit, and every few seconds while on show, the page probes the cluster (`epp.probe`
  plus the EPP pods) in a worker, so it is right on re-open.

This module also holds `ProbingScreen`, the probe-on-show base of the step 6-8 pages.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Label, Static

from ..steps import epp
from ..steps.base import Status, StepState
from ..widgets.diagnosis import DiagnosisPanel
from ..widgets.pod_table import KeyedTable, Shown, stage_style
from . import register_step_screen
from .base import StepScreen

NOT_CONNECTED = ("Not connected to a cloud: nothing to read or change yet. Restart with --sim for the emulator, "
                 "or check your credentials.")


def error_state(e: BaseException, what: str) -> StepState:
    """A FAILED state for an exception from a worker (a CloudError's message and fix; never a traceback)."""
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    fix = getattr(e, "fix", "") or "Check the connection to the cluster, then press r to read it again."
    return StepState(Status.FAILED, f"Could not {what}: {message}", fix=fix,
                     data={"error_kind": getattr(e, "kind", "unknown")})


# --------------------------------------------------------------------------------------------
# shared by steps 6-8
# --------------------------------------------------------------------------------------------


def _same_result(a: Any, b: Any) -> bool:
    try:
        return a is not None and bool(a == b)
    except Exception:  # noqa: BLE001 - not comparable: treat as new
        return False


class ProbingScreen(StepScreen):
    """A page that reads the cluster in a worker when shown, every POLL_SECONDS while on show, on
    `r`, and after its action; an action in progress (`begin_action`/`end_action`) makes probes
    that started earlier stale."""

    POLL_SECONDS = 5.0
    QUIET_POLL_EVERY = 3
    """After two probes that read nothing new, only every 3rd poll reads the cluster (15 s)."""
    _shown: tuple[int, Any] = (-1, None)  # (seq, result) of the last probe shown
    _quiet_probes = 0
    _poll_ticks = 0

    class Probed(Message):
        bubble = False

        def __init__(self, result: Any, seq: int) -> None:
            super().__init__()
            self.result = result
            self.seq = seq

    def __init__(self, number: int, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._seq = 0
        self._probing = False
        self.busy = False
        self.probes = 0  # probe results shown (tests wait on it)
        self.action_error: StepState | None = None  # the last action's failure, kept on show

    # hooks --------------------------------------------------------------------------------------
    def probe_data(self, ctx: Any) -> Any:
        """Read the cluster (worker thread). Exceptions become `error_state`."""
        raise NotImplementedError

    def show_probe(self, result: Any) -> None:
        """Show what probe_data returned, or a StepState for an error (UI thread)."""

    def show_not_connected(self) -> None:
        """No connection (UI thread)."""

    # plumbing -----------------------------------------------------------------------------------
    def on_mount(self) -> None:  # Textual calls each class's on_mount: no super() here
        self.watch(self.app, "profile", self._profile_changed, init=False)
        if self.POLL_SECONDS:
            self.set_interval(self.POLL_SECONDS, self._poll, name="probe-poll")

    def _profile_changed(self, _profile: Any) -> None:
        self._seq += 1
        if self.is_current:
            self.reprobe()

    def config_changed(self, cfg: Any) -> None:
        self._seq += 1
        if self.is_current:
            self.reprobe()

    def step_entered(self) -> None:
        self._quiet_probes = 0
        self.reprobe()

    def _poll(self) -> None:
        if self.is_current and not self._probing and not self.busy:
            self._poll_ticks += 1
            if self._quiet_probes >= 2 and self._poll_ticks % self.QUIET_POLL_EVERY:
                return  # the cluster has been quiet: read it less often (a change resets this)
            self.reprobe()

    def action_refresh(self) -> None:
        self.reprobe()

    def reprobe(self) -> None:
        if self.busy:
            return
        ctx = self.ctx
        if ctx is None:
            self.show_not_connected()
            return
        self._probing = True
        self._probe_worker(ctx, self._seq)

    @work(thread=True, group="probe", exclusive=True, exit_on_error=False)
    def _probe_worker(self, ctx: Any, seq: int) -> None:
        try:
            result = self.probe_data(ctx)
        except Exception as e:  # noqa: BLE001 - shown as a state with its fix
            result = error_state(e, "read the cluster")
        self.post_message(self.Probed(result, seq))

    @on(Probed)
    def _on_probed(self, message: "ProbingScreen.Probed") -> None:
        message.stop()
        self._probing = False
        if message.seq != self._seq or self.busy:
            return
        self.probes += 1
        same = self._shown[0] == message.seq and _same_result(self._shown[1], message.result)
        self._shown = (message.seq, message.result)
        self._quiet_probes = self._quiet_probes + 1 if same else 0
        if not same:  # nothing new: no re-render (a re-render re-lays out the page)
            self.show_probe(message.result)

    def begin_action(self) -> Any:
        """The context for an action, or None (with a message) when not connected or busy."""
        ctx = self.context_for_run(self.busy, NOT_CONNECTED)
        if ctx is None:
            return None
        self._seq += 1
        self.busy = True
        self.action_error = None
        return ctx

    def end_action(self, *, reprobe: bool = True) -> None:
        self.busy = False
        self._seq += 1
        if reprobe:
            self.reprobe()

    def set_probed_state(self, state: StepState) -> bool:
        """Show a probe's state, unless the last action failed and the probe has nothing newer to say
        (not started / in progress): the failure and its fix stay on show until the next action, a
        done step or another failure. True when shown."""
        if self.action_error is not None and state.status in (Status.NOT_STARTED, Status.IN_PROGRESS):
            return False
        self.action_error = None
        self.set_state(state)
        return True

    def call_ui(self, fn: Any, *args: Any) -> bool:
        """Run fn(*args) on the UI thread from a worker (False when the app is closing)."""
        try:
            self.app.call_from_thread(fn, *args)
            return True
        except Exception:  # noqa: BLE001 - the app is closing
            return False


# --------------------------------------------------------------------------------------------
# the EPP pod table
# --------------------------------------------------------------------------------------------


def short_pod(name: str, deployment: str) -> str:
    """'<deployment>-7c66d4d87d-9gllb' -> '7c66d4d87d-9gllb'."""
    prefix = deployment + "-"
    return name[len(prefix):] if deployment and name.startswith(prefix) else name


def role_text(model: Mapping[str, Any]) -> Shown:
    """'old' for the pod going away, 'new' for the one with istio-proxy."""
    if model.get("stage") == "Terminating":
        return "old", "$text-muted"
    if model.get("sidecar"):
        return "new", "bold $accent"
    return "", ""


class EppPodTable(KeyedTable):
    """The EPP pods during the rollout (rows keyed 'namespace/name', fed by podlife.RowDiff)."""

    COLUMNS = (
        ("role", "", 3),
        ("name", "EPP pod", 16),
        ("stage", "Stage", 17),
        ("ready", "Ready", 5),
        ("sidecar", "istio-proxy", 11),
    )
    FILL_COLUMN = "sidecar"
    SORTED = True

    def __init__(self, deployment: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.deployment = deployment
        self.seen: dict[str, list[str]] = {}  # key -> the stages shown, in order (tests, history)

    def sort_key(self, key: str, model: Mapping[str, Any]) -> Any:
        return (0 if model.get("stage") == "Terminating" or model.get("sidecar") is False else 1, key)

    def shown_cells(self, key: str, model: Mapping[str, Any]) -> dict[str, Shown]:
        stage = str(model.get("stage") or "")
        sidecar = model.get("sidecar")
        name = str(model.get("name") or key.split("/")[-1])
        return {
            "role": role_text(model),
            "name": (short_pod(name, self.deployment), ""),
            "stage": (stage, stage_style(stage, str(model.get("severity") or "ok"))),
            "ready": (str(model.get("ready") or ""), ""),
            "sidecar": ("✔ injected" if sidecar else "— none" if sidecar is False else "",
                        "$success" if sidecar else "$warning" if sidecar is False else ""),
        }

    def upsert(self, key: str, cells: Mapping[str, Any]) -> bool:
        stage = cells.get("stage")
        if stage:
            history = self.seen.setdefault(key, [])
            if not history or history[-1] != stage:
                history.append(str(stage))
        return super().upsert(key, cells)

    def set_sidecars(self, pods: list[Mapping[str, Any]], namespace: str) -> None:
        """From a state's data['pods'] (steps.epp.EppPod.to_dict): whether each pod has istio-proxy."""
        for p in pods:
            key = f"{namespace}/{p.get('name')}"
            if key in self:
                self.upsert(key, {"sidecar": bool(p.get("sidecar"))})

    def stage_of(self, key: str) -> str:
        return self.shown_text(key, "stage")


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------


@register_step_screen(6)
class EppSidecarScreen(ProbingScreen):
    """Step 6: patch the EPP deployment and follow its rollout to 2/2."""

    DEFAULT_CSS = """
    EppSidecarScreen {
        .step-state { max-height: 4; }  /* wraps: whole at 80 columns */
        .step-commands CommandList { max-height: 4; }
        #epp-why { height: auto; margin: 0 1 1 0; }
        #epp-actions { height: 1; margin: 0 1 0 0; }
        #epp-patch { margin: 0 1 0 0; min-width: 9; }
        #epp-stop { margin: 0 1 0 0; min-width: 8; }
        #epp-follow { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #epp-label { height: auto; margin: 0 1 0 0; }
        #epp-pods { height: auto; max-height: 8; margin: 1 1 0 0; }
        #epp-diagnosis { height: 1fr; margin: 1 1 0 0; }
    }
    """

    BINDINGS = [
        Binding("P", "patch", "Patch", key_display="P",
                tooltip="Add sidecar.istio.io/inject=true to the EPP pod template (idempotent) and follow the rollout"),
        Binding("r", "refresh", "Refresh", tooltip="Read the EPP deployment and pods again"),
    ]

    RENDER_HZ = 10.0
    ROLLOUT_TIMEOUT: float | None = None
    """Wall seconds to follow the rollout (None: the guide's 120 s at the connection's time scale)."""

    def __init__(self, number: int = 6, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._pending_state: StepState | None = None
        self._stop = threading.Event()
        self._follow_started: float | None = None
        self._last_summary = ""
        self.result: StepState | None = None  # the last rollout's outcome

    # composition ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        yield Static(Content.assemble(("Why: ", "bold"), epp.WHY), id="epp-why")
        with Horizontal(id="epp-actions"):
            yield Button("Patch", id="epp-patch", compact=True, variant="primary",
                         tooltip="Add the injection label (idempotent) and follow the rollout to 2/2 (P)")
            yield Button("Stop", id="epp-stop", compact=True, disabled=True,
                         tooltip="Stop following the rollout (the cluster keeps rolling out)")
            yield Label(Content.styled("not connected to a cloud yet", "$text-muted"), id="epp-follow")
        yield Static(self._label_content(None), id="epp-label")
        yield EppPodTable(epp.deployment_name(self.cfg), id="epp-pods")
        yield DiagnosisPanel(id="epp-diagnosis", empty="")

    @staticmethod
    def _label_content(labelled: bool | None) -> Content:
        parts: list[Any] = [("Pod template label ", "$text-muted"), (f"{epp.INJECT_LABEL}=true", "bold"), ": "]
        if labelled is None:
            parts.append(("?", "$text-muted"))
        elif labelled:
            parts.append(("✔ set", "bold $success"))
        else:
            parts.append(("○ not set", "$warning"))
        return Content.assemble(*parts)

    def on_mount(self) -> None:  # Textual calls each class's on_mount: no super() here
        # drains only while a rollout is followed (nothing else fills it): asleep otherwise
        self._drain_timer = self.set_interval(1 / self.RENDER_HZ, self._drain, name="epp-drain", pause=True)

    def on_unmount(self) -> None:
        self._stop.set()

    def config_changed(self, cfg: Any) -> None:
        self.query_one(EppPodTable).deployment = epp.deployment_name(cfg)
        self.query_one("#epp-label", Static).update(self._label_content(None))
        super().config_changed(cfg)

    # probing ------------------------------------------------------------------------------------
    def probe_data(self, ctx: Any) -> Any:
        from ..steps.operators import time_scale_of
        from ..steps.podlife import PodTable

        state = epp.probe(ctx)
        table = PodTable(time_scale=time_scale_of(ctx))
        session = ctx.kube_or_none()
        pods = session.list("v1", "Pod", ctx.cfg.namespace, label_selector=epp.epp_selector(ctx.cfg)) \
            if session is not None and state.data.get("pods") else []
        return state, table.resync(pods)

    def show_probe(self, result: Any) -> None:
        if isinstance(result, StepState):  # could not read the cluster: say what to do, in full
            if not self.set_probed_state(result):
                return
            self.show_follow("✘ " + result.summary, "$error")
            self.query_one(DiagnosisPanel).show([{"cause": "read", "title": result.summary, "fix": result.fix,
                                                  "severity": "error"}])
            return
        state, diffs = result
        # a failed rollout's diagnosis stays until the next Patch, or until the EPP is done after all
        shown = self.set_probed_state(state)
        if shown:
            self.query_one(DiagnosisPanel).show([])
        table = self.query_one(EppPodTable)
        table.apply_diffs(diffs)
        table.sync_keys(d.key for d in diffs)
        table.set_sidecars(state.data.get("pods") or [], self.cfg.namespace)
        self.query_one("#epp-label", Static).update(self._label_content(state.data.get("labelled")))
        if shown:
            self.show_follow(*self._idle_text(state))

    def _idle_text(self, state: StepState) -> tuple[str, str]:
        if state.status is Status.DONE:
            last = self.result
            if last is not None and last.status is Status.DONE and last.data.get("patched") is not None:
                return "✔ " + last.summary, "$success"  # what this page's Patch did, not "nothing to do"
            return "✔ EPP pod Ready 2/2 with istio-proxy: nothing to do.", "$success"
        if state.status is Status.NOT_STARTED and state.data.get("labelled") is False:
            return "Press Patch to add the label and follow the rollout.", "$text-muted"
        if state.status is Status.IN_PROGRESS:
            return "The EPP is rolling out; press Patch to follow it.", "$warning"
        return state.summary, "$error" if state.status is Status.FAILED else "$warning"

    def show_not_connected(self) -> None:
        self.show_follow("not connected to a cloud yet", "$text-muted")

    def show_follow(self, text: str, style: str = "$text-muted") -> None:
        self.query_one("#epp-follow", Label).update(Content.styled(text, style))

    @property
    def follow_text(self) -> str:
        return str(self.query_one("#epp-follow", Label).render())

    # the action ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#epp-patch")
    def _patch_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_patch()

    @on(Button.Pressed, "#epp-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._stop.set()
        self.show_follow("stopping…", "$text-muted")

    def action_patch(self) -> None:
        if not self.lease_first("patching the EPP deployment", self.action_patch):
            return
        ctx = self.begin_action()
        if ctx is None:
            return
        self._stop = threading.Event()
        self._follow_started = time.monotonic()
        self._drain_timer.resume()
        self._last_summary = ""
        self.result = None
        self.query_one("#epp-patch", Button).disabled = True
        self.query_one("#epp-stop", Button).disabled = False
        self.query_one(DiagnosisPanel).show([])
        self.show_follow("patching the pod template…", "$warning")
        self._rollout(ctx, self._stop)

    @work(thread=True, group="epp-rollout", exit_on_error=False)
    def _rollout(self, ctx: Any, stop: threading.Event) -> None:
        def on_update(diffs: list[Any], state: StepState) -> None:
            with self._lock:
                self._pending.extend(diffs)
                self._pending_state = state

        try:
            result = epp.apply(ctx, on_update, timeout=self.ROLLOUT_TIMEOUT, stop=stop)
        except Exception as e:  # noqa: BLE001 - shown with its fix
            result = error_state(e, "patch the EPP deployment")
        self.call_ui(self._rollout_done, result, stop.is_set())

    def _drain(self) -> None:
        with self._lock:
            diffs, self._pending = self._pending, []
            state, self._pending_state = self._pending_state, None
        table = self.query_one(EppPodTable)
        if diffs:
            table.apply_diffs(diffs)
        if state is not None:
            table.set_sidecars(state.data.get("pods") or [], self.cfg.namespace)
            if "labelled" in state.data:
                self.query_one("#epp-label", Static).update(self._label_content(state.data["labelled"]))
            if state.summary != self._last_summary and self.busy:
                self._last_summary = state.summary
                self.set_state(state)
        if self.busy and self._follow_started is not None:
            elapsed = time.monotonic() - self._follow_started
            self.show_follow(f"◐ following the rollout · {elapsed:.0f}s · old pod terminating, new pod starting",
                             "$warning")

    def _rollout_done(self, result: StepState, stopped: bool) -> None:
        self._drain()  # the last diffs first
        self._drain_timer.pause()
        self.result = result
        self._follow_started = None
        self.query_one("#epp-patch", Button).disabled = False
        self.query_one("#epp-stop", Button).disabled = True
        self.set_state(result)
        if result.status is Status.DONE:
            self.show_follow("✔ " + result.summary, "$success")
        elif result.status is Status.FAILED:
            self.action_error = result
            self.show_follow("✘ " + result.summary, "bold $error")
            self.query_one(DiagnosisPanel).show([self._diagnosis_of(result)])
        elif stopped:
            self.show_follow("Stopped following; the cluster keeps rolling out (r reads it again).", "$text-muted")
        else:
            self.show_follow(result.summary, "$warning")
        self.end_action()

    @staticmethod
    def _diagnosis_of(state: StepState) -> Any:
        d = state.data.get("diagnosis")
        if d:
            return d
        return {"cause": "epp", "title": state.summary, "evidence": [x for x in state.detail.splitlines() if x][:6],
                "fix": state.fix, "commands": [], "severity": "error"}


__all__ = ["EppSidecarScreen", "EppPodTable", "ProbingScreen", "error_state", "NOT_CONNECTED"]
