"""Step 9: verify the deployment — pass/fail rows with evidence, and the access path said plainly.

Rows (from `steps.verify.run_verify`, which does the work): the LLMInferenceService Ready, N pods
Ready by the readiness condition, how the service is reached (the gateway, or the Kubernetes
service proxy when the gateway has no address), GET /health, GET /v1/models (/mnt/models), a
completion and a chat completion with "choices", and each replica answering on its own through
the pod proxy. Each row shows its evidence (HTTP status, latency, the first words of the answer,
who served it) and, when it fails, the fix.

`r` runs the checks in a worker thread; rows fill in as each check finishes. `x` exports the PoC
report (steps 9-11 as far as they ran in this session).

This module also holds what steps 9-11 share: `ResultsPage` (probe on first visit, the "not
connected" message, the Export action) and `ExportReport` (the report dialog).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from ..widgets.modal import WizardModal
from textual.widgets import Button, Input, Label, Static

from ..widgets.check_rows import CheckRows
from . import register_step_screen
from .base import StepScreen

NOT_CONNECTED = ("Not connected to a cloud: the wizard could not reach one at start-up. "
                 "Restart with --sim for the emulator, or check your credentials.")


def _state(status: str, summary: str, detail: str = "", fix: str = "", data: dict | None = None) -> Any:
    from ..steps.base import Status, StepState

    return StepState(Status(status), summary, detail=detail, fix=fix, data=data or {})


# --------------------------------------------------------------------------------------------
# shared by steps 9-11
# --------------------------------------------------------------------------------------------


class ResultsPage(StepScreen):
    """A step 9-11 page: probes its state on the first visit (in a worker), runs on `r`, exports on `x`."""

    PROBE: str = ""        # "rhaii_tui.steps.verify" — the module whose probe(ctx) gives the state

    DEFAULT_CSS = """
    ResultsPage {
        .run-bar { height: 1; margin: 0 0 1 0; }
        .run-bar Button { margin: 0 1 0 0; }
        .run-status { width: 1fr; color: $text-muted; padding: 0 0 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    }
    """

    class Probed(Message):
        bubble = False

        def __init__(self, state: Any, seq: int) -> None:
            super().__init__()
            self.state = state
            self.seq = seq

    def __init__(self, number: int, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self._probed = False
        self._seq = 0          # bumped by every run: a probe that started earlier is stale
        self.running = False

    def on_mount(self) -> None:  # Textual calls each class's on_mount: no super() here
        self.watch(self.app, "profile", self._profile_changed, init=False)

    def _profile_changed(self, _profile: Any) -> None:
        self._probed = False
        if self.is_current:
            self.step_entered()

    def step_entered(self) -> None:
        if self._probed or self.running or not self.PROBE:
            return
        ctx = self.ctx
        if ctx is None:
            return
        self._probed = True
        self._probe(ctx, self._seq)

    @work(thread=True, group="probe", exclusive=True, exit_on_error=False)
    def _probe(self, ctx: Any, seq: int) -> None:
        import importlib

        try:
            state = importlib.import_module(self.PROBE).probe(ctx)
        except Exception:  # noqa: BLE001 - a probe is a hint; the run says what is wrong
            return
        self.post_message(self.Probed(state, seq))

    @on(Probed)
    def _probed_state(self, message: "ResultsPage.Probed") -> None:
        if message.seq != self._seq or self.running:
            return
        self.set_state(message.state)
        self.probed(message.state)

    def probed(self, state: Any) -> None:
        """Hook: the probe's state (the page may show part of its data)."""

    def begin_run(self) -> Any:
        """The context for a run, or None (and a message) when not connected or already running."""
        ctx = self.context_for_run(self.running, NOT_CONNECTED)
        if ctx is None:
            return None
        self._seq += 1
        self.running = True
        return ctx

    def end_run(self) -> None:
        self.running = False

    # export --------------------------------------------------------------------------------------
    def action_export(self) -> None:
        ctx = self.ctx
        self.app.push_screen(ExportReport(self.cfg, session_results(self.wizard), ctx))


def session_results(app: Any) -> dict[str, Any]:
    """What steps 9-11 found in this session: {"verify": [CheckResult] | None,
    "performance": PerformanceResult | None, "identity": IdentityResult | None}."""
    def page_attr(n: int, attr: str) -> Any:
        page = app.page_widget(n) if hasattr(app, "page_widget") else None
        return getattr(page, attr, None) if page is not None else None

    return {"verify": page_attr(9, "checks"), "performance": page_attr(10, "result"),
            "identity": page_attr(11, "result")}


def default_report_path(cfg: Any) -> str:
    return f"./rhaii-poc-report-{getattr(cfg, 'cluster', '') or 'cluster'}"


class ExportReport(WizardModal[list | None]):
    """Ask for a path and write the PoC report (Markdown + JSON, and an SVG chart when there are
    throughput series) with `report.write_report`. Shows the written paths, or what went wrong."""

    DEFAULT_CSS = """
    ExportReport {
        align: center middle;
        background: $background 70%;
        #export-box {
            width: 84; max-width: 100%; height: auto; max-height: 100%;
            border: thick $accent; border-title-style: bold; background: $surface; padding: 1 2;
        }
        #export-included { height: auto; margin: 0 0 1 0; }
        #export-path { margin: 0 0 0 0; }
        #export-hint { color: $text-muted; margin: 0 0 1 0; }
        #export-error { color: $error; height: auto; display: none; }
        #export-error.-shown { display: block; }
        #export-done { height: auto; display: none; }
        #export-done.-shown { display: block; }
        #export-buttons { height: auto; align-horizontal: right; margin: 1 0 0 0; }
        #export-buttons Button { margin: 0 0 0 2; }
    }
    """

    BINDINGS = [Binding("escape", "close", "Close")]

    class Written(Message):
        def __init__(self, paths: list[Path]) -> None:
            super().__init__()
            self.paths = paths

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, cfg: Any, results: dict[str, Any], ctx: Any = None, default_path: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.results = results
        self.ctx = ctx
        self.default_path = default_path or default_report_path(cfg)
        self.written: list[Path] = []
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box") as box:
            box.border_title = "Export the PoC report"
            yield Static(self._included(), id="export-included")
            yield Input(self.default_path, placeholder="path without extension, e.g. ./poc-report",
                        id="export-path")
            yield Static("Writes <path>.md and <path>.json (and <path>-throughput.svg when step 10 measured "
                         "throughput). No secrets: known secret values and token-shaped strings are removed.",
                         id="export-hint")
            yield Static("", id="export-error")
            yield Static("", id="export-done")
            with Horizontal(id="export-buttons"):
                yield Button("Write", id="export-write", variant="primary", compact=True)
                yield Button("Close", id="export-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def _included(self) -> Content:
        parts: list[Any] = [("In this report\n", "bold")]
        v, p, i = self.results.get("verify"), self.results.get("performance"), self.results.get("identity")

        def line(label: str, text: str, ok: bool | None) -> None:
            glyph, style = {True: ("✔", "bold $success"), False: ("✘", "bold $error")}.get(
                ok, ("–", "$text-muted"))  # type: ignore[arg-type]
            parts.extend([(f"{glyph} ", style), (f"{label}: ", "bold"), text, "\n"])

        if v:
            n_ok = sum(1 for c in v if c.ok is True)
            line("Step 9", f"{n_ok} of {len(v)} checks passed", n_ok == len(v))
        else:
            line("Step 9", "not run in this session", None)
        if p is not None:
            line("Step 10", f"{p.status}: {p.headline}", p.passed)
        else:
            line("Step 10", "not run in this session", None)
        if i is not None:
            line("Step 11", i.headline, i.passed)
        else:
            line("Step 11", "not run in this session", None)
        return Content.assemble(*parts)

    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#export-write")
    def _write_pressed(self, event: Message) -> None:
        event.stop()
        self.action_write()

    @on(Button.Pressed, "#export-close")
    def _close_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_close()

    def action_close(self) -> None:
        self.dismiss([str(p) for p in self.written] or None)

    def action_write(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self._show_error("Give a path, e.g. ./rhaii-poc-report (the extensions are added).")
            return
        self.query_one("#export-write", Button).disabled = True
        self._write(path)

    @work(thread=True, group="export", exclusive=True, exit_on_error=False)
    def _write(self, path: str) -> None:
        from ..report import ReportError, build_report, secret_values, write_report

        try:
            r = self.results
            secrets = secret_values(self.ctx) if self.ctx is not None else []
            profile = getattr(self.ctx, "profile", None) or getattr(self.app, "profile", None)
            times = [t for t in (_started(r.get("verify")), _started(r.get("performance")),
                                 _started(r.get("identity"))) if t]
            ends = [t for t in (_finished(r.get("verify")), _finished(r.get("performance")),
                                _finished(r.get("identity"))) if t]
            data = build_report(self.cfg, verify=r.get("verify"), performance=r.get("performance"),
                                identity=r.get("identity"), environment=getattr(profile, "label", "") or "",
                                secrets=secrets, started_at=min(times) if times else None,
                                finished_at=max(ends) if ends else None)
            if self.ctx is not None:  # the whole deployment: step times, versions, cost, transcript
                from ..report import redact
                from ..runreport import deployment_report

                data.update(redact(deployment_report(self.ctx), secrets))
            paths = write_report(path, data, secrets=secrets)
        except ReportError as e:
            self.post_message(self.Failed(str(e)))
            return
        except OSError as e:
            self.post_message(self.Failed(f"cannot write the report at {path}: {e.strerror or e}. Pick another path."))
            return
        except Exception as e:  # noqa: BLE001 - never a traceback
            self.post_message(self.Failed(f"the report could not be built: {type(e).__name__}: {e}"))
            return
        self.post_message(self.Written([p.resolve() for p in paths]))

    @on(Written)
    def _written(self, message: "ExportReport.Written") -> None:
        self.written = message.paths
        self.error = None
        self.query_one("#export-error", Static).remove_class("-shown")
        done = self.query_one("#export-done", Static)
        done.update(Content.assemble(("✔ Written\n", "bold $success"),
                                     "\n".join(str(p) for p in message.paths)))
        done.add_class("-shown")
        self.query_one("#export-write", Button).disabled = False
        self.query_one("#export-close", Button).focus()
        self.notify("\n".join(p.name for p in message.paths), title="Report written", markup=False)

    @on(Failed)
    def _failed(self, message: "ExportReport.Failed") -> None:
        self.query_one("#export-write", Button).disabled = False
        self._show_error(message.error)

    def _show_error(self, text: str) -> None:
        self.error = text
        err = self.query_one("#export-error", Static)
        err.update(Content.assemble(("✘ Not written: ", "bold"), text))
        err.add_class("-shown")
        self.query_one("#export-done", Static).remove_class("-shown")


def _started(res: Any) -> str | None:
    if res is None:
        return None
    if isinstance(res, list):
        ats = [c.at for c in res if getattr(c, "at", 0)]
        if not ats:
            return None
        from ..steps.verify import now_iso

        return now_iso(min(ats))
    return getattr(res, "started_at", None)


def _finished(res: Any) -> str | None:
    if res is None:
        return None
    if isinstance(res, list):
        ats = [c.at for c in res if getattr(c, "at", 0)]
        if not ats:
            return None
        from ..steps.verify import now_iso

        return now_iso(max(ats))
    return getattr(res, "finished_at", None)


# --------------------------------------------------------------------------------------------
# step 9
# --------------------------------------------------------------------------------------------


def planned_checks(cfg: Any) -> list[tuple[str, str]]:
    """The rows shown before a run, in the order `run_verify` runs them."""
    from ..manifests import health_route_name

    return [
        ("llmisvc", f"LLMInferenceService {cfg.service} Ready"),
        ("pods", f"{cfg.replicas} vLLM replica(s) Ready (readiness, not phase)"),
        ("access", "Service reachable (gateway, or the Kubernetes service proxy)"),
        ("route", f"HTTPRoute {health_route_name(cfg.service)} resolves its InferencePool (gateway only)"),
        ("health", "GET /health"),
        ("models", "GET /v1/models lists /mnt/models"),
        ("completion", "POST /v1/completions returns choices"),
        ("chat", "POST /v1/chat/completions returns choices"),
        ("replica:*", "Each replica answers on its own (through the Kubernetes pod proxy)"),
    ]


def access_content(check: Any | None) -> Content:
    """Which way the requests went, said plainly."""
    if check is None:
        return Content.styled("Access: not known yet — the checks find the gateway's address first.", "$text-muted")
    if check.ok is not True:
        return Content.assemble(("✘ Service not reachable: ", "bold $error"), check.evidence or "",
                                ("\nFix: ", "bold $warning"), check.fix or "")
    data = check.data or {}
    url = data.get("base_url", "")
    if data.get("via") == "gateway":
        return Content.assemble(("Requests went through the gateway ", "bold"),
                                (str(data.get("gateway_address") or ""), "bold $success"),
                                (f" — {url}", "$text-muted"))
    return Content.assemble(("Requests went through the Kubernetes service proxy, not the gateway", "bold $warning"),
                            f" ({str(data.get('description', '')).partition('(')[2].rstrip(')') or 'no gateway'}): ",
                            ("this bypasses the gateway and its cache-aware routing (EPP).", ""),
                            (f"\n{url}", "$text-muted"))


@register_step_screen(9)
class VerifyScreen(ResultsPage):
    """Step 9's page."""

    PROBE = "rhaii_tui.steps.verify"

    DEFAULT_CSS = """
    VerifyScreen {
        .step-commands CommandList { max-height: 4; }
        #verify-access { height: auto; margin: 0 1 1 0; }
        #verify-summary { height: auto; margin: 1 1 0 0; }
    }
    """

    BINDINGS = [
        Binding("r", "run", "Run checks", tooltip="Run step 9's checks against the live service"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON)"),
    ]

    class CheckDone(Message):
        bubble = False

        def __init__(self, check: Any) -> None:
            super().__init__()
            self.check = check

    class Finished(Message):
        bubble = False

        def __init__(self, checks: list, error: str | None = None) -> None:
            super().__init__()
            self.checks = checks
            self.error = error

    def __init__(self, number: int = 9, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self.checks: list | None = None       # the last run's CheckResults
        self.finished_at: float | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="run-bar"):
            yield Button("Run checks", id="verify-run", variant="primary", compact=True,
                         tooltip="Run the checks (r)")
            yield Button("Export report…", id="verify-export", compact=True, tooltip="Export the PoC report (x)")
            yield Label("Press r (or Run checks) to call the service.", id="verify-status", classes="run-status")
        yield Static(access_content(None), id="verify-access")
        yield CheckRows(planned_checks(self.cfg), id="verify-rows")
        yield Static("", id="verify-summary")

    def config_changed(self, cfg: Any) -> None:
        if not self.running and self.checks is None:
            self.query_one(CheckRows).plan(planned_checks(cfg))

    def probed(self, state: Any) -> None:
        """The probe ran the quick checks: their rows show what they found; the others wait for a run."""
        quick = (getattr(state, "data", None) or {}).get("checks") or []
        if not quick or self.checks is not None:
            return
        from types import SimpleNamespace

        rows = self.query_one(CheckRows)
        rows.plan(planned_checks(self.cfg))
        for c in quick:
            rows.show(SimpleNamespace(**{k: c.get(k) for k in ("key", "title", "ok", "evidence", "fix")}))
            if c.get("key") == "access":
                self.query_one("#verify-access", Static).update(access_content(SimpleNamespace(**c)))
        rows.finish()
        n_ok = sum(1 for c in quick if c.get("ok") is True)
        self.query_one("#verify-status", Label).update(
            f"quick checks on opening: {n_ok} of {len(quick)} passed · {time.strftime('%H:%M:%S')} · "
            "press r for all of them")

    # running ----------------------------------------------------------------------------------
    def action_run(self) -> None:
        ctx = self.begin_run()
        if ctx is None:
            return
        rows = self.query_one(CheckRows)
        rows.plan(planned_checks(ctx.cfg))
        rows.start()
        self.query_one("#verify-access", Static).update(access_content(None))
        self.query_one("#verify-summary", Static).update("")
        self.query_one("#verify-status", Label).update("running the checks…")
        self.query_one("#verify-run", Button).disabled = True
        self.set_state(_state("in_progress", "running the checks…"))
        self._run(ctx)

    @work(thread=True, group="verify-run", exclusive=True, exit_on_error=False)
    def _run(self, ctx: Any) -> None:
        from ..steps.verify import run_verify

        try:
            checks = run_verify(ctx, lambda c: self.post_message(self.CheckDone(c)))
        except Exception as e:  # noqa: BLE001 - never a traceback
            self.post_message(self.Finished([], f"{type(e).__name__}: {e}"))
            return
        self.post_message(self.Finished(checks))

    @on(CheckDone)
    def _check_done(self, message: "VerifyScreen.CheckDone") -> None:
        c = message.check
        self.query_one(CheckRows).show(c)
        if c.key == "access":
            self.query_one("#verify-access", Static).update(access_content(c))
        self.query_one("#verify-status", Label).update(f"{c.mark}  {c.title}")

    @on(Finished)
    def _finished(self, message: "VerifyScreen.Finished") -> None:
        from ..steps.verify import first_failure, summary_of

        self.end_run()
        self.query_one("#verify-run", Button).disabled = False
        rows = self.query_one(CheckRows)
        rows.finish()
        checks = message.checks
        status = self.query_one("#verify-status", Label)
        if message.error:
            status.update("the checks stopped with an error")
            self.set_state(_state("failed", f"The checks stopped: {message.error}"))
            return
        self.checks = checks
        self.finished_at = time.time()
        summary = summary_of(checks)
        n_ok = sum(1 for c in checks if c.ok is True)
        status.update(f"{n_ok} of {len(checks)} passed · {time.strftime('%H:%M:%S')}")
        bad = first_failure(checks)
        if bad is None and checks:
            self.set_state(_state("done", summary, data={"checks": [c.to_dict() for c in checks]}))
            self.query_one("#verify-summary", Static).update(
                Content.assemble(("✔ ", "bold $success"), (summary, "bold")))
        else:
            self.set_state(_state("failed", summary, detail=bad.evidence if bad else "",
                                  fix=bad.fix if bad else "", data={"checks": [c.to_dict() for c in checks]}))
            self.query_one("#verify-summary", Static).update(Content.assemble(
                ("✘ ", "bold $error"), (summary, "bold"),
                *((("\nFix: ", "bold $warning"), bad.fix) if bad and bad.fix else ())))

    # buttons ----------------------------------------------------------------------------------
    @on(Button.Pressed, "#verify-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    @on(Button.Pressed, "#verify-export")
    def _export_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_export()


__all__ = ["ExportReport", "ResultsPage", "VerifyScreen", "access_content", "default_report_path",
           "planned_checks", "session_results"]
