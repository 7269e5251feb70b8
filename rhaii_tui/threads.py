"""Thread pools whose threads never hold the process at exit.

`concurrent.futures.ThreadPoolExecutor` threads are joined when the interpreter exits (and asyncio
joins its default executor when its loop closes), so quitting the wizard would wait for a probe or
a cloud call in flight. These executors run each task on a daemon thread instead:

    DaemonExecutor(max_workers=None, wait_on_shutdown=True)
        max_workers: at most that many tasks run at once (None: no bound)
        wait_on_shutdown: shutdown(wait=True) (and leaving a `with` block) waits for the tasks
        submitted so far, as ThreadPoolExecutor does; False: it returns at once (the app's
        default executor: quitting never waits for a worker)
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from typing import Any, Callable


class DaemonExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor (asyncio accepts only those as default executor) whose tasks each run on
    a daemon thread that the interpreter does not wait for at exit."""

    _counter = itertools.count(1)

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "rhaii-worker", *,
                 wait_on_shutdown: bool = True) -> None:
        super().__init__(max_workers=max_workers or 1, thread_name_prefix=thread_name_prefix)
        self._prefix = thread_name_prefix
        self._slots = threading.BoundedSemaphore(max_workers) if max_workers else None
        self._wait_on_shutdown = wait_on_shutdown
        self._pending: set[concurrent.futures.Future] = set()
        self._pending_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._pending_lock:
            self._pending.add(future)

        def run() -> None:
            try:
                if self._slots is not None:
                    self._slots.acquire()
                try:
                    if not future.set_running_or_notify_cancel():
                        return
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as e:  # noqa: BLE001 - handed to the waiting side
                        future.set_exception(e)
                    else:
                        future.set_result(result)
                finally:
                    if self._slots is not None:
                        self._slots.release()
            finally:
                with self._pending_lock:
                    self._pending.discard(future)

        threading.Thread(target=run, daemon=True, name=f"{self._prefix}-{next(self._counter)}").start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        with self._pending_lock:
            pending = list(self._pending)
        if cancel_futures:
            for f in pending:
                f.cancel()
        if wait and self._wait_on_shutdown:
            concurrent.futures.wait(pending)


__all__ = ["DaemonExecutor"]
