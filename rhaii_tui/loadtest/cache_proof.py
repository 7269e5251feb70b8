"""The cache proof: does the deployment really do prefix caching with cache-aware routing?

The guide judges it by latency alone, with a prompt shorter than one KV block, so warm-up
passes for caching (GUIDE_FACTS.md, PERF_NOTES.md §0.1). This proof asks three independent
witnesses and says "cache-aware routing works" only when they agree:

1. **metrics** — each replica's own counters (`vllm:prefix_cache_hits` / `_queries`, in tokens):
   the repeats of a shared prefix must hit the cache for >= 80 % of the cacheable tokens;
2. **affinity** — every request with that prefix was served by one replica (the `x-served-by`
   header when the response has one, otherwise the replica whose counters moved), and the hits
   landed on that replica only;
3. **latency** — the repeats are faster than cold requests of the same length
   (median cold / median warm >= `min_speedup`).

plus a **control**: a different prefix of the same length right after must not hit (its hits
delta ~0), which shows the cache is prefix-specific and not a response cache.

Protocol (PERF_NOTES.md §2.4):

1. Scrape every replica's /metrics: block size B from `vllm:cache_config_info`,
   `enable_prefix_caching`, counters.
2. Warm up: rounds of one request per replica, concurrently, each with its own random prefix of
   the test length (at least 2 rounds = 2 x replicas requests; up to 4 rounds until every
   replica has served one). This takes connection setup, the first pass through the EPP and
   first-shape XLA compiles out of the measurement.
3. Build the test prefix P: (blocks + 0.5) x B approximate tokens (1 token ~ 4 characters of
   3-letter words, see prompts.py). The half block keeps the count of *full* blocks at `blocks`
   even when the real tokenizer differs from the estimate by up to ±B/2 tokens.
4. Send P + suffix_i `repeats` times, one after another (distinct short suffixes), scraping
   every replica after each request: per-request, per-replica deltas.
5. Control: a fresh random prefix of the same length, once.
6. Verdict (see `CacheVerdict`), naming the failing part when it fails.

Replicas are abstract: `Replica(name, metrics_url=...)` or `Replica(name, fetch=async_fn)` where
the function returns the Prometheus text (the wizard fetches through the Kubernetes pod proxy or
a port-forward). Without replicas the proof can only be "inconclusive" (no counters).

Run it when the service is otherwise idle: other traffic moves the counters too.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

from ..cloud.inference import (
    AsyncInferenceClient,
    CallResult,
    InferenceError,
    VllmMetrics,
    fetch_text,
    parse_vllm_metrics,
)
from .prompts import approx_tokens, build_prefix, suffix

MSG_WORKS = "cache-aware routing works"
MSG_CACHING_OFF = "prefix caching is off (check --enable-prefix-caching)"
MSG_ROUTING = "routing is not prefix-aware (check step 6 EPP sidecar / step 7 EnvoyFilters)"
GUIDE_PROMPT = "Translate to French: Hello world"


@dataclass
class Replica:
    """One vLLM replica whose /metrics the proof reads: a URL (with optional headers, e.g. a
    bearer token for the Kubernetes API proxy, never shown, and `ssl`, aiohttp's ssl argument for
    that URL, e.g. an SSLContext with the cluster's CA) or an async function returning the
    Prometheus text."""

    name: str
    metrics_url: str | None = None
    fetch: Callable[[], Awaitable[str]] | None = field(default=None, repr=False)
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    ssl: Any = field(default=None, repr=False)   # aiohttp ssl argument for metrics_url (e.g. the cluster CA)
    api_proxy: bool = False   # metrics_url goes through the Kubernetes API server's pod proxy

    async def read(self, session: Any, timeout_s: float = 15.0, stats: Any = None) -> VllmMetrics:
        if self.fetch is not None:
            try:
                text = await asyncio.wait_for(self.fetch(), timeout_s)
            except asyncio.TimeoutError:
                raise InferenceError(f"reading /metrics of {self.name} took longer than {timeout_s:g} s") from None
        elif self.metrics_url:
            text = await fetch_text(session, self.metrics_url, timeout_s=timeout_s, headers=self.headers,
                                    ssl=self.ssl, api_proxy=self.api_proxy, stats=stats)
        else:
            raise InferenceError(f"replica {self.name} has neither a metrics URL nor a fetch function")
        return parse_vllm_metrics(text)


@dataclass
class ProofRequest:
    phase: str                      # warmup | cold | warm | control
    index: int
    ok: bool
    status: int | None
    latency_ms: float
    prompt_tokens_est: int
    served_by: str | None = None    # final attribution
    served_by_source: str | None = None   # header | metrics | None
    hits: float | None = None       # Δ prefix_cache_hits over all replicas (tokens)
    queries: float | None = None    # Δ prefix_cache_queries over all replicas (tokens)
    hits_by_replica: dict[str, float] = field(default_factory=dict)
    cached_tokens: int | None = None   # usage.prompt_tokens_details.cached_tokens, when returned
    error: str | None = None


@dataclass
class ReplicaReport:
    name: str
    block_size: int | None
    prefix_caching_enabled: bool | None
    counters: bool
    hits: float | None = None       # Δ during the test phase (cold + warm)
    queries: float | None = None
    requests: int = 0               # test requests attributed to it
    metrics_error: str | None = None


@dataclass
class Check:
    name: str                       # metrics | caching | affinity | control | latency
    ok: bool | None                 # None = could not be decided
    detail: str


@dataclass
class CacheVerdict:
    passed: bool
    status: str                     # pass | fail | inconclusive
    headline: str                   # "cache-aware routing works" or the failing part
    failing: list[str]              # service | metrics | caching | routing | control | latency
    checks: list[Check]
    block_size: int
    block_size_source: str          # metrics | assumed
    blocks: int
    prefix_tokens_est: int
    prefix_chars: int
    cacheable_tokens_per_repeat: int
    hit_ratio: float | None         # warm Δhits / cacheable tokens of the warm repeats
    first_latency_ms: float | None
    warm_p50_ms: float | None
    control_latency_ms: float | None
    speedup: float | None           # median(cold: first + control) / median(warm)
    test_replica: str | None
    replicas: list[ReplicaReport]
    requests: list[ProofRequest]
    notes: list[str]
    elapsed_s: float = 0.0
    retries: int = 0                # calls retried after a transient API-server/connection failure (not service failures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProofEvent:
    """Progress for a live pane: phase and a one-line message, with the request when one finished."""

    phase: str
    message: str
    request: ProofRequest | None = None


_Snapshot = dict[str, "VllmMetrics | str"]   # name -> metrics or error message


def _delta(after: VllmMetrics, before: VllmMetrics, attr: str) -> float | None:
    a, b = getattr(after, attr), getattr(before, attr)
    if a is None or b is None:
        return None
    return max(0.0, a - b)


def _median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


class _Proof:
    def __init__(self, client: AsyncInferenceClient, replicas: Sequence[Replica], *, on_event,
                 metrics_timeout_s: float):
        self.client = client
        self.replicas = list(replicas)
        self.on_event = on_event
        self.metrics_timeout_s = metrics_timeout_s
        self.notes: list[str] = []
        self.metrics_errors: dict[str, str] = {}

    def emit(self, phase: str, message: str, request: ProofRequest | None = None) -> None:
        if self.on_event is not None:
            try:
                self.on_event(ProofEvent(phase, message, request))
            except Exception:  # a broken listener must not break the proof
                pass

    async def scrape(self) -> _Snapshot:
        if not self.replicas:
            return {}

        async def one(r: Replica):
            try:
                return await r.read(self.client.session, self.metrics_timeout_s, self.client.stats)
            except InferenceError as e:
                return str(e)
            except Exception as e:  # a user-supplied fetch function may raise anything
                return f"reading /metrics of {r.name} failed: {type(e).__name__}: {e}"

        results = await asyncio.gather(*(one(r) for r in self.replicas))
        snap = dict(zip((r.name for r in self.replicas), results))
        for name, v in snap.items():
            if isinstance(v, str):
                self.metrics_errors.setdefault(name, v)
        return snap

    @staticmethod
    def deltas(before: _Snapshot, after: _Snapshot) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for name, a in after.items():
            b = before.get(name)
            if isinstance(a, str) or b is None or isinstance(b, str):
                continue
            out[name] = {k: _delta(a, b, k) for k in
                         ("prefix_cache_hits", "prefix_cache_queries", "prompt_tokens", "requests_succeeded")}
        return out

    @staticmethod
    def attribute(d: dict[str, dict[str, float | None]]) -> str | None:
        """The one replica whose counters moved, or None (none, several, or no counters)."""
        moved = [name for name, v in d.items()
                 if any((v.get(k) or 0) > 0 for k in ("prefix_cache_queries", "prompt_tokens", "requests_succeeded"))]
        return moved[0] if len(moved) == 1 else None

    async def send(self, phase: str, index: int, prompt: str, max_tokens: int,
                   before: _Snapshot | None) -> tuple[ProofRequest, _Snapshot | None]:
        res: CallResult = await self.client.complete(prompt, max_tokens=max_tokens)
        rec = ProofRequest(phase=phase, index=index, ok=res.ok, status=res.status,
                           latency_ms=round(res.latency_ms, 3), prompt_tokens_est=approx_tokens(prompt),
                           cached_tokens=res.cached_tokens, error=res.error)
        if res.served_by:
            rec.served_by, rec.served_by_source = res.served_by, "header"
        after = None
        if before is not None:
            after = await self.scrape()
            d = self.deltas(before, after)
            hits = [v["prefix_cache_hits"] for v in d.values() if v["prefix_cache_hits"] is not None]
            queries = [v["prefix_cache_queries"] for v in d.values() if v["prefix_cache_queries"] is not None]
            rec.hits = sum(hits) if hits else None
            rec.queries = sum(queries) if queries else None
            rec.hits_by_replica = {n: v["prefix_cache_hits"] for n, v in d.items() if v["prefix_cache_hits"]}
            if rec.served_by is None:
                who = self.attribute(d)
                if who:
                    rec.served_by, rec.served_by_source = who, "metrics"
        self.emit(phase, _describe(rec), rec)
        return rec, after


def _describe(r: ProofRequest) -> str:
    where = f" on {r.served_by}" if r.served_by else ""
    hits = f", {r.hits:.0f} cached tokens" if r.hits is not None else ""
    if not r.ok:
        return f"{r.phase} #{r.index}: failed: {r.error}"
    return f"{r.phase} #{r.index}: {r.latency_ms:.0f} ms{where}{hits}"


async def run_cache_proof(
    base_url: str,
    replicas: Sequence[Replica] = (),
    *,
    repeats: int = 8,
    blocks: int = 4,
    max_model_len: int = 2048,
    max_tokens: int = 5,
    min_speedup: float = 1.1,
    min_hit_ratio: float = 0.8,
    warmup_rounds: int = 2,
    assumed_block_size: int = 256,
    timeout_s: float = 60.0,
    metrics_timeout_s: float = 15.0,
    headers: Mapping[str, str] | None = None,
    ssl: Any = None,
    seed: int | None = None,
    on_event: Callable[[ProofEvent], None] | None = None,
    client: AsyncInferenceClient | None = None,
    api_proxy: bool = False,
) -> CacheVerdict:
    """Run the protocol against `base_url` (the gateway: http://<gw>/<ns>/<svc>) and return the
    verdict. Never raises for service problems: they become a failing verdict."""
    t_start = time.perf_counter()
    rng = random.Random(seed)
    own = client is None
    client = client or AsyncInferenceClient(base_url, timeout_s=timeout_s, headers=headers, ssl=ssl,
                                            api_proxy=api_proxy)
    try:
        proof = _Proof(client, replicas, on_event=on_event, metrics_timeout_s=metrics_timeout_s)
        return await _run(proof, rng, repeats=max(2, repeats), blocks=max(1, blocks),
                          max_model_len=max_model_len, max_tokens=max_tokens, min_speedup=min_speedup,
                          min_hit_ratio=min_hit_ratio, warmup_rounds=max(1, warmup_rounds),
                          assumed_block_size=assumed_block_size, t_start=t_start)
    finally:
        if own:
            await client.close()


async def _run(proof: _Proof, rng: random.Random, *, repeats: int, blocks: int, max_model_len: int,
               max_tokens: int, min_speedup: float, min_hit_ratio: float, warmup_rounds: int,
               assumed_block_size: int, t_start: float) -> CacheVerdict:
    notes = proof.notes
    n_rep = len(proof.replicas)

    # 1. settings --------------------------------------------------------------------------------
    proof.emit("settings", f"reading /metrics of {n_rep} replicas" if n_rep else "no replica metrics given")
    snap0 = await proof.scrape()
    good = {n: m for n, m in snap0.items() if isinstance(m, VllmMetrics)}
    sizes = sorted({m.block_size for m in good.values() if m.block_size})
    if sizes:
        B, bs_source = sizes[-1], "metrics"
        if len(sizes) > 1:
            notes.append(f"replicas report different block sizes {sizes}; using the largest, {B}")
    else:
        B, bs_source = assumed_block_size, "assumed"
        notes.append(f"block size not reported (vllm:cache_config_info missing); assumed {B} tokens")
    if not n_rep:
        notes.append("no replica metrics: the counters (the proof's first witness) cannot be read")
    sfx_tokens = max(approx_tokens(suffix(i)) for i in range(repeats + 1))
    room = max_model_len - 16 - max_tokens - sfx_tokens
    k = min(blocks, int(room / B - 0.5))
    if k < 1:
        return _inconclusive(proof, B, bs_source, blocks, t_start,
                             f"block size {B} is too large for max-model-len {max_model_len}: "
                             "no prefix of a full block fits")
    if k < blocks:
        notes.append(f"prefix shortened to {k} blocks to fit max-model-len {max_model_len}")
    prefix_tokens = int((k + 0.5) * B)
    prefix = build_prefix(prefix_tokens, rng)
    cacheable = k * B

    # 2. warm-up ----------------------------------------------------------------------------------
    round_size = max(1, n_rep)
    warmed: set[str] = set()
    requests: list[ProofRequest] = []
    idx = 0
    snap = snap0
    for rnd in range(warmup_rounds + 2):
        if rnd >= warmup_rounds and (not n_rep or warmed >= {r.name for r in proof.replicas} or
                                     not _can_tell(requests, good)):
            break
        proof.emit("warmup", f"warm-up round {rnd + 1}: {round_size} requests on unrelated prefixes")
        prompts = [build_prefix(prefix_tokens, rng) + suffix(0) for _ in range(round_size)]
        results = await asyncio.gather(*(proof.client.complete(p, max_tokens=max_tokens) for p in prompts))
        after = await proof.scrape() if n_rep else None
        moved = set()
        if after is not None:
            for name, d in proof.deltas(snap, after).items():
                if any((d.get(x) or 0) > 0 for x in ("prefix_cache_queries", "prompt_tokens", "requests_succeeded")):
                    moved.add(name)
            snap = after
        for p, res in zip(prompts, results):
            rec = ProofRequest(phase="warmup", index=idx, ok=res.ok, status=res.status,
                               latency_ms=round(res.latency_ms, 3), prompt_tokens_est=approx_tokens(p),
                               served_by=res.served_by, served_by_source="header" if res.served_by else None,
                               error=res.error)
            requests.append(rec)
            idx += 1
            if res.served_by:
                warmed.add(res.served_by)
            proof.emit("warmup", _describe(rec), rec)
        warmed |= moved
    unwarmed = [r.name for r in proof.replicas if r.name not in warmed]
    if n_rep and unwarmed and _can_tell(requests, good):
        notes.append(f"warm-up did not reach {', '.join(unwarmed)} (the router kept choosing others)")
    warm_fail = [r for r in requests if not r.ok]
    if warm_fail and len(warm_fail) == len(requests):
        return _service_failed(proof, requests, B, bs_source, k, prefix_tokens, len(prefix), cacheable,
                               t_start, warm_fail[0])

    # 3-4. test prefix ---------------------------------------------------------------------------
    before = await proof.scrape() if n_rep else None
    test_before = before
    for i in range(repeats):
        phase = "cold" if i == 0 else "warm"
        rec, after = await proof.send(phase, i, prefix + suffix(i), max_tokens, before)
        requests.append(rec)
        before = after
    test_after = before

    # 5. control ------------------------------------------------------------------------------------
    control_prefix = build_prefix(prefix_tokens, rng)
    rec, _ = await proof.send("control", 0, control_prefix + suffix(0), max_tokens, before)
    requests.append(rec)

    return _judge(proof, requests, B=B, bs_source=bs_source, k=k, prefix_tokens=prefix_tokens,
                  prefix_chars=len(prefix), cacheable=cacheable, snap0=snap0, test_before=test_before,
                  test_after=test_after, min_speedup=min_speedup, min_hit_ratio=min_hit_ratio, t_start=t_start)


def _can_tell(requests: list[ProofRequest], good: dict[str, VllmMetrics]) -> bool:
    """Whether we can know which replica served a request (header or readable metrics)."""
    return bool(good) or any(r.served_by for r in requests)


def _base(proof: _Proof, B, bs_source, k, prefix_tokens, prefix_chars, cacheable, t_start, **kw) -> CacheVerdict:
    defaults = dict(hit_ratio=None, first_latency_ms=None, warm_p50_ms=None, control_latency_ms=None,
                    speedup=None, test_replica=None, replicas=[], requests=[])
    defaults.update(kw)
    retries = proof.client.stats.retries
    notes = proof.notes
    if retries:
        notes = notes + [f"{retries} call(s) were retried after a transient Kubernetes API server or connection "
                         "failure (not counted as service failures)"]
    return CacheVerdict(block_size=B, block_size_source=bs_source, blocks=k, prefix_tokens_est=prefix_tokens,
                        prefix_chars=prefix_chars, cacheable_tokens_per_repeat=cacheable, notes=notes,
                        elapsed_s=round(time.perf_counter() - t_start, 3), retries=retries, **defaults)


def _inconclusive(proof: _Proof, B, bs_source, k, t_start, why: str) -> CacheVerdict:
    return _base(proof, B, bs_source, k, 0, 0, 0, t_start, passed=False, status="inconclusive",
                 headline=f"cannot run the cache proof: {why}", failing=["settings"],
                 checks=[Check("settings", None, why)])


def _service_failed(proof: _Proof, requests, B, bs_source, k, prefix_tokens, prefix_chars, cacheable, t_start,
                    bad: ProofRequest) -> CacheVerdict:
    why = bad.error or f"HTTP {bad.status}"
    return _base(proof, B, bs_source, k, prefix_tokens, prefix_chars, cacheable, t_start, passed=False,
                 status="fail", headline=f"the service did not answer the test requests: {why}",
                 failing=["service"], checks=[Check("service", False, why)], requests=requests)


def _judge(proof: _Proof, requests: list[ProofRequest], *, B: int, bs_source: str, k: int, prefix_tokens: int,
           prefix_chars: int, cacheable: int, snap0: _Snapshot, test_before: _Snapshot | None,
           test_after: _Snapshot | None, min_speedup: float, min_hit_ratio: float, t_start: float) -> CacheVerdict:
    notes = proof.notes
    test = [r for r in requests if r.phase in ("cold", "warm")]
    warm = [r for r in test if r.phase == "warm"]
    cold = [r for r in test if r.phase == "cold"]
    control = [r for r in requests if r.phase == "control"]
    kw: dict[str, Any] = {}

    bad = [r for r in test + control if not r.ok]
    if bad:
        return _service_failed(proof, requests, B, bs_source, k, prefix_tokens, prefix_chars, cacheable,
                               t_start, bad[0])

    # per-replica report --------------------------------------------------------------------------
    reports: list[ReplicaReport] = []
    phase_d = proof.deltas(test_before or {}, test_after or {})
    served_counts: dict[str, int] = {}
    for r in test:
        if r.served_by:
            served_counts[r.served_by] = served_counts.get(r.served_by, 0) + 1
    for rep in proof.replicas:
        m0 = snap0.get(rep.name)
        m = m0 if isinstance(m0, VllmMetrics) else None
        d = phase_d.get(rep.name, {})
        reports.append(ReplicaReport(
            name=rep.name, block_size=m.block_size if m else None,
            prefix_caching_enabled=m.prefix_caching_enabled if m else None,
            counters=bool(m and m.has_counters), hits=d.get("prefix_cache_hits"),
            queries=d.get("prefix_cache_queries"), requests=served_counts.get(rep.name, 0),
            metrics_error=proof.metrics_errors.get(rep.name)))
    kw["replicas"] = reports
    kw["requests"] = requests

    checks: list[Check] = []
    failing: list[str] = []
    headlines: list[str] = []

    # metrics witness available? -----------------------------------------------------------------
    have_counters = bool(reports) and all(r.counters for r in reports) and not proof.metrics_errors
    if proof.metrics_errors:
        name, err = next(iter(proof.metrics_errors.items()))
        checks.append(Check("metrics", False, f"could not read /metrics of {name}: {err}"))
    elif reports and not have_counters:
        missing = [r.name for r in reports if not r.counters]
        checks.append(Check("metrics", None,
                            f"{', '.join(missing)} export no vllm:prefix_cache_queries/hits counters "
                            "(older vLLM build?): caching can only be inferred, not proven"))
    elif not reports:
        checks.append(Check("metrics", None, "no replica /metrics given: caching can only be inferred"))

    # caching --------------------------------------------------------------------------------------
    disabled = [r.name for r in reports if r.prefix_caching_enabled is False]
    warm_hits = sum(r.hits or 0 for r in warm)
    test_hits = sum(r.hits or 0 for r in test)
    cacheable_total = 0
    for r in warm:
        q = r.queries
        c = cacheable if not q else min(cacheable, int((q - 1) // B) * B)
        cacheable_total += max(c, 0)
    hit_ratio = (warm_hits / cacheable_total) if (have_counters and cacheable_total) else None
    kw["hit_ratio"] = round(hit_ratio, 4) if hit_ratio is not None else None
    caching_off = False
    if disabled:
        caching_off = True
        checks.append(Check("caching", False, f"vllm:cache_config_info says enable_prefix_caching is off on "
                                               f"{', '.join(disabled)}"))
    elif have_counters and test_hits < B:
        caching_off = True
        checks.append(Check("caching", False,
                            f"no prefix-cache hits on any replica after {len(test)} requests sharing a "
                            f"{k}-block prefix ({prefix_tokens} tokens, block size {B})"))
    elif have_counters:
        checks.append(Check("caching", None, ""))  # decided after routing, below
    else:
        checks.append(Check("caching", None, "no prefix-cache counters to read"))
    if caching_off:
        failing.append("caching")
        headlines.append(MSG_CACHING_OFF)

    # affinity -------------------------------------------------------------------------------------
    servers = {r.served_by for r in test if r.served_by}
    unknown = sum(1 for r in test if not r.served_by)
    hit_replicas = {n for r in warm for n, h in r.hits_by_replica.items() if h >= B}
    if len(servers) > 1 or len(hit_replicas) > 1:
        spread = ", ".join(f"{n}: {c}" for n, c in sorted(served_counts.items())) or "unknown"
        why = (f"the {len(test)} requests with the same prefix were served by {len(servers)} replicas ({spread})"
               if len(servers) > 1 else
               f"prefix-cache hits spread across {len(hit_replicas)} replicas ({', '.join(sorted(hit_replicas))})")
        checks.append(Check("affinity", False, why))
        failing.append("routing")
        headlines.append(MSG_ROUTING)
    elif len(proof.replicas) == 1 and len(servers) <= 1:
        checks.append(Check("affinity", None, "only one replica: prefix-aware routing cannot be tested"))
    elif not servers and not hit_replicas:
        checks.append(Check("affinity", None, "cannot tell which replica served the requests "
                                              "(no x-served-by header, no readable counters)"))
    else:
        who = next(iter(servers or hit_replicas))
        kw["test_replica"] = who
        extra = f" ({unknown} unattributed)" if unknown else ""
        checks.append(Check("affinity", True, f"all {len(test)} requests with the prefix went to {who}{extra}"))

    # caching, partial hits (only meaningful when routing is affine) --------------------------------
    cach = next(c for c in checks if c.name == "caching")
    if have_counters and not caching_off:
        ratio_txt = f"{hit_ratio:.0%}" if hit_ratio is not None else "n/a"
        if "routing" in failing:
            cach.ok, cach.detail = True, (f"the cache works on each replica ({warm_hits:.0f} cached tokens), "
                                          f"but the repeats were not kept on one replica")
        elif hit_ratio is not None and hit_ratio >= min_hit_ratio:
            cach.ok, cach.detail = True, (f"repeats hit the cache for {ratio_txt} of the cacheable tokens "
                                          f"({warm_hits:.0f} of {cacheable_total})")
        else:
            cach.ok, cach.detail = False, (f"repeats hit the cache for only {ratio_txt} of the cacheable tokens "
                                           f"({warm_hits:.0f} of {cacheable_total}; expected >= {min_hit_ratio:.0%})")
            failing.append("caching")
            headlines.append(f"prefix cache hits too low ({ratio_txt} of cacheable tokens): cache too small "
                             "or evicting (check the KV cache size in the vLLM log)")

    # control --------------------------------------------------------------------------------------
    if control:
        c = control[0]
        kw["control_latency_ms"] = c.latency_ms
        if c.hits is None:
            checks.append(Check("control", None, "no counters to check the control request's hits"))
        elif c.hits < B:
            checks.append(Check("control", True, f"a different prefix got {c.hits:.0f} cached tokens: "
                                                 "the cache is prefix-specific"))
        else:
            checks.append(Check("control", False, f"a different prefix still got {c.hits:.0f} cached tokens"))
            failing.append("control")
            headlines.append("the cache is not prefix-specific: a different prefix also hit it "
                             "(other traffic during the test?)")

    # latency --------------------------------------------------------------------------------------
    first = cold[0].latency_ms if cold else None
    warm_p50 = _median([r.latency_ms for r in warm])
    cold_ref = _median([r.latency_ms for r in cold + control])
    kw["first_latency_ms"], kw["warm_p50_ms"] = first, warm_p50
    speedup = (cold_ref / warm_p50) if (cold_ref and warm_p50) else None
    kw["speedup"] = round(speedup, 3) if speedup is not None else None
    if speedup is None:
        checks.append(Check("latency", None, "no latencies"))
    elif speedup >= min_speedup:
        checks.append(Check("latency", True, f"repeats {speedup:.2f}x faster than cold requests "
                                             f"({warm_p50:.0f} ms vs {cold_ref:.0f} ms)"))
    else:
        checks.append(Check("latency", False, f"repeats only {speedup:.2f}x faster than cold requests "
                                              f"({warm_p50:.0f} ms vs {cold_ref:.0f} ms; expected >= {min_speedup:g}x)"))
        failing.append("latency")
        headlines.append("no latency benefit from the cache: repeats were not faster than cold requests "
                         "(prefill too short to matter on this hardware, or the replica is overloaded)")

    cached_tokens = [r.cached_tokens for r in warm if r.cached_tokens is not None]
    if cached_tokens:
        notes.append(f"usage.cached_tokens on warm repeats: {cached_tokens}")

    if proof.metrics_errors:
        failing.insert(0, "metrics")
        headlines.insert(0, "cannot prove caching: " + next(iter(proof.metrics_errors.values())))
    undecided = [c.name for c in checks if c.ok is None]
    if failing:
        status = "inconclusive" if failing == ["metrics"] else "fail"
        headline = headlines[0]
    elif undecided:
        status = "inconclusive"
        why = next(c.detail for c in checks if c.ok is None)
        agree = [c.name for c in checks if c.ok]
        headline = (f"cache-aware routing is not proven: {why}"
                    + (f" ({' and '.join(agree)} agree)" if agree else ""))
    else:
        status, headline = "pass", MSG_WORKS
    return _base(proof, B, bs_source, k, prefix_tokens, prefix_chars, cacheable, t_start,
                 passed=status == "pass", status=status, headline=headline, failing=failing, checks=checks, **kw)


# --------------------------------------------------------------------------------------------
# the guide's naive judgement, kept to show why it is not enough
# --------------------------------------------------------------------------------------------


@dataclass
class LatencyOnlyVerdict:
    says_cache_works: bool
    prompt: str
    latencies_ms: list[float]
    first_ms: float | None
    later_avg_ms: float | None
    speedup_pct: float | None       # (1 - later_avg / first) * 100, as the guide prints it
    headline: str
    caveat: str = ("judged by latency alone, as the guide does, with a prompt shorter than one KV block: "
                   "warm-up can fool it; only the cache proof (same long prefix, cache hits counted on each replica) proves caching")
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def latency_only_verdict(base_url: str, *, prompt: str = GUIDE_PROMPT, requests: int = 5,
                               max_tokens: int = 10, timeout_s: float = 60.0,
                               headers: Mapping[str, str] | None = None, ssl: Any = None,
                               client: AsyncInferenceClient | None = None) -> LatencyOnlyVerdict:
    """The guide's Step 9 test: `requests` identical short prompts in a row; "cache works" when
    every later request is faster than the first and their average is too (the rule of
    test-cache-routing.sh)."""
    own = client is None
    client = client or AsyncInferenceClient(base_url, timeout_s=timeout_s, headers=headers, ssl=ssl)
    lat: list[float] = []
    try:
        for _ in range(max(2, requests)):
            res = await client.complete(prompt, max_tokens=max_tokens)
            if not res.ok:
                return LatencyOnlyVerdict(False, prompt, lat, lat[0] if lat else None, None, None,
                                          "the service did not answer", error=res.error)
            lat.append(round(res.latency_ms, 3))
    finally:
        if own:
            await client.close()
    first, later = lat[0], lat[1:]
    avg = sum(later) / len(later)
    works = all(t < first for t in later) and avg < first
    pct = (1 - avg / first) * 100 if first else None
    headline = (f"cache hit acceleration detected ({pct:.0f}% faster)" if works
                else "later requests not faster: the guide would call routing broken")
    return LatencyOnlyVerdict(works, prompt, lat, first, round(avg, 3),
                              round(pct, 1) if pct is not None else None, headline)
