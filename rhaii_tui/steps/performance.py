"""Step 10: cache-aware routing and throughput.

Three parts, in this order (the service should otherwise be idle):

1. the guide's own cache test, judged by latency alone (`latency_only_verdict`), kept only to show
   next to the real proof why it is not enough (GUIDE_FACTS.md: a prompt shorter than one KV block,
   warm-up passes for caching);
2. the cache proof (`loadtest.cache_proof.run_cache_proof`): the replicas are the live Ready
   workload pods, their `/metrics` read through the Kubernetes pod proxy
   (`/api/v1/namespaces/NS/pods/https:POD:8000/proxy/metrics`, the cluster's CA, a bearer token);
3. the throughput test (`loadtest.engine`): closed loop with N in flight, serial, and optionally an
   open loop at a fixed rate, each in a separate process (`SubprocessLoad`) so the UI's CPU use
   never distorts the numbers; compared with the guide's expectations (~25 req/s at 10 concurrent,
   ~6.3 req/s serial, P50 < 200 ms, P99 < 500 ms — P99 flagged "not comparable" below 100 samples).

`run_performance(ctx, options, on_event)` runs them (blocking: call it from a worker thread) and
stores a non-secret summary in the state file, keyed by the LLMInferenceService's uid, so that
`probe(ctx)` (DONE only when a passing proof is stored for *this* deployment) and step 11 can use it.

The cache-aware routing lives in the gateway (Istio + the EPP). When the gateway has no address the
service is reached through the Kubernetes service proxy, which bypasses the EPP: the proof then runs
for the caching part only and the step is "inconclusive"; throughput is not measured (it would measure
the API server).

No Textual here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..cloud.gke import CloudError
from ..loadtest.cache_proof import (
    CacheVerdict,
    LatencyOnlyVerdict,
    ProofEvent,
    Replica,
    latency_only_verdict,
    run_cache_proof,
)
from ..loadtest.engine import LoadError, LoadResult, LoadSpec, LoadSpecError, ProgressTick, SubprocessLoad, run_load
from .base import Status, StepState, from_error
from .verify import (
    VIA_GATEWAY,
    KubeHttp,
    LiveState,
    ServiceAccess,
    now_iso,
    pod_name,
    read_live,
    resolve_access,
)

STATE_KEY = "performance_results"      # state file: {llmisvc uid: stored summary}
MAX_STORED = 5
MODES = ("closed", "serial", "open")


@dataclass
class PerfOptions:
    cache_proof: bool = True
    latency_only: bool = True             # also run the guide's latency-only test, for comparison
    repeats: int = 8                      # cache proof: requests sharing the test prefix
    blocks: int = 4                       # cache proof: full KV blocks in the shared prefix
    modes: tuple[str, ...] = ("closed", "open", "serial")   # throughput runs, in order; () = none
    concurrency: int = 10                 # closed loop: requests in flight
    rate: float = 25.0                    # open loop: requests per second
    duration_s: float = 30.0              # each throughput run's measured window
    warmup_s: float = 2.0                 # each throughput run's unmeasured start
    arrival: str = "constant"             # open loop: constant | poisson
    max_tokens: int = 10
    in_subprocess: bool = True            # throughput in a separate process (the UI keeps its CPU)
    seed: int | None = None
    timeout_s: float = 60.0
    store: bool = True                    # save the summary in the state file

    def problems(self) -> list[str]:
        out = []
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            out.append(f"unknown throughput mode(s) {', '.join(bad)}: choose from {', '.join(MODES)}")
        if not 1 <= self.concurrency <= 10_000:
            out.append("concurrency must be between 1 and 10000")
        if "open" in self.modes and not 0 < self.rate <= 100_000:
            out.append("rate must be greater than 0 requests per second")
        if self.modes and not 0 < self.duration_s <= 24 * 3600:
            out.append("duration must be greater than 0 seconds")
        if self.warmup_s < 0:
            out.append("warm-up must be 0 or more seconds")
        if self.repeats < 2:
            out.append("the cache proof needs at least 2 repeats")
        if self.blocks < 1:
            out.append("the cache proof needs a prefix of at least 1 block")
        if self.max_tokens < 1:
            out.append("max_tokens must be at least 1")
        return out

    def spec(self, mode: str, access: ServiceAccess) -> LoadSpec:
        return LoadSpec(base_url=access.base_url, mode=mode, concurrency=self.concurrency, rate=self.rate,
                        duration_s=self.duration_s, warmup_s=self.warmup_s, arrival=self.arrival,
                        max_tokens=self.max_tokens, timeout_s=self.timeout_s, headers=dict(access.headers),
                        verify_tls=access.verify is not False, seed=self.seed)


def mode_label(mode: str, opts: PerfOptions) -> str:
    if mode == "closed":
        return f"closed loop, {opts.concurrency} in flight"
    if mode == "open":
        return f"open loop, {opts.rate:g} req/s ({opts.arrival})"
    return "serial (1 in flight)"


@dataclass(frozen=True)
class PerfVerdict:
    """How a run ended, in one line: `status` pass | fail | inconclusive and the `reason` that decided
    it (for a fail, the first thing that failed, not everything that was measured)."""

    status: str
    reason: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def line(self) -> str:
        return f"{self.status.upper()}: {self.reason}" if self.reason else self.status.upper()


@dataclass
class PerfEvent:
    """Progress for the screen: kind proof | latency_only | throughput | info | done. The "done" event
    that ends a run carries its `verdict`."""

    kind: str
    message: str
    mode: str | None = None
    tick: ProgressTick | None = None
    proof_event: ProofEvent | None = None
    verdict: PerfVerdict | None = None


@dataclass
class ThroughputRun:
    mode: str
    label: str
    result: LoadResult | None = None
    error: str | None = None

    def comparison(self) -> list[dict[str, Any]]:
        """The engine's comparison with the guide, each row marked `gating` or not. A closed loop keeps
        N requests in flight all the time, so its latencies are saturation numbers (Little's law: 10 in
        flight at 25 req/s is 400 ms each); the guide's latency targets (P50 < 200 ms, P99 < 500 ms)
        are judged on the open loop at a fixed rate and on the serial run instead."""
        rows = []
        for g in (self.result.guide if self.result else []):
            row = {"run": self.label, **asdict(g), "gating": True}
            if self.mode == "closed" and g.name in ("P50 latency", "P99 latency"):
                row["gating"] = False
                row["note"] = ((row.get("note") or "") + ("; " if row.get("note") else "") +
                               "saturation number (N always in flight); the latency target is judged on the "
                               "open loop and the serial run")
            rows.append(row)
        return rows

    @property
    def passed(self) -> bool:
        r = self.result
        return (r is not None and not r.aborted and r.requests > 0 and r.ok == r.requests
                and all(row["ok"] is not False for row in self.comparison() if row["gating"]))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "label": self.label, "passed": self.passed, "error": self.error,
                "result": self.result.to_dict() if self.result else None}

    def summary(self) -> dict[str, Any]:
        r = self.result
        if r is None:
            return {"mode": self.mode, "label": self.label, "passed": False, "error": self.error}
        lat = r.latency_ms
        return {"mode": self.mode, "label": self.label, "passed": self.passed, "requests": r.requests,
                "errors": r.requests - r.ok, "throughput": r.throughput, "achieved_rate": r.achieved_rate,
                "p50_ms": lat.p50, "p90_ms": lat.p90, "p99_ms": lat.p99, "p99_reliable": lat.p99_reliable,
                "duration_s": r.spec.get("duration_s"), "guide": self.comparison()}


@dataclass
class PerformanceResult:
    started_at: str
    finished_at: str
    elapsed_s: float
    deployment_uid: str | None
    access: dict[str, Any]
    replicas: list[str]
    proof: CacheVerdict | None
    latency_only: LatencyOnlyVerdict | None
    throughput: list[ThroughputRun]
    passed: bool
    status: str                       # pass | fail | inconclusive
    headline: str
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def proof_passed(self) -> bool:
        return bool(self.proof and self.proof.passed)

    def guide_rows(self) -> list[dict[str, Any]]:
        """The comparison with the guide's expectations, one row per check per throughput run."""
        return [row for t in self.throughput for row in t.comparison()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at, "finished_at": self.finished_at, "elapsed_s": self.elapsed_s,
            "deployment_uid": self.deployment_uid, "access": self.access, "replicas": self.replicas,
            "proof": self.proof.to_dict() if self.proof else None,
            "latency_only": self.latency_only.to_dict() if self.latency_only else None,
            "throughput": [t.to_dict() for t in self.throughput], "guide": self.guide_rows(),
            "passed": self.passed, "proof_passed": self.proof_passed, "status": self.status,
            "headline": self.headline, "notes": self.notes, "options": self.options,
        }

    def summary(self) -> dict[str, Any]:
        """What the state file keeps (no secrets, no per-request lists)."""
        p = self.proof
        proof = None
        if p is not None:
            proof = {"passed": p.passed, "status": p.status, "headline": p.headline, "failing": p.failing,
                     "hit_ratio": p.hit_ratio, "speedup": p.speedup, "test_replica": p.test_replica,
                     "block_size": p.block_size, "block_size_source": p.block_size_source, "blocks": p.blocks,
                     "prefix_tokens_est": p.prefix_tokens_est, "first_latency_ms": p.first_latency_ms,
                     "warm_p50_ms": p.warm_p50_ms,
                     "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in p.checks]}
        lo = None
        if self.latency_only is not None:
            v = self.latency_only
            lo = {"says_cache_works": v.says_cache_works, "speedup_pct": v.speedup_pct, "headline": v.headline,
                  "first_ms": v.first_ms, "later_avg_ms": v.later_avg_ms}
        return {"uid": self.deployment_uid, "at": self.finished_at, "passed": self.passed,
                "proof_passed": self.proof_passed, "status": self.status, "headline": self.headline,
                "access": self.access.get("description"), "replicas": self.replicas, "proof": proof,
                "latency_only": lo, "throughput": [t.summary() for t in self.throughput]}


# --------------------------------------------------------------------------------------------
# parts
# --------------------------------------------------------------------------------------------


def proof_replicas(ctx: Any, live: LiveState, kh: KubeHttp) -> list[Replica]:
    """One Replica per Ready workload pod, its /metrics through the pod proxy: HTTPS to the API server,
    verified against the cluster's CA (the kube session's), with the session's bearer token."""
    headers = kh.headers()
    ssl = kh.ssl_context()
    ns = ctx.cfg.namespace
    return [Replica(pod_name(p), metrics_url=kh.pod_base(ns, pod_name(p)) + "/metrics", headers=headers, ssl=ssl,
                    api_proxy=True)
            for p in live.ready_pods]


def _emit(on_event: Callable[[PerfEvent], None] | None, ev: PerfEvent) -> None:
    if on_event is None:
        return
    try:
        on_event(ev)
    except Exception:  # noqa: BLE001 - a broken listener must not break the run
        pass


def run_throughput(spec: LoadSpec, *, in_subprocess: bool = True,
                   on_progress: Callable[[ProgressTick], None] | None = None,
                   stop: threading.Event | None = None) -> LoadResult:
    """One throughput run (blocking). In a separate process by default; `stop` ends it early
    (the result covers what was sent). Raises LoadSpecError / LoadError with a user message."""
    spec.validate()
    if not in_subprocess:
        async def main() -> LoadResult:
            ev = asyncio.Event()

            async def watch() -> None:
                while stop is not None and not stop.is_set():
                    await asyncio.sleep(0.1)
                if stop is not None:
                    ev.set()
            w = asyncio.get_running_loop().create_task(watch())
            try:
                return await run_load(spec, on_progress, stop=ev)
            finally:
                w.cancel()
        return asyncio.run(main())
    run = SubprocessLoad(spec).start()
    finished = threading.Event()

    def watcher() -> None:
        while not finished.is_set():
            if stop is not None and stop.wait(0.1):
                run.stop()
                return
            if stop is None:
                return
    t = threading.Thread(target=watcher, daemon=True, name="loadgen-stop")
    t.start()
    try:
        return run.result(timeout=spec.warmup_s + spec.duration_s + spec.timeout_s + 60, on_progress=on_progress)
    finally:
        finished.set()
        run.kill()


def run_performance(ctx: Any, options: PerfOptions | None = None,
                    on_event: Callable[[PerfEvent], None] | None = None, *,
                    stop: threading.Event | None = None, live: LiveState | None = None) -> PerformanceResult:
    """Run step 10 (blocking; call from a worker thread, never from a running event loop).
    Never raises for service or cluster problems: they become a failing result."""
    opts = options or PerfOptions()
    t0 = time.perf_counter()
    started = now_iso()
    notes: list[str] = []

    def result(**kw: Any) -> PerformanceResult:
        base = dict(started_at=started, finished_at=now_iso(), elapsed_s=round(time.perf_counter() - t0, 3),
                    deployment_uid=live.uid if live else None, access={}, replicas=[], proof=None,
                    latency_only=None, throughput=[], passed=False, status="fail", headline="",
                    notes=notes, options=asdict(opts))
        base.update(kw)
        return PerformanceResult(**base)

    probs = opts.problems()
    if probs:
        return _failed(on_event, result(headline="invalid options: " + "; ".join(probs)))
    try:
        kube = ctx.kube()
        live = live or read_live(ctx, kube)
        kh = KubeHttp.from_session(kube, ctx.profile)
        if live.llmisvc is None:
            return _failed(on_event, result(
                headline=f"nothing deployed: LLMInferenceService {ctx.cfg.service} not found (step 5)"))
        if not live.ready_pods:
            return _failed(on_event, result(headline="no Ready vLLM replica: finish step 5 first"))
        access = resolve_access(ctx, live, kube)
        replicas = proof_replicas(ctx, live, kh)
    except CloudError as e:
        return _failed(on_event, result(headline=f"{e.message} {e.fix}".strip()))

    names = [r.name for r in replicas]
    common = dict(access=access.to_dict(), replicas=names)
    _emit(on_event, PerfEvent("info", f"{len(names)} Ready replicas; requests go {access.description}"))
    if len(names) < live.expected_replicas:
        notes.append(f"only {len(names)} of {live.expected_replicas} replicas are Ready")
    through_gateway = access.via == VIA_GATEWAY
    if not through_gateway:
        notes.append(f"requests went {access.description}: it bypasses the gateway and its cache-aware "
                     "routing (EPP), so routing cannot be tested and throughput is not measured; give the "
                     "gateway an address (step 4) and run this step again")

    # 1. the guide's latency-only test --------------------------------------------------------------
    lo: LatencyOnlyVerdict | None = None
    if opts.latency_only and not _stopped(stop):
        _emit(on_event, PerfEvent("latency_only", "the guide's test: 5 identical short prompts, judged by latency"))
        lo = asyncio.run(latency_only_verdict(access.base_url, headers=access.headers, ssl=access.ssl,
                                              timeout_s=opts.timeout_s))
        _emit(on_event, PerfEvent("latency_only", f"latency-only test: {lo.headline}"))

    # 2. the cache proof -----------------------------------------------------------------------------
    verdict: CacheVerdict | None = None
    if opts.cache_proof and not _stopped(stop):
        _emit(on_event, PerfEvent("proof", f"cache proof on {len(names)} replicas"))
        verdict = asyncio.run(run_cache_proof(
            access.base_url, replicas, repeats=opts.repeats, blocks=opts.blocks, headers=access.headers,
            ssl=access.ssl,   # the service's TLS (the gateway's; the cluster CA only via the service proxy);
                              # each replica's /metrics carries the API server's CA itself
            seed=opts.seed, timeout_s=opts.timeout_s, api_proxy=not through_gateway,
            on_event=lambda e: _emit(on_event, PerfEvent("proof", e.message, proof_event=e))))
        _emit(on_event, PerfEvent("proof", f"cache proof: {verdict.status}: {verdict.headline}"))

    # 3. throughput ----------------------------------------------------------------------------------
    runs: list[ThroughputRun] = []
    for mode in opts.modes if through_gateway else ():
        if _stopped(stop):
            break
        label = mode_label(mode, opts)
        _emit(on_event, PerfEvent("throughput", f"throughput: {label} for {opts.duration_s:g} s", mode=mode))
        run = ThroughputRun(mode, label)
        try:
            run.result = run_throughput(
                opts.spec(mode, access), in_subprocess=opts.in_subprocess, stop=stop,
                on_progress=lambda t, m=mode: _emit(on_event, PerfEvent(
                    "throughput", f"{t.t_s:.0f} s: {t.rps:.1f} req/s", mode=m, tick=t)))
        except (LoadError, LoadSpecError) as e:
            run.error = str(e)
        runs.append(run)
        r = run.result
        _emit(on_event, PerfEvent("throughput", f"{label}: " + (
            f"{r.throughput:.1f} req/s, P50 {r.latency_ms.p50 or 0:.0f} ms" if r else f"failed: {run.error}"),
            mode=mode))

    # verdict ----------------------------------------------------------------------------------------
    status, headline, passed = _verdict(opts, verdict, runs, through_gateway, stop)
    res = result(status=status, headline=headline, passed=passed, proof=verdict, latency_only=lo,
                 throughput=runs, **common)
    if opts.store:
        store_result(ctx, res)
    _emit(on_event, PerfEvent("done", f"{status}: {headline}",
                              verdict=judge(opts, verdict, runs, through_gateway, stop)))
    return res


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _failed(on_event: Callable[[PerfEvent], None] | None, res: PerformanceResult) -> PerformanceResult:
    """A run that could not start: its "done" event, then the result."""
    _emit(on_event, PerfEvent("done", f"{res.status}: {res.headline}",
                              verdict=PerfVerdict(res.status, _one_line(res.headline))))
    return res


def _judge(opts: PerfOptions, verdict: CacheVerdict | None, runs: list[ThroughputRun], through_gateway: bool,
           stop: threading.Event | None) -> tuple[str, list[str], str]:
    """(status, every part of the headline, the part that decided the status)."""
    parts: list[str] = []
    status = "pass"
    reason = ""
    if _stopped(stop):
        return "inconclusive", ["stopped before the end"], "stopped before the end"
    if opts.cache_proof:
        if verdict is None:
            status, parts = "fail", ["the cache proof did not run"]
            reason = parts[0]
        elif not through_gateway:
            caching = next((c for c in verdict.checks if c.name == "caching"), None)
            status = "fail" if "caching" in verdict.failing else "inconclusive"
            parts.append("cache-aware routing not tested (the gateway has no address; the service proxy "
                         "bypasses the EPP)" + (f"; caching: {caching.detail}" if caching and caching.detail else ""))
            reason = (f"caching: {caching.detail}" if status == "fail" and caching and caching.detail
                      else "cache-aware routing not tested: the gateway has no address")
        elif not verdict.passed:
            status = verdict.status
            parts.append(verdict.headline)
            reason = verdict.headline
        else:
            parts.append(verdict.headline)
    bad = [t for t in runs if not t.passed]
    for t in bad:
        if t.result is None:
            why = t.error or "no result"
        else:
            failing = [g for g in t.comparison() if g["gating"] and g["ok"] is False]
            why = ", ".join(f"{g['name']} {g['measured']} (expected {g['expected']})" for g in failing) or \
                (t.result.aborted or "errors")
        parts.append(f"throughput {t.label}: {why}")
    if bad and status == "pass":
        status = "fail"
        reason = parts[len(parts) - len(bad)]   # the first failing run's part
    if runs and not bad:
        parts.append("throughput meets the guide's figures")
    if opts.modes and not through_gateway:
        parts.append("throughput not measured: the gateway has no address and through the Kubernetes API "
                     "proxy the numbers would measure the API server")
        if status == "pass":
            status = "inconclusive"
            reason = "throughput not measured: the gateway has no address"
    if not opts.cache_proof and not runs and through_gateway:
        status, parts = "inconclusive", ["nothing was run"]
        reason = parts[0]
    if status == "pass" or not reason:
        reason = "; ".join(parts)
    return status, parts, _one_line(reason)


def _verdict(opts: PerfOptions, verdict: CacheVerdict | None, runs: list[ThroughputRun], through_gateway: bool,
             stop: threading.Event | None) -> tuple[str, str, bool]:
    status, parts, _ = _judge(opts, verdict, runs, through_gateway, stop)
    return status, "; ".join(parts), status == "pass"


def judge(opts: PerfOptions, verdict: CacheVerdict | None, runs: list[ThroughputRun], through_gateway: bool,
          stop: threading.Event | None = None) -> PerfVerdict:
    """The run's verdict with the one-line reason that decided it."""
    status, _, reason = _judge(opts, verdict, runs, through_gateway, stop)
    return PerfVerdict(status, reason)


def bench_options(*, modes: tuple[str, ...] = ("closed",), concurrency: int = 10, rate: float = 25.0,
                  duration_s: float = 60.0, warmup_s: float = 5.0, arrival: str = "constant", max_tokens: int = 10,
                  in_subprocess: bool = True, seed: int | None = None, timeout_s: float = 60.0) -> PerfOptions:
    """Options for the headless `bench` command: throughput only (no cache proof, nothing stored)."""
    return PerfOptions(cache_proof=False, latency_only=False, modes=tuple(modes), concurrency=concurrency,
                       rate=rate, duration_s=duration_s, warmup_s=warmup_s, arrival=arrival, max_tokens=max_tokens,
                       in_subprocess=in_subprocess, seed=seed, timeout_s=timeout_s, store=False)


def bench(ctx: Any, options: PerfOptions | None = None, on_event: Callable[[PerfEvent], None] | None = None, *,
          stop: threading.Event | None = None) -> tuple[PerformanceResult, int]:
    """The headless `bench` command's body: (result, exit code 0 only if every run passed)."""
    res = run_performance(ctx, options or bench_options(), on_event, stop=stop)
    return res, 0 if res.passed else 1


# --------------------------------------------------------------------------------------------
# stored results
# --------------------------------------------------------------------------------------------


def store_result(ctx: Any, res: PerformanceResult) -> None:
    """Keep the run's summary for this deployment. A run without a cache proof (a bench) never
    replaces a stored proof."""
    if not res.deployment_uid or res.proof is None:
        return
    stored = dict((ctx.saved() or {}).get(STATE_KEY) or {})
    stored[res.deployment_uid] = res.summary()
    if len(stored) > MAX_STORED:   # keep the newest
        keep = sorted(stored.items(), key=lambda kv: str(kv[1].get("at") or ""))[-MAX_STORED:]
        stored = dict(keep)
    ctx.record(**{STATE_KEY: stored})


def stored_result(ctx: Any, uid: str | None) -> dict[str, Any] | None:
    """The stored summary of the last step-10 run for the deployment with this LLMISVC uid."""
    if not uid:
        return None
    entry = ((ctx.saved() or {}).get(STATE_KEY) or {}).get(uid)
    return entry if isinstance(entry, dict) else None


def probe(ctx: Any) -> StepState:
    """DONE only when a passing cache proof is stored for the deployment that exists now (keyed by
    the LLMInferenceService's uid: a redeploy needs a new proof); otherwise NOT_STARTED."""
    try:
        kube = ctx.kube()
        live = read_live(ctx, kube)
    except CloudError as e:
        if e.kind in ("not_found", "conflict"):
            return StepState(Status.NOT_STARTED, "No cluster yet", fix="Create it in step 2.")
        return from_error(e)
    if live.llmisvc is None:
        return StepState(Status.NOT_STARTED, "Nothing deployed yet", fix="Deploy the service in step 5.")
    entry = stored_result(ctx, live.uid)
    if entry is None:
        return StepState(Status.NOT_STARTED, "Not run yet for this deployment",
                         fix="Run the cache proof and the throughput test.")
    data = {"stored": entry}
    if entry.get("proof_passed"):
        tp = entry.get("throughput") or []
        tp_txt = ""
        if tp:
            tp_txt = "; throughput " + ("meets" if all(t.get("passed") for t in tp) else "misses") + " the guide's figures"
        return StepState(Status.DONE, f"Cache-aware routing proven (from a run on {entry.get('at')}){tp_txt}",
                         detail=entry.get("headline", ""), data=data)
    return StepState(Status.NOT_STARTED, f"Last run (on {entry.get('at')}) failed: {entry.get('headline')}",
                     detail=f"at {entry.get('at')}", fix="Fix what it names, then run it again.", data=data)


__all__ = [
    "PerfEvent", "PerfOptions", "PerfVerdict", "PerformanceResult", "ThroughputRun", "bench", "bench_options",
    "judge", "mode_label",
    "probe", "proof_replicas",
    "run_performance", "run_throughput", "store_result", "stored_result",
]
