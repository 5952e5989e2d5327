"""The per-node NetworkPolicy enforcer: keeps the node namespace's nftables table in step with the API.

What it watches
---------------
Informers on NetworkPolicies, Pods and Namespaces, cluster-wide: a local pod's rules depend on
pods anywhere (peers on other nodes) and on namespace labels (``namespaceSelector``).

What it writes
--------------
Only table ``inet <table>`` (``names.POLICY_TABLE``) in its node's network namespace, through
``nft -f -`` run inside that namespace (:mod:`.apply`). Nothing is written to the API.

How
---
Handlers only mark the state dirty. One loop waits for that mark, lets a short burst of events
gather (``coalesce`` seconds), renders the whole ruleset with
:func:`~.render.render_policy_ruleset` and loads it when it differs from what is loaded: each
load replaces the table atomically, so there is never a moment with half a policy. A failed load
is logged and retried with backoff. Nothing is loaded before all three informers have synced (a
ruleset rendered from a partial view could open a pod that a policy isolates). When ``run`` is
cancelled the table is deleted: a node without its enforcer enforces nothing, like a node whose
network plugin is gone, rather than freezing stale rules.

The cluster DNS
---------------
podlife's DNS is a node-local listener (``kube-dns``'s ClusterIP on the node namespace's service
dummy), not pods. Kubernetes allows DNS only when an egress rule does, typically one naming the
``k8s-app=kube-dns`` pods of ``kube-system``; so that such policies mean here what they mean
there, each DNS address enters the rendering as a stand-in pod of ``kube-system`` labelled
``k8s-app: kube-dns`` with the ports ``dns`` (53/UDP) and ``dns-tcp`` (53/TCP). It is on no node,
so it is only ever a peer; nothing about DNS is allowed implicitly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ...client.base import NAMESPACES, PODS, Client, Obj, Resource
from ...client.informer import Informer
from .. import names
from ..nft import NftError, nft_apply, nft_delete_table
from .render import DEFAULT_SERVICE_CIDRS, render_policy_ruleset

log = logging.getLogger(__name__)

NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
DEFAULT_CLUSTER_DNS = ("10.96.0.10",)
DNS_NAMESPACE = "kube-system"
DNS_LABELS = {"k8s-app": "kube-dns"}


def dns_stand_in(ip: str) -> Obj:
    """The pod the node-local DNS at ``ip`` stands for, as NetworkPolicy peers see it."""
    return {"metadata": {"namespace": DNS_NAMESPACE, "name": f"cluster-dns-{ip}", "uid": "", "labels": dict(DNS_LABELS)},
            "spec": {"containers": [{"name": "dns", "ports": [
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


class PolicyEnforcer:
    """Enforces NetworkPolicy for ``node_name``'s pods in the node network namespace ``netns``
    (a name under /run/netns, or a path)."""

    def __init__(self, client: Client, node_name: str, netns: str, *, table: str = names.POLICY_TABLE,
                 cluster_dns: Sequence[str] = DEFAULT_CLUSTER_DNS, service_cidrs: Sequence[str] = DEFAULT_SERVICE_CIDRS,
                 coalesce: float = 0.05) -> None:
        self.client = client
        self.node_name = node_name
        self.netns = netns
        self.table = table
        self.coalesce = coalesce
        self.service_cidrs = tuple(service_cidrs)
        self.stand_ins = [dns_stand_in(ip) for ip in cluster_dns]
        self.policies = Informer(client, NETWORK_POLICIES)
        self.pods = Informer(client, PODS)
        self.namespaces = Informer(client, NAMESPACES)
        for informer in (self.policies, self.pods, self.namespaces):
            informer.add_handlers(on_add=self._mark, on_update=lambda _old, _new: self._mark(), on_delete=self._mark)
        self._dirty = asyncio.Event()
        #: the script in the namespace now (None: nothing loaded yet, or the last load failed)
        self.loaded: str | None = None
        #: how many loads succeeded
        self.loads = 0

    def _mark(self, *_: object) -> None:
        self._dirty.set()

    def render(self) -> str:
        """The ruleset the informers' current view calls for."""
        return render_policy_ruleset(list(self.policies.cache.values()), list(self.pods.cache.values()) + self.stand_ins,
                                     list(self.namespaces.cache.values()), node_name=self.node_name, table=self.table,
                                     service_cidrs=self.service_cidrs)

    async def run(self) -> None:
        """Enforce until cancelled; then delete the table."""
        informers = [asyncio.create_task(i.run(), name=f"policy-informer-{i.res.plural}")
                     for i in (self.policies, self.pods, self.namespaces)]
        try:
            await asyncio.gather(*(i.wait_synced() for i in (self.policies, self.pods, self.namespaces)))
            self._dirty.set()
            await self._loop()
        finally:
            for task in informers:
                task.cancel()
            await asyncio.gather(*informers, return_exceptions=True)
            await asyncio.shield(self._remove())

    async def _loop(self) -> None:
        backoff = 0.5
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.coalesce)  # let a burst of events land in one load
            self._dirty.clear()
            script = self.render()
            if script == self.loaded:
                continue
            try:
                await nft_apply(self.netns, script)
            except (NftError, OSError) as exc:
                log.error("network policy for node %s: %s", self.node_name, exc)
                self.loaded = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._dirty.set()
                continue
            backoff = 0.5
            self.loaded = script
            self.loads += 1

    async def _remove(self) -> None:
        try:
            await nft_delete_table(self.netns, "inet", self.table)
        except (NftError, OSError) as exc:
            log.warning("network policy for node %s: %s", self.node_name, exc)

    async def wait_in_sync(self, poll: float = 0.02) -> str:
        """Wait until what is loaded is what the current view renders; return that script."""
        while True:
            if all(i.synced for i in (self.policies, self.pods, self.namespaces)) and not self._dirty.is_set():
                wanted = self.render()
                if wanted == self.loaded:
                    return wanted
            await asyncio.sleep(poll)


__all__ = ["DEFAULT_CLUSTER_DNS", "NETWORK_POLICIES", "PolicyEnforcer", "dns_stand_in"]
