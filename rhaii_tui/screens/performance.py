"""Step 10: cache-aware routing and throughput.

Two tabs over one run (`steps.performance.run_performance` does the work, in a worker thread; the
throughput part runs in a separate process):

- **Cache proof** (`widgets.cache_test.CacheTestPane`): block size, the shared prefix in blocks,
  first vs repeat latency and the speed-up, which replica served each request, the per-replica
  delta of prefix_cache_hits / queries, the control request, and the verdict — "cache-aware
  routing works" only when metrics, affinity and latency agree, otherwise the failing part and its
  fix — next to what the guide's latency-only test concluded and why it can be fooled.
- **Throughput**: mode (closed loop with N in flight / open loop at a fixed rate / serial / all
  three), duration; a live chart (req/s, latency P50/P99 per second); per run req/s,
  P50/P90/P99 (flagged when too few samples for a P99), errors, achieved vs requested rate, and
  the comparison with the guide's figures.

Keys: `r` run, `s` stop (ends the throughput run early; the result covers what was sent),
`x` export the PoC report.
"""

from __future__ import annotations

import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static, TabbedContent, TabPane

from ..widgets.cache_test import FIXES, CacheTestPane
from . import register_step_screen
from .verify import ResultsPage, _state

MODE_CHOICES: tuple[tuple[str, str], ...] = (
    ("closed, open and serial", "closed,open,serial"),
    ("closed loop: N in flight", "closed"),
    ("open loop: fixed rate", "open"),
    ("serial: 1 in flight", "serial"),
    ("none: cache proof only", ""),
)
DEFAULT_MODES = "closed,open,serial"
DEFAULT_DURATION = "30"
DEFAULT_CONCURRENCY = "10"
DEFAULT_RATE = "25"
# the step state's fix (one line; the Cache proof tab shows the full one)
SHORT_FIXES = {
    "caching": "Add --enable-prefix-caching to the vLLM args (step 5), then run again.",
    "routing": "Check step 6 (EPP sidecar) and step 7 (EnvoyFilters), then run again.",
    "metrics": "Give access to pods/proxy and make sure the pods are Ready (step 9), then run again.",
    "control": "Run again while nothing else uses the service.",
    "latency": "Run again while the service is idle, or with a longer prefix.",
    "service": "Run step 9 to see which part fails.",
}
GUIDE_LINE = ("The guide expects ~25 req/s at 10 concurrent, ~6.3 req/s serial, P50 < 200 ms and P99 < 500 ms "
              "(its figures come from one burst of 10 requests; here each rate is held for the duration).")


def warmup_for(duration_s: float) -> float:
    """Unmeasured start of each throughput run: 2 s, less for very short runs."""
    return round(min(2.0, max(0.2, duration_s / 5)), 2)


def _num(v: Any, unit: str = "", nd: int = 0) -> str:
    return "–" if v is None else f"{float(v):.{nd}f}{unit}"


def throughput_content(runs: list[Any]) -> Content:
    """One line per run: req/s, P50/P90/P99, errors; achieved vs requested rate for the open loop."""
    if not runs:
        return Content("")
    parts: list[Any] = [(f"{'run':<27}{'req/s':>7}{'P50':>8}{'P90':>8}{'P99':>9}{'errors':>8}\n", "bold")]
    notes: list[str] = []
    starred = False
    for t in runs:
        r = t.result
        label = t.label if len(t.label) <= 26 else t.label[:25] + "…"
        if r is None:
            parts.append((f"{label:<27}failed: {t.error or 'no result'}\n", "$error"))
            continue
        lat = r.latency_ms
        star = "" if lat.p99_reliable or lat.p99 is None else "*"
        errors = r.requests - r.ok
        style = "" if t.passed else "$warning"
        parts.append((f"{label:<27}{r.throughput:>7.1f}{_num(lat.p50, ' ms'):>8}{_num(lat.p90, ' ms'):>8}"
                      f"{_num(lat.p99, ' ms') + star:>9}{errors:>8}\n", style))
        extra = [f"{r.requests} requests"]
        if errors:
            extra.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())))
        if r.requested_rate:
            extra.append(f"achieved {r.achieved_rate:.1f} of {r.requested_rate:g} req/s requested "
                         f"({r.achieved_rate / r.requested_rate:.0%})")
        if r.aborted:
            extra.append(f"ended early: {r.aborted}")
        parts.append((f"{'':<2}{'; '.join(extra)}\n", "$text-muted"))
        if star:
            starred = True
        for w in r.warnings:
            if "P99" not in w:
                notes.append(f"{t.label}: {w}")
    if starred:
        notes.insert(0, "* fewer than 100 samples: too few for a P99 (it is about the max); run longer to judge it")
    if notes:
        parts.append(("\n".join(notes) + "\n", "$text-muted"))
    return Content.assemble(*parts)


