"""Node-pressure eviction: the kubelet's eviction manager (Kubernetes' ``pkg/kubelet/eviction``).

Design
------
Every ``housekeeping_interval`` (Kubernetes: 10 s) the manager measures the node, decides,
and evicts at most one pod. Deciding is pure; measuring and acting are thin shells.

**Signals** (:func:`observe_node`):

* ``memory.available``: ``MemAvailable`` of ``/proc/meminfo`` (capacity ``MemTotal``). Kubernetes
  computes ``MemTotal`` minus the root cgroup's working set; ``MemAvailable`` is the kernel's
  own estimate of the same thing and is what a host without a root memory cgroup file has.
* ``nodefs.available`` / ``nodefs.inodesFree``: ``statvfs`` of the kubelet's root directory.
* ``imagefs.available`` / ``imagefs.inodesFree``: ``statvfs`` of the image store's directory
  (the same numbers as nodefs when it is on the same filesystem, as Kubernetes reports them).
* ``pid.available``: ``kernel.pid_max`` minus the kernel's scheduling entities (the total of
  the fourth field of ``/proc/loadavg``).

**Thresholds** are parsed from Kubernetes' syntax (:func:`parse_thresholds`:
``memory.available<100Mi,nodefs.available<10%``), hard and soft, soft ones with their grace
periods (:func:`parse_grace_periods`: ``memory.available=30s``). Kubernetes' default hard
thresholds apply only when ``--eviction-hard`` is not given at all (as its docs say: giving
one replaces them all). Left out: ``--eviction-minimum-reclaim`` (a threshold is resolved as
soon as the signal is above it again), ``allocatableMemory.available`` and the
``containerfs`` signals.

**Deciding** (:func:`synchronize`, pure over :class:`EvictionState`): the thresholds met now;
when each was first met; the node conditions they raise (``MemoryPressure``,
``DiskPressure``, ``PIDPressure``), which stay True until no threshold of theirs has been met
for ``eviction-pressure-transition-period`` (5 m); and the thresholds whose grace period is
over (hard: none). The resource to reclaim is the first of those, memory before the others.

**Acting** (:class:`EvictionManager`): first, every pod whose emptyDir holds more than its
``sizeLimit`` is evicted (``Usage of EmptyDir volume "x" exceeds the limit "1Mi". ``, grace 0),
as Kubernetes' local storage eviction does, pressure or not. Then, under pressure: a Warning
``EvictionThresholdMet`` event on the Node; for disk, unused images are collected first (the
runtime's image GC, which only acts above its high threshold) and the node is measured
again; then the active pods are ranked (:func:`rank_pods`) -- those using more of the starved
resource than they request first, then lower priority, then by how much they use above their
requests (PIDs: by priority, then process count) -- and the first is evicted through its
:class:`~podlife.kubelet.pod_worker.PodWorker` with Kubernetes' message
(:func:`eviction_message`). A hard threshold gives grace 0 (the machine floors it at 2 s), a
soft one ``eviction-max-pod-grace-period`` (no more than the pod's own). As in Kubernetes,
the manager then waits until the pod's containers are gone and its volumes removed, up to
30 s, before it measures again.

**Pod usage** (:func:`measure_pods`): memory is the working set of the container's cgroup
(usage minus inactive file pages) for real containers, the RSS of the process's session for
host processes; disk is the pod's emptyDir volumes plus its containers' logs (the writable
layer of a container is not counted); PIDs are the cgroup's or the session's processes.

**Taints.** The kubelet sets the Node's conditions from :attr:`EvictionManager.pressure`
and, when they flip, the taints ``node.kubernetes.io/{memory,disk,pid}-pressure:NoSchedule``
(:func:`podlife.node.node_status.pressure_taints`, shared with simulated nodes). In
Kubernetes the node lifecycle controller adds those taints from the conditions; podlife
has no such controller yet, so the kubelet does it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from ..machinery.timeutil import go_duration_seconds
from ..machinery.resources import BINARY_SI, Quantity, format_quantity, parse, pod_requests
from ..client.base import Obj
from ..client.events import EventRecorder

log = logging.getLogger(__name__)

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
PID_AVAILABLE = "pid.available"

#: the eviction signal an emptyDir over its sizeLimit is counted under (Kubernetes' signalEmptyDirFsLimit)
EMPTY_DIR_SIGNAL = "emptydirfs.limit"
#: the resource each signal starves (Kubernetes' signalToResource)
SIGNAL_RESOURCE = {
    MEMORY_AVAILABLE: "memory", NODEFS_AVAILABLE: "ephemeral-storage", IMAGEFS_AVAILABLE: "ephemeral-storage",
    NODEFS_INODES_FREE: "inodes", IMAGEFS_INODES_FREE: "inodes", PID_AVAILABLE: "pids",
}
#: the node condition each signal raises
SIGNAL_CONDITION = {
    MEMORY_AVAILABLE: "MemoryPressure", NODEFS_AVAILABLE: "DiskPressure", IMAGEFS_AVAILABLE: "DiskPressure",
    NODEFS_INODES_FREE: "DiskPressure", IMAGEFS_INODES_FREE: "DiskPressure", PID_AVAILABLE: "PIDPressure",
}
#: Kubernetes' default hard thresholds on Linux (none for PIDs)
DEFAULT_HARD = "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%"
#: Kubernetes' podCleanupTimeout: how long an eviction waits for the pod to be cleaned up
POD_CLEANUP_TIMEOUT = 30.0

#: the taint each pressure condition puts on the Node (effect NoSchedule)

NODE_LOW_MESSAGE = "The node was low on resource: {resource}. "
THRESHOLD_MET_MESSAGE = "Threshold quantity: {quantity}, available: {available}. "
CONTAINER_MESSAGE = "Container {name} was using {usage}, request is {request}, has larger consumption of {resource}. "
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}". '


class EvictionConfigError(ValueError):
    """An eviction flag that does not parse (the message says which and why)."""


# =========================================================================== configuration


@dataclass(frozen=True)
class Threshold:
    """``signal < quantity`` (or ``< percentage`` of the capacity); ``grace`` only for soft ones."""

    signal: str
    quantity: Quantity | None = None
    percentage: Fraction | None = None
    hard: bool = True
    grace: float = 0.0

    def value(self, capacity: int) -> Fraction:
        """The threshold in the signal's units (bytes, inodes, PIDs)."""
        if self.percentage is not None:
            return Fraction(int(capacity * self.percentage))
        assert self.quantity is not None
        return self.quantity.value

    def text(self, capacity: int) -> str:
        """As Kubernetes prints it in a message (a percentage resolved against the capacity)."""
        if self.percentage is not None:
            return format_quantity(Quantity(self.value(capacity), BINARY_SI))
        assert self.quantity is not None
        return str(self.quantity)




