"""Pods as real containers: the kubelet's runtime surface on runc and conmon.

Design
------
:class:`OCIPodRuntime` gives the pod worker the same surface as
:class:`~podlife.kubelet.runtime.ProcessRuntime` (start, stop, exec, logs, forget a
pod, shut down) and carries it out with :class:`~podlife.kubelet.oci.runtime.OCIRuntime`.
What it adds is Kubernetes' translation of a pod into OCI terms, in pure functions
(:func:`sandbox_request`, :func:`container_request`) apart from the side effects:

* **The sandbox.** :meth:`OCIPodRuntime.prepare_pod` (the machine's ``SetUpSandbox``,
  before the CNI step, as RunPodSandbox comes before CNI ADD) starts the pod's pause
  container: hostname = ``spec.hostname`` or the pod's name, the pod's UTS, IPC and
  network namespaces, ``hostNetwork``/``hostPID``/``hostIPC``/``shareProcessNamespace``
  as asked. A sandbox that died is replaced; its containers go with it.
* **A container** joins the sandbox, runs as ``securityContext`` says (the container's
  fields over the pod's: runAsUser, runAsGroup; supplementalGroups and fsGroup as
  extra groups; capabilities, privileged, allowPrivilegeEscalation,
  readOnlyRootFilesystem, seccompProfile), in a cgroup with the limits of ``resources`` (CPU shares
  from the request, CFS quota from the limit, the memory limit), with the pod's
  volumes bind-mounted at their ``mountPath`` and the pod's ``/etc/hosts``.
* **/etc/hosts** is written per pod, as the kubelet's ``etc-hosts`` file: localhost,
  the pod's IPs with its hostname (and ``subdomain`` FQDN), then ``hostAliases``.
  ``hostNetwork`` pods get the host's file.
* **/etc/resolv.conf** is written per pod beside it, as ``dnsPolicy`` and ``dnsConfig``
  say with the kubelet's ``--cluster-dns``/``--cluster-domain`` (:mod:`podlife.kubelet.dns`),
  and bind-mounted the same way (unless a volume is mounted there).
* **Logs** are where :class:`ProcessRuntime` puts them
  (``pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log``, CRI format);
  conmon writes them, so output written while the agent is down is not lost, and
  reopens them when asked, so :mod:`podlife.kubelet.log_rotation` can rotate them.
* **Images** are pulled or loaded ones of the node's image store (the container's root
  an overlay of their layers) or names of the node's catalog (the host image class), as
  :mod:`podlife.kubelet.image_manager` decides by ``imagePullPolicy``; one that cannot
  be had raises :class:`~podlife.kubelet.runtime.ImageUnavailableError`, which the
  worker reports as ``ErrImagePull`` (or ``ErrImageNeverPull``, ``InvalidImageName``).
* **Restarts of the agent.** :meth:`OCIPodRuntime.adopt` finds the containers conmon
  kept running; :meth:`adopted` hands a new pod worker the instances its pod's status
  names (same container ID and restart count), so they are watched, not restarted.
  :meth:`remove_orphans` removes what belongs to no pod of this node any more.
* **Shutting down** (``podlife up`` ending normally) stops every container within
  the grace period and removes them, their cgroups and bundles; a killed agent
  leaves them running for the next one to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..client.base import Client, Obj
from ..machinery.quantity import milli_value, parse_quantity
from .dns import HOST_RESOLV_CONF, DNSSettings, pod_resolv_conf
from .termination_message import message_path
from .oci import conmon
from .oci.bundle import Mount, bind_mount
from .oci.images import ImageCatalog, ImageNotFoundError, normalize_image_name
from .oci.resources import ContainerResources
from .oci.seccomp import SeccompError, effective_profile, seccomp_section
from .oci.runtime import ContainerRequest, OCIContainer, OCIRuntime, OCIStartError, SandboxRequest
from .image_manager import ImageManager
from .runtime import (
    ContainerNotRunningError, ContainerSpec, ExitInfo, ImageRef, ImageUnavailableError, PodKey, PodKeyLike,
    pod_dir_name,
)

log = logging.getLogger(__name__)

__all__ = ["OCIPodRuntime", "container_request", "etc_hosts", "sandbox_request"]

#: ``status.containerStatuses[].image`` of the pause container's image, as the kubelet's default
PAUSE_IMAGE = "pause"


def pod_key_of(pod: Obj) -> PodKey:
    meta = pod.get("metadata") or {}
    return PodKey(str(meta.get("namespace") or "default"), str(meta.get("name") or ""), str(meta.get("uid") or ""))


def pod_hostname(pod: Obj) -> str:
    """The pod's hostname: ``spec.hostname``, else its name cut to 63 characters (the kubelet's rule)."""
    spec = pod.get("spec") or {}
    name = str(spec.get("hostname") or (pod.get("metadata") or {}).get("name") or "localhost")
    return name[:63].rstrip("-.") or "localhost"


def sandbox_request(pod: Obj) -> SandboxRequest:
    """What the pod's sandbox needs from ``pod.spec``."""
    spec = pod.get("spec") or {}
    return SandboxRequest(
        pod=pod_key_of(pod),
        hostname=pod_hostname(pod),
        host_network=bool(spec.get("hostNetwork")),
        host_ipc=bool(spec.get("hostIPC")),
        host_pid=bool(spec.get("hostPID")),
        share_process_namespace=bool(spec.get("shareProcessNamespace")),
    )


