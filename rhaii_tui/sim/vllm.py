"""A simulated vLLM replica (one Ready workload pod): OpenAI API, a REAL block-level prefix cache,
Prometheus metrics and a latency model calibrated to the guide.

Tokens. There is no tokenizer: token ids are approximated deterministically from the text. The
text is split into pieces by `_PIECE_RE` (a word of up to 6 letters with its leading space, a
run of up to 3 digits, or one punctuation/symbol character, or a whitespace run); each piece's id
is a stable 31-bit hash. English prose comes out at ~4.3 characters per token, close to Qwen's
tokenizer. The same text always gives the same ids, so prefixes share blocks exactly as they
would share KV blocks.

Prefix cache (vLLM V1 automatic prefix caching):
- the KV cache is split into blocks of `block_size` tokens (default 128 here, the TPU-like value
  the upstream scripts assume; `--block-size` in the pod's args overrides it);
- only FULL blocks are cached; each block's hash chains its parent's hash and its token ids;
- a request's hit is the longest run of leading blocks found in the cache; as in vLLM, when the
  whole prompt is cached the last token is recomputed (so a block-aligned prompt hits one block
  less);
- after the request, every full block of prompt + output is inserted; eviction is LRU with a
  capacity of the KV cache size (in blocks) the pod logged at start-up;
- `vllm:prefix_cache_queries_total` counts prompt tokens queried, `vllm:prefix_cache_hits_total`
  the tokens served from cache (both in tokens, as vLLM V1), per replica.
- Without `--enable-prefix-caching` in the pod's args there are no hits (note: real vLLM V1
  enables prefix caching by default; the emulator follows the guide's manifest, where the flag
  is what turns it on, so a manifest without it is visibly "off").

Latency model (real wall time, never divided by the simulation speed), per request:
    t = engine_overhead + prefill + decode (+ warm-up on the replica's first request)
    prefill = prefill_base + per_token * max(min_prefill_tokens, uncached prompt tokens)
    decode  = (output tokens - 1) * (per_output_token + batch_penalty * (running - 1))
A replica runs at most `slots` requests at once (continuous batching with a small emulated batch:
further requests wait, `vllm:num_requests_waiting`), and prefills of one replica are serialized.
Calibration (LatencyModel defaults, see BENCHMARKS.md "Emulator data plane"): a warm 10-token
completion on a short or cached prompt ~80 ms, on a 4-block (512-token) cold prompt ~215 ms,
the first request through a new gateway +110 ms and the first request of each replica +40 ms (so
the very first request costs ~150 ms more and the guide's latency-only cache test is fooled exactly
as on a real TPU, whatever replica the repeats land on), a ~36-token completion ~155 ms (~6.3
req/s serial), and a burst of 10 requests sharing a one-block prefix (all routed to one replica by
the EPP) ~30 req/s with P50 < 200 ms (the guide: ~25 req/s, P50 < 200 ms, measured with curl).

The `x-served-by: <pod name>` response header is SIM-ONLY evidence (real vLLM does not send it);
the wizard must not depend on it outside the emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shlex
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

VLLM_VERSION = "0.11.0"
DEFAULT_BLOCK_SIZE = 128
DEFAULT_MAX_MODEL_LEN = 32768


# --- vLLM arguments from the pod spec ------------------------------------------------------------


@dataclass
class VllmArgs:
    model: str = "/mnt/models"
    served_model_name: str | None = None
    max_model_len: int | None = None
    enable_prefix_caching: bool = False
    block_size: int = DEFAULT_BLOCK_SIZE
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    tensor_parallel_size: int = 1
    prompt_tokens_details: bool = False
    dtype: str = "auto"
    port: int = 8000
    ssl: bool = False
    gpu_memory_utilization: float = 0.9
    disable_log_requests: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"


def _words(container: dict[str, Any]) -> list[str]:
    parts = list(container.get("command") or []) + list(container.get("args") or [])
    words: list[str] = []
    for p in parts:
        p = str(p)
        if any(ch in p for ch in " \n\t\\"):
            try:
                words.extend(shlex.split(p.replace("\\\n", " ")))
            except ValueError:
                words.extend(p.split())
        else:
            words.append(p)
    return words


def parse_vllm_args(container: dict[str, Any]) -> VllmArgs:
    """vLLM's engine arguments from a container's command + args (list form or a bash -c string)."""
    a = VllmArgs()
    words = _words(container)
    raw: dict[str, Any] = {}
    i = 0
    positional_model = None
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            if "=" in w:
                k, v = w[2:].split("=", 1)
            else:
                k = w[2:]
                nxt = words[i + 1] if i + 1 < len(words) else None
                if nxt is not None and not nxt.startswith("--"):
                    v = nxt
                    i += 1
                else:
                    v = True
            raw[k.replace("_", "-")] = v
        elif w == "serve" and i + 1 < len(words) and not words[i + 1].startswith("--"):
            positional_model = words[i + 1]
            i += 1
        i += 1
    a.raw = raw

    def num(k: str, cast=int):
        v = raw.get(k)
        try:
            return cast(v) if v is not None and v is not True else None
        except (TypeError, ValueError):
            return None

    a.model = str(raw.get("model") or positional_model or "/mnt/models")
    if isinstance(raw.get("served-model-name"), str):
        a.served_model_name = raw["served-model-name"]
    a.max_model_len = num("max-model-len")
    a.enable_prefix_caching = "enable-prefix-caching" in raw and raw["enable-prefix-caching"] not in ("false", "False")
    if "no-enable-prefix-caching" in raw:
        a.enable_prefix_caching = False
    a.block_size = num("block-size") or DEFAULT_BLOCK_SIZE
    a.max_num_seqs = num("max-num-seqs") or 256
    a.max_num_batched_tokens = num("max-num-batched-tokens")
    a.tensor_parallel_size = num("tensor-parallel-size") or num("tp") or 1
    a.prompt_tokens_details = "enable-prompt-tokens-details" in raw
    a.dtype = str(raw.get("dtype") or "auto")
    a.port = num("port") or 8000
    a.ssl = bool(raw.get("ssl-certfile"))
    a.gpu_memory_utilization = num("gpu-memory-utilization", float) or 0.9
    a.disable_log_requests = "disable-log-requests" in raw
    return a


def is_vllm_container(container: dict[str, Any]) -> bool:
    text = " ".join(_words(container)) + " " + str(container.get("image", ""))
    return "vllm" in text.lower()


# --- model facts (for the KV cache size the pod logs) -------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    name: str
    params_b: float
    layers: int
    kv_heads: int
    head_dim: int
    shards: int
    max_position: int


MODELS: dict[str, ModelFacts] = {
    "qwen/qwen2.5-3b-instruct": ModelFacts("Qwen/Qwen2.5-3B-Instruct", 3.09, 36, 2, 128, 2, 32768),
    "qwen/qwen2.5-7b-instruct": ModelFacts("Qwen/Qwen2.5-7B-Instruct", 7.62, 28, 4, 128, 4, 32768),
    "google/gemma-2b-it": ModelFacts("google/gemma-2b-it", 2.51, 18, 1, 256, 2, 8192),
}
GENERIC_MODEL = ModelFacts("model", 3.0, 32, 4, 128, 2, 32768)

HBM_PER_CHIP_GIB = 32.0  # TPU v6e


def model_facts(uri_or_name: str | None) -> ModelFacts:
    if not uri_or_name:
        return GENERIC_MODEL
    name = uri_or_name.split("://", 1)[-1].strip("/").lower()
    return MODELS.get(name, GENERIC_MODEL)


def kv_cache_tokens(args: VllmArgs, facts: ModelFacts) -> int:
    """Tokens of KV cache a replica allocates: HBM * utilization - weights - activations."""
    chips = max(1, args.tensor_parallel_size)
    total = HBM_PER_CHIP_GIB * (1 << 30) * chips * args.gpu_memory_utilization
    weights = facts.params_b * 1e9 * 2
    activations = 1.0 * (1 << 30) * chips
    per_token = facts.layers * 2 * facts.kv_heads * facts.head_dim * 2
    tokens = int(max(0.0, total - weights - activations) // per_token)
    return tokens // args.block_size * args.block_size


# --- tokens --------------------------------------------------------------------------------------

_PIECE_RE = re.compile(r" ?[A-Za-z]{1,6}| ?\d{1,3}| ?[^\sA-Za-z\d]|\s+")


def _piece_id(piece: str) -> int:
    return int.from_bytes(hashlib.blake2b(piece.encode(), digest_size=4).digest(), "big") & 0x7FFFFFFF


def tokenize(text: str) -> list[int]:
    return [_piece_id(p) for p in _PIECE_RE.findall(text)]


def count_tokens(text: str) -> int:
    return len(_PIECE_RE.findall(text))


QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    """Qwen2.5's chat template (ChatML, default system prompt when none is given)."""
    parts = []
    msgs = list(messages or [])
    if not msgs or msgs[0].get("role") != "system":
        parts.append(f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n")
    for m in msgs:
        content = m.get("content", "")
        if isinstance(content, list):
            content = "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        parts.append(f"<|im_start|>{m.get('role', 'user')}\n{content}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


# --- the prefix cache ----------------------------------------------------------------------------


def block_hashes(tokens: list[int], block_size: int) -> list[bytes]:
    """Chained hashes of the full blocks of `tokens` (parent hash + block token ids)."""
    out: list[bytes] = []
    parent = b"\x00" * 16
    for i in range(len(tokens) // block_size):
        block = tokens[i * block_size:(i + 1) * block_size]
        h = hashlib.blake2b(parent + b"".join(t.to_bytes(4, "big") for t in block), digest_size=16).digest()
        out.append(h)
        parent = h
    return out


class PrefixCache:
    """Block-level LRU prefix cache of one replica."""

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, capacity_blocks: int = 1 << 20,
                 enabled: bool = True):
        self.block_size = block_size
        self.capacity = max(1, capacity_blocks)
        self.enabled = enabled
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self.queries = 0  # tokens
        self.hits = 0  # tokens

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup(self, tokens: list[int]) -> int:
        """Cached prompt tokens for a request (counts queries/hits)."""
        self.queries += len(tokens)
        if not self.enabled or not tokens:
            return 0
        # the last token is always computed: a fully cached prompt hits one block less
        hashes = block_hashes(tokens[: len(tokens) - 1], self.block_size)
        n = 0
        for h in hashes:
            if h not in self._blocks:
                break
            self._blocks.move_to_end(h)
            n += 1
        hit = n * self.block_size
        self.hits += hit
        return hit

    def insert(self, tokens: list[int]) -> None:
        if not self.enabled:
            return
        for h in block_hashes(tokens, self.block_size):
            if h in self._blocks:
                self._blocks.move_to_end(h)
            else:
                self._blocks[h] = None
                if len(self._blocks) > self.capacity:
                    self._blocks.popitem(last=False)

    def reset(self) -> None:
        self._blocks.clear()

    @property
    def usage(self) -> float:
        return len(self._blocks) / self.capacity


# --- latency model -------------------------------------------------------------------------------


@dataclass
class LatencyModel:
    """Milliseconds; see the module docstring for the calibration."""

    engine_overhead_ms: float = 34.0  # HTTP, tokenization, scheduling, sampling, detokenization
    prefill_base_ms: float = 8.0  # one prefill step (bucket padded)
    prefill_per_token_ms: float = 0.267
    min_prefill_tokens: int = 16  # TPU pads to buckets of at least 16 tokens
    per_output_token_ms: float = 2.9
    batch_penalty_ms: float = 0.1  # per extra running sequence, per output token
    warmup_ms: float = 40.0  # a replica's first request (first-shape XLA work)
    warmup_requests: int = 1
    gateway_warmup_ms: float = 110.0  # the gateway's first request (connections, TLS, first EPP pass)
    slots: int = 3  # sequences a replica runs at once (the emulated TPU batch)
    gateway_ms: float = 1.5  # Envoy hop
    epp_ms: float = 2.5  # ext_proc round trip to the EPP

    def prefill_ms(self, uncached_tokens: int) -> float:
        return self.prefill_base_ms + self.prefill_per_token_ms * max(self.min_prefill_tokens, uncached_tokens)

    def decode_ms(self, output_tokens: int, running: int) -> float:
        per = self.per_output_token_ms + self.batch_penalty_ms * max(0, running - 1)
        return max(0, output_tokens - 1) * per

    def request_ms(self, uncached_tokens: int, output_tokens: int, running: int = 1, cold: bool = False) -> float:
        """Service time of one request alone on its replica (no queueing): the model function."""
        return (self.engine_overhead_ms + self.prefill_ms(uncached_tokens)
                + self.decode_ms(output_tokens, running) + (self.warmup_ms if cold else 0.0))


# --- text generation -----------------------------------------------------------------------------

_WORDS = ("the model serves requests from a shared cache of attention blocks so repeated prefixes "
          "are computed once and reused across replicas while the scheduler keeps each prefix on "
          "the same server which lowers latency and raises throughput for chat workloads with long "
          "system prompts documents and few shot examples").split()

_CANNED = (
    ("translate to french", "Bonjour le monde ! Comment allez-vous aujourd'hui ?"),
    ("translate to spanish", "¡Hola mundo! ¿Cómo estás hoy?"),
    ("machine learning", " Machine learning is a field of artificial intelligence in which systems learn "
                         "patterns from data to make predictions or decisions without being explicitly programmed."),
    ("summarize", " A quick brown fox jumps over a lazy dog, a classic sentence that uses every letter."),
    ("hello", " Hello! How can I help you today?"),
)


def generate(prompt: str, max_tokens: int, seed_extra: str = "") -> tuple[str, int, str]:
    """(text, output tokens, finish_reason): deterministic for a prompt."""
    low = prompt.lower()
    seed = int.from_bytes(hashlib.blake2b((prompt + seed_extra).encode(), digest_size=8).digest(), "big")
    base = next((t for k, t in _CANNED if k in low), None)
    if base is None:
        words = []
        s = seed
        for _ in range(60):
            s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            words.append(_WORDS[(s >> 33) % len(_WORDS)])
        base = " " + " ".join(words).capitalize() + "."
    natural = max(3, count_tokens(base))
    pieces = _PIECE_RE.findall(base)
    if max_tokens < natural:
        return "".join(pieces[:max_tokens]), max_tokens, "length"
    return base, natural, "stop"


# --- the replica ---------------------------------------------------------------------------------


class ApiFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body.get("error", {}).get("message", ""))
        self.status = status
        self.body = body


