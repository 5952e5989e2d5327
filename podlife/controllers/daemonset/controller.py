"""The DaemonSet controller: one pod per eligible node, rolled from revision to revision.

Watches (shared informers): DaemonSets, Nodes, Pods (indexed by controller uid, and
orphans by namespace), ControllerRevisions (by controller uid, orphans by namespace).
Handlers only enqueue DaemonSet keys and note observed creations and deletions:

* a DaemonSet added, changed or deleted: that DaemonSet;
* a Node added or deleted, or changed in labels or taints (heartbeats are ignored):
  every DaemonSet (Kubernetes' ``addNode``/``updateNode``/``deleteNode``);
* a Pod of a DaemonSet added, changed or deleted: its DaemonSet (an orphan: every
  DaemonSet of its namespace whose selector matches, which will adopt it);
* a ControllerRevision of a DaemonSet: its DaemonSet.

Writes: Pods (create with ``generateName``, delete, adopt/release), ControllerRevisions
(create, relabel, renumber, delete), the DaemonSet's ``status`` subresource (only when
it changed), Events ``SuccessfulCreate``/``SuccessfulDelete``/``FailedCreate``/
``FailedDelete``/``FailedDaemonPod``.

One sync (Kubernetes' ``syncDaemonSet``): judge every node once
(:class:`~.placement.TemplateFit`); construct the history (the revision equal to the
template is current, created if missing with the next revision number, renumbered to
the newest if an old one came back -- ``rollout undo``; name collisions bump
``status.collisionCount``); then, unless creations or deletions asked for earlier are
still unobserved (:class:`~podlife.controllers.pod_control.Expectations`), claim pods,
run the per-node step, then a RollingUpdate step; prune history; write the status.
At most :data:`~.plan.BURST_REPLICAS` creations and deletions per sync, creations in
slow-start batches. Every decision is a pure function of :mod:`.plan`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ...client.base import CONTROLLER_REVISIONS, DAEMON_SETS, NODES, PODS, Obj
from ...client.informer import object_key
from ...client.shared_informers import BY_CONTROLLER, BY_NAMESPACE, ORPHANS_BY_NAMESPACE
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.selectors import LabelSelector, SelectorError, label_selector_from_dict
from ..history import CONTROLLER_REVISION_HASH_LABEL, controller_revision, revision_number, template_hash
from ..manager import ControllerContext
from ..pod_control import (
    Expectations,
    claim,
    claim_decisions,
    controller_of,
    controller_ref,
    is_ready,
    is_terminal,
    slow_start_batch,
)
from .placement import Fit, TemplateFit, daemon_pod, target_node, template_generation
from .plan import (
    BURST_REPLICAS,
    FailedPodBackoff,
    allows_surge,
    decide_node,
    daemon_status,
    history_to_delete,
    new_status,
    revision_data,
    revision_hash,
    rolling_update,
    status_changed,
    surge_and_unavailable,
)

log = logging.getLogger(__name__)

API_VERSION = "apps/v1"
KIND = "DaemonSet"
def _node_relevant(node: Obj) -> tuple:
    """What of a node can change where daemon pods belong: name, labels, taints."""
    meta = node.get("metadata") or {}
    return meta.get("name"), meta.get("labels"), (node.get("spec") or {}).get("taints")


class DaemonSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.recorder = ctx.recorder()
        self.workers = max(1, ctx.options.concurrent_daemonset_syncs)
        informers = ctx.informers
        self.informers = informers
        self.daemonsets = informers.informer(DAEMON_SETS)
        self.nodes = informers.informer(NODES)
        self.pods = informers.informer(PODS)
        self.revisions = informers.informer(CONTROLLER_REVISIONS)
        self.ds_by_namespace = informers.index(DAEMON_SETS, BY_NAMESPACE)
        self.pods_by_owner = informers.index(PODS, BY_CONTROLLER)
        self.orphan_pods = informers.index(PODS, ORPHANS_BY_NAMESPACE)
        self.revisions_by_owner = informers.index(CONTROLLER_REVISIONS, BY_CONTROLLER)
        self.orphan_revisions = informers.index(CONTROLLER_REVISIONS, ORPHANS_BY_NAMESPACE)
        self.queue = WorkQueue()
        self.creations = Expectations()
        self.deletions = Expectations()
        self.backoff = FailedPodBackoff()
        self._selectors: dict[str, LabelSelector] = {}  # uid -> parsed selector (immutable in apps/v1)
        self.daemonsets.add_handlers(on_add=self._ds_changed, on_update=lambda _old, new: self._ds_changed(new),
                                     on_delete=self._ds_deleted)
        self.nodes.add_handlers(on_add=lambda _node: self._enqueue_all(), on_update=self._node_updated,
                                on_delete=lambda _node: self._enqueue_all())
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.revisions.add_handlers(on_add=self._revision_changed,
                                    on_update=lambda _old, new: self._revision_changed(new),
                                    on_delete=self._revision_changed)

    async def run(self) -> None:
        await self.informers.wait_synced(DAEMON_SETS, NODES, PODS, CONTROLLER_REVISIONS)
        for key in list(self.daemonsets.cache):
            self.queue.add(key)
        await self.queue.run_workers(self.sync, self.workers)

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _ds_changed(self, ds: Obj) -> None:
        self.queue.add(object_key(ds))

    def _ds_deleted(self, ds: Obj) -> None:
        self._selectors.pop(ds["metadata"].get("uid") or "", None)
        self.queue.add(object_key(ds))

    def _enqueue_all(self) -> None:
        for key in self.daemonsets.cache:
            self.queue.add(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _node_relevant(old) != _node_relevant(new):
            self._enqueue_all()

    def _selector(self, ds: Obj) -> LabelSelector | None:
        uid = ds["metadata"].get("uid") or ""
        selector = self._selectors.get(uid)
        if selector is None:
            try:
                selector = label_selector_from_dict((ds.get("spec") or {}).get("selector"))
            except SelectorError:
                return None
            self._selectors[uid] = selector
        return selector

    def _owner_key(self, obj: Obj, ref: Obj | None) -> str | None:
        """The key of the DaemonSet ``ref`` names, if it is one we know (same uid)."""
        if ref is None or ref.get("kind") != KIND:
            return None
        key = f"{obj['metadata'].get('namespace')}/{ref.get('name')}"
        ds = self.daemonsets.cache.get(key)
        if ds is None or ds["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _enqueue_matching(self, obj: Obj) -> None:
        labels = obj["metadata"].get("labels") or {}
        for ds in self.ds_by_namespace.get(obj["metadata"].get("namespace") or ""):
            selector = self._selector(ds)
            if selector is not None and not selector.empty and selector.matches(labels):
                self.queue.add(object_key(ds))

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            key = self._owner_key(pod, ref)
            if key is not None:
                self.creations.creation_observed(key)
                self.queue.add(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if new["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            old_key = self._owner_key(old, old_ref)
            if old_key is not None:
                self.queue.add(old_key)
        if new_ref is not None:
            key = self._owner_key(new, new_ref)
            if key is not None:
                self.queue.add(key)
                ds = self.daemonsets.cache.get(key)
                min_ready = int(((ds or {}).get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and is_ready(new) and not is_ready(old):  # look again once it is available
                    self.queue.add_after(key, float(min_ready))
            return
        if old_ref is not None or old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod, controller_of(pod))
        if key is not None:
            self.deletions.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _revision_changed(self, revision: Obj) -> None:
        ref = controller_of(revision)
        if ref is None:
            if not revision["metadata"].get("deletionTimestamp"):
                self._enqueue_matching(revision)
            return
        key = self._owner_key(revision, ref)
        if key is not None:
            self.queue.add(key)

    # ------------------------------------------------------------------ sync

    def _satisfied(self, key: str) -> bool:
        return self.creations.satisfied(key) and self.deletions.satisfied(key)

    async def sync(self, key: str) -> None:
        ds = self.daemonsets.cache.get(key)
        if ds is None:
            self.creations.forget(key)
            self.deletions.forget(key)
            self.backoff.forget_prefix(f"{key}/")
            return
        selector = self._selector(ds)
        if selector is None or selector.empty or ds["metadata"].get("deletionTimestamp"):
            return
        fits = self._judge_nodes(ds)
        current, old = await self._construct_history(ds, selector)
        hash_ = revision_hash(current)
        if not self._satisfied(key):
            await self._update_status(ds, fits, hash_, observe=False)
            return
        try:
            await self._update_daemon_set(ds, key, selector, fits, hash_, old)
        except Exception:  # the status is written whether or not every pod write succeeded; the error retries
            await self._update_status(ds, fits, hash_, observe=True)
            raise
        await self._update_status(ds, fits, hash_, observe=True)

    async def _update_daemon_set(self, ds: Obj, key: str, selector: LabelSelector, fits: dict[str, Fit], hash_: str,
                                 old: list[Obj]) -> None:
        """``updateDaemonSet``: the per-node step, then (RollingUpdate) a rolling step, then history cleanup."""
        pods = await self._claim_pods(ds, selector)
        await self._manage(ds, key, fits, self._by_node(pods), hash_)
        if self._satisfied(key) and ((ds["spec"].get("updateStrategy") or {}).get("type") or "RollingUpdate") \
                == "RollingUpdate":
            await self._rolling_update(ds, key, fits, hash_)
        await self._cleanup_history(ds, old)

    def _judge_nodes(self, ds: Obj) -> dict[str, Fit]:
        fit = TemplateFit(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
        return {node["metadata"]["name"]: fit.judge(node) for node in self.nodes.cache.values()}

    def _cached_pods(self, ds: Obj) -> list[Obj]:
        return self.pods_by_owner.get(ds["metadata"]["uid"])

    @staticmethod
    def _by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
        """``getNodesToDaemonPods``: pods by target node, finished pods being deleted left out."""
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            if is_terminal(pod) and pod["metadata"].get("deletionTimestamp"):
                continue
            node = target_node(pod)
            if node is None:
                continue
            by_node.setdefault(node, []).append(pod)
        return by_node

    def _ref(self, ds: Obj) -> Obj:
        return controller_ref(ds, API_VERSION, KIND)

    async def _claim_pods(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        candidates = self._cached_pods(ds) + self.orphan_pods.get(ds["metadata"]["namespace"])
        decisions = claim_decisions(ds, selector, candidates)
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        return await claim(self.client, PODS, DAEMON_SETS, ds, self._ref(ds), decisions)

    # ------------------------------------------------------------------ pods

    async def _manage(self, ds: Obj, key: str, fits: dict[str, Fit], node_pods: dict[str, list[Obj]],
                      hash_: str) -> None:
        now = datetime.now(timezone.utc)
        surge = allows_surge(ds)
        generation = template_generation(ds)
        min_ready = float(ds["spec"].get("minReadySeconds") or 0)
        create: list[str] = []
        delete: list[Obj] = []
        for node, fit in fits.items():
            decision = decide_node(fit, node_pods.get(node), surge=surge, hash_=hash_, generation=generation,
                                   min_ready_seconds=min_ready, now=now)
            if decision.create:
                create.append(node)
            delete.extend(decision.delete)
            delete.extend(self._failed_to_delete(ds, key, node, decision.failed))
        for node, pods in node_pods.items():  # unscheduled pods for nodes that are gone
            if node not in fits:
                delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName")
                              and not p["metadata"].get("deletionTimestamp"))
        await self._sync_nodes(ds, key, delete, create, hash_)

    def _failed_to_delete(self, ds: Obj, key: str, node: str, failed: list[Obj]) -> list[Obj]:
        chosen: list[Obj] = []
        backoff_key = f"{key}/{node}"
        for pod in failed:
            now = time.monotonic()
            if self.backoff.in_backoff(backoff_key, now):
                self.queue.add_after(key, self.backoff.delay(backoff_key))
                continue
            self.backoff.next(backoff_key, now)
            meta = pod["metadata"]
            self._event(ds, "Warning", "FailedDaemonPod",
                        f"Found failed daemon pod {meta['namespace']}/{meta['name']} on node {node}, will try to kill it")
            chosen.append(pod)
        return chosen

    async def _rolling_update(self, ds: Obj, key: str, fits: dict[str, Fit], hash_: str) -> None:
        node_pods = self._by_node(p for p in self._cached_pods(ds))
        desired = 0
        for node, fit in fits.items():
            if fit.should_run:
                desired += 1
                node_pods.setdefault(node, [])
        max_surge, max_unavailable = surge_and_unavailable(ds, desired)
        step = rolling_update(node_pods, fits, max_surge=max_surge, max_unavailable=max_unavailable,
                              desired=desired, hash_=hash_, generation=template_generation(ds),
                              min_ready_seconds=float(ds["spec"].get("minReadySeconds") or 0),
                              now=datetime.now(timezone.utc))
        if step.delete or step.create:
            await self._sync_nodes(ds, key, step.delete, step.create, hash_)

    async def _sync_nodes(self, ds: Obj, key: str, delete: list[Obj], create: list[str], hash_: str) -> None:
        """``syncNodes``: create pods for ``create`` and delete ``delete``, at most a burst of each."""
        delete = list({object_key(p): p for p in delete}.values())[:BURST_REPLICAS]
        create = create[:BURST_REPLICAS]
        if not delete and not create:
            return
        self.creations.expect_creations(key, len(create))
        self.deletions.expect_deletions(key, [object_key(p) for p in delete])
        errors: list[BaseException] = []
        if create:
            error = await self._create_pods(ds, key, create, hash_)
            if error is not None:
                errors.append(error)
        if delete:
            results = await asyncio.gather(*(self._delete_pod(ds, key, pod) for pod in delete), return_exceptions=True)
            for result in results:
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    errors.append(result)
        if errors:
            raise errors[0]

    async def _create_pods(self, ds: Obj, key: str, nodes: list[str], hash_: str) -> BaseException | None:
        ref = self._ref(ds)
        generation = template_generation(ds)
        pending = iter(nodes)
        started = 0

        async def create_one(node: str) -> None:
            try:
                pod = await self.client.create(PODS, daemon_pod(ds, ref, node, hash_, generation),
                                               ds["metadata"]["namespace"])
            except ApiError as exc:
                self.creations.creation_failed(key)
                if exc.code != 403 or "being terminated" not in exc.message:
                    self._event(ds, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                raise
            except Exception:
                self.creations.creation_failed(key)
                raise
            self._event(ds, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        def next_creation() -> Any:
            nonlocal started
            started += 1
            return create_one(next(pending))

        _done, error = await slow_start_batch(len(nodes), next_creation)
        skipped = len(nodes) - started
        if skipped > 0:
            self.creations.creation_failed(key, skipped)
        return error

    async def _delete_pod(self, ds: Obj, key: str, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
        except ApiError as exc:
            self.deletions.deletion_observed(key, object_key(pod))
            if exc.code in (404, 409):
                return
            self._event(ds, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self._event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    def _event(self, ds: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event({**ds, "apiVersion": API_VERSION, "kind": KIND}, type_, reason, message)

    # ------------------------------------------------------------------ history

    async def _claim_revisions(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        candidates = self.revisions_by_owner.get(ds["metadata"]["uid"]) \
            + self.orphan_revisions.get(ds["metadata"]["namespace"])
        decisions = claim_decisions(ds, selector, candidates)
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        return await claim(self.client, CONTROLLER_REVISIONS, DAEMON_SETS, ds, self._ref(ds), decisions)

    async def _construct_history(self, ds: Obj, selector: LabelSelector) -> tuple[Obj, list[Obj]]:
        """``constructHistory``: (the current revision, the old ones)."""
        data = revision_data(ds)
        current: list[Obj] = []
        old: list[Obj] = []
        for revision in await self._claim_revisions(ds, selector):
            if CONTROLLER_REVISION_HASH_LABEL not in (revision["metadata"].get("labels") or {}):
                revision = await self._relabel_revision(revision)
            (current if revision.get("data") == data else old).append(revision)
        next_number = max((revision_number(r) for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, data, next_number), old
        cur = await self._dedup_revisions(ds, current)
        if revision_number(cur) < next_number:
            cur = await self.client.update(CONTROLLER_REVISIONS, {**cur, "revision": next_number})
        return cur, old

    async def _relabel_revision(self, revision: Obj) -> Obj:
        meta = revision["metadata"]
        labels = {**(meta.get("labels") or {}), CONTROLLER_REVISION_HASH_LABEL: meta["name"]}
        return await self.client.update(CONTROLLER_REVISIONS, {**revision, "metadata": {**meta, "labels": labels}})

    async def _snapshot(self, ds: Obj, data: Obj, number: int) -> Obj:
        meta, status = ds["metadata"], ds.get("status") or {}
        collisions = status.get("collisionCount")
        template = ds["spec"].get("template") or {}
        revision = controller_revision(ds, self._ref(ds), data, number, collisions,
                                       labels=(template.get("metadata") or {}).get("labels") or {})
        hash_ = template_hash(template, collisions)  # Kubernetes hashes the template (the data holds more)
        revision["metadata"]["name"] = f"{meta['name']}-{hash_}"
        revision["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL] = hash_
        if meta.get("annotations"):
            revision["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            return await self.client.create(CONTROLLER_REVISIONS, revision, meta["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                raise
        existing = await self.client.get(CONTROLLER_REVISIONS, revision["metadata"]["name"], meta["namespace"])
        owner = controller_of(existing)
        if existing.get("data") == data and owner is not None and owner.get("uid") == meta["uid"]:
            return existing
        live = await self.client.get(DAEMON_SETS, meta["name"], meta["namespace"])
        live_status = live.get("status") or {}
        if live_status.get("collisionCount") != collisions:
            raise RuntimeError(f"stale collision count of DaemonSet {meta['name']}; will retry")
        live["status"] = {**live_status, "collisionCount": int(collisions or 0) + 1}
        await self.client.update(DAEMON_SETS, live, subresource="status")
        raise RuntimeError(f"ControllerRevision {revision['metadata']['name']} exists with other data; "
                           "collision count bumped, will retry")

    async def _dedup_revisions(self, ds: Obj, current: list[Obj]) -> Obj:
        """``dedupCurHistories``: keep the newest of equal revisions; relabel its pods; delete the rest."""
        if len(current) == 1:
            return current[0]
        keep = max(current, key=revision_number)
        keep_hash = revision_hash(keep)
        for duplicate in current:
            if duplicate is keep:
                continue
            dup_hash = revision_hash(duplicate)
            for pod in self._cached_pods(ds):
                if (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) == dup_hash:
                    await self.client.patch(PODS, pod["metadata"]["name"],
                                            {"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}},
                                            pod["metadata"]["namespace"])
            await self._delete_revision(duplicate)
        return keep

    async def _delete_revision(self, revision: Obj) -> None:
        meta = revision["metadata"]
        try:
            await self.client.delete(CONTROLLER_REVISIONS, meta["name"], meta["namespace"])
        except ApiError as exc:
            if exc.code != 404:
                raise

    async def _cleanup_history(self, ds: Obj, old: list[Obj]) -> None:
        live = {h for h in ((p["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
                            for p in self._cached_pods(ds)) if h}
        for revision in history_to_delete(old, ds["spec"].get("revisionHistoryLimit"), live):
            await self._delete_revision(revision)

    # ------------------------------------------------------------------ status

    async def _update_status(self, ds: Obj, fits: dict[str, Fit], hash_: str, *, observe: bool) -> None:
        node_pods = self._by_node(self._cached_pods(ds))
        min_ready = float(ds["spec"].get("minReadySeconds") or 0)
        counts = daemon_status(fits, node_pods, hash_=hash_, generation=template_generation(ds),
                               min_ready_seconds=min_ready, now=datetime.now(timezone.utc))
        await self._store_status(ds, counts, observe)
        if min_ready > 0 and counts["numberReady"] != counts["numberAvailable"]:
            self.queue.add_after(object_key(ds), min_ready)

    async def _store_status(self, ds: Obj, counts: dict[str, int], observe: bool) -> None:
        generation = int(ds["metadata"].get("generation") or 0)
        current: Obj | None = ds
        for attempt in range(2):
            assert current is not None
            old = current.get("status") or {}
            if not status_changed(old, counts, generation, observe):
                return
            try:
                await self.client.update(DAEMON_SETS, {**current, "status": new_status(old, counts, generation, observe)},
                                         subresource="status")
                return
            except ApiError as exc:
                if exc.code != 409 or attempt:
                    raise
            current = await self._fresh(ds)
            if current is None:
                return

    async def _fresh(self, ds: Obj) -> Obj | None:
        meta = ds["metadata"]
        try:
            return await self.client.get(DAEMON_SETS, meta["name"], meta["namespace"])
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

