"""Pods as real containers: a pause sandbox and app containers on runc, each under conmon.

Design
------
:class:`OCIRuntime` is the bottom layer the kubelet will use instead of
:class:`podlife.kubelet.runtime.ProcessRuntime` (not wired in yet). It composes the
other modules of this package and keeps, on disk under ``<root_dir>/oci``:

* ``runc/``: runc's state directory (``runc --root``), podlife's containers only;
* ``containers/<id>/``: one bundle per container (``config.json``, ``rootfs/``),
  also conmon's persist dir (``exit``, ``oom``) and pidfiles;
* ``exits/<id>``: conmon's exit files; ``sockets/``: conmon's attach sockets.

A pod is a *sandbox* first (:meth:`OCIRuntime.run_sandbox`): the catalog's
``pause`` image (``sleep infinity`` in the host image class) in a container that
creates the pod's UTS (hostname = the pod's), IPC and network namespaces, plus its
own PID and mount namespaces; ``hostNetwork``/``hostIPC``/``hostPID`` leave the
host's in place. App containers (:meth:`OCIRuntime.start_container`) join the
sandbox's namespaces by ``/proc/<pause pid>/ns/*`` and get their own PID
(``shareProcessNamespace``: the sandbox's) and mount namespaces. cgroups are
``/podlife/<pod-uid>/<container-id>`` (:mod:`podlife.kubelet.oci.cgroups`).

Each container is started as CRI-O starts one: bundle written, ``conmon`` runs
``runc create`` (:mod:`podlife.kubelet.oci.conmon`), then ``runc start``. A failure
on the way removes what was made and raises :class:`OCIStartError` (Kubernetes:
``StartError``, exit code 128, with runc's message); an image the catalog cannot
provide raises :class:`podlife.kubelet.oci.images.ImageNotFoundError`
(``ErrImagePull``).

Everything needed to find a container again is in its ``config.json`` annotations
(containerd's CRI keys ``io.kubernetes.cri.*`` plus podlife's restart count, log
path and start time), which ``runc list`` returns. So after the agent restarts,
:meth:`OCIRuntime.adopt` rebuilds a :class:`OCIContainer` for each of them: a
running one is watched again, one that ended while the agent was down gets its
exit code from conmon's exit file.

Exits are watched with a pidfd on conmon (one asyncio reader per container, no
polling). An exit is ``OOMKilled`` when conmon wrote its ``oom`` file or the
cgroup's OOM-kill counter moved. When conmon itself is gone and left no exit file,
the exit code is unknown and reported as :data:`UNKNOWN_EXIT_CODE` (255, as
containerd reports a lost task). ``ExitInfo.signal`` stays None: conmon records a
death by signal N only as exit code ``128 + N`` (137 for SIGKILL), which is also all
Kubernetes shows.

A container's root is either the host image class's (:mod:`podlife.kubelet.oci.rootfs`)
or, for a pulled or loaded image (``ContainerRequest.stored_image``), an overlay of the
image's layers that the node's :class:`~podlife.kubelet.oci.image_store.ImageStore`
mounts and, when the container is removed, unmounts; the image's User applies where
``securityContext`` names no user.

A container's ``stdin``/``stdinOnce``/``tty`` go to conmon (:func:`conmon.stdio_flags`) and,
for ``tty``, to the bundle's ``process.terminal``; they are kept in annotations, so an adopted
container is attached to as the one started. :meth:`OCIRuntime.attach` connects to conmon's
attach socket.

Stopping follows Kubernetes: the stop signal (SIGTERM), up to the grace period, then
SIGKILL. Removing a container deletes it from runc (runc removes its cgroup), its
exit file and its bundle; removing a sandbox does so for each container of the pod,
then removes the pod's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal as signals
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podlife.kubelet.oci import conmon
from podlife.kubelet.oci.bundle import BundleSpec, Mount, Namespace, build_config, capabilities, write_config
from podlife.kubelet.oci.cgroups import CgroupLayout, CgroupStats, container_cgroup_path, detect_layout, pod_cgroup_path
from podlife.kubelet.oci.image_store import ImageStore, StoredImage, resolve_user
from podlife.kubelet.oci.images import ImageCatalog, container_argv, default_catalog
from podlife.kubelet.oci.resources import ContainerResources
from podlife.kubelet.oci.rootfs import prepare_rootfs_async
from podlife.kubelet.oci.runc import ContainerState, ExecProcess, Runc, RuncError, find_runc
from podlife.kubelet.runtime import ContainerNotRunningError, ContainerStartError, ExitInfo, PodKey, signal_number
from podlife.machinery.tasks import Supervisor

__all__ = [
    "UNKNOWN_EXIT_CODE",
    "Adopted",
    "ContainerRequest",
    "OCIContainer",
    "OCIRuntime",
    "OCIStartError",
    "RuntimeUnavailableError",
    "Sandbox",
    "SandboxRequest",
]

log = logging.getLogger(__name__)

#: Exit code reported when nobody saw how a container ended (conmon was killed too).
UNKNOWN_EXIT_CODE = 255
#: Container id scheme, as in ``containerd://<id>`` / ``cri-o://<id>``.
CONTAINER_ID_SCHEME = "podlife"

# containerd's CRI annotation keys, and podlife's own.
ANN_TYPE = "io.kubernetes.cri.container-type"
ANN_SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
ANN_POD_NAME = "io.kubernetes.cri.sandbox-name"
ANN_POD_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
ANN_POD_UID = "io.kubernetes.cri.sandbox-uid"
ANN_CONTAINER_NAME = "io.kubernetes.cri.container-name"
ANN_RESTART_COUNT = "io.podlife.restart-count"
ANN_LOG_PATH = "io.podlife.log-path"
ANN_STARTED_AT = "io.podlife.started-at"
ANN_CGROUP = "io.podlife.cgroup"
ANN_IMAGE = "io.kubernetes.cri.image-name"
ANN_STDIN = "io.podlife.stdin"
ANN_STDIN_ONCE = "io.podlife.stdin-once"
ANN_TTY = "io.podlife.tty"
ANN_STOP_SIGNAL = "io.podlife.stop-signal"
TYPE_SANDBOX = "sandbox"
TYPE_CONTAINER = "container"
SANDBOX_NAME = "POD"



class OCIStartError(ContainerStartError):
    """A container could not be created or started (Kubernetes: ``StartError``, exit code 128)."""


class RuntimeUnavailableError(Exception):
    """runc, conmon or cgroups are missing, or podlife is not root: no real containers here."""


@dataclass(frozen=True)
class SandboxRequest:
    """What a pod's sandbox needs from ``pod.spec``."""

    pod: PodKey
    hostname: str
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    share_process_namespace: bool = False
    resources: ContainerResources | None = None  # pod-level limits (ResourceConfigForPod)
    image: str = "pause"


