"""Serving ``?watch=true``: a chunked stream of JSON events, one per line.

The stream starts with the replay the watch cache gives (current state as ADDED for
an unset or "0" resourceVersion, or the changes after it), then follows live changes.
Each event is written and flushed on its own. Events are encoded once in the cache and
shared by all watchers; Table watches (``kubectl get -w``) are converted per event.

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
    deadline = loop.time() + watch_timeout(request)
    first_table = True
    try:
        if initial_pending == 0:
            await resp.write(_bookmark(target, target.rest.cache.revision, initial_end=True))
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, BOOKMARK_EVERY) if bookmarks else remaining
            try:
                ev = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if bookmarks:
                    await resp.write(_bookmark(target, target.rest.cache.revision))
                continue
            if ev is None:
                break
            chunk = [ev]
            while not watcher.queue.empty():  # drain what is ready into one write
                nxt = watcher.queue.get_nowait()
                if nxt is None:
                    break
                chunk.append(nxt)
            if table:
                data = b"".join(_table_line(target, e, include, first_table and i == 0) for i, e in enumerate(chunk))
                first_table = False
            else:
                data = b"".join(e.line for e in chunk)
            await resp.write(data)
            if initial_pending > 0:
                initial_pending -= len(chunk)
                if initial_pending <= 0:
                    await resp.write(_bookmark(target, target.rest.cache.revision, initial_end=True))
                    initial_pending = -1
        if bookmarks:
            await resp.write(_bookmark(target, target.rest.cache.revision))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watcher.stop()
    return resp


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
