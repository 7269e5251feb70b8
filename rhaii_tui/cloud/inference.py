"""Client for the deployed vLLM OpenAI-compatible service, and a `/metrics` scraper.

The service lives behind a base URL, `http://<gateway>/<namespace>/<service>`. Calls:

- `health()`      GET  /health
- `models()`      GET  /v1/models          (the guide's service answers id `/mnt/models`)
- `complete()`    POST /v1/completions     (model `/mnt/models`)
- `chat()`        POST /v1/chat/completions

Each call returns a `CallResult`: HTTP status, latency, the first words of the answer, the
replica that served it when the response says so (the `x-served-by` header; the emulator sets
it, real vLLM behind the gateway does not, so it is optional evidence), and a user-readable
error when something went wrong. Calls never raise for network or HTTP problems; use
`result.raise_for_error()` to get a typed `InferenceError` (`ServiceUnreachable`,
`ServiceTimeout`, `HttpStatusError`, `BadResponse`) whose message says what to do.

Two transports, one behaviour: `InferenceClient` (httpx, blocking; for single calls from a
worker thread or a headless command) and `AsyncInferenceClient` (aiohttp; used by the cache
proof and the throughput engine, see PERF_NOTES.md §1.3 for why aiohttp).

Metrics: `parse_vllm_metrics(text)` reads Prometheus text from one replica's `/metrics`:
`vllm:prefix_cache_queries` / `vllm:prefix_cache_hits` (with or without the `_total` suffix,
and the older `vllm:gpu_prefix_cache_*` spelling), the V0 `vllm:gpu_prefix_cache_hit_rate`
gauge, `vllm:prompt_tokens_total`, `vllm:request_success_total`, and the labels of
`vllm:cache_config_info` (`block_size`, `enable_prefix_caching`). Counters count tokens.

No Textual here (layering rule). Header values (which may carry a token) never appear in
messages or results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

_retry_log = logging.getLogger("rhaii_tui.cloud.retry")

MODEL_ID = "/mnt/models"
SERVED_BY_HEADER = "x-served-by"
DEFAULT_TIMEOUT_S = 30.0
FIRST_WORDS = 12
_BODY_EXCERPT = 200


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


class InferenceError(Exception):
    """A call to the inference service failed. `str(e)` is a message for the user (what happened
    and what to do); `kind` is one of: connection, timeout, http, protocol."""

    kind = "protocol"

    def __init__(self, message: str, *, url: str = "", status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ServiceUnreachable(InferenceError):
    """Connection refused, DNS failure, connection reset, TLS failure."""

    kind = "connection"


class ServiceTimeout(InferenceError):
    """No (complete) answer within the timeout."""

    kind = "timeout"


class HttpStatusError(InferenceError):
    """The service answered with a non-2xx status."""

    kind = "http"


class BadResponse(InferenceError):
    """A 2xx answer that is not what an OpenAI-compatible vLLM returns (or not /mnt/models)."""

    kind = "protocol"


class ApiServerError(InferenceError):
    """The Kubernetes API server itself answered an error (a `kind: Status` body) to a request
    through its pod or service proxy: the vLLM service was not reached (or did not answer it)."""

    kind = "apiserver"


_ERROR_TYPES = {c.kind: c for c in (ServiceUnreachable, ServiceTimeout, HttpStatusError, BadResponse, ApiServerError)}


def safe_url(url: str) -> str:
    """The URL without user:password and without the query string (either may hold a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _http_hint(status: int) -> str:
    if status == 404:
        return ("The route does not exist: check the namespace and service in the base URL, and that "
                "the HTTPRoute for this path is applied (/health and /v1/models need the health/models route).")
    if status in (502, 503, 504):
        return ("No ready backend answered behind the gateway: check that the vLLM pods are Ready (1/1) "
                "and the EPP scheduler pod is running (step 6).")
    if status in (401, 403):
        return "The gateway refused the request: check the credentials or the AuthorizationPolicy in front of it."
    if status == 400:
        return "The server rejected the request (bad model name or too long a prompt for max-model-len?)."
    if status == 429:
        return "The service is rate limiting or its queue is full: lower the load and retry."
    if 500 <= status < 600:
        return "The server failed: read the vLLM pod's log for the error."
    return "Unexpected answer from the service."


def connection_error(url: str, detail: str = "") -> ServiceUnreachable:
    d = f" ({detail})" if detail else ""
    return ServiceUnreachable(
        f"Could not connect to {safe_url(url)}{d}. Check the gateway address in the base URL, that the "
        "gateway has an address (step 4), and that the service is deployed and Ready (step 5).",
        url=safe_url(url))


def unsendable(url: str, e: BaseException) -> InferenceError:
    # the exception text may quote the URL with its credentials: name the type only
    return BadResponse(f"Could not send a request to {safe_url(url)} ({type(e).__name__}). Check the base URL: "
                       "it should look like http://<gateway address>/<namespace>/<service>.", url=safe_url(url))


def timeout_error(url: str, timeout_s: float) -> ServiceTimeout:
    return ServiceTimeout(
        f"No answer from {safe_url(url)} within {timeout_s:g} s. The replicas may still be compiling "
        "(first requests on TPU can take minutes) or be overloaded: wait and retry, or raise the timeout.",
        url=safe_url(url))


def apiserver_error(url: str, status: int, body: bytes | str = b"", attempts: int = 1) -> ApiServerError:
    """The Kubernetes API server's own error on a proxied request (never blamed on vLLM)."""
    from .retry import kube_status_message

    msg = kube_status_message(body)
    after = f" after {attempts} attempts" if attempts > 1 else ""
    tail = f": {msg}" if msg else ""
    if status == 429:
        hint = ("The cluster's control plane is rate limiting or overloaded; the vLLM service was not reached. "
                "Wait a minute and retry.")
        what = "refused the request"
    elif "trying to reach" in msg or "no endpoints" in msg or "dial tcp" in msg:
        hint = ("The API server could not reach the pod: check that the vLLM pods are Running and Ready (step 5) "
                "and that no NetworkPolicy blocks the control plane.")
        what = "could not forward the request"
    else:
        hint = ("The cluster's control plane failed, not the vLLM service: retry in a moment (it may be busy or "
                "upgrading).")
        what = "failed"
    return ApiServerError(f"The Kubernetes API server {what} (HTTP {status}{after}{tail}) on {safe_url(url)}. {hint}",
                          url=safe_url(url), status=status)


def status_error(url: str, status: int, body: bytes | str = b"", attempts: int = 1) -> InferenceError:
    """A non-2xx answer: the API server's own error when the body is a Kubernetes Status, else the
    service's."""
    from .retry import is_kube_status_body

    if is_kube_status_body(body):
        return apiserver_error(url, status, body, attempts)
    excerpt = _excerpt(body)
    tail = f": {excerpt}" if excerpt else ""
    return HttpStatusError(f"{safe_url(url)} answered HTTP {status}{tail}. {_http_hint(status)}",
                           url=safe_url(url), status=status)


def _excerpt(body: bytes | str, limit: int = _BODY_EXCERPT) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    try:  # vLLM / OpenAI error bodies: {"error": {"message": ...}} or {"message": ...} or {"detail": ...}
        doc = json.loads(text)
        if isinstance(doc, dict):
            err = doc.get("error")
            if isinstance(err, dict) and err.get("message"):
                text = str(err["message"])
            elif isinstance(err, str):
                text = err
            elif doc.get("message"):
                text = str(doc["message"])
            elif doc.get("detail"):
                text = str(doc["detail"])
    except ValueError:
        pass
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    """One call to the service. JSON-serialisable through `to_dict()`."""

    call: str                      # health | models | completion | chat | metrics
    url: str                       # without credentials or query
    ok: bool
    status: int | None             # HTTP status, None when no answer came back
    latency_ms: float              # request sent -> body fully read
    text: str = ""                 # first words of the answer (or of the model list)
    served_by: str | None = None   # the x-served-by header, when the response has it
    model: str | None = None
    models: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    cached_tokens: int | None = None   # usage.prompt_tokens_details.cached_tokens (needs --enable-prompt-tokens-details)
    completion_tokens: int | None = None
    error_kind: str | None = None  # connection | timeout | http | protocol | apiserver
    error: str | None = None       # message for the user
    retries: int = 0               # transient API-server / connection failures retried before this result

    def raise_for_error(self) -> "CallResult":
        if self.ok:
            return self
        cls = _ERROR_TYPES.get(self.error_kind or "protocol", InferenceError)
        raise cls(self.error or "the call failed", url=self.url, status=self.status)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_words(text: str, n: int = FIRST_WORDS, max_chars: int = 80) -> str:
    words = text.split()
    out = " ".join(words[:n])
    if len(words) > n:
        out += " …"
    if len(out) > max_chars:
        out = out[: max_chars - 1] + "…"
    return out


def _fail(call: str, url: str, latency_ms: float, err: InferenceError, status: int | None = None,
          served_by: str | None = None) -> CallResult:
    return CallResult(call=call, url=safe_url(url), ok=False, status=status, latency_ms=latency_ms,
                      served_by=served_by, error_kind=err.kind, error=str(err))


def interpret(call: str, url: str, status: int, body: bytes, latency_ms: float,
              served_by: str | None, *, expect_model: str = MODEL_ID, attempts: int = 1) -> CallResult:
    """Turn an HTTP answer into a CallResult (shared by both transports)."""
    if not 200 <= status < 300:
        return _fail(call, url, latency_ms, status_error(url, status, body, attempts), status, served_by)
    res = CallResult(call=call, url=safe_url(url), ok=True, status=status, latency_ms=latency_ms,
                     served_by=served_by)
    if call == "health":
        res.text = first_words(body.decode("utf-8", "replace")) if body else ""
        return res
    try:
        doc = json.loads(body)
    except ValueError:
        err = BadResponse(f"{safe_url(url)} answered {status} but not with JSON: {_excerpt(body, 80)!r}. "
                          "Is the base URL pointing at the vLLM service (http://<gateway>/<namespace>/<service>)?",
                          url=safe_url(url), status=status)
        return _fail(call, url, latency_ms, err, status, served_by)
    if not isinstance(doc, dict):
        return _fail(call, url, latency_ms, BadResponse(
            f"{safe_url(url)} answered {status} with unexpected JSON.", url=safe_url(url), status=status),
            status, served_by)
    if call == "models":
        ids = [str(m.get("id")) for m in doc.get("data") or [] if isinstance(m, dict) and m.get("id")]
        res.models = ids
        res.text = ", ".join(ids)
        res.model = ids[0] if ids else None
        if expect_model and expect_model not in ids:
            err = BadResponse(
                f"The service lists models {ids or 'none'}, not {expect_model}. The LLMInferenceService "
                f"should serve its model at {expect_model}: check the model URI and that this base URL is "
                "the right service.", url=safe_url(url), status=status)
            res.ok, res.error_kind, res.error = False, err.kind, str(err)
        return res
    # completion / chat
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        err = BadResponse(f"{safe_url(url)} answered {status} without \"choices\": not an OpenAI-compatible "
                          "completion. Is the base URL the vLLM service?", url=safe_url(url), status=status)
        return _fail(call, url, latency_ms, err, status, served_by)
    c0 = choices[0] if isinstance(choices[0], dict) else {}
    if call == "chat":
        msg = c0.get("message") or {}
        text = msg.get("content") if isinstance(msg, dict) else None
    else:
        text = c0.get("text")
    res.text = first_words(str(text or ""))
    res.model = doc.get("model")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    res.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
    res.completion_tokens = _int_or_none(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        res.cached_tokens = _int_or_none(details.get("cached_tokens"))
    return res


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def completion_body(prompt: str, max_tokens: int = 10, model: str = MODEL_ID, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    body.update(extra)
    return body


def chat_body(messages: str | list[dict[str, str]], max_tokens: int = 10, model: str = MODEL_ID,
              **extra: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    body.update(extra)
    return body


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def check_base_url(base_url: str) -> str | None:
    """None if `base_url` looks usable, else a message saying what is wrong."""
    try:
        parts = urlsplit(base_url)
    except ValueError:
        return f"{base_url!r} is not a URL. Expected http://<gateway address>/<namespace>/<service>."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (f"{safe_url(base_url)!r} is not an http(s) URL. "
                "Expected http://<gateway address>/<namespace>/<service>.")
    return None


# --------------------------------------------------------------------------------------------
# blocking client (httpx)
# --------------------------------------------------------------------------------------------


class InferenceClient:
    """Blocking client (httpx) for single calls. Use from a worker thread, never the UI thread.

    `headers` are sent with every request (e.g. an Authorization header); they never appear in
    results or messages. `verify` is httpx's TLS verify (a CA bundle path, an SSLContext, or bool).
    """

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 headers: Mapping[str, str] | None = None, verify: Any = True, model: str = MODEL_ID,
                 api_proxy: bool = False, retry_policy: Any = None, stats: Any = None):
        import httpx

        from .retry import DEFAULT_POLICY

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.model = model
        self.api_proxy = api_proxy          # through the Kubernetes API server's proxy: its failures are retried
        self.retry_policy = retry_policy or DEFAULT_POLICY
        self.stats = stats                  # a retry.RetryStats to count the retries in, or None
        self._httpx = httpx
        self._client = httpx.Client(timeout=timeout_s, headers=dict(headers or {}), verify=verify)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, call: str, method: str, url: str, body: dict[str, Any] | None = None) -> CallResult:
        """One call under the retry policy: the Kubernetes API server's own transient errors (a
        Status body with 429/5xx) are retried, and with `api_proxy` also dropped connections to
        it; the service's own answers never are (they are what is being measured)."""
        t_first = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            res, verdict = self._call_once(call, method, url, body, attempt)
            if not verdict.retry:
                break
            pause = self.retry_policy.pause(attempt - 1, verdict.retry_after)
            if attempt >= self.retry_policy.attempts or \
                    time.monotonic() - t_first + pause > self.retry_policy.budget_s:
                break
            if self.stats is not None:
                self.stats.add(verdict.what)
            _retry_log.info("%s %s: transient failure (%s), retry %d in %.2fs", method, safe_url(url), verdict.what,
                            attempt, pause)
            time.sleep(pause)
        res.retries = attempt - 1
        return res

    def _call_once(self, call: str, method: str, url: str, body: dict[str, Any] | None,
                   attempt: int) -> tuple[CallResult, Any]:
        from . import retry as _retry

        httpx = self._httpx
        t0 = time.perf_counter()
        try:
            r = self._client.request(method, url, json=body)
            latency = (time.perf_counter() - t0) * 1000
        except httpx.TimeoutException as e:
            v = _retry.Verdict(True, None, "connect timeout") if self.api_proxy and \
                isinstance(e, httpx.ConnectTimeout) else _retry.NO
            return _fail(call, url, (time.perf_counter() - t0) * 1000, timeout_error(url, self.timeout_s)), v
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            v = _retry.Verdict(True, None, "connection") if self.api_proxy else _retry.NO
            return _fail(call, url, (time.perf_counter() - t0) * 1000, connection_error(url, _short(e))), v
        except httpx.HTTPError as e:
            return _fail(call, url, (time.perf_counter() - t0) * 1000, connection_error(url, _short(e))), _retry.NO
        except Exception as e:  # noqa: BLE001 - invalid URL and the like: a message, never a traceback
            return _fail(call, url, (time.perf_counter() - t0) * 1000, unsendable(url, e)), _retry.NO
        v = _proxy_verdict(r.status_code, r.headers, r.content)
        return interpret(call, url, r.status_code, r.content, latency, r.headers.get(SERVED_BY_HEADER),
                         expect_model=self.model, attempts=attempt), v

    def health(self) -> CallResult:
        return self._call("health", "GET", _join(self.base_url, "/health"))

    def models(self) -> CallResult:
        return self._call("models", "GET", _join(self.base_url, "/v1/models"))

    def complete(self, prompt: str, max_tokens: int = 10, **extra: Any) -> CallResult:
        return self._call("completion", "POST", _join(self.base_url, "/v1/completions"),
                          completion_body(prompt, max_tokens, self.model, **extra))

    def chat(self, messages: str | list[dict[str, str]], max_tokens: int = 10, **extra: Any) -> CallResult:
        return self._call("chat", "POST", _join(self.base_url, "/v1/chat/completions"),
                          chat_body(messages, max_tokens, self.model, **extra))

    def metrics_text(self, url: str) -> str:
        """GET a replica's /metrics (any URL), under the same retry policy as the calls. Raises
        InferenceError."""
        from . import retry as _retry

        httpx = self._httpx

        def once() -> str:
            r = self._client.get(url)
            if not 200 <= r.status_code < 300:
                raise _HttpAnswer(r.status_code, r.headers, r.content)
            return r.text

        def classify(e: BaseException) -> Any:
            if isinstance(e, _HttpAnswer):
                return _proxy_verdict(e.status, e.headers, e.body)
            if self.api_proxy and isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                                                 httpx.ReadError, httpx.WriteError)):
                return _retry.Verdict(True, None, "connection")
            return _retry.NO

        try:
            return _retry.call(once, classify, policy=self.retry_policy, stats=self.stats, what="GET /metrics")
        except _HttpAnswer as e:
            raise status_error(url, e.status, e.body, _retry.attempts_of(e)) from None
        except httpx.TimeoutException:
            raise timeout_error(url, self.timeout_s) from None
        except httpx.HTTPError as e:
            raise connection_error(url, _short(e)) from None
        except Exception as e:  # noqa: BLE001
            raise unsendable(url, e) from None

    def metrics(self, url: str) -> "VllmMetrics":
        return parse_vllm_metrics(self.metrics_text(url))


