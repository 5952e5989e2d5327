"""The Node object a kubelet registers and keeps current: capacity, info, conditions.

What the scheduler and ``kubectl describe node`` read comes from this machine,
measured once at start (:func:`probe_machine`): CPUs, memory from
``/proc/meminfo``, the disk under the kubelet's root directory, the OS image
from ``/etc/os-release``, the kernel. Allocatable follows Kubernetes' default
hard eviction thresholds (``memory.available<100Mi``, ``nodefs.available<10%``)
and no system/kube reservations, so ``allocatable = capacity - threshold``.

The status is rebuilt from scratch each time (:func:`node_status`) with the
times supplied by the caller (``nodeInfo`` holds every field of Kubernetes'
``NodeSystemInfo``: clients declare them all required); :func:`status_differs` compares two statuses
ignoring heartbeats so the kubelet can skip writes that would only move a
timestamp (Kubernetes writes those every 5 minutes at most; the Lease is the
liveness signal in between). The pressure conditions (``MemoryPressure``,
``DiskPressure``, ``PIDPressure``) are what the kubelet's eviction manager says
(:mod:`podlife.kubelet.eviction`), with Kubernetes' reasons and messages.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..machinery.constants import KUBERNETES_VERSION
from ..machinery.timeutil import micro_time

Obj = dict[str, Any]

#: The release the API server serves; kube-proxy is reported at the kubelet's version,
#: as kubelets of that release do (``kubeProxyVersion`` is deprecated but still written).
KUBELET_VERSION = f"v{KUBERNETES_VERSION}.0-podlife"
CONTAINER_RUNTIME_VERSION = "podlife://0.1"
DEFAULT_MAX_PODS = 110
#: Kubernetes' default hard eviction thresholds.
EVICTION_MEMORY_KI = 100 * 1024
EVICTION_NODEFS_FRACTION = 0.10
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386", "i386": "386"}


@dataclass(frozen=True)
class MachineInfo:
    """This machine, as the Node object describes it."""

    cpus: int
    memory_ki: int
    storage_bytes: int
    architecture: str
    kernel_version: str
    os_image: str
    machine_id: str
    boot_id: str
    system_uuid: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def meminfo_total_ki(text: str) -> int:
    """``MemTotal`` in KiB from the text of ``/proc/meminfo`` (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def os_image(text: str) -> str:
    """``PRETTY_NAME`` from the text of ``/etc/os-release``, as the kubelet reports it."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def probe_machine(root_dir: Path) -> MachineInfo:
    """Measure this machine (blocking file reads: call once, off the hot path)."""
    try:
        storage = shutil.disk_usage(root_dir).total
    except OSError:
        storage = 0
    machine_id = _read("/etc/machine-id")
    return MachineInfo(
        cpus=os.cpu_count() or 1,
        memory_ki=meminfo_total_ki(_read("/proc/meminfo")),
        storage_bytes=storage,
        architecture=_ARCH.get(platform.machine().lower(), platform.machine().lower()),
        kernel_version=platform.release(),
        os_image=os_image(_read("/etc/os-release")),
        machine_id=machine_id,
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        system_uuid=_read("/sys/class/dmi/id/product_uuid") or machine_id,
    )


def capacity(machine: MachineInfo, max_pods: int = DEFAULT_MAX_PODS) -> Obj:
    cap = {"cpu": str(machine.cpus), "memory": f"{machine.memory_ki}Ki", "pods": str(max_pods),
           "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    if machine.storage_bytes:
        cap["ephemeral-storage"] = f"{machine.storage_bytes // 1024}Ki"
    return cap


def allocatable(machine: MachineInfo, max_pods: int = DEFAULT_MAX_PODS) -> Obj:
    alloc = capacity(machine, max_pods)
    alloc["memory"] = f"{max(machine.memory_ki - EVICTION_MEMORY_KI, 0)}Ki"
    if machine.storage_bytes:
        alloc["ephemeral-storage"] = str(int(machine.storage_bytes * (1 - EVICTION_NODEFS_FRACTION)))
    return alloc


def well_known_labels(node_name: str, architecture: str) -> dict[str, str]:
    """The labels every kubelet puts on its Node: hostname, OS and architecture (and their beta twins)."""
    return {
        "beta.kubernetes.io/arch": architecture,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": architecture,
        "kubernetes.io/hostname": node_name,
        "kubernetes.io/os": "linux",
    }


def node_labels(node_name: str, machine: MachineInfo, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {**well_known_labels(node_name, machine.architecture), "type": "local"}
    labels.update(extra or {})
    return labels


def node_info(*, machine_id: str, system_uuid: str, boot_id: str, kernel_version: str, os_image: str,
              architecture: str, kubelet_version: str = KUBELET_VERSION,
              runtime_version: str = CONTAINER_RUNTIME_VERSION) -> Obj:
    """``status.nodeInfo`` with every field Kubernetes' NodeSystemInfo has (clients require them all)."""
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": boot_id,
        "kernelVersion": kernel_version,
        "osImage": os_image,
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": kubelet_version,
        "kubeProxyVersion": kubelet_version,
        "operatingSystem": "linux",
        "architecture": architecture,
    }


