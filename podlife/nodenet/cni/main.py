"""``podlife-cni``: the CNI 1.0 plugin that plugs a pod into its Neutron-style port.

What it reads
-------------
The runtime's ``CNI_*`` environment and the network configuration on stdin
(:mod:`.spec`); for ADD (and CHECK without ``prevResult``) the pod, with the node's
kubeconfig, for its ``network.podlife.io/port`` annotation -- the port the network
controller allocated (:func:`podlife.node.port_annotation.read_port_annotation`).

What it writes
--------------
ADD plugs the pod (:func:`.plumbing.add`), then marks the Port ``status.phase: ACTIVE``
(merge patch on its status subresource) and prints the CNI result. DEL unplugs it
without the API (the pod may be gone already). CHECK compares the namespaces with
what ADD set up. VERSION prints the versions spoken. Errors are the specification's
error object on stdout with exit status 1; success prints the result (ADD, VERSION)
or nothing (DEL, CHECK).

Why this shape
--------------
Kuryr's split: the controller decides (address, MAC), the node only carries it out.
When the annotation is not written yet, ADD fails with code 11 ("try again later")
and the kubelet retries with back-off -- the race Kuryr documents. The runtime starts
this program once per pod, so it imports only what the command needs (no registry,
no API server, no asyncio, no pyroute2).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import spec
from .spec import CniError

if TYPE_CHECKING:
    from ...node.port_annotation import PortInfo
    from .plumbing import PodNetwork

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
ACTIVE = "ACTIVE"


def main(argv: list[str] | None = None) -> int:
    """Run one CNI operation from the process's environment and stdin; the exit status."""
    del argv  # CNI passes everything in the environment
    version = spec.SPEC_VERSION
    try:
        inv = spec.parse_invocation(os.environ)
        doc = spec.decode_config(sys.stdin.buffer.read())
        if inv.command == "VERSION":
            _emit(spec.version_document())
            return 0
        version = spec.check_version(doc)
        conf = spec.parse_netconf(doc, inv.command)
        result = run(inv, conf)
        if result is not None:
            _emit(result)
        return 0
    except CniError as exc:
        _emit(exc.document(version))
        return 1
    except Exception as exc:  # a bug or an unexpected system error: still a CNI error object
        _emit(CniError(spec.INTERNAL_ERROR, "podlife-cni failed", repr(exc)).document(version))
        return 1


def _emit(doc: Mapping[str, Any]) -> None:
    sys.stdout.write(spec.dumps(doc) + "\n")
    sys.stdout.flush()


def run(inv: spec.Invocation, conf: spec.NetConf) -> dict[str, Any] | None:
    if inv.command == "ADD":
        return cmd_add(inv, conf)
    if inv.command == "DEL":
        cmd_del(inv, conf)
    else:
        cmd_check(inv, conf)
    return None


def cmd_add(inv: spec.Invocation, conf: spec.NetConf) -> dict[str, Any]:
    from . import api, plumbing

    session = api.ApiSession(api.load_credentials(conf.kubeconfig))
    try:
        info = _port_of(session.get_pod(inv.pod_namespace, inv.pod_name), inv, conf)
        want = _pod_network(inv, conf, info.mac, info.ip_with_prefix, info.gateway)
        plumbing.add(want, conf.node_netns, conf.fabric_netns, conf.fabric_link, conf.uplink_address)
        session.patch_port_phase(inv.pod_namespace, info.port_name or inv.pod_name, ACTIVE)
    finally:
        session.close()
    plugged = spec.Plugged(want.host_ifname, want.host_mac, want.ifname, want.mac, inv.netns, want.address, want.gateway)
    return spec.render_result(plugged, conf.cni_version)


def cmd_del(inv: spec.Invocation, conf: spec.NetConf) -> None:
    from .. import names
    from . import plumbing

    known_ip, _, _ = spec.prev_result_address(conf.prev_result)
    plumbing.delete(names.host_veth_name(inv.pod_uid), inv.ifname, inv.netns, conf.node_netns, known_ip,
                    conf.fabric_netns, conf.fabric_link, conf.uplink_address)


def cmd_check(inv: spec.Invocation, conf: spec.NetConf) -> None:
    from . import plumbing

    _, address, gateway = spec.prev_result_address(conf.prev_result)
    mac = spec.prev_result_mac(conf.prev_result, inv.ifname)
    if not (address and mac):
        from . import api

        if not conf.kubeconfig:
            raise CniError(spec.INVALID_CONFIG, "CHECK needs prevResult or a kubeconfig")
        session = api.ApiSession(api.load_credentials(conf.kubeconfig))
        try:
            info = _port_of(session.get_pod(inv.pod_namespace, inv.pod_name), inv, conf)
        finally:
            session.close()
        address, gateway, mac = info.ip_with_prefix, info.gateway, info.mac
    problems = plumbing.check(_pod_network(inv, conf, mac, address, gateway), conf.node_netns, conf.fabric_netns,
                              conf.uplink_address)
    if problems:
        raise CniError(spec.CHECK_FAILED, "the pod's network is not as ADD set it up", "; ".join(problems))


def _port_of(pod: dict[str, Any], inv: spec.Invocation, conf: spec.NetConf) -> PortInfo:
    """The pod's PortInfo, or the CNI error the runtime should see (11 while it may still appear)."""
    from ...node.port_annotation import CNIError, read_port_annotation

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

    from .. import names
    from . import plumbing

    try:
        iface = ipaddress.ip_interface(address)
        if gateway:
            ipaddress.ip_address(gateway)
    except ValueError as exc:
        raise CniError(spec.TRY_AGAIN_LATER, "port has a bad address", str(exc)) from None
    if iface.version != 4:
        raise CniError(spec.INVALID_CONFIG, "only IPv4 ports are supported", address)
    if not _MAC_RE.match(mac):
        raise CniError(spec.TRY_AGAIN_LATER, "port has a bad MAC address", mac)
    return plumbing.PodNetwork(names.host_veth_name(inv.pod_uid), plumbing.host_mac(inv.pod_uid), inv.ifname, mac.lower(),
                               iface.with_prefixlen, gateway, conf.mtu, inv.netns)


if __name__ == "__main__":
    raise SystemExit(main())
