"""``podtraces`` (``trace.podlife.io/v1alpha1``, kind PodTrace): a pod's life, read from ``ctx.trace``.

Design
------
The recorder (:class:`podlife.trace.recorder.PodTraces`, on ``ctx.trace``) builds the
PodTrace objects; this module only serves them, as a :class:`~podlife.api.virtual.VirtualType`:

- ``get`` is the full trace (stages *and* every recorded write), also of a pod already
  deleted while the trace is retained; ``list`` and ``watch`` give traces without
  ``status.records`` (stages only), which is what the recorder's ``list`` returns cheaply;
- the list's resourceVersion is the newest store revision the recorder has seen, and a
  watch follows ``PodTraces.subscribe``;
- ``kubectl get podtraces`` prints NAME, NODE, PHASE, STAGE (the current one), DURATION
  (from the pod's creation to the start of its current stage) and AGE; DURATION keeps
  milliseconds under a minute (``850ms``, ``2.4s``), which is the scale of a pod's start;
- the OpenAPI schema below is what ``kubectl explain podtraces.status.stages`` shows.

Nothing here runs unless a podtrace is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..registry import tables
from ..registry.tables._base import JSON, NONE, TablePrinter, age, age_column, column, human_duration, name_column
from .virtual import READ_VERBS, Obj, Provider, VirtualType

GROUP = "trace.podlife.io"
VERSION = "v1alpha1"
KIND = "PodTrace"


class TraceProvider:
    """:class:`~podlife.api.virtual.Provider` over a ``PodTraces`` recorder (all reads are in memory)."""

    def __init__(self, traces: Any) -> None:
        self.traces = traces

    async def get(self, namespace: str | None, name: str) -> Obj | None:
        result: Obj | None = self.traces.get(namespace or "", name)
        return result

    async def objects(self, namespace: str | None) -> list[Obj]:
        return self.snapshot(namespace)

    def snapshot(self, namespace: str | None) -> list[Obj]:
        return list(self.traces.list(namespace))

    @property
    def revision(self) -> int | None:
        return int(self.traces.resource_version)

    def subscribe(self, fn: Callable[[str, Obj], None]) -> Callable[[], None]:
        unsubscribe: Callable[[], None] = self.traces.subscribe(fn)
        return unsubscribe


def _provider(traces: Any) -> Provider:
    return TraceProvider(traces)


# ---- the table ---------------------------------------------------------------------


def trace_duration(seconds: Any) -> str:
    """A pod-life duration: milliseconds under a second, tenths under a minute, then kubectl's ages."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return NONE
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return human_duration(seconds)


def _current_stage(status: JSON) -> JSON:
    stages = status.get("stages")
    last = stages[-1] if isinstance(stages, list) and stages else None
    return last if isinstance(last, dict) else {}


def _cells(obj: JSON, now: datetime) -> list[Any]:
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    assert isinstance(status, dict)
    stage = _current_stage(status)
    return [
        (obj.get("metadata") or {}).get("name", ""),
        status.get("nodeName") or NONE,
        status.get("phase") or NONE,
        stage.get("name") or NONE,
        trace_duration(stage.get("offsetSeconds")),
        age(obj, now),
    ]


PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Node", description="The node the pod was bound to."),
        column("Phase", description="The pod's last phase."),
        column("Stage", description="The stage the pod is in now (the last one that began)."),
        column("Duration", description="From the pod's creation to the start of its current stage."),
        age_column(),
    ),
    cells=_cells,
)
tables.register_printer(GROUP, KIND, PRINTER)


# ---- the schema (OpenAPI v3, for kubectl explain) ------------------------------------------

_TIME = {"type": "string", "format": "date-time"}


def _string(description: str) -> JSON:
    return {"type": "string", "description": description}


def _number(description: str, nullable: bool = False) -> JSON:
    out: JSON = {"type": "number", "format": "double", "description": description}
    if nullable:
        out["nullable"] = True
    return out


_STAGE = {
    "type": "object",
    "description": "One stage of the pod's life, derived from the writes that made it.",
    "required": ["name", "start"],
    "properties": {
        "name": _string("The stage (Created, Scheduled, PortAllocated, SandboxCreated, ...; see docs/tracing.md)."),
        "start": {**_TIME, "description": "When the stage began (the time of the write that began it)."},
        "offsetSeconds": _number("Seconds from the pod's creation to the start of this stage."),
        "durationSeconds": _number("Seconds until the next stage began; null while this is the current stage.",
                                   nullable=True),
        "writer": _string("Who wrote the change that began the stage (field manager or user name)."),
        "reason": _string("A machine-readable reason, for failures and events."),
        "message": _string("A human-readable explanation (why nodes were rejected, a kill's grace period, ...)."),
        "failed": {"type": "boolean", "description": "True on failure stages (Unschedulable, ErrImagePull, "
                                                     "CrashLoopBackOff, OOMKilled, Evicted, ...)."},
    },
}
_DIFF = {
    "type": "object",
    "description": "One changed field of the written object.",
    "properties": {
        "op": _string("add, remove or replace."),
        "path": _string("The field's dotted path, such as spec.nodeName."),
        "old": {"description": "The value before the write (absent or null when added).",
                "x-kubernetes-preserve-unknown-fields": True},
        "new": {"description": "The value after the write (absent or null when removed).",
                "x-kubernetes-preserve-unknown-fields": True},
    },
}
_RECORD = {
    "type": "object",
    "description": "One recorded write to the pod or to an object of its life (its Port, its Events, its node).",
    "properties": {
        "resourceVersion": _string("The store revision of the write."),
        "time": {**_TIME, "description": "When the write was committed."},
        "offsetSeconds": _number("Seconds from the pod's creation to this write."),
        "kind": _string("The written object's kind: Pod, Port, Event or Node."),
        "name": _string("The written object's name."),
        "verb": _string("create, update or delete."),
        "writer": _string("The field manager of the write, else the user name."),
        "user": _string("The authenticated user (absent when the API server itself wrote)."),
        "diff": {"type": "array", "items": _DIFF, "description": "Field-level changes from the object's previous version."},
    },
}
SCHEMA: JSON = {
    "type": "object",
    "description": "PodTrace is the recorded life of one pod: its stages with their timings, and every write "
                   "that made them, with its writer and a field diff. Read-only; kept for a while after the pod "
                   "is deleted.",
    "properties": {
        "status": {
            "type": "object",
            "description": "What was recorded of the pod's life.",
            "properties": {
                "podUID": _string("The traced pod's uid."),
                "nodeName": _string("The node the pod was bound to, once scheduled."),
                "phase": _string("The pod's last phase."),
                "deleted": {"type": "boolean", "description": "True once the pod is gone from the store."},
                "stages": {"type": "array", "items": _STAGE, "description": "The stages, in the order they began."},
                "records": {"type": "array", "items": _RECORD,
                            "description": "Every recorded write, oldest first (only in a get of one trace)."},
            },
        },
    },
}


def resource_types() -> list[VirtualType]:
    """The ``podtraces`` kind, served while ``ctx.trace`` is set."""
    return [VirtualType(GROUP, VERSION, KIND, "podtraces", True, verbs=READ_VERBS,
                        schema=SCHEMA, source="trace", provider=_provider)]
