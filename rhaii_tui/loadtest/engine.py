"""Throughput engine: closed loop, open loop and serial load against the inference service.

Modes
-----
- **closed** — `concurrency` requests always in flight (a worker sends the next request as soon
  as its previous one returns). Latency is measured from the actual send. This is what the guide's
  "~25 req/s at 10 concurrent" is about, except that the guide fires one burst of 10 and divides;
  here the concurrency is held for `duration_s`.
- **serial** — closed loop with one request in flight (the guide's "~6.3 req/s serial").
- **open** — a fixed request rate (`rate`, constant or Poisson arrivals). Every request's
  intended send time is computed up front from the start time; a slow server never slows the
  arrivals, and **latency is measured from the intended send time**, so time spent queueing in the
  client (a connection cap, a busy event loop) counts. No coordinated omission (PERF_NOTES.md §1.1).
  The schedule delay (actual send - intended send) is reported as p50/p99: when it grows, the
  client, not the server, is the bottleneck, and "every latency number is a saturation number".

Runs for `warmup_s` (not measured) + `duration_s`. Progress: one `ProgressTick` per second
(requests/s and latency percentiles of the requests that completed in that second) through a
callback, or an async iterator (`LoadRun`). Result: `LoadResult` (JSON-serialisable through
`to_dict()`), with P50/P90/P99 (linear interpolation between closest ranks, as numpy and
`vllm bench serve` compute them; P99 flagged unreliable below 100 samples), errors by kind,
requested vs achieved rate, and the comparison with the guide's expectations.

Keep the UI's CPU out of the measurement: `SubprocessLoad` / `run_in_subprocess()` run the engine
in a separate process (multiprocessing, spawn) and stream progress over a Queue. The plain async
API is `run_load()`.

Transport: aiohttp, measured here at 5k req/s where httpx collapsed at a few hundred
(PERF_NOTES.md §1.3). No Textual import here (layering rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import queue as _queue
import random
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

from ..cloud.inference import MODEL_ID, check_base_url, safe_url
from ..cloud import retry as _retry

GUIDE_PROMPT = ("You are a professional translator. Translate the following sentence into French, "
                "keeping the tone: Hello world, how are you today?")

# The guide's expectations (deployment-tpu.md, verification-testing.md; PERF_NOTES.md §3.3)
GUIDE_RPS_AT_10 = 25.0
GUIDE_RPS_SERIAL = 6.3
GUIDE_P50_MS = 200.0
GUIDE_P99_MS = 500.0
P99_MIN_SAMPLES = 100

# asyncio.sleep() wakes 1-2 ms late here (the loop rounds its epoll timeout up to whole ms, twice;
# measured p50 +1.6 ms, p99 +2.2 ms). To send on time the open loop wakes early and yields
# (sleep(0)) until the exact instant. The early margin costs CPU, so it shrinks as the rate grows.


def _early_wake_s(rate: float) -> float:
    if rate <= 100:
        return 0.0022     # exact sends; spinning <= ~2 ms per request is <= 22 % of a core
    if rate <= 400:
        return 0.0015     # aim at the typical overshoot, spin only the remainder
    return 0.0            # plain sleep: sends up to ~2 ms late, no CPU spent spinning
_ABORT_AFTER_CONN_ERRORS = 50


class LoadSpecError(ValueError):
    """An invalid load spec; the message says what to change."""


class LoadError(Exception):
    """The load run could not complete (e.g. its process died). The message is for the user."""


# --------------------------------------------------------------------------------------------
# spec
# --------------------------------------------------------------------------------------------


@dataclass
class LoadSpec:
    base_url: str                         # http://<gateway>/<namespace>/<service>
    mode: str = "closed"                  # closed | open | serial
    concurrency: int = 10                 # closed loop: requests in flight
    rate: float = 25.0                    # open loop: requests per second
    duration_s: float = 60.0              # measured window
    warmup_s: float = 0.0                 # sent first, not measured
    arrival: str = "constant"             # open loop: constant | poisson
    max_in_flight: int = 4096             # open loop: client-side cap; waiting for a slot counts as latency
    path: str = "/v1/completions"
    prompt: str = GUIDE_PROMPT
    unique_prompts: bool = False          # True: a random word in front of each prompt (defeats the prefix cache)
    max_tokens: int = 10
    model: str = MODEL_ID
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)   # never serialised with values
    verify_tls: bool = True
    seed: int | None = None
    bucket_s: float = 1.0

    def problems(self) -> list[str]:
        out = []
        err = check_base_url(self.base_url)
        if err:
            out.append(err)
        if self.mode not in ("closed", "open", "serial"):
            out.append(f"mode must be closed, open or serial, not {self.mode!r}")
        if self.mode == "closed" and not (1 <= self.concurrency <= 10_000):
            out.append("concurrency must be between 1 and 10000")
        if self.mode == "open" and not (0 < self.rate <= 100_000):
            out.append("rate must be greater than 0 (requests per second) and at most 100000")
        if not (0 < self.duration_s <= 24 * 3600):
            out.append("duration must be greater than 0 seconds (and at most a day)")
        if self.warmup_s < 0:
            out.append("warm-up must be 0 or more seconds")
        if self.arrival not in ("constant", "poisson"):
            out.append("arrival must be constant or poisson")
        if self.max_in_flight < 1:
            out.append("max_in_flight must be at least 1")
        if self.timeout_s <= 0:
            out.append("timeout must be greater than 0 seconds")
        if self.max_tokens < 1:
            out.append("max_tokens must be at least 1")
        if not self.path.startswith("/"):
            out.append("path must start with / (e.g. /v1/completions)")
        if self.bucket_s <= 0:
            out.append("bucket_s must be greater than 0")
        return out

    def validate(self) -> "LoadSpec":
        probs = self.problems()
        if probs:
            raise LoadSpecError("; ".join(probs))
        return self

    @property
    def in_flight_target(self) -> int:
        return 1 if self.mode == "serial" else self.concurrency

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if redact:
            d["headers"] = {k: "<redacted>" for k in self.headers}
            d["base_url"] = safe_url(self.base_url)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LoadSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float | None:
    """p-th percentile (0-100) of already sorted values, linear interpolation between closest
    ranks (numpy's default, `statistics.quantiles(method="inclusive")`)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return sorted_values[0]
    k = (n - 1) * p / 100.0
    f = math.floor(k)
    c = min(f + 1, n - 1)
    return sorted_values[f] + (sorted_values[c] - sorted_values[f]) * (k - f)


@dataclass
class Percentiles:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    min: float | None
    max: float | None
    p99_reliable: bool            # False below 100 samples: the "P99" is then about the max

    @classmethod
    def of(cls, values: Iterable[float], ndigits: int = 3) -> "Percentiles":
        xs = sorted(values)
        n = len(xs)

        def r(v):
            return None if v is None else round(v, ndigits)
        return cls(count=n, p50=r(percentile(xs, 50)), p90=r(percentile(xs, 90)), p99=r(percentile(xs, 99)),
                   mean=r(sum(xs) / n) if n else None, min=r(xs[0]) if n else None, max=r(xs[-1]) if n else None,
                   p99_reliable=n >= P99_MIN_SAMPLES)


@dataclass
class ProgressTick:
    """One bucket (default 1 s) of the live chart: requests that completed in [t_s - bucket, t_s)."""

    t_s: float                    # seconds since start (end of the bucket)
    completed: int
    rps: float
    errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    in_flight: int
    sent_total: int
    done_total: int
    schedule_delay_p50_ms: float | None = None   # open loop
    warmup: bool = False          # the bucket is (partly) in the warm-up window

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GuideCheck:
    name: str
    expected: str
    measured: str
    ok: bool | None               # None: not comparable (too few samples, other mode)
    note: str = ""


@dataclass
class LoadResult:
    spec: dict[str, Any]
    mode: str
    started_at: str
    elapsed_s: float
    requests: int                 # measured (excludes warm-up)
    ok: int
    errors: dict[str, int]        # kind -> count: connection, timeout, http_503, protocol, ...
    error_rate: float
    requested_rate: float | None  # open loop
    achieved_rate: float          # measured requests / (last completion - first intended send)
    throughput: float             # successful requests per second over the same window
    latency_ms: Percentiles       # open loop: from the intended send time; closed: from the send
    service_ms: Percentiles       # from the actual send (what a coordinated-omission tool would show)
    schedule_delay_ms: Percentiles | None   # open loop: actual - intended send
    in_flight_target: int | None  # closed/serial
    served_by: dict[str, int]     # x-served-by header counts, when the responses carry it
    buckets: list[ProgressTick]
    guide: list[GuideCheck]
    warnings: list[str]
    aborted: str | None = None
    client_cpu_s: float = 0.0     # CPU time the load generator used (user + system)
    retries: int = 0              # requests re-sent after the Kubernetes API server's own transient error
                                  # (through its service proxy): not counted as service errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LoadResult":
        d = dict(d)
        d["latency_ms"] = Percentiles(**d["latency_ms"])
        d["service_ms"] = Percentiles(**d["service_ms"])
        if d.get("schedule_delay_ms"):
            d["schedule_delay_ms"] = Percentiles(**d["schedule_delay_ms"])
        d["buckets"] = [ProgressTick(**b) for b in d.get("buckets", [])]
        d["guide"] = [GuideCheck(**g) for g in d.get("guide", [])]
        return cls(**d)

    @property
    def passed_guide(self) -> bool:
        return all(g.ok is not False for g in self.guide)


def guide_checks(r: LoadResult, spec: LoadSpec) -> list[GuideCheck]:
    out: list[GuideCheck] = []
    if spec.mode == "closed" and spec.concurrency == 10:
        out.append(GuideCheck(
            "throughput at 10 concurrent", f">= {GUIDE_RPS_AT_10:g} req/s", f"{r.throughput:.1f} req/s",
            r.throughput >= GUIDE_RPS_AT_10,
            "the guide's ~25 req/s is a one-off burst of 10 requests; this rate was held for "
            f"{spec.duration_s:g} s"))
    if spec.mode == "serial" or (spec.mode == "closed" and spec.concurrency == 1):
        out.append(GuideCheck("serial throughput", f">= {GUIDE_RPS_SERIAL:g} req/s", f"{r.throughput:.1f} req/s",
                              r.throughput >= GUIDE_RPS_SERIAL))
    lat = r.latency_ms
    if lat.count:
        out.append(GuideCheck("P50 latency", f"< {GUIDE_P50_MS:g} ms", f"{lat.p50:.0f} ms", lat.p50 < GUIDE_P50_MS))
        if lat.p99_reliable:
            out.append(GuideCheck("P99 latency", f"< {GUIDE_P99_MS:g} ms", f"{lat.p99:.0f} ms", lat.p99 < GUIDE_P99_MS))
        else:
            out.append(GuideCheck("P99 latency", f"< {GUIDE_P99_MS:g} ms", f"{lat.p99:.0f} ms", None,
                                  f"only {lat.count} samples: a P99 needs at least {P99_MIN_SAMPLES}"))
    out.append(GuideCheck("errors", "0", str(r.requests - r.ok), r.requests > 0 and r.ok == r.requests))
    if spec.mode == "open" and r.schedule_delay_ms and r.schedule_delay_ms.count:
        ratio = r.achieved_rate / spec.rate if spec.rate else 0.0
        sd = r.schedule_delay_ms.p50 or 0.0
        out.append(GuideCheck(
            "held the requested rate", f">= 98% of {spec.rate:g} req/s, schedule delay p50 < 10 ms",
            f"{ratio:.0%} ({r.achieved_rate:.1f} req/s), delay p50 {sd:.1f} ms", ratio >= 0.98 and sd < 10.0,
            "otherwise the latencies are saturation numbers (server or client cannot keep up)"))
    return out


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def _intended_offsets(spec: LoadSpec) -> list[float]:
    total = spec.warmup_s + spec.duration_s
    if spec.arrival == "poisson":
        rng = random.Random(spec.seed)
        out, t = [], rng.expovariate(spec.rate)
        while t < total:
            out.append(t)
            t += rng.expovariate(spec.rate)
        return out
    n = int(math.ceil(total * spec.rate - 1e-9))
    return [i / spec.rate for i in range(n)]


def _error_kind(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError)):
        return "connection"
    if isinstance(exc, aiohttp.ClientOSError):
        return "connection"
    return "protocol"


