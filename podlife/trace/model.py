"""What a trace holds, and the read-only ``PodTrace`` objects (``trace.podlife.io/v1alpha1``) built from it.

Reads a :class:`Trace` (the records :mod:`.recorder` appended: time, revision, writer and the
stored bytes of each version) and writes nothing: :func:`build` decodes the versions, diffs
each against the previous version of the same object (:mod:`.diff`), derives the stages
(:mod:`.stages`) and returns the PodTrace as a plain JSON-ready dict; :func:`summary` is the
compact row the UI's timeline draws. The format is in ``docs/tracing.md``.

Why built at read time, cached per newest revision: the write path keeps only references to
bytes the store already encoded, so recording costs a small append; the decoding and diffing
happen once per change of a trace, when somebody looks.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any

import orjson

from .diff import diff
from .stages import Entry, Stage, derive

API_VERSION = "trace.podlife.io/v1alpha1"
KIND = "PodTrace"

#: the writer shown when the API server itself made a write (no requesting user)
APISERVER = "system:apiserver"


class Record:
    """One recorded write: when it committed, its revision, who wrote what, and the stored bytes.

    ``value`` is the stored form as the store encoded it until :meth:`pack` (the journal's
    thread) replaces it with a delta against ``zdict``, the first recorded version of the same
    object in the trace: a status write changes only the end of a pod's thousands of bytes.
    :meth:`raw` gives the bytes back either way.
    """

    __slots__ = ("time", "rv", "kind", "name", "verb", "writer", "user", "value", "prev", "subresource", "packed",
                 "zdict")

    def __init__(self, time: float, rv: int, kind: str, name: str, verb: str, value: bytes | None,
                 writer: str | None = None, user: str | None = None, prev: bytes | None = None,
                 subresource: str | None = None) -> None:
        self.time = time
        self.rv = rv
        self.kind = kind  # Pod | Port | Event | Node
        self.name = name
        self.verb = verb  # create | update | delete
        self.value = value  # the stored form (b"" for a delete; None once packed)
        self.writer = writer  # None until the write site names it (see PodTraces.wrote)
        self.user = user
        self.prev = prev  # Node records only: the version before (node versions are not all recorded)
        self.subresource = subresource
        self.packed: bytes | None = None
        self.zdict: bytes | None = None

    def raw(self) -> bytes:
        value = self.value
        if value is not None:
            return value
        # pack() sets packed and zdict before it clears value: whoever sees None finds them set
        zdict, packed = self.zdict, self.packed
        assert zdict is not None and packed is not None
        head, tail = int.from_bytes(packed[:4], "little"), int.from_bytes(packed[4:8], "little")
        return zdict[:head] + packed[8:] + zdict[len(zdict) - tail:]

    def pack(self, zdict: bytes) -> None:
        """Keep the value as a delta against ``zdict``: the lengths of the prefix and the suffix
        both share, and what lies between. A status write leaves a pod's metadata and spec (the
        prefix) alone, so this keeps about its status; found by XOR of the two as integers, it costs about
        a microsecond, where compressing them (zlib) cost ten times that for a few hundred bytes less.
        """
        value = self.value
        if not value or value is zdict or len(value) < PACK_MIN:
            return
        head = common_prefix(zdict, value)
        tail = common_suffix(zdict, value, min(len(zdict), len(value)) - head)
        if head + tail < len(value) // 4:
            return  # not worth it
        self.packed = head.to_bytes(4, "little") + tail.to_bytes(4, "little") + value[head:len(value) - tail]
        self.zdict = zdict
        self.value = None


def common_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes ``a`` and ``b`` share: the highest bit where they differ, as integers (C speed)."""
    n = min(len(a), len(b))
    x = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n if x == 0 else n - 1 - (x.bit_length() - 1) // 8


#: values shorter than this are not worth packing
PACK_MIN = 256


class Trace:
    """The recorded life of one pod (one uid): its records, oldest first, and what reading needs."""

    __slots__ = ("namespace", "name", "uid", "records", "bases", "zdicts", "created", "deleted", "node", "bound_at",
                 "gone_at", "creation_timestamp", "cache_rv", "cache_full", "cache_brief", "cache_summary", "saved",
                 "announced")

    def __init__(self, namespace: str, name: str, uid: str, created: float, max_records: int) -> None:
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.records: deque[Record] = deque(maxlen=max_records)
        #: the newest dropped version of each object, when the records cap pushed it out (the base of the next diff)
        self.bases: dict[tuple[str, str], Record] = {}
        #: the first version seen of each object, what its later versions are packed against (the journal's thread)
        self.zdicts: dict[tuple[str, str], bytes] = {}
        self.created = created
        self.deleted = False
        self.node: str | None = None
        self.bound_at: float | None = None
        self.gone_at: float | None = None
        self.creation_timestamp: str | None = None
        self.cache_rv = -1
        self.cache_full: dict[str, Any] | None = None
        self.cache_brief: dict[str, Any] | None = None
        self.cache_summary: dict[str, Any] | None = None
        #: what the journal last wrote of this trace's own fields (None: nothing yet)
        self.saved: tuple[Any, ...] | None = None
        #: whether subscribers have been told of this trace (its first change is their ADDED)
        self.announced = False

    @property
    def newest_rv(self) -> int:
        return self.records[-1].rv if self.records else 0

    @property
    def last_time(self) -> float:
        return self.records[-1].time if self.records else self.created

    def append(self, record: Record) -> None:
        records = self.records
        if records.maxlen is not None and len(records) == records.maxlen:
            dropped = records[0]
            if dropped.verb != "delete":
                self.bases[(dropped.kind, dropped.name)] = dropped
        records.append(record)


