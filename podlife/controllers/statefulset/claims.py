"""A StatefulSet's PersistentVolumeClaims and ``persistentVolumeClaimRetentionPolicy``.

Pure functions over claims, the set and a pod; the controller reads claims from its
informer and writes what these decide. Kubernetes facts followed
(``stateful_set_utils.go``, ``stateful_pod_control.go``, KEP-1847):

* claims are created before their pod, never deleted by the controller itself: the
  retention policy is carried out by owner references that the garbage collector follows;
* ``whenDeleted: Delete``: the claim of a pod in range has a controller reference to the
  set (deleting the set deletes it); ``whenScaled: Delete``: the claim of a condemned pod
  (ordinal out of range after a scale down) has a controller reference to that pod, so it
  goes with the pod; ``Retain`` (the default for both): no reference of ours;
* references to the set or pod by name and kind but another uid are *stale* (a previous
  incarnation): such a claim is left alone, and a pod is not created while its claim
  still belongs to a previous pod of its name (``PodClaimIsStale``, only when
  ``whenScaled`` is Delete: that claim is about to be collected);
* a claim controlled by something else is left to it (our references scrubbed).
"""

from __future__ import annotations

from ...client.base import Obj
from .identity import API_VERSION, KIND, in_range, ordinal_of

RETAIN = "Retain"
DELETE = "Delete"


def retention_policy(sts: Obj) -> tuple[str, str]:
    """``(whenDeleted, whenScaled)``, Retain unless set."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or RETAIN, policy.get("whenScaled") or RETAIN


def _refs(claim: Obj) -> list[Obj]:
    return list((claim.get("metadata") or {}).get("ownerReferences") or [])


def _matches(ref: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    return ref.get("apiVersion") == api_version and ref.get("kind") == kind and ref.get("name") == obj["metadata"].get("name")


def _uid(obj: Obj) -> str:
    return obj["metadata"].get("uid") or ""


def has_owner_ref(claim: Obj, owner: Obj) -> bool:
    uid = _uid(owner)
    return bool(uid) and any(ref.get("uid") == uid for ref in _refs(claim))


def has_stale_owner_ref(claim: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    """A reference naming ``obj`` (kind and name) with another uid."""
    for ref in _refs(claim):
        if _matches(ref, obj, api_version, kind):
            return ref.get("uid") != _uid(obj)
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    if retention_policy(sts) == (RETAIN, RETAIN):
        return False
    for ref in _refs(claim):
        if _matches(ref, sts, API_VERSION, KIND):
            if ref.get("uid") != _uid(sts):
                return True
            continue
        if _matches(ref, pod, "v1", "Pod"):
            if ref.get("uid") != _uid(pod):
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def _has_non_controller_owner(claim: Obj, sts: Obj, pod: Obj) -> bool:
    uids = {_uid(sts), _uid(pod)} - {""}
    return any(ref.get("uid") in uids and not ref.get("controller") for ref in _refs(claim))


def _wanted_owners(sts: Obj, pod: Obj) -> tuple[bool, bool]:
    """Whether the claim should be controlled by (the set, the pod) under the policy."""
    when_deleted, when_scaled = retention_policy(sts)
    scaled_down = not in_range(sts, ordinal_of(pod))
    on_set = when_deleted == DELETE and not (when_scaled == DELETE and scaled_down)
    on_pod = when_scaled == DELETE and scaled_down
    return on_set, on_pod


def claim_owner_up_to_date(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """Whether the claim's references already carry out the retention policy (``isClaimOwnerUpToDate``)."""
    if has_stale_owner_ref(claim, sts, API_VERSION, KIND) or has_stale_owner_ref(claim, pod, "v1", "Pod"):
        return True  # a previous incarnation's: not ours to touch
    if has_unexpected_controller(claim, sts, pod):
        return not (has_owner_ref(claim, sts) or has_owner_ref(claim, pod))
    if _has_non_controller_owner(claim, sts, pod):
        return False
    on_set, on_pod = _wanted_owners(sts, pod)
    return has_owner_ref(claim, sts) == on_set and has_owner_ref(claim, pod) == on_pod


def _controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def updated_owner_refs(claim: Obj, sts: Obj, pod: Obj) -> list[Obj]:
    """The claim's owner references carrying out the policy (``updateClaimOwnerRefForSetAndPod``)."""
    unexpected = has_unexpected_controller(claim, sts, pod)
    refs = [ref for ref in _refs(claim)
            if not (_matches(ref, sts, API_VERSION, KIND) or _matches(ref, pod, "v1", "Pod"))]
    if unexpected:
        return refs
    on_set, on_pod = _wanted_owners(sts, pod)
    if on_set:
        refs.append(_controller_ref(sts, API_VERSION, KIND))
    if on_pod and _uid(pod):
        refs.append(_controller_ref(pod, "v1", "Pod"))
    return refs


def claim_is_stale(sts: Obj, pod: Obj, claims: list[Obj]) -> bool:
    """A claim of a pod about to be created still belongs to a previous pod of its name (``PodClaimIsStale``)."""
    if retention_policy(sts)[1] == RETAIN:
        return False
    return any(has_stale_owner_ref(claim, pod, "v1", "Pod") for claim in claims)
