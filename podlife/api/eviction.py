"""``POST pods/NAME/eviction``: a delete that respects the pod's PodDisruptionBudget.

Kubernetes' ``pkg/registry/core/pod/storage/eviction.go``. The body is a ``policy/v1``
Eviction (``metadata.name`` the pod's, optional ``deleteOptions``); ``?dryRun=All`` or
``deleteOptions.dryRun`` make it a dry run. What it reads: the pod and the budgets of its
namespace (the watch caches); what it writes: the budget's status, the pod's
``DisruptionTarget`` condition, then the pod's deletion. In order:

1. a pod already terminal (Succeeded/Failed), Pending or being deleted is deleted without
   looking at budgets (it disrupts nothing more); unless it is terminal or being deleted,
   the delete carries the pod's resourceVersion as precondition, so a pod that changed
   meanwhile is read again (conflicts retry unless the caller set a resourceVersion);
2. the budgets that guard it (:func:`podlife.machinery.disruption.budgets_for`): none --
   delete; more than one -- a ``500`` Status "This pod has more than one
   PodDisruptionBudget, which the eviction subresource does not support.";
3. a pod that is not Ready is deleted without touching the budget when the budget's
   ``unhealthyPodEvictionPolicy`` is ``AlwaysAllow``, or (``IfHealthyBudget``, the
   default) when ``currentHealthy >= desiredHealthy > 0`` -- with the pod's
   resourceVersion as precondition, and a conflict answered 429 so the client retries;
4. otherwise the budget is checked and charged in one status write (read fresh, retried on
   conflict): ``status.observedGeneration`` behind ``metadata.generation`` -- 429 "is still
   being processed" (Retry-After 10); ``disruptionsAllowed`` negative or more than 2000
   ``disruptedPods`` -- 403; ``disruptionsAllowed == 0`` -- 429 "Cannot evict pod as it
   would violate the pod's disruption budget." with the cause ``DisruptionBudget`` "The
   disruption budget <name> needs <desired> healthy pods and has <current> currently";
   else ``disruptionsAllowed`` goes down by one (the condition follows at 0) and the pod is
   recorded in ``disruptedPods`` with the time, so the disruption controller does not count
   it healthy while it terminates; a dry run writes nothing;
5. the pod gets the condition ``DisruptionTarget`` True (``EvictionByEvictionAPI``,
   "Eviction API: evicting") in a status write, then is deleted with the request's
   options; the answer is a ``Status`` Success (201).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from ..machinery import disruption as rules
from .rest import DeleteOptions, now_rfc3339

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]

SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MORE_THAN_ONE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
#: Kubernetes' EvictionsRetry: 20 attempts (Kubernetes waits 500ms between them; the caches here are closer)
RETRIES = 20
RETRY_DELAY = 0.05


# ---- pure decisions -------------------------------------------------------------------

def can_ignore_budget(pod: Obj) -> bool:
    """``canIgnorePDB``: terminal, Pending or being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def enforces_resource_version(pod: Obj) -> bool:
    """``shouldEnforceResourceVersion``: every pod but terminal or deleted ones."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def unhealthy_may_go(pdb: Obj, pod: Obj) -> bool:
    """A pod that is not Ready may be evicted without charging the budget."""
    if rules.is_pod_ready(pod):
        return False
    if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == rules.ALWAYS_ALLOW:
        return True
    status = pdb.get("status") or {}
    desired = int(status.get("desiredHealthy") or 0)
    return int(status.get("currentHealthy") or 0) >= desired and desired > 0


def too_many_requests(message: str, cause: str, retry_after: int = 0) -> errors.ApiError:
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    exc = errors.ApiError(429, "TooManyRequests", message, details)
    exc.retry_after = retry_after or None
    return exc


def still_processing(name: str) -> errors.ApiError:
    return too_many_requests(VIOLATION, f"The disruption budget {name} is still being processed by the server.", 10)


def _forbidden(name: str, why: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'poddisruptionbudget.policy "{name}" is forbidden: {why}',
                           {"name": name, "group": "policy", "kind": "poddisruptionbudget"})


def charged(pdb: Obj, pod_name: str, now: str, *, dry_run: bool = False) -> Obj:
    """``checkAndDecrement``: the budget with one disruption used for ``pod_name``, or the refusal raised."""
    name = str(pdb["metadata"].get("name") or "")
    status = dict(pdb.get("status") or {})
    if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
        raise still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise _forbidden(name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > rules.MAX_DISRUPTED_POD_SIZE:
        raise _forbidden(name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise too_many_requests(VIOLATION, f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                           f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        status = rules.with_disruption_allowed_condition(status, now)
    if not dry_run:
        status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now}
    return {**pdb, "status": status}


def with_disruption_target(pod: Obj, now: str) -> Obj:
    """The pod with ``DisruptionTarget`` True (``UpdatePodCondition``: the time moves only on a change of status)."""
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or [] if isinstance(c, dict)]
    for cond in conditions:
        if cond.get("type") == rules.DISRUPTION_TARGET:
            if cond.get("status") != "True":
                cond["lastTransitionTime"] = now
            cond.update(status="True", reason=rules.EVICTION_BY_EVICTION_API, message=rules.EVICTION_MESSAGE)
            break
    else:
        conditions.append({"type": rules.DISRUPTION_TARGET, "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
                           "reason": rules.EVICTION_BY_EVICTION_API, "message": rules.EVICTION_MESSAGE})
    status["conditions"] = conditions
    return {**pod, "status": status}


# ---- the request ----------------------------------------------------------------------

def _options(body: Obj, name: str, dry_run: bool) -> DeleteOptions:
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict) or meta.get("name", "") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    delete_options = body.get("deleteOptions")
    if delete_options is not None and not isinstance(delete_options, dict):
        raise errors.bad_request("deleteOptions must be an object")
    return DeleteOptions.from_body(delete_options, dry_run=dry_run)


async def _condition_and_delete(pods: ResourceREST, namespace: str | None, name: str, options: DeleteOptions) -> None:
    """``addConditionAndDeletePod``: mark the pod ``DisruptionTarget``, then delete it with ``options``."""
    if not options.dry_run:
        stamp = now_rfc3339()

        def mark(current: Obj) -> Obj:
            pods._check_preconditions(current, options, name)
            return with_disruption_target(current, stamp)

        updated = await pods.guaranteed_update(namespace, name, mark, subresource="status")
        if options.preconditions_rv:  # we changed it: the precondition follows our write
            meta = updated.obj["metadata"] if hasattr(updated, "obj") else updated["metadata"]
            options = replace(options, preconditions_rv=str(meta.get("resourceVersion") or ""))
    await pods.delete(namespace, name, options)


async def _delete_ignoring_budgets(pods: ResourceREST, namespace: str | None, name: str, options: DeleteOptions) -> Obj | None:
    """Step 1: delete a pod whose budgets do not matter; None when the budgets must be checked."""
    for attempt in range(RETRIES if not options.preconditions_rv else 1):
        if attempt:
            await asyncio.sleep(RETRY_DELAY)  # the pod changed meanwhile: read it again once the cache has it
        pod = pods.get(namespace, name).obj
        if not can_ignore_budget(pod):
            return None
        opts = options
        if enforces_resource_version(pod) and not options.preconditions_rv:
            opts = replace(options, preconditions_rv=str(pod["metadata"].get("resourceVersion") or ""))
        try:
            await _condition_and_delete(pods, namespace, name, opts)
        except errors.ApiError as exc:
            if exc.code == 409 and not options.preconditions_rv:
                continue
            raise
        return dict(SUCCESS)
    raise errors.conflict(pods.rt, name, "too many concurrent updates, please retry")


async def _charge(pdbs: ResourceREST, pdb: Obj, pod_name: str, dry_run: bool) -> None:
    """Step 4: the budget's check and decrement, in one status write on its newest version."""
    namespace, name = pdb["metadata"].get("namespace"), str(pdb["metadata"].get("name") or "")
    stamp = now_rfc3339()
    if dry_run:
        charged(pdbs.get(namespace, name).obj, pod_name, stamp, dry_run=True)
        return
    try:
        await pdbs.guaranteed_update(namespace, name, lambda current: charged(current, pod_name, stamp), subresource="status")
    except errors.ApiError as exc:
        if exc.code == 409:
            raise errors.timeout(f'Timeout: couldn\'t update PodDisruptionBudget "{name}" due to conflicts') from exc
        raise


