"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of replicated kinds.

``kubectl scale`` PATCHes ``.../deployments/d/scale`` with a merge patch and expects a
Scale back (answering with the Deployment breaks it). Reads build the Scale from the
object; writes apply the request to that Scale and copy ``spec.replicas`` back,
honouring a ``resourceVersion`` precondition like any update.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..registry.workloads import scale_of
from ..machinery import errors
from .handlers import PATCH_TYPES, Target, json_response, read_body
from ..machinery.patch import PatchError, apply_json_patch, apply_merge_patch
from .rest import INTERNAL


async def serve_scale(request: web.Request, target: Target) -> web.Response:
    assert target.name is not None
    from .crds import is_custom, serve_custom_scale  # custom resources scale through their CRD's paths

    if is_custom(target.rt):
        return await serve_custom_scale(request, target)
    if request.method == "GET":
        return json_response(orjson.dumps(scale_of(target.rest.get(target.namespace, target.name).obj)))
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    patch_type = PATCH_TYPES.get((request.content_type or "").lower()) if request.method == "PATCH" else None
    if request.method == "PATCH" and patch_type not in ("json", "merge", "strategic"):
        raise errors.unsupported_patch_type(errors.SCALE_PATCH_TYPES)  # checked before anything is read, as Kubernetes does
    body = await read_body(request)

    def mutate(current: dict) -> dict:
        scale = scale_of(current)
        if request.method == "PUT":
            wanted = body
        elif patch_type == "json":
            wanted = _apply(apply_json_patch, scale, body)
        else:  # merge or strategic: a Scale has no lists to merge by key
            wanted = _apply(apply_merge_patch, scale, body)
        if not isinstance(wanted, dict):
            raise errors.bad_request("the body must be a Scale object")
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"].get("resourceVersion"):
            raise errors.conflict(target.rt, target.name or "", errors.STALE_OBJECT)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.ApiError(422, "Invalid", f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: Invalid '
                                                  f'value: {replicas!r}: must be greater than or equal to 0',
                                  {"name": target.name, "group": "autoscaling", "kind": "Scale",
                                   "causes": [{"reason": "FieldValueInvalid", "message": "must be greater than or equal to "
                                                                                         "0", "field": "spec.replicas"}]})
        current.setdefault("spec", {})["replicas"] = replicas  # the REST layer bumps generation
        return current

    updated = await target.rest.guaranteed_update(target.namespace, target.name, mutate, subresource=INTERNAL)
    obj = updated.obj if hasattr(updated, "obj") else updated
    return json_response(orjson.dumps(scale_of(obj)))


def _apply(fn: Any, scale: dict, body: Any) -> Any:
    try:
        return fn(scale, body)
    except PatchError as exc:
        raise errors.ApiError(422, "Invalid", str(exc)) from None
