"""Building an OCI runtime-spec ``config.json`` for one container, as pure data.

Design
------
:func:`build_config` turns a :class:`BundleSpec` (everything the node agent has
decided about a container: command line, environment, user, hostname, mounts,
namespaces to create or to join, cgroup path, resource limits, capabilities) into
the dict runc reads from ``<bundle>/config.json`` (runtime-spec 1.0.2, what runc
1.1 implements). It reads no file and starts nothing, so every decision here is
unit-tested without root. :func:`write_config` is the one function that touches
the disk: it writes the dict next to the rootfs.

Defaults follow containerd's CRI plugin (``pkg/cri/opts/spec_linux.go``,
``oci/spec.go``) and runc's ``runc spec``, which Kubernetes nodes run with:

* Capabilities: containerd's default set (:data:`DEFAULT_CAPABILITIES`, 14 of
  them), as bounding, effective and permitted sets; the inheritable and ambient
  sets stay empty (containerd since 1.6.18). ``securityContext.capabilities``
  names them without the ``CAP_`` prefix; ``drop: [ALL]`` removes every default
  before ``add`` applies (:func:`capabilities`). ``privileged`` gives every
  capability.
* ``allowPrivilegeEscalation: false`` is ``process.noNewPrivileges``.
* Masked paths (:data:`DEFAULT_MASKED_PATHS`) are bind-mounted over with
  ``/dev/null`` or an empty tmpfs; read-only paths
  (:data:`DEFAULT_READONLY_PATHS`) are remounted read-only. Privileged
  containers get neither.
* Standard mounts (:data:`standard_mounts`): ``/proc``, a tmpfs ``/dev`` that runc
  fills with its default device nodes, ``/dev/pts``, ``/dev/shm``,
  ``/dev/mqueue``, a read-only ``/sys`` and ``/sys/fs/cgroup``.
* ``root.readonly`` (``readOnlyRootFilesystem``) also covers mounts that stand for
  part of the root (:attr:`Mount.part_of_root`): they are added to the read-only paths.
* ``PATH`` defaults to containerd's default when the environment has none.
* Namespaces: a :class:`Namespace` without a path is created for the container;
  with a path (``/proc/<pause pid>/ns/net``) it is joined, which is how the
  containers of a pod share the sandbox's network, IPC and UTS namespaces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podlife.kubelet.oci.resources import ContainerResources, linux_resources

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_PATH",
    "DEFAULT_READONLY_PATHS",
    "OCI_VERSION",
    "BundleSpec",
    "Mount",
    "Namespace",
    "bind_mount",
    "build_config",
    "capabilities",
    "standard_mounts",
    "tmpfs_mount",
    "write_config",
]

#: The runtime-spec version runc 1.1 implements.
OCI_VERSION = "1.0.2-dev"
#: ``PATH`` for a container whose environment has none (containerd's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: containerd's default capability set for containers.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: Every capability Linux defines, in number order (what ``privileged: true`` gets).
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: Paths hidden from containers (containerd's and Docker's defaults).
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: Paths containers see read-only (containerd's and Docker's defaults).
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

#: Namespace types of the runtime spec.
NAMESPACE_TYPES = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup"})


@dataclass(frozen=True)
class Mount:
    """One entry of ``config.json``'s ``mounts``.

    ``part_of_root``: the mount stands for part of the container's root (the host
    image class's ``/etc`` overlay, :mod:`podlife.kubelet.oci.rootfs`), so a
    read-only root makes it read-only too (:func:`build_config` lists it in
    ``linux.readonlyPaths``, which runc applies after every mount is made, so mount
    points below it can still be created). Not written to ``config.json``.
    """

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()
    part_of_root: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "type": self.type, "source": self.source, "options": list(self.options)}


@dataclass(frozen=True)
class Namespace:
    """A namespace to create (``path`` None) or to join (``path`` of an ``/proc/<pid>/ns/*`` file)."""

    type: str
    path: str | None = None

    def __post_init__(self) -> None:
        if self.type not in NAMESPACE_TYPES:
            raise ValueError(f"unknown namespace type {self.type!r}")

    def to_json(self) -> dict[str, str]:
        return {"type": self.type} if self.path is None else {"type": self.type, "path": self.path}


def bind_mount(source: str, destination: str, *, readonly: bool = True, recursive: bool = True) -> Mount:
    """A bind mount of a host path; read-only, nosuid, nodev by default."""
    options = ["rbind" if recursive else "bind", "nosuid", "nodev"]
    options.append("ro" if readonly else "rw")
    return Mount(destination, "bind", source, tuple(options))


def tmpfs_mount(destination: str, *, mode: str = "1777", size: str | None = None, noexec: bool = False) -> Mount:
    """A private tmpfs (``/tmp``, ``/run``, ``/var/tmp``)."""
    options = ["nosuid", "nodev", f"mode={mode}"]
    if noexec:
        options.append("noexec")
    if size:
        options.append(f"size={size}")
    return Mount(destination, "tmpfs", "tmpfs", tuple(options))


def standard_mounts() -> list[Mount]:
    """The kernel filesystems every container gets, as runc's and containerd's default spec has them."""
    return [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")),
    ]


def capabilities(
    add: Iterable[str] = (), drop: Iterable[str] = (), *, privileged: bool = False
) -> list[str]:
    """The capability set: containerd's defaults, minus ``drop``, plus ``add``.

    Names may come with or without ``CAP_`` and in any case, as Kubernetes accepts
    them; ``ALL`` in ``drop`` removes every default, in ``add`` adds every capability.
    Unknown names raise ``ValueError`` naming them.
    """
    if privileged:
        return list(ALL_CAPABILITIES)
    drop_set = {_capability_name(c) for c in drop}
    add_set = {_capability_name(c) for c in add}
    caps = [] if "ALL" in drop_set else [c for c in DEFAULT_CAPABILITIES if c not in drop_set]
    extra = ALL_CAPABILITIES if "ALL" in add_set else tuple(c for c in ALL_CAPABILITIES if c in add_set)
    caps.extend(c for c in extra if c not in caps)
    return caps


def _capability_name(name: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in ALL_CAPABILITIES:
        raise ValueError(f"unknown capability {name!r}")
    return full


@dataclass
class BundleSpec:
    """Everything :func:`build_config` needs for one container."""

    args: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: Sequence[int] = ()
    hostname: str | None = None
    mounts: Sequence[Mount] = ()
    namespaces: Sequence[Namespace] = ()
    cgroups_path: str | None = None
    resources: ContainerResources = field(default_factory=ContainerResources)
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES
    no_new_privileges: bool = False
    readonly_rootfs: bool = False
    privileged: bool = False
    terminal: bool = False
    rootfs: str = "rootfs"
    annotations: Mapping[str, str] = field(default_factory=dict)
    masked_paths: Sequence[str] = DEFAULT_MASKED_PATHS
    readonly_paths: Sequence[str] = DEFAULT_READONLY_PATHS
    #: ``linux.seccomp`` (:mod:`podlife.kubelet.oci.seccomp`); None: unconfined
    seccomp: Mapping[str, Any] | None = None


def build_config(spec: BundleSpec) -> dict[str, Any]:
    """The ``config.json`` dict for ``spec`` (see the module's design)."""
    if not spec.args:
        raise ValueError("process.args: a container needs a command")
    if not spec.cwd.startswith("/"):
        raise ValueError(f"process.cwd: {spec.cwd!r} is not an absolute path")
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": _process(spec),
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "mounts": [m.to_json() for m in _mounts(spec.mounts)],
        "linux": _linux(spec),
    }
    if spec.hostname is not None:
        config["hostname"] = spec.hostname
    if spec.annotations:
        config["annotations"] = dict(spec.annotations)
    return config


def _process(spec: BundleSpec) -> dict[str, Any]:
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    caps = list(spec.capabilities)
    user: dict[str, Any] = {"uid": spec.uid, "gid": spec.gid}
    if spec.additional_gids:
        user["additionalGids"] = list(spec.additional_gids)
    return {
        "terminal": spec.terminal,
        "user": user,
        "args": list(spec.args),
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": spec.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": list(caps)},
        "noNewPrivileges": spec.no_new_privileges,
    }


def _mounts(extra: Sequence[Mount]) -> list[Mount]:
    """Standard mounts first, then ``extra``; an extra mount at a standard destination replaces it."""
    wanted = {m.destination for m in extra}
    return [m for m in standard_mounts() if m.destination not in wanted] + list(extra)


def _linux(spec: BundleSpec) -> dict[str, Any]:
    seen: set[str] = set()
    for ns in spec.namespaces:
        if ns.type in seen:
            raise ValueError(f"linux.namespaces: {ns.type} given twice")
        seen.add(ns.type)
    if spec.hostname is not None and not any(ns.type == "uts" for ns in spec.namespaces):
        raise ValueError("hostname: needs a uts namespace of the container's own")
    linux: dict[str, Any] = {
        "namespaces": [ns.to_json() for ns in spec.namespaces],
        "resources": linux_resources(spec.resources),
    }
    if spec.cgroups_path:
        linux["cgroupsPath"] = spec.cgroups_path
    readonly_parts = [m.destination for m in spec.mounts if m.part_of_root] if spec.readonly_rootfs else []
    if not spec.privileged:
        linux["maskedPaths"] = list(spec.masked_paths)
        linux["readonlyPaths"] = [*spec.readonly_paths, *readonly_parts]
        if spec.seccomp is not None:
            linux["seccomp"] = dict(spec.seccomp)
    elif readonly_parts:
        linux["readonlyPaths"] = readonly_parts
    return linux


def write_config(bundle_dir: Path, config: Mapping[str, Any]) -> Path:
    """Write ``config.json`` into ``bundle_dir`` (atomically: a reader never sees half of it)."""
    path = bundle_dir / "config.json"
    tmp = bundle_dir / ".config.json.tmp"
    tmp.write_text(json.dumps(config, indent=1))
    os.replace(tmp, path)
    return path
