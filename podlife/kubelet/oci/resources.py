"""Kubernetes' CPU and memory arithmetic for container and pod cgroups.

Design
------
Pure functions from what a pod spec asks for (milliCPU requests and limits, memory
limits in bytes, a pids limit) to the numbers runc writes into cgroup files, in the
OCI runtime spec's ``linux.resources`` shape. Nothing here reads or writes a file.

Kubernetes facts followed (``pkg/kubelet/cm/helpers_linux.go`` and
``pkg/kubelet/kuberuntime/kuberuntime_container_linux.go``):

* CPU shares come from the CPU *request*: ``milliCPU * 1024 / 1000``, at least
  :data:`MIN_SHARES` (2, also for no request at all: the kernel's minimum, not its
  default 1024) and at most :data:`MAX_SHARES` (262144). A container with a limit
  and no request gets its shares from the limit (the API server defaults the
  request to the limit; the kubelet does the same when it is missing).
* The CFS quota comes from the CPU *limit*: ``milliCPU * period / 1000`` with the
  period :data:`QUOTA_PERIOD_US` (100000 µs, 100 ms), at least
  :data:`MIN_QUOTA_PERIOD_US` (1 ms). No limit means no quota.
* The memory limit is the limit in bytes. Swap is not given to containers (the
  kubelet's default ``NoSwap`` behaviour): on cgroup v1 memory+swap is set to the
  same number, so a container over its limit is OOM-killed rather than swapped.
* On cgroup v2 runc turns shares into ``cpu.weight`` itself
  (``1 + (shares - 2) * 9999 / 262142``), so the spec carries shares on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_SHARES",
    "MIN_QUOTA_PERIOD_US",
    "MIN_SHARES",
    "QUOTA_PERIOD_US",
    "ContainerResources",
    "linux_resources",
    "milli_cpu_to_quota",
    "milli_cpu_to_shares",
]

#: Smallest cpu.shares the kernel accepts (Kubernetes' ``MinShares``).
MIN_SHARES = 2
#: Largest cpu.shares the kernel accepts (Kubernetes' ``MaxShares``).
MAX_SHARES = 262144
#: Shares of one whole CPU.
SHARES_PER_CPU = 1024
#: milliCPU in one CPU.
MILLI_CPU_TO_CPU = 1000
#: CFS period Kubernetes uses by default, in microseconds (100 ms).
QUOTA_PERIOD_US = 100_000
#: Smallest CFS quota the kernel accepts, in microseconds (1 ms).
MIN_QUOTA_PERIOD_US = 1000


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """cpu.shares for a CPU request of ``milli_cpu`` (0: no request)."""
    if milli_cpu <= 0:
        return MIN_SHARES
    shares = milli_cpu * SHARES_PER_CPU // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def milli_cpu_to_quota(milli_cpu: int, period_us: int = QUOTA_PERIOD_US) -> int:
    """cpu.cfs_quota_us for a CPU limit of ``milli_cpu`` over ``period_us``; 0 means no quota."""
    if milli_cpu <= 0:
        return 0
    return max(MIN_QUOTA_PERIOD_US, milli_cpu * period_us // MILLI_CPU_TO_CPU)


@dataclass(frozen=True)
class ContainerResources:
    """What one container (or a pod, summed) asks for; ``None`` is "not set"."""

    cpu_request_milli: int | None = None
    cpu_limit_milli: int | None = None
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None
    cpu_period_us: int = QUOTA_PERIOD_US

    def cpu_shares(self) -> int:
        """Shares from the request, or from the limit when only a limit is set."""
        request = self.cpu_request_milli
        if request is None:
            request = self.cpu_limit_milli or 0
        return milli_cpu_to_shares(request)

    def cpu_quota(self) -> int | None:
        """The CFS quota for the limit, or ``None`` without a limit."""
        if not self.cpu_limit_milli:
            return None
        return milli_cpu_to_quota(self.cpu_limit_milli, self.cpu_period_us)


def linux_resources(resources: ContainerResources) -> dict[str, Any]:
    """The runtime spec's ``linux.resources`` for ``resources``.

    Devices: deny everything; runc then allows its default set (null, zero, full,
    random, urandom, tty, ptmx, pts), as containerd's spec does.
    """
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    cpu: dict[str, Any] = {"shares": resources.cpu_shares()}
    quota = resources.cpu_quota()
    if quota is not None:
        cpu["quota"] = quota
        cpu["period"] = resources.cpu_period_us
    out["cpu"] = cpu
    if resources.memory_limit_bytes:
        out["memory"] = {"limit": resources.memory_limit_bytes, "swap": resources.memory_limit_bytes}
    if resources.pids_limit:
        out["pids"] = {"limit": resources.pids_limit}
    return out
