"""What the simulated containers print, as timed scripts: lists of (sim seconds after the
container started, line). Lines may carry time placeholders the kubelet fills in with the
instant the line is written: {T} vLLM's "MM-DD HH:MM:SS", {K} klog's "MMDD HH:MM:SS", {PY} Python logging's
"YYYY-MM-DD HH:MM:SS,mmm", {ISO} RFC 3339 with microseconds, {EPOCH} seconds since 1970.

The vLLM start-up follows what vLLM prints on TPU, with the five milestones of the guide's step 5
in order: "Loading safetensors checkpoint shards: 100%", "Loading weights took X seconds",
"TPU KV cache size: X tokens", "Compiling the model with different input shapes", "Compiled the
model with different input shapes" -- then the API server and Uvicorn lines.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
from dataclasses import dataclass, field

from ..vllm import VLLM_VERSION, VllmArgs, kv_cache_tokens, model_facts

Line = tuple[float, str]


@dataclass
class Script:
    lines: list[Line] = field(default_factory=list)
    up: float = 0.0  # when the process serves (readiness can pass from here on)
    exit_at: float | None = None  # the process exits at this offset ...
    exit_code: int = 0  # ... with this code
    shutdown: list[str] = field(default_factory=list)  # printed on SIGTERM

    def add(self, t: float, text: str) -> None:
        self.lines.append((t, text))


def fill(text: str, t: float) -> str:
    if "{" not in text:
        return text
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return (text.replace("{T}", d.strftime("%m-%d %H:%M:%S"))
            .replace("{PY}", d.strftime("%Y-%m-%d %H:%M:%S,") + f"{d.microsecond // 1000:03d}")
            .replace("{ISO}", d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            .replace("{EPOCH}", f"{t:.6f}")
            .replace("{K}", d.strftime("%m%d %H:%M:%S")))


# --- storage-initializer -------------------------------------------------------------------------


def storage_initializer(uri: str, dest: str, r: random.Random, *, rejected: bool) -> Script:
    s = Script()
    s.add(0.6, f"{{PY}} 1 kserve INFO [initializer-entrypoint:<module>():16] Initializing, args: "
               f"src_uri [{uri}] dest_path[ [{dest}]")
    s.add(0.7, f"{{PY}} 1 kserve INFO [storage.py:download():66] Copying contents of {uri} to local")
    repo = uri.split("://", 1)[-1]
    if rejected:
        s.add(2.8, "Traceback (most recent call last):")
        s.add(2.8, '  File "/usr/local/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 409, '
                   "in hf_raise_for_status")
        s.add(2.8, "    response.raise_for_status()")
        s.add(2.8, "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
                   f"https://huggingface.co/api/models/{repo}/revision/main")
        s.add(2.9, "")
        s.add(2.9, "The above exception was the direct cause of the following exception:")
        s.add(2.9, "")
        s.add(2.9, "Traceback (most recent call last):")
        s.add(2.9, '  File "/storage-initializer/scripts/initializer-entrypoint", line 22, in <module>')
        s.add(2.9, "    Storage.download(src_uri, dest_path)")
        s.add(2.9, '  File "/usr/local/lib/python3.11/site-packages/kserve_storage/kserve_storage.py", line 126, '
                   "in download")
        s.add(2.9, "    model_dir = Storage._download_hf(src_uri, out_dir)")
        s.add(3.0, "huggingface_hub.errors.HfHubHTTPError: 401 Client Error: Unauthorized for url: "
                   f"https://huggingface.co/api/models/{repo}/revision/main (Request ID: "
                   f"Root=1-{r.getrandbits(32):08x}-{r.getrandbits(96):024x};{r.getrandbits(128):032x})")
        s.add(3.0, "")
        s.add(3.0, "Invalid credentials in Authorization header")
        s.exit_at, s.exit_code = 3.2, 1
        return s
    dur = r.uniform(30.0, 55.0)
    files = 12
    s.add(1.5, f"{{PY}} 1 kserve INFO [storage.py:_download_hf():420] Downloading {repo} from the Hugging Face Hub")
    s.add(2.0, f"Fetching {files} files:   0%|          | 0/{files} [00:00<?, ?it/s]")
    for i, frac in enumerate((0.25, 0.5, 0.75, 0.97)):
        done = max(1, int(files * frac))
        el = int(dur * frac)
        s.add(2.0 + dur * frac, f"Fetching {files} files: {int(100 * done / files):3d}%|{'#' * int(10 * done / files):<10}| "
                                f"{done}/{files} [00:{el:02d}<00:{max(0, int(dur - el)):02d}, {done / max(1, el):.2f}it/s]")
    s.add(2.0 + dur, f"Fetching {files} files: 100%|##########| {files}/{files} [00:{int(dur):02d}<00:00, "
                     f"{files / dur:.2f}it/s]")
    s.add(2.5 + dur, f"{{PY}} 1 kserve INFO [storage.py:download():93] Successfully copied {uri} to {dest}")
    s.add(2.6 + dur, f"{{PY}} 1 kserve INFO [initializer-entrypoint:<module>():24] Model download completed in "
                     f"{dur + 1.8:.2f} seconds")
    s.exit_at, s.exit_code = 3.0 + dur, 0
    return s


# --- vLLM ----------------------------------------------------------------------------------------


def _non_default_args(a: VllmArgs) -> str:
    d: dict[str, object] = {"model_tag": a.model}
    for k, v in a.raw.items():
        if k in ("ssl-keyfile", "ssl-certfile", "model", "max-model-len", "dtype", "tensor-parallel-size",
                 "enable-prefix-caching", "max-num-seqs", "port", "host", "served-model-name", "block-size",
                 "gpu-memory-utilization", "enable-prompt-tokens-details", "max-num-batched-tokens"):
            key = k.replace("-", "_")
            if v is True:
                d[key] = True
            else:
                try:
                    d[key] = int(v)
                except (TypeError, ValueError):
                    try:
                        d[key] = float(v)
                    except (TypeError, ValueError):
                        d[key] = v
    return repr(d)


def vllm(args: VllmArgs, model_uri: str | None, r: random.Random, *, compile_factor: float = 1.0,
         broken: bool = False, accelerator: str = "TPU") -> Script:
    s = Script()
    facts = model_facts(model_uri)
    api = "(APIServer pid=1) "
    core = "(EngineCore_DP0 pid=262) "
    max_len = args.max_model_len or facts.max_position
    dtype = {"half": "torch.float16", "float16": "torch.float16", "bfloat16": "torch.bfloat16"}.get(args.dtype,
                                                                                                    "torch.bfloat16")
    s.add(0.0, "INFO {T} [__init__.py:216] Automatically detected platform tpu.")
    s.add(1.8, f"{api}INFO {{T}} [api_server.py:1896] vLLM API server version {VLLM_VERSION}")
    s.add(1.8, f"{api}INFO {{T}} [utils.py:233] non-default args: {_non_default_args(args)}")
    s.add(5.2, f"{api}INFO {{T}} [model.py:547] Resolved architecture: Qwen2ForCausalLM")
    if dtype == "torch.float16":
        s.add(5.2, f"{api}WARNING {{T}} [model.py:1733] Casting torch.bfloat16 to torch.float16.")
    s.add(5.3, f"{api}INFO {{T}} [model.py:1510] Using max model len {max_len}")
    batched = args.max_num_batched_tokens or 8192
    s.add(5.4, f"{api}INFO {{T}} [scheduler.py:205] Chunked prefill is enabled with max_num_batched_tokens={batched}.")
    s.add(5.5, f"{api}INFO {{T}} [tpu.py:114] [TPU] Forcing DYNAMO_ONCE compilation level, and disabling cudagraph.")
    s.add(8.1, f"{core}INFO {{T}} [core.py:648] Waiting for init message from front-end.")
    s.add(8.3, f"{core}INFO {{T}} [core.py:75] Initializing a V1 LLM engine (v{VLLM_VERSION}) with config: "
               f"model='{args.model}', speculative_config=None, tokenizer='{args.model}', skip_tokenizer_init=False, "
               f"tokenizer_mode=auto, revision=None, trust_remote_code=False, dtype={dtype}, "
               f"max_seq_len={max_len}, download_dir=None, load_format=auto, "
               f"tensor_parallel_size={args.tensor_parallel_size}, pipeline_parallel_size=1, "
               "data_parallel_size=1, disable_custom_all_reduce=False, quantization=None, enforce_eager=False, "
               "kv_cache_dtype=auto, device_config=None, seed=0, "
               f"served_model_name={args.served_name}, enable_prefix_caching={args.enable_prefix_caching}, "
               "chunked_prefill_enabled=True, pooler_config=None, compilation_config={\"level\":2,"
               "\"backend\":\"openxla\"}")
    s.add(11.0, f"{core}INFO {{T}} [parallel_state.py:1208] rank 0 in world size {args.tensor_parallel_size} is "
                "assigned as DP rank 0, PP rank 0, TP rank 0, EP rank 0")
    if broken:
        s.add(17.5, f"{core}ERROR {{T}} [core.py:712] EngineCore failed to start.")
        s.add(17.5, f"{core}ERROR {{T}} [core.py:712] Traceback (most recent call last):")
        s.add(17.5, f"{core}ERROR {{T}} [core.py:712]   File \"/opt/vllm/vllm/v1/engine/core.py\", line 703, "
                    "in run_engine_core")
        s.add(17.5, f"{core}ERROR {{T}} [core.py:712] RuntimeError: TPU initialization failed: the image's "
                    "libtpu does not match the TPU runtime (a broken build)")
        s.add(18.0, f"{api}ERROR {{T}} [api_server.py:1920] RuntimeError: Engine core initialization failed. "
                    "See root cause above. Failed core proc(s): {'EngineCore_DP0': 1}")
        s.exit_at, s.exit_code = 18.5, 1
        return s
    s.add(13.5, f"{core}INFO {{T}} [tpu_model_runner.py:1620] Loading model from scratch...")
    s.add(14.2, f"{core}INFO {{T}} [tpu.py:68] Using Pallas V1 backend.")
    shards = facts.shards
    w = r.uniform(8.0, 14.0)
    t = 16.0
    s.add(t, f"Loading safetensors checkpoint shards:   0% Completed | 0/{shards} [00:00<?, ?it/s]")
    for i in range(1, shards + 1):
        el = w * i / shards
        pct = int(100 * i / shards)
        s.add(t + el, f"Loading safetensors checkpoint shards: {pct:3d}% Completed | {i}/{shards} "
                      f"[00:{int(el):02d}<00:{int(w - el):02d},  {w / shards:.2f}s/it]")
    s.add(t + w + 0.01, f"Loading safetensors checkpoint shards: 100% Completed | {shards}/{shards} "
                        f"[00:{int(w):02d}<00:00,  {w / shards:.2f}s/it]")
    s.add(t + w + 0.01, "")
    t += w + 0.4
    s.add(t, f"{core}INFO {{T}} [default_loader.py:267] Loading weights took {w + 0.3:.2f} seconds")
    s.add(t + 2.1, f"{core}INFO {{T}} [tpu_model_runner.py:1632] Model loading took "
                   f"{facts.params_b * 2 * 1e9 / (1 << 30) / max(1, args.tensor_parallel_size):.2f} GiB and "
                   f"{w + 3.4:.2f} seconds")
    t += 8.0
    tokens = kv_cache_tokens(args, facts)
    s.add(t, f"{core}INFO {{T}} [kv_cache_utils.py:1087] {accelerator} KV cache size: {tokens:,} tokens")
    s.add(t + 0.01, f"{core}INFO {{T}} [kv_cache_utils.py:1091] Maximum concurrency for {max_len:,} tokens per "
                    f"request: {tokens / max_len:.2f}x")
    t += 1.2
    compile_total = r.uniform(170.0, 245.0) * max(0.05, compile_factor)
    s.add(t, f"{core}INFO {{T}} [tpu_model_runner.py:1846] Compiling the model with different input shapes.")
    buckets = []
    n = 16
    while n <= batched:
        buckets.append(n)
        n *= 2
    main_part = compile_total * 0.62
    for i, b in enumerate(buckets):
        s.add(t + main_part * (i + 1) / (len(buckets) + 1), f"{core}INFO {{T}} [tpu_model_runner.py:1853]   -- num_tokens: {b}")
    s.add(t + main_part, f"{core}INFO {{T}} [tpu_model_runner.py:1860] Compilation finished in {main_part:.2f} [secs].")
    rest = compile_total - main_part
    for j, what in enumerate(("select_hidden_states", "compute_logits", "structured_decoding", "sample_from_logits",
                              "gather_logprobs")):
        s.add(t + main_part + rest * (j + 0.5) / 5,
              f"{core}INFO {{T}} [tpu_model_runner.py:1870] Compiling {what} with different input shapes.")
    t += compile_total
    s.add(t, f"{core}INFO {{T}} [tpu_model_runner.py:1905] Compiled the model with different input shapes in "
             f"{compile_total:.2f} secs.")
    s.add(t + 2.5, f"{core}INFO {{T}} [core.py:211] init engine (profile, create kv cache, warmup model) took "
                   f"{t + 2.5 - 8.3:.2f} seconds")
    t += 4.0
    s.add(t, f"{api}INFO {{T}} [loggers.py:142] Engine 000: vllm cache_config_info with initialization after "
             f"num_gpu_blocks is: {tokens // args.block_size}")
    s.add(t + 0.3, f"{api}INFO {{T}} [api_server.py:1634] Supported_tasks: ['generate']")
    s.add(t + 0.5, f"{api}INFO {{T}} [api_server.py:1966] Starting vLLM API server 0 on "
                   f"{args.scheme}://0.0.0.0:{args.port}")
    s.add(t + 0.5, f"{api}INFO {{T}} [launcher.py:34] Available routes are:")
    for route, methods in (("/openapi.json", "GET, HEAD"), ("/docs", "GET, HEAD"), ("/health", "GET"),
                           ("/load", "GET"), ("/ping", "POST"), ("/ping", "GET"), ("/tokenize", "POST"),
                           ("/detokenize", "POST"), ("/v1/models", "GET"), ("/version", "GET"),
                           ("/v1/chat/completions", "POST"), ("/v1/completions", "POST"),
                           ("/v1/embeddings", "POST"), ("/metrics", "GET")):
        s.add(t + 0.5, f"{api}INFO {{T}} [launcher.py:42] Route: {route}, Methods: {methods}")
    s.add(t + 0.9, f"{api}INFO:     Started server process [1]")
    s.add(t + 0.9, f"{api}INFO:     Waiting for application startup.")
    s.add(t + 1.0, f"{api}INFO:     Application startup complete.")
    s.add(t + 1.0, f"{api}INFO:     Uvicorn running on {args.scheme}://0.0.0.0:{args.port} (Press CTRL+C to quit)")
    s.up = t + 1.0
    s.shutdown = [f"{api}INFO:     Shutting down", f"{api}INFO:     Waiting for application shutdown.",
                  f"{api}INFO:     Application shutdown complete.", f"{api}INFO:     Finished server process [1]"]
    return s


def vllm_broken(args: VllmArgs, model_uri: str | None, r: random.Random) -> Script:
    return vllm(args, model_uri, r, broken=True)


# --- EPP (llm-d inference scheduler) -------------------------------------------------------------


def _json(level: str, logger: str, msg: str, **kw: object) -> str:
    d = {"level": level, "ts": "{ISO}", "logger": logger, "msg": msg}
    d.update(kw)
    return json.dumps(d)


def epp(pool: str, namespace: str, r: random.Random, *, secure: bool = True) -> Script:
    s = Script()
    s.add(0.3, _json("info", "setup", "Flags processed", flags={
        "grpcPort": 9002, "grpcHealthPort": 9003, "metricsPort": 9090, "poolName": pool,
        "poolNamespace": namespace, "secureServing": secure, "certPath": "/var/run/kserve/tls",
        "refreshMetricsInterval": "50ms", "totalQueuedRequestsMetric": "vllm:num_requests_waiting",
        "kvCacheUsagePercentageMetric": "vllm:kv_cache_usage_perc"}))
    s.add(0.5, _json("info", "setup", "Loaded configuration", plugins=[
        "prefix-cache-scorer (weight 1.0, hashBlockSize 64, maxPrefixBlocksToMatch 256, lruCapacityPerServer 31250)",
        "queue-scorer (weight 0.5)", "max-score-picker"]))
    s.add(0.9, _json("info", "controller-runtime.metrics", "Starting metrics server"))
    s.add(1.0, _json("info", "controller-runtime.metrics", "Serving metrics server", bindAddress=":9090",
                     secure=False))
    s.add(1.2, _json("info", "setup", "Starting Manager"))
    s.add(1.5, _json("info", "", "Starting EventSource", controller="inferencepool",
                     source="kind source: *v1.InferencePool"))
    s.add(1.6, _json("info", "", "Starting EventSource", controller="pod", source="kind source: *v1.Pod"))
    s.add(2.4, _json("info", "", "Starting workers", controller="inferencepool", **{"worker count": 1}))
    s.add(2.4, _json("info", "", "Starting workers", controller="pod", **{"worker count": 1}))
    s.add(2.8, _json("info", "ext-proc", "gRPC server listening", port=9002, tls=secure))
    s.add(2.9, _json("info", "health", "gRPC health server listening", port=9003))
    s.up = 3.0
    return s


# --- Istio ---------------------------------------------------------------------------------------


def istio_proxy(pod: str, namespace: str, ip: str, r: random.Random, *, router: bool = False,
                version: str = "1.27.5") -> Script:
    s = Script()
    kind = "router" if router else "sidecar"
    s.add(0.2, "{ISO}\tinfo\tFLAG: --concurrency=\"2\"")
    s.add(0.2, "{ISO}\tinfo\tFLAG: --domain=\"" + f"{namespace}.svc.cluster.local\"")
    s.add(0.3, "{ISO}\tinfo\t" + f"Version {version}-{r.getrandbits(40):010x}-Clean")
    s.add(0.3, "{ISO}\tinfo\t" + f"Proxy role\tips=[{ip}] type={kind} id={pod}.{namespace} "
               f"domain={namespace}.svc.cluster.local")
    s.add(0.4, "{ISO}\tinfo\tPilot SAN: [istiod.istio-system.svc]")
    s.add(0.5, "{ISO}\tinfo\tsds\tSDS server for workload certificates started, listening on "
               "\"var/run/secrets/workload-spiffe-uds/socket\"")
    s.add(0.6, "{ISO}\tinfo\txdsproxy\tInitializing with upstream address \"istiod.istio-system.svc:15012\" "
               "and cluster \"Kubernetes\"")
    s.add(0.7, "{ISO}\tinfo\tStarting proxy agent")
    s.add(0.8, "{ISO}\tinfo\tEnvoy command: [-c etc/istio/proxy/envoy-rev.json --drain-time-s 45 "
               "--drain-strategy immediate --local-address-ip-version v4 --file-flush-interval-msec 1000 "
               "--disable-hot-restart --allow-unknown-static-fields -l warning --component-log-level misc:error "
               "--concurrency 2]")
    s.add(1.3, "{ISO}\tinfo\tcache\tgenerated new workload certificate\tresourceName=default "
               f"latency={r.randint(40, 120)}ms ttl=23h59m59.{r.randint(100, 999)}s")
    s.add(1.5, "{ISO}\tinfo\tads\tADS: new connection for node:1")
    s.add(1.9, "{ISO}\tinfo\tReadiness succeeded in " + f"{r.uniform(1.2, 1.9):.4f}s")
    s.add(1.9, "{ISO}\tinfo\tEnvoy proxy is ready")
    s.up = 2.0
    s.shutdown = ["{ISO}\tinfo\tStatus server has successfully terminated",
                  "{ISO}\tinfo\tAgent draining Proxy for termination",
                  "{ISO}\tinfo\tGraceful termination period complete, terminating remaining proxies."]
    return s


# --- operators and anything else -----------------------------------------------------------------


def generic(container: str, image: str, r: random.Random) -> Script:
    s = Script()
    s.add(0.4, f"I{{K}}.{r.randint(100000, 999999)}       1 main.go:{r.randint(40, 200)}] "
               f"starting {container} (image {image})")
    s.add(1.6, f"I{{K}}.{r.randint(100000, 999999)}       1 leaderelection.go:257] attempting to acquire leader lease")
    s.add(2.4, f"I{{K}}.{r.randint(100000, 999999)}       1 main.go:{r.randint(200, 400)}] {container} is ready")
    s.up = 2.5
    return s
