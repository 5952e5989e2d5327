"""Storage facts every component shares: the names Kubernetes gives them and the claim-to-volume match.

Why here
--------
Binding a claim is the work of three components that never import each other: the PV
controller (``controllers/volume/``) binds claims to volumes, the scheduler's
VolumeBinding plugin (``scheduler/``) picks volumes and nodes for a pod's unbound claims,
and the node side (``node/local_path.py``, driven by the kubelet and the simulator)
provisions and mounts. They must agree on the annotations they exchange and on which
volume fits which claim, so both live here, once.

The names are Kubernetes' own (``pkg/controller/volume/persistentvolume/util``,
``k8s.io/component-helpers/storage/volume``), so tools that read them -- ``kubectl
describe``, external provisioners, users' scripts -- read podlife's objects unchanged.

:func:`find_matching_volume` is Kubernetes' ``FindMatchingVolume``: among the candidate
volumes, one already bound to the claim (``claimRef`` pre-binding) wins; else the
*smallest* Available, unclaimed volume of the claim's class whose capacity covers the
request, whose access modes include the claim's, whose volume mode is the claim's,
whose labels match the claim's selector and -- when a node is given (the scheduler's
path) -- whose node affinity admits that node. With ``delay_binding`` and no node (the
PV controller looking at a ``WaitForFirstConsumer`` claim) only pre-bound volumes are
considered: the scheduler chooses the others, once it knows the pod's node.

Podlife's own storage: the ``local-path`` StorageClass (the default, as k3s ships it) of
the node-local driver :data:`LOCAL_PATH_DRIVER`, which provisions a directory per volume
on the node that the claim's first pod was scheduled to (:mod:`podlife.node.local_path`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .quantity import QuantityError, parse_quantity
from .scheduling import node_matches_terms, node_selector_terms
from .selectors import SelectorError, label_selector_from_dict

Obj = dict[str, Any]

# ---- annotations and finalizers (Kubernetes' names) ------------------------------------

#: on a claim: the node the scheduler placed its first pod on (WaitForFirstConsumer provisioning)
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
#: on a claim: the provisioner the PV controller asks to provision it (and its older beta name)
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
#: on a claim: the binding is complete (set by the PV controller)
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
#: on a claim or a volume: the PV controller (not the user) made the binding
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
#: on a volume: the provisioner that made it (and so deletes it on reclaim Delete)
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
#: the class annotation that predates ``storageClassName`` (still honoured when the field is unset)
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
#: on a StorageClass: the default class (and its older beta name)
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
#: a claim in use by a pod, a volume bound to a claim, is not removed until that ends
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"

# ---- podlife's node-local storage ---------------------------------------------------------

#: the CSI driver (and provisioner) name of podlife's node-local volumes
LOCAL_PATH_DRIVER = "local-path.podlife.io"
#: the default StorageClass, named as k3s names its local-path class
LOCAL_PATH_CLASS = "local-path"
#: the node label the driver's volumes are pinned with (CSINode ``topologyKeys``)
TOPOLOGY_KEY = "kubernetes.io/hostname"
#: the CSI ``volumeAttributes`` key holding the directory on the node
PATH_ATTRIBUTE = "local-path.podlife.io/path"


# ---- reading claims, volumes and classes --------------------------------------------------

def claim_class(claim: Mapping[str, Any]) -> str:
    """The claim's storage class (``GetPersistentVolumeClaimClass``): the beta annotation, else
    ``spec.storageClassName``; "" when neither is set."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return str(annotations[ANN_BETA_STORAGE_CLASS])
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def volume_class(volume: Mapping[str, Any]) -> str:
    """The volume's storage class (``GetPersistentVolumeClass``), the same way."""
    return claim_class(volume)


def storage_bytes(resources: Mapping[str, Any] | None) -> int:
    """``storage`` of a ``requests``/``capacity`` map in bytes (0 when absent or malformed)."""
    value = (resources or {}).get("storage")
    if value is None:
        return 0
    try:
        return int(parse_quantity(value))
    except (QuantityError, TypeError, ValueError):
        return 0


def requested_bytes(claim: Mapping[str, Any]) -> int:
    return storage_bytes(((claim.get("spec") or {}).get("resources") or {}).get("requests"))


def capacity_bytes(volume: Mapping[str, Any]) -> int:
    return storage_bytes((volume.get("spec") or {}).get("capacity"))


def volume_mode(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("volumeMode") or "Filesystem")


def is_claim_bound(claim: Mapping[str, Any]) -> bool:
    """Bound as the kubelet and the scheduler see it: phase Bound and a volume named."""
    return ((claim.get("status") or {}).get("phase") == "Bound"
            and bool((claim.get("spec") or {}).get("volumeName")))


def is_default_class(storage_class: Mapping[str, Any]) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return "true" in (annotations.get(ANN_DEFAULT_CLASS), annotations.get(ANN_BETA_DEFAULT_CLASS))


def default_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The default StorageClass; with several, the newest (then the first by name), as Kubernetes since 1.26."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (str((c.get("metadata") or {}).get("creationTimestamp") or ""),
                                        _reverse_name(c)))


def _reverse_name(obj: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in str((obj.get("metadata") or {}).get("name") or ""))


# ---- a pod's claims -------------------------------------------------------------------------

def ephemeral_claim_name(pod_name: str, volume_name: str) -> str:
    """The claim of a generic ephemeral volume: ``<pod>-<volume>`` (Kubernetes' naming)."""
    return f"{pod_name}-{volume_name}"


