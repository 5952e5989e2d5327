"""The node-side CNI step: turn the port the network controller wrote into the pod's network.

Design
------
As in Kuryr-Kubernetes, the work is split in two. The central controller
(:mod:`podlife.network.controller`) allocates the address and records the port in
the pod annotation ``network.podlife.io/port``; the kubelet, when it creates the
pod sandbox, calls :meth:`CNIPlugin.add` on the node the pod runs on, which only
*reads* that annotation. The two race: the kubelet may get the pod before the
annotation is written. Then :func:`read_port_annotation` raises
:class:`CNIError` ("port annotation not present yet") and the kubelet retries,
which is exactly the behaviour Kuryr documents ("CNI driver fails ... will try
again, so eventually the binding will be done").

Two plugins share one interface (``add(pod, netns_path)``, ``delete(pod, netns_path)``):

* :class:`CNIPlugin` only records the attachment and returns the address; nothing is
  plugged. The process runtime (pods are host processes, there is no namespace to
  plug) and tests use it. ``add`` stays cheap -- a JSON parse and a dict insert.
* :class:`ExecCNIPlugin` runs a CNI 1.0 plugin executable (``podlife-cni`` by
  default, :mod:`podlife.nodenet.cni`) as a container runtime does: the ``CNI_*``
  environment (``CNI_COMMAND`` ADD/DEL, ``CNI_CONTAINERID`` the sandbox's id,
  ``CNI_NETNS`` the pause container's network namespace, ``CNI_IFNAME=eth0``,
  ``CNI_ARGS`` with the pod's namespace, name and UID, ``CNI_PATH``), the network
  configuration JSON on stdin, the result (or a CNI error ``{code, msg}``) on stdout.
  The plugin reads the port annotation from the API itself, creates the veth pair and
  routes in the node's network namespace and reports the port ACTIVE. Its failures
  are :class:`CNIPluginError` ("plugin type=... failed (add): msg", as libcni words
  them) and the kubelet records ``FailedCreatePodSandBox`` and retries; error code 11
  ("try again later") is the annotation race. A pod whose copy in the kubelet has no
  annotation yet fails the same way *without* starting the executable (it could only
  say the same, and a hundred pods created at once would otherwise start a hundred
  interpreters to say it); the kubelet retries as soon as the pod changes. At most
  ``max_parallel`` plugin processes run at once. A pod without a namespace (hostNetwork,
  or a runtime without sandboxes) falls back to the records-only behaviour.

Until a pod's namespace is plugged on this machine, nothing in podlife connects to its IP.

Host-network pods get no port (as in Kuryr); if the kubelet asks anyway, ``add``
answers with the node's address (``status.hostIP``, else ``host_ip``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ..client.base import Obj
from ..machinery.constants import PORT_ANNOTATION
from .port_annotation import CNIError, PortInfo, read_port_annotation

log = logging.getLogger(__name__)

__all__ = ["PORT_ANNOTATION", "CNIError", "CNIPlugin", "CNIPluginError", "ExecCNIPlugin", "PortInfo", "TRY_AGAIN_LATER",
           "cni_args", "cni_environment", "find_plugin", "plugin_error", "port_from_result", "read_port_annotation"]

#: CNI 1.0's error code 11: "try again later" (here: the port annotation is not written yet)
TRY_AGAIN_LATER = 11
#: the CNI spec's well-known codes a plugin's error may carry without a message
_CODES = {1: "incompatible CNI version", 2: "unsupported field in network configuration", 3: "container unknown",
          4: "invalid necessary environment variables", 5: "I/O failure", 6: "failed to decode content",
          7: "invalid network config", 11: "try again later"}


class CNIPluginError(CNIError):
    """A CNI plugin executable failed: ``plugin type="<type>" failed (<command>): <msg>`` (libcni's words).

    ``code`` is the CNI error code (11: try again later; 0: the plugin gave none, e.g. it crashed).
    """

    def __init__(self, plugin_type: str, command: str, message: str, code: int = 0) -> None:
        super().__init__(f'plugin type="{plugin_type}" failed ({command.lower()}): {message}')
        self.plugin_type = plugin_type
        self.command = command
        self.plugin_message = message
        self.code = code

    @property
    def try_again_later(self) -> bool:
        return self.code == TRY_AGAIN_LATER


class CNIPlugin:
    """What the kubelet calls to wire a pod's network on this node (see the module docstring): records only."""

    def __init__(self, node_name: str = "", host_ip: str = "") -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        #: pod UID -> the port it is attached to
        self.attached: dict[str, PortInfo] = {}

    async def add(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> PortInfo:
        """Attach ``pod`` to its port; raises :class:`CNIError` until the controller wrote it."""
        spec = pod.get("spec") or {}
        if spec.get("hostNetwork"):
            return self._host_network(pod)
        info = self._port_of(pod)
        self.attached[_uid(pod)] = info
        return info

    async def delete(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> None:
        """Detach ``pod``; deleting what is not attached is not an error (CNI DEL is idempotent)."""
        self.attached.pop(_uid(pod), None)

    def _port_of(self, pod: Obj) -> PortInfo:
        info = read_port_annotation(pod)
        if self.node_name and info.node and info.node != self.node_name:
            raise CNIError(f"port {info.port_name} is bound to node {info.node}, not {self.node_name}")
        return info

    def _host_network(self, pod: Obj) -> PortInfo:
        ip = (pod.get("status") or {}).get("hostIP") or self.host_ip
        if not ip:
            raise CNIError("host-network pod: the node address is not known yet")
        return PortInfo(ip, "", "", "", "", node=self.node_name)


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


# =========================================================================== the executable


def find_plugin(binary: str) -> str | None:
    """The plugin executable: a path as given, else next to this Python (the venv's ``bin``), else on PATH."""
    if os.sep in binary:
        return binary if os.access(binary, os.X_OK) else None
    beside = Path(sys.executable).parent / binary
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(binary)


def cni_args(pod: Obj) -> str:
    """``CNI_ARGS``: the pod's namespace, name and UID, as the kubelet's CRI runtime passes them."""
    meta = pod.get("metadata") or {}
    return (f"K8S_POD_NAMESPACE={meta.get('namespace') or 'default'};K8S_POD_NAME={meta.get('name') or ''};"
            f"K8S_POD_UID={meta.get('uid') or ''}")


def cni_environment(command: str, pod: Obj, container_id: str, netns_path: str, plugin_dir: str,
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one plugin call (CNI 1.0, section "Parameters")."""
    env = dict(os.environ if base is None else base)
    env.update({"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns_path,
                "CNI_IFNAME": "eth0", "CNI_ARGS": cni_args(pod), "CNI_PATH": plugin_dir})
    return env


def plugin_error(plugin_type: str, command: str, returncode: int, stdout: bytes, stderr: bytes) -> CNIPluginError:
    """The error a failed plugin call reports: its CNI error JSON on stdout, else what it wrote to stderr."""
    code, message = 0, ""
    with contextlib.suppress(orjson.JSONDecodeError):
        doc = orjson.loads(stdout) if stdout.strip() else None
        if isinstance(doc, dict):
            raw_code = doc.get("code")
            code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else 0
            message = str(doc.get("msg") or "")
            details = str(doc.get("details") or "")
            if details and details not in message:
                message = f"{message}: {details}" if message else details
    if not message:
        last_lines = stderr.decode(errors="replace").strip().splitlines()[-1:]
        message = _CODES.get(code) or (last_lines[0] if last_lines else f"exit status {returncode}")
    return CNIPluginError(plugin_type, command, message, code)


def port_from_result(result: Obj, annotated: PortInfo) -> PortInfo:
    """The pod's port from a CNI ADD result (its first IP and that interface's MAC) over the annotation's."""
    ips = result.get("ips") or []
    first = ips[0] if ips and isinstance(ips[0], dict) else {}
    address = str(first.get("address") or "")
    ip = address.split("/", 1)[0] or annotated.ip
    mac = annotated.mac
    interfaces = result.get("interfaces") or []
    index = first.get("interface")
    if isinstance(index, int) and 0 <= index < len(interfaces) and isinstance(interfaces[index], dict):
        mac = str(interfaces[index].get("mac") or mac)
    gateway = str(first.get("gateway") or annotated.gateway)
    return PortInfo(ip, mac, annotated.cidr, gateway, annotated.port_name, annotated.port_id, annotated.node)


class ExecCNIPlugin(CNIPlugin):
    """Plugs pods in by running a CNI plugin executable (see the module docstring).

    ``config`` is the network configuration given on stdin (its ``type`` names the
    plugin in errors, its ``nodeName`` is this node); ``binary`` is found by
    :func:`find_plugin` on first use.
    """

    def __init__(self, config: Mapping[str, Any], binary: str = "podlife-cni", timeout: float = 30.0, *,
                 host_ip: str = "", max_parallel: int = 8) -> None:
        super().__init__(str(config.get("nodeName") or ""), host_ip)
        self.config = dict(config)
        self.plugin_type = str(self.config.get("type") or binary)
        self.binary = binary
        self.timeout = timeout
        self._stdin = orjson.dumps(self.config)
        self._slots = asyncio.Semaphore(max_parallel)
        self._resolved: str | None = None
        #: pod UID -> the sandbox id it was added with (DEL repeats it)
        self._containers: dict[str, str] = {}

    def plugin_path(self) -> str:
        if self._resolved is None:
            found = find_plugin(self.binary)
            if found is None:
                raise CNIPluginError(self.plugin_type, "ADD", f"failed to find plugin {self.binary!r} in path "
                                     f"[{Path(sys.executable).parent} {os.environ.get('PATH', '')}]")
            self._resolved = found
        return self._resolved

    async def add(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> PortInfo:
        """Run ADD for ``pod`` in ``netns_path``; None (hostNetwork, no sandbox): records only."""
        if (pod.get("spec") or {}).get("hostNetwork") or netns_path is None:
            return await super().add(pod, netns_path, sandbox_id=sandbox_id)
        try:
            annotated = self._port_of(pod)
        except CNIError as exc:  # what the plugin would answer, without starting it
            raise CNIPluginError(self.plugin_type, "ADD", str(exc), TRY_AGAIN_LATER) from None
        uid = _uid(pod)
        container_id = sandbox_id or uid
        stdout = await self._call("ADD", pod, container_id, netns_path)
        try:
            result = orjson.loads(stdout)
        except orjson.JSONDecodeError as exc:
            raise CNIPluginError(self.plugin_type, "ADD", f"bad result JSON: {exc}") from None
        if not isinstance(result, dict):
            raise CNIPluginError(self.plugin_type, "ADD", "the result is not a JSON object")
        info = port_from_result(result, annotated)
        self.attached[uid] = info
        self._containers[uid] = container_id
        return info

    async def delete(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> None:
        """Run DEL (failures are logged, not raised: DEL is best effort and idempotent).

        Without a namespace (the sandbox is gone) DEL still runs, with an empty
        ``CNI_NETNS``, for a pod this plugin added: the node-side routes are the plugin's to remove.
        """
        uid = _uid(pod)
        self.attached.pop(uid, None)
        added = self._containers.pop(uid, None)
        if (pod.get("spec") or {}).get("hostNetwork") or (netns_path is None and added is None):
            return
        try:
            await self._call("DEL", pod, sandbox_id or added or uid, netns_path or "")
        except CNIError as exc:
            meta = pod.get("metadata") or {}
            log.warning("pod %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)

    async def _call(self, command: str, pod: Obj, container_id: str, netns_path: str) -> bytes:
        """Run the plugin once; its stdout on success, :class:`CNIPluginError` otherwise."""
        binary = self.plugin_path()
        env = cni_environment(command, pod, container_id, netns_path, str(Path(binary).parent))
        async with self._slots:
            try:
                process = await asyncio.create_subprocess_exec(
                    binary, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=env)
            except OSError as exc:
                raise CNIPluginError(self.plugin_type, command, f"cannot run {binary}: {exc}") from None
            try:
                stdout, stderr = await asyncio.wait_for(process.communicate(self._stdin), self.timeout)
            except (TimeoutError, asyncio.CancelledError) as exc:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise CNIPluginError(self.plugin_type, command, f"timed out after {self.timeout:g}s") from None
        if process.returncode != 0:
            raise plugin_error(self.plugin_type, command, process.returncode or 0, stdout, stderr)
        return stdout
