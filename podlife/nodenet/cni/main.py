"""``podlife-cni``: the CNI 1.0 plugin that plugs a pod into its Neutron-style port.

What it reads
-------------
The runtime's ``CNI_*`` environment and the network configuration on stdin
(:mod:`.spec`); for ADD (and CHECK without ``prevResult``) the pod, for its
``network.podlife.io/port`` annotation -- the port the network controller allocated
(:func:`podlife.node.port_annotation.read_port_annotation`).

What it writes
--------------
ADD plugs the pod (:func:`.plumbing.add`), then marks the Port ``status.phase: ACTIVE``
(merge patch on its status subresource) and prints the CNI result. DEL unplugs it
without the API (the pod may be gone already). CHECK compares the namespaces with
what ADD set up. VERSION prints the versions spoken. Errors are the specification's
error object on stdout with exit status 1; success prints the result (ADD, VERSION)
or nothing (DEL, CHECK).

Two ways to run, one implementation
-----------------------------------
Kuryr's CNI split. When the configuration names a ``daemonSocket`` and a
:class:`~.daemon.CNIDaemon` answers there, this executable is a *shim*: it sends the
``CNI_*`` environment and the configuration as one JSON request over the unix socket
(:func:`forward`), prints the daemon's ``stdout`` and exits with its ``code``. The
daemon runs on the node, keeps the node's pods in an informer cache (the annotation is
already in memory, fed by the API watch) and reports the Port through its own client,
so a pod start costs neither a TLS handshake nor the plugin's imports. The shim path
imports only ``os``, ``sys``, ``json`` and ``socket`` (everything else here is imported
inside the functions that need it).

Without the socket (absent, refusing, or the daemon failing to answer) the plugin does
the work itself, as any CNI plugin a runtime could call: it reads the pod and patches
the Port with the node's kubeconfig (:mod:`.api`). ADD and DEL are idempotent, so
redoing a request the daemon may have half done is safe. VERSION always answers here.

Both ways run :func:`handle`: the operations take a *connect* function giving the
:class:`PodApi` -- where the pod is read from and the Port status written to (the
kubeconfig's :class:`~.api.ApiSession` here, the daemon's informer cache and client
there); there is one ADD, one DEL and one CHECK.

Why this shape
--------------
The controller decides (address, MAC), the node only carries it out. When the
annotation is not written yet, ADD fails with code 11 ("try again later") and the
kubelet retries with back-off -- the race Kuryr documents.
"""

from __future__ import annotations

import json
import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    from ...node.port_annotation import PortInfo
    from . import spec
    from .plumbing import PodNetwork

    class PodApi(Protocol):
        """The pod source and the Port status writer of one operation."""

        def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

        def patch_port_phase(self, namespace: str, name: str, phase: str) -> object: ...

        def close(self) -> None: ...

    Connect = Callable[[spec.NetConf], PodApi]

ACTIVE = "ACTIVE"
_MAC_PATTERN = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
#: how long the shim waits to be accepted by the daemon before it does the work itself
CONNECT_TIMEOUT = 2.0
MAX_ANSWER = 1 << 20


def main(argv: list[str] | None = None) -> int:
    """Run one CNI operation from the process's environment and stdin; the exit status."""
    del argv  # CNI passes everything in the environment
    raw = sys.stdin.buffer.read()
    answer = forward(os.environ, raw) if os.environ.get("CNI_COMMAND") != "VERSION" else None
    code, out = answer if answer is not None else handle(os.environ, raw, connect_api)
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
        sys.stdout.flush()
    return code


# ---------------------------------------------------------------- the shim


def daemon_request(env: Mapping[str, str], raw: bytes) -> tuple[str, bytes] | None:
    """(socket path, request) when the configuration names a daemon socket; None otherwise (pure)."""
    try:
        config = json.loads(raw)
    except ValueError:
        return None
    path = config.get("daemonSocket") if isinstance(config, dict) else None
    if not isinstance(path, str) or not path:
        return None
    cni_env = {key: value for key, value in env.items() if key.startswith("CNI_")}
    return path, json.dumps({"env": cni_env, "config": config}).encode()