class _Run:
    def __init__(self, spec: LoadSpec, on_progress: Callable[[ProgressTick], None] | None,
                 stop: asyncio.Event | None):
        self.spec = spec
        self.on_progress = on_progress
        self.stop = stop or asyncio.Event()
        self.url = spec.base_url.rstrip("/") + spec.path
        self.target: Any = self.url          # parsed once into a yarl.URL in run()
        self.t0 = 0.0
        # per request: (intended, sent, done) offsets from t0, error kind or None
        self.intended: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.kinds: list[str | None] = []
        self.served: dict[str, int] = {}
        self.in_flight = 0
        self.sent_total = 0
        self.done_total = 0
        self.conn_errors_in_a_row = 0
        self.retries = 0
        self.any_ok = False
        self.aborted: str | None = None
        self.buckets: dict[int, list] = {}     # index -> [latencies_ms, errors, sched_ms]
        self.ticks: list[ProgressTick] = []
        self.warnings: list[str] = []
        rng = random.Random(spec.seed)
        self._rng = rng
        if spec.unique_prompts:
            self._body = None
        else:
            self._body = self._make_body(spec.prompt)

    def _make_body(self, prompt: str) -> bytes:
        s = self.spec
        if s.path.endswith("/chat/completions"):
            doc: dict[str, Any] = {"model": s.model, "messages": [{"role": "user", "content": prompt}],
                                   "max_tokens": s.max_tokens, "temperature": 0}
        else:
            doc = {"model": s.model, "prompt": prompt, "max_tokens": s.max_tokens, "temperature": 0}
        return json.dumps(doc).encode()

    def body(self, i: int) -> bytes:
        if self._body is not None:
            return self._body
        from .prompts import random_words

        return self._make_body(f"{i} " + random_words(3, self._rng) + self.spec.prompt)

    # --- one request -------------------------------------------------------------------------
    async def one(self, session, i: int, intended: float, sem: asyncio.Semaphore | None) -> None:
        if sem is not None:
            await sem.acquire()
        self.in_flight += 1
        self.sent_total += 1
        perf = time.perf_counter
        sent = perf() - self.t0
        kind: str | None = None
        served = None
        try:
            attempt = 0
            while True:
                attempt += 1
                async with session.post(self.target, data=self.body(i)) as r:
                    data = await r.read()
                    done = perf() - self.t0       # before releasing the connection: not our server's time
                    status = r.status
                    served = r.headers.get("x-served-by")
                    headers = r.headers
                # the API server's own transient error (its proxy, a Status body) is not the service's:
                # re-send under the measurement retry policy, count it apart
                if status in _retry.TRANSIENT_STATUS and attempt < _retry.MEASUREMENT_POLICY.attempts \
                        and _retry.is_kube_status_body(data) and not self.stop.is_set():
                    self.retries += 1
                    v = _retry.http_verdict(status, headers, data)
                    await asyncio.sleep(_retry.MEASUREMENT_POLICY.pause(attempt - 1, v.retry_after))
                    continue
                break
            if not 200 <= status < 300:
                kind = f"http_{status}"
            elif b'"choices"' not in data:
                kind = "protocol"
        except asyncio.CancelledError:
            self.in_flight -= 1
            if sem is not None:
                sem.release()
            raise
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind, never raised
            kind = _error_kind(e)
            done = perf() - self.t0
        self.in_flight -= 1
        if sem is not None:
            sem.release()
        self.done_total += 1
        self.intended.append(intended)
        self.sent.append(sent)
        self.done.append(done)
        self.kinds.append(kind)
        if served is not None:
            self.served[served] = self.served.get(served, 0) + 1
        b = self.buckets.get(int(done / self.spec.bucket_s))
        if b is None:
            b = self.buckets[int(done / self.spec.bucket_s)] = [[], 0, []]
        if kind is None:
            self.any_ok = True
            self.conn_errors_in_a_row = 0
            b[0].append((done - intended) * 1000)
        else:
            b[1] += 1
            if kind == "connection":
                self.conn_errors_in_a_row += 1
                if not self.any_ok and self.conn_errors_in_a_row >= _ABORT_AFTER_CONN_ERRORS and not self.aborted:
                    self.aborted = (f"stopped: {self.conn_errors_in_a_row} connection errors in a row and no "
                                    f"successful request; is {safe_url(self.url)} reachable?")
                    self.stop.set()
        if self.spec.mode == "open":
            b[2].append((sent - intended) * 1000)

    # --- drivers -----------------------------------------------------------------------------
    async def open_loop(self, session) -> None:
        spec = self.spec
        offsets = _intended_offsets(spec)
        sem = asyncio.Semaphore(spec.max_in_flight)
        early = _early_wake_s(spec.rate)
        perf = time.perf_counter
        tasks: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()
        t0 = self.t0
        for i, off in enumerate(offsets):
            if self.stop.is_set():
                break
            target = t0 + off
            delay = target - perf()
            if delay > 0:
                if early:
                    if delay > early:
                        await asyncio.sleep(delay - early)
                    while perf() < target:
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(delay)
            t = loop.create_task(self.one(session, i, off, sem))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def closed_loop(self, session, n: int) -> None:
        spec = self.spec
        end = self.t0 + spec.warmup_s + spec.duration_s
        perf = time.perf_counter
        counter = iter(range(1 << 62))

        async def worker() -> None:
            while not self.stop.is_set():
                now = perf()
                if now >= end:
                    return
                before = self.conn_errors_in_a_row
                await self.one(session, next(counter), now - self.t0, None)
                if self.conn_errors_in_a_row > before:   # back off a little on a refused connection
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(n)))

    async def ticker(self) -> None:
        k = 0
        bs = self.spec.bucket_s
        while True:
            target = self.t0 + (k + 1) * bs
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            self.emit(k)
            k += 1

    def emit(self, k: int) -> None:
        bs = self.spec.bucket_s
        lat, errs, sched = self.buckets.pop(k, [[], 0, []])
        lat.sort()
        sched.sort()
        tick = ProgressTick(
            t_s=round((k + 1) * bs, 3), completed=len(lat) + errs, rps=round((len(lat) + errs) / bs, 3),
            errors=errs, p50_ms=_r(percentile(lat, 50)), p90_ms=_r(percentile(lat, 90)),
            p99_ms=_r(percentile(lat, 99)), in_flight=self.in_flight, sent_total=self.sent_total,
            done_total=self.done_total, schedule_delay_p50_ms=_r(percentile(sched, 50)),
            warmup=k * bs < self.spec.warmup_s)
        self.ticks.append(tick)
        if self.on_progress is not None:
            try:
                self.on_progress(tick)
            except Exception:  # noqa: BLE001 - a broken listener must not break the run
                self.on_progress = None
                self.warnings.append("the progress listener failed; progress updates were stopped")

    async def run(self) -> LoadResult:
        import aiohttp

        from yarl import URL

        spec = self.spec
        self.target = URL(self.url)
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        cpu0 = _cpu()
        n_conn = 0 if spec.mode == "open" else spec.in_flight_target
        connector = aiohttp.TCPConnector(limit=n_conn, limit_per_host=0, ssl=None if spec.verify_tls else False,
                                         ttl_dns_cache=300)
        headers = {"Content-Type": "application/json", **spec.headers}
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         trust_env=True) as session:  # HTTPS_PROXY / NO_PROXY
            self.t0 = time.perf_counter()
            ticker = asyncio.get_running_loop().create_task(self.ticker())
            try:
                if spec.mode == "open":
                    await self.open_loop(session)
                else:
                    await self.closed_loop(session, spec.in_flight_target)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            elapsed = time.perf_counter() - self.t0
        # flush the buckets not emitted yet (the last partial second)
        last = int(elapsed / spec.bucket_s)
        for k in sorted(b for b in self.buckets if b <= last):
            self.emit(k)
        return self.result(started, elapsed, _cpu() - cpu0)

    def result(self, started: str, elapsed: float, cpu: float) -> LoadResult:
        spec = self.spec
        keep = [i for i, t in enumerate(self.intended) if t >= spec.warmup_s]
        lat, svc, sched = [], [], []
        errors: dict[str, int] = {}
        for i in keep:
            k = self.kinds[i]
            if k is None:
                lat.append((self.done[i] - self.intended[i]) * 1000)
                svc.append((self.done[i] - self.sent[i]) * 1000)
            else:
                errors[k] = errors.get(k, 0) + 1
            if spec.mode == "open":
                sched.append((self.sent[i] - self.intended[i]) * 1000)
        n = len(keep)
        ok = n - sum(errors.values())
        if n:
            first = min(self.intended[i] for i in keep)
            last = max(self.done[i] for i in keep)
            window = max(last - first, 1e-9)
        else:
            window = spec.duration_s
        if spec.mode == "open":
            # a request sent at the last scheduled instant needs a moment to complete: measure the
            # window from the first intended send to the last completion, but never shorter than the
            # schedule itself, so an instant server reads as exactly the requested rate
            window = max(window, n / spec.rate if spec.rate else window)
        achieved = n / window if n else 0.0
        res = LoadResult(
            spec=spec.to_dict(), mode=spec.mode, started_at=started, elapsed_s=round(elapsed, 3), requests=n, ok=ok,
            errors=dict(sorted(errors.items())), error_rate=round((n - ok) / n, 4) if n else 0.0,
            requested_rate=spec.rate if spec.mode == "open" else None, achieved_rate=round(achieved, 3),
            throughput=round(ok / window, 3) if n else 0.0, latency_ms=Percentiles.of(lat),
            service_ms=Percentiles.of(svc), schedule_delay_ms=Percentiles.of(sched) if spec.mode == "open" else None,
            in_flight_target=None if spec.mode == "open" else spec.in_flight_target,
            served_by=dict(sorted(self.served.items())), buckets=self.ticks, guide=[], warnings=self.warnings,
            aborted=self.aborted, client_cpu_s=round(cpu, 3), retries=self.retries)
        if spec.mode == "open" and res.schedule_delay_ms and res.schedule_delay_ms.p50 is not None \
                and res.schedule_delay_ms.p50 > 10:
            res.warnings.append(
                f"the load generator fell behind its schedule (delay p50 {res.schedule_delay_ms.p50:.0f} ms): "
                "the client is saturated or capped by max_in_flight; latencies include that queueing")
        if n and res.latency_ms.count and not res.latency_ms.p99_reliable:
            res.warnings.append(f"only {res.latency_ms.count} successful samples: P99 needs at least "
                                f"{P99_MIN_SAMPLES} to mean anything")
        if n == 0:
            res.warnings.append("no request completed")
        res.guide = guide_checks(res, spec)
        return res


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_load(spec: LoadSpec, on_progress: Callable[[ProgressTick], None] | None = None, *,
                   stop: asyncio.Event | None = None) -> LoadResult:
    """Run the load in this event loop. `on_progress` gets one ProgressTick per bucket (1 s);
    setting `stop` ends the run early (the result covers what was sent). Raises LoadSpecError
    for a bad spec; never raises for service errors (they are counted)."""
    spec.validate()
    return await _Run(spec, on_progress, stop).run()


