"""Kubernetes timestamps: RFC 3339 in UTC, one-second resolution (``metav1.Time``).

Every component stamps objects (creationTimestamp, lastTransitionTime, event times),
often thousands of times a second; formatting a datetime each time is measurable, so
the string for the current second is made once and reused.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_cached_second = -1
_cached_text = ""


def now_rfc3339() -> str:
    """The current time as ``2026-01-02T03:04:05Z``."""
    global _cached_second, _cached_text
    second = int(time.time())
    if second != _cached_second:
        _cached_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        _cached_second = second
    return _cached_text


def format_rfc3339(moment: datetime) -> str:
    """``moment`` (naive means UTC) as ``2026-01-02T03:04:05Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime | None = None) -> str:
    """``metav1.MicroTime`` text (microseconds), as Lease and Event times are written."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration with units (``30s``, ``1m30s``, ``500ms``, or ``0``); None if it is not one.

    The one parser behind every duration podlife reads (kubelet flags, stage files);
    each caller words its own error.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _GO_DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None
