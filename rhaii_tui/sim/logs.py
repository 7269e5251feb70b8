"""Container logs of a simulated cluster: an append-only, bounded line buffer per container.

The kubelet appends; the API's log endpoint reads (tailLines, sinceSeconds, timestamps, previous)
and follows (waits on a condition until new lines arrive or the container terminates).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

MAX_LINES = 20000


@dataclass
class ContainerLog:
    lines: deque = field(default_factory=lambda: deque(maxlen=MAX_LINES))  # (ts, text)
    terminated: bool = False
    previous: list = field(default_factory=list)  # lines of the previous (restarted) instance
    cond: asyncio.Condition | None = None
    changed: asyncio.Event | None = None  # set on every append/terminate; followers wait on it
    instance: int = 0  # bumped by restart(): a follower of the previous instance ends

    def condition(self) -> asyncio.Condition:
        if self.cond is None:
            self.cond = asyncio.Condition()
        return self.cond


class LogBook:
    def __init__(self) -> None:
        self._logs: dict[tuple[str, str, str], ContainerLog] = {}

    def _get(self, ns: str, pod: str, container: str) -> ContainerLog:
        return self._logs.setdefault((ns, pod, container), ContainerLog())

    def exists(self, ns: str, pod: str, container: str) -> bool:
        return (ns, pod, container) in self._logs

    def append(self, ns: str, pod: str, container: str, text: str, ts: float | None = None) -> None:
        log = self._get(ns, pod, container)
        for line in text.splitlines() or [""]:
            log.lines.append((ts if ts is not None else time.time(), line))
        self._notify(log)

    def terminate(self, ns: str, pod: str, container: str) -> None:
        """The container ended: followers drain and close."""
        log = self._get(ns, pod, container)
        log.terminated = True
        self._notify(log)

    def restart(self, ns: str, pod: str, container: str) -> None:
        """The container restarts: current lines become `previous`, a fresh instance begins."""
        log = self._get(ns, pod, container)
        log.previous = list(log.lines)
        log.lines.clear()
        log.terminated = False
        log.instance += 1
        self._notify(log)

    def drop_pod(self, ns: str, pod: str) -> None:
        for key in [k for k in self._logs if k[0] == ns and k[1] == pod]:
            log = self._logs.pop(key)
            log.terminated = True
            self._notify(log)

    def _notify(self, log: ContainerLog) -> None:
        # An Event wakes every waiting follower in one loop step, with no task per line: under a
        # busy loop (hundreds of writes/s) a Condition needed a task and a lock hand-off per append.
        if log.changed is not None:
            log.changed.set()
        if log.cond is None:
            return
        cond = log.cond

        async def wake() -> None:
            async with cond:
                cond.notify_all()

        try:
            asyncio.get_running_loop().create_task(wake())
        except RuntimeError:
            pass

    def read(self, ns: str, pod: str, container: str, *, tail: int | None = None,
             since_seconds: float | None = None, previous: bool = False,
             since: float | None = None) -> list[tuple[float, str]]:
        """Lines (ts, text); `since`: an instant (sinceTime, whole seconds): lines at or after it."""
        log = self._logs.get((ns, pod, container))
        if log is None:
            return []
        lines = list(log.previous if previous else log.lines)
        if since_seconds is not None:
            cutoff = time.time() - since_seconds
            lines = [x for x in lines if x[0] >= cutoff]
        if since is not None:
            lines = [x for x in lines if x[0] >= since]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return lines

    async def follow(self, ns: str, pod: str, container: str, start: int):
        """Yield (ts, line) from index `start` of the live buffer on, until the container ends.
        (Index is into the current deque; good enough while the buffer has not wrapped.)"""
        log = self._get(ns, pod, container)
        if log.changed is None:
            log.changed = asyncio.Event()
        changed = log.changed
        instance = log.instance
        idx = start
        while True:
            if log.instance != instance:
                return  # the container restarted: this instance's stream is over
            lines = log.lines
            while idx < len(lines):
                yield lines[idx]
                idx += 1
            if log.terminated or log.instance != instance:
                return
            changed.clear()
            if idx < len(log.lines):
                continue
            try:
                await asyncio.wait_for(changed.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    def dump(self) -> dict:
        return {"|".join(k): {"lines": list(v.lines)[-2000:], "terminated": v.terminated}
                for k, v in self._logs.items()}

    def load(self, data: dict) -> None:
        for key, v in data.items():
            ns, pod, c = key.split("|", 2)
            log = self._get(ns, pod, c)
            log.lines.extend(tuple(x) for x in v.get("lines", []))
            log.terminated = bool(v.get("terminated"))
