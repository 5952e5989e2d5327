"""The PV controller's decisions, apart from its reads and writes: what a claim or a volume should become.

Kubernetes' ``pkg/controller/volume/persistentvolume/pv_controller.go`` decides and writes in
one breath; here the deciding is pure (objects in, new objects or verdicts out) so that it
is tested without a cluster, and :mod:`.binder` only reads caches, calls these and writes.

- :func:`delays_binding`: a ``WaitForFirstConsumer`` class and no ``selected-node`` yet;
- :func:`volume_bound_to` / :func:`claim_bound_to`: the two halves of a binding (``claimRef``
  on the volume, ``volumeName`` and the ``bind-completed`` annotation on the claim), or None
  when the half is already there;
- :func:`claim_status` / :func:`volume_status`: the new status for a phase (None: unchanged),
  with ``accessModes``/``capacity`` copied from the volume as ``updateClaimStatus`` copies them
  and ``lastPhaseTransitionTime`` on every phase change of a volume;
- :func:`no_volume_verdict`: what an unbound claim with nothing to bind gets (wait for the first
  consumer, ask the class's provisioner, or fail) -- the event Kubernetes records and the
  provisioner annotations;
- :func:`volume_verdict`: what a volume's ``claimRef`` says about it (Available, Bound, Released,
  a half-done binding to finish, a controller binding to undo);
- :func:`reclaim_verdict`: what a Released volume's reclaim policy makes of it;
- :func:`retroactive_class`: the default class for a pending claim that never named one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...machinery.storage import (
    ANN_BETA_STORAGE_CLASS,
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    claim_class,
    claim_ref,
    is_volume_bound_to_claim,
)

Obj = dict[str, Any]

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
#: the messages of Kubernetes' events (``pkg/controller/volume/events`` reasons)
WAITING_FOR_CONSUMER = "waiting for first consumer to be created before binding"
NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
CLAIM_LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
CLAIM_LOST_REFERENCE = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
CLAIM_MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"
NO_RECYCLER = "No recycler plugin found for the volume!"


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _meta(obj).get("annotations") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def phase(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


# --------------------------------------------------------------------------- claims


def delays_binding(claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None) -> bool:
    """``IsDelayBindingMode`` and no node chosen yet: only volumes pre-bound to the claim may be bound now."""
    if storage_class is None or storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
        return False
    return ANN_SELECTED_NODE not in _annotations(claim)


def has_bind_completed(claim: Mapping[str, Any]) -> bool:
    return ANN_BIND_COMPLETED in _annotations(claim)


@dataclass(frozen=True)
class NoVolumeVerdict:
    """What an unbound claim that no volume fits gets: an event, and maybe provisioner annotations."""

    event: Event | None
    #: the provisioner to name in the claim's annotations (None: leave them)
    provisioner: str | None = None


def external_provisioning_message(provisioner: str) -> str:
    return (f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by "
            "the system administrator. If volume creation is delayed, please verify that the provisioner is running "
            "and correctly registered.")


def no_volume_verdict(claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None, delayed: bool) -> NoVolumeVerdict:
    """``syncUnboundClaim`` when ``findBestMatchForClaim`` found nothing (the claim stays Pending)."""
    if delayed:
        return NoVolumeVerdict(Event("Normal", "WaitForFirstConsumer", WAITING_FOR_CONSUMER))
    class_name = claim_class(claim)
    if not class_name:
        return NoVolumeVerdict(Event("Warning", "FailedBinding", NO_CLASS))
    if storage_class is None:
        return NoVolumeVerdict(Event("Warning", "ProvisioningFailed",
                                     f'storageclass.storage.k8s.io "{class_name}" not found'))
    provisioner = str(storage_class.get("provisioner") or "")
    if provisioner.startswith("kubernetes.io/"):  # an in-tree plugin name: podlife has none
        return NoVolumeVerdict(Event("Warning", "ProvisioningFailed", f"no volume plugin matched name: {provisioner}"))
    return NoVolumeVerdict(Event("Normal", "ExternalProvisioning", external_provisioning_message(provisioner)),
                           provisioner)


def with_provisioner(claim: Mapping[str, Any], provisioner: str) -> Obj | None:
    """The claim annotated for ``provisioner`` (``setClaimProvisioner``); None when it already is."""
    annotations = _annotations(claim)
    if annotations.get(ANN_STORAGE_PROVISIONER) == provisioner and annotations.get(ANN_BETA_STORAGE_PROVISIONER) == provisioner:
        return None
    new = copy.deepcopy(dict(claim))
    meta = new.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANN_STORAGE_PROVISIONER: provisioner,
                           ANN_BETA_STORAGE_PROVISIONER: provisioner}
    return new


def retroactive_class(claim: Mapping[str, Any], default: Mapping[str, Any] | None) -> str | None:
    """The default class to give a claim that never named one (``storageClassName`` absent, not ""), still
    unbound and Pending -- Kubernetes' retroactive default StorageClass assignment; None: leave it."""
    if default is None or "storageClassName" in _spec(claim) or ANN_BETA_STORAGE_CLASS in _annotations(claim):
        return None
    if _spec(claim).get("volumeName") or phase(claim) not in ("", "Pending"):
        return None
    return str(_meta(default).get("name") or "") or None


