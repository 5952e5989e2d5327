"""The storage interface, shaped on etcd's model.

Every backend (the embedded SQLite store, and real etcd in a later issue) offers the
same five things etcd does, because the API server above it is written against them:

- a flat, ordered key space (``/registry/pods/default/nginx``) read by key or prefix;
- one global, monotonically increasing *revision*; each key remembers the revision that
  created it and the one that last modified it (these become ``resourceVersion``);
- transactions that compare a key's ``mod_revision`` and then put or delete, which is
  how optimistic concurrency (409 Conflict) is built;
- watches on a prefix from a revision, replaying history after it, which is how
  ``?watch=true&resourceVersion=N`` resumes;
- compaction, which forgets history older than a revision (a watch or read from
  before it fails with :class:`Compacted`, the API's 410 Gone).

Values are opaque bytes (JSON documents). A put may also carry the decoded object it
was encoded from (``KeyValue.obj``); in-process consumers such as the API server's
watch cache use it to avoid decoding again. It is never persisted.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal


class StoreError(Exception):
    """Base class of storage failures."""


class Compacted(StoreError):
    """The revision asked for is older than the oldest revision still kept."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(f"revision {requested} has been compacted (oldest kept: {compact_revision + 1})")
        self.requested = requested
        self.compact_revision = compact_revision


class FutureRevision(StoreError):
    """The revision asked for has not been written yet."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    obj: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key. For DELETE, ``kv`` is the deleted value at the deletion revision."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


# ---- transactions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """``mod_revision(key) == revision``; revision 0 means "the key does not exist"."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    obj: Any = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Op = Put | Delete


@dataclass(slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    # For each op of the branch taken: the new KeyValue (Put), the deleted one (Delete,
    # None when the key did not exist). When the compare failed: the current values of
    # the compared keys, so the caller can report the conflict without another read.
    results: list[KeyValue | None]


@dataclass(slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int
    more: bool


Listener = Callable[[list[Event]], None]


class Store(abc.ABC):
    """etcd-shaped storage. All methods are coroutines except listener registration."""

    #: whether other processes (other API servers) may write to this store too
    shared = False

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The newest revision visible to readers (committed)."""

    @property
    @abc.abstractmethod
    def compact_revision(self) -> int:
        """History at or below this revision is gone."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open files or connections."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release everything."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """Keys starting with ``prefix``, in key order, after ``start_after``.

        ``revision`` 0 reads the newest state; otherwise the state as of that revision
        (raises :class:`Compacted` when history no longer reaches it).
        """

    @abc.abstractmethod
    async def txn(self, compares: list[Compare], success: list[Op], failure: list[Op] | None = None) -> TxnResult:
        """Atomically: if every compare holds, apply ``success``, else ``failure``.

        Returns once the change is durable.
        """

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        """Events for keys under ``prefix`` with revision >= ``start_revision``.

        Raises :class:`Compacted` (on first iteration) when ``start_revision`` is at or
        below the compact revision.
        """

    @abc.abstractmethod
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` synchronously with each committed batch of events, in order.

        In-process consumers (the API server's watch cache) use this so that once a
        write returns, every cache already reflects it.
        """

    @abc.abstractmethod
    async def compact(self, revision: int) -> None: ...

    # ---- conveniences built on txn ----------------------------------------------

    async def create(self, key: str, value: bytes, obj: Any = None) -> KeyValue | None:
        """Put ``key`` only if absent. Returns the new KeyValue, or None if it existed."""
        res = await self.txn([Compare(key, 0)], [Put(key, value, obj)])
        return res.results[0] if res.succeeded else None

    async def update(self, key: str, value: bytes, mod_revision: int, obj: Any = None) -> TxnResult:
        """Put ``key`` only if it is still at ``mod_revision``."""
        return await self.txn([Compare(key, mod_revision)], [Put(key, value, obj)])

    async def delete(self, key: str, mod_revision: int | None = None) -> TxnResult:
        compares = [Compare(key, mod_revision)] if mod_revision is not None else []
        return await self.txn(compares, [Delete(key)])
