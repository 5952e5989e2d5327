"""Rules of a container's life that every node implementation shares.

The real kubelet (:mod:`podlife.kubelet.pod_worker`) and the simulated nodes
(:mod:`podlife.sim.simulator`) must restart, back off and word their messages
exactly alike, or simulated pods would not look like real ones. These helpers
are that common ground; they are pure (no I/O, no CNI, no processes), so the
simulator can use them without pulling in the pod worker's dependencies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .status import Terminated

Obj = dict[str, Any]


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a ``time.Duration``: ``200ms``, ``10s``, ``2m40s``, ``5m0s``.

    Kubernetes' back-off messages print Go durations; users grep for them.
    """
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{secs:.9g}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


@lru_cache(maxsize=4096)
def image_id(image: str) -> str:
    """A stable digest reference for an image name (there are no real images).

    Cached: a cluster runs few distinct images, and every container start needs one
    (a sha256 per start is measurable at 10,000 simulated pods).
    """
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def should_restart(restart_policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` runs again under ``restart_policy``."""
    return restart_policy == "Always" or (restart_policy == "OnFailure" and exit_code != 0)


def format_pod(pod: Obj) -> str:
    """``name_namespace(uid)``, the kubelet's way of naming a pod in messages."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def terminated_from_api(state: Obj) -> Terminated:
    """A ``state.terminated`` of the API as a :class:`Terminated` (to resume from a pod's status)."""
    return Terminated(
        exit_code=int(state.get("exitCode", 0)),
        reason=str(state.get("reason", "")),
        started_at=str(state.get("startedAt") or ""),
        finished_at=str(state.get("finishedAt") or ""),
        container_id=str(state.get("containerID") or ""),
        message=str(state.get("message") or ""),
    )


@dataclass
class CrashBackoff:
    """Kubernetes' per-container restart backoff (client-go ``flowcontrol.Backoff``).

    Times are event-loop seconds. ``delay`` 0 means "no entry": the next
    restart is immediate. An entry older than twice the maximum is forgotten,
    which is how a container that ran 10 minutes starts again from 10 s.
    """

    initial: float
    maximum: float
    delay: float = 0.0
    last_update: float = 0.0

    def _expired(self, finished: float) -> bool:
        return not self.delay or finished - self.last_update > 2 * self.maximum

    def applies(self, finished: float) -> bool:
        """Whether restarting a container that exited at ``finished`` waits (a crash loop)."""
        return not self._expired(finished)

    def remaining(self, finished: float, now: float) -> float:
        """Seconds to wait before restarting a container that exited at ``finished``."""
        if self._expired(finished):
            return 0.0
        return max(0.0, finished + self.delay - now)

    def restarted(self, finished: float) -> None:
        """A restart happens now: the next crash waits longer."""
        self.delay = self.initial if self._expired(finished) else min(self.delay * 2, self.maximum)
        self.last_update = finished


__all__ = ["CrashBackoff", "format_pod", "go_duration", "image_id", "should_restart", "terminated_from_api"]