def parse_duration(text: str) -> float:
    """A Go duration (``30s``, ``1m30s``, ``500ms``, ``0``) in seconds."""
    seconds = go_duration_seconds(text)
    if seconds is None:
        raise EvictionConfigError(f'time: invalid duration "{text.strip()}"')
    return seconds


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_grace_periods(text: str) -> dict[str, float]:
    """``memory.available=30s,nodefs.available=1m`` -> {signal: seconds}."""
    out: dict[str, float] = {}
    for item in _items(text):
        signal, sep, duration = item.partition("=")
        if not sep or signal not in SIGNAL_RESOURCE:
            raise EvictionConfigError(f"invalid eviction grace period {item!r}")
        seconds = parse_duration(duration)
        if seconds < 0:
            raise EvictionConfigError(f"invalid eviction grace period {item!r}: must not be negative")
        out[signal] = seconds
    return out


def parse_thresholds(text: str, *, hard: bool = True, grace_periods: Mapping[str, float] | None = None
                     ) -> list[Threshold]:
    """Kubernetes' ``signal<quantity`` list; soft thresholds need a grace period each."""
    out: list[Threshold] = []
    seen: set[str] = set()
    for item in _items(text):
        signal, sep, value = item.partition("<")
        signal, value = signal.strip(), value.strip()
        if not sep:
            raise EvictionConfigError(f"invalid eviction threshold {item!r}: only '<' is supported")
        if signal not in SIGNAL_RESOURCE:
            raise EvictionConfigError(f"unsupported eviction signal {signal}")
        if signal in seen:
            raise EvictionConfigError(f"found duplicate eviction threshold for signal {signal}")
        seen.add(signal)
        grace = 0.0
        if not hard:
            if grace_periods is None or signal not in grace_periods:
                raise EvictionConfigError(f"grace period must be specified for the soft eviction threshold {signal}")
            grace = grace_periods[signal]
        if value.endswith("%"):
            try:
                percent = Fraction(value[:-1])
            except ValueError:
                raise EvictionConfigError(f"invalid eviction threshold {item!r}") from None
            if not 0 < percent <= 100:
                raise EvictionConfigError(f"eviction percentage threshold {signal} must be >0% and <=100%: {value}")
            out.append(Threshold(signal, percentage=percent / 100, hard=hard, grace=grace))
            continue
        quantity = parse(value)
        if quantity is None or quantity.value < 0:
            raise EvictionConfigError(f"invalid eviction threshold {item!r}")
        out.append(Threshold(signal, quantity=quantity, hard=hard, grace=grace))
    return out