def claim_bound_to(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> Obj | None:
    """The claim's half of a binding (``bindClaimToVolume``): ``volumeName``, ``bind-completed`` and, when the
    controller chose the volume, ``bound-by-controller``; None when all is there already."""
    volume_name = str(_meta(volume).get("name") or "")
    spec_name = _spec(claim).get("volumeName")
    annotations = dict(_annotations(claim))
    changed = False
    if spec_name != volume_name:
        annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
        changed = True
    if annotations.get(ANN_BIND_COMPLETED) != "yes":
        annotations[ANN_BIND_COMPLETED] = "yes"
        changed = True
    if not changed:
        return None
    new = copy.deepcopy(dict(claim))
    new.setdefault("spec", {})["volumeName"] = volume_name
    new.setdefault("metadata", {})["annotations"] = annotations
    return new


def claim_status(claim: Mapping[str, Any], new_phase: str, volume: Mapping[str, Any] | None) -> Obj | None:
    """The claim's status in ``new_phase`` (``updateClaimStatus``); None when nothing changes.

    With a volume the access modes follow it, and the capacity too when the phase changes
    (a later difference may be a resize in progress, which is not the binder's to undo);
    without one (Lost) both are cleared.
    """
    old = dict(claim.get("status") or {})
    status = dict(old)
    status["phase"] = new_phase
    if volume is None:
        status.pop("accessModes", None)
        status.pop("capacity", None)
    else:
        modes = _spec(volume).get("accessModes")
        if modes is not None:
            status["accessModes"] = list(modes)
        capacity = _spec(volume).get("capacity")
        if phase(claim) != new_phase and capacity and \
                (old.get("capacity") or {}).get("storage") != capacity.get("storage"):
            status["capacity"] = dict(capacity)
    return status if status != old else None


# --------------------------------------------------------------------------- volumes


def volume_bound_to(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> Obj | None:
    """The volume's half of a binding (``bindVolumeToClaim``): ``claimRef`` naming the claim and its uid, and
    ``bound-by-controller`` when the controller filled an empty ``claimRef``; None when it is there already."""
    ref = _spec(volume).get("claimRef") or {}
    if is_volume_bound_to_claim(volume, claim) and ref.get("uid"):
        return None
    new = copy.deepcopy(dict(volume))
    new.setdefault("spec", {})["claimRef"] = claim_ref(claim)
    if not ref:
        meta = new.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), ANN_BOUND_BY_CONTROLLER: "yes"}
    return new


