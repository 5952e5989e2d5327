"""Serving ``?watch=true``: a chunked stream of JSON events, one per line.

The stream starts with the replay the watch cache gives (current state as ADDED, or
the changes after a resourceVersion), then follows live changes. Events are encoded
once in the cache and shared by all watchers; Table watches (``kubectl get -w``) are
converted per event.

Every event is flushed within :data:`LINGER` (2 ms) of its arrival: the events that
arrive meanwhile go out in the same write. Under load that turns one TLS write per
event into one per few milliseconds (each write costs the server more than the bytes
it carries), and no client can tell 2 ms from the network's own jitter. The stream's
deadline and bookmarks are timers that put a marker in the watcher's queue, so
waiting for the next event costs one queue get, not a timeout per event.

What the options mean follows Kubernetes' watch cache:

- ``timeoutSeconds`` ends the stream; without it the stream stays open 30-60 minutes,
  as the real API server's, because kubectl exits silently when a watch ends.
- ``allowWatchBookmarks`` adds a BOOKMARK (kind, apiVersion and
  ``metadata.resourceVersion`` only) every minute, and one 2 s before the deadline,
  so a client resumes from a fresh version even when nothing it watches changed.
- ``sendInitialEvents=true`` (with ``resourceVersionMatch=NotOlderThan``, which
  Kubernetes requires) replays the current state, and -- when bookmarks are allowed --
  ends it with a bookmark annotated ``k8s.io/initial-events-end: "true"``; ``false``
  starts at the resourceVersion given, or at the newest one. Without the parameter a
  missing or ``"0"`` resourceVersion means ``sendInitialEvents=true`` (Kubernetes'
  defaulting while the WatchList feature is on, as it is by default).
- A resourceVersion older than the cache window is answered, in a 200 stream, with an
  ERROR event carrying a 410 ``Expired`` Status: what clients wait for to list again.

A bookmark's resourceVersion is read right after the queue was drained, in the same
step of the event loop, so no event at or below it can follow it in the stream (a
client that resumes from a bookmark must not miss or repeat anything).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web

from ..machinery.query import InvalidBool, query_bool
from ..registry import tables
from ..registry.types import FieldError
from ..machinery import errors
from .cache import WatchEvent
from .handlers import JSON, Target, _include_object, wants_table, watch_timeout

BOOKMARK_EVERY = 60.0
#: Kubernetes sends each watcher a bookmark this long before its deadline
BOOKMARK_BEFORE_DEADLINE = 2.0
#: how long the first event of a write waits for others to join it
LINGER = 0.002
#: initial events written per write (a replay of thousands of objects is not one buffer)
INITIAL_BATCH = 500
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
#: markers the stream's timers put in the watcher's queue
_BOOKMARK_DUE, _DEADLINE = object(), object()
#: turns a batch of events into the bytes of the stream
Encoder = Callable[[list[WatchEvent]], bytes]


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """The list options that shape a watch, validated as Kubernetes validates them."""

    resource_version: str | None
    send_initial_events: bool | None
    allow_bookmarks: bool

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> WatchOptions:
        try:
            send_initial = query_bool(q, "sendInitialEvents") if "sendInitialEvents" in q else None
            bookmarks = query_bool(q, "allowWatchBookmarks")
        except InvalidBool as exc:
            raise errors.bad_request(str(exc)) from None
        _validate(send_initial, q.get("resourceVersionMatch") or "", q.get("continue") or "")
        return cls(q.get("resourceVersion"), send_initial, bookmarks)

    @property
    def replays_state(self) -> bool:
        """Whether the stream starts with the current state as ADDED events."""
        if self.send_initial_events is not None:
            return self.send_initial_events
        return self.resource_version in (None, "", "0")

    @property
    def ends_initial_events(self) -> bool:
        """Whether the replay ends with the initial-events-end bookmark.

        With the WatchList feature on (the default since 1.31), Kubernetes defaults a
        watch from no or ``"0"`` resourceVersion to ``sendInitialEvents=true``, so such
        a replay ends with the bookmark too when bookmarks are allowed.
        """
        return self.allow_bookmarks and self.replays_state


def _validate(send_initial: bool | None, match: str, continue_token: str) -> None:
    """Kubernetes' rules for the list options of a watch (a 422 on ``ListOptions``)."""
    problems: list[FieldError] = []
    if send_initial is not None and match != "NotOlderThan":
        problems.append(FieldError("FieldValueForbidden", "resourceVersionMatch",
                                   "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
    if match:
        if send_initial is None:
            problems.append(FieldError("FieldValueForbidden", "resourceVersionMatch",
                                       "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
        if match != "NotOlderThan":
            problems.append(FieldError("FieldValueNotSupported", "resourceVersionMatch",
                                       'supported values: "NotOlderThan"', match))
        if continue_token:
            problems.append(FieldError("FieldValueForbidden", "resourceVersionMatch",
                                       "resourceVersionMatch is forbidden when continue is provided"))
    if problems:
        raise errors.invalid_list_options(problems)


def next_bookmark_at(now: float, deadline: float) -> float | None:
    """When the next bookmark is due: a minute on, or 2 s before the deadline if that is sooner.

    None when even that has passed: a watch that ends within 2 s gets no more bookmarks.
    """
    due = min(now + BOOKMARK_EVERY, deadline - BOOKMARK_BEFORE_DEADLINE)
    return due if due > now else None


def _bookmark(target: Target, rv: int, initial_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": target.rt.kind, "apiVersion": target.rt.api_version, "metadata": meta}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


async def serve_watch(request: web.Request, target: Target) -> web.StreamResponse:
    opts = WatchOptions.from_query(request.query)
    cache = target.rest.cache
    since = opts.resource_version
    if opts.replays_state:
        since = None
    elif opts.send_initial_events is False and since in (None, "", "0"):
        since = str(cache.revision)  # "from now": the newest version
    try:
        watcher = target.rest.watch(target.namespace, label_selector=request.query.get("labelSelector"),
                                    field_selector=request.query.get("fieldSelector"), resource_version=since)
    except errors.ApiError as exc:
        if exc.code != 410:
            raise
        return await _expired_stream(request, exc)
    # The replay is in the queue now, taken at this revision (nothing ran in between).
    replayed, replay_rv = watcher.queue.qsize(), cache.revision
    table = wants_table(request)
    include = _include_object(request) if table else "Metadata"
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = watcher.queue  # events, None (watch closed) and the markers above
    timeout = watch_timeout(request)
    deadline = loop.time() + timeout
    timers = [loop.call_later(timeout, queue.put_nowait, _DEADLINE)]  # [deadline, next bookmark]

    def schedule_bookmark() -> None:
        due = next_bookmark_at(loop.time(), deadline)
        if due is not None:
            timers[1:] = [loop.call_at(due, bookmark_due)]

    def bookmark_due() -> None:
        queue.put_nowait(_BOOKMARK_DUE)
        schedule_bookmark()

    encode = _table_encoder(target, include) if table else _json_lines
    try:
        if opts.replays_state:
            await _write_replay(resp, queue, replayed, encode)
            if opts.ends_initial_events:
                await resp.write(_bookmark(target, replay_rv, initial_end=True))
        if opts.allow_bookmarks:
            schedule_bookmark()
        while True:
            ev = await queue.get()
            if ev is None or ev is _DEADLINE:
                break
            due = ev is _BOOKMARK_DUE
            chunk, end, more = _drain(queue, [] if due else [ev])
            bookmark = due or more
            if chunk and not end:  # live events: let the ones close behind join
                await asyncio.sleep(LINGER)
                chunk, end, more = _drain(queue, chunk)
                bookmark = bookmark or more
            # read now, before any await: every event up to this version is in chunk
            data = encode(chunk) + (_bookmark(target, cache.revision) if bookmark and opts.allow_bookmarks else b"")
            if data:
                await resp.write(data)
            if end:
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for timer in timers:
            timer.cancel()
        watcher.stop()
    return resp


async def _write_replay(resp: web.StreamResponse, queue: asyncio.Queue, count: int, encode: Encoder) -> None:
    """The ``count`` replayed events at the head of the queue, in a few large writes."""
    while count > 0:
        batch = [queue.get_nowait() for _ in range(min(count, INITIAL_BATCH))]
        count -= len(batch)
        await resp.write(encode(batch))


def _drain(queue: asyncio.Queue, chunk: list[WatchEvent]) -> tuple[list[WatchEvent], bool, bool]:
    """``chunk`` plus the events already queued; whether the stream ends; whether a bookmark is due."""
    bookmark = False
    while not queue.empty():
        nxt = queue.get_nowait()
        if nxt is None or nxt is _DEADLINE:
            return chunk, True, bookmark
        if nxt is _BOOKMARK_DUE:
            bookmark = True
        else:
            chunk.append(nxt)
    return chunk, False, bookmark


def _json_lines(chunk: list[WatchEvent]) -> bytes:
    return b"".join(e.line for e in chunk)


def _table_encoder(target: Target, include: str) -> Encoder:
    """Events as Table rows; the first row of the stream carries the column definitions."""
    first = [True]

    def encode(chunk: list[WatchEvent]) -> bytes:
        if not chunk:
            return b""
        data = b"".join(_table_line(target, e, include, first[0] and i == 0) for i, e in enumerate(chunk))
        first[0] = False
        return data

    return encode


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
