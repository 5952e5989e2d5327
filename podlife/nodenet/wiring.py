"""How a kubelet is plugged into its node's pod network: the node's CNI daemon and the ``podlife-cni`` plugin.

Design
------
``podlife up`` (for each of its local nodes, :mod:`podlife.cluster`) and ``podlife node``
(for its one node, :mod:`podlife.node_cli`) wire a kubelet the same way, here and only
here: when pods run as real containers and this process may manage network namespaces
(root, ``ip`` installed; :func:`pod_network_possible`), the node's network namespace is
made (:mod:`podlife.nodenet.fabric`, by the caller), the node's CNI daemon
(:mod:`podlife.nodenet.cni.daemon`) starts as the node's identity before the kubelet, and
the kubelet gets an :class:`~podlife.node.cni.ExecCNIPlugin` whose network configuration
names the node namespace, the fabric, the node's kubeconfig and the daemon's socket.
Nothing is watched or written here; the daemon is the caller's to stop (after the kubelet,
before the namespaces go).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..client.base import Client
from ..node.cni import ExecCNIPlugin
from .cni.daemon import CNIDaemon, socket_path_for
from .fabric import NodeNetwork

__all__ = ["pod_network_possible", "start_node_cni"]


def pod_network_possible(real_containers: bool) -> bool:
    """Whether node network namespaces can be made for pods: real containers, root, and the ``ip`` tool."""
    return real_containers and os.geteuid() == 0 and shutil.which("ip") is not None


async def start_node_cni(client: Client, network: NodeNetwork, kubeconfig: Path, node_dir: Path,
                         host_ip: str) -> tuple[CNIDaemon, ExecCNIPlugin]:
    """Start node ``network.node_name``'s CNI daemon (``client``: the node's identity; its socket under
    ``node_dir``) and return it with the kubelet's plugin (``kubeconfig``: what a standalone plugin uses)."""
    daemon = CNIDaemon(client, network.node_name, socket_path_for(node_dir))
    await daemon.start()
    plugin = ExecCNIPlugin(network.cni_config(kubeconfig, daemon_socket=daemon.socket_path), host_ip=host_ip)
    return daemon, plugin