@dataclass
class EvictionConfig:
    """The kubelet's eviction flags (Kubernetes' names and defaults; tests shrink the intervals).

    ``hard`` None means Kubernetes' defaults (:data:`DEFAULT_HARD`); "" means none.
    """

    hard: str | None = None
    soft: str = ""
    soft_grace_period: str = ""
    pressure_transition_period: float = 300.0
    max_pod_grace_period: int = 0
    housekeeping_interval: float = 10.0
    pod_cleanup_timeout: float = POD_CLEANUP_TIMEOUT

    def thresholds(self) -> list[Threshold]:
        """Hard and soft thresholds together; raises :class:`EvictionConfigError`."""
        hard = parse_thresholds(DEFAULT_HARD if self.hard is None else self.hard)
        soft = parse_thresholds(self.soft, hard=False, grace_periods=parse_grace_periods(self.soft_grace_period))
        return hard + soft


# =========================================================================== deciding


@dataclass(frozen=True)
class Observation:
    """A signal now: what is available of what capacity."""

    available: int
    capacity: int


@dataclass
class EvictionState:
    """What the manager remembers between passes (the times are the caller's clock)."""

    first_observed: dict[Threshold, float] = field(default_factory=dict)
    condition_last_observed: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """One pass's outcome: the pressure conditions to report and the thresholds to act on."""

    pressure: frozenset[str]
    met: tuple[Threshold, ...]
    actionable: tuple[Threshold, ...]

    @property
    def resource(self) -> str | None:
        """The resource to reclaim (memory before the others), or None."""
        ordered = sorted(self.actionable, key=lambda t: t.signal != MEMORY_AVAILABLE)
        return SIGNAL_RESOURCE[ordered[0].signal] if ordered else None

    @property
    def threshold(self) -> Threshold | None:
        ordered = sorted(self.actionable, key=lambda t: t.signal != MEMORY_AVAILABLE)
        return ordered[0] if ordered else None


def thresholds_met(thresholds: Iterable[Threshold], observations: Mapping[str, Observation]) -> list[Threshold]:
    """The thresholds whose signal is below them now (an unobserved signal meets none)."""
    met = []
    for threshold in thresholds:
        observed = observations.get(threshold.signal)
        if observed is not None and observed.available < threshold.value(observed.capacity):
            met.append(threshold)
    return met


def synchronize(state: EvictionState, thresholds: Sequence[Threshold], observations: Mapping[str, Observation],
                now: float, transition_period: float) -> Decision:
    """Update ``state`` with this pass's observations and decide (Kubernetes' synchronize)."""
    met = thresholds_met(thresholds, observations)
    state.first_observed = {t: state.first_observed.get(t, now) for t in met}
    for threshold in met:
        state.condition_last_observed[SIGNAL_CONDITION[threshold.signal]] = now
    state.condition_last_observed = {c: at for c, at in state.condition_last_observed.items()
                                     if now - at < transition_period or c in {SIGNAL_CONDITION[t.signal] for t in met}}
    actionable = tuple(t for t in met if now - state.first_observed[t] >= t.grace)
    return Decision(frozenset(state.condition_last_observed), tuple(met), actionable)


# =========================================================================== pods


