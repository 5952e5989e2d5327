"""The clusterrole-aggregation controller: an aggregated ClusterRole's rules are the union of others'.

Design
------
A ClusterRole with an ``aggregationRule`` does not own its ``rules``: they are the
rules of every ClusterRole its ``clusterRoleSelectors`` select by label. That is how
``admin``, ``edit`` and ``view`` grow when an operator installs a ClusterRole labelled
``rbac.authorization.k8s.io/aggregate-to-view: "true"`` for its own kinds, and how
``admin`` includes ``edit`` (labelled ``aggregate-to-admin``), which includes ``view``.

What it watches: every ClusterRole (the shared informer). Any add, change or deletion may
change what some selector selects, or the rules of a selected role, so each event
queues every aggregated ClusterRole (there are few), as Kubernetes does.

What it writes: only the ``rules`` of aggregated ClusterRoles, with an update that
carries the resourceVersion it read, and only when the union differs from what is
stored -- so its own writes, which come back as events, end in a no-op. A chain
(``admin`` selects ``edit``, which selects ``view``'s sources) settles in as many
rounds as it is deep: each write is an event that queues the roles above it.

The union, in a stable order so that repeated runs agree: selectors in their order;
for each, the selected roles sorted by name (the aggregated role itself skipped);
each role's rules in their order; a rule equal to one already taken (empty and
absent lists count as equal) is left out. A 404 (the role went away) or 409 (it
changed meanwhile) is dropped: the event that caused it queues the role again.
Selectors are parsed with :func:`~podlife.machinery.selectors.label_selector_from_dict`;
one that does not parse selects nothing (validation rejects such roles on write).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from ..client.base import Obj, Resource
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.selectors import LabelSelector, SelectorError, label_selector_from_dict
from .manager import ControllerContext

log = logging.getLogger(__name__)

CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")

RuleKey = tuple[tuple[str, ...], ...]


def rule_key(rule: Any) -> RuleKey:
    """What makes two rules equal: their lists, with ``[]``, ``null`` and absent alike."""
    if not isinstance(rule, dict):
        return ((repr(rule),),)
    return tuple(tuple(rule.get(k) or ()) for k in _RULE_LISTS)


def _selectors(role: Obj) -> list[LabelSelector]:
    aggregation = role.get("aggregationRule")
    raw = aggregation.get("clusterRoleSelectors") if isinstance(aggregation, dict) else None
    parsed = []
    for selector in raw if isinstance(raw, list) else []:
        try:
            parsed.append(label_selector_from_dict(selector))
        except SelectorError:
            log.warning("clusterrole %s: ignoring an invalid selector", (role.get("metadata") or {}).get("name"))
    return parsed


def is_aggregated(role: Obj) -> bool:
    return isinstance(role.get("aggregationRule"), dict)


def aggregated_rules(role: Obj, roles: Iterable[Obj]) -> list[Obj]:
    """The union of the rules of the roles ``role``'s selectors select, in the stable order above."""
    name = (role.get("metadata") or {}).get("name")
    by_name = sorted(roles, key=lambda r: (r.get("metadata") or {}).get("name") or "")
    seen: set[RuleKey] = set()
    union: list[Obj] = []
    for selector in _selectors(role):
        for other in by_name:
            meta = other.get("metadata") or {}
            if meta.get("name") == name or not selector.matches(meta.get("labels") or {}):
                continue
            for rule in other.get("rules") or []:
                key = rule_key(rule)
                if key not in seen:
                    seen.add(key)
                    union.append(copy.deepcopy(rule))  # informer objects are shared: never hand them on
    return union


def same_rules(a: Iterable[Any] | None, b: Iterable[Any] | None) -> bool:
    return [rule_key(r) for r in a or ()] == [rule_key(r) for r in b or ()]


class ClusterRoleAggregationController:
    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        self.client = ctx.client
        self.roles = ctx.informers.informer(CLUSTER_ROLES)
        self.queue = WorkQueue()
        self.workers = workers
        self.roles.add_handlers(on_add=self._enqueue_aggregated, on_update=lambda _old, new: self._enqueue_aggregated(new),
                                on_delete=self._enqueue_aggregated)

    def _enqueue_aggregated(self, _changed: Obj) -> None:
        """Whatever changed, any aggregated role may select it now or may have before."""
        for role in self.roles.cache.values():
            if is_aggregated(role):
                self.queue.add(role["metadata"]["name"])

    async def run(self) -> None:
        await self.roles.wait_synced()
        await self.queue.run_workers(self.sync, self.workers)

    async def sync(self, name: str) -> None:
        role = self.roles.get(None, name)
        if role is None or not is_aggregated(role):
            return
        rules = aggregated_rules(role, self.roles.cache.values())
        if same_rules(rules, role.get("rules")):
            return
        updated = {**role, "metadata": dict(role["metadata"]), "rules": rules}
        try:
            await self.client.update(CLUSTER_ROLES, updated)
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or changed meanwhile: its event queues it again
                raise
