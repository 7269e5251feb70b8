"""One retry policy for every call the wizard makes to Kubernetes and Google.

What is retried: HTTP 429 and 5xx (500, 502, 503, 504), dropped/reset connections and timeouts,
with exponential back-off and full jitter, honouring the server's `Retry-After` (seconds or an
HTTP date; capped), and bounded in time (`RetryPolicy.budget_s`) as well as in attempts. What is
not: anything else (4xx means the request itself is wrong; retrying cannot help).

- `RetryPolicy`: the numbers (attempts, first delay, cap, time budget, Retry-After cap).
- `call(fn, classify=..., policy=...)`: blocking; `acall(...)` the asyncio twin. `classify(exc)`
  returns a `Verdict` (retry or not, the server's Retry-After). The exception that finally
  escapes carries `retry_attempts` (how many attempts were made) so its message can say so.
- `RetryStats`: a counter the measurements pass down to report how many retries they needed.
- `is_kube_status_body(body)`: the answer is a Kubernetes `Status` document, i.e. the API server's
  own error (a proxied backend answers with its own body, never `kind: Status`): on the pod and
  service proxy this tells "the API server refused" from "the service answered an error".

No Textual, no cloud client imports here (the callers bring their own exceptions).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    # 6 tries: at a 25% fault rate a call still fails in only 1 of ~4000; an unreachable server is
    # reported after ~4 s on average (back-off ceilings 0.25+0.5+1+2+4 s, full jitter)
    attempts: int = 6             # tries in all (the first one included)
    base_delay_s: float = 0.25    # the first back-off; doubles after each failure
    max_delay_s: float = 4.0      # one back-off never exceeds this
    budget_s: float = 30.0        # no retry whose pause would end later than this after the first try
    retry_after_cap_s: float = 20.0  # a server's Retry-After longer than this is cut to it
    # an attempt that took this long to fail hit a timeout (a resolver's, a connect's): the stack
    # below already waited and retried; after two such failures in a row the call gives up (an
    # offline machine hears so in ~10 s, not after the whole budget)
    slow_failure_s: float = 4.0

    def backoff(self, retry_index: int, rng: random.Random | None = None) -> float:
        """The pause before retry number `retry_index` (0-based): full jitter over an exponential
        ceiling, never below a tenth of the base (no hot loop)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** retry_index))
        r = (rng or _rng).random()
        return max(self.base_delay_s / 10, ceiling * r)

    def pause(self, retry_index: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """The pause before a retry: the server's Retry-After when it gave one (plus a little
        jitter so that many clients do not come back at the same instant), else the back-off."""
        if retry_after is not None and retry_after >= 0:
            ra = min(retry_after, self.retry_after_cap_s)
            return ra + (rng or _rng).uniform(0, min(1.0, self.base_delay_s))
        return self.backoff(retry_index, rng)


DEFAULT_POLICY = RetryPolicy()
# a load test / cache proof must not stall for long on one request: shorter pauses and a smaller
# budget, but more tries (a proof makes ~100 proxied /metrics reads; each must get through)
MEASUREMENT_POLICY = RetryPolicy(attempts=8, base_delay_s=0.1, max_delay_s=2.0, budget_s=20.0, retry_after_cap_s=5.0)

_rng = random.Random()


@dataclass(frozen=True)
class Verdict:
    retry: bool
    retry_after: float | None = None
    what: str = ""     # a short name for the log: "429", "503", "connection reset", ...


NO = Verdict(False)


@dataclass
class RetryStats:
    """How many retries a piece of work needed (thread-safe counter; by reason)."""

    retries: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, reason: str = "") -> None:
        with self._lock:
            self.retries += 1
            key = reason or "other"
            self.by_reason[key] = self.by_reason.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"retries": self.retries, "by_reason": dict(sorted(self.by_reason.items()))}


# --- Retry-After ----------------------------------------------------------------------------------


