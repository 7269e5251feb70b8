"""Watch streams: HTTP 200, chunked, one JSON event per line.

- resourceVersion ""/"0": synthetic ADDED events for the current state, then live events;
  otherwise the history after that rv; a compacted rv gets one ERROR event (410 Expired) and EOF.
- `sendInitialEvents=true` (watch-list): the current state, then a BOOKMARK annotated
  `k8s.io/initial-events-end`.
- `timeoutSeconds` ends the stream (after a BOOKMARK when `allowWatchBookmarks=true`); a
  BOOKMARK also goes out every minute of silence when bookmarks are allowed.
- Table output per event (one-row Table; column definitions in the first event only, as the
  apiserver does) when the Accept header asks for it.
- Each event is serialized once per format and shared by every watcher (cached on the event).
- Faults: streams close after `watch_drop_seconds`; `expire_once` answers a resume with 410.
The store watcher is always removed when the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..store import ApiError, ResourceType, WatchEvent, expired
from .codec import dumps, qbool, qint

if TYPE_CHECKING:
    from .server import KubeApiServer

Obj = dict[str, Any]

MAX_BATCH = 512
MAX_BACKLOG = 50_000  # a watcher this far behind is cut off (the client re-watches), as the apiserver does
HOUSEKEEPING = 5.0
BOOKMARK_EVERY = 60.0


class _Fmt:
    """How events are encoded for one stream."""

    def __init__(self, server: "KubeApiServer", rt: ResourceType, table_api: str | None, include: str):
        self.rt = rt
        self.table_api = table_api
        self.include = include
        self.maker = server.table_maker(rt) if table_api else None
        self.key = ("table", table_api, include) if table_api else "json"
        self.first = True

    def _wire(self, etype: str, obj: Obj, columns: bool) -> bytes:
        if self.maker is None:
            return b'{"type":"' + etype.encode() + b'","object":' + dumps(obj) + b"}\n"
        table = {"kind": "Table", "apiVersion": self.table_api,
                 "metadata": {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")},
                 "columnDefinitions": self.maker.columns if columns else [],
                 "rows": [self.maker.row(obj, self.include)]}
        return b'{"type":"' + etype.encode() + b'","object":' + dumps(table) + b"}\n"

    def event(self, ev: WatchEvent) -> bytes:
        if self.first and self.maker is not None:
            self.first = False
            return self._wire(ev.type, ev.obj, True)
        self.first = False
        cache = ev.__dict__.get("_kube_wire")
        if cache is None:
            cache = ev.__dict__["_kube_wire"] = {}
        data = cache.get(self.key)
        if data is None:
            data = cache[self.key] = self._wire(ev.type, ev.obj, False)
        return data

    def bookmark(self, rv: int | str, initial_end: bool = False) -> bytes:
        md: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        if self.maker is not None:
            obj: Obj = {"kind": "Table", "apiVersion": self.table_api, "metadata": md,
                        "columnDefinitions": [], "rows": []}
        else:
            obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": md}
        return b'{"type":"BOOKMARK","object":' + dumps(obj) + b"}\n"


def _error_line(err: ApiError) -> bytes:
    return b'{"type":"ERROR","object":' + dumps(err.status()) + b"}\n"


async def serve_watch(server: "KubeApiServer", request: web.Request, rt: ResourceType, namespace: str | None,
                      q, table_api: str | None, include: str) -> web.StreamResponse:
    store = server.store
    rv = q.get("resourceVersion", "") or ""
    timeout = qint(q, "timeoutSeconds")
    bookmarks = qbool(q.get("allowWatchBookmarks"))
    send_initial = qbool(q.get("sendInitialEvents"))
    fmt = _Fmt(server, rt, table_api, include)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout if timeout and timeout > 0 else None
    drop_after = server.faults.watch_drop_seconds if server.faults else None
    drop_at = start + drop_after if drop_after else None

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()

    resumed = rv not in ("", "0") and not send_initial
    if resumed and server.faults is not None and server.faults.take_expire():
        await resp.prepare(request)
        await resp.write(_error_line(expired(rv, store.resource_version)))
        await resp.write_eof()
        return resp
    try:
        initial, w = store.watch(rt, namespace, "" if send_initial else rv,
                                 q.get("labelSelector"), q.get("fieldSelector"))
    except ApiError as e:
        if e.code != 410:
            raise
        await resp.prepare(request)
        await resp.write(_error_line(e))
        await resp.write_eof()
        return resp

    task = asyncio.current_task()
    server._streams.add(task)
    try:
        await resp.prepare(request)
        for i in range(0, len(initial), MAX_BATCH):
            await resp.write(b"".join(fmt.event(ev) for ev in initial[i:i + MAX_BATCH]))
        last_write = loop.time()
        if send_initial:
            await resp.write(fmt.bookmark(store.resource_version, initial_end=True))
        queue = w.queue
        while True:
            now = loop.time()
            ends = [t for t in (deadline, drop_at) if t is not None]
            wait = min([HOUSEKEEPING] + [t - now for t in ends])
            if bookmarks:
                wait = min(wait, max(0.0, last_write + BOOKMARK_EVERY - now))
            ev = None
            if wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        ev = await queue.get()
                except TimeoutError:
                    ev = None
            elif not queue.empty():
                ev = queue.get_nowait()
            if ev is not None:
                batch = [fmt.event(ev)]
                while len(batch) < MAX_BATCH and not queue.empty():
                    batch.append(fmt.event(queue.get_nowait()))
                await resp.write(b"".join(batch) if len(batch) > 1 else batch[0])
                last_write = loop.time()
                if queue.qsize() > MAX_BACKLOG:
                    break
                continue
            now = loop.time()
            if drop_at is not None and now >= drop_at:
                break  # simulated drop: EOF without a bookmark
            if deadline is not None and now >= deadline:
                if bookmarks and queue.empty():
                    await resp.write(fmt.bookmark(store.resource_version))
                break
            if bookmarks and now - last_write >= BOOKMARK_EVERY and queue.empty():
                await resp.write(fmt.bookmark(store.resource_version))
                last_write = now
            transport = request.transport
            if transport is None or transport.is_closing() or server.closing:
                break
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away
    finally:
        store.unwatch(w)
        server._streams.discard(task)
    return resp