class _HttpAnswer(Exception):
    """A non-2xx answer inside a retry loop (carries what the verdict and the message need)."""

    def __init__(self, status: int, headers: Any, body: bytes):
        super().__init__(f"HTTP {status}")
        self.status, self.headers, self.body = status, headers, body


def _proxy_verdict(status: int, headers: Any, body: bytes) -> Any:
    """Retry an answer only when it is the Kubernetes API server's own transient error (a Status
    body with 429/5xx, e.g. on the pod proxy): a service's own error is a result, not a glitch."""
    from . import retry as _retry

    if status in _retry.TRANSIENT_STATUS and _retry.is_kube_status_body(body):
        v = _retry.http_verdict(status, headers, body)
        return _retry.Verdict(True, v.retry_after, f"apiserver {status}")
    return _retry.NO


def _short(e: BaseException) -> str:
    """A short, secret-free description of a transport exception (no traceback, no headers)."""
    import socket
    import ssl as _ssl

    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in seen and len(seen) < 6:
        seen.append(cur)
        cur = getattr(cur, "os_error", None) or cur.__cause__ or cur.__context__
    for x in seen:
        if isinstance(x, ConnectionRefusedError):
            return "connection refused"
        if isinstance(x, socket.gaierror):
            return "host name not found"
        if isinstance(x, (_ssl.SSLError, _ssl.CertificateError)) or "Certificate" in type(x).__name__ \
                or "SSL" in type(x).__name__:
            return "TLS error: " + (str(x).split("\n")[0][:120] or type(x).__name__)
        if isinstance(x, ConnectionResetError):
            return "connection reset"
    text = " ".join(str(x) for x in seen).lower()
    if "refused" in text or "connect call failed" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text or "nodename nor servname" in text:
        return "host name not found"
    if "reset" in text:
        return "connection reset"
    if "disconnected" in text:
        return "server closed the connection"
    return type(e).__name__


