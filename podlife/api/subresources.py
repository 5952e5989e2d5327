"""POST subresources: ``pods/binding`` (the scheduler's write) and ``pods/eviction``.

A Binding names the node a pod goes to; the API sets ``spec.nodeName`` and the
``PodScheduled`` condition in one write, and refuses a pod already bound (409), which
is what keeps two schedulers from placing one pod twice.

An Eviction is a delete that respects the pod's PodDisruptionBudget: :mod:`.eviction`.
"""

from __future__ import annotations

from typing import Any

from ..registry.pods import bind_pod
from ..machinery import errors
from .eviction import evict
from .rest import INTERNAL, ApiContext, ResourceREST, now_rfc3339

SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


async def create_subresource(ctx: ApiContext, rest: ResourceREST, namespace: str | None, name: str,
                             subresource: str, body: Any, *, dry_run: bool = False) -> dict:
    if rest.rt.kind != "Pod" or rest.rt.group:
        raise errors.method_not_allowed()
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be an object")
    if subresource == "binding":
        return await _bind(rest, namespace, name, body)
    if subresource == "eviction":
        return await evict(rest, namespace, name, body, dry_run=dry_run)
    raise errors.path_not_found(subresource)


async def _bind(rest: ResourceREST, namespace: str | None, name: str, body: dict) -> dict:
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value',
                              {"name": name, "kind": "Binding",
                               "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "target.name"}]})
    stamp = now_rfc3339()

    def mutate(pod: dict) -> dict:
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict(rest.rt, name, "pod is being deleted, cannot be assigned to a host")
        errs = bind_pod(pod, node, stamp)
        if errs:
            raise errors.conflict(rest.rt, name, errs[0].detail)
        return pod

    await rest.guaranteed_update(namespace, name, mutate, subresource=INTERNAL)
    return dict(SUCCESS)