async def evict(pods: ResourceREST, namespace: str | None, name: str, body: Obj, *, dry_run: bool = False) -> Obj:
    """Evict the pod ``name``: the steps of the module docstring; the Status to answer (201)."""
    options = _options(body, name, dry_run)
    done = await _delete_ignoring_budgets(pods, namespace, name, options)
    if done is not None:
        return done
    pod = pods.get(namespace, name).obj
    pdb_rest = pods.ctx.rest_by("policy", "v1", "poddisruptionbudgets")
    candidates = [co.obj for co in pdb_rest.cache.in_namespace(namespace or "")] if pdb_rest is not None and namespace else []
    budgets = rules.budgets_for(candidates, pod)
    if len(budgets) > 1:
        raise errors.ApiError(500, "", MORE_THAN_ONE)
    delete_options = options
    budget_name = ""
    if budgets:
        pdb = budgets[0]
        budget_name = str(pdb["metadata"].get("name") or "")
        if unhealthy_may_go(pdb, pod):
            delete_options = replace(options, preconditions_rv=str(pod["metadata"].get("resourceVersion") or ""))
        else:
            assert pdb_rest is not None
            await _charge(pdb_rest, pdb, name, options.dry_run)
    try:
        await _condition_and_delete(pods, namespace, name, delete_options)
    except errors.ApiError as exc:
        if exc.code == 409 and delete_options is not options and not options.preconditions_rv:
            raise still_processing(budget_name) from exc  # the unready pod changed: the client tries again
        raise
    return dict(SUCCESS)


__all__ = ["MORE_THAN_ONE", "SUCCESS", "VIOLATION", "can_ignore_budget", "charged", "evict", "unhealthy_may_go",
           "with_disruption_target"]
