"""The store on real etcd v3: etcd holds the state, this process keeps a mirror of it.

Why this shape
--------------
Several API servers may share one etcd, so etcd alone decides: every write is an etcd
transaction (``Txn``: compare the key's ``mod_revision``, then put or delete), and
etcd's revision is the resourceVersion. What each server reads comes from a mirror:
the whole key space under the store's prefix, listed once at start and then followed
by one etcd watch from the revision after that list (an event's previous value is the
mirror's own, so etcd need not send it: ``prev_kv`` off halves the watch's bytes). The mirror is
the memory core of :class:`~podlife.store.memory.MemoryStore` -- its sorted index,
history, listeners and watchers -- fed by etcd's watch instead of local commits, so
``get``/``range``/``watch`` and the API server's watch cache work exactly as on SQLite,
and writes made through *another* server reach this one's listeners in revision
order like its own.

A write returns only once the mirror has caught up with the write's revision: the
caller (the REST layer) then finds the change in every cache, as with the local
stores. A compare that failed waits the same way, so the caller's retry reads the
newer value instead of the stale one again.

Writes are batched as the local stores group-commit: the transactions that arrive
while earlier batches are on the wire travel together, each as a nested transaction
of one outer ``Txn`` (:class:`TxnBatcher`), so a burst costs one gRPC round trip per
hundred writes instead of one each -- the Python side of a gRPC call is what a write
costs most here (0.44 ms of CPU alone, against 0.1 ms batched).

The decoded object a put carries (``Put.obj``) never goes to etcd; the mirror
attaches it to the watch event whose value is the very bytes this process wrote, so
the watch cache need not decode its own writes again.

etcd's history is compacted every ``compaction_interval`` seconds to the revision of
one interval ago, as kube-apiserver does (``--etcd-compaction-interval``, 5 minutes),
by one server at a time (a compare on the ``compact_rev_key`` key's version). When the
mirror's watch breaks, it resumes from its revision; if etcd compacted past it
meanwhile, the mirror lists again and publishes the differences as events.

Endpoints: ``etcd://host:port[,host:port...][/prefix]``; gRPC fails over between them
(pick-first), and a watch asks for a member with a leader (``hasleader``), so a member
cut off from the quorum hands its watchers to another. TLS with ``ca_file``,
``cert_file``, ``key_file`` (kube-apiserver's ``--etcd-cafile``/``--etcd-certfile``/
``--etcd-keyfile``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd.rpc import kv_pb2, rpc_pb2 as rpc
from aetcd.rpc import rpc_pb2_grpc as rpc_grpc

from .base import Compare, Delete, Event, KeyValue, Op, Put, StoreError, TxnResult
from .memory import DEFAULT_HISTORY_LIMIT, MemoryStore

log = logging.getLogger(__name__)

#: kube-apiserver's ``--etcd-compaction-interval`` default
DEFAULT_COMPACTION_INTERVAL = 300.0
#: the key whose version elects the one server that compacts (kube-apiserver's name)
COMPACT_REV_KEY = "compact_rev_key"
#: keys per page of the initial list (etcd refuses responses over its request limit)
LIST_PAGE = 2000
#: how long one etcd request may take before the caller gets a StoreError
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class EtcdTLS:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


@dataclass(frozen=True)
class EtcdEndpoints:
    """Where etcd is: ``etcd://h1:p1,h2:p2/prefix`` parsed."""

    addresses: tuple[str, ...]
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> EtcdEndpoints:
        if not url.startswith("etcd://"):
            raise ValueError(f"{url!r}: an etcd store is etcd://host:port[,host:port...]")
        rest = url[len("etcd://"):]
        hosts, _, path = rest.partition("/")
        addresses = tuple(a.strip() for a in hosts.split(",") if a.strip())
        if not addresses:
            raise ValueError(f"{url!r}: no etcd endpoint (etcd://host:port)")
        for address in addresses:
            parts = urlsplit(f"//{address}")
            if not parts.hostname or parts.port is None:
                raise ValueError(f"{url!r}: endpoint {address!r} is not host:port")
        return cls(addresses, f"/{path.strip('/')}" if path.strip("/") else "")

    @property
    def target(self) -> str:
        """The gRPC target naming every member (the channel fails over between them)."""
        return "ipv4:" + ",".join(self.addresses) if len(self.addresses) > 1 else self.addresses[0]


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix" (the prefix with its last byte + 1)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