def forward(env: Mapping[str, str], raw: bytes) -> tuple[int, str] | None:
    """The daemon's (exit code, stdout) for this request; None when there is no daemon to ask."""
    request = daemon_request(env, raw)
    if request is None:
        return None
    path, payload = request
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
            sock.settimeout(None)  # the runtime bounds the whole call
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []
            while sum(map(len, chunks)) <= MAX_ANSWER:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        answer = json.loads(b"".join(chunks))
        code, out = answer["code"], answer["stdout"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, refusing, or gone mid-way: do it here (ADD and DEL are idempotent)
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(out, str):
        return None
    return code, out


# ---------------------------------------------------------------- the operations (shared with the daemon)


def connect_api(conf: spec.NetConf) -> PodApi:
    """The standalone plugin's API: one HTTPS session with the configuration's kubeconfig."""
    from . import api
    from .spec import INVALID_CONFIG, CniError

    if not conf.kubeconfig:
        raise CniError(INVALID_CONFIG, "reading the pod needs a kubeconfig (or prevResult for CHECK)")
    return api.ApiSession(api.load_credentials(conf.kubeconfig))


def handle(env: Mapping[str, str], config: bytes | Mapping[str, Any], connect: Connect) -> tuple[int, str]:
    """One CNI operation: its exit status and what it prints. ``config`` is stdin's bytes or the decoded document."""
    from . import spec
    from .spec import CniError

    version = spec.SPEC_VERSION
    try:
        inv = spec.parse_invocation(env)
        doc = spec.decode_config(config) if isinstance(config, bytes) else dict(config)
        if inv.command == "VERSION":
            return 0, spec.dumps(spec.version_document())
        version = spec.check_version(doc)
        conf = spec.parse_netconf(doc, inv.command)
        result = run(inv, conf, connect)
        return 0, spec.dumps(result) if result is not None else ""
    except CniError as exc:
        return 1, spec.dumps(exc.document(version))
    except Exception as exc:  # a bug or an unexpected system error: still a CNI error object
        return 1, spec.dumps(CniError(spec.INTERNAL_ERROR, "podlife-cni failed", repr(exc)).document(version))


def run(inv: spec.Invocation, conf: spec.NetConf, connect: Connect) -> dict[str, Any] | None:
    if inv.command == "ADD":
        return cmd_add(inv, conf, connect)
    if inv.command == "DEL":
        cmd_del(inv, conf)
    else:
        cmd_check(inv, conf, connect)
    return None


def cmd_add(inv: spec.Invocation, conf: spec.NetConf, connect: Connect) -> dict[str, Any]:
    from . import plumbing, spec

    pods = connect(conf)
    try:
        info = _port_of(pods.get_pod(inv.pod_namespace, inv.pod_name), inv, conf)
        want = _pod_network(inv, conf, info.mac, info.ip_with_prefix, info.gateway)
        plumbing.add(want, conf.node_netns, conf.fabric_netns, conf.fabric_link, conf.uplink_address)
        pods.patch_port_phase(inv.pod_namespace, info.port_name or inv.pod_name, ACTIVE)
    finally:
        pods.close()
    plugged = spec.Plugged(want.host_ifname, want.host_mac, want.ifname, want.mac, inv.netns, want.address, want.gateway)
    return spec.render_result(plugged, conf.cni_version)


def cmd_del(inv: spec.Invocation, conf: spec.NetConf) -> None:
    from .. import names
    from . import plumbing, spec

    known_ip, _, _ = spec.prev_result_address(conf.prev_result)
    plumbing.delete(names.host_veth_name(inv.pod_uid), inv.ifname, inv.netns, conf.node_netns, known_ip,
                    conf.fabric_netns, conf.fabric_link, conf.uplink_address)


def cmd_check(inv: spec.Invocation, conf: spec.NetConf, connect: Connect) -> None:
    from . import plumbing, spec
    from .spec import CniError

    _, address, gateway = spec.prev_result_address(conf.prev_result)
    mac = spec.prev_result_mac(conf.prev_result, inv.ifname)
    if not (address and mac):
        pods = connect(conf)
        try:
            info = _port_of(pods.get_pod(inv.pod_namespace, inv.pod_name), inv, conf)
        finally:
            pods.close()
        address, gateway, mac = info.ip_with_prefix, info.gateway, info.mac
    problems = plumbing.check(_pod_network(inv, conf, mac, address, gateway), conf.node_netns, conf.fabric_netns,
                              conf.uplink_address)
    if problems:
        raise CniError(spec.CHECK_FAILED, "the pod's network is not as ADD set it up", "; ".join(problems))


def _port_of(pod: dict[str, Any], inv: spec.Invocation, conf: spec.NetConf) -> PortInfo:
    """The pod's PortInfo, or the CNI error the runtime should see (11 while it may still appear)."""
    from ...node.port_annotation import CNIError, read_port_annotation
    from . import spec
    from .spec import CniError

    meta = pod.get("metadata") or {}
    where = f"pod {inv.pod_namespace}/{inv.pod_name}"
    if meta.get("uid") != inv.pod_uid:
        raise CniError(spec.TRY_AGAIN_LATER, "pod UID mismatch",
                       f"{where} has UID {meta.get('uid')!r}, the sandbox is for {inv.pod_uid!r}")
    if (pod.get("spec") or {}).get("hostNetwork"):
        raise CniError(spec.INVALID_CONFIG, "host-network pods are not plugged by CNI", where)
    try:
        info = read_port_annotation(pod)
    except CNIError as exc:
        raise CniError(spec.TRY_AGAIN_LATER, str(exc), where) from None
    if conf.node_name and info.node and info.node != conf.node_name:
        raise CniError(spec.TRY_AGAIN_LATER, "port is bound to another node",
                       f"{where}: port {info.port_name} is bound to {info.node}, this is {conf.node_name}")
    return info


def _pod_network(inv: spec.Invocation, conf: spec.NetConf, mac: str, address: str, gateway: str) -> PodNetwork:
    import ipaddress
    import re

    from .. import names
    from . import plumbing, spec
    from .spec import CniError

    try:
        iface = ipaddress.ip_interface(address)
        if gateway:
            ipaddress.ip_address(gateway)
    except ValueError as exc:
        raise CniError(spec.TRY_AGAIN_LATER, "port has a bad address", str(exc)) from None
    if iface.version != 4:
        raise CniError(spec.INVALID_CONFIG, "only IPv4 ports are supported", address)
    if not re.match(_MAC_PATTERN, mac):
        raise CniError(spec.TRY_AGAIN_LATER, "port has a bad MAC address", mac)
    return plumbing.PodNetwork(names.host_veth_name(inv.pod_uid), plumbing.host_mac(inv.pod_uid), inv.ifname, mac.lower(),
                               iface.with_prefixlen, gateway, conf.mtu, inv.netns)


if __name__ == "__main__":
    raise SystemExit(main())