@dataclass
class ContainerRequest:
    """What the kubelet takes from ``pod.spec.containers[i]`` to run it as a container."""

    name: str
    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: Sequence[int] = ()
    resources: ContainerResources = field(default_factory=ContainerResources)
    capabilities_add: Sequence[str] = ()
    capabilities_drop: Sequence[str] = ()
    privileged: bool = False
    allow_privilege_escalation: bool = True
    read_only_root_filesystem: bool = False
    mounts: Sequence[Mount] = ()
    seccomp: Mapping[str, Any] | None = None  # linux.seccomp (None: unconfined)
    #: a pulled or loaded image of the node's store (None: ``image`` is of the host image class)
    stored_image: StoredImage | None = None
    #: ``stdin``, ``stdinOnce``, ``tty``: the container's stdin is kept for attaching, or a terminal
    stdio: conmon.Stdio = field(default_factory=conmon.Stdio)
    #: ``lifecycle.stopSignal`` (None: the image's ``StopSignal``, else SIGTERM)
    stop_signal: str | None = None


class OCIContainer:
    """A container (or a sandbox's pause container) this runtime started or re-adopted."""

    def __init__(
        self,
        *,
        container_id: str,
        pod_key: PodKey,
        name: str,
        sandbox_id: str | None,
        restart_count: int,
        log_path: Path,
        pid: int,
        started_at: datetime,
        cgroup_path: str,
        paths: conmon.ConmonPaths,
        image: str = "",
        stdio: conmon.Stdio | None = None,
        stop_signal: int = signals.SIGTERM,
    ) -> None:
        self.id = container_id
        self.container_id = f"{CONTAINER_ID_SCHEME}://{container_id}"
        self.pod_key = pod_key
        self.name = name
        self.sandbox_id = sandbox_id
        self.restart_count = restart_count
        self.log_path = log_path
        self.pid = pid
        self.started_at = started_at
        self.cgroup_path = cgroup_path
        self.paths = paths
        self.stop_requested = False
        #: the process's environment as started (empty for an adopted container)
        self.env: dict[str, str] = {}
        #: the image it runs, as the pod names it
        self.image = image
        #: whether its stdin is open for attaching (and a terminal): see :meth:`OCIRuntime.attach`
        self.stdio = stdio or conmon.Stdio()
        #: what stopping it sends first (``lifecycle.stopSignal``, the image's, or SIGTERM)
        self.stop_signal = stop_signal
        self._exit: ExitInfo | None = None
        self._done: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        state = "running" if self._exit is None else f"exited({self._exit.exit_code})"
        return f"<OCIContainer {self.pod_key.name}/{self.name} pid={self.pid} {state} {self.id[:12]}>"

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox_id is None

    @property
    def exited(self) -> ExitInfo | None:
        return self._exit

    @property
    def running(self) -> bool:
        return self._exit is None

    async def wait(self) -> ExitInfo:
        """Wait until the container has exited (conmon has written its exit code)."""
        return await asyncio.shield(self._done)

    def _set_exit(self, info: ExitInfo) -> None:
        if self._exit is None:
            self._exit = info
            self._done.set_result(info)