def _error(status: int, message: str, type_: str = "BadRequestError", param: str | None = None) -> ApiFailure:
    return ApiFailure(status, {"error": {"message": message, "type": type_, "param": param, "code": status}})


@dataclass
class Completion:
    body: dict[str, Any]
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    latency_ms: float
    chunks: list[str] = field(default_factory=list)  # streamed text pieces (stream=True)


_HIST_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)


class _Hist:
    def __init__(self) -> None:
        self.counts = [0] * len(_HIST_BUCKETS)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        self.n += 1
        self.sum += v
        for i, b in enumerate(_HIST_BUCKETS):
            if v <= b:
                self.counts[i] += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        for b, c in zip(_HIST_BUCKETS, self.counts):
            out.append(f'{name}_bucket{{{labels},le="{b}"}} {float(c)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(self.n)}')
        out.append(f"{name}_count{{{labels}}} {float(self.n)}")
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        return out


class Replica:
    """One vLLM server (one Ready workload pod). Runs on the emulator's asyncio loop."""

    def __init__(self, pod_name: str, namespace: str, args: VllmArgs, *, model_uri: str | None = None,
                 model: LatencyModel | None = None, created: float | None = None, log=None):
        self.pod_name = pod_name
        self.namespace = namespace
        self.args = args
        self.facts = model_facts(model_uri)
        self.model = model or LatencyModel()
        self.created = int(created or time.time())
        self.max_model_len = args.max_model_len or self.facts.max_position
        kv_tokens = kv_cache_tokens(args, self.facts)
        self.num_blocks = max(1, kv_tokens // args.block_size)
        self.cache = PrefixCache(args.block_size, self.num_blocks, enabled=args.enable_prefix_caching)
        self.slots = max(1, min(self.model.slots, args.max_num_seqs))
        self._waiters: deque[asyncio.Future] = deque()
        self._prefill_lock: asyncio.Lock | None = None
        self.running = 0
        self.waiting = 0
        self.served = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {"stop": 0, "length": 0}
        self.e2e = _Hist()
        self.ttft = _Hist()
        self._log = log  # callable(text) -> None: the main container's log
        self._stats_at = time.time()
        self._stats_prompt = 0
        self._stats_gen = 0
        self._stats_q = 0
        self._stats_h = 0

    # --- admission ---------------------------------------------------------------------------
    @property
    def load(self) -> int:
        return self.running + self.waiting

    async def _acquire(self) -> None:
        if self.running < self.slots and not self._waiters:
            self.running += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.waiting += 1
        try:
            await fut
        except asyncio.CancelledError:
            if fut in self._waiters:
                self._waiters.remove(fut)
                self.waiting -= 1
            elif fut.done() and not fut.cancelled():
                self._release()
            raise
        # the releaser handed its slot over: running already counts us

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            self.waiting -= 1
            if not fut.done():
                fut.set_result(None)
                return  # slot handed over
        self.running -= 1

    # --- API ---------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        name = self.args.served_name
        return {"object": "list", "data": [{
            "id": name, "object": "model", "created": self.created, "owned_by": "vllm",
            "root": self.args.model, "parent": None, "max_model_len": self.max_model_len,
            "permission": [{
                "id": f"modelperm-{hashlib.md5((self.pod_name + name).encode()).hexdigest()}",
                "object": "model_permission", "created": self.created, "allow_create_engine": False,
                "allow_sampling": True, "allow_logprobs": True, "allow_search_indices": False,
                "allow_view": True, "allow_fine_tuning": False, "organization": "*", "group": None,
                "is_blocking": False}],
        }]}

    def _prompt_of(self, req: dict[str, Any], chat: bool) -> str:
        if chat:
            msgs = req.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise _error(400, "messages: field required (a non-empty list)")
            return chat_prompt(msgs)
        prompt = req.get("prompt")
        if isinstance(prompt, list):
            if prompt and all(isinstance(x, int) for x in prompt):
                return " ".join(str(x) for x in prompt)
            prompt = "".join(str(x) for x in prompt)
        if not isinstance(prompt, str):
            raise _error(400, "prompt: field required (a string)")
        return prompt

    async def complete(self, req: dict[str, Any], chat: bool = False, emit=None) -> Completion:
        """Serve one /v1/completions or /v1/chat/completions request (sleeps the modelled time).

        With `emit` (an async callable taking bytes), the response is streamed as server-sent
        events: the first chunk right after the prefill, then one chunk per output token."""
        model_name = req.get("model")
        if model_name is not None and model_name != self.args.served_name:
            raise _error(404, f"The model `{model_name}` does not exist.", "NotFoundError", "model")
        prompt = self._prompt_of(req, chat)
        tokens = tokenize(prompt)
        n_prompt = len(tokens)
        max_tokens = req.get("max_completion_tokens") if chat else None
        max_tokens = max_tokens if max_tokens is not None else req.get("max_tokens")
        if max_tokens is None:
            max_tokens = 16 if not chat else max(1, self.max_model_len - n_prompt)
        try:
            max_tokens = int(max_tokens)
        except (TypeError, ValueError):
            raise _error(400, "max_tokens must be an integer") from None
        if max_tokens < 1:
            raise _error(400, f"max_tokens must be at least 1, got {max_tokens}.")
        if n_prompt + max_tokens > self.max_model_len:
            what = "messages" if chat else "prompt"
            raise _error(400, f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                              f"requested {n_prompt + max_tokens} tokens ({n_prompt} in the {what}, {max_tokens} in "
                              "the completion). Please reduce the length of the "
                              f"{what} or completion.")
        text, n_out, finish = generate(prompt, max_tokens)
        pieces = _PIECE_RE.findall(text) or [""]
        rid = hashlib.md5(f"{self.pod_name}{time.time_ns()}".encode()).hexdigest()
        created = int(time.time())
        comp = Completion({}, n_prompt, 0, n_out, 0.0, pieces)
        comp.body = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}", "created": created,
                     "model": self.args.served_name, "choices": [{"finish_reason": finish}]}
        t0 = time.perf_counter()
        ttft = 0.0
        await self._acquire()
        try:
            if self._prefill_lock is None:
                self._prefill_lock = asyncio.Lock()
            cold = self.served < self.model.warmup_requests
            self.served += 1
            async with self._prefill_lock:
                cached = self.cache.lookup(tokens)
                uncached = n_prompt - cached
                await asyncio.sleep((self.model.prefill_ms(uncached) + (self.model.warmup_ms if cold else 0.0)) / 1000)
            comp.cached_tokens = cached
            overhead = self.model.engine_overhead_ms / 1000
            if emit is None:
                await asyncio.sleep(overhead + self.model.decode_ms(n_out, self.running) / 1000)
                ttft = time.perf_counter() - t0
            else:
                await asyncio.sleep(overhead / 2)
                ttft = time.perf_counter() - t0
                chunks = stream_chunks(comp, chat, False, with_done=False)
                per = self.model.decode_ms(2, self.running) / 1000
                for i, chunk in enumerate(chunks):
                    if i:
                        await asyncio.sleep(per)
                    await emit(chunk)
                await asyncio.sleep(overhead / 2)
            self.cache.insert(tokens + tokenize(text))
        finally:
            self._release()
        latency = time.perf_counter() - t0
        self.prompt_tokens += n_prompt
        self.generation_tokens += n_out
        self.success[finish] = self.success.get(finish, 0) + 1
        self.e2e.observe(latency)
        self.ttft.observe(ttft)
        self._stats(n_prompt, n_out, n_prompt, cached)
        usage: dict[str, Any] = {"prompt_tokens": n_prompt, "total_tokens": n_prompt + n_out,
                                 "completion_tokens": n_out}
        usage["prompt_tokens_details"] = {"cached_tokens": cached} if self.args.prompt_tokens_details else None
        if chat:
            body = {"id": comp.body["id"], "object": "chat.completion", "created": created,
                    "model": self.args.served_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text.strip(),
                                                         "refusal": None, "annotations": None, "audio": None,
                                                         "function_call": None, "tool_calls": [],
                                                         "reasoning_content": None},
                                 "logprobs": None, "finish_reason": finish, "stop_reason": None}],
                    "service_tier": None, "system_fingerprint": None, "usage": usage,
                    "prompt_logprobs": None, "kv_transfer_params": None}
        else:
            body = {"id": comp.body["id"], "object": "text_completion", "created": created,
                    "model": self.args.served_name,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                                 "stop_reason": None, "prompt_logprobs": None}],
                    "service_tier": None, "system_fingerprint": None, "usage": usage,
                    "kv_transfer_params": None}
        comp.body = body
        comp.latency_ms = latency * 1000
        return comp

    # --- logs --------------------------------------------------------------------------------
    def _stats(self, n_prompt: int, n_out: int, queried: int, hit: int) -> None:
        self._stats_prompt += n_prompt
        self._stats_gen += n_out
        self._stats_q += queried
        self._stats_h += hit
        now = time.time()
        if self._log is None or now - self._stats_at < 10.0:
            return
        span = max(1e-6, now - self._stats_at)
        rate = (100.0 * self._stats_h / self._stats_q) if self._stats_q else 0.0
        self._log(f"(APIServer pid=1) INFO {time.strftime('%m-%d %H:%M:%S', time.gmtime(now))} [loggers.py:123] "
                  f"Engine 000: Avg prompt throughput: {self._stats_prompt / span:.1f} tokens/s, "
                  f"Avg generation throughput: {self._stats_gen / span:.1f} tokens/s, Running: {self.running} reqs, "
                  f"Waiting: {self.waiting} reqs, GPU KV cache usage: {100 * self.cache.usage:.1f}%, "
                  f"Prefix cache hit rate: {rate:.1f}%")
        self._stats_at = now
        self._stats_prompt = self._stats_gen = self._stats_q = self._stats_h = 0

    # --- metrics -----------------------------------------------------------------------------
    def metrics_text(self) -> str:
        m = f'engine="0",model_name="{self.args.served_name}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{m}}} {float(self.running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{m}}} {float(self.waiting)}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{m}}} {self.cache.usage}",
            "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.",
            "# TYPE vllm:prefix_cache_queries_total counter",
            f"vllm:prefix_cache_queries_total{{{m}}} {float(self.cache.queries)}",
            "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.",
            "# TYPE vllm:prefix_cache_hits_total counter",
            f"vllm:prefix_cache_hits_total{{{m}}} {float(self.cache.hits)}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{m}}} {float(self.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{m}}} {float(self.generation_tokens)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        for reason in ("stop", "length", "abort"):
            lines.append(f'vllm:request_success_total{{{m},finished_reason="{reason}"}} '
                         f"{float(self.success.get(reason, 0))}")
        lines += ["# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds."]
        lines += self.e2e.lines("vllm:e2e_request_latency_seconds", m)
        lines += ["# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds."]
        lines += self.ttft.lines("vllm:time_to_first_token_seconds", m)
        a = self.args
        info = {
            "block_size": str(a.block_size), "cache_dtype": "auto", "calculate_kv_scales": "False",
            "cpu_offload_gb": "0", "enable_prefix_caching": str(a.enable_prefix_caching),
            "engine": "0", "gpu_memory_utilization": str(a.gpu_memory_utilization), "is_attention_free": "False",
            "num_cpu_blocks": "None", "num_gpu_blocks": str(self.num_blocks), "num_gpu_blocks_override": "None",
            "prefix_caching_hash_algo": "sha256", "sliding_window": "None", "swap_space": "4",
            "swap_space_bytes": "4294967296",
        }
        lines += [
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
            "# TYPE vllm:cache_config_info gauge",
            "vllm:cache_config_info{" + ",".join(f'{k}="{v}"' for k, v in info.items()) + "} 1.0",
        ]
        return "\n".join(lines) + "\n"


def stream_chunks(comp: Completion, chat: bool, include_usage: bool, with_done: bool = True) -> list[bytes]:
    """Server-sent events of a completion: one chunk per token (the last with finish_reason),
    then optionally the usage chunk, then [DONE]."""
    body = comp.body
    out: list[bytes] = []
    base = {"id": body["id"], "created": body["created"], "model": body["model"]}
    pieces = comp.chunks or [""]
    finish = body["choices"][0].get("finish_reason")
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        if chat:
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta = {"role": "assistant", "content": piece}
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish if last else None}]}
        else:
            chunk = {**base, "object": "text_completion",
                     "choices": [{"index": 0, "text": piece, "logprobs": None,
                                  "finish_reason": finish if last else None, "stop_reason": None}]}
        out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    if include_usage and "usage" in body:
        obj = "chat.completion.chunk" if chat else "text_completion"
        out.append(b"data: " + json.dumps({**base, "object": obj, "choices": [], "usage": body["usage"]}).encode()
                   + b"\n\n")
    if with_done:
        out.append(b"data: [DONE]\n\n")
    return out