def etc_hosts(pod: Obj, pod_ips: Sequence[str], cluster_domain: str = "cluster.local") -> str:
    """The pod's ``/etc/hosts``, as the kubelet's managed hosts file."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    hostname = pod_hostname(pod)
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    subdomain = spec.get("subdomain")
    names = hostname
    if subdomain:
        names = f"{hostname}.{subdomain}.{meta.get('namespace') or 'default'}.svc.{cluster_domain}\t{hostname}"
    for ip in pod_ips:
        lines.append(f"{ip}\t{names}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in aliases:
            if isinstance(alias, dict) and alias.get("ip"):
                lines.append(f"{alias['ip']}\t" + "\t".join(str(h) for h in alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def _security(pod: Obj, container: Obj) -> tuple[Obj, Obj]:
    return ((pod.get("spec") or {}).get("securityContext") or {}), (container.get("securityContext") or {})


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def container_resources(container: Obj) -> ContainerResources:
    """The cgroup limits of ``resources`` (requests default to limits, as Kubernetes defaults them)."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}

    def milli(values: Obj, name: str) -> int | None:
        return milli_value(values[name]) if name in values else None

    cpu_limit = milli(limits, "cpu")
    cpu_request = milli(requests, "cpu")
    memory = int(parse_quantity(limits["memory"])) if "memory" in limits else None
    return ContainerResources(cpu_request_milli=cpu_request if cpu_request is not None else cpu_limit,
                              cpu_limit_milli=cpu_limit, memory_limit_bytes=memory)


def volume_mounts(spec: ContainerSpec, hosts_file: Path | None, resolv_file: Path | None = None) -> list[Mount]:
    """The container's volumes and the pod's hosts and resolv.conf files as bind mounts."""
    mounts = [bind_mount(str(m.source), m.destination, readonly=m.read_only) for m in spec.mounts]
    for file, target in ((hosts_file, "/etc/hosts"), (resolv_file, "/etc/resolv.conf")):
        if file is not None and not any(m.destination == target for m in spec.mounts):
            mounts.append(bind_mount(str(file), target, readonly=False, recursive=False))
    return mounts


