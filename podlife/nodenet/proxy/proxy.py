"""The service proxy of one node: Services and EndpointSlices to the node namespace's nftables table.

Design
------
What it watches: every Service and every EndpointSlice (all namespaces), through two
informers. What it writes: nothing in the API -- only table ``ip podlife-proxy`` in the
node's network namespace (:class:`~.apply.NftApplier`).

Every informer event only marks the state dirty. One loop renders the whole table from
the informers' caches (:func:`~.render.build_ruleset`, pure and cheap) and applies it
when it differs from the last one. The first change after a quiet spell is applied at
once -- a pod that stops being ready must stop getting connections promptly -- and the
changes of a burst are coalesced, at most one apply per ``min_interval``. A failed
apply is retried with backoff (the namespace may not exist yet at start); the previous
rules stay meanwhile. After an apply, UDP conntrack entries that the new rules would
route differently are deleted (:mod:`.conntrack`). The table is deleted when
:meth:`ServiceProxy.run` ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ...client.base import SERVICES, Client, Obj, Resource
from ...client.informer import Informer
from .. import names
from .apply import NftApplier
from .conntrack import forget_udp_flows, stale_udp
from .render import Ruleset, build_ruleset

log = logging.getLogger(__name__)

ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")


class ServiceProxy:
    def __init__(self, client: Client, node_name: str, netns: str, *, table: str = names.PROXY_TABLE,
                 cluster_cidrs: Sequence[str] = (), min_interval: float = 0.05, max_backoff: float = 10.0,
                 services: Informer | None = None, slices: Informer | None = None) -> None:
        self.node_name = node_name
        self.netns = netns
        self.table = table
        self.cluster_cidrs = tuple(cluster_cidrs)
        self.min_interval = min_interval
        self.max_backoff = max_backoff
        # informers shared with another component (the cluster DNS watches the same) are run by their owner
        self.services = services if services is not None else Informer(client, SERVICES)
        self.slices = slices if slices is not None else Informer(client, ENDPOINT_SLICES)
        self._own_informers = ([self.services] if services is None else []) + ([self.slices] if slices is None else [])
        self.applier = NftApplier(netns, table=table)
        self._dirty = asyncio.Event()
        self._synced = asyncio.Event()
        self.ruleset: Ruleset | None = None  # the last ruleset in force
        for informer in (self.services, self.slices):
            informer.add_handlers(on_add=self._changed, on_update=lambda _old, _new: self._changed(),
                                  on_delete=self._changed)

    def _changed(self, *_: Obj) -> None:
        self._dirty.set()

    async def wait_synced(self) -> None:
        """Until the informers have listed and the first ruleset is in force."""
        await self._synced.wait()

    def render(self) -> Ruleset:
        return build_ruleset(list(self.services.cache.values()), list(self.slices.cache.values()),
                             node_name=self.node_name, table=self.table, cluster_cidrs=self.cluster_cidrs)

    async def sync(self) -> bool:
        """Render from the caches and apply; False when nft refused it."""
        rs, previous = self.render(), self.ruleset
        if not await self.applier.apply_ruleset(rs):
            return False
        gone, fresh = stale_udp(previous, rs)
        if gone or fresh:
            try:
                await forget_udp_flows(self.netns, gone, fresh)
            except Exception as exc:  # the rules are in force; stale UDP flows only age out slower
                log.warning("service proxy: could not clear UDP conntrack entries in %s: %s", self.netns, exc)
        self.ruleset = rs  # in force, and the flows it moves forgotten
        return True

    async def run(self) -> None:
        """Keep the table in step with the API until cancelled, then delete it."""
        tasks = [asyncio.create_task(informer.run()) for informer in self._own_informers]
        try:
            await self._loop()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(self.applier.remove())

    async def _loop(self) -> None:
        await self.services.wait_synced()
        await self.slices.wait_synced()
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while True:
            self._dirty.clear()
            started = loop.time()
            if await self.sync():
                backoff = 0.0
                self._synced.set()
                await self._dirty.wait()
            else:
                backoff = min(max(backoff * 2, 0.5), self.max_backoff)
                try:
                    await asyncio.wait_for(self._dirty.wait(), backoff)
                except TimeoutError:
                    pass
            pause = started + self.min_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)  # coalesce a burst: at most one apply per min_interval


__all__ = ["ENDPOINT_SLICES", "ServiceProxy"]
