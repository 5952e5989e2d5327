"""The StatefulSet controller: pods with stable names, ordinals, hostnames and claims.

As kube-controller-manager's ``statefulset-controller`` (``pkg/controller/statefulset``).
What it watches (shared informers): StatefulSets, Pods (a pod event queues the set that
controls it, or for an orphan the set its name belongs to), ControllerRevisions (those
a set controls) and PersistentVolumeClaims (looked up by name; no claim event queues a
set). Pods are found through indexes (``BY_CONTROLLER``, and the orphans of the set's
namespace -- rare -- filtered by name), never by scanning; revisions likewise.

What it writes: Pods (create, delete, identity labels), PersistentVolumeClaims (create,
and owner references for the retention policy), ControllerRevisions (create, renumber,
delete), the set's status (``statefulsets/status``, by update) and Events on the set.

What one sync of a set does:

1. claims its pods (adopts orphans whose labels match its selector and whose name is
   ``<set>-<ordinal>``, releases those that no longer match) and its ControllerRevisions;
2. finds or makes the update revision (``revisions.py``; a new ControllerRevision when the
   template changed, a renumbered old one on a rollback, ``collisionCount`` bumped when a
   name is taken by another template) and the current one;
3. decides the pod and claim actions (``update.py``, pure) and carries them out in order,
   stopping at the first failure, with the events Kubernetes records on the set
   (``SuccessfulCreate`` "create Pod web-0 in StatefulSet web successful",
   ``SuccessfulDelete``, ``SuccessfulCreate`` "create Claim data-web-0 Pod web-0 in
   StatefulSet web success", ``Failed*`` with the error);
4. writes the status counted from the pods (``status.py``) when it changed, and deletes
   revisions beyond ``revisionHistoryLimit``;
5. looks again after ``minReadySeconds`` when a ready pod is not yet available, and after
   :data:`STALE_CLAIM_RECHECK` when a pod waits for a previous pod's claim to be collected.

Pods are deleted with a uid precondition, so a lagging cache never deletes the new pod
that took an old one's name; a create that finds its name taken waits for the cache.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ...client.base import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS, Obj
from ...client.informer import object_key
from ...client.shared_informers import BY_CONTROLLER, ORPHANS_BY_NAMESPACE
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.selectors import LabelSelector, SelectorError, label_selector_from_dict
from ..manager import ControllerContext
from ..pod_control import available_in, claim, claim_decisions, controller_of, controller_ref
from . import claims as claimrules
from .identity import API_VERSION, KIND, claim_templates, end_ordinal, is_member, new_claims, ordinal_of, parent_and_ordinal, start_ordinal
from .revisions import RevisionPlan, apply_revision, current_revision, history_to_prune, new_revision, plan_revisions
from .status import complete_rolling_update, merged_status, min_ready_seconds, replica_status, status_changed
from .update import Action, CreateClaims, CreatePod, DeletePod, FixClaimOwners, FixIdentity, Plan, Revisions, plan_sync

log = logging.getLogger(__name__)

#: collisions tried before giving up on naming a revision (each bumps ``collisionCount``)
MAX_COLLISIONS = 10
#: seconds before looking again at a pod whose claim still belongs to a previous pod of its name
STALE_CLAIM_RECHECK = 1.0


def _set_key_of(obj: Obj) -> str | None:
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != KIND or not str(ref.get("apiVersion") or "").startswith("apps/"):
        return None
    return f"{obj['metadata'].get('namespace')}/{ref.get('name')}"


class _Stopped(Exception):
    """An action found the cache behind (a name taken): end this sync quietly, the event that follows brings the next."""


class StatefulSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.recorder = ctx.recorder()
        self.workers = max(1, int(ctx.options.concurrent_statefulset_syncs))
        self.queue = WorkQueue()
        self.sets = ctx.informers.informer(STATEFUL_SETS)
        self.pods = ctx.informers.informer(PODS)
        self.revisions = ctx.informers.informer(CONTROLLER_REVISIONS)
        self.claims = ctx.informers.informer(PERSISTENT_VOLUME_CLAIMS)
        self.pods_by_controller = ctx.informers.index(PODS, BY_CONTROLLER)
        self.orphan_pods = ctx.informers.index(PODS, ORPHANS_BY_NAMESPACE)
        self.revisions_by_controller = ctx.informers.index(CONTROLLER_REVISIONS, BY_CONTROLLER)
        self.orphan_revisions = ctx.informers.index(CONTROLLER_REVISIONS, ORPHANS_BY_NAMESPACE)
        self.sets.add_handlers(self._on_set, lambda _old, new: self._on_set(new), self._on_set)
        self.pods.add_handlers(self._on_pod, self._on_pod_update, self._on_pod)
        self.revisions.add_handlers(self._on_revision, lambda _old, new: self._on_revision(new), self._on_revision)

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _on_set(self, sts: Obj) -> None:
        self.queue.add(object_key(sts))

    def _pod_key(self, pod: Obj) -> str | None:
        key = _set_key_of(pod)
        if key is not None:
            return key
        if controller_of(pod) is not None or not self.sets.cache:  # no StatefulSet: no orphan to look at
            return None
        parent, ordinal = parent_and_ordinal(pod["metadata"].get("name") or "")
        namespace = pod["metadata"].get("namespace")
        if ordinal >= 0 and self.sets.get(namespace, parent) is not None:
            return f"{namespace}/{parent}"
        return None

    def _on_pod(self, pod: Obj) -> None:
        key = self._pod_key(pod)
        if key is not None:
            self.queue.add(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        for key in {self._pod_key(old), self._pod_key(new)} - {None}:
            self.queue.add(str(key))

    def _on_revision(self, revision: Obj) -> None:
        key = _set_key_of(revision)
        if key is not None:
            self.queue.add(key)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        await self.informers.wait_synced(STATEFUL_SETS, PODS, CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS)
        for key in list(self.sets.cache):
            self.queue.add(key)
        await self.queue.run_workers(self.sync, self.workers)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        sts = self.sets.get(namespace, name)
        if sts is None:
            return
        try:
            selector = label_selector_from_dict((sts.get("spec") or {}).get("selector"))
        except SelectorError:
            return  # validation refuses such sets; nothing sensible to select
        ref = controller_ref(sts, API_VERSION, KIND)
        pods = await self._claim_pods(sts, selector, ref)
        revisions = await self._claim_revisions(sts, selector, ref)
        update, collision_count = await self._update_revision(sts, plan_revisions(sts, revisions))
        revisions = [r for r in revisions if r["metadata"]["name"] != update["metadata"]["name"]] + [update]
        current = current_revision(sts, revisions, update)
        revs = Revisions(apply_revision(sts, current), apply_revision(sts, update),
                         current["metadata"]["name"], update["metadata"]["name"])
        plan = plan_sync(sts, revs, pods, self._claims_for(sts, pods))
        error: BaseException | None = None
        try:
            await self._carry_out(sts, plan.actions)
        except _Stopped:
            pass
        except ApiError as exc:
            error = exc
        await self._write_status(sts, pods, revs, collision_count, plan)
        await self._prune(sts, revisions, pods, revs)
        self._look_again_when_available(sts, pods)
        if plan.waits_for_stale_claim:
            self.queue.add_after(key, STALE_CLAIM_RECHECK)
        if error is not None:
            raise error

    # ------------------------------------------------------------------ claiming

    async def _claim_pods(self, sts: Obj, selector: LabelSelector, ref: Obj) -> list[Obj]:
        meta = sts["metadata"]
        owned = self.pods_by_controller.get(meta["uid"])
        orphans = self.orphan_pods.get(meta["namespace"])  # rare; the set's own names are picked by is_member
        members = [p for p in owned + orphans if is_member(sts, p)]
        decisions = claim_decisions(sts, selector, members)
        strays = [p for p in owned if not is_member(sts, p)]
        if strays and not meta.get("deletionTimestamp"):
            decisions.release.extend(strays)
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        return await claim(self.client, PODS, STATEFUL_SETS, sts, ref, decisions)

    async def _claim_revisions(self, sts: Obj, selector: LabelSelector, ref: Obj) -> list[Obj]:
        meta = sts["metadata"]
        owned = self.revisions_by_controller.get(meta["uid"])
        orphans = [r for r in self.orphan_revisions.get(meta["namespace"])
                   if selector.matches(r["metadata"].get("labels"))]
        decisions = claim_decisions(sts, selector, owned + orphans)
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        return await claim(self.client, CONTROLLER_REVISIONS, STATEFUL_SETS, sts, ref, decisions)

    # ------------------------------------------------------------------ revisions

    async def _update_revision(self, sts: Obj, plan: RevisionPlan) -> tuple[Obj, int]:
        """Store the update revision as planned; it and the collision count."""
        collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
        if plan.action == "keep":
            return plan.revision, collision_count
        if plan.action == "renumber":
            renumbered = copy.deepcopy(plan.revision)
            renumbered["revision"] = plan.number
            return await self.client.update(CONTROLLER_REVISIONS, renumbered), collision_count
        return await self._create_revision(sts, plan.number, collision_count)

    async def _create_revision(self, sts: Obj, number: int, collision_count: int) -> tuple[Obj, int]:
        """``CreateControllerRevision``: a name taken by another template bumps the collision count."""
        namespace = sts["metadata"]["namespace"]
        for _ in range(MAX_COLLISIONS):
            revision = new_revision(sts, number, collision_count)
            try:
                return await self.client.create(CONTROLLER_REVISIONS, revision, namespace), collision_count
            except ApiError as exc:
                if exc.code != 409:
                    raise
            existing = await self.client.get(CONTROLLER_REVISIONS, revision["metadata"]["name"], namespace)
            ref = controller_of(existing)
            if existing.get("data") == revision["data"] and ref is not None and ref.get("uid") == sts["metadata"]["uid"]:
                return existing, collision_count
            collision_count += 1
        raise RuntimeError(f"StatefulSet {namespace}/{sts['metadata']['name']}: no free revision name")

    async def _prune(self, sts: Obj, revisions: list[Obj], pods: list[Obj], revs: Revisions) -> None:
        for revision in history_to_prune(sts, revisions, pods, revs.current, revs.update):
            meta = revision["metadata"]
            try:
                await self.client.delete(CONTROLLER_REVISIONS, meta["name"], meta["namespace"],
                                         preconditions={"uid": meta.get("uid")})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    # ------------------------------------------------------------------ claims and actions

    def _claims_for(self, sts: Obj, pods: list[Obj]) -> dict[str, Obj]:
        """The set's claims the informer holds, for the ordinals in range and those of its pods."""
        if not claim_templates(sts):
            return {}
        namespace = sts["metadata"]["namespace"]
        ordinals = set(range(start_ordinal(sts), end_ordinal(sts) + 1)) | {ordinal_of(p) for p in pods}
        found: dict[str, Obj] = {}
        for ordinal in ordinals:
            for wanted in new_claims(sts, ordinal).values():
                name = wanted["metadata"]["name"]
                existing = self.claims.get(namespace, name)
                if existing is not None:
                    found[name] = existing
        return found

    async def _carry_out(self, sts: Obj, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, CreatePod):
                await self._create_pod(sts, action.pod, action.claims)
            elif isinstance(action, CreateClaims):
                created = await self._create_claims(sts, action.pod, action.claims)
                await self._fix_retention(sts, action.pod, created)
            elif isinstance(action, DeletePod):
                await self._delete_pod(sts, action.pod)
            elif isinstance(action, FixIdentity):
                await self._fix_identity(sts, action.pod, action.labels)
            elif isinstance(action, FixClaimOwners):
                await self._update_claim_owners(action.claim, action.owner_references)

    def _pod_event(self, verb: str, sts: Obj, pod: Obj, error: BaseException | None = None) -> None:
        pod_name = pod["metadata"]["name"]
        if error is None:
            self.recorder.event(sts, "Normal", f"Successful{verb.title()}",
                                f"{verb} Pod {pod_name} in StatefulSet {sts['metadata']['name']} successful")
        else:
            self.recorder.event(sts, "Warning", f"Failed{verb.title()}",
                                f"{verb} Pod {pod_name} in StatefulSet {sts['metadata']['name']} failed error: {error}")

    def _claim_event(self, sts: Obj, pod: Obj, claim_obj: Obj, error: BaseException | None = None) -> None:
        claim_name, pod_name, set_name = claim_obj["metadata"]["name"], pod["metadata"]["name"], sts["metadata"]["name"]
        if error is None:
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success")
        else:
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {error}")

    async def _create_claims(self, sts: Obj, pod: Obj, wanted: list[Obj]) -> list[Obj]:
        """Create the claims; those created (a name already taken counts as there: the cache lags)."""
        created: list[Obj] = []
        namespace = sts["metadata"]["namespace"]
        for claim_obj in wanted:
            try:
                created.append(await self.client.create(PERSISTENT_VOLUME_CLAIMS, claim_obj, namespace))
            except ApiError as exc:
                if exc.code == 409:
                    continue
                self._claim_event(sts, pod, claim_obj, exc)
                raise
            self._claim_event(sts, pod, claim_obj)
        return created

    async def _create_pod(self, sts: Obj, pod: Obj, wanted_claims: list[Obj]) -> None:
        try:
            created_claims = await self._create_claims(sts, pod, wanted_claims)
        except ApiError as exc:
            self._pod_event("create", sts, pod, exc)
            raise
        try:
            created = await self.client.create(PODS, pod, sts["metadata"]["namespace"])
        except ApiError as exc:
            if exc.code == 409:
                raise _Stopped from exc
            self._pod_event("create", sts, pod, exc)
            raise
        await self._fix_retention(sts, created, created_claims)
        self._pod_event("create", sts, pod)

    async def _fix_retention(self, sts: Obj, pod: Obj, just_created: list[Obj]) -> None:
        """Give the pod's claims the owner references of the retention policy (``UpdatePodClaimForRetentionPolicy``)."""
        namespace = sts["metadata"]["namespace"]
        fresh = {c["metadata"]["name"]: c for c in just_created}
        for wanted in new_claims(sts, ordinal_of(pod)).values():
            name = wanted["metadata"]["name"]
            existing = fresh.get(name) or self.claims.get(namespace, name)
            if existing is not None and not claimrules.claim_owner_up_to_date(existing, sts, pod):
                await self._update_claim_owners(existing, claimrules.updated_owner_refs(existing, sts, pod))

    async def _update_claim_owners(self, claim_obj: Obj, refs: list[Obj]) -> None:
        updated = copy.deepcopy(claim_obj)
        updated["metadata"]["ownerReferences"] = refs
        if not refs:
            updated["metadata"].pop("ownerReferences", None)
        try:
            await self.client.update(PERSISTENT_VOLUME_CLAIMS, updated)
        except ApiError as exc:
            if exc.code != 404:
                raise  # 409: changed meanwhile; the retry reads it again

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code in (404, 409):
                return  # gone, or replaced by a pod of the same name
            self._pod_event("delete", sts, pod, exc)
            raise
        self._pod_event("delete", sts, pod)

    async def _fix_identity(self, sts: Obj, pod: Obj, labels: dict[str, str]) -> None:
        meta = pod["metadata"]
        patch: dict[str, Any] = {"metadata": {"labels": labels, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(PODS, meta["name"], patch, meta["namespace"], patch_type="merge")
        except ApiError as exc:
            if exc.code in (404, 409):
                return
            self._pod_event("update", sts, pod, exc)
            raise
        self._pod_event("update", sts, pod)

    # ------------------------------------------------------------------ status

    async def _write_status(self, sts: Obj, pods: list[Obj], revs: Revisions, collision_count: int, plan: Plan) -> None:
        status = replica_status(sts, pods, revs.current, revs.update, collision_count)
        status["currentReplicas"] = max(0, status["currentReplicas"] - plan.update_deletions)
        status = complete_rolling_update(sts, status)
        if not status_changed(sts, status):
            return
        target = sts
        for _attempt in range(3):
            updated = copy.deepcopy(target)
            updated["status"] = merged_status(target, status)
            try:
                await self.client.update(STATEFUL_SETS, updated, subresource="status")
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise
            meta = sts["metadata"]
            target = await self.client.get(STATEFUL_SETS, meta["name"], meta["namespace"])
            if target["metadata"].get("uid") != meta.get("uid"):
                return

    def _look_again_when_available(self, sts: Obj, pods: list[Obj]) -> None:
        min_ready = min_ready_seconds(sts)
        if min_ready <= 0:
            return
        waits = [w for w in (available_in(p, min_ready) for p in pods) if w]
        if waits:
            self.queue.add_after(object_key(sts), min(waits) + 0.05)
