"""The container log manager: rotate container logs by size, keep a bounded number of them.

Design
------
As the kubelet's ``ContainerLogManager`` does (``containerLogMaxSize`` 10Mi,
``containerLogMaxFiles`` 5, ``containerLogMonitorInterval`` 10 s): every interval
each running container's current log file (``<restartCount>.log``) is measured;
one that has grown past the maximum is renamed to ``<restartCount>.log.<UTC
time>`` (``20061231-235959``, the kubelet's suffix) and the runtime is asked to
reopen its log, so new output goes to a fresh file. Rotated files beyond
``max_files - 1`` are deleted, oldest first, so at most ``max_files`` files of one
instance exist. ``kubectl logs`` reads the current file, as it does on Kubernetes.

Only a runtime that can reopen a log rotates (``runtime.reopen_log`` true for
conmon, which keeps writing through the agent's restarts); renaming a file that
nobody reopens would lose output, so without it nothing is renamed. The decision
is a pure function (:func:`rotation_plan`) apart from the renames and deletes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .runtimes import ContainerLike, ContainerRuntime

log = logging.getLogger(__name__)

__all__ = ["ContainerLogManager", "LogRotationConfig", "RotationPlan", "rotation_plan"]

#: The suffix format of a rotated log (the kubelet's ``timestampFormat``).
ROTATED_SUFFIX_FORMAT = "%Y%m%d-%H%M%S"


@dataclass(frozen=True)
class LogRotationConfig:
    """Kubernetes' defaults; tests shrink them."""

    max_size: int = 10 * 1024 * 1024
    max_files: int = 5
    interval: float = 10.0


@dataclass(frozen=True)
class RotationPlan:
    """What to do with one container's log: rename the current one to ``rotate_to``, delete ``remove``."""

    rotate_to: Path | None
    remove: tuple[Path, ...]


def rotated_files(current: Path) -> list[Path]:
    """The rotated files of ``current``, oldest first (their suffixes sort by time)."""
    prefix = current.name + "."
    try:
        names = sorted(n for n in os.listdir(current.parent) if n.startswith(prefix))
    except OSError:
        return []
    return [current.parent / n for n in names]


def rotation_plan(current: Path, size: int, rotated: list[Path], config: LogRotationConfig, now: datetime) -> RotationPlan:
    """Whether to rotate ``current`` (``size`` bytes) and which older files go (pure)."""
    rotate_to = None
    keep = max(config.max_files - 1, 0)
    after = list(rotated)
    if size > config.max_size and config.max_files > 1:
        rotate_to = current.with_name(f"{current.name}.{now.strftime(ROTATED_SUFFIX_FORMAT)}")
        if rotate_to in after:  # two rotations in one second: keep the name unique
            rotate_to = rotate_to.with_name(f"{rotate_to.name}-{len(after)}")
        after.append(rotate_to)
    excess = len(after) - keep
    return RotationPlan(rotate_to, tuple(after[:excess]) if excess > 0 else ())


class ContainerLogManager:
    """Rotates the logs of a runtime's running containers (see the module's design)."""

    def __init__(self, runtime: ContainerRuntime, config: LogRotationConfig | None = None) -> None:
        self.runtime = runtime
        self.config = config or LogRotationConfig()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.rotate_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("container log rotation failed; trying again at the next interval")

    async def rotate_all(self) -> None:
        for container in list(self.runtime.running_containers()):
            await asyncio.to_thread(self._rotate, container)

    def _rotate(self, container: ContainerLike) -> None:
        current = container.log_path
        try:
            size = current.stat().st_size
        except OSError:
            return
        plan = rotation_plan(current, size, rotated_files(current), self.config, datetime.now(UTC))
        if plan.rotate_to is not None:
            os.rename(current, plan.rotate_to)
            if not self.runtime.reopen_log(container):
                log.warning("%s: the runtime did not reopen its log after rotation", container.name)
        for old in plan.remove:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