@dataclass
class PodStats:
    """A pod's usage: per container (memory working set, log bytes), its emptyDirs, processes."""

    pod: Obj
    memory: dict[str, int] = field(default_factory=dict)
    logs: dict[str, int] = field(default_factory=dict)
    volumes: dict[str, int] = field(default_factory=dict)
    inodes: int = 0
    pids: int = 0

    def usage(self, resource: str) -> int:
        if resource == "memory":
            return sum(self.memory.values())
        if resource == "ephemeral-storage":
            return sum(self.logs.values()) + sum(self.volumes.values())
        if resource == "inodes":
            return self.inodes
        return self.pids


def _request(pod: Obj, resource: str) -> Fraction:
    quantity = pod_requests(pod.get("spec") or {}).get(resource)
    return quantity.value if quantity is not None else Fraction(0)


def rank_pods(stats: Sequence[PodStats], resource: str) -> list[PodStats]:
    """Eviction order for ``resource``: over-requests first, then lower priority, then more usage above requests."""
    def priority(s: PodStats) -> int:
        return int((s.pod.get("spec") or {}).get("priority") or 0)

    if resource == "pids":
        return sorted(stats, key=lambda s: (priority(s), -s.pids))

    def key(s: PodStats) -> tuple[bool, int, Fraction]:
        above = s.usage(resource) - _request(s.pod, resource)
        return (not above > 0, priority(s), -above)

    return sorted(stats, key=key)


def _binary(value: int | Fraction) -> str:
    return format_quantity(Quantity(Fraction(value), BINARY_SI))


def eviction_message(resource: str, stats: PodStats, met: Sequence[Threshold],
                     observations: Mapping[str, Observation]) -> str:
    """Kubernetes' message: the resource, the threshold and what is left, the containers over their requests."""
    message = NODE_LOW_MESSAGE.format(resource=resource)
    for threshold in met:
        observed = observations.get(threshold.signal)
        if SIGNAL_RESOURCE[threshold.signal] == resource and observed is not None:
            message += THRESHOLD_MET_MESSAGE.format(quantity=threshold.text(observed.capacity),
                                                    available=_binary(observed.available))
            break
    for container in (stats.pod.get("spec") or {}).get("containers") or []:
        name = container.get("name", "")
        if resource == "memory":
            usage = stats.memory.get(name)
        elif resource == "ephemeral-storage":
            usage = stats.logs.get(name)
        else:
            usage = None
        if usage is None:
            continue
        raw = ((container.get("resources") or {}).get("requests") or {}).get(resource)
        request = parse(raw) if raw is not None else None
        if usage > (request.value if request is not None else 0):
            message += CONTAINER_MESSAGE.format(name=name, usage=_binary(usage),
                                                request=str(request) if request is not None else "0",
                                                resource=resource)
    return message


def empty_dir_violation(stats: PodStats) -> str | None:
    """The eviction message of the first emptyDir of the pod holding more than its ``sizeLimit``."""
    for volume in (stats.pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if source is None or source.get("sizeLimit") in (None, ""):
            continue
        limit = parse(source["sizeLimit"])
        used = stats.volumes.get(volume.get("name", ""))
        if limit is not None and limit.value > 0 and used is not None and used > limit.value:
            return EMPTY_DIR_MESSAGE.format(name=volume["name"], limit=str(limit))
    return None


def eviction_grace(threshold: Threshold, pod: Obj, max_pod_grace_period: int) -> float:
    """Hard: 0 (the machine's minimum applies); soft: the max pod grace period, no more than the pod's own."""
    if threshold.hard:
        return 0.0
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return float(min(max_pod_grace_period, own) if isinstance(own, int) else max_pod_grace_period)


# =========================================================================== measuring


def meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as {field: KiB}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def _statvfs(path: Path) -> tuple[Observation, Observation] | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize),
            Observation(st.f_favail, st.f_files))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def observe_node(root_dir: Path, image_dir: Path | None = None) -> dict[str, Observation]:
    """Every signal of this machine now (a signal that cannot be read is left out)."""
    out: dict[str, Observation] = {}
    mem = meminfo(_read("/proc/meminfo"))
    if "MemAvailable" in mem and "MemTotal" in mem:
        out[MEMORY_AVAILABLE] = Observation(mem["MemAvailable"] * 1024, mem["MemTotal"] * 1024)
    nodefs = _statvfs(root_dir)
    if nodefs is not None:
        out[NODEFS_AVAILABLE], out[NODEFS_INODES_FREE] = nodefs
    imagefs = _statvfs(image_dir) if image_dir is not None and image_dir.exists() else nodefs
    if imagefs is not None:
        out[IMAGEFS_AVAILABLE], out[IMAGEFS_INODES_FREE] = imagefs
    pid_max, loadavg = _read("/proc/sys/kernel/pid_max").strip(), _read("/proc/loadavg").split()
    if pid_max.isdigit() and len(loadavg) >= 4 and "/" in loadavg[3]:
        running = int(loadavg[3].partition("/")[2])
        out[PID_AVAILABLE] = Observation(int(pid_max) - running, int(pid_max))
    return out


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes in allocated blocks, inodes) under ``path``, not following links; (0, 0) if absent."""
    total, inodes = 0, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_blocks * 512
            inodes += 1
    return total, inodes


def _session_processes(sid: int) -> list[int]:
    """The pids whose session is ``sid`` (a host-process container is its own session)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and fields[3] == str(sid):
            out.append(int(entry))
    return out