class LoadRun:
    """Async-iterator form: `run = LoadRun(spec); async for tick in run: ...; result = await run.result()`."""

    def __init__(self, spec: LoadSpec):
        spec.validate()
        self.spec = spec
        self._queue: asyncio.Queue[ProgressTick | None] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> "LoadRun":
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._main())
        return self

    async def _main(self) -> LoadResult:
        try:
            return await run_load(self.spec, self._queue.put_nowait, stop=self._stop)
        finally:
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[ProgressTick]:
        self.start()
        return self._iter()

    async def _iter(self) -> AsyncIterator[ProgressTick]:
        while True:
            tick = await self._queue.get()
            if tick is None:
                return
            yield tick

    def stop(self) -> None:
        self._stop.set()

    async def result(self) -> LoadResult:
        self.start()
        assert self._task is not None
        return await self._task


# --------------------------------------------------------------------------------------------
# separate process
# --------------------------------------------------------------------------------------------


def _child_main(spec_dict: dict[str, Any], q: Any, stop_flag: Any) -> None:
    """Entry point of the load-generator process (spawned). Writes nothing to the terminal."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    except OSError:
        pass
    try:
        spec = LoadSpec.from_dict(spec_dict)

        async def main() -> LoadResult:
            stop = asyncio.Event()

            async def watch_stop() -> None:
                while not stop_flag.is_set():
                    await asyncio.sleep(0.1)
                stop.set()

            w = asyncio.get_running_loop().create_task(watch_stop())
            try:
                return await run_load(spec, lambda t: q.put(("tick", t.to_dict())), stop=stop)
            finally:
                w.cancel()

        result = asyncio.run(main())
        q.put(("result", result.to_dict()))
    except LoadSpecError as e:
        q.put(("error", str(e)))
    except BaseException as e:  # noqa: BLE001 - report, never a traceback on the user's terminal
        q.put(("error", f"the load generator failed: {type(e).__name__}: {e}"))


_TRACKER_LOCK = threading.Lock()


def _usable_fileno(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once per process) even when sys.stderr has no usable
    file descriptor.

    The tracker is launched lazily by the first lock or queue created (or spawn) and passes `sys.stderr.fileno()` to its child
    as an fd to keep. Under Textual sys.stderr is the app's print capture, whose fileno() is -1: the
    spawn then fails with "bad value(s) in fds_to_keep". So when the fd is unusable the tracker is
    started here with /dev/null as sys.stderr for that moment (not the terminal's fd 2: under a TUI
    that is the display). A stream whose fileno() raises is fine as it is (the tracker skips it),
    but gets the same treatment. Nothing else reads sys.stderr while the process starts; the load
    process itself sends its own fds 1 and 2 to /dev/null (`_child_main`)."""
    from multiprocessing import resource_tracker

    if _usable_fileno(sys.stderr):
        return
    with _TRACKER_LOCK:
        saved = sys.stderr
        if _usable_fileno(saved):
            return
        with open(os.devnull, "w") as devnull:
            sys.stderr = devnull
            try:
                resource_tracker.ensure_running()
            finally:
                if sys.stderr is devnull:   # unless someone else swapped it meanwhile
                    sys.stderr = saved