def parse_retry_after(value: Any, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP date. None if absent or
    unreadable."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return max(0.0, dt.timestamp() - (time.time() if now is None else now))


def header(headers: Any, name: str) -> Any:
    """A header from a dict, an HTTPHeaderDict, httpx/aiohttp headers or a urllib3 response."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    v = getter(name)
    if v is None and isinstance(headers, dict):
        low = name.lower()
        for k, val in headers.items():
            if str(k).lower() == low:
                return val
    return v


def status_retry_after(body: Any) -> float | None:
    """`details.retryAfterSeconds` of a Kubernetes Status body (the API server sets both it and
    the Retry-After header on a 429)."""
    doc = _json_doc(body)
    if not isinstance(doc, dict):
        return None
    details = doc.get("details")
    if isinstance(details, dict):
        return parse_retry_after(details.get("retryAfterSeconds"))
    return None


def _json_doc(body: Any) -> Any:
    if isinstance(body, (dict, list)):
        return body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if not isinstance(body, str) or not body.lstrip().startswith("{"):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def is_kube_status_body(body: Any) -> bool:
    """The body is a Kubernetes `Status` (the API server's own answer, not a proxied backend's)."""
    doc = _json_doc(body)
    return isinstance(doc, dict) and doc.get("kind") == "Status" and \
        str(doc.get("apiVersion", "v1")).startswith("v1")


def kube_status_message(body: Any) -> str:
    doc = _json_doc(body)
    if isinstance(doc, dict):
        return " ".join(str(doc.get("message") or doc.get("reason") or "").split())[:300]
    return ""


# --- the loop ---------------------------------------------------------------------------------------


def _deadline_left(policy: RetryPolicy, t0: float, pause: float) -> bool:
    return time.monotonic() - t0 + pause <= policy.budget_s


class _Tries:
    """One call's attempts: when it began, when the current attempt began, slow failures in a row."""

    def __init__(self) -> None:
        self.t0 = self.began = time.monotonic()
        self.n = 0
        self.slow_in_a_row = 0

    def next(self) -> None:
        self.n += 1
        self.began = time.monotonic()


def _pause_or_raise(e: BaseException, tries: _Tries, classify: Callable[[BaseException], Verdict],
                    policy: RetryPolicy, stats: "RetryStats | None", what: str) -> float:
    """After attempt `tries.n` failed with `e` (inside its `except`): how long to wait before the next
    one, or re-raise `e` (marked with its attempts) when it is not transient or the policy is spent."""
    attempt = tries.n
    v = classify(e)
    pause = policy.pause(attempt - 1, v.retry_after) if v.retry else 0.0
    slow = time.monotonic() - tries.began >= policy.slow_failure_s
    tries.slow_in_a_row = tries.slow_in_a_row + 1 if slow else 0
    if (not v.retry or attempt >= policy.attempts or tries.slow_in_a_row >= 2
            or not _deadline_left(policy, tries.t0, pause)):
        _mark(e, attempt)
        raise e
    if stats is not None:
        stats.add(v.what)
    log.info("%s: transient failure (%s), retry %d in %.2fs", what, v.what or type(e).__name__, attempt, pause)
    return pause


def call(fn: Callable[[], Any], classify: Callable[[BaseException], Verdict], *,
         policy: RetryPolicy = DEFAULT_POLICY, stats: RetryStats | None = None,
         sleep: Callable[[float], Any] | None = None, what: str = "request") -> Any:
    """Call fn; on an exception `classify` says is transient, wait and call again, within the
    policy's attempts and time budget. The last exception escapes with `retry_attempts` set."""
    tries = _Tries()
    while True:
        tries.next()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            pause = _pause_or_raise(e, tries, classify, policy, stats, what)
            (sleep or time.sleep)(pause)


async def acall(fn: Callable[[], Awaitable[Any]], classify: Callable[[BaseException], Verdict], *,
                policy: RetryPolicy = DEFAULT_POLICY, stats: RetryStats | None = None,
                what: str = "request") -> Any:
    """The asyncio twin of `call`."""
    tries = _Tries()
    while True:
        tries.next()
        try:
            return await fn()
        except Exception as e:  # noqa: BLE001
            pause = _pause_or_raise(e, tries, classify, policy, stats, what)
            await asyncio.sleep(pause)


def attempts_of(exc: BaseException) -> int:
    return int(getattr(exc, "retry_attempts", 1) or 1)


def attempts_text(exc: BaseException) -> str:
    n = attempts_of(exc)
    return f" after {n} attempts" if n > 1 else ""


def _mark(e: BaseException, attempts: int) -> None:
    try:
        e.retry_attempts = attempts  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - some exception types refuse new attributes
        pass


# --- classifiers ------------------------------------------------------------------------------------

_CONNECTION_NAMES = ("ProtocolError", "MaxRetryError", "NewConnectionError", "ReadTimeoutError", "ConnectTimeoutError",
                     "RemoteDisconnected", "IncompleteRead", "ConnectError", "ConnectTimeout", "ReadTimeout",
                     "ReadError", "WriteError", "RemoteProtocolError", "PoolTimeout", "ServerDisconnectedError",
                     "ClientConnectorError", "ClientOSError")


def is_connection_failure(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError)) or exc.__class__.__name__ in _CONNECTION_NAMES


def http_verdict(status: int | None, headers: Any = None, body: Any = None) -> Verdict:
    """An HTTP answer: retry on 429/5xx with the server's Retry-After (header, else a Kubernetes
    Status body's details.retryAfterSeconds)."""
    if not isinstance(status, int) or status not in TRANSIENT_STATUS:
        return NO
    ra = parse_retry_after(header(headers, "Retry-After"))
    if ra is None and body is not None:
        ra = status_retry_after(body)
    return Verdict(True, ra, str(status))


__all__ = ["RetryPolicy", "DEFAULT_POLICY", "MEASUREMENT_POLICY", "Verdict", "NO", "RetryStats", "call", "acall",
           "parse_retry_after", "header", "status_retry_after", "is_kube_status_body", "kube_status_message",
           "http_verdict", "is_connection_failure", "attempts_of", "attempts_text", "TRANSIENT_STATUS"]
