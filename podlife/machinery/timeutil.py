"""Kubernetes timestamps: RFC 3339 in UTC, one-second resolution (``metav1.Time``).

Every component stamps objects (creationTimestamp, lastTransitionTime, event times),
often thousands of times a second; formatting a datetime each time is measurable, so
the string for the current second is made once and reused.
"""

from __future__ import annotations

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
