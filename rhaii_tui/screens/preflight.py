"""Step 1 · Preflight checks: a checklist that fills in live as the concurrent checks finish.

Each row says pass / warning / failed / not checked with its detail and the fix; nothing says pass
unless the check ran and passed. The quota pane shows the TPU v6e chips in the region (limit,
need = 4 x replicas, what to request, Spot beside it, the console link). `r` runs the checks
again; when the Kubernetes Engine API is off, a button enables it (free, a simple confirmation).
Optional secret file paths are checked too (and then used by step 3).

The checks are `steps.preflight.run_checks` in a thread worker; each result comes back as a
message, so the UI never waits on the cloud.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from ..widgets.modal import WizardModal
from textual.widgets import Button, Input, Label, Static

from ..config import DeployConfig, region_of
from ..steps.base import Status, StepState
from ..widgets.checklist import Checklist
from ..widgets.quota_pane import QuotaPane
from . import register_step_screen
from .base import StepScreen

# the checks in display order (mirrors steps.preflight.CHECKS; imported lazily there)
CHECK_ROWS: tuple[tuple[str, str], ...] = (
    ("credentials", "Google credentials"),
    ("project", "Project reachable"),
    ("permissions", "Permissions"),
    ("api", "Kubernetes Engine API enabled"),
    ("zone", "Zone offers TPU v6e"),
    ("quota", "TPU v6e quota"),
    ("secrets", "Secrets ready"),
)
NOT_CONNECTED = ("Not connected to a cloud: start the wizard with Google credentials "
                 "(gcloud auth application-default login) or with --sim.")


class ConfirmModal(WizardModal[bool]):
    """A plain yes/no question for a free action (costly ones go through ConfirmCost)."""

    DEFAULT_CSS = """
    ConfirmModal {
        align: center middle;
        background: $background 70%;
        #ask-box { width: 70; max-width: 100%; height: auto; border: thick $primary; background: $surface;
                   padding: 1 2; border-title-style: bold; }
        #ask-text { margin: 0 0 1 0; }
        #ask-buttons { height: auto; align-horizontal: right; }
        #ask-buttons Button { margin: 0 0 0 2; }
    }
    """

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, title: str, text: str, yes: str = "Yes") -> None:
        super().__init__()
        self.ask_title = title
        self.text = text
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box") as box:
            box.border_title = self.ask_title
            yield Static(Content(self.text), id="ask-text")
            with Horizontal(id="ask-buttons"):
                yield Button("Cancel", id="ask-no", compact=True)
                yield Button(self.yes, id="ask-yes", compact=True, variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ask-yes", Button).focus()

    @on(Button.Pressed, "#ask-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#ask-no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class CheckFinished(Message, bubble=False):
    def __init__(self, run: int, result: Any) -> None:
        super().__init__()
        self.run = run
        self.result = result


class ChecksDone(Message, bubble=False):
    def __init__(self, run: int, report: Any, error: str = "") -> None:
        super().__init__()
        self.run = run
        self.report = report
        self.error = error


class ApiEnabled(Message, bubble=False):
    def __init__(self, result: Any, error: str = "") -> None:
        super().__init__()
        self.result = result
        self.error = error


@register_step_screen(1)
class PreflightScreen(StepScreen):
    """Step 1: the checklist, the quota pane, re-run and the API fix."""

    DEFAULT_CSS = """
    PreflightScreen {
        .step-state { max-height: 4; }  /* wraps: the summary and its fix, whole at 80 columns */
        .step-commands CommandList { max-height: 4; }
        #pf-body { height: 1fr; padding: 0 1 0 0; }
        #pf-actions { height: 1; margin: 0 0 1 0; }
        #pf-actions Button { margin: 0 2 0 0; }
        #pf-enable { display: none; }
        #pf-enable.-shown { display: block; }
        #pf-status { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        #pf-status.-error { color: $error; }
        #pf-checks { margin: 0 0 1 0; }
        #pf-quota { margin: 0 0 1 0; }
        .pf-file-row { height: 1; }
        .pf-file-label { width: 14; }
        .pf-file-row Input { width: 1fr; }
    }
    """

    BINDINGS = [
        Binding("r", "rerun", "Re-run checks", tooltip="Run every check again"),
        Binding("e", "enable_api", "Enable API", show=False,
                tooltip="Enable the Kubernetes Engine API (when its check failed)"),
    ]

    def __init__(self, number: int = 1, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._run = 0
        self._checking = False
        self._need_run = True
        self._results: dict[str, Any] = {}
        self._enabling = False

    # composition ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="pf-body"):
            with Horizontal(id="pf-actions"):
                yield Button("Run checks", id="pf-run", compact=True, variant="primary",
                             tooltip="Run every check (r); read-only, nothing is created")
                yield Button("Enable the Kubernetes Engine API…", id="pf-enable", compact=True,
                             variant="warning", tooltip="Enable container.googleapis.com (free)")
                yield Label("Not run yet.", id="pf-status")
            yield Checklist(CHECK_ROWS, id="pf-checks")
            pane = QuotaPane(id="pf-quota")
            pane.show_unchecked(region_of(self.cfg.zone), self.cfg.replicas)
            yield pane
            yield Label("Secret files to check (optional: or type the secrets in step 3)", classes="section-title")
            with Horizontal(classes="pf-file-row"):
                yield Label("Pull secret", classes="pf-file-label")
                yield Input(placeholder="path to the filled-in redhat-pull-secret YAML", id="pf-file-pull",
                            compact=True)
            with Horizontal(classes="pf-file-row"):
                yield Label("HF token", classes="pf-file-label")
                yield Input(placeholder="path to the filled-in huggingface-token YAML", id="pf-file-hf",
                            compact=True)

    def on_mount(self) -> None:  # StepScreen.on_mount runs too (Textual calls each class's handler)
        self.watch(self.app, "profile", self._profile_changed, init=False)

    # hooks -----------------------------------------------------------------------------------
    def step_entered(self) -> None:
        if self._need_run and not self._checking:
            self.run_checks()

    def config_changed(self, cfg: DeployConfig) -> None:
        self._invalidate("Not checked for the new configuration yet.")

    def _profile_changed(self, profile: Any) -> None:
        self._invalidate("Not checked on this connection yet.")

    def _invalidate(self, why: str) -> None:
        """Earlier results no longer hold: clear them; re-run now when shown, else on entry."""
        self._run += 1  # results still arriving belong to the old config
        self._checking = False
        self._results = {}
        self._need_run = True
        cfg = self.cfg
        self.query_one(Checklist).set_pending(why)
        self.query_one(QuotaPane).show_unchecked(region_of(cfg.zone), cfg.replicas)
        self._show_enable(False)
        self._status(why)
        if self.is_current:
            self.run_checks()

    # running ---------------------------------------------------------------------------------
    def secret_files(self) -> list[str]:
        return [v for v in (self.query_one("#pf-file-pull", Input).value.strip(),
                            self.query_one("#pf-file-hf", Input).value.strip()) if v]

    def run_checks(self) -> None:
        ctx = self.ctx
        checklist = self.query_one(Checklist)
        if ctx is None:
            checklist.set_pending("Not checked: not connected.")
            self._status(NOT_CONNECTED, error=True)
            return
        self._need_run = False
        self._run += 1
        self._checking = True
        self._results = {}
        cfg = self.cfg
        checklist.set_running()
        self.query_one(QuotaPane).show_checking(region_of(cfg.zone), cfg.replicas)
        self._show_enable(False)
        self.query_one("#pf-run", Button).disabled = True
        self._status(f"Checking… 0 of {len(CHECK_ROWS)} done.")
        self.set_state(StepState(Status.IN_PROGRESS, f"Running {len(CHECK_ROWS)} checks…"))
        self._checks_worker(ctx, self.secret_files(), self._run)

    @work(thread=True, exclusive=True, group="preflight-checks", exit_on_error=False)
    def _checks_worker(self, ctx: Any, files: list[str], run: int) -> None:
        from ..steps.preflight import run_checks

        try:
            report = run_checks(ctx, lambda r: self._post(CheckFinished(run, r)), secret_files=files)
        except Exception as e:  # noqa: BLE001 - never a traceback in the UI
            self._post(ChecksDone(run, None, f"The checks could not run ({e.__class__.__name__}: {e})."))
            return
        self._post(ChecksDone(run, report))

    def _post(self, message: Message) -> None:
        try:
            self.post_message(message)
        except RuntimeError:  # the app is gone
            pass

    @on(CheckFinished)
    def _check_finished(self, event: CheckFinished) -> None:
        if event.run != self._run:
            return
        r = event.result
        self._results[r.id] = r
        self.query_one(Checklist).set_result(r.id, r.status, r.detail, r.fix)
        if r.id == "quota":
            self._show_quota(r)
        if r.id == "api":
            self._show_enable(r.status == "fail" and bool(r.data.get("can_enable")))
        self._status(f"Checking… {len(self._results)} of {len(CHECK_ROWS)} done.")

    def _show_quota(self, r: Any) -> None:
        pane = self.query_one(QuotaPane)
        if "need" in (r.data or {}):
            pane.show_reading(r.data, r.status)
        else:
            cfg = self.cfg
            pane.show_unchecked(region_of(cfg.zone), cfg.replicas, f"not read ({r.detail.rstrip('.')})")

    @on(ChecksDone)
    def _checks_done(self, event: ChecksDone) -> None:
        if event.run != self._run:
            return
        self._checking = False
        self.query_one("#pf-run", Button).disabled = False
        self.query_one("#pf-run", Button).label = "Re-run checks"
        if event.report is None:
            self._status(event.error, error=True)
            self.set_state(StepState(Status.FAILED, "The checks could not run.", detail=event.error,
                                     fix="Press r to run them again."))
            return
        for r in event.report.results:  # results that were not streamed (none, normally)
            if r.id not in self._results:
                self._check_finished(CheckFinished(event.run, r))
        self._summarise()

    def _summarise(self) -> None:
        from ..steps.preflight import PreflightReport

        results = [self._results[cid] for cid, _ in CHECK_ROWS if cid in self._results]
        report = PreflightReport(results)
        counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "warn", "fail", "skip")}
        parts = [f"{counts['pass']} passed"]
        if counts["warn"]:
            parts.append(f"{counts['warn']} warning{'s' if counts['warn'] != 1 else ''}")
        if counts["fail"]:
            parts.append(f"{counts['fail']} failed")
        if counts["skip"]:
            parts.append(f"{counts['skip']} not checked")
        self._status(" · ".join(parts) + ".  Enter on a row copies its fix; r runs the checks again.",
                     error=bool(counts["fail"]))
        self.set_state(report.state())

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#pf-status", Label)
        status.update(text)
        status.set_class(error, "-error")

    def _show_enable(self, shown: bool) -> None:
        self.query_one("#pf-enable", Button).set_class(shown, "-shown")

    # actions ---------------------------------------------------------------------------------
    def action_rerun(self) -> None:
        self.run_checks()

    @on(Button.Pressed, "#pf-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.run_checks()

    @on(Input.Submitted, ".pf-file-row Input")
    def _file_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.run_checks()

    @on(Button.Pressed, "#pf-enable")
    def _enable_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_enable_api()

    def action_enable_api(self) -> None:
        api = self._results.get("api")
        if api is None or api.status != "fail" or not api.data.get("can_enable") or self._enabling:
            return
        ctx = self.ctx
        if ctx is None:
            return
        project = self.cfg.project
        service = api.data.get("service", "container.googleapis.com")

        def answered(yes: bool | None) -> None:
            if yes:
                self._enabling = True
                self.query_one("#pf-enable", Button).disabled = True
                self.query_one(Checklist).set_result("api", "running", f"Enabling {service} in {project}…")
                self._status(f"Enabling {service}… (up to a minute)")
                self._enable_worker(ctx)

        self.app.push_screen(ConfirmModal(
            "Enable the Kubernetes Engine API?",
            f"Enables {service} in project {project}, like:\n"
            f"  gcloud services enable {service} --project {project}\n"
            "It is free (the cluster in step 2 is what costs money) and takes up to a minute. "
            "Needs roles/serviceusage.serviceUsageAdmin.", yes="Enable"), callback=answered)

    @work(thread=True, exclusive=True, group="preflight-enable", exit_on_error=False)
    def _enable_worker(self, ctx: Any) -> None:
        from ..steps.preflight import enable_container_api

        try:
            result = enable_container_api(ctx)
        except Exception as e:  # noqa: BLE001
            self._post(ApiEnabled(None, f"Could not enable the API ({e.__class__.__name__}: {e})."))
            return
        self._post(ApiEnabled(result))

    @on(ApiEnabled)
    def _api_enabled(self, event: ApiEnabled) -> None:
        self._enabling = False
        self.query_one("#pf-enable", Button).disabled = False
        r = event.result
        if r is None:
            prev = self._results.get("api")
            self.query_one(Checklist).set_result("api", "fail", event.error, prev.fix if prev else "")
            self._status(event.error, error=True)
            return
        self._results["api"] = r
        self.query_one(Checklist).set_result("api", r.status, r.detail, r.fix)
        if r.status == "pass":
            self.notify("The Kubernetes Engine API is enabled; running the checks again.",
                        title="API enabled", timeout=5, markup=False)
            self.run_checks()
        else:
            self._show_enable(bool(r.data.get("can_enable")))
            self._summarise()
