"""Recording core/v1 Events (what ``kubectl describe`` shows under Events).

Each component records what it did to an object -- Scheduled, Pulled, Created,
Started, Killing -- as an Event whose ``involvedObject`` points at it. Recording never
blocks the caller and never fails it: events are best-effort, as in Kubernetes.
Repeats of the same (object, reason, message) within the recorder are folded into one
Event whose ``count`` grows, as kubectl shows ``(x3 over 2m)``.

Names are the kubelet's and the scheduler's: ``<object>.<nanoseconds, hex>``, taken when
the event happens (not when its write runs), and strictly increasing within a recorder.
So a list of events -- which the API server returns in name order -- is in the order they
happened, and ``kubectl describe``, which sorts by the whole-second ``lastTimestamp``,
keeps that order among events of the same second instead of shuffling them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..machinery.tasks import Supervisor
from ..machinery.timeutil import now_rfc3339
from .base import EVENTS, Client, Obj

log = logging.getLogger(__name__)


_now = now_rfc3339


@dataclass(eq=False)
class _Recorded:
    """An Event this recorder created (or is creating): its name, how often it happened, whether it exists."""

    name: str
    count: int = 1
    ok: bool = False
    written: asyncio.Event = field(default_factory=asyncio.Event)


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._tasks = Supervisor(f"event recorder {component}", logger=log)
        self._seen: dict[tuple[str, str, str], _Recorded] = {}
        self._last_ns = 0

    def _happened_now(self) -> int:
        """Nanoseconds since the epoch, later than any this recorder gave before."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def event(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        meta = obj.get("metadata") or {}
        involved = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        self._tasks.start(self._record(involved, type_, reason, message, _now(), self._happened_now()))

    async def _record(self, involved: dict, type_: str, reason: str, message: str, now: str, at_ns: int) -> None:
        namespace = involved["namespace"] or "default"
        key = (involved["uid"], reason, message)
        seen = self._seen.get(key)
        if seen is not None:  # a repeat: once the first write is done, its count goes up
            seen.count += 1
            await seen.written.wait()
            if seen.ok:
                try:
                    await self.client.patch(EVENTS, seen.name, {"count": seen.count, "lastTimestamp": now}, namespace)
                except Exception as exc:  # events are best-effort
                    log.debug("event %s for %s not counted: %s", reason, involved["name"], exc)
            return
        # taken before the create is sent, so a repeat while it is in flight folds into it
        # instead of creating a second Event
        self._seen[key] = seen = _Recorded(f"{involved['name']}.{at_ns:x}")
        if len(self._seen) > 10_000:
            self._seen = {key: seen}
        ev = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": seen.name, "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        try:
            await self.client.create(EVENTS, ev, namespace)
            seen.ok = True
        except Exception as exc:  # events are best-effort
            log.debug("event %s for %s not recorded: %s", reason, involved["name"], exc)
            if self._seen.get(key) is seen:
                del self._seen[key]
        finally:
            seen.written.set()

    async def flush(self) -> None:
        await self._tasks.wait()