def container_request(spec: ContainerSpec, pod: Obj, hosts_file: Path | None,
                      resolv_file: Path | None = None) -> ContainerRequest:
    """Kubernetes' container (already resolved by the kubelet) as an OCI container request."""
    pod_ctx, ctx = _security(pod, spec.container)
    caps = ctx.get("capabilities") or {}
    groups = [int(g) for g in pod_ctx.get("supplementalGroups") or [] if isinstance(g, int)]
    fs_group = _int_or_none(pod_ctx.get("fsGroup"))
    if fs_group is not None and fs_group not in groups:
        groups.append(fs_group)
    run_as_user = _int_or_none(ctx.get("runAsUser"))
    run_as_group = _int_or_none(ctx.get("runAsGroup"))
    escalation = ctx.get("allowPrivilegeEscalation")
    return ContainerRequest(
        name=spec.name,
        image=spec.image,
        command=spec.command,
        args=spec.args,
        env=spec.env,
        working_dir=spec.working_dir,
        run_as_user=run_as_user if run_as_user is not None else _int_or_none(pod_ctx.get("runAsUser")),
        run_as_group=run_as_group if run_as_group is not None else _int_or_none(pod_ctx.get("runAsGroup")),
        supplemental_groups=groups,
        resources=container_resources(spec.container),
        capabilities_add=[str(c) for c in caps.get("add") or []],
        capabilities_drop=[str(c) for c in caps.get("drop") or []],
        privileged=bool(ctx.get("privileged")),
        allow_privilege_escalation=True if escalation is None else bool(escalation),
        read_only_root_filesystem=bool(ctx.get("readOnlyRootFilesystem")),
        mounts=volume_mounts(spec, hosts_file, resolv_file),
        stop_signal=(spec.container.get("lifecycle") or {}).get("stopSignal") or None,
    )


def container_stdio(container: Obj) -> conmon.Stdio:
    """``stdin``, ``stdinOnce`` and ``tty`` of the container (all false by default, as in Kubernetes)."""
    return conmon.Stdio(stdin=container.get("stdin") is True, stdin_once=container.get("stdinOnce") is True,
                        tty=container.get("tty") is True)


