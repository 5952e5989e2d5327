"""``seccompProfile``: what a container may ask of the kernel, as the OCI ``linux.seccomp`` section.

Design
------
Kubernetes knows three profile types (``securityContext.seccompProfile.type``,
container over pod): ``Unconfined`` (the default, unless the kubelet runs with
``--seccomp-default``), ``RuntimeDefault`` (the runtime's own profile) and
``Localhost`` (a JSON profile file under the kubelet's ``seccomp/`` directory).

podlife's ``RuntimeDefault`` is written here, in its own words, to the same end as
the Docker/containerd default: every system call is allowed except those that
reach past the container -- loading kernels and modules, rebooting, swap, clock
and keyring changes, mounting, namespaces of its own, tracing other processes,
BPF and perf, kernel accounting. Those fail with ``EPERM``, as under containerd's
profile, so a program sees a refusal, not a kill. A ``privileged`` container, as
in Kubernetes, runs unconfined whatever it asks for.

``Localhost`` profiles are read from ``<root_dir>/seccomp/<localhostProfile>``
(the kubelet's ``/var/lib/kubelet/seccomp``); a missing or invalid file is a start
error, as the kubelet reports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BLOCKED_SYSCALLS", "SeccompError", "runtime_default_profile", "seccomp_section"]

#: System calls the RuntimeDefault profile refuses (EPERM): all reach beyond a container.
BLOCKED_SYSCALLS: tuple[str, ...] = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key",
    "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)
EPERM = 1


class SeccompError(Exception):
    """The container's seccomp profile cannot be used (Kubernetes: a container start error)."""


def runtime_default_profile() -> dict[str, Any]:
    """podlife's RuntimeDefault profile (see the design)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": list(BLOCKED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}],
    }


def effective_profile(pod_context: dict[str, Any], container_context: dict[str, Any]) -> dict[str, Any] | None:
    """The ``seccompProfile`` in force: the container's, else the pod's (None: none set)."""
    profile = container_context.get("seccompProfile") or pod_context.get("seccompProfile")
    return profile if isinstance(profile, dict) else None


def seccomp_section(profile: dict[str, Any] | None, *, privileged: bool, root_dir: Path) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` for a Kubernetes ``seccompProfile`` (None: unconfined)."""
    if privileged or profile is None:
        return None
    kind = profile.get("type")
    if kind in (None, "Unconfined"):
        return None
    if kind == "RuntimeDefault":
        return runtime_default_profile()
    if kind == "Localhost":
        name = str(profile.get("localhostProfile") or "")
        if not name or name.startswith("/") or ".." in Path(name).parts:
            raise SeccompError(f"invalid localhostProfile {name!r}: a relative path inside the seccomp directory")
        path = root_dir / "seccomp" / name
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SeccompError(f"failed to load seccomp profile {path}: {exc}") from exc
        if not isinstance(doc, dict):
            raise SeccompError(f"failed to load seccomp profile {path}: not a JSON object")
        return doc
    raise SeccompError(f"unknown seccomp profile type {kind!r}")
