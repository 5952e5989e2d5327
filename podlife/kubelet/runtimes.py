"""Which container runtime a node uses, and what the kubelet asks of one.

Design
------
The pod worker, hooks, logs and exec speak to a :class:`ContainerRuntime`; two
implement it:

* :class:`~podlife.kubelet.oci_pods.OCIPodRuntime`: real containers (runc under
  conmon, a pause sandbox per pod, cgroups, the host image class, volumes mounted);
* :class:`~podlife.kubelet.runtime.ProcessRuntime`: host processes, for machines
  where real containers cannot run (not root, no runc or conmon, no cgroups).

:func:`choose_runtime` picks one for ``--container-runtime``: ``oci`` insists (and
fails with the reason), ``process`` never tries, ``auto`` (the default) takes real
containers when this machine can run them and otherwise says once, in the log and on
the Node (:func:`runtime_annotations`), what it cannot isolate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .runtime import ContainerSpec, ExitInfo, ImageRef, PodKeyLike, ProcessRuntime

log = logging.getLogger(__name__)

__all__ = ["RUNTIME_ANNOTATION", "ContainerLike", "ContainerRuntime", "choose_runtime", "runtime_annotations"]

#: Node annotations: which runtime runs the node's pods, and what that means for isolation
RUNTIME_ANNOTATION = "podlife.io/container-runtime"
ISOLATION_ANNOTATION = "podlife.io/isolation"
CHOICES = ("auto", "oci", "process")


class ContainerLike(Protocol):
    """A started container, as the pod worker follows it."""

    container_id: str
    started_at: datetime
    log_path: Path

    @property
    def name(self) -> str: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def exited(self) -> ExitInfo | None: ...

    @property
    def running(self) -> bool: ...

    async def wait(self) -> ExitInfo: ...


class ContainerRuntime(Protocol):
    """What the kubelet needs from a container runtime."""

    kind: str
    #: whether the pod's volumes are set up for its containers to mount
    mounts_volumes: bool
    #: whether a container's log file may be renamed and reopened (log rotation)
    can_reopen_logs: bool

    @property
    def description(self) -> str: ...

    def log_path(self, pod_key: PodKeyLike, container: str, restart_count: int) -> Path: ...

    def termination_message_file(self, handle: Any) -> Path | None: ...

    def running_containers(self, pod_key: PodKeyLike | None = None) -> Sequence[ContainerLike]: ...

    def has_sandbox(self, pod_key: PodKeyLike) -> bool: ...

    def network_namespace(self, handle: Any) -> str | None: ...

    def pod_network_namespace(self, pod: dict) -> str | None:
        """The pod's sandbox network namespace (for CNI); None: hostNetwork, or the runtime has none."""
        ...

    def pod_sandbox_id(self, pod: dict) -> str: ...

    @property
    def image_dir(self) -> Path | None:
        """Where the runtime keeps its images (the eviction manager's imagefs); None: no image store."""
        ...

    def bind(self, client: Any) -> None: ...

    async def ensure_image(self, image: str, policy: str, pod: dict,
                           on_pulling: Callable[[str], None] | None = None) -> ImageRef: ...

    async def collect_image_garbage(self) -> list[str]: ...

    async def prepare_pod(self, pod: dict, pod_ips: Sequence[str] = ()) -> None: ...

    async def write_hosts(self, pod: dict, pod_ips: Sequence[str]) -> None: ...

    async def start_container(self, pod_key: PodKeyLike, spec: ContainerSpec, restart_count: int) -> ContainerLike: ...

    # ``handle``: a container this runtime started (each runtime takes only its own kind)
    async def stop_container(self, handle: Any, grace_seconds: float) -> ExitInfo: ...

    async def exec_in_container(self, handle: Any, command: Sequence[str], *, stdin: bool = False,
                                env: Mapping[str, str] | None = None,
                                terminal: int | None = None) -> asyncio.subprocess.Process: ...

    def reopen_log(self, handle: Any) -> bool: ...

    async def remove_pod(self, pod_key: PodKeyLike) -> None: ...

    async def adopt(self) -> int: ...

    async def claim_adopted(self, pod_key: PodKeyLike, status: dict) -> Mapping[str, ContainerLike]: ...

    async def remove_orphans(self, pod_uids: Iterable[str]) -> None: ...

    async def shutdown(self, grace_seconds: float = 2) -> None: ...

    def kill_all_now(self) -> None: ...


def choose_runtime(root_dir: Path, wanted: str = "auto", *,
                   allowed_registries: Sequence[str] = ()) -> tuple[ContainerRuntime, str]:
    """The runtime for ``--container-runtime wanted``, and why it was chosen (for the log)."""
    if wanted not in CHOICES:
        raise ValueError(f"--container-runtime must be one of {', '.join(CHOICES)}, not {wanted!r}")
    if wanted == "process":
        return ProcessRuntime(root_dir), "asked for (--container-runtime process)"
    from .oci.runtime import RuntimeUnavailableError
    from .oci_pods import OCIPodRuntime

    try:
        runtime = OCIPodRuntime(root_dir, allowed_registries=allowed_registries)
    except RuntimeUnavailableError as exc:
        if wanted == "oci":
            raise
        return ProcessRuntime(root_dir), f"real containers cannot run here: {exc}"
    return runtime, "runc and conmon found, running as root"


def runtime_annotations(runtime: ContainerRuntime, why: str) -> dict[str, str]:
    """The Node's annotations saying which runtime it has and what that isolates."""
    if runtime.kind == "oci":
        isolation = "containers: own namespaces, cgroups, root filesystem and volume mounts"
    else:
        isolation = f"none: pods run as host processes ({why})"
    return {RUNTIME_ANNOTATION: runtime.kind, ISOLATION_ANNOTATION: isolation}
