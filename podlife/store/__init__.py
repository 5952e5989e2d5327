"""Storage with etcd's model: revisions, transactions, watch and compaction.

``base``    the interface every backend implements (see its docstring for the model).
``memory``  the in-memory MVCC core with group commit (volatile; tests, benchmarks).
``sqlite``  the embedded default: the memory core made durable in one SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from .base import Compacted, Compare, Delete, Event, KeyValue, Put, RangeResult, Store, StoreError, TxnResult
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "Compacted", "Compare", "Delete", "Event", "KeyValue", "MemoryStore", "Put", "RangeResult",
    "SQLiteStore", "Store", "StoreError", "TxnResult", "open_store",
]


def open_store(url: str) -> Store:
    """``memory://`` or ``sqlite:///path/to/db`` (a bare path means SQLite)."""
    if url == "memory://":
        return MemoryStore()
    if url.startswith("sqlite://"):
        url = url[len("sqlite://"):]
    return SQLiteStore(Path(url))
