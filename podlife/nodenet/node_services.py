"""What serves inside the node network namespaces: service proxy, NetworkPolicy, cluster DNS, API forwarder.

Design
------
Each real node's namespace (:mod:`podlife.nodenet.fabric`) is where its pods' traffic
goes first, so that is where a Service address must mean something. Per node:

* the service proxy (:mod:`podlife.nodenet.proxy`, kube-proxy's role) keeps an nftables
  table that DNATs ClusterIPs and NodePorts to ready endpoints;
* the NetworkPolicy agent (:mod:`podlife.nodenet.policy`, a CNI's policy agent) keeps
  another table filtering what reaches and leaves the node's pods;
* the ``kubernetes`` Service forwarder (:mod:`podlife.nodenet.proxy.apiforward`) listens
  on the Service's address inside the namespace and relays to the API server's loopback
  address in the host namespace -- the only way a pod reaches the API server.

And one cluster DNS (:mod:`podlife.nodenet.dns`) for the cluster, with a listener on the
``--cluster-dns`` address in every node namespace, all answering from one zone.

Each watches the API with its own identity (the clients are given: kube-proxy's, the
DNS's, the policy agent's), writes nothing to the API, and undoes what it made in the
namespace when cancelled. :func:`run_node_services` runs them all until cancelled; if
one fails, the others are cancelled and the failure propagates, so the supervisor that
started it restarts the set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ..client.base import Client
from .dns import ClusterDNS
from .fabric import NodeNetwork
from .policy import PolicyEnforcer
from .proxy.apiforward import ApiForwarder
from .proxy.proxy import ServiceProxy


@dataclass(frozen=True)
class NodeServiceSettings:
    """The cluster's addresses the node services need."""

    api_port: int
    #: the ``kubernetes`` Service's ClusterIP (the first address of the service range)
    kubernetes_ip: str
    #: ``--cluster-dns`` (the first is where the DNS listens) and ``--cluster-domain``
    cluster_dns: Sequence[str] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    api_host: str = "127.0.0.1"


@dataclass(frozen=True)
class NodeServiceClients:
    """Who each service acts as (see :mod:`podlife.api.authz.bootstrap` for their roles)."""

    proxy: Client
    dns: Client
    policy: Client


async def run_node_services(networks: Sequence[NodeNetwork], clients: NodeServiceClients,
                            settings: NodeServiceSettings) -> None:
    """Serve in every node namespace of ``networks`` until cancelled."""
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as group:
        dns = ClusterDNS(clients.dns, domain=settings.cluster_domain, listen=(settings.cluster_dns[0], 53))
        group.create_task(dns.run(), name="cluster-dns")
        for network in networks:
            await dns.add_namespace(network.netns_path)
            await stack.enter_async_context(_forwarder(network, settings))
            group.create_task(ServiceProxy(clients.proxy, network.node_name, network.netns,
                                           cluster_cidrs=[settings.pod_cidr]).run(),
                              name=f"service-proxy {network.node_name}")
            group.create_task(PolicyEnforcer(clients.policy, network.node_name, network.netns,
                                             cluster_dns=settings.cluster_dns,
                                             service_cidrs=[settings.service_cidr]).run(),
                              name=f"network-policy {network.node_name}")


@contextlib.asynccontextmanager
async def _forwarder(network: NodeNetwork, settings: NodeServiceSettings) -> AsyncIterator[ApiForwarder]:
    forwarder = ApiForwarder(network.netns_path, (settings.kubernetes_ip, 443), (settings.api_host, settings.api_port))
    await forwarder.start()
    try:
        yield forwarder
    finally:
        await forwarder.stop()


__all__ = ["NodeServiceClients", "NodeServiceSettings", "run_node_services"]