class SubprocessLoad:
    """The engine in its own process (multiprocessing, spawn), so the UI's CPU use cannot distort
    the numbers. Progress comes back over a Queue.

        run = SubprocessLoad(spec).start()
        for tick in run.poll(): ...          # non-blocking, e.g. from a UI timer
        result = run.result(timeout=...)     # blocking; or `await run.wait(on_progress)`
        run.stop()                           # graceful: ends early, still returns a result
    """

    def __init__(self, spec: LoadSpec):
        spec.validate()
        self.spec = spec
        ctx = mp.get_context("spawn")
        try:
            _ensure_resource_tracker()   # the Queue's locks start it otherwise, with sys.stderr's fd
            self._q = ctx.Queue()
            self._stop = ctx.Event()
        except (OSError, ValueError) as e:
            raise LoadError(f"cannot start the load generator process: {type(e).__name__}: {e}") from None
        # headers travel unredacted to the child (it needs them), never into results
        self._proc = ctx.Process(target=_child_main, args=(spec.to_dict(redact=False), self._q, self._stop),
                                 daemon=True, name="rhaii-loadgen")
        self._result: LoadResult | None = None
        self._error: str | None = None
        self.ticks: list[ProgressTick] = []

    def start(self) -> "SubprocessLoad":
        """Start the process. Raises LoadError (with a user message) when it cannot start."""
        try:
            _ensure_resource_tracker()   # cheap once running; relaunched here if it died
            self._proc.start()
        except (OSError, ValueError) as e:
            raise LoadError(f"cannot start the load generator process: {type(e).__name__}: {e}") from None
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def is_alive(self) -> bool:
        return self._proc.is_alive()

    def _handle(self, msg: tuple[str, Any]) -> ProgressTick | None:
        kind, payload = msg
        if kind == "tick":
            t = ProgressTick(**payload)
            self.ticks.append(t)
            return t
        if kind == "result":
            self._result = LoadResult.from_dict(payload)
        elif kind == "error":
            self._error = payload
        return None

    @property
    def finished(self) -> bool:
        return self._result is not None or self._error is not None

    def poll(self, timeout: float = 0.0) -> list[ProgressTick]:
        """Ticks received since the last poll (waits up to `timeout` for the first one)."""
        out: list[ProgressTick] = []
        block = timeout > 0
        while not self.finished:
            try:
                msg = self._q.get(block, timeout) if block else self._q.get_nowait()
            except _queue.Empty:
                break
            block = False
            t = self._handle(msg)
            if t is not None:
                out.append(t)
        return out

    def stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def _final(self) -> LoadResult:
        if self._result is not None:
            self._proc.join(5)
            return self._result
        if self._error is not None:
            self._proc.join(5)
            raise LoadError(self._error)
        raise LoadError(f"the load generator process exited (code {self._proc.exitcode}) without a result")

    def result(self, timeout: float | None = None, on_progress: Callable[[ProgressTick], None] | None = None
               ) -> LoadResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                raise LoadError(f"the load run did not finish within {timeout:g} s and was stopped")
            for t in self.poll(0.2):
                if on_progress:
                    on_progress(t)
            if not self.finished and not self._proc.is_alive():
                for t in self.poll(0.5):   # drain what it sent before exiting
                    if on_progress:
                        on_progress(t)
                if not self.finished:
                    break
        return self._final()

    async def wait(self, on_progress: Callable[[ProgressTick], None] | None = None,
                   timeout: float | None = None) -> LoadResult:
        """Async wait: polls the queue without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.finished:
                if deadline is not None and time.monotonic() > deadline:
                    self.kill()
                    raise LoadError(f"the load run did not finish within {timeout:g} s and was stopped")
                for t in self.poll():
                    if on_progress:
                        on_progress(t)
                if self.finished:
                    break
                if not self._proc.is_alive():
                    await asyncio.sleep(0.2)
                    for t in self.poll():
                        if on_progress:
                            on_progress(t)
                    break
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.kill()
            raise
        return self._final()


def run_in_subprocess(spec: LoadSpec, on_progress: Callable[[ProgressTick], None] | None = None,
                      timeout: float | None = None) -> LoadResult:
    """Blocking: run `spec` in a spawned process, call `on_progress` per tick, return the result."""
    run = SubprocessLoad(spec).start()
    try:
        return run.result(timeout=timeout if timeout is not None else spec.warmup_s + spec.duration_s
                          + spec.timeout_s + 60, on_progress=on_progress)
    finally:
        run.kill()


async def run_in_subprocess_async(spec: LoadSpec, on_progress: Callable[[ProgressTick], None] | None = None,
                                  timeout: float | None = None) -> LoadResult:
    run = SubprocessLoad(spec).start()
    try:
        return await run.wait(on_progress, timeout=timeout if timeout is not None else spec.warmup_s
                              + spec.duration_s + spec.timeout_s + 60)
    finally:
        run.kill()
