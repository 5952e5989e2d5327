"""Storage with etcd's model: revisions, transactions, watch and compaction.

``base``    the interface every backend implements (see its docstring for the model).
``memory``  the in-memory MVCC core with group commit (volatile; tests, benchmarks).
``sqlite``  the embedded default: the memory core made durable in one SQLite file.
``etcd``    real etcd v3: etcd decides every write, the memory core mirrors it (several servers, one store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Compacted, Compare, Delete, Event, KeyValue, Put, RangeResult, Store, StoreError, TxnResult
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "Compacted", "Compare", "Delete", "Event", "KeyValue", "MemoryStore", "Put", "RangeResult",
    "SQLiteStore", "Store", "StoreError", "TxnResult", "open_store",
]


def open_store(url: str, **options: Any) -> Store:
    """``memory://``, ``sqlite:///path/to/db`` (a bare path means SQLite) or ``etcd://host:port[,...]``
    (``options``: ``ca_file``, ``cert_file``, ``key_file`` for etcd's TLS)."""
    if url.startswith("etcd://"):
        from .etcd import open_etcd  # grpc is imported only by clusters on etcd

        return open_etcd(url, **options)
    if url == "memory://":
        return MemoryStore()
    if url.startswith("sqlite://"):
        url = url[len("sqlite://"):]
    return SQLiteStore(Path(url))