class PodClaim(NamedTuple):
    """One of a pod's volumes that uses a claim."""

    volume: str
    claim: str
    #: a generic ephemeral volume's claim (``<pod>-<volume>``, which must be the pod's own)
    ephemeral: bool
    #: the pod mounts it read-only (``persistentVolumeClaim.readOnly``)
    read_only: bool


def pod_claims(pod: Mapping[str, Any]) -> tuple[PodClaim, ...]:
    """The pod's volumes that use claims, in volume order: ``persistentVolumeClaim`` volumes and
    ``ephemeral`` ones (``()`` for most pods)."""
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    found: list[PodClaim] = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = str(volume.get("name") or "")
        if (source := volume.get("persistentVolumeClaim")) is not None:
            found.append(PodClaim(name, str(source.get("claimName") or ""), False, bool(source.get("readOnly"))))
        elif volume.get("ephemeral") is not None:
            found.append(PodClaim(name, ephemeral_claim_name(pod_name, name), True, False))
    return tuple(found)


def pod_claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The claims a pod's volumes use, in volume order (:func:`pod_claims`' names)."""
    return [c.claim for c in pod_claims(pod)]


# ---- matching a claim to a volume -------------------------------------------------------

def is_volume_bound_to_claim(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The volume's ``claimRef`` names this claim (and its uid, when the ref has one)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    meta = claim.get("metadata") or {}
    if not ref or (ref.get("namespace"), ref.get("name")) != (meta.get("namespace"), meta.get("name")):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def access_modes_fit(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    """Every access mode the claim asks for is one the volume offers."""
    offered = set((volume.get("spec") or {}).get("accessModes") or [])
    return all(mode in offered for mode in (claim.get("spec") or {}).get("accessModes") or [])


def volume_admits_node(volume: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The volume's ``spec.nodeAffinity.required`` admits the node (no affinity admits every node)."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not isinstance(required, dict):
        return True
    meta = node.get("metadata") or {}
    return node_matches_terms(node_selector_terms(required), meta.get("labels") or {}, str(meta.get("name") or ""))


def _selector_matches(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    selector = (claim.get("spec") or {}).get("selector")
    if not selector:
        return True
    try:
        return label_selector_from_dict(selector).matches((volume.get("metadata") or {}).get("labels") or {})
    except SelectorError:
        return False


def find_matching_volume(claim: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]], *,
                         node: Mapping[str, Any] | None = None, delay_binding: bool = False,
                         excluded: frozenset[str] = frozenset()) -> Mapping[str, Any] | None:
    """Kubernetes' ``FindMatchingVolume`` (see the module docstring); None when nothing fits.

    ``excluded``: volume names not to pick (the scheduler's choices for the pod's other claims).
    """
    wanted = requested_bytes(claim)
    wanted_class = claim_class(claim)
    wanted_mode = volume_mode(claim)
    smallest: Mapping[str, Any] | None = None
    smallest_size = 0
    for volume in volumes:
        name = str((volume.get("metadata") or {}).get("name") or "")
        if name in excluded or volume_mode(volume) != wanted_mode or not access_modes_fit(claim, volume):
            continue
        if (volume.get("metadata") or {}).get("deletionTimestamp"):
            continue
        size = capacity_bytes(volume)
        admits = node is None or volume_admits_node(volume, node)
        if size < wanted:
            continue
        if is_volume_bound_to_claim(volume, claim):  # pre-bound: the class is not asked (as Kubernetes)
            return volume if admits else None
        if node is None and delay_binding:
            continue
        if ((volume.get("status") or {}).get("phase") != "Available" or (volume.get("spec") or {}).get("claimRef")
                or not _selector_matches(claim, volume) or volume_class(volume) != wanted_class or not admits):
            continue
        if smallest is None or size < smallest_size:
            smallest, smallest_size = volume, size
    return smallest


def claim_mismatch(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> str | None:
    """Why a volume the claim names (``spec.volumeName``) cannot serve it (``checkVolumeSatisfyClaim``'s
    words), or None when it can."""
    if capacity_bytes(volume) < requested_bytes(claim):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(volume) != volume_mode(claim):
        return "incompatible volumeMode"
    if not access_modes_fit(claim, volume):
        return "incompatible accessMode"
    return None


def claim_ref(claim: Mapping[str, Any]) -> Obj:
    """The ``claimRef`` a volume bound to this claim holds."""
    meta = claim.get("metadata") or {}
    return {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"), "name": meta.get("name"),
            "uid": meta.get("uid"), "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")}


def ephemeral_claim_problem(pod: Mapping[str, Any], claim: Mapping[str, Any]) -> str | None:
    """``ephemeral.VolumeIsForPod``: why the claim of a pod's ephemeral volume is not that pod's own (in
    its namespace, the pod its controller), in Kubernetes' words; None when it is."""
    pod_meta, claim_meta = pod.get("metadata") or {}, claim.get("metadata") or {}
    if claim_meta.get("namespace") == pod_meta.get("namespace") and any(
            ref.get("controller") and ref.get("uid") == pod_meta.get("uid")
            for ref in claim_meta.get("ownerReferences") or ()):
        return None
    return (f"PVC {claim_meta.get('namespace')}/{claim_meta.get('name')} was not created for pod "
            f"{pod_meta.get('namespace')}/{pod_meta.get('name')} (pod is not owner)")
