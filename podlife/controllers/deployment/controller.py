"""The Deployment controller: ReplicaSets rolled from one pod template to the next.

As kube-controller-manager's ``deployment-controller`` (``pkg/controller/deployment``).
What it watches (shared informers): Deployments (every change queues the Deployment),
ReplicaSets (an event queues the Deployment controlling it -- or, for an orphan, the
Deployments whose selector matches its labels, which may adopt it), Pods (a deletion
queues a ``Recreate`` Deployment: it waits for its old pods to be gone). What it writes:
ReplicaSets (created ``<deployment>-<pod-template-hash>``, scaled, annotated, adopted,
released, deleted beyond ``revisionHistoryLimit``), the Deployment's status (and its
revision annotation, which the status subresource carries), ``ScalingReplicaSet``
Events. Pods belong to the ReplicaSet controller.

One sync of a Deployment (``syncDeployment``), each step a write at most, the next sync
continuing where the world then is:

1. an empty selector selects everything: refused (``SelectingAll`` warning);
2. its ReplicaSets are claimed (adopted when orphans that match, released when they
   stop matching; :func:`~podlife.controllers.pod_control.claim`);
3. being deleted: only the status is refreshed;
4. ``spec.paused`` changes set Progressing Unknown ``DeploymentPaused``/``DeploymentResumed``;
5. paused, or a *scaling event* (replicas changed since the ReplicaSets were sized):
   only resize (:func:`~.sync.scale_plan`, proportionally mid-rollout), and while
   paused clean up old revisions;
6. otherwise one step of the strategy: ``RollingUpdate`` (:mod:`.rolling`: create or
   grow the new ReplicaSet within ``maxSurge``, else shrink old ones within
   ``maxUnavailable``) or ``Recreate`` (:mod:`.recreate`); a complete rollout cleans up
   old revisions (:func:`~.revisions.to_clean_up`); then the status and conditions
   (:mod:`.progress`), and a stuck rollout is queued again for its deadline.

The Kubernetes facts (revision numbers and history, annotation copying, hash
collisions bumping ``status.collisionCount``, condition reasons and messages) are in
the pure modules; this one reads caches and writes.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ...client.base import DEPLOYMENTS, PODS, REPLICA_SETS, Obj
from ...client.informer import object_key
from ...client.shared_informers import BY_CONTROLLER, BY_NAMESPACE
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.selectors import label_selector_from_dict
from ..history import template_hash
from ..pod_control import claim, claim_decisions, controller_of, controller_ref, is_controlled_by
from . import progress
from .progress import (
    FAILED_RS_CREATE_REASON,
    FOUND_NEW_RS_REASON,
    NEW_RS_REASON,
    PROGRESSING,
    get_condition,
    new_condition,
    progress_deadline,
    set_condition,
)
from .recreate import old_pods_running
from .replicasets import REVISION_ANNOTATION, active, equal_ignore_hash, find_old, max_revision, spec_replicas, total_spec
from .revisions import (
    new_replica_set,
    replicas_annotations_need_update,
    set_deployment_revision,
    set_new_rs_annotations,
    set_replicas_annotations,
    to_clean_up,
)
from .rolling import (
    RECREATE,
    StaleReplicaSetStatus,
    desired,
    max_scaled_down,
    max_surge,
    new_rs_replicas,
    rolling_scale_down,
    strategy_type,
    unhealthy_cleanup,
)
from .sync import is_scaling_event, scale_plan

if TYPE_CHECKING:
    from ..manager import ControllerContext

log = logging.getLogger(__name__)

#: seconds before a sync that met a conflict or a lagging status runs again (the cache catches up meanwhile)
RETRY_DELAY = 0.1


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _selects_everything(selector: Obj | None) -> bool:
    return isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions")


def _with_kind(obj: Obj, kind: str) -> Obj:
    obj.setdefault("apiVersion", "apps/v1")
    obj.setdefault("kind", kind)
    return obj


class DeploymentController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.recorder = ctx.recorder()
        self.workers = max(1, ctx.options.concurrent_deployment_syncs)
        self.queue = WorkQueue()
        self.deployments = ctx.informers.informer(DEPLOYMENTS)
        self.replica_sets = ctx.informers.informer(REPLICA_SETS)
        self.pods = ctx.informers.informer(PODS)
        self.deployments_by_ns = ctx.informers.index(DEPLOYMENTS, BY_NAMESPACE)
        self.rs_by_ns = ctx.informers.index(REPLICA_SETS, BY_NAMESPACE)
        self.pods_by_controller = ctx.informers.index(PODS, BY_CONTROLLER)
        self.deployments.add_handlers(self._enqueue, lambda _old, new: self._enqueue(new), self._enqueue)
        self.replica_sets.add_handlers(self._on_rs_add, self._on_rs_update, self._on_rs_delete)
        self.pods.add_handlers(None, None, self._on_pod_delete)

    async def run(self) -> None:
        await self.informers.wait_synced(DEPLOYMENTS, REPLICA_SETS, PODS)
        for key in list(self.deployments.cache):
            self.queue.add(key)
        await self.queue.run_workers(self.sync, self.workers)

    # ------------------------------------------------------------------ event handlers (enqueue only)

    def _enqueue(self, deployment: Obj) -> None:
        self.queue.add(object_key(deployment))

    def _owner(self, obj: Obj) -> Obj | None:
        """The Deployment controlling ``obj`` (a ReplicaSet), if it is in the cache with that uid."""
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        deployment = self.deployments.get(obj["metadata"].get("namespace"), ref.get("name", ""))
        if deployment is None or deployment["metadata"].get("uid") != ref.get("uid"):
            return None
        return deployment

    def _selecting(self, rs: Obj) -> list[Obj]:
        """The Deployments of the ReplicaSet's namespace whose (non-empty) selector matches its labels."""
        labels = rs["metadata"].get("labels") or {}
        found = []
        for deployment in self.deployments_by_ns.get(rs["metadata"].get("namespace", "")):
            selector = (deployment.get("spec") or {}).get("selector")
            if selector is None or _selects_everything(selector):
                continue
            if label_selector_from_dict(selector).matches(labels):
                found.append(deployment)
        return found

    def _on_rs_add(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._on_rs_delete(rs)
            return
        if controller_of(rs) is not None:
            owner = self._owner(rs)
            if owner is not None:
                self._enqueue(owner)
            return
        for deployment in self._selecting(rs):
            self._enqueue(deployment)

    def _on_rs_update(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        ref_changed = (old_ref or {}).get("uid") != (new_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            owner = self._owner(old)
            if owner is not None:
                self._enqueue(owner)
        if new_ref is not None:
            owner = self._owner(new)
            if owner is not None:
                self._enqueue(owner)
            return
        if ref_changed or old["metadata"].get("labels") != new["metadata"].get("labels"):
            for deployment in self._selecting(new):
                self._enqueue(deployment)

    def _on_rs_delete(self, rs: Obj) -> None:
        owner = self._owner(rs)
        if owner is not None:
            self._enqueue(owner)

    def _on_pod_delete(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replica_sets.get(pod["metadata"].get("namespace"), ref.get("name", ""))
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return
        owner = self._owner(rs)
        if owner is not None and strategy_type(owner) == RECREATE:
            self._enqueue(owner)

    # ------------------------------------------------------------------ the sync

    async def sync(self, key: str) -> None:
        """Sync one Deployment; a conflict (a stale cache) or a lagging ReplicaSet status comes back soon, quietly."""
        try:
            await self._sync(key)
        except StaleReplicaSetStatus as exc:
            log.debug("deployment %s: %s; will retry", key, exc)
            self.queue.add_after(key, RETRY_DELAY)
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("deployment %s: %s; will retry", key, exc.message)
            self.queue.add_after(key, RETRY_DELAY)

    async def _sync(self, key: str) -> None:
        cached = self.deployments.cache.get(key)
        if cached is None:
            return  # deleted: the garbage collector takes its ReplicaSets
        d = _with_kind(copy.deepcopy(cached), "Deployment")
        spec = d.get("spec") or {}
        if _selects_everything(spec.get("selector")):
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            if int((d.get("status") or {}).get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation")
                await self._write_status(d)
            return
        rs_list = await self._claim_replica_sets(d)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self._all_and_sync_revision(d, rs_list, False)
            await self._sync_status(d, [*old_rss, new_rs], new_rs)
            return
        await self._check_paused(d)
        if spec.get("paused"):
            await self._sync_scale(d, rs_list)
            return
        new_rs, old_rss = find_old(d, rs_list)
        if is_scaling_event(d, new_rs, old_rss):
            await self._sync_scale(d, rs_list)
            return
        if strategy_type(d) == RECREATE:
            await self._rollout_recreate(d, rs_list)
        else:
            await self._rollout_rolling(d, rs_list)

    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        selector = label_selector_from_dict((d.get("spec") or {}).get("selector"))
        decisions = claim_decisions(d, selector, self.rs_by_ns.get(d["metadata"].get("namespace", "")))
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        ref = controller_ref(d, "apps/v1", "Deployment")
        return await claim(self.client, REPLICA_SETS, DEPLOYMENTS, d, ref, decisions)

    async def _check_paused(self, d: Obj) -> None:
        status = progress.paused_condition(d, _now())
        if status is not None:
            d["status"] = status
            await self._write_status(d)

    # ------------------------------------------------------------------ the new ReplicaSet and revisions

    async def _all_and_sync_revision(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (created if asked and missing) and the old ones."""
        existing, old_rss = find_old(d, rs_list)
        new_rs = await self._new_replica_set(d, existing, old_rss, create)
        return new_rs, old_rss

    async def _new_replica_set(self, d: Obj, existing: Obj | None, old_rss: list[Obj], create: bool) -> Obj | None:
        new_revision = max_revision(old_rss) + 1
        spec = d.get("spec") or {}
        most = desired(d) + max_surge(d)
        if existing is not None:
            rs = _with_kind(copy.deepcopy(existing), "ReplicaSet")
            changed = set_new_rs_annotations(d, rs, new_revision, True, desired(d), most)
            min_ready = int(spec.get("minReadySeconds") or 0)
            if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                updated: Obj = await self.client.update(REPLICA_SETS, rs)
                return updated
            needs_update = set_deployment_revision(d, rs["metadata"]["annotations"].get(REVISION_ANNOTATION, ""))
            if progress_deadline(d) is not None and get_condition(d.get("status"), PROGRESSING) is None:
                set_condition(d.setdefault("status", {}), new_condition(
                    PROGRESSING, "True", FOUND_NEW_RS_REASON, f'Found new replica set "{rs["metadata"]["name"]}"', _now()))
                needs_update = True
            if needs_update:
                await self._write_status(d)
            return rs
        if not create:
            return None
        status = d.setdefault("status", {})
        rs = new_replica_set(d, template_hash(spec.get("template") or {}, status.get("collisionCount")))
        rs["spec"]["replicas"] = new_rs_replicas(d, [*old_rss, rs], rs)
        set_new_rs_annotations(d, rs, new_revision, False, desired(d), most)
        name, namespace = rs["metadata"]["name"], d["metadata"].get("namespace")
        already = False
        try:
            created: Obj = await self.client.create(REPLICA_SETS, rs, namespace)
        except ApiError as exc:
            if exc.code == 409:
                found = await self._existing_rs(namespace, name)
                if found is not None and is_controlled_by(found, d) and equal_ignore_hash(
                        spec.get("template"), (found.get("spec") or {}).get("template")):
                    created, already = found, True
                else:
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    log.info("hash collision for deployment %s/%s: collisionCount now %d", namespace,
                             d["metadata"]["name"], status["collisionCount"])
                    await self._write_status(d)
                    raise
            elif _namespace_terminating(exc):
                raise
            else:
                message = f'Failed to create new replica set "{name}": {exc.message}'
                if progress_deadline(d) is not None:
                    set_condition(status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE_REASON, message, _now()))
                    try:
                        await self._write_status(d)
                    except ApiError:
                        pass  # the failure to report is the creation's
                self.recorder.event(d, "Warning", FAILED_RS_CREATE_REASON, message)
                raise
        replicas = spec_replicas(rs)
        if not already and replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}")
        needs_update = set_deployment_revision(d, str(new_revision))
        if not already and progress_deadline(d) is not None:
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_REASON, f'Created new replica set "{name}"', _now()))
            needs_update = True
        if needs_update:
            await self._write_status(d)
        return created

    async def _existing_rs(self, namespace: str | None, name: str) -> Obj | None:
        found = self.replica_sets.get(namespace, name)
        if found is not None:
            return found
        try:
            fetched: Obj = await self.client.get(REPLICA_SETS, name, namespace)
            return fetched
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # ------------------------------------------------------------------ scaling

    async def _scale_rs(self, rs: Obj, size: int, d: Obj, operation: str) -> tuple[bool, Obj]:
        """``scaleReplicaSet``: write ``size`` and the replica annotations when either differs; whether it was resized."""
        most = desired(d) + max_surge(d)
        resize = spec_replicas(rs) != size
        if not resize and not replicas_annotations_need_update(rs, desired(d), most):
            return False, rs
        before = spec_replicas(rs)
        changed = _with_kind(copy.deepcopy(rs), "ReplicaSet")
        changed["spec"]["replicas"] = size
        set_replicas_annotations(changed, desired(d), most)
        written: Obj = await self.client.update(REPLICA_SETS, changed)
        if resize:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {operation} replica set {rs['metadata']['name']} to {size} from {before}")
        return resize, written

    async def _scale_and_record(self, rs: Obj, size: int, d: Obj) -> tuple[bool, Obj]:
        """``scaleReplicaSetAndRecordEvent``: only when the size differs."""
        if spec_replicas(rs) == size:
            return False, rs
        return await self._scale_rs(rs, size, d, "up" if spec_replicas(rs) < size else "down")

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, Obj]:
        """Carry out :func:`~.sync.scale_plan`; the written ReplicaSets by uid."""
        plan, direction = scale_plan(d, new_rs, old_rss)
        written: dict[str, Obj] = {}
        for rs, size in plan:
            operation = direction or ("up" if spec_replicas(rs) < size else "down")
            _, result = await self._scale_rs(rs, size, d, operation)
            written[rs["metadata"].get("uid", "")] = result
        return written

    async def _sync_scale(self, d: Obj, rs_list: list[Obj]) -> None:
        """``sync``: scaling events and paused Deployments -- resize only, then the status."""
        new_rs, old_rss = await self._all_and_sync_revision(d, rs_list, False)
        written = await self._scale(d, new_rs, old_rss)
        if new_rs is not None:
            new_rs = written.get(new_rs["metadata"].get("uid", ""), new_rs)
        old_rss = [written.get(rs["metadata"].get("uid", ""), rs) for rs in old_rss]
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    # ------------------------------------------------------------------ strategies

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._all_and_sync_revision(d, rs_list, True)
        assert new_rs is not None
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled, new_rs = await self._reconcile_new(d, all_rss, new_rs)
        if scaled:
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if await self._reconcile_old(d, all_rss, active(old_rss), new_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if progress.complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    async def _reconcile_new(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> tuple[bool, Obj]:
        if spec_replicas(new_rs) == desired(d):
            return False, new_rs
        if spec_replicas(new_rs) > desired(d):
            return await self._scale_and_record(new_rs, desired(d), d)
        return await self._scale_and_record(new_rs, new_rs_replicas(d, all_rss, new_rs), d)

    async def _reconcile_old(self, d: Obj, all_rss: list[Obj | None], old_active: list[Obj], new_rs: Obj) -> bool:
        if total_spec(old_active) == 0:
            return False
        most = max_scaled_down(d, all_rss, new_rs)
        if most <= 0:
            return False
        olds = {rs["metadata"].get("uid", ""): rs for rs in old_active}
        scaled_down = 0
        for rs, size in unhealthy_cleanup(old_active, most):
            _, olds[rs["metadata"].get("uid", "")] = await self._scale_and_record(rs, size, d)
            scaled_down += spec_replicas(rs) - size
        remaining = list(olds.values())
        for rs, size in rolling_scale_down(d, [*remaining, new_rs], remaining):
            await self._scale_and_record(rs, size, d)
            scaled_down += spec_replicas(rs) - size
        return scaled_down > 0

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._all_and_sync_revision(d, rs_list, False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled_down = False
        for rs in active(old_rss):
            scaled, _ = await self._scale_and_record(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if old_pods_running(new_rs, old_rss, self._pods_by_rs(d, rs_list)):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_and_sync_revision(d, rs_list, True)
            assert new_rs is not None
        _, new_rs = await self._scale_and_record(new_rs, desired(d), d)
        if progress.complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    def _pods_by_rs(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """The Deployment's pods (its selector matching) by the uid of the ReplicaSet controlling them."""
        selector = label_selector_from_dict((d.get("spec") or {}).get("selector"))
        out: dict[str, list[Obj]] = {}
        for rs in rs_list:
            uid = rs["metadata"].get("uid", "")
            out[uid] = [pod for pod in self.pods_by_controller.get(uid)
                        if selector.matches(pod["metadata"].get("labels"))]
        return out

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        for rs in to_clean_up(d, old_rss):
            meta = rs["metadata"]
            try:
                await self.client.delete(REPLICA_SETS, meta["name"], meta.get("namespace"),
                                         preconditions={"uid": meta.get("uid")})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    # ------------------------------------------------------------------ status

    async def _write_status(self, d: Obj) -> None:
        """Write ``d``'s status (and metadata: its revision annotation), keeping ``d`` current with the answer."""
        d["status"] = progress.wire_status(d.get("status") or {})
        written = await self.client.update(DEPLOYMENTS, d, subresource="status")
        d["metadata"] = written.get("metadata", d["metadata"])
        d["status"] = written.get("status", d["status"])

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """``syncDeploymentStatus``: counts and Available only."""
        status = progress.calculate_status(all_rss, new_rs, d, _now())
        if not progress.same_status(d.get("status"), status):
            d["status"] = status
            await self._write_status(d)

    async def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """``syncRolloutStatus``: counts and conditions; a stuck rollout is looked at again at its deadline."""
        now = _now()
        status = progress.rollout_status(all_rss, new_rs, d, now)
        if progress.same_status(d.get("status"), status):
            after = progress.requeue_after(d, status, now)
            if after is not None:
                self.queue.add_after(object_key(d), after)
            return
        d["status"] = status
        await self._write_status(d)


def _namespace_terminating(exc: ApiError) -> bool:
    causes = (exc.details or {}).get("causes") or []
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)
