"""Serving ``?watch=true``: a chunked stream of JSON events, one per line.

The stream starts with the replay the watch cache gives (current state as ADDED for
an unset or "0" resourceVersion, or the changes after it), then follows live changes.
Events are encoded once in the cache and shared by all watchers; Table watches
(``kubectl get -w``) are converted per event.

Every event is flushed within :data:`LINGER` (2 ms) of its arrival: the events that
arrive meanwhile go out in the same write. Under load that turns one TLS write per
event into one per few milliseconds (each write costs the server more than the bytes
it carries), and no client can tell 2 ms from the network's own jitter. The stream's
deadline and bookmarks are timers that put a marker in the watcher's queue, so
waiting for the next event costs one queue get, not a timeout per event.

- ``timeoutSeconds`` ends the stream; without it the stream stays open 30-60 minutes,
  as the real API server's, because kubectl exits silently when a watch ends.
- ``allowWatchBookmarks`` adds a BOOKMARK with the current resourceVersion every
  minute and before the stream ends, so clients can resume cheaply.
- ``sendInitialEvents=true`` ends the initial replay with a bookmark annotated
  ``k8s.io/initial-events-end``.
- A resourceVersion older than the cache window is answered with an ERROR event
  carrying a 410 Expired Status (what clients expect in order to relist).
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from ..registry import tables
from . import errors
from .cache import WatchEvent
from .handlers import JSON, Target, _include_object, wants_table, watch_timeout

BOOKMARK_EVERY = 60.0
#: how long the first event of a write waits for others to join it
LINGER = 0.002
#: markers the stream's timers put in the watcher's queue
_BOOKMARK_DUE, _DEADLINE = object(), object()


def _bookmark(target: Target, rv: int, initial_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": target.rt.kind, "apiVersion": target.rt.api_version, "metadata": meta}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


async def serve_watch(request: web.Request, target: Target) -> web.StreamResponse:
    q = request.query
    rv = q.get("resourceVersion")
    send_initial = q.get("sendInitialEvents") == "true"
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
    if send_initial and rv not in (None, "", "0"):
        # with an explicit version, initial events mean "state as of rv": serve from there
        pass
    try:
        watcher = target.rest.watch(target.namespace, label_selector=q.get("labelSelector"),
                                    field_selector=q.get("fieldSelector"),
                                    resource_version=None if send_initial else rv)
    except errors.ApiError as exc:
        if exc.code != 410:
            raise
        return await _expired_stream(request, exc)
    table = wants_table(request)
    include = _include_object(request) if table else "Metadata"
    initial_pending = watcher.queue.qsize() if send_initial else -1
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = watcher.queue  # events, None (watch closed) and the markers above
    timers = [loop.call_later(watch_timeout(request), queue.put_nowait, _DEADLINE)]  # [deadline, next bookmark]
    if bookmarks:
        def bookmark_due() -> None:
            queue.put_nowait(_BOOKMARK_DUE)
            timers[1] = loop.call_later(BOOKMARK_EVERY, bookmark_due)
        timers.append(loop.call_later(BOOKMARK_EVERY, bookmark_due))
    first_table = True
    try:
        if initial_pending == 0:
            await resp.write(_bookmark(target, target.rest.cache.revision, initial_end=True))
            initial_pending = -1
        while True:
            ev = await queue.get()
            if ev is None or ev is _DEADLINE:
                break
            if ev is _BOOKMARK_DUE:
                await resp.write(_bookmark(target, target.rest.cache.revision))
                continue
            chunk, end = _drain(queue, [ev])
            if not end and initial_pending < 0:  # live events: let the ones close behind join
                await asyncio.sleep(LINGER)
                chunk, end = _drain(queue, chunk)
            if table:
                data = b"".join(_table_line(target, e, include, first_table and i == 0) for i, e in enumerate(chunk))
                first_table = False
            else:
                data = b"".join(e.line for e in chunk)
            if data:
                await resp.write(data)
            if initial_pending > 0:
                initial_pending -= len(chunk)
                if initial_pending <= 0:
                    await resp.write(_bookmark(target, target.rest.cache.revision, initial_end=True))
                    initial_pending = -1
            if end:
                break
        if bookmarks:
            await resp.write(_bookmark(target, target.rest.cache.revision))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for timer in timers:
            timer.cancel()
        watcher.stop()
    return resp


def _drain(queue: asyncio.Queue, chunk: list[WatchEvent]) -> tuple[list[WatchEvent], bool]:
    """``chunk`` plus the events already queued; True when the stream must end after them.

    A bookmark marker met here is dropped: the events written now are newer anyway.
    """
    while not queue.empty():
        nxt = queue.get_nowait()
        if nxt is None or nxt is _DEADLINE:
            return chunk, True
        if nxt is not _BOOKMARK_DUE:
            chunk.append(nxt)
    return chunk, False


def _table_line(target: Target, ev: WatchEvent, include: str, with_columns: bool) -> bytes:
    table = tables.to_table([ev.object.obj], target.rt.kind, target.rt.group, include_object=include,
                            resource_version=str(ev.object.rv), no_headers=not with_columns,
                            printer_columns=target.rt.printer_columns)
    return orjson.dumps({"type": ev.type, "object": table}) + b"\n"


async def _expired_stream(request: web.Request, exc: errors.ApiError) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(orjson.dumps({"type": "ERROR", "object": exc.status()}) + b"\n")
    await resp.write_eof()
    return resp