#: how often, and after how long at first, a write that met an unavailable member is sent again
UNAVAILABLE_RETRIES = 6
UNAVAILABLE_BACKOFF = 0.1


async def txn_through_failover(kv: rpc_grpc.KVStub, request: rpc.TxnRequest) -> Any:
    """``kv.Txn(request)`` across a member's death, as etcd's own client does it.

    ``wait_for_ready``: a channel whose member went away waits for the next one (pick-first
    reconnects) instead of failing at once (clientv3's default call option). A request already on
    the dying connection fails ``UNAVAILABLE`` and is sent again after 0.1, 0.2, 0.4 ... s.
    Sending a compare-and-swap again is safe: if the first one did commit, the second one's
    compare fails and the caller sees a conflict, never a double write."""
    delay = UNAVAILABLE_BACKOFF
    for attempt in range(UNAVAILABLE_RETRIES + 1):
        try:
            return await kv.Txn(request, timeout=REQUEST_TIMEOUT, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == UNAVAILABLE_RETRIES:
                raise
            log.info("etcd unavailable (%s); sending the write again in %.1fs", exc.details(), delay)
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises


#: a transaction waiting for its batch: the request, the keys it writes, its size, its answer
_Queued = tuple[rpc.TxnRequest, set[str], int, "asyncio.Future[tuple[Any, int]]"]


class TxnBatcher:
    """Many independent transactions per round trip: each one a nested ``Txn`` of one outer ``Txn``.

    An outer transaction without compares always succeeds; each nested transaction
    evaluates its own compares, so one conflict fails only its own writer. All of them
    share the outer's revision (as the ops of one transaction do). etcd refuses two
    writes of one key in one request, so a key already in the batch waits for the next
    one; a batch holds at most ``max_txns`` transactions (etcd's ``--max-txn-ops``, 128)
    and about ``max_bytes`` of values (under its ``--max-request-bytes``, 1.5 MiB).
    Up to ``max_in_flight`` batches travel at once; while they do, new writes gather for
    the next -- under load each round trip carries many writes, alone a write goes at once.
    """

    def __init__(self, kv: rpc_grpc.KVStub, *, max_txns: int = 100, max_bytes: int = 1024 * 1024,
                 max_in_flight: int = 4) -> None:
        self._kv = kv
        self._max_txns, self._max_bytes, self._max_in_flight = max_txns, max_bytes, max_in_flight
        self._queue: list[_Queued] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def submit(self, request: rpc.TxnRequest, keys: set[str]) -> tuple[Any, int]:
        """The nested transaction's response and the revision it committed at (or saw, when nothing changed)."""
        future: asyncio.Future[tuple[Any, int]] = asyncio.get_running_loop().create_future()
        self._queue.append((request, keys, request.ByteSize(), future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._queue and len(self._in_flight) < self._max_in_flight:
            batch: list[_Queued] = []
            rest: list[_Queued] = []
            keys: set[str] = set()
            size = 0
            for item in self._queue:
                fits = len(batch) < self._max_txns and (not batch or size + item[2] <= self._max_bytes)
                if fits and keys.isdisjoint(item[1]):
                    batch.append(item)
                    keys |= item[1]
                    size += item[2]
                else:
                    rest.append(item)
            self._queue = rest
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def _send(self, batch: list[_Queued]) -> None:
        if len(batch) == 1:
            request, future = batch[0][0], batch[0][3]
        else:
            request = rpc.TxnRequest(success=[rpc.RequestOp(request_txn=item[0]) for item in batch])
        try:
            resp = await txn_through_failover(self._kv, request)
        except grpc.aio.AioRpcError as exc:
            error = StoreError(f"etcd: {exc.details() or exc.code().name}")
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        revision = resp.header.revision
        if len(batch) == 1:
            if not future.done():
                future.set_result((resp, revision))
            return
        for (*_, future), op in zip(batch, resp.responses):
            if not future.done():
                future.set_result((op.response_txn, revision))

    async def drain(self) -> None:
        """Wait for the writes already submitted."""
        while self._in_flight or self._queue:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            if self._queue and not self._in_flight:
                self._dispatch()


class EtcdStore(MemoryStore):
    """The :class:`~podlife.store.base.Store` interface on etcd v3 (see the module docstring)."""

    shared = True

    def __init__(self, url: str, *, tls: EtcdTLS | None = None, history_limit: int = DEFAULT_HISTORY_LIMIT,
                 compaction_interval: float = DEFAULT_COMPACTION_INTERVAL) -> None:
        super().__init__(history_limit=history_limit)
        self.endpoints = EtcdEndpoints.parse(url)
        self._tls = tls
        self._prefix = self.endpoints.prefix.encode()
        self._compaction_interval = compaction_interval
        self._channel: grpc.aio.Channel | None = None
        self._kv: rpc_grpc.KVStub | None = None
        self._follower: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        #: (revision, tie, future): writers waiting for the mirror to reach their revision
        self._catch_up: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        #: key -> (value, obj) of puts in flight, so the mirror's event carries the decoded object
        self._objects: dict[str, tuple[bytes, Any]] = {}
        self._ready: asyncio.Event | None = None
        self._batcher: TxnBatcher | None = None

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        options = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self._tls is not None:
            self._channel = grpc.aio.secure_channel(self.endpoints.target, self._tls.credentials(), options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self.endpoints.target, options=options)
        self._kv = rpc_grpc.KVStub(self._channel)
        self._batcher = TxnBatcher(self._kv)
        try:
            kvs, revision = await self._list_all()
        except grpc.aio.AioRpcError as exc:
            await self._channel.close()
            raise StoreError(f"etcd at {', '.join(self.endpoints.addresses)}: {exc.details() or exc.code().name}") from exc
        for kv in kvs:
            self._index[kv.key] = kv
        self._latest_revision = self._committed_revision = self._compact_revision = revision
        self._ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._follower = loop.create_task(self._follow(), name="etcd-mirror")
        if self._compaction_interval > 0:
            self._compactor = loop.create_task(self._compact_periodically(), name="etcd-compactor")
        await self._ready.wait()  # the watch is registered: nothing after the list can be missed

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.drain()
        for task in (self._follower, self._compactor):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._follower = self._compactor = None
        for _, _, waiter in self._catch_up:
            if not waiter.done():
                waiter.set_exception(StoreError("store closed"))
        self._catch_up = []
        for w in list(self._watchers):
            self._close_watcher(w)
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    # ---- keys -----------------------------------------------------------------------

    def _wire(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _key(self, wire: bytes) -> str:
        return wire[len(self._prefix):].decode()

    def _kv_of(self, kv: Any, obj: Any = None) -> KeyValue:
        return KeyValue(self._key(kv.key), kv.value, kv.create_revision, kv.mod_revision, obj)

    # ---- reading etcd ---------------------------------------------------------------

    async def _list_all(self) -> tuple[list[KeyValue], int]:
        """Every key under the prefix, at one revision (paged)."""
        assert self._kv is not None
        start, end = self._prefix or b"\x00", _prefix_end(self._prefix) if self._prefix else b"\x00"
        out: list[KeyValue] = []
        revision = 0
        while True:
            resp = await self._kv.Range(rpc.RangeRequest(key=start, range_end=end, limit=LIST_PAGE, revision=revision),
                                        timeout=REQUEST_TIMEOUT)
            revision = revision or resp.header.revision
            out.extend(self._kv_of(kv) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                return out, revision
            start = resp.kvs[-1].key + b"\x00"

    # ---- writes ---------------------------------------------------------------------

    def txn_nowait(self, compares: list[Compare], success: list[Op], failure: list[Op] | None = None) -> Any:
        raise NotImplementedError("etcd decides every write: use txn")

    async def txn(self, compares: list[Compare], success: list[Op], failure: list[Op] | None = None) -> TxnResult:
        assert self._kv is not None, "store not started"
        request = rpc.TxnRequest(
            compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=self._wire(c.key),
                                 mod_revision=c.mod_revision) for c in compares],
            success=[self._request_op(op) for op in success],
            # the compared keys' current values follow the failure ops, for the caller's conflict report
            failure=[*(self._request_op(op) for op in failure or []),
                     *(rpc.RequestOp(request_range=rpc.RangeRequest(key=self._wire(c.key))) for c in compares)])
        assert self._batcher is not None
        puts = [op for op in (*success, *(failure or [])) if isinstance(op, Put) and op.obj is not None]
        for op in puts:
            self._objects[op.key] = (op.value, op.obj)
        try:
            resp, revision = await self._batcher.submit(request, {op.key for op in (*success, *(failure or []))})
            await self._caught_up(revision)  # the mirror's event took the decoded object, if it was ours
        finally:
            for op in puts:
                if self._objects.get(op.key, (None,))[0] is op.value:
                    del self._objects[op.key]
        ops = success if resp.succeeded else (failure or [])
        results = [self._op_result(op, r, revision) for op, r in zip(ops, resp.responses)]
        if not resp.succeeded and not failure:
            results = [self._kv_of(r.response_range.kvs[0]) if r.response_range.kvs else None
                       for r in resp.responses[len(ops):]]
        return TxnResult(resp.succeeded, revision, results)

    def _request_op(self, op: Op) -> rpc.RequestOp:
        if isinstance(op, Put):
            return rpc.RequestOp(request_put=rpc.PutRequest(key=self._wire(op.key), value=op.value, prev_kv=True))
        assert isinstance(op, Delete)
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._wire(op.key), prev_kv=True))

    def _op_result(self, op: Op, response: rpc.ResponseOp, revision: int) -> KeyValue | None:
        if isinstance(op, Put):
            prev = response.response_put.prev_kv if response.response_put.HasField("prev_kv") else None
            create = prev.create_revision if prev is not None else revision
            return KeyValue(op.key, op.value, create, revision, op.obj)
        deleted = response.response_delete_range.prev_kvs
        return self._kv_of(deleted[0]) if deleted else None

    async def _caught_up(self, revision: int) -> None:
        """Return once the mirror (and so every listener) has seen ``revision``."""
        if revision <= self._committed_revision:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._catch_up, (revision, next(self._tie), waiter))
        await waiter

    # ---- the mirror -----------------------------------------------------------------

    async def _follow(self) -> None:
        """Follow etcd's watch from the mirror's revision, forever; resume after any failure."""
        assert self._channel is not None and self._ready is not None
        watch = rpc_grpc.WatchStub(self._channel)
        delay = 0.1
        while True:
            try:
                await self._watch_once(watch)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning("etcd watch broke (%s); resuming from revision %d", exc.code().name, self._committed_revision)
            except Exception:
                log.exception("etcd mirror failed; resuming from revision %d", self._committed_revision)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _watch_once(self, watch: rpc_grpc.WatchStub) -> None:
        assert self._ready is not None
        start, end = self._prefix or b"\x00", _prefix_end(self._prefix) if self._prefix else b"\x00"
        call = watch.Watch(metadata=(("hasleader", "true"),))
        await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=start, range_end=end, start_revision=self._committed_revision + 1, progress_notify=True)))
        try:
            async for resp in call:
                if resp.created:
                    self._ready.set()
                if resp.compact_revision:  # etcd compacted past the mirror: list again
                    await self._resync()
                    return
                if resp.canceled:
                    raise StoreError(f"etcd canceled the watch: {resp.cancel_reason or 'no reason given'}")
                self._apply_response(resp.events, resp.header.revision)
        finally:
            call.cancel()

    def _apply_response(self, events: Iterable[Any], header_revision: int) -> None:
        """One watch response: into the index, then to history, listeners and watchers (one batch)."""
        batch: list[Event] = []
        for ev in events:
            key = self._key(ev.kv.key)
            prev = self._index.get(key)
            if ev.type == kv_pb2.Event.DELETE:
                if prev is None:
                    continue
                del self._index[key]
                batch.append(Event("DELETE", KeyValue(key, b"", prev.create_revision, ev.kv.mod_revision), prev))
            else:
                mine = self._objects.get(key)
                obj = mine[1] if mine is not None and mine[0] == ev.kv.value else None  # ours: already decoded
                kv = self._kv_of(ev.kv, obj)
                self._index[key] = kv
                batch.append(Event("PUT", kv, prev))
        revision = max(header_revision if not batch else batch[-1].revision, self._committed_revision)
        self._latest_revision = self._committed_revision = revision
        self._publish(batch)
        if len(self._history) > self._history_limit:
            self._trim_history(self._history[len(self._history) - self._history_limit].revision - 1)
        self._wake(revision)

    def _wake(self, revision: int) -> None:
        while self._catch_up and self._catch_up[0][0] <= revision:
            _, _, waiter = heapq.heappop(self._catch_up)
            if not waiter.done():
                waiter.set_result(None)

    async def _resync(self) -> None:
        """After etcd compacted past the mirror: list at a new revision and publish what changed."""
        kvs, revision = await self._list_all()
        fresh = {kv.key: kv for kv in kvs}
        batch: list[Event] = []
        for key, prev in list(self._index.items()):
            if key not in fresh:
                del self._index[key]
                batch.append(Event("DELETE", KeyValue(key, b"", prev.create_revision, revision), prev))
        for kv in sorted(fresh.values(), key=lambda kv: kv.mod_revision):
            prev = self._index.get(kv.key)
            if prev is None or prev.mod_revision != kv.mod_revision:
                self._index[kv.key] = kv
                batch.append(Event("PUT", kv, prev))
        log.warning("etcd compacted past the mirror; listed again at revision %d (%d changes)", revision, len(batch))
        # the replayable history has a gap now: watchers resuming from before it get 410
        self._trim_history(revision)
        self._compact_revision = max(self._compact_revision, self._committed_revision)
        batch.sort(key=lambda ev: ev.revision)
        self._latest_revision = self._committed_revision = max(revision, self._committed_revision)
        self._publish(batch)
        self._wake(self._committed_revision)

    def _trim_history(self, revision: int) -> None:
        while self._history and self._history[0].revision <= revision:
            self._history.popleft()
        self._compact_revision = max(self._compact_revision, min(revision, self._committed_revision))

    # ---- compaction -----------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Forget history up to ``revision``, here and in etcd."""
        assert self._kv is not None
        revision = min(revision, self._committed_revision)
        if revision <= 0:
            return
        try:
            await self._kv.Compact(rpc.CompactionRequest(revision=revision), timeout=REQUEST_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if "compacted" not in (exc.details() or ""):  # already compacted further: fine
                raise StoreError(f"etcd: {exc.details() or exc.code().name}") from exc
        self._trim_history(revision)

    async def _compact_periodically(self) -> None:
        """kube-apiserver's compactor: every interval, compact to the revision seen one interval ago,
        by whichever server first moves ``compact_rev_key`` on from the version it last saw."""
        assert self._kv is not None
        key = self._wire(COMPACT_REV_KEY)
        version, target = 0, 0
        while True:
            await asyncio.sleep(self._compaction_interval)
            try:
                resp = await self._kv.Txn(rpc.TxnRequest(
                    compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, key=key, version=version)],
                    success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=str(target).encode()))],
                    failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))]), timeout=REQUEST_TIMEOUT)
                if resp.succeeded:
                    version += 1
                    if target:
                        await self.compact(target)
                else:
                    kvs = resp.responses[0].response_range.kvs
                    version = kvs[0].version if kvs else 0
                target = resp.header.revision
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("etcd compaction failed")


def open_etcd(url: str, *, ca_file: Path | str | None = None, cert_file: Path | str | None = None,
              key_file: Path | str | None = None, **options: Any) -> EtcdStore:
    """An :class:`EtcdStore` for ``url``, with TLS when any of the files is given."""
    files = (ca_file, cert_file, key_file)
    tls = EtcdTLS(*(Path(f) if f else None for f in files)) if any(files) else None
    return EtcdStore(url, tls=tls, **options)
