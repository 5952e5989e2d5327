"""Forget UDP flows that the new rules would send elsewhere (what kube-proxy does with conntrack).

Why
---
NAT is decided on a flow's first packet and then kept in the connection tracking
table. For TCP that is right: an open connection stays with its pod (and new ones
follow the rules at once). A UDP "flow" though is only a 5-tuple with a timeout, and a
client that keeps its socket (a resolver, a metrics agent) would keep talking to a pod
that left the Service, or -- when packets crossed the node before the Service had
endpoints -- keep its untranslated entry and never be DNATed. So after each apply the
proxy deletes, in the node namespace, the UDP entries whose reply comes from an endpoint
that is no longer a target (:func:`stale_udp`), and those addressed to a UDP service
port that just gained endpoints.

:func:`udp_targets` and :func:`udp_services` read a :class:`~.render.Ruleset` (pure);
:func:`forget_udp_flows` talks netlink to the namespace's conntrack (pyroute2).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable

from .render import SERVICE_IPS, Ruleset

log = logging.getLogger(__name__)

Flow = tuple[str, int]
_DNAT = re.compile(r"^meta l4proto udp dnat to (\d+\.\d+\.\d+\.\d+):(\d+)$")
_SERVICE = re.compile(r"^(\d+\.\d+\.\d+\.\d+) \. udp \. (\d+) : goto ")


def udp_targets(rs: Ruleset | None) -> set[Flow]:
    """Every (endpoint IP, port) that ``rs`` DNATs UDP to."""
    found: set[Flow] = set()
    for chain in rs.chains if rs is not None else ():
        for rule in chain.rules:
            m = _DNAT.match(rule)
            if m:
                found.add((m.group(1), int(m.group(2))))
    return found


def udp_services(rs: Ruleset | None) -> set[Flow]:
    """Every (ClusterIP, port) of a UDP service port that ``rs`` sends to endpoints."""
    found: set[Flow] = set()
    for m in rs.maps if rs is not None else ():
        if m.name == SERVICE_IPS:
            found |= {(g.group(1), int(g.group(2))) for g in map(_SERVICE.match, m.elements) if g}
    return found


def stale_udp(previous: Ruleset | None, current: Ruleset) -> tuple[set[Flow], set[Flow]]:
    """(endpoints no longer targeted, service ports newly served) between two rulesets."""
    return udp_targets(previous) - udp_targets(current), udp_services(current) - udp_services(previous)


async def forget_udp_flows(netns: str, endpoints: Iterable[Flow] = (), services: Iterable[Flow] = ()) -> int:
    """Delete the UDP conntrack entries of ``netns`` replied to by ``endpoints`` or addressed to ``services``."""
    gone, fresh = set(endpoints), set(services)
    if not gone and not fresh:
        return 0
    from pyroute2.conntrack import AsyncConntrack  # netlink, only when there is something to forget

    ct = AsyncConntrack(netns=netns)
    deleted = 0
    try:
        doomed = []
        async for entry in await ct.dump_entries():
            orig, reply = entry.tuple_orig, entry.tuple_reply
            if orig is None or reply is None or orig.proto != socket.IPPROTO_UDP:
                continue
            if (reply.saddr, reply.sport) in gone or (orig.daddr, orig.dport) in fresh:
                doomed.append(entry)
        for entry in doomed:
            try:
                await ct.delete(entry)
                deleted += 1
            except Exception as exc:  # gone meanwhile
                log.debug("conntrack: %s", exc)
    finally:
        ct.close()
    return deleted


__all__ = ["forget_udp_flows", "stale_udp", "udp_services", "udp_targets"]