# --------------------------------------------------------------------------------------------
# async client (aiohttp)
# --------------------------------------------------------------------------------------------


class AsyncInferenceClient:
    """Async client (aiohttp). Use as `async with AsyncInferenceClient(url) as c: await c.health()`.

    Pass `session` to share a session (it is then not closed here). `ssl` is aiohttp's ssl
    argument (an SSLContext, False to skip verification, or None for the default).
    """

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 headers: Mapping[str, str] | None = None, ssl: Any = None, model: str = MODEL_ID,
                 session: Any = None, api_proxy: bool = False, retry_policy: Any = None, stats: Any = None):
        from .retry import MEASUREMENT_POLICY, RetryStats

        self.api_proxy = api_proxy      # through the Kubernetes API server's proxy: its failures are retried
        self.retry_policy = retry_policy or MEASUREMENT_POLICY
        self.stats = stats if stats is not None else RetryStats()
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.model = model
        self._headers = dict(headers or {})
        self._ssl = ssl
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> "AsyncInferenceClient":
        self._ensure()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _ensure(self):
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl is not None else True),
                headers=self._headers, trust_env=True)  # HTTPS_PROXY / NO_PROXY, as the other clients
        return self._session

    @property
    def session(self):
        return self._ensure()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def request(self, call: str, method: str, url: str, body: dict[str, Any] | None = None,
                      *, timeout_s: float | None = None) -> CallResult:
        """One call under the retry policy (see `InferenceClient._call`): the API server's own
        transient errors are retried and counted in `stats` and `CallResult.retries`, never as a
        failure of the service."""
        t_first = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            res, verdict = await self._request_once(call, method, url, body, timeout_s, attempt)
            if not verdict.retry:
                break
            pause = self.retry_policy.pause(attempt - 1, verdict.retry_after)
            if attempt >= self.retry_policy.attempts or \
                    time.monotonic() - t_first + pause > self.retry_policy.budget_s:
                break
            self.stats.add(verdict.what)
            _retry_log.info("%s %s: transient failure (%s), retry %d in %.2fs", method, safe_url(url), verdict.what,
                            attempt, pause)
            await asyncio.sleep(pause)
        res.retries = attempt - 1
        return res

    async def _request_once(self, call: str, method: str, url: str, body: dict[str, Any] | None,
                            timeout_s: float | None, attempt: int) -> tuple[CallResult, Any]:
        import aiohttp

        from . import retry as _retry

        session = self._ensure()
        tmo = timeout_s or self.timeout_s
        headers = None if self._own_session else (self._headers or None)
        conn_v = _retry.Verdict(True, None, "connection") if self.api_proxy else _retry.NO
        t0 = time.perf_counter()
        try:
            async with session.request(method, url, json=body, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=tmo)) as r:
                data = await r.read()
                latency = (time.perf_counter() - t0) * 1000
                return interpret(call, url, r.status, data, latency, r.headers.get(SERVED_BY_HEADER),
                                 expect_model=self.model, attempts=attempt), _proxy_verdict(r.status, r.headers, data)
        except asyncio.TimeoutError:
            return _fail(call, url, (time.perf_counter() - t0) * 1000, timeout_error(url, tmo)), _retry.NO
        except aiohttp.ClientError as e:
            return _fail(call, url, (time.perf_counter() - t0) * 1000, connection_error(url, _short(e))), conn_v
        except OSError as e:
            return _fail(call, url, (time.perf_counter() - t0) * 1000, connection_error(url, _short(e))), conn_v
        except (ValueError, TypeError) as e:  # invalid URL, conflicting credentials, ...
            return _fail(call, url, (time.perf_counter() - t0) * 1000, unsendable(url, e)), _retry.NO

    async def health(self) -> CallResult:
        return await self.request("health", "GET", _join(self.base_url, "/health"))

    async def models(self) -> CallResult:
        return await self.request("models", "GET", _join(self.base_url, "/v1/models"))

    async def complete(self, prompt: str, max_tokens: int = 10, **extra: Any) -> CallResult:
        return await self.request("completion", "POST", _join(self.base_url, "/v1/completions"),
                                  completion_body(prompt, max_tokens, self.model, **extra))

    async def chat(self, messages: str | list[dict[str, str]], max_tokens: int = 10, **extra: Any) -> CallResult:
        return await self.request("chat", "POST", _join(self.base_url, "/v1/chat/completions"),
                                  chat_body(messages, max_tokens, self.model, **extra))

    async def metrics_text(self, url: str, *, timeout_s: float | None = None) -> str:
        """GET any /metrics URL with this client's session. Raises InferenceError."""
        return await fetch_text(self._ensure(), url, timeout_s=timeout_s or min(self.timeout_s, 15.0),
                                headers=None if self._own_session else (self._headers or None),
                                api_proxy=self.api_proxy, stats=self.stats, policy=self.retry_policy)

    async def metrics(self, url: str) -> "VllmMetrics":
        return parse_vllm_metrics(await self.metrics_text(url))