def rfc3339_micro(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pack_record(trace: Trace, record: Record) -> None:
    """Pack a record of ``trace`` against the first version of its object (see :meth:`Record.pack`)."""
    value = record.value
    if not value or record.kind == "Node" or len(value) < PACK_MIN:
        return
    ident = (record.kind, record.name)
    zdict = trace.zdicts.get(ident)
    if zdict is None:
        trace.zdicts[ident] = value  # the first one stays as it is: the others are packed against it
        return
    record.pack(zdict)


def common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """How many trailing bytes (at most ``limit``) ``a`` and ``b`` share: the lowest bit where they differ."""
    if limit <= 0:
        return 0
    x = int.from_bytes(a[len(a) - limit:], "big") ^ int.from_bytes(b[len(b) - limit:], "big")
    return limit if x == 0 else ((x & -x).bit_length() - 1) // 8


def _decode(value: bytes | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _entries(trace: Trace, node_records: list[Record]) -> tuple[list[Record], list[Entry]]:
    """Every record of the trace with the pod's node's records merged in, in commit order, as stage entries."""
    records = list(trace.records)
    if node_records:
        records = sorted([*records, *node_records], key=lambda r: r.rv)
    previous: dict[tuple[str, str], dict[str, Any] | None] = {k: _decode(r.raw()) for k, r in trace.bases.items()}
    entries: list[Entry] = []
    for r in records:
        obj = _decode(r.raw())
        ident = (r.kind, r.name)
        prev = _decode(r.prev) if r.kind == "Node" else previous.get(ident)
        previous[ident] = obj
        entries.append(Entry(r.kind, r.verb, r.time, r.rv, writer_of(r), obj, prev))
    return records, entries


def writer_of(r: Record) -> str:
    return r.writer or APISERVER


def _record_dict(r: Record, e: Entry, created: float) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceVersion": str(r.rv), "time": rfc3339_micro(r.time),
                           "offsetSeconds": round(r.time - created, 6), "kind": r.kind, "name": r.name,
                           "verb": r.verb, "writer": writer_of(r)}
    if r.user:
        out["user"] = r.user
    if r.subresource:
        out["subresource"] = r.subresource
    if r.verb == "delete":
        out["diff"] = []
    elif r.kind == "Node":
        out["diff"] = [op for op in diff(e.prev, e.obj) if op["path"].startswith("status.conditions")
                       and not op["path"].endswith("lastHeartbeatTime")]
    else:
        out["diff"] = diff(e.prev, e.obj)
    return out


def _stage_dicts(stages: list[Stage], created: float, last_time: float, gone: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, s in enumerate(stages):
        d = s.as_dict()
        d["start"] = rfc3339_micro(s.start)
        d["offsetSeconds"] = round(s.start - created, 6)
        if i + 1 < len(stages):
            d["durationSeconds"] = round(stages[i + 1].start - s.start, 6)
        else:
            d["durationSeconds"] = None
        out.append({k: d[k] for k in ("name", "start", "offsetSeconds", "durationSeconds", "writer", "container",
                                      "reason", "message", "failed") if k in d})
    return out


def build(trace: Trace, node_records: list[Record], *, with_records: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PodTrace (with or without its records) and the trace's summary row."""
    records, entries = _entries(trace, node_records)
    stages = derive(entries)
    pods = [e.obj for e in entries if e.kind == "Pod" and e.obj is not None]
    last_pod = pods[-1] if pods else {}
    first_pod = pods[0] if pods else {}
    created = trace.created
    status: dict[str, Any] = {"podUID": trace.uid}
    node = (last_pod.get("spec") or {}).get("nodeName") or trace.node
    if node:
        status["nodeName"] = node
    phase = (last_pod.get("status") or {}).get("phase")
    if phase:
        status["phase"] = phase
    status["deleted"] = trace.deleted
    stage_dicts = _stage_dicts(stages, created, trace.last_time, trace.deleted)
    status["stages"] = stage_dicts
    meta: dict[str, Any] = {"name": trace.name, "namespace": trace.namespace, "uid": trace.uid,
                            "resourceVersion": str(trace.newest_rv)}
    stamp = (first_pod.get("metadata") or {}).get("creationTimestamp") or trace.creation_timestamp
    if stamp:
        meta["creationTimestamp"] = stamp
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "status": status}
    if with_records:
        status["records"] = [_record_dict(r, e, created) for r, e in zip(records, entries)]
    summary = {
        "namespace": trace.namespace, "name": trace.name, "uid": trace.uid, "node": node, "phase": phase,
        "stage": stages[-1].name if stages else None, "created": created, "deleted": trace.deleted,
        "stages": [{"name": s.name, "start": s.start, "end": stages[i + 1].start if i + 1 < len(stages) else None,
                    "failed": s.failed, **({"container": s.container} if s.container else {})}
                   for i, s in enumerate(stages)],
    }
    return obj, summary


def without_records(obj: dict[str, Any]) -> dict[str, Any]:
    status = {k: v for k, v in obj["status"].items() if k != "records"}
    return {**obj, "status": status}