def volume_unbound(volume: Mapping[str, Any]) -> Obj:
    """``unbindVolume``: a binding the controller made is undone entirely; a user's pre-binding keeps its name."""
    new = copy.deepcopy(dict(volume))
    annotations = dict(_annotations(new))
    if annotations.pop(ANN_BOUND_BY_CONTROLLER, None) is not None:
        new["spec"].pop("claimRef", None)
        new["metadata"]["annotations"] = annotations
    else:
        ref = dict(new["spec"].get("claimRef") or {})
        ref.pop("uid", None)
        ref.pop("resourceVersion", None)
        new["spec"]["claimRef"] = ref
    return new


def volume_status(volume: Mapping[str, Any], new_phase: str, message: str, now: str) -> Obj | None:
    """The volume's status in ``new_phase`` with ``message`` (``updateVolumePhase``); None when unchanged.
    ``lastPhaseTransitionTime`` is ``now`` when the phase changes."""
    old = dict(volume.get("status") or {})
    status = dict(old)
    status["phase"] = new_phase
    if message:
        status["message"] = message
    else:
        status.pop("message", None)
    if phase(volume) != new_phase:
        status["lastPhaseTransitionTime"] = now
    return status if status != old else None


class VolumeVerdict(Enum):
    AVAILABLE = "Available"  # no claimRef, or a pre-binding to a claim not made yet
    BOUND = "Bound"  # the claim names the volume too
    RELEASED = "Released"  # its claim is gone: reclaim it
    HALF_BOUND = "half-bound"  # the claim has not named it yet: finish from the claim's side
    UNBIND = "unbind"  # the claim went to another volume, and the controller made this binding: undo it
    WAIT = "wait"  # a user's binding to a claim bound elsewhere: leave it


def volume_verdict(volume: Mapping[str, Any], claim: Mapping[str, Any] | None) -> VolumeVerdict:
    """``syncVolume``'s reading of the volume and the claim its ``claimRef`` names (None: not found)."""
    ref = _spec(volume).get("claimRef") or {}
    if not ref:
        return VolumeVerdict.AVAILABLE
    if not ref.get("uid"):  # reserved for a claim that has not bound it yet: the claim's sync will
        return VolumeVerdict.AVAILABLE
    if claim is None or _meta(claim).get("uid") != ref.get("uid"):
        return VolumeVerdict.RELEASED
    claimed = _spec(claim).get("volumeName")
    if not claimed:
        return VolumeVerdict.HALF_BOUND
    if claimed == _meta(volume).get("name"):
        return VolumeVerdict.BOUND
    return VolumeVerdict.UNBIND if ANN_BOUND_BY_CONTROLLER in _annotations(volume) else VolumeVerdict.WAIT


@dataclass(frozen=True)
class ReclaimVerdict:
    """A Released volume's fate: a new phase and event (None: left as it is, or to its provisioner)."""

    phase: str | None = None
    event: Event | None = None


def reclaim_verdict(volume: Mapping[str, Any]) -> ReclaimVerdict:
    """``reclaimVolume``: Retain keeps it Released; Delete leaves a provisioned volume to its provisioner (which
    removes it) and fails any other -- podlife has no in-tree deleter; Recycle fails (no recycler either)."""
    policy = _spec(volume).get("persistentVolumeReclaimPolicy") or "Retain"
    name = str(_meta(volume).get("name") or "")
    if policy == "Recycle":
        return ReclaimVerdict("Failed", Event("Warning", "VolumeFailedRecycle", NO_RECYCLER))
    if policy == "Delete":
        if _annotations(volume).get(ANN_PROVISIONED_BY):
            return ReclaimVerdict()
        return ReclaimVerdict("Failed", Event("Warning", "VolumeFailedDelete",
                                              f'error getting deleter volume plugin for volume "{name}": '
                                              "no deletable volume plugin matched"))
    return ReclaimVerdict()