def guide_content(rows: list[dict[str, Any]]) -> Content:
    """The comparison with the guide's figures: ✔/✘ per row; '·' for rows that do not gate."""
    if not rows:
        return Content("")
    parts: list[Any] = [("Compared with the guide\n", "bold $accent")]
    for g in rows:
        ok = g.get("ok")
        if not g.get("gating", True):
            glyph, style = "·", "$text-muted"
        else:
            glyph, style = {True: ("✔", "bold $success"), False: ("✘", "bold $error")}.get(ok, ("?", "bold $warning"))
        parts += [(f"{glyph} ", style), (f"{g['run']}: ", "bold"),
                  f"{g['name']} {g['measured']} (guide {g['expected']})"]
        note = g.get("note") or ""
        if note and (not g.get("gating", True) or ok is None or ok is False):
            parts.append((f" — {note}", "$text-muted"))
        parts.append("\n")
    return Content.assemble(*parts)


@register_step_screen(10)
class PerformanceScreen(ResultsPage):
    """Step 10's page."""

    PROBE = "rhaii_tui.steps.performance"

    DEFAULT_CSS = """
    PerformanceScreen {
        .step-commands CommandList { max-height: 3; }
        .run-bar { margin: 0; }
        #perf-tabs { height: 1fr; }
        #perf-tabs TabPane { padding: 0; }
        #perf-throughput { height: 1fr; padding: 0 1 0 0; }
        .perf-form { height: 1; margin: 0 0 0 0; }
        .perf-form Label { width: auto; padding: 0 1 0 0; }
        .perf-form .perf-gap { padding: 0 1 0 2; }
        #perf-mode { width: 30; }
        #perf-duration, #perf-concurrency, #perf-rate { width: 8; }
        #perf-form-error { color: $error; height: auto; display: none; }
        #perf-form-error.-shown { display: block; }
        #perf-guide-line { color: $text-muted; height: auto; margin: 0 0 1 0; }
        #perf-chart { height: 12; margin: 1 0 0 0; }
        #perf-results, #perf-guide, #perf-notes { height: auto; margin: 1 0 0 0; }
    }
    """

    BINDINGS = [
        Binding("r", "run", "Run", tooltip="Run the cache proof, then the throughput runs"),
        Binding("s", "stop", "Stop", tooltip="Stop the run (the throughput result covers what was sent)"),
        Binding("x", "export", "Export report", tooltip="Write the PoC report (Markdown + JSON + SVG)"),
    ]

    class Progress(Message):
        bubble = False

        def __init__(self, event: Any) -> None:
            super().__init__()
            self.event = event

    class ProofDone(Message):
        """The cache proof (and the latency-only test) finished; throughput may follow."""
        bubble = False

        def __init__(self, result: Any) -> None:
            super().__init__()
            self.result = result

    class Finished(Message):
        bubble = False

        def __init__(self, result: Any, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, number: int = 10, **kwargs: Any) -> None:
        super().__init__(number, **kwargs)
        self.result: Any = None          # the last PerformanceResult (for the report)
        self.stop_event: threading.Event | None = None
        self.options: Any = None         # the last run's PerfOptions
        self._chart_mode: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="run-bar"):
            yield Button("Run", id="perf-run", variant="primary", compact=True,
                         tooltip="Cache proof, then the throughput runs (r)")
            yield Button("Stop", id="perf-stop", variant="error", compact=True, disabled=True,
                         tooltip="Stop the run (s)")
            yield Button("Export report…", id="perf-export", compact=True, tooltip="Export the PoC report (x)")
            yield Label("Run it while nothing else uses the service.", id="perf-status", classes="run-status")
        with TabbedContent(id="perf-tabs", initial="tab-proof"):
            with TabPane("Cache proof", id="tab-proof"):
                yield CacheTestPane(id="perf-proof")
            with TabPane("Throughput", id="tab-throughput"):
                with VerticalScroll(id="perf-throughput"):
                    with Horizontal(classes="perf-form"):
                        yield Label("Mode")
                        yield Select(MODE_CHOICES, value=DEFAULT_MODES, allow_blank=False, id="perf-mode",
                                     compact=True)
                        yield Label("Duration", classes="perf-gap")
                        yield Input(DEFAULT_DURATION, type="number", id="perf-duration", compact=True,
                                    tooltip="Seconds measured per run (after a short warm-up)")
                        yield Label("s")
                    with Horizontal(classes="perf-form"):
                        yield Label("In flight")
                        yield Input(DEFAULT_CONCURRENCY, type="integer", id="perf-concurrency", compact=True,
                                    tooltip="Closed loop: requests always in flight")
                        yield Label("Rate", classes="perf-gap")
                        yield Input(DEFAULT_RATE, type="number", id="perf-rate", compact=True,
                                    tooltip="Open loop: requests per second, sent on schedule")
                        yield Label("req/s (open loop)")
                    yield Static("", id="perf-form-error")
                    yield Static(GUIDE_LINE, id="perf-guide-line")
                    yield _chart()
                    yield Static("", id="perf-results")
                    yield Static("", id="perf-guide")
                    yield Static("", id="perf-notes")

    # options ------------------------------------------------------------------------------------
    def read_options(self) -> tuple[Any, list[str]]:
        """PerfOptions from the form, and the problems (clear messages) if any."""
        from ..steps.performance import PerfOptions

        problems: list[str] = []
        mode_value = self.query_one("#perf-mode", Select).value
        modes = tuple(m for m in str(mode_value or "").split(",") if m)

        def number(wid: str, what: str, cast: type) -> Any:
            raw = self.query_one(f"#{wid}", Input).value.strip()
            try:
                return cast(raw)
            except ValueError:
                problems.append(f"{what} must be a number, not {raw!r}" if raw else f"give the {what}")
                return None

        duration = number("perf-duration", "duration (seconds)", float)
        concurrency = number("perf-concurrency", "number in flight", int)
        rate = number("perf-rate", "rate (requests per second)", float)
        if problems:
            return None, problems
        opts = PerfOptions(modes=modes, duration_s=duration, warmup_s=warmup_for(duration),
                           concurrency=concurrency, rate=rate)
        return opts, opts.problems()

    # running ------------------------------------------------------------------------------------
    def action_run(self) -> None:
        opts, problems = self.read_options()
        err = self.query_one("#perf-form-error", Static)
        if problems:
            text = "; ".join(problems)
            err.update(Content.assemble(("✘ ", "bold"), text))
            err.add_class("-shown")
            self.query_one(TabbedContent).active = "tab-throughput"
            self.notify(text, title="Cannot run", severity="error", markup=False)
            return
        err.remove_class("-shown")
        ctx = self.begin_run()
        if ctx is None:
            return
        self.options = opts
        self.stop_event = threading.Event()
        self._verdict_line = ""
        self.query_one(CacheTestPane).reset()
        self._chart_mode = None
        _chart_of(self).reset("")
        for wid in ("#perf-results", "#perf-guide", "#perf-notes"):
            self.query_one(wid, Static).update("")
        self.query_one("#perf-run", Button).disabled = True
        self.query_one("#perf-stop", Button).disabled = False
        self.query_one("#perf-status", Label).update("starting…")
        self.query_one(TabbedContent).active = "tab-proof"
        self.set_state(_state("in_progress", "running the cache proof and the throughput test…"))
        self._run(ctx, opts, self.stop_event)

    @work(thread=True, group="perf-run", exclusive=True, exit_on_error=False)
    def _run(self, ctx: Any, opts: Any, stop: threading.Event) -> None:
        try:
            res = run_in_two_parts(ctx, opts, stop, lambda ev: self.post_message(self.Progress(ev)),
                                   lambda first: self.post_message(self.ProofDone(first)))
        except Exception as e:  # noqa: BLE001 - never a traceback
            self.post_message(self.Finished(None, f"{type(e).__name__}: {e}"))
            return
        self.post_message(self.Finished(res))

    def action_stop(self) -> None:
        if self.running and self.stop_event is not None and not self.stop_event.is_set():
            self.stop_event.set()
            self.query_one("#perf-stop", Button).disabled = True
            self.query_one("#perf-status", Label).update("stopping…")
            self.notify("Stopping: the throughput result covers what was sent so far.", title="Step 10",
                        markup=False)

    def on_unmount(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()

    @on(Progress)
    def _progress(self, message: "PerformanceScreen.Progress") -> None:
        ev = message.event
        status = self.query_one("#perf-status", Label)
        pane = self.query_one(CacheTestPane)
        if ev.kind == "proof":
            pane.proof_event(ev.proof_event) if ev.proof_event is not None else pane.progress(ev.message)
            status.update(ev.message)
        elif ev.kind == "latency_only":
            pane.progress(ev.message)
            status.update(ev.message)
        elif ev.kind == "throughput":
            chart = _chart_of(self)
            if ev.tick is not None:
                if self._chart_mode != ev.mode:
                    self._chart_mode = ev.mode
                    chart.reset(self._label(ev.mode))
                chart.add_tick(ev.tick)
                t = ev.tick
                status.update(f"{self._label(ev.mode)}: {t.t_s:.0f} s, {t.rps:.1f} req/s"
                              + (f", P50 {t.p50_ms:.0f} ms" if t.p50_ms is not None else "")
                              + (" (warm-up)" if t.warmup else ""))
            else:
                if self._chart_mode != ev.mode:
                    self._chart_mode = ev.mode
                    chart.reset(self._label(ev.mode))
                    self.query_one(TabbedContent).active = "tab-throughput"
                status.update(ev.message)
                self._append_note(ev.message)
        elif ev.kind == "info":
            status.update(ev.message)
        elif ev.kind == "done" and ev.verdict is not None:
            self._verdict_line = ev.verdict.line()   # the last one (the whole run's) is kept on Finished
            status.update(self._verdict_line)

    def _label(self, mode: str | None) -> str:
        from ..steps.performance import mode_label

        return mode_label(mode, self.options) if mode and self.options else (mode or "")

    def _append_note(self, line: str) -> None:
        if ": " in line and not line.startswith("throughput:"):   # a run's one-line result
            notes = self.query_one("#perf-notes", Static)
            old = str(notes.content)
            notes.update(Content((old + "\n" if old else "") + line))

    @on(ProofDone)
    def _proof_done(self, message: "PerformanceScreen.ProofDone") -> None:
        res = message.result
        pane = self.query_one(CacheTestPane)
        if res.proof is not None:
            pane.show(res.proof, res.latency_only,
                      extra_note=next((n for n in res.notes if "bypasses the gateway" in n), ""))
        else:
            pane.show(None, res.latency_only, extra_note=res.headline)

    @on(Finished)
    def _finished(self, message: "PerformanceScreen.Finished") -> None:
        self.end_run()
        self.query_one("#perf-run", Button).disabled = False
        self.query_one("#perf-stop", Button).disabled = True
        status = self.query_one("#perf-status", Label)
        pane = self.query_one(CacheTestPane)
        if message.error or message.result is None:
            status.update("the run stopped with an error")
            pane.show(None, extra_note=message.error or "")
            self.set_state(_state("failed", f"The run stopped: {message.error}"))
            return
        res = message.result
        self.result = res
        self.show_result(res)
        status.update(getattr(self, "_verdict_line", "") or f"{res.status}: {res.headline}")
        self.set_state(self.state_for(res))

    def show_result(self, res: Any) -> None:
        """Fill both tabs from a PerformanceResult."""
        pane = self.query_one(CacheTestPane)
        acc = (res.access or {}).get("description")
        proxy_note = next((n for n in res.notes if "bypasses the gateway" in n), "")
        if res.proof is not None:
            pane.show(res.proof, res.latency_only, extra_note=proxy_note)
        else:
            pane.show(None, res.latency_only, extra_note=res.headline)
        runs = list(res.throughput)
        self.query_one("#perf-results", Static).update(throughput_content(runs))
        self.query_one("#perf-guide", Static).update(guide_content(res.guide_rows()))
        notes = [f"Requests went {acc}." if acc else ""] + [n for n in res.notes if n]
        self.query_one("#perf-notes", Static).update(Content.styled("\n".join(n for n in notes if n), "$text-muted"))
        last = next((t for t in reversed(runs) if t.result is not None), None)
        if last is not None:
            self._chart_mode = last.mode
            _chart_of(self).set_ticks(last.result.buckets, title=last.label)

    @staticmethod
    def state_for(res: Any) -> Any:
        data = {"result": res.summary()}
        if res.status == "pass":
            return _state("done", res.headline or "cache-aware routing works", data=data)
        fix = ""
        if res.proof is not None and res.proof.failing:
            part = res.proof.failing[0]
            fix = SHORT_FIXES.get(part) or FIXES.get(part, ("", ""))[1]
        elif any(not t.passed for t in res.throughput):
            fix = ("Check that every replica is Ready (step 9) and that nothing else loads the service; "
                   "a short run has few samples — run longer.")
        if res.status == "fail":
            return _state("failed", res.headline, fix=fix, data=data)
        return _state("not_started", f"Inconclusive: {res.headline}", fix=fix or "Run it again.", data=data)

    def probed(self, state: Any) -> None:
        stored = (getattr(state, "data", None) or {}).get("stored")
        if stored and self.result is None:
            self.query_one(CacheTestPane).show_stored(stored)

    # buttons ------------------------------------------------------------------------------------
    @on(Button.Pressed, "#perf-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    @on(Button.Pressed, "#perf-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_stop()

    @on(Button.Pressed, "#perf-export")
    def _export_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_export()


def run_in_two_parts(ctx: Any, opts: Any, stop: threading.Event, on_event: Any, on_proof: Any) -> Any:
    """`run_performance` as two calls, so the proof's verdict is on screen while throughput runs:
    1. the latency-only test and the cache proof (no throughput), 2. the throughput runs (no proof).
    The parts are merged into one PerformanceResult, judged by the logic's own verdict and stored
    like a single run. Blocking: call from a worker thread."""
    import dataclasses

    from ..steps import performance as perf
    from ..steps.verify import VIA_GATEWAY

    if not opts.modes or not opts.cache_proof:
        return perf.run_performance(ctx, opts, on_event, stop=stop)
    first = perf.run_performance(ctx, dataclasses.replace(opts, modes=(), store=False), on_event, stop=stop)
    on_proof(first)
    if first.proof is None or stop.is_set():      # nothing to measure (nothing deployed, ...) or stopped
        if opts.store:
            perf.store_result(ctx, first)
        return first
    second = perf.run_performance(ctx, dataclasses.replace(opts, cache_proof=False, latency_only=False,
                                                           store=False), on_event, stop=stop)
    through_gateway = (first.access or {}).get("via") == VIA_GATEWAY
    status, headline, passed = perf._verdict(opts, first.proof, second.throughput, through_gateway, stop)
    on_event(perf.PerfEvent("done", f"{status}: {headline}",
                            verdict=perf.judge(opts, first.proof, second.throughput, through_gateway, stop)))
    notes = list(first.notes) + [n for n in second.notes if n not in first.notes]
    merged = dataclasses.replace(first, throughput=second.throughput, finished_at=second.finished_at,
                                 elapsed_s=round(first.elapsed_s + second.elapsed_s, 3), status=status,
                                 headline=headline, passed=passed, notes=notes,
                                 options=dataclasses.asdict(opts))
    if opts.store:
        perf.store_result(ctx, merged)
    return merged


def _chart() -> Any:
    from ..widgets.throughput_chart import ThroughputChart

    return ThroughputChart(id="perf-chart")


def _chart_of(screen: PerformanceScreen) -> Any:
    return screen.query_one("#perf-chart")


__all__ = ["PerformanceScreen", "guide_content", "throughput_content", "warmup_for"]
