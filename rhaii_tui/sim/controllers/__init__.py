"""The simulated cluster's controllers: what kube-controller-manager, the scheduler, the kubelets,
and the operators the guide installs (cert-manager, Istio/Sail, LWS, KServe) do to the objects.

Everything is event-driven on the emulator's single asyncio loop:

- store hooks put keys ("pod", ns, name), ("deploy", ns, name), ... on a work queue, which is
  drained synchronously (`call_soon`); each reconcile is idempotent and only writes on change;
- timers wake keys at the wall-clock instant of their next transition (SimClock: a guide
  duration takes duration/speed wall seconds);
- progress is computed from start times stored on the objects (the kubelet's per-pod timeline
  annotation, the operator install start), so a world restarted after a pause catches up: on
  `start()` every object in the store is reconciled.

`fast_forward(sim_seconds)` advances the world as a discrete-event simulation: it backdates every
stored timeline to the next pending transition, processes it, and repeats until the budget is
used, so a prebuilt scenario (cluster-ready, deployed) is settled at once.

Interface (docs/EMULATOR_DESIGN.md): `Controllers(cluster)` with `.start()`, `.stop()`,
`.install_operators()`, `.fast_forward(sim_seconds)`; the cluster provides `.store .logs .clock
.scenario`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Any, Callable

from .common import Obj
from .deployments import DeploymentController
from .jobs import JobControllers
from .kubelet import Kubelet
from .llmisvc import LLMISvcController
from .operators import GatewayController, Operators
from .scheduler import Scheduler

log = logging.getLogger(__name__)

Key = tuple

MAX_STEPS_PER_DRAIN = 50000
MAX_FF_ITERATIONS = 20000


class Controllers:
    def __init__(self, cluster: Any):
        self.cluster = cluster
        self.store = cluster.store
        self.logs = cluster.logs
        self.clock = cluster.clock
        self._queue: dict[Key, None] = {}
        self._handlers: dict[str, Callable[[Key], None]] = {}
        self._timers: dict[Key, tuple[float, bool]] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._handle_t: float | None = None
        self._drain_pending = False
        self._draining = False
        self._started = False
        self._stopped = False
        self.fast_forwarding = False

        self.deployments = DeploymentController(self)
        self.scheduler = Scheduler(self)
        self.kubelet = Kubelet(self)
        self.operators = Operators(self)
        self.gateways = GatewayController(self)
        self.llmisvc = LLMISvcController(self)
        self.jobs = JobControllers(self)
        self._subs = (self.deployments, self.scheduler, self.kubelet, self.operators, self.gateways,
                      self.llmisvc, self.jobs)
        self.store.add_hook(self._hook)

    # --- properties --------------------------------------------------------------------------
    @property
    def scenario(self) -> Any:
        return getattr(self.cluster, "scenario", None)

    @property
    def speed(self) -> float:
        return self.clock.speed

    def now(self) -> float:
        return self.clock.now()

    def knob(self, name: str, default: Any) -> Any:
        sc = self.scenario
        return getattr(sc, name, default) if sc is not None else default

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Begin reacting; reconcile everything already in the store (catch-up after a restart)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._started = True
        self._stopped = False
        for sub in self._subs:
            sub.resync()
        self._drain()
        self._arm()

    def stop(self) -> None:
        self._stopped = True
        self._started = False
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._handle_t = None

    def install_operators(self) -> None:
        """Start the guide's operator install (cert-manager, Istio, LWS, KServe, gateway): ~10 min."""
        self.operators.begin_install()
        self._drain()
        self._arm()

    # --- work queue --------------------------------------------------------------------------
    def register(self, kind: str, handler: Callable[[Key], None]) -> None:
        self._handlers[kind] = handler

    def enqueue(self, key: Key) -> None:
        if self._stopped:
            return
        self._queue[key] = None
        self._kick()

    def _kick(self) -> None:
        if self._draining or self._drain_pending or self.fast_forwarding or not self._started:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._drain_pending = True
            self._loop.call_soon(self._drain)

    def _hook(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        if self._stopped:
            return
        for sub in self._subs:
            try:
                sub.on_event(etype, rtype, obj, old)
            except Exception:  # noqa: BLE001 - a controller bug must not break the API write
                log.exception("controller hook %s failed on %s %s", type(sub).__name__, etype, rtype.kind)

    def _drain(self) -> None:
        self._drain_pending = False
        if self._draining or self._stopped:
            return
        self._draining = True
        steps = 0
        try:
            while self._queue:
                key = next(iter(self._queue))
                del self._queue[key]
                handler = self._handlers.get(key[0])
                if handler is None:
                    continue
                try:
                    handler(key)
                except Exception:  # noqa: BLE001
                    log.exception("reconcile %s failed", key)
                steps += 1
                if steps > MAX_STEPS_PER_DRAIN:
                    log.error("controllers: work queue does not settle (%d steps); dropping %d keys",
                              steps, len(self._queue))
                    self._queue.clear()
                    break
        finally:
            self._draining = False
        self._arm()

    def drain(self) -> None:
        """Process the work queue now (tests, and the world after bulk changes)."""
        self._drain()

    # --- timers ------------------------------------------------------------------------------
    def wake_at(self, key: Key, t: float, minor: bool = False) -> None:
        """Reconcile `key` at wall time `t`. Minor wakes (a log line) are skipped by fast_forward's
        stepping: the reconcile that follows a major one writes them anyway."""
        if self._stopped:
            return
        cur = self._timers.get(key)
        if cur is not None and (cur[0] < t or (cur[0] == t and (cur[1] is False or minor))):
            return
        self._timers[key] = (t, minor)
        heapq.heappush(self._heap, (t, next(self._seq), key))
        if not self.fast_forwarding and self._loop is not None and (self._handle_t is None or t < self._handle_t):
            self._arm()

    def wake_in(self, key: Key, sim_seconds: float, minor: bool = False) -> None:
        self.wake_at(key, self.now() + max(0.0, sim_seconds) / self.speed, minor)

    def _pop_stale(self) -> None:
        while self._heap:
            t, _, key = self._heap[0]
            cur = self._timers.get(key)
            if cur is None or cur[0] != t:
                heapq.heappop(self._heap)
                continue
            break

    def _arm(self) -> None:
        if self._loop is None or self._stopped or self.fast_forwarding or self._loop.is_closed():
            return
        self._pop_stale()
        if not self._heap:
            if self._handle is not None:
                self._handle.cancel()
            self._handle, self._handle_t = None, None
            return
        t = self._heap[0][0]
        if self._handle is not None and self._handle_t is not None and self._handle_t <= t:
            return
        if self._handle is not None:
            self._handle.cancel()
        delay = max(0.0, t - time.time())
        self._handle_t = t
        self._handle = self._loop.call_at(self._loop.time() + delay, self._on_timer)

    def _fire_due(self) -> int:
        now = time.time() + 1e-6
        n = 0
        while self._heap and self._heap[0][0] <= now:
            t, _, key = heapq.heappop(self._heap)
            cur = self._timers.get(key)
            if cur is None or cur[0] != t:
                continue
            del self._timers[key]
            self._queue[key] = None
            n += 1
        return n

    def _on_timer(self) -> None:
        self._handle, self._handle_t = None, None
        if self._stopped:
            return
        self._fire_due()
        self._drain()
        self._arm()

    def pending_timers(self) -> int:
        return len(self._timers)

    # --- fast forward ------------------------------------------------------------------------
    def _next_major(self) -> float | None:
        times = [t for t, minor in self._timers.values() if not minor]
        return min(times) if times else None

    def _shift(self, sim_seconds: float) -> None:
        if sim_seconds <= 0:
            return
        dt = sim_seconds / self.speed
        for sub in self._subs:
            sub.shift(dt)
        self._timers = {k: (t - dt, m) for k, (t, m) in self._timers.items()}
        self._heap = [(t - dt, s, k) for t, s, k in self._heap]
        heapq.heapify(self._heap)

    def fast_forward(self, sim_seconds: float) -> None:
        """Advance the simulated world by `sim_seconds` at once (backdating every timeline)."""
        budget = float(sim_seconds)
        was_started = self._started
        self._started = True  # enqueue works even before start() (world building)
        self.fast_forwarding = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._handle_t = None, None
        try:
            self._drain()
            for _ in range(MAX_FF_ITERATIONS):
                if budget <= 1e-9:
                    break
                nxt = self._next_major()
                if nxt is None:
                    self._shift(budget)
                    budget = 0.0
                else:
                    need = max(0.0, (nxt - time.time()) * self.speed)
                    step = min(need, budget)
                    self._shift(step)
                    budget -= step
                self._fire_due()
                self._drain()
            else:
                log.warning("fast_forward: gave up after %d steps (%.0f sim s left)", MAX_FF_ITERATIONS, budget)
            self._fire_due()
            self._drain()
        finally:
            self.fast_forwarding = False
            self._started = was_started
        for sub in self._subs:
            sub.flush()
        self._drain()
        self._arm()

    # --- helpers for tests and the world -----------------------------------------------------
    def settle(self) -> None:
        """Run everything that is due now (no time travel)."""
        self._fire_due()
        self._drain()
