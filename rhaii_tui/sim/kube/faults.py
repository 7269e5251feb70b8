"""Fault injection for the emulated Kubernetes API (the `flaky-api` scenario and expired tokens).

- `error_rate`: that share of non-watch API requests answers 500 InternalError or 429
  TooManyRequests (with `Retry-After: 1`), as an overloaded apiserver does.
- `watch_drop_seconds`: watches are cut (EOF, no bookmark) after about that many seconds, as a
  load balancer idle timeout or an apiserver restart does; clients must re-watch from their rv.
- `expire_once`: the next watch that resumes from a resourceVersion gets 410 Expired once, as
  after an etcd compaction; clients must re-list.
- `revoked`: the valid bearer token is refused with 401 (expired/revoked credentials). A bool, a
  collection of revoked tokens (checked live, so the world can add and clear), or a callable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Faults:
    error_rate: float = 0.0
    watch_drop_seconds: float | None = None
    expire_once: bool = False
    revoked: Any = False
    seed: int | None = None
    _rng: random.Random = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def token_revoked(self, token: str | None) -> bool:
        r = self.revoked
        if callable(r):
            r = r()
        if isinstance(r, (set, frozenset, list, tuple, dict)):
            return token in r
        return bool(r)

    def pick_error(self) -> int | None:
        """500 or 429 for this request, or None (share `error_rate`)."""
        if self.error_rate <= 0:
            return None
        if self._rng.random() >= self.error_rate:
            return None
        return 429 if self._rng.random() < 0.5 else 500

    def take_expire(self) -> bool:
        """True once after `expire_once` was set (the flag resets itself)."""
        if self.expire_once:
            self.expire_once = False
            return True
        return False
