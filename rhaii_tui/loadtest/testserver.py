"""A tiny fake vLLM service for unit tests and benchmarks of the load-test code.

It is NOT the emulator (that is rhaii_tui/sim/dataplane.py). It fakes just enough of a
gateway in front of N vLLM replicas to exercise the cache proof and the throughput engine:

- one aiohttp listener on 127.0.0.1, base URL `http://127.0.0.1:P/<namespace>/<service>`;
- `/health`, `/v1/models` (id `/mnt/models`), `/v1/completions`, `/v1/chat/completions`;
- routing: "prefix" (an EPP-like router that remembers which replica it sent each prompt block
  to, like GIE's approximate prefix scorer; prompts with no full block go round-robin),
  "round_robin", or "single";
- per replica a block-level prefix cache: tokens ≈ ceil(chars/4) (see prompts.py), only full
  blocks are cached, the last prompt token is never a hit (as in vLLM);
- latency = base + per_token * uncached prompt tokens + one-off warm-up costs;
- the `x-served-by` response header (can be turned off), and per-replica Prometheus
  `/_replicas/<name>/metrics` with `vllm:prefix_cache_{queries,hits}_total`,
  `vllm:prompt_tokens_total`, `vllm:request_success_total`, `vllm:cache_config_info`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .prompts import CHARS_PER_TOKEN, approx_tokens


@dataclass
class FakeReplica:
    name: str
    cache: "OrderedDict[bytes, None]" = field(default_factory=OrderedDict)
    queries: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    requests: int = 0
    in_flight: int = 0
    warmed: bool = False


def block_hashes(text: str, block_size: int) -> list[bytes]:
    """Chained hashes of the prompt's full blocks (block = block_size * 4 characters)."""
    width = block_size * CHARS_PER_TOKEN
    out: list[bytes] = []
    h = b""
    for i in range(len(text) // width):
        h = hashlib.blake2b(h + text[i * width:(i + 1) * width].encode(), digest_size=12).digest()
        out.append(h)
    return out


class FakeVllm:
    def __init__(self, *, replicas: int = 3, block_size: int = 16, caching: bool = True,
                 routing: str = "prefix", base_latency_s: float = 0.0, per_token_s: float = 0.0,
                 service_warmup_s: float = 0.0, replica_warmup_s: float = 0.0,
                 served_by_header: bool = True, config_info: bool = True, counters: bool = True,
                 spelling: str = "v1", max_concurrency: int | None = None,
                 fail_every: int = 0, fail_status: int = 503,
                 namespace: str = "rhaii-inference", service: str = "qwen-3b-tpu-svc",
                 cache_capacity_blocks: int = 100_000):
        self.replicas = [FakeReplica(f"{service}-kserve-{i}-{hashlib.md5(str(i).encode()).hexdigest()[:5]}")
                         for i in range(replicas)]
        self.block_size = block_size
        self.caching = caching
        self.routing = routing
        self.base_latency_s = base_latency_s
        self.per_token_s = per_token_s
        self.service_warmup_s = service_warmup_s
        self.replica_warmup_s = replica_warmup_s
        self.served_by_header = served_by_header
        self.config_info = config_info
        self.counters = counters
        self.spelling = spelling
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.namespace, self.service = namespace, service
        self.capacity = cache_capacity_blocks
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._rr = itertools.count()
        self._router: dict[bytes, int] = {}
        self._service_warm = False
        self.total_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[dict[str, Any]] = []   # one entry per completion request
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        p = f"/{self.namespace}/{self.service}"
        app.router.add_get(p + "/health", self._health)
        app.router.add_get(p + "/v1/models", self._models)
        app.router.add_post(p + "/v1/completions", self._completion)
        app.router.add_post(p + "/v1/chat/completions", self._completion)
        app.router.add_get("/_replicas/{name}/metrics", self._metrics)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeVllm":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.namespace}/{self.service}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/_replicas/{name}/metrics"

    @property
    def replica_names(self) -> list[str]:
        return [r.name for r in self.replicas]

    # --- handlers ----------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "/mnt/models", "object": "model", "owned_by": "vllm", "max_model_len": 2048}]})

    def _route(self, hashes: list[bytes]) -> int:
        n = len(self.replicas)
        if self.routing == "single" or n == 1:
            return 0
        if self.routing == "prefix" and hashes:
            best = None
            for h in hashes:          # longest prefix the router has seen
                idx = self._router.get(h)
                if idx is None:
                    break
                best = idx
            if best is None:          # unseen prefix: least loaded, then round-robin
                low = min(r.in_flight for r in self.replicas)
                cands = [i for i, r in enumerate(self.replicas) if r.in_flight == low]
                best = cands[next(self._rr) % len(cands)]
            for h in hashes:
                self._router[h] = best
            return best
        return next(self._rr) % n

    async def _completion(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "messages" in body:
            prompt = "".join(str(m.get("content", "")) for m in body["messages"])
        else:
            prompt = str(body.get("prompt", ""))
        self.total_requests += 1
        n = self.total_requests
        if self.fail_every and n % self.fail_every == 0:
            return web.json_response({"error": {"message": "simulated failure"}}, status=self.fail_status)
        hashes = block_hashes(prompt, self.block_size)
        idx = self._route(hashes)
        rep = self.replicas[idx]
        tokens = approx_tokens(prompt)
        hit_blocks = 0
        if self.caching:
            usable = hashes if len(prompt) % (self.block_size * CHARS_PER_TOKEN) else hashes[:-1]
            for h in usable:
                if h not in rep.cache:
                    break
                hit_blocks += 1
                rep.cache.move_to_end(h)
            for h in hashes:
                rep.cache[h] = None
                rep.cache.move_to_end(h)
            while len(rep.cache) > self.capacity:
                rep.cache.popitem(last=False)
            rep.queries += tokens
            rep.hits += hit_blocks * self.block_size
        hit_tokens = hit_blocks * self.block_size
        delay = self.base_latency_s + self.per_token_s * (tokens - hit_tokens)
        if not self._service_warm:
            self._service_warm = True
            delay += self.service_warmup_s
        if not rep.warmed:
            rep.warmed = True
            delay += self.replica_warmup_s
        rep.prompt_tokens += tokens
        rep.in_flight += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._sem is not None:
                async with self._sem:
                    await _sleep(delay)
            elif delay > 0:
                await _sleep(delay)
        finally:
            rep.in_flight -= 1
            self.in_flight -= 1
        rep.requests += 1
        self.log.append({"replica": rep.name, "tokens": tokens, "hit_tokens": hit_tokens, "delay": delay})
        chat = "messages" in body
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        answer = " Bonjour le monde, ceci est une réponse simulée"
        if chat:
            choice["message"] = {"role": "assistant", "content": answer}
        else:
            choice["text"] = answer
        doc = {"id": f"cmpl-{n}", "object": "chat.completion" if chat else "text_completion",
               "created": int(time.time()), "model": body.get("model", "/mnt/models"), "choices": [choice],
               "usage": {"prompt_tokens": tokens, "completion_tokens": 10, "total_tokens": tokens + 10,
                         "prompt_tokens_details": {"cached_tokens": hit_tokens}}}
        headers = {"x-served-by": rep.name} if self.served_by_header else None
        return web.json_response(doc, headers=headers)

    async def _metrics(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        rep = next((r for r in self.replicas if r.name == name), None)
        if rep is None:
            return web.Response(status=404, text="no such replica")
        lab = 'engine="0",model_name="/mnt/models"'
        pre = "vllm:prefix_cache" if self.spelling == "v1" else "vllm:gpu_prefix_cache"
        lines = []
        if self.counters:
            lines += [
                f"# HELP {pre}_queries_total Prefix cache queries, in terms of number of queried tokens.",
                f"# TYPE {pre}_queries_total counter",
                f"{pre}_queries_total{{{lab}}} {float(rep.queries)}",
                f"{pre}_queries_created{{{lab}}} 1.7e9",
                f"# TYPE {pre}_hits_total counter",
                f"{pre}_hits_total{{{lab}}} {float(rep.hits)}",
            ]
        lines += [
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lab}}} {float(rep.prompt_tokens)}",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{lab},finished_reason="length"}} {float(rep.requests)}',
            f'vllm:request_success_total{{{lab},finished_reason="stop"}} 0.0',
        ]
        if self.config_info:
            lines += [
                "# TYPE vllm:cache_config_info gauge",
                f'vllm:cache_config_info{{block_size="{self.block_size}",cache_dtype="auto",'
                f'enable_prefix_caching="{self.caching}",gpu_memory_utilization="0.9",'
                f'num_gpu_blocks="8192",prefix_caching_hash_algo="sha256"}} 1.0',
            ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def _sleep(seconds: float) -> None:
    """asyncio.sleep wakes 1-2 ms late (the loop rounds epoll timeouts up to whole ms); sleep most
    of the time, then yield until the exact deadline so the fake's latency is what was asked for."""
    if seconds <= 0:
        return
    deadline = time.perf_counter() + seconds
    if seconds > 0.0025:
        await asyncio.sleep(seconds - 0.0025)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)
