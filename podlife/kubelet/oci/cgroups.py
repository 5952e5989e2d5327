"""cgroups of pods and containers: where they are, usage stats, OOM kills, removal.

Design
------
runc creates and removes a container's cgroup itself, from ``linux.cgroupsPath``
(cgroupfs driver, a path below the root of every hierarchy). podlife names them
``/<parent>/<pod-uid>/<container-id>`` (parent ``podlife``): one cgroup per pod,
one per container below it, the layout of the kubelet's ``kubepods/.../pod<uid>``.
This module does the rest, reading and writing cgroupfs files only:

* :func:`detect_layout` reads ``/proc/self/mountinfo`` once: a ``cgroup2`` mount at
  the cgroup root is the unified (v2) layout; otherwise each ``cgroup`` (v1) mount
  names its controllers (``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/cpu,cpuacct``
  ...). A hybrid host (v1 controllers plus a controller-less ``unified`` v2 mount,
  as here) is v1 for limits and stats.
* :meth:`CgroupLayout.create_pod` makes the pod cgroup in the memory, cpu and pids
  hierarchies and, when the pod has them, writes pod-level limits
  (Kubernetes' ``ResourceConfigForPod``: the sum of the containers' limits, only
  when every container has one). runc creates the pod level in the other v1
  hierarchies when it creates a container under it.
* :meth:`CgroupLayout.stats` reads a container's usage for ``kubectl top``:
  memory usage and working set (usage minus inactive file pages, cAdvisor's
  definition, which the kubelet's summary API reports), CPU time in nanoseconds
  (v1 ``cpuacct.usage``, v2 ``cpu.stat usage_usec``), pids.
* :meth:`CgroupLayout.oom_kills` reads the kernel's OOM-kill counter (v1
  ``memory.oom_control``'s ``oom_kill``, v2 ``memory.events``'s ``oom_kill``), one of
  the two ways a container's exit is found to be an OOM kill (the other is conmon's
  ``oom`` file).
* :meth:`CgroupLayout.remove` removes a cgroup and whatever is left below it in
  every hierarchy, deepest first (``rmdir``: a cgroup with processes stays and is
  reported).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podlife.kubelet.oci.resources import ContainerResources

__all__ = [
    "CgroupLayout",
    "CgroupStats",
    "container_cgroup_path",
    "detect_layout",
    "pod_cgroup_path",
]

log = logging.getLogger(__name__)

#: The hierarchy under which podlife puts its pods.
DEFAULT_PARENT = "podlife"
#: v1 controllers podlife writes pod-level limits into.
POD_CONTROLLERS = ("memory", "cpu", "pids")


def pod_cgroup_path(pod_uid: str, parent: str = DEFAULT_PARENT) -> str:
    """``/<parent>/<pod-uid>``: the pod's cgroup, relative to every hierarchy's root."""
    return f"/{parent.strip('/')}/{pod_uid}"


def container_cgroup_path(pod_uid: str, container_id: str, parent: str = DEFAULT_PARENT) -> str:
    """``/<parent>/<pod-uid>/<container-id>``: the ``linux.cgroupsPath`` of a container."""
    return f"{pod_cgroup_path(pod_uid, parent)}/{container_id}"


@dataclass(frozen=True)
class CgroupStats:
    """A container's usage at one moment (what the kubelet's summary API reports)."""

    memory_usage_bytes: int | None
    memory_working_set_bytes: int | None
    cpu_usage_nanoseconds: int | None
    pids: int | None


@dataclass(frozen=True)
class CgroupLayout:
    """Where this machine's cgroup hierarchies are mounted."""

    version: int
    #: v1: controller name -> mount point (and "" -> the unified mount of a hybrid host);
    #: v2: {"": the unified mount point}.
    mounts: dict[str, Path]

    # ------------------------------------------------------------ paths

    def controller_dir(self, controller: str, path: str) -> Path | None:
        """The directory of cgroup ``path`` in ``controller``'s hierarchy (None: not mounted)."""
        root = self.mounts.get("" if self.version == 2 else controller)
        return None if root is None else root / path.lstrip("/")

    def hierarchy_dirs(self, path: str) -> list[Path]:
        """``path`` in every hierarchy (each mount point once)."""
        roots = dict.fromkeys(self.mounts.values())
        return [root / path.lstrip("/") for root in roots]

    # ------------------------------------------------------------ pods

    def create_pod(self, path: str, resources: ContainerResources | None = None) -> None:
        """Create the pod cgroup ``path`` and write pod-level limits when given."""
        controllers = ("",) if self.version == 2 else POD_CONTROLLERS
        for controller in controllers:
            directory = self.controller_dir(controller, path)
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
        if resources is not None:
            self._write_limits(path, resources)

    def _write_limits(self, path: str, resources: ContainerResources) -> None:
        quota = resources.cpu_quota()
        if self.version == 2:
            d = self.mounts[""] / path.lstrip("/")
            _write(d / "cpu.weight", str(1 + (resources.cpu_shares() - 2) * 9999 // 262142))
            if quota is not None:
                _write(d / "cpu.max", f"{quota} {resources.cpu_period_us}")
            if resources.memory_limit_bytes:
                _write(d / "memory.max", str(resources.memory_limit_bytes))
            if resources.pids_limit:
                _write(d / "pids.max", str(resources.pids_limit))
            return
        cpu = self.controller_dir("cpu", path)
        if cpu is not None:
            _write(cpu / "cpu.shares", str(resources.cpu_shares()))
            if quota is not None:
                _write(cpu / "cpu.cfs_period_us", str(resources.cpu_period_us))
                _write(cpu / "cpu.cfs_quota_us", str(quota))
        memory = self.controller_dir("memory", path)
        if memory is not None and resources.memory_limit_bytes:
            _write(memory / "memory.limit_in_bytes", str(resources.memory_limit_bytes))
        pids = self.controller_dir("pids", path)
        if pids is not None and resources.pids_limit:
            _write(pids / "pids.max", str(resources.pids_limit))

    # ------------------------------------------------------------ reading

    def stats(self, path: str) -> CgroupStats:
        """Usage of cgroup ``path``; a number is None when its file cannot be read."""
        if self.version == 2:
            d = self.mounts[""] / path.lstrip("/")
            usage = _read_int(d / "memory.current")
            inactive = _read_keyed(d / "memory.stat", "inactive_file")
            cpu_us = _read_keyed(d / "cpu.stat", "usage_usec")
            cpu_ns = None if cpu_us is None else cpu_us * 1000
            pids = _read_int(d / "pids.current")
        else:
            memory = self.controller_dir("memory", path)
            usage = None if memory is None else _read_int(memory / "memory.usage_in_bytes")
            inactive = None if memory is None else _read_keyed(memory / "memory.stat", "total_inactive_file")
            cpuacct = self.controller_dir("cpuacct", path)
            cpu_ns = None if cpuacct is None else _read_int(cpuacct / "cpuacct.usage")
            pids_dir = self.controller_dir("pids", path)
            pids = None if pids_dir is None else _read_int(pids_dir / "pids.current")
        working_set = None if usage is None else max(0, usage - (inactive or 0))
        return CgroupStats(usage, working_set, cpu_ns, pids)

    def oom_kills(self, path: str) -> int | None:
        """How many processes the kernel OOM-killed in cgroup ``path`` (None: unknown)."""
        if self.version == 2:
            return _read_keyed(self.mounts[""] / path.lstrip("/") / "memory.events", "oom_kill")
        memory = self.controller_dir("memory", path)
        return None if memory is None else _read_keyed(memory / "memory.oom_control", "oom_kill")

    def exists(self, path: str) -> bool:
        """Whether cgroup ``path`` exists in any hierarchy."""
        return any(d.is_dir() for d in self.hierarchy_dirs(path))

    # ------------------------------------------------------------ removal

    def remove(self, path: str) -> list[Path]:
        """Remove cgroup ``path`` and its descendants everywhere; return the dirs that could not go."""
        left: list[Path] = []
        for top in self.hierarchy_dirs(path):
            for directory in _deepest_first(top):
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        log.warning("cannot remove cgroup %s: %s", directory, exc.strerror)
                        left.append(directory)
        return left


def _deepest_first(top: Path) -> Iterator[Path]:
    if not top.is_dir():
        return
    for dirpath, _dirnames, _files in os.walk(top, topdown=False):
        yield Path(dirpath)


def detect_layout(mountinfo: str | None = None) -> CgroupLayout | None:
    """The machine's cgroup layout from ``/proc/self/mountinfo`` text (None: no cgroups mounted)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in mountinfo.splitlines():
        parts = line.split()
        if " - " not in line or len(parts) < 10:
            continue
        sep = parts.index("-")
        fstype, options = parts[sep + 1], parts[sep + 3] if len(parts) > sep + 3 else ""
        mount_point = Path(parts[4])
        if fstype == "cgroup2":
            v2 = v2 or mount_point
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in {"rw", "ro"} or "=" in option and not option.startswith("name="):
                    continue
                v1.setdefault(option, mount_point)
    if v1.get("memory") is not None:
        if v2 is not None:  # hybrid: runc also makes the cgroup in the unified hierarchy
            v1[""] = v2
        return CgroupLayout(1, v1)
    if v2 is not None:
        return CgroupLayout(2, {"": v2})
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None