class OCIPodRuntime:
    """The kubelet's container runtime on runc (see the module's design)."""

    kind = "oci"
    mounts_volumes = True
    can_reopen_logs = True  # conmon reopens its log file when asked (log rotation)

    def __init__(self, root_dir: Path, *, oci: OCIRuntime | None = None, catalog: ImageCatalog | None = None,
                 allowed_registries: Sequence[str] = (), dns: DNSSettings | None = None) -> None:
        self.root_dir = Path(root_dir)
        #: ``--cluster-dns``/``--cluster-domain``, for the pods' resolv.conf
        self.dns = dns or DNSSettings()
        self.oci = oci or OCIRuntime(self.root_dir, catalog=catalog)
        self.allowed_registries = tuple(allowed_registries)
        self._images: ImageManager | None = None  # made once the kubelet gives its client (bind)
        self._closed = False
        self._adopted: dict[str, OCIContainer] = {}  # container id -> adopted, not yet claimed by a worker

    @property
    def description(self) -> str:
        return f"runc ({self.oci.runc.binary}) under conmon ({self.oci.conmon_binary}), cgroup v{self.oci.cgroups.version}"

    # ------------------------------------------------------------------ paths

    def pod_dir(self, pod_key: PodKeyLike) -> Path:
        return self.root_dir / "pods" / pod_dir_name(pod_key)

    def pod_log_dir(self, pod_key: PodKeyLike) -> Path:
        return self.pod_dir(pod_key)

    def log_path(self, pod_key: PodKeyLike, container: str, restart_count: int) -> Path:
        return self.pod_log_dir(pod_key) / container / f"{restart_count}.log"

    def _hosts_file(self, pod_key: PodKeyLike) -> Path:
        return self.root_dir / "pod-files" / pod_key.uid / "etc-hosts"

    def _resolv_file(self, pod_key: PodKeyLike) -> Path:
        return self.root_dir / "pod-files" / pod_key.uid / "resolv.conf"

    # ------------------------------------------------------------------ queries

    def running_containers(self, pod_key: PodKeyLike | None = None) -> list[OCIContainer]:
        key = PodKey(pod_key.namespace, pod_key.name, pod_key.uid) if pod_key is not None else None
        return [c for c in self.oci.containers(key) if c.running]

    def has_sandbox(self, pod_key: PodKeyLike) -> bool:
        sandbox = self.oci.sandbox(PodKey(pod_key.namespace, pod_key.name, pod_key.uid))
        return sandbox is not None and sandbox.pause.running

    @property
    def image_dir(self) -> Path:
        """The node's image store (the eviction manager's imagefs)."""
        return Path(self.oci.images.root)

    def network_namespace(self, handle: OCIContainer) -> str | None:
        """The container's network namespace (its sandbox's), or None when that is the host's.

        Without a running sandbox there is nothing to connect to: an OSError, never the
        host's namespace in its place.
        """
        sandbox = self.oci.sandbox(handle.pod_key)
        if sandbox is not None and sandbox.request.host_network:
            return None
        if sandbox is None or not sandbox.pause.running:
            raise OSError(errno.ENOENT, "the pod's sandbox is not running")
        return sandbox.namespace_path("net")

    def pod_network_namespace(self, pod: Obj) -> str | None:
        """The running sandbox's network namespace (what CNI ADD/DEL are given); None for a
        ``hostNetwork`` pod or when no sandbox runs."""
        sandbox = self.oci.sandbox(pod_key_of(pod))
        if (pod.get("spec") or {}).get("hostNetwork") or sandbox is None or sandbox.request.host_network:
            return None
        return sandbox.namespace_path("net") if sandbox.pause.running else None

    def pod_sandbox_id(self, pod: Obj) -> str:
        """The pod's sandbox id (its pause container's; CNI's ``CNI_CONTAINERID``), "" without one."""
        sandbox = self.oci.sandbox(pod_key_of(pod))
        return sandbox.id if sandbox is not None else ""

    # ------------------------------------------------------------------ sandbox

    async def prepare_pod(self, pod: Obj, pod_ips: Sequence[str] = ()) -> None:
        """Start the pod's sandbox unless it runs; write its hosts and resolv.conf files."""
        if self._closed:
            raise RuntimeError("the runtime has been shut down")
        key = pod_key_of(pod)
        sandbox = self.oci.sandbox(key)
        if sandbox is not None and not sandbox.pause.running:
            log.info("pod %s/%s: sandbox %s is gone; creating a new one", key.namespace, key.name, sandbox.id[:12])
            await self.oci.remove_sandbox(sandbox)
            sandbox = None
        if sandbox is None:
            await asyncio.to_thread(self.pod_dir(key).mkdir, parents=True, exist_ok=True)
            await self.oci.run_sandbox(sandbox_request(pod), Path(os.devnull))
        await self.write_hosts(pod, pod_ips)
        await self.write_resolv_conf(pod)

    async def write_hosts(self, pod: Obj, pod_ips: Sequence[str]) -> None:
        """(Re)write the pod's ``/etc/hosts`` in place, so running containers see the change."""
        key = pod_key_of(pod)
        path = self._hosts_file(key)
        if (pod.get("spec") or {}).get("hostNetwork"):
            text = await asyncio.to_thread(Path("/etc/hosts").read_text)
        else:
            text = etc_hosts(pod, pod_ips, self.dns.cluster_domain)
        await asyncio.to_thread(_write_in_place, path, text)

    async def write_resolv_conf(self, pod: Obj) -> None:
        """Write the pod's ``/etc/resolv.conf`` (:mod:`podlife.kubelet.dns`); only written, never queried."""
        host = await asyncio.to_thread(_read_or_empty, Path(HOST_RESOLV_CONF))
        conf = pod_resolv_conf(pod, self.dns, host)
        key = pod_key_of(pod)
        for warning in conf.warnings:  # the kubelet's DNSConfigForming events
            log.warning("pod %s/%s: DNSConfigForming: %s", key.namespace, key.name, warning)
        await asyncio.to_thread(_write_in_place, self._resolv_file(key), conf.render())

    # ------------------------------------------------------------------ containers

    async def start_container(self, pod_key: PodKeyLike, spec: ContainerSpec, restart_count: int) -> OCIContainer:
        if self._closed:
            raise RuntimeError("the runtime has been shut down")
        key = PodKey(pod_key.namespace, pod_key.name, pod_key.uid)
        sandbox = self.oci.sandbox(key)
        if sandbox is None or not sandbox.pause.running:
            raise OCIStartError("pod sandbox is not running")
        hosts, resolv = self._hosts_file(key), self._resolv_file(key)
        request = container_request(spec, spec.pod, hosts if hosts.exists() else None,
                                    resolv if resolv.exists() else None)
        if spec.image_ref is not None and spec.image_ref.stored is not None:
            request.stored_image = spec.image_ref.stored
        else:
            self._check_catalog(spec.image)
        request.stdio = container_stdio(spec.container)
        pod_ctx, ctx = _security(spec.pod, spec.container)
        try:
            request.seccomp = seccomp_section(effective_profile(pod_ctx, ctx), privileged=request.privileged,
                                              root_dir=self.root_dir)
        except SeccompError as exc:
            raise OCIStartError(str(exc)) from exc
        target = message_path(spec.container)
        if not any(m.destination == target for m in request.mounts):
            message_file = self._termination_file(key, spec.name, restart_count)
            await asyncio.to_thread(_empty_file, message_file)
            request.mounts = [*request.mounts, bind_mount(str(message_file), target, readonly=False, recursive=False)]
        path = self.log_path(key, spec.name, restart_count)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        return await self.oci.start_container(sandbox, request, restart_count, path)

    def _termination_file(self, pod_key: PodKeyLike, container: str, restart_count: int) -> Path:
        """The host file mounted at an instance's ``terminationMessagePath`` (the kubelet's ``containers/<name>/<id>``)."""
        return self.pod_dir(pod_key) / "containers" / container / str(restart_count)

    def termination_message_file(self, handle: OCIContainer) -> Path | None:
        """Where the instance's termination message was written (:mod:`podlife.kubelet.termination_message`)."""
        return self._termination_file(handle.pod_key, handle.name, handle.restart_count)

    def bind(self, client: Client) -> None:
        """Give the runtime the kubelet's client (image pull Secrets are read through it)."""
        self._images = ImageManager(self.oci.images, self.oci.catalog, client,
                                    allowed_registries=self.allowed_registries)

    async def ensure_image(self, image: str, policy: str, pod: Obj,
                           on_pulling: Callable[[str], None] | None = None) -> ImageRef:
        """The container's image as ``imagePullPolicy`` says (:mod:`podlife.kubelet.image_manager`)."""
        if self._images is None:
            raise RuntimeError("OCIPodRuntime.bind() was not called")
        return await self._images.ensure(image, policy, pod, on_pulling)

    async def collect_image_garbage(self) -> list[str]:
        """Remove unused images when the store's disk is too full (the kubelet's image GC)."""
        if self._images is None:
            return []
        in_use = {c.image for c in self.oci.containers() if c.image}
        return await self._images.collect_garbage(in_use)

    def _check_catalog(self, image: str) -> None:
        try:
            self.oci.catalog.resolve(image)
        except ImageNotFoundError as exc:
            raise ImageUnavailableError(exc.message) from exc

    def reopen_log(self, handle: OCIContainer) -> bool:
        """Have conmon reopen the container's log file (it was renamed by the log manager)."""
        return conmon.reopen_log(handle.paths)

    async def stop_container(self, handle: OCIContainer, grace_seconds: float) -> ExitInfo:
        return await self.oci.stop_container(handle, grace_seconds)

    async def exec_in_container(self, handle: OCIContainer, command: Sequence[str], *, stdin: bool = False,
                                env: Mapping[str, str] | None = None,
                                terminal: int | None = None) -> asyncio.subprocess.Process:
        """``runc exec`` in the container; with ``terminal`` runc's stdio is that pseudo-terminal,
        and the command's a terminal of the container that runc relays it to."""
        if not handle.running:
            raise ContainerNotRunningError(f"container {handle.name} is not running")
        if terminal is None:
            process = await self.oci.exec_in_container(handle, command, env=env, stdin=stdin)
            return process.process
        # runc exec --tty: runc makes a terminal in the container's /dev/pts (the command's
        # controlling terminal) and copies between it and ours, as under CRI-O.
        return (await self.oci.exec_in_container(handle, command, env=env, tty=True, stdio_fd=terminal)).process

    async def attach_container(self, handle: OCIContainer) -> conmon.AttachSocket | None:
        """conmon's attach socket for a container with ``stdin: true``; None without (its output
        is then followed in the log, and input has nowhere to go, as on Kubernetes)."""
        if not handle.stdio.stdin:
            return None
        return await self.oci.attach(handle)

    # ------------------------------------------------------------------ removal

    async def remove_pod(self, pod_key: PodKeyLike) -> None:
        """Forget a deleted pod: its containers, sandbox, cgroups, hosts file and logs."""
        key = PodKey(pod_key.namespace, pod_key.name, pod_key.uid)
        sandbox = self.oci.sandbox(key)
        if sandbox is not None:
            await self.oci.remove_sandbox(sandbox)
        for container in self.oci.containers(key):
            await self.oci.remove_container(container)
        for cid in [cid for cid, c in self._adopted.items() if c.pod_key == key]:
            del self._adopted[cid]
        await asyncio.to_thread(shutil.rmtree, self.pod_dir(key), True)
        await asyncio.to_thread(shutil.rmtree, self._hosts_file(key).parent, True)

    # ------------------------------------------------------------------ restarts of the agent

    async def adopt(self) -> int:
        """Find the containers a previous agent left running; how many."""
        found = await self.oci.adopt()
        for container in found.containers:
            self._adopted[container.id] = container
        return len(found.containers) + len(found.sandboxes)

    async def claim_adopted(self, pod_key: PodKeyLike, status: Obj) -> dict[str, OCIContainer]:
        """The adopted containers ``status`` names (same container ID and restart count), by name.

        Other adopted containers of the pod are instances the status no longer shows
        (it was written before they started, or after they were replaced): removed, so
        that nothing runs twice.
        """
        key = PodKey(pod_key.namespace, pod_key.name, pod_key.uid)
        shown = {(str(e.get("containerID") or ""), int(e.get("restartCount") or 0))
                 for key in ("initContainerStatuses", "containerStatuses") for e in status.get(key) or []}
        claimed: dict[str, OCIContainer] = {}
        for cid, container in list(self._adopted.items()):
            if container.pod_key != key:
                continue
            del self._adopted[cid]
            if (container.container_id, container.restart_count) in shown:
                claimed[container.name] = container
            else:
                log.info("pod %s/%s: removing container %s the status does not show", key.namespace, key.name,
                         container.id[:12])
                await self.oci.remove_container(container)
        return claimed

    async def remove_orphans(self, pod_uids: Iterable[str]) -> None:
        """Remove sandboxes and containers of pods that are no longer this node's."""
        keep = set(pod_uids)
        for cid, container in list(self._adopted.items()):
            if container.pod_key.uid not in keep:
                del self._adopted[cid]
        for sandbox in self.oci.sandboxes():
            if sandbox.pod.uid not in keep:
                await self.oci.remove_sandbox(sandbox)
        for container in self.oci.containers():
            if container.pod_key.uid not in keep:
                await self.oci.remove_container(container)

    async def shutdown(self, grace_seconds: float = 2) -> None:
        """Stop every container (SIGTERM, SIGKILL after the grace) and remove them all."""
        self._closed = True
        running = self.running_containers()
        await asyncio.gather(*(self.oci.stop_container(c, grace_seconds) for c in running), return_exceptions=True)
        try:
            await self.oci.remove_everything()
        finally:
            await self.oci.close()

    def kill_all_now(self) -> None:
        """SIGKILL every container's processes without awaiting (last-resort exit paths)."""
        self._closed = True
        for container in self.oci.containers():
            if container.running:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run([*self.oci.runc.base_argv(), "kill", container.id, "KILL"],
                                   capture_output=True, timeout=5)


def _write_in_place(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:  # in place: a bind mount follows the inode, not the name
        f.write(text)


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _empty_file(path: Path) -> None:
    """An empty, world-writable file (a container running as any user may write its message)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.chmod(path, 0o666)


def image_reference_valid(image: str) -> bool:
    """A loose check of an image reference, for ``InvalidImageName``."""
    return bool(image) and image == image.strip() and normalize_image_name(image) != "" and " " not in image