def _rss_bytes(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RuntimeLike(Protocol):
    """What measuring needs of the kubelet's runtime."""

    def running_containers(self, pod_key: Any = None) -> Sequence[Any]: ...

    def log_path(self, pod_key: Any, container: str, restart_count: int) -> Path: ...


class WorkerLike(Protocol):
    """What the manager needs of a pod worker."""

    pod: Obj
    uid: str
    pod_key: Any
    machine: Any

    def evict(self, message: str, grace: float | None = None) -> None: ...


def _container_memory_and_pids(runtime: Any, handle: Any) -> tuple[int | None, int]:
    oci = getattr(runtime, "oci", None)
    if oci is not None and hasattr(handle, "cgroup_path"):
        stats = oci.stats(handle)
        return stats.memory_working_set_bytes, stats.pids or 0
    pid = getattr(handle, "pid", None)
    if isinstance(pid, int):
        pids = _session_processes(pid)
        return sum(_rss_bytes(p) for p in pids), len(pids)
    return None, 0


def measure_pod(worker: WorkerLike, runtime: RuntimeLike, volume_dir: Callable[[str, str], Path]) -> PodStats:
    """The usage of one pod now (blocking reads: run in a thread)."""
    stats = PodStats(worker.pod)
    for handle in runtime.running_containers(worker.pod_key):
        memory, pids = _container_memory_and_pids(runtime, handle)
        if memory is not None:
            stats.memory[handle.name] = stats.memory.get(handle.name, 0) + memory
        stats.pids += pids
    for container in (worker.pod.get("spec") or {}).get("containers") or []:
        name = container.get("name", "")
        used, inodes = disk_usage(runtime.log_path(worker.pod_key, name, 0).parent)
        stats.logs[name] = used
        stats.inodes += inodes
    for volume in (worker.pod.get("spec") or {}).get("volumes") or []:
        if "emptyDir" in volume:
            used, inodes = disk_usage(volume_dir(worker.uid, volume["name"]))
            stats.volumes[volume["name"]] = used
            stats.inodes += inodes
    return stats


def is_active(worker: WorkerLike) -> bool:
    """Whether the pod may still run (not terminal, not failed by the node, not being deleted)."""
    pod = worker.pod
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return getattr(worker.machine, "failure", None) is None


# =========================================================================== the loop


class EvictionManager:
    """Measures, decides and evicts every ``housekeeping_interval`` (see the module's design).

    ``workers()`` gives the kubelet's pod workers; ``on_pressure_change(previous)`` is awaited
    when the set of pressure conditions changes (the kubelet writes its Node then; a
    failure is tried again at the next pass);
    ``reclaim_images()`` is the runtime's image GC; ``node_ref()`` is the Node for events.
    """

    def __init__(self, config: EvictionConfig, *, root_dir: Path, runtime: RuntimeLike,
                 volume_dir: Callable[[str, str], Path], workers: Callable[[], Iterable[WorkerLike]],
                 recorder: EventRecorder, node_ref: Callable[[], Obj],
                 on_pressure_change: Callable[[frozenset[str]], Awaitable[None]],
                 reclaim_images: Callable[[], Awaitable[list[str]]], image_dir: Path | None = None) -> None:
        self.config = config
        self.thresholds = config.thresholds()
        self.root_dir = root_dir
        self.image_dir = image_dir
        self.runtime = runtime
        self.volume_dir = volume_dir
        self.workers = workers
        self.recorder = recorder
        self.node_ref = node_ref
        self.on_pressure_change = on_pressure_change
        self.reclaim_images = reclaim_images
        self.state = EvictionState()
        #: the pressure conditions now True (MemoryPressure, DiskPressure, PIDPressure)
        self.pressure: frozenset[str] = frozenset()
        self._reported: frozenset[str] = frozenset()  # what the kubelet has written to its Node
        #: told the signal of every eviction (``kubelet_evictions{eviction_signal}``)
        self.on_evicted: Callable[[str], None] = lambda signal: None

    def _clock(self) -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        while True:
            try:
                evicted = await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("eviction manager: pass failed")
                evicted = None
            if evicted is not None:
                await self._wait_for_cleanup(evicted)
            await asyncio.sleep(self.config.housekeeping_interval)

    async def _observe(self) -> dict[str, Observation]:
        return await asyncio.to_thread(observe_node, self.root_dir, self.image_dir)

    async def sync_once(self) -> WorkerLike | None:
        """One pass: returns the worker of the pod evicted, if any."""
        observations = await self._observe()
        decision = synchronize(self.state, self.thresholds, observations, self._clock(),
                               self.config.pressure_transition_period)
        self.pressure = decision.pressure
        if decision.pressure != self._reported:
            log.info("eviction manager: node pressure now %s", ", ".join(sorted(decision.pressure)) or "none")
            try:
                await self.on_pressure_change(self._reported)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the Node is written again at the next pass
                log.warning("eviction manager: reporting node pressure failed: %s", exc)
            else:
                self._reported = decision.pressure
        active = [w for w in self.workers() if is_active(w)]
        stats = {id(w): await asyncio.to_thread(measure_pod, w, self.runtime, self._empty_dir) for w in active}
        for worker in active:
            message = empty_dir_violation(stats[id(worker)])
            if message is not None:
                log.info("eviction manager: evicting %s: %s", worker.pod_key, message)
                worker.evict(message, 0.0)
                self.on_evicted(EMPTY_DIR_SIGNAL)
                return worker
        threshold, resource = decision.threshold, decision.resource
        if threshold is None or resource is None:
            return None
        self.recorder.event(self.node_ref(), "Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}")
        if resource in ("ephemeral-storage", "inodes"):
            removed = await self.reclaim_images()
            if removed:
                observations = await self._observe()
                if not thresholds_met([threshold], observations):
                    log.info("eviction manager: reclaimed %s by removing images", resource)
                    return None
        owner = {id(stats[id(w)]): w for w in active}
        ranked = rank_pods([stats[id(w)] for w in active], resource)
        if not ranked:
            return None
        victim = owner[id(ranked[0])]
        message = eviction_message(resource, ranked[0], decision.actionable, observations)
        log.info("eviction manager: evicting %s: %s", victim.pod_key, message)
        victim.evict(message, eviction_grace(threshold, victim.pod, self.config.max_pod_grace_period))
        self.on_evicted(threshold.signal)
        return victim

    def _empty_dir(self, uid: str, name: str) -> Path:
        return self.volume_dir(uid, name)

    async def _wait_for_cleanup(self, worker: WorkerLike) -> None:
        """Until the pod's containers are gone and its volumes removed (at most ``pod_cleanup_timeout``)."""
        deadline = self._clock() + self.config.pod_cleanup_timeout
        volumes = self.volume_dir(worker.uid, "-").parent.parent  # <root>/pods/<uid>/volumes
        while self._clock() < deadline:
            if not self.runtime.running_containers(worker.pod_key) and not volumes.exists():
                return
            await asyncio.sleep(min(0.2, self.config.housekeeping_interval))
