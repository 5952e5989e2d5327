"""Copying a cluster's objects from one store to another (``podlife migrate``).

What it does
------------
:func:`migrate` reads every key under the copied prefixes (:data:`REGISTRY_PREFIX`, the
API's objects, and optionally :data:`BOOTSTRAP_PREFIX`, the shared PKI an etcd store
keeps) from the *source* at one revision -- a consistent snapshot, page by page with the
revision pinned, as ``etcdctl get --prefix --rev`` would -- and writes each key to the
*target* as a transaction of its own that creates the key only if it is absent
(``Compare(key, 0)``). So a key the target already has is never overwritten, even by a
writer racing the copy; each such key is reported instead. The writes are submitted a
window at a time and the stores group them: SQLite commits a window in a few
transactions, etcd carries a hundred of them per ``Txn`` round trip
(:class:`~podlife.store.etcd.TxnBatcher`). Afterwards every copied key is read back from
the target and compared byte for byte.

Before the writes, the target's revision is raised past the source's (:func:`bump_revision`,
:func:`bump_etcd_revision`: a scratch key written until it is, then deleted), as
``etcdutl snapshot restore --bump-revision`` does: every copied object then has a
resourceVersion newer than any a client of the old store can hold.

A non-empty target (any key under the copied prefixes) is refused
(:class:`TargetNotEmpty`) unless ``overwrite``: then every such key of the target is
deleted first (each with a compare on its ``mod_revision``), so the target ends up a copy
of the source rather than a mix of two clusters.

Values are copied as they are: the stored form of an object holds an empty
``metadata.resourceVersion`` (the store's revision is the resourceVersion, set on read),
so uids, creation timestamps, generations, managed fields and everything else are the
source's, while each object's resourceVersion becomes its key's ``mod_revision`` in the
target -- the target's revisions, not the source's. An API server started on the target
lists the store to fill its watch caches, so its lists, watches and optimistic
concurrency all run on the target's revisions; a resourceVersion from the old store is
older than all of them, so a watch resumed from one gets 410 Gone and an update carrying
one gets 409 Conflict (see docs/migrate.md).

The copy knows only the :class:`~podlife.store.base.Store` interface; two helpers know one
backend each: :func:`bump_etcd_revision` (etcd's gRPC API, bypassing the store's mirror)
and :func:`sqlite_in_use` (a SQLite file). Which stores, the PKI and the command line are
:mod:`podlife.migrate_cli`'s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Compare, Delete, KeyValue, Put, Store, StoreError

if TYPE_CHECKING:
    from .etcd import EtcdTLS

#: where the API server keeps every object (``/registry/<group or core>/<resource>/[<namespace>/]<name>``)
REGISTRY_PREFIX = "/registry/"
#: where a shared store keeps the cluster's PKI (:mod:`podlife.api.shared_pki`)
BOOTSTRAP_PREFIX = "/podlife/bootstrap/"
#: the stored Events (core/v1 and events.k8s.io/v1 keep their own keys here)
EVENT_PREFIXES = ("/registry/core/events/", "/registry/events.k8s.io/events/")
#: keys per page when reading the source and per window of writes in flight
PAGE = 1000
WINDOW = 1000


class TargetNotEmpty(StoreError):
    """The target already holds keys under the copied prefixes (and ``overwrite`` was not asked)."""

    def __init__(self, count: int, example: str) -> None:
        super().__init__(f"the target is not empty: it holds {count} key{'s' if count != 1 else ''} "
                         f"(e.g. {example}); use --overwrite to replace them")
        self.count = count
        self.example = example


#: the scratch key written to raise a target's revision past the source's (deleted afterwards)
BUMP_KEY = "/podlife/migrate/revision-bump"
#: writes in flight while bumping a revision
BUMP_IN_FLIGHT = 64

#: raises the target's revision to at least the given one (:func:`bump_revision`, or a faster one for etcd)
Bumper = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class MigrateOptions:
    """What to copy and how."""

    prefixes: tuple[str, ...] = (REGISTRY_PREFIX,)
    #: keys under these are left out (``--skip-events``: :data:`EVENT_PREFIXES`)
    skip_prefixes: tuple[str, ...] = ()
    #: delete what the target holds under ``prefixes`` first, instead of refusing a non-empty target
    overwrite: bool = False
    #: read and count, write nothing
    dry_run: bool = False
    #: first raise the target's revision past the source's, so every resourceVersion a client of the old store
    #: holds is older than every object in the target (etcdutl's ``--bump-revision``); see :func:`bump_revision`
    bump_revision: bool = True


@dataclass
class MigrateReport:
    """What a migration read, wrote and found."""

    source_revision: int = 0
    #: resource (``pods``, ``deployments.apps``) -> keys copied (or that would be, on a dry run)
    counts: Counter[str] = field(default_factory=Counter)
    #: resource -> keys left out (skip_prefixes)
    skipped: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    #: keys the target held before the copy (refused, or deleted first with overwrite)
    target_keys: int = 0
    deleted: int = 0
    #: keys that appeared in the target during the copy and were left as they were
    existed: list[str] = field(default_factory=list)
    #: seconds spent raising the target's revision (0: it was already past the source's)
    bump_seconds: float = 0.0
    target_revision_before: int = 0
    target_revision_after: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def resource_of(key: str) -> str:
    """The resource a key belongs to, as Kubernetes names it: ``pods``, ``deployments.apps``, ``widgets.example.com``.

    Keys outside ``/registry/`` are named by their first two segments (``/podlife/bootstrap``).
    """
    parts = key.split("/")
    if key.startswith(REGISTRY_PREFIX) and len(parts) > 3:
        group, resource = parts[2], parts[3]
        return resource if group == "core" else f"{resource}.{group}"
    return "/".join(parts[:3])


def _skipped(key: str, skip_prefixes: Iterable[str]) -> bool:
    return any(key.startswith(p) for p in skip_prefixes)


async def snapshot(store: Store, prefixes: Iterable[str], *, page: int = PAGE) -> tuple[int, list[KeyValue]]:
    """Every key under ``prefixes``, all read at one revision (the store's newest when the read began)."""
    revision = 0
    out: list[KeyValue] = []
    for prefix in prefixes:
        after = ""
        while True:
            res = await store.range(prefix, start_after=after, limit=page, revision=revision)
            revision = revision or res.revision
            out.extend(res.kvs)
            if not res.more or not res.kvs:
                break
            after = res.kvs[-1].key
    return revision or store.revision, out


async def _in_windows(items: list[KeyValue], write: Callable[[KeyValue], Awaitable[None]], window: int) -> None:
    """Run ``write`` on each item, ``window`` of them in flight at a time (the store batches them)."""
    for start in range(0, len(items), window):
        await asyncio.gather(*(write(kv) for kv in items[start:start + window]))


async def clear(target: Store, kvs: list[KeyValue], *, window: int = WINDOW) -> int:
    """Delete ``kvs`` from the target, each only if unchanged since read; how many were deleted."""
    deleted = 0

    async def delete(kv: KeyValue) -> None:
        nonlocal deleted
        res = await target.txn([Compare(kv.key, kv.mod_revision)], [Delete(kv.key)])
        if not res.succeeded:
            raise StoreError(f"{kv.key} changed in the target while it was being cleared (is a server using it?)")
        deleted += 1

    await _in_windows(kvs, delete, window)
    return deleted


async def write_all(target: Store, kvs: list[KeyValue], *, window: int = WINDOW) -> list[str]:
    """Create each key in the target if absent; the keys that already existed (left as they were)."""
    existed: list[str] = []

    async def create(kv: KeyValue) -> None:
        res = await target.txn([Compare(kv.key, 0)], [Put(kv.key, kv.value)])
        if not res.succeeded:
            existed.append(kv.key)

    await _in_windows(kvs, create, window)
    return sorted(existed)


async def verify(target: Store, kvs: list[KeyValue], prefixes: Iterable[str], existed: Iterable[str]) -> None:
    """Every copied key is in the target with the source's bytes (else :class:`StoreError`)."""
    _, copied = await snapshot(target, prefixes)
    held = {kv.key: kv.value for kv in copied}
    left = set(existed)
    for kv in kvs:
        if kv.key in left:
            continue
        if held.get(kv.key) != kv.value:
            what = "is missing" if kv.key not in held else "differs"
            raise StoreError(f"verification failed: {kv.key} {what} in the target after the copy")


async def bump_revision(store: Store, revision: int, *, in_flight: int = BUMP_IN_FLIGHT) -> None:
    """Write :data:`BUMP_KEY` until the store's revision is at least ``revision``, then delete it.

    Each write is a transaction of its own, so it takes a revision of its own: the local
    stores give every transaction one even when they commit many together, and etcd's
    batcher never puts two writes of one key in one round trip.
    """
    remaining = revision - 1 - store.revision  # the writes to make; the delete is the last revision

    async def writer() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await store.txn([], [Put(BUMP_KEY, b"")])

    if store.revision < revision:
        await asyncio.gather(*(writer() for _ in range(min(in_flight, max(remaining, 0)))))
        await store.txn([], [Delete(BUMP_KEY)])


async def bump_etcd_revision(url: str, revision: int, *, tls: EtcdTLS | None = None,
                             in_flight: int = BUMP_IN_FLIGHT) -> None:
    """:func:`bump_revision` for etcd, on a gRPC channel of its own: ``in_flight`` ``Txn`` calls at a time.

    Through the store, each write would wait for its mirror's watch and go alone (one key)
    in the batcher: about 2,400 revisions a second on this machine, against 5,000 to 9,000 this way.
    """
    import grpc
    from aetcd.rpc import rpc_pb2 as rpc
    from aetcd.rpc import rpc_pb2_grpc as rpc_grpc

    from .etcd import REQUEST_TIMEOUT, EtcdEndpoints

    endpoints = EtcdEndpoints.parse(url)
    key = (endpoints.prefix + BUMP_KEY).encode()
    put = rpc.TxnRequest(success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=b""))])
    channel = (grpc.aio.secure_channel(endpoints.target, tls.credentials()) if tls is not None
               else grpc.aio.insecure_channel(endpoints.target))
    kv = rpc_grpc.KVStub(channel)
    remaining = 0

    async def writer() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await kv.Txn(put, timeout=REQUEST_TIMEOUT)

    try:
        current = (await kv.Range(rpc.RangeRequest(key=key), timeout=REQUEST_TIMEOUT)).header.revision
        if current >= revision:
            return
        remaining = revision - 1 - current  # (another writer of the etcd only raises it further)
        await asyncio.gather(*(writer() for _ in range(min(in_flight, remaining))))
        await kv.DeleteRange(rpc.DeleteRangeRequest(key=key), timeout=REQUEST_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        raise StoreError(f"etcd at {', '.join(endpoints.addresses)}: {exc.details() or exc.code().name}") from None
    finally:
        await channel.close()


async def migrate(source: Store, target: Store | None, options: MigrateOptions = MigrateOptions(), *,
                  window: int = WINDOW, bumper: Bumper | None = None) -> MigrateReport:
    """Copy ``source``'s keys under ``options.prefixes`` into ``target`` (both started); see the module docstring.

    ``target`` may be None on a dry run (then only the source is read). ``bumper`` raises the
    target's revision when ``options.bump_revision`` (default: :func:`bump_revision`). Raises
    :class:`TargetNotEmpty` for a non-empty target without ``overwrite``, :class:`StoreError`
    when a store fails.
    """
    started = time.monotonic()
    report = MigrateReport()
    report.source_revision, every = await snapshot(source, options.prefixes)
    kvs = [kv for kv in every if not _skipped(kv.key, options.skip_prefixes)]
    report.skipped.update(resource_of(kv.key) for kv in every if _skipped(kv.key, options.skip_prefixes))
    report.counts.update(resource_of(kv.key) for kv in kvs)
    report.bytes = sum(len(kv.value) for kv in kvs)
    if target is not None:
        report.target_revision_before = report.target_revision_after = target.revision
        _, present = await snapshot(target, options.prefixes)
        report.target_keys = len(present)
        if present and not options.overwrite and not options.dry_run:
            raise TargetNotEmpty(len(present), present[0].key)
        if not options.dry_run:
            report.deleted = await clear(target, present, window=window) if present else 0
            if options.bump_revision and target.revision <= report.source_revision:
                bumped = time.monotonic()
                await (bumper or (lambda rev: bump_revision(target, rev)))(report.source_revision + 1)
                report.bump_seconds = time.monotonic() - bumped
            report.existed = await write_all(target, kvs, window=window)
            await verify(target, kvs, options.prefixes, report.existed)
            report.target_revision_after = target.revision
    report.seconds = time.monotonic() - started
    return report


# ---- a SQLite store's file --------------------------------------------------------


def sqlite_in_use(path: Path) -> bool:
    """Whether another process has the SQLite store at ``path`` open (a server running on it).

    A server keeps its connection open while it runs, in WAL mode; a connection in
    exclusive locking mode cannot begin an exclusive transaction while any other
    connection is open, so trying one (without waiting) tells. The probe changes no data.
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:  # gone, or not readable
        raise StoreError(f"{path}: {exc}") from None
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("SELECT count(*) FROM sqlite_master").fetchall()
        db.execute("COMMIT")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise StoreError(f"{path}: {exc}") from None
    except sqlite3.DatabaseError as exc:  # not a database at all
        raise StoreError(f"{path}: {exc}") from None
    finally:
        db.close()