@dataclass
class Sandbox:
    """A pod's sandbox: its pause container and the namespaces app containers join."""

    request: SandboxRequest
    pause: OCIContainer

    @property
    def id(self) -> str:
        return self.pause.id

    @property
    def pod(self) -> PodKey:
        return self.request.pod

    def namespace_path(self, kind: str) -> str:
        return f"/proc/{self.pause.pid}/ns/{kind}"


@dataclass
class Adopted:
    """What :meth:`OCIRuntime.adopt` found in runc's state directory."""

    sandboxes: list[Sandbox]
    containers: list[OCIContainer]


class OCIRuntime:
    """Runs the pods of one node as runc containers under conmon."""

    def __init__(
        self,
        root_dir: Path,
        *,
        catalog: ImageCatalog | None = None,
        runc_binary: str | None = None,
        conmon_binary: str | None = None,
        cgroup_parent: str = "podlife",
        cgroup_layout: CgroupLayout | None = None,
        images: ImageStore | None = None,
    ) -> None:
        runc_path = runc_binary or find_runc()
        conmon_path = conmon_binary or conmon.find_conmon()
        layout = cgroup_layout or detect_layout()
        problems = unavailable_reasons(runc_path, conmon_path, layout)
        if problems:
            raise RuntimeUnavailableError("; ".join(problems))
        assert runc_path and conmon_path and layout
        self.root_dir = Path(root_dir)
        self.state_dir = self.root_dir / "oci"
        self.catalog = catalog or default_catalog()
        #: pulled and loaded images (their containers' roots are overlays of the image's layers)
        self.images = images or ImageStore(self.root_dir / "images")
        self.runc = Runc(runc_path, self.state_dir / "runc")
        self.conmon_binary = conmon_path
        self.cgroups = layout
        self.cgroup_parent = cgroup_parent
        self._containers: dict[str, OCIContainer] = {}
        self._sandboxes: dict[str, Sandbox] = {}
        self._watchers = Supervisor("oci runtime: exit watchers", logger=log)

    # ------------------------------------------------------------ paths

    def container_dir(self, container_id: str) -> Path:
        return self.state_dir / "containers" / container_id

    def _paths(self, container_id: str, log_path: Path) -> conmon.ConmonPaths:
        return conmon.ConmonPaths(
            bundle_dir=self.container_dir(container_id),
            log_path=log_path,
            exit_dir=self.state_dir / "exits",
            socket_dir=self.state_dir / "sockets",
        )

    # ------------------------------------------------------------ queries

    def containers(self, pod: PodKey | None = None) -> list[OCIContainer]:
        """Known app containers (running or not yet removed), optionally of one pod."""
        return [c for c in self._containers.values() if not c.is_sandbox and (pod is None or c.pod_key == pod)]

    def sandbox(self, pod: PodKey) -> Sandbox | None:
        return next((s for s in self._sandboxes.values() if s.pod == pod), None)

    def sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    def stats(self, container: OCIContainer) -> CgroupStats:
        """The container's cgroup usage now (for ``kubectl top``)."""
        return self.cgroups.stats(container.cgroup_path)

    # ------------------------------------------------------------ sandboxes

    async def run_sandbox(self, request: SandboxRequest, log_path: Path) -> Sandbox:
        """Create the pod's cgroup and start its pause container."""
        image = self.catalog.resolve(request.image)
        pod_cgroup = pod_cgroup_path(request.pod.uid, self.cgroup_parent)
        await asyncio.to_thread(self.cgroups.create_pod, pod_cgroup, request.resources)
        namespaces = [Namespace("mount"), Namespace("uts")]
        if not request.host_pid:
            namespaces.append(Namespace("pid"))
        if not request.host_ipc:
            namespaces.append(Namespace("ipc"))
        if not request.host_network:
            namespaces.append(Namespace("network"))
        spec = BundleSpec(
            args=container_argv(image, (), ()),
            env=dict(image.env),
            cwd=image.working_dir,
            hostname=request.hostname,
            namespaces=namespaces,
            readonly_rootfs=True,
            no_new_privileges=True,
            capabilities=(),
        )
        try:
            pause = await self._create(
                request.pod, SANDBOX_NAME, None, 0, log_path, spec, image_name=request.image, hostname=request.hostname
            )
        except BaseException:
            await asyncio.to_thread(self.cgroups.remove, pod_cgroup)
            raise
        sandbox = Sandbox(request, pause)
        self._sandboxes[pause.id] = sandbox
        return sandbox

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Remove every container of the pod, the pause container and the pod's cgroup."""
        pod_containers = [c for c in self._containers.values() if c.sandbox_id == sandbox.id]
        await asyncio.gather(*(self.remove_container(c) for c in pod_containers))
        await self.remove_container(sandbox.pause)
        self._sandboxes.pop(sandbox.id, None)
        left = await asyncio.to_thread(self.cgroups.remove, pod_cgroup_path(sandbox.pod.uid, self.cgroup_parent))
        if left:
            log.warning("pod %s: cgroups left behind: %s", sandbox.pod.name, ", ".join(map(str, left)))

    # ------------------------------------------------------------ containers

    async def start_container(
        self, sandbox: Sandbox, request: ContainerRequest, restart_count: int, log_path: Path
    ) -> OCIContainer:
        """Create and start ``request`` in ``sandbox``; :class:`OCIStartError` when it cannot start."""
        if not sandbox.pause.running:
            raise OCIStartError(f"pod sandbox {sandbox.id[:12]} is not running")
        image = request.stored_image or self.catalog.resolve(request.image)
        try:
            caps = capabilities(request.capabilities_add, request.capabilities_drop, privileged=request.privileged)
        except ValueError as exc:
            raise OCIStartError(str(exc)) from exc
        env = {**image.env, **request.env}
        spec = BundleSpec(
            args=container_argv(image, request.command, request.args),
            env=env,
            cwd=request.working_dir or image.working_dir or "/",
            uid=request.run_as_user or 0,
            gid=request.run_as_group if request.run_as_group is not None else 0,
            additional_gids=list(request.supplemental_groups),
            namespaces=self._container_namespaces(sandbox),
            resources=request.resources,
            capabilities=caps,
            no_new_privileges=not request.allow_privilege_escalation and not request.privileged,
            readonly_rootfs=request.read_only_root_filesystem,
            privileged=request.privileged,
            seccomp=request.seccomp,
            terminal=request.stdio.tty,
        )
        if not spec.args:
            raise OCIStartError(f'container "{request.name}": no command given and image "{request.image}" has none')
        return await self._create(
            sandbox.pod,
            request.name,
            sandbox.id,
            restart_count,
            log_path,
            spec,
            image_name=request.image,
            hostname=sandbox.request.hostname,
            extra_mounts=request.mounts,
            stored=request.stored_image,
            stop_signal=signal_number(request.stop_signal or getattr(image, "stop_signal", None)),
            image_user=request.stored_image.user if request.stored_image and request.run_as_user is None else "",
            stdio=request.stdio,
        )

    def _container_namespaces(self, sandbox: Sandbox) -> list[Namespace]:
        req = sandbox.request
        namespaces = [Namespace("mount"), Namespace("uts", sandbox.namespace_path("uts"))]
        if not req.host_ipc:
            namespaces.append(Namespace("ipc", sandbox.namespace_path("ipc")))
        if not req.host_network:
            namespaces.append(Namespace("network", sandbox.namespace_path("net")))
        if req.share_process_namespace and not req.host_pid:
            namespaces.append(Namespace("pid", sandbox.namespace_path("pid")))
        elif not req.host_pid:
            namespaces.append(Namespace("pid"))
        return namespaces

    async def _create(
        self,
        pod: PodKey,
        name: str,
        sandbox_id: str | None,
        restart_count: int,
        log_path: Path,
        spec: BundleSpec,
        *,
        image_name: str,
        hostname: str,
        extra_mounts: Sequence[Mount] = (),
        stored: StoredImage | None = None,
        stop_signal: int = signals.SIGTERM,
        image_user: str = "",
        stdio: conmon.Stdio | None = None,
    ) -> OCIContainer:
        stdio = stdio or conmon.Stdio()
        container_id = secrets.token_hex(32)
        paths = self._paths(container_id, log_path)
        cgroup = container_cgroup_path(pod.uid, container_id, self.cgroup_parent)
        started_at = datetime.now(UTC)
        bundle = paths.bundle_dir
        bundle.mkdir(parents=True)
        try:
            if stored is not None:
                mounts = await self.images.prepare_rootfs(stored, bundle / "rootfs")
                if image_user:  # the image's User, where securityContext names none
                    try:
                        spec.uid, spec.gid, groups = await asyncio.to_thread(resolve_user, image_user, bundle / "rootfs")
                    except ValueError as exc:
                        raise OCIStartError(f"unable to find user {image_user}: {exc}") from exc
                    spec.additional_gids = [*groups, *spec.additional_gids]
            else:
                mounts = await prepare_rootfs_async(bundle, self.catalog.resolve(image_name), hostname=hostname)
            spec.mounts = [*mounts, *extra_mounts]
            spec.cgroups_path = cgroup
            spec.annotations = {
                ANN_TYPE: TYPE_SANDBOX if sandbox_id is None else TYPE_CONTAINER,
                ANN_SANDBOX_ID: sandbox_id or container_id,
                ANN_POD_NAME: pod.name,
                ANN_POD_NAMESPACE: pod.namespace,
                ANN_POD_UID: pod.uid,
                ANN_CONTAINER_NAME: name,
                ANN_RESTART_COUNT: str(restart_count),
                ANN_LOG_PATH: str(log_path),
                ANN_STARTED_AT: started_at.isoformat(),
                ANN_CGROUP: cgroup,
                ANN_IMAGE: image_name,
                ANN_STOP_SIGNAL: str(int(stop_signal)),
                **_stdio_annotations(stdio),
            }
            if sandbox_id is not None:
                spec.hostname = None  # the pod's UTS namespace already has it
            try:
                config = build_config(spec)
            except ValueError as exc:
                raise OCIStartError(str(exc)) from exc
            await asyncio.to_thread(write_config, bundle, config)
            try:
                pid = await conmon.create_container(
                    self.conmon_binary, self.runc.binary, self.runc.root, container_id, name, paths, stdio
                )
                await self.runc.start(container_id)
            except (conmon.ConmonError, RuncError) as exc:
                raise OCIStartError(exc.message) from exc
        except BaseException:
            await self._discard(container_id, paths, cgroup)
            raise
        container = OCIContainer(
            container_id=container_id,
            pod_key=pod,
            name=name,
            sandbox_id=sandbox_id,
            restart_count=restart_count,
            log_path=log_path,
            pid=pid,
            started_at=started_at,
            cgroup_path=cgroup,
            paths=paths,
            stdio=stdio,
            stop_signal=stop_signal,
        )
        container.env = dict(spec.env)
        container.image = image_name
        self._containers[container_id] = container
        self._watch(container)
        return container

    async def _discard(self, container_id: str, paths: conmon.ConmonPaths, cgroup: str) -> None:
        """Undo a failed create: runc's state, conmon, exit file, bundle, cgroup."""
        with contextlib.suppress(RuncError):
            await self.runc.delete(container_id, force=True)
        pid = conmon.conmon_pid(paths, container_id)
        if pid is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conmon.wait_for_exit(pid), 10)
        conmon.remove_exit_file(paths, container_id)
        await self.images.release_rootfs(paths.bundle_dir / "rootfs")
        await asyncio.to_thread(shutil.rmtree, paths.bundle_dir, True)
        if cgroup:
            await asyncio.to_thread(self.cgroups.remove, cgroup)

    async def stop_container(self, container: OCIContainer, grace_seconds: float) -> ExitInfo:
        """The container's stop signal, up to ``grace_seconds`` for the exit, then SIGKILL; the exit."""
        container.stop_requested = True
        if container.exited is not None:
            return container.exited
        if grace_seconds > 0 and await self.runc.kill(container.id, int(container.stop_signal)):
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(container.wait(), grace_seconds)
        await self.runc.kill(container.id, int(signals.SIGKILL))
        return await container.wait()

    async def remove_container(self, container: OCIContainer) -> None:
        """Kill the container if it runs, then delete it from runc, with its bundle and exit file."""
        if container.running:
            await self.stop_container(container, 0)
        await self.runc.delete(container.id, force=True)
        conmon.remove_exit_file(container.paths, container.id)
        await self.images.release_rootfs(container.paths.bundle_dir / "rootfs")
        await asyncio.to_thread(shutil.rmtree, container.paths.bundle_dir, True)
        await asyncio.to_thread(self.cgroups.remove, container.cgroup_path)
        self._containers.pop(container.id, None)

    async def exec_in_container(
        self,
        container: OCIContainer,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        tty: bool = False,
        stdio_fd: int | None = None,
    ) -> ExecProcess:
        """Run ``command`` in the container's namespaces and cgroup, with its env, user and cwd.

        ``stdio_fd``: the process's stdin, stdout and stderr are that descriptor (a
        pseudo-terminal's follower end that the caller reads and writes).
        """
        if not container.running:
            raise ContainerNotRunningError(f"container {container.name} is not running")
        if not command:
            raise OCIStartError("exec: empty command")
        config = await asyncio.to_thread(_read_process, container.paths.bundle_dir)
        proc_env = {**config.env, **(env or {})}
        return await self.runc.exec(
            container.id,
            list(command),
            env=proc_env,
            uid=config.uid,
            gid=config.gid,
            additional_gids=config.additional_gids,
            cwd=config.cwd,
            stdin=stdin,
            tty=tty,
            stdio_fd=stdio_fd,
        )

    async def attach(self, container: OCIContainer) -> conmon.AttachSocket:
        """Connect to the container's conmon attach socket (its stdin, output and terminal)."""
        if not container.running:
            raise ContainerNotRunningError(f"container {container.name} is not running")
        try:
            return await conmon.AttachSocket.connect(container.paths, container.id, container.stdio)
        except OSError as exc:
            raise ContainerNotRunningError(f"container {container.name}: cannot attach: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------ exits

    def _watch(self, container: OCIContainer) -> None:
        self._watchers.start(self._watch_exit(container), f"exit of {container.id[:12]}")

    async def _watch_exit(self, container: OCIContainer) -> None:
        pid = conmon.conmon_pid(container.paths, container.id)
        if pid is not None:
            await conmon.wait_for_exit(pid)
        else:  # conmon is gone: all we can watch is the container's own process
            state = await self.runc.state(container.id)
            if state is not None and state.running:
                await conmon.wait_for_exit(state.pid)
        container._set_exit(await asyncio.to_thread(self._exit_info, container))

    def _exit_info(self, container: OCIContainer) -> ExitInfo:
        code = conmon.read_exit_code(container.paths, container.id)
        oom = conmon.read_oom(container.paths) or bool(self.cgroups.oom_kills(container.cgroup_path))
        finished_at = _mtime(container.paths.exit_dir / container.id) or datetime.now(UTC)
        if code is None:
            return ExitInfo(UNKNOWN_EXIT_CODE, None, finished_at, oom)
        return ExitInfo(code, None, finished_at, oom)

    # ------------------------------------------------------------ re-adoption

    async def adopt(self) -> Adopted:
        """Find podlife's containers in runc's state dir after a restart and watch them again.

        A container that ended while the agent was down comes back already exited,
        with the exit code conmon wrote.
        """
        states = await self.runc.list()
        adopted: list[OCIContainer] = []
        for state in states:
            if state.id in self._containers or state.annotations.get(ANN_POD_UID) is None:
                continue
            container = self._from_state(state)
            self._containers[state.id] = container
            adopted.append(container)
            self._watch(container)
        sandboxes: list[Sandbox] = []
        for c in adopted:
            if c.is_sandbox:
                request = SandboxRequest(c.pod_key, hostname=_hostname(c.paths.bundle_dir) or c.pod_key.name)
                sandbox = Sandbox(request, c)
                self._sandboxes[c.id] = sandbox
                sandboxes.append(sandbox)
        for sandbox in sandboxes:
            sandbox.request = _sandbox_request_from_config(sandbox)
        return Adopted(sandboxes, [c for c in adopted if not c.is_sandbox])

    def _from_state(self, state: ContainerState) -> OCIContainer:
        ann = state.annotations
        pod = PodKey(ann.get(ANN_POD_NAMESPACE, ""), ann.get(ANN_POD_NAME, ""), ann.get(ANN_POD_UID, ""))
        log_path = Path(ann.get(ANN_LOG_PATH, "/dev/null"))
        started = _parse_time(ann.get(ANN_STARTED_AT)) or datetime.now(UTC)
        is_sandbox = ann.get(ANN_TYPE) == TYPE_SANDBOX
        return OCIContainer(
            container_id=state.id,
            pod_key=pod,
            name=ann.get(ANN_CONTAINER_NAME, SANDBOX_NAME),
            sandbox_id=None if is_sandbox else ann.get(ANN_SANDBOX_ID),
            restart_count=int(ann.get(ANN_RESTART_COUNT, "0") or 0),
            log_path=log_path,
            pid=state.pid,
            started_at=started,
            cgroup_path=ann.get(ANN_CGROUP) or container_cgroup_path(pod.uid, state.id, self.cgroup_parent),
            paths=self._paths(state.id, log_path),
            image=ann.get(ANN_IMAGE, ""),
            stdio=_stdio_from_annotations(ann),
            stop_signal=signal_number(ann.get(ANN_STOP_SIGNAL)),
        )

    async def remove_everything(self) -> None:
        """Kill and remove every container in runc's state dir, with bundles and pod cgroups.

        For a node that stops for good (``podlife up`` ending normally) and for tests:
        afterwards nothing of podlife's is left in runc's state, cgroups or mounts.
        """
        await self.adopt()
        for sandbox in list(self._sandboxes.values()):
            await self.remove_sandbox(sandbox)
        for container in list(self._containers.values()):
            await self.remove_container(container)
        for state in await self.runc.list():  # not podlife's annotations: still in podlife's state dir
            await self._discard(state.id, self._paths(state.id, Path("/dev/null")), "")

    async def close(self) -> None:
        """Stop watching (containers keep running under conmon; :meth:`adopt` finds them again)."""
        await self._watchers.stop()


def unavailable_reasons(runc: str | None, conmon_path: str | None, layout: CgroupLayout | None) -> list[str]:
    """Why real containers cannot run here (empty when they can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root")
    if runc is None:
        problems.append("runc is not installed (Debian package runc)")
    if conmon_path is None:
        problems.append("conmon is not installed (Debian package conmon)")
    if layout is None:
        problems.append("no cgroup hierarchy is mounted")
    return problems


@dataclass(frozen=True)
class _ProcessConfig:
    env: dict[str, str]
    uid: int
    gid: int
    additional_gids: list[int]
    cwd: str


def _read_process(bundle_dir: Path) -> _ProcessConfig:
    doc = json.loads((bundle_dir / "config.json").read_text())
    process = doc.get("process", {})
    env = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
    user = process.get("user", {})
    return _ProcessConfig(
        env, int(user.get("uid", 0)), int(user.get("gid", 0)), list(user.get("additionalGids", [])), process.get("cwd", "/")
    )


def _hostname(bundle_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
            return json.loads((bundle_dir / "config.json").read_text()).get("hostname")
    return None


def _sandbox_request_from_config(sandbox: Sandbox) -> SandboxRequest:
    try:
        doc = json.loads((sandbox.pause.paths.bundle_dir / "config.json").read_text())
    except (OSError, ValueError):
        return sandbox.request
    kinds = {ns.get("type") for ns in doc.get("linux", {}).get("namespaces", [])}
    return SandboxRequest(
        sandbox.pod,
        hostname=doc.get("hostname") or sandbox.pod.name,
        host_network="network" not in kinds,
        host_ipc="ipc" not in kinds,
        host_pid="pid" not in kinds,
    )


def _stdio_annotations(stdio: conmon.Stdio) -> dict[str, str]:
    return {ANN_STDIN: str(stdio.stdin).lower(), ANN_STDIN_ONCE: str(stdio.stdin_once).lower(),
            ANN_TTY: str(stdio.tty).lower()}


def _stdio_from_annotations(ann: Mapping[str, str]) -> conmon.Stdio:
    return conmon.Stdio(stdin=ann.get(ANN_STDIN) == "true", stdin_once=ann.get(ANN_STDIN_ONCE) == "true",
                        tty=ann.get(ANN_TTY) == "true")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return None


def _mtime(path: Path) -> datetime | None:
    with contextlib.suppress(OSError):
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return None