async def fetch_text(session: Any, url: str, *, timeout_s: float = 15.0,
                     headers: Mapping[str, str] | None = None, ssl: Any = None, api_proxy: bool = False,
                     stats: Any = None, policy: Any = None) -> str:
    """GET `url` on an aiohttp session and return the body text; raises InferenceError.
    `ssl`: aiohttp's per-request ssl argument (None = the session's default). The API server's own
    transient errors are retried (and with `api_proxy` dropped connections too), counted in `stats`."""
    import aiohttp

    from . import retry as _retry

    kw: dict[str, Any] = {} if ssl is None else {"ssl": ssl}

    async def once() -> str:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s), **kw) as r:
            data = await r.read()
            if not 200 <= r.status < 300:
                raise _HttpAnswer(r.status, r.headers, data)
            return data.decode("utf-8", "replace")

    def classify(e: BaseException) -> Any:
        if isinstance(e, _HttpAnswer):
            return _proxy_verdict(e.status, e.headers, e.body)
        if api_proxy and isinstance(e, (aiohttp.ClientConnectionError, OSError)) and \
                not isinstance(e, asyncio.TimeoutError):
            return _retry.Verdict(True, None, "connection")
        return _retry.NO

    try:
        return await _retry.acall(once, classify, policy=policy or _retry.MEASUREMENT_POLICY, stats=stats,
                                  what="GET /metrics")
    except _HttpAnswer as e:
        raise status_error(url, e.status, e.body, _retry.attempts_of(e)) from None
    except asyncio.TimeoutError:
        raise timeout_error(url, timeout_s) from None
    except (aiohttp.ClientError, OSError) as e:
        raise connection_error(url, _short(e)) from None
    except (ValueError, TypeError) as e:
        raise unsendable(url, e) from None


