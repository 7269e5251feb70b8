"""`GET .../pods/NAME/log`: container logs from the LogBook, as the apiserver + kubelet serve them.

Query: container, follow, tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes.
text/plain, chunked. With follow the stream stays open and carries new lines until the container
terminates (or the pod's logs are dropped). Errors are the apiserver's/kubelet's 400s:
no container given for a multi-container pod, unknown container, a container still waiting to
start (ContainerCreating / PodInitializing / its waiting reason), no previous instance.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..store import ApiError, parse_rfc3339
from .codec import qbool, qint

if TYPE_CHECKING:
    from .server import KubeApiServer

Obj = dict[str, Any]


def _ts(t: float) -> str:
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}000Z"


def _status_for(pod: Obj, container: str) -> tuple[Obj | None, bool]:
    st = pod.get("status") or {}
    for key, init in (("containerStatuses", False), ("initContainerStatuses", True),
                      ("ephemeralContainerStatuses", False)):
        for cs in st.get(key) or []:
            if cs.get("name") == container:
                return cs, init
    return None, False


def _inits_done(pod: Obj) -> bool:
    inits = (pod.get("spec") or {}).get("initContainers") or []
    if not inits:
        return True
    done = 0
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if (term and int(term.get("exitCode") or 0) == 0) or \
                (cs.get("started") and any(c.get("name") == cs.get("name") and c.get("restartPolicy") == "Always"
                                           for c in inits)):
            done += 1
    return done >= len(inits)


def pick_container(pod: Obj, name: str, container: str | None) -> str:
    spec = pod.get("spec") or {}
    mains = [c.get("name") for c in spec.get("containers") or []]
    inits = [c.get("name") for c in spec.get("initContainers") or []]
    ephem = [c.get("name") for c in spec.get("ephemeralContainers") or []]
    if not container:
        if len(mains) == 1:
            return mains[0]
        msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]"
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        if ephem:
            msg += f" or one of the ephemeral containers: [{' '.join(ephem)}]"
        raise ApiError(400, "BadRequest", msg)
    if container not in mains + inits + ephem:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    return container


def waiting_reason(pod: Obj, container: str) -> str | None:
    """Why the container has no logs yet, or None when it has started (or ended)."""
    cs, is_init = _status_for(pod, container)
    if cs is not None:
        state = cs.get("state") or {}
        if state.get("running") is not None or state.get("terminated") is not None:
            return None
        waiting = state.get("waiting")
        if waiting is not None:
            return waiting.get("reason") or "ContainerCreating"
        return "ContainerCreating"
    mains = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if container in mains and not _inits_done(pod):
        return "PodInitializing"
    return "ContainerCreating"


async def serve_log(server: "KubeApiServer", request: web.Request, namespace: str, name: str,
                    q) -> web.StreamResponse:
    store, logs = server.store, server.logs
    pod = store.get(store.type_for("pods"), namespace, name)
    container = pick_container(pod, name, q.get("container"))
    follow = qbool(q.get("follow"))
    previous = qbool(q.get("previous"))
    timestamps = qbool(q.get("timestamps"))
    tail = qint(q, "tailLines")
    since_s = qint(q, "sinceSeconds")
    limit_bytes = qint(q, "limitBytes")
    since_t: float | None = None
    if q.get("sinceTime"):
        if since_s is not None:
            raise ApiError(400, "BadRequest", "at most one of sinceTime or sinceSeconds may be specified")
        t = parse_rfc3339(q["sinceTime"])
        if t is None:
            raise ApiError(400, "BadRequest", f"invalid sinceTime {q['sinceTime']!r}")
        since_t = float(int(t))  # metav1.Time: whole seconds; the lines at or after that second
    if since_s is not None and since_s <= 0:
        raise ApiError(422, "Invalid", 'PodLogOptions "" is invalid: sinceSeconds: Invalid value: '
                                       f"{since_s}: must be greater than 0")

    if previous:
        lines = logs.read(namespace, name, container, tail=tail, since_seconds=since_s, previous=True, since=since_t)
        cs, _ = _status_for(pod, container)
        if not lines and not (cs and int(cs.get("restartCount") or 0) > 0):
            raise ApiError(400, "BadRequest",
                           f'previous terminated container "{container}" in pod "{name}" not found')
        follow = False
    else:
        if not logs.exists(namespace, name, container):
            reason = waiting_reason(pod, container)
            if reason is not None:
                raise ApiError(400, "BadRequest",
                               f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        lines = logs.read(namespace, name, container, tail=tail, since_seconds=since_s, since=since_t)

    def fmt(ts: float, text: str) -> bytes:
        return ((_ts(ts) + " " if timestamps else "") + text + "\n").encode()

    body = b"".join(fmt(ts, text) for ts, text in lines)
    if limit_bytes is not None and limit_bytes > 0:
        body = body[:limit_bytes]
    if not follow:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if body:
            await resp.write(body)
        await resp.write_eof()
        return resp

    start = len(logs.read(namespace, name, container))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    task = asyncio.current_task()
    server._streams.add(task)
    sent = len(body)
    try:
        await resp.prepare(request)
        if body:
            await resp.write(body)
        async for ts, text in logs.follow(namespace, name, container, start):
            chunk = fmt(ts, text)
            if limit_bytes is not None and limit_bytes > 0:
                if sent >= limit_bytes:
                    break
                chunk = chunk[:limit_bytes - sent]
            sent += len(chunk)
            await resp.write(chunk)
            if server.closing:
                break
        await resp.write_eof()
    except ConnectionError:
        pass
    finally:
        server._streams.discard(task)
    return resp