#: (type, True reason, True message, False reason, False message) of the pressure conditions (Kubernetes' setters)
PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available",
     "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasDiskPressure", "kubelet has disk pressure",
     "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasInsufficientPID", "kubelet has insufficient PID available",
     "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


#: the NoSchedule taint of each pressure condition (``TaintNodesByCondition``)
PRESSURE_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
}


def pressure_taints(existing: Sequence[Obj], pressure: Iterable[str]) -> list[Obj]:
    """``existing`` taints with the pressure taints of ``pressure`` added and the others removed."""
    keys = set(PRESSURE_TAINTS.values())
    kept = [t for t in existing if t.get("key") not in keys or t.get("effect") != "NoSchedule"]
    on = set(pressure)
    wanted = [{"key": key, "effect": "NoSchedule"} for c, key in PRESSURE_TAINTS.items() if c in on]
    return kept + wanted


def pressure_conditions(pressure: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of MemoryPressure, DiskPressure and PIDPressure."""
    on = set(pressure)
    return [(type_, "True", r_true, m_true) if type_ in on else (type_, "False", r_false, m_false)
            for type_, r_true, m_true, r_false, m_false in PRESSURE_CONDITIONS]


def node_conditions(now: str, previous: list[Obj] | None = None, pressure: Iterable[str] = ()) -> list[Obj]:
    """The four conditions the kubelet reports, keeping unchanged transition times.

    ``pressure``: the pressure conditions the eviction manager has True now
    (:mod:`podlife.kubelet.eviction`); the others are False.
    """
    before = {c.get("type"): c for c in previous or []}
    wanted = [*pressure_conditions(pressure), ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
    out = []
    for type_, status, reason, message in wanted:
        old = before.get(type_)
        kept = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
        out.append({"type": type_, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": kept or now,
                    "reason": reason, "message": message})
    return out


def node_status(machine: MachineInfo, *, node_name: str, address: str, port: int, now: str,
                previous: Obj | None = None, max_pods: int = DEFAULT_MAX_PODS, pressure: Iterable[str] = ()) -> Obj:
    previous = previous or {}
    return {
        "capacity": capacity(machine, max_pods),
        "allocatable": allocatable(machine, max_pods),
        "conditions": node_conditions(now, previous.get("conditions"), pressure),
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": node_info(machine_id=machine.machine_id, system_uuid=machine.system_uuid, boot_id=machine.boot_id,
                              kernel_version=machine.kernel_version, os_image=machine.os_image,
                              architecture=machine.architecture),
    }


def node_object(machine: MachineInfo, *, node_name: str, address: str, port: int, now: str,
                labels: dict[str, str] | None = None, max_pods: int = DEFAULT_MAX_PODS) -> Obj:
    """The Node a kubelet registers (status included, as the real kubelet does)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": node_labels(node_name, machine, labels),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {},
        "status": node_status(machine, node_name=node_name, address=address, port=port, now=now, max_pods=max_pods),
    }


def _without_heartbeats(status: Obj) -> Obj:
    conditions = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


def status_differs(a: Obj, b: Obj) -> bool:
    """True when the statuses differ in anything but heartbeat times."""
    return _without_heartbeats(a) != _without_heartbeats(b)


# --------------------------------------------------------------------------- the node's Lease

#: Where node Leases live (the node-lease heartbeat, KEP 589).
LEASE_NAMESPACE = "kube-node-lease"


def lease_spec(node_name: str, duration_seconds: int, renew_time: str | None = None) -> Obj:
    """What a renewal writes: the node holds its Lease for ``duration_seconds`` from now."""
    return {"holderIdentity": node_name, "leaseDurationSeconds": duration_seconds,
            "renewTime": renew_time or micro_time()}


def lease_object(node_name: str, node_uid: str, duration_seconds: int, renew_time: str | None = None) -> Obj:
    """The Lease ``kube-node-lease/<node>``, owned by its Node (so it goes when the Node does)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": lease_spec(node_name, duration_seconds, renew_time),
    }