# --------------------------------------------------------------------------------------------
# Prometheus text / vLLM metrics
# --------------------------------------------------------------------------------------------

# name{labels} value [timestamp]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v: str) -> str:
    return v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (name, labels, value). Comments and malformed
    lines are skipped."""
    out: list[tuple[str, dict[str, str], float]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, lbl, val = m.group(1), m.group(2), m.group(3)
        labels: dict[str, str] = {}
        if lbl:
            inner = lbl[1:-1]
            pos = 0
            while pos < len(inner):
                lm = _LABEL.match(inner, pos)
                if not lm:
                    break
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        try:
            value = float(val)
        except ValueError:
            continue
        out.append((name, labels, value))
    return out


@dataclass
class VllmMetrics:
    """What one replica's /metrics says about its prefix cache. Counters are in tokens and are
    summed over label sets (engines, models). None = the metric is not exported."""

    prefix_cache_queries: float | None = None
    prefix_cache_hits: float | None = None
    counter_spelling: str | None = None        # "vllm:prefix_cache_*" or "vllm:gpu_prefix_cache_*"
    hit_rate_gauge: float | None = None        # V0 vllm:gpu_prefix_cache_hit_rate (no deltas possible)
    block_size: int | None = None              # from vllm:cache_config_info
    prefix_caching_enabled: bool | None = None  # from vllm:cache_config_info
    cache_config: dict[str, str] = field(default_factory=dict)
    prompt_tokens: float | None = None         # vllm:prompt_tokens_total
    requests_succeeded: float | None = None    # vllm:request_success_total (all finish reasons)

    @property
    def has_counters(self) -> bool:
        return self.prefix_cache_queries is not None and self.prefix_cache_hits is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_QUERIES = ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")
_HITS = ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")


def _truthy(v: str | None) -> bool | None:
    if v is None:
        return None
    s = v.strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off", "none", ""):
        return False
    return None


def parse_vllm_metrics(text: str) -> VllmMetrics:
    m = VllmMetrics()
    sums: dict[str, float] = {}
    for name, labels, value in parse_prometheus(text):
        base = name[:-6] if name.endswith("_total") else name
        if base in _QUERIES or base in _HITS or base in ("vllm:prompt_tokens", "vllm:request_success"):
            if math.isnan(value):
                continue
            sums[base] = sums.get(base, 0.0) + value
        elif name == "vllm:gpu_prefix_cache_hit_rate":
            m.hit_rate_gauge = value
        elif name == "vllm:cache_config_info":
            m.cache_config = dict(labels)
            bs = labels.get("block_size")
            if bs is not None:
                try:
                    m.block_size = int(float(bs))
                except ValueError:
                    pass
            m.prefix_caching_enabled = _truthy(labels.get("enable_prefix_caching"))
    for q, h in zip(_QUERIES, _HITS):
        if q in sums and h in sums:
            m.prefix_cache_queries, m.prefix_cache_hits = sums[q], sums[h]
            m.counter_spelling = q.replace("_queries", "_*")
            break
    m.prompt_tokens = sums.get("vllm:prompt_tokens")
    m.requests_succeeded = sums.get("vllm:request_success")
    return m


MetricsFetch = Callable[[], Awaitable[str]]
