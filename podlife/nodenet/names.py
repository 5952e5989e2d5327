"""The names of everything podlife creates for pod networking on this machine.

Why one module
--------------
Namespaces, veths and nftables tables outlive a crashed podlife (``kill -9``), and the
next start must find and remove exactly its own leftovers -- never another cluster's
(tests run several clusters side by side), never the host's. So every name carries the
cluster's short id, derived from its data directory, and is built here and nowhere else.

Linux limits interface names to 15 characters; network namespace names are file names
under ``/run/netns``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: every network namespace podlife creates starts with this
NETNS_PREFIX = "podlife-"
#: where ``ip netns`` pins named namespaces
NETNS_DIR = Path("/run/netns")
#: the node namespace's dummy interface holding the node-local service addresses (DNS, API)
SERVICE_DUMMY = "podlife0"
#: the node namespace's end of its link to the fabric
NODE_UPLINK = "uplink0"
#: nftables tables in a node namespace: the service proxy's and NetworkPolicy's
PROXY_TABLE = "podlife-proxy"
POLICY_TABLE = "podlife-policy"


def cluster_id(data_dir: Path) -> str:
    """Six hex digits naming one cluster on this machine (same data dir: same id, across restarts)."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:6]


def cluster_netns_prefix(cid: str) -> str:
    """All of cluster ``cid``'s namespaces start with this (what a restart sweeps)."""
    return f"{NETNS_PREFIX}{cid}-"


def node_netns_name(cid: str, node_index: int) -> str:
    """The node namespace of the ``node_index``-th local node (0-based) of cluster ``cid``."""
    return f"{cluster_netns_prefix(cid)}n{node_index}"


def fabric_netns_name(cid: str) -> str:
    """The namespace joining cluster ``cid``'s node namespaces (the 'wire' between the nodes)."""
    return f"{cluster_netns_prefix(cid)}fabric"


def fabric_link_name(node_index: int) -> str:
    """The fabric's end of the link to node ``node_index``."""
    return f"node{node_index}"


def host_veth_name(pod_uid: str) -> str:
    """The node-side end of a pod's veth pair (``plv`` + 11 hex of the pod UID, 14 characters)."""
    return "plv" + hashlib.sha256(pod_uid.encode()).hexdigest()[:11]


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


__all__ = ["NETNS_DIR", "NETNS_PREFIX", "NODE_UPLINK", "POLICY_TABLE", "PROXY_TABLE", "SERVICE_DUMMY", "cluster_id",
           "cluster_netns_prefix", "fabric_link_name", "fabric_netns_name", "host_veth_name", "netns_path",
           "node_netns_name"]
