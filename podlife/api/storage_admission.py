"""The storage admission plugins: a claim's default class, the protection finalizers, claim resize.

Learned from Kubernetes' ``plugin/pkg/admission/storage/``; all three are on by default in
kube-apiserver, and sit in its ``AllOrderedPlugins`` after DefaultTolerationSeconds, in this
order (so :data:`~podlife.api.admission.ADMISSION_PLUGINS` lists them so):

- **DefaultStorageClass** (``storageclass/setdefault``; mutating, a claim's create): a claim
  that names no class -- ``spec.storageClassName`` absent *and* no
  ``volume.beta.kubernetes.io/storage-class`` annotation -- gets the default StorageClass's
  name (the class annotated ``storageclass.kubernetes.io/is-default-class: "true"``; of
  several, the newest, then the first by name, as Kubernetes since 1.26:
  :func:`~podlife.machinery.storage.default_class`). ``storageClassName: ""`` is a request
  for *no* class (only volumes without one bind it) and stays "". Without a default class
  the claim is left as it is (the PV controller gives it one later, when a default appears).
- **StorageObjectInUseProtection** (``storageobjectinuseprotection``; mutating, creates of
  claims and volumes): adds ``kubernetes.io/pvc-protection`` to a claim and
  ``kubernetes.io/pv-protection`` to a volume, unless already there. The PVC/PV protection
  controllers remove them once the claim is used by no pod / the volume is bound to no
  claim, so neither disappears while in use.
- **PersistentVolumeClaimResize** (``persistentvolume/resize``; validating, a claim's update,
  not its status): when ``spec.resources.requests.storage`` grows, the stored claim must be
  Bound (``Only bound persistent volume claims can be expanded``) and its class -- the same
  before and after, not "" -- must exist with ``allowVolumeExpansion: true`` (``only
  dynamically provisioned pvc can be resized and the storageclass that provisions the pvc
  must support resize``); both are ``admission.NewForbidden``'s 403. A claim that is not
  Bound rarely gets this far: the claim's own validation already refuses any change to the
  spec of an unbound claim (422), as in Kubernetes.

StorageClasses are read from the API server's watch cache, as :mod:`.priority_admission`
reads PriorityClasses (Kubernetes' plugins read an informer's lister). The decisions are
pure functions of the objects (:func:`claim_needs_default_class`, :func:`missing_finalizer`,
:func:`resize_refusal`); the plugin halves only read the cache and write the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..machinery.quantity import QuantityError, parse_quantity
from ..machinery.storage import (
    ANN_BETA_STORAGE_CLASS,
    PV_PROTECTION_FINALIZER,
    PVC_PROTECTION_FINALIZER,
    claim_class,
    default_class,
)
from ..registry.types import Obj
from .admission_plugin import CREATE_ONLY, UPDATE, AdmissionPlugin, Attributes, refuse

if TYPE_CHECKING:
    from fractions import Fraction

    from .rest import ResourceREST

DEFAULT_STORAGE_CLASS = "DefaultStorageClass"
STORAGE_OBJECT_IN_USE_PROTECTION = "StorageObjectInUseProtection"
PERSISTENT_VOLUME_CLAIM_RESIZE = "PersistentVolumeClaimResize"

STORAGE_GROUP = "storage.k8s.io"
CLAIMS = ("", "persistentvolumeclaims")
VOLUMES = ("", "persistentvolumes")

ONLY_BOUND_CAN_EXPAND = "Only bound persistent volume claims can be expanded"
CLASS_MUST_SUPPORT_RESIZE = ("only dynamically provisioned pvc can be resized and the storageclass that provisions "
                             "the pvc must support resize")


# ---- reading StorageClasses --------------------------------------------------------------

def _storage_classes(rest: ResourceREST) -> list[Obj]:
    classes = rest.ctx.rest_by(STORAGE_GROUP, "v1", "storageclasses")
    return [co.obj for co in classes.cache.in_namespace(None)] if classes is not None else []


def _storage_class(rest: ResourceREST, name: str) -> Obj | None:
    classes = rest.ctx.rest_by(STORAGE_GROUP, "v1", "storageclasses")
    found = classes.cache.get(classes.rt.key(None, name)) if classes is not None else None
    return found.obj if found is not None else None


# ---- DefaultStorageClass ---------------------------------------------------------------------

def claim_needs_default_class(claim: Mapping[str, Any]) -> bool:
    """Kubernetes' ``!PersistentVolumeClaimHasClass``: neither the beta annotation nor the field is set
    ("" is set: it asks for no class)."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    return ANN_BETA_STORAGE_CLASS not in annotations and (claim.get("spec") or {}).get("storageClassName") is None


def default_class_name(classes: Iterable[Mapping[str, Any]]) -> str | None:
    """The name of the default class among ``classes``, or None."""
    found = default_class(classes)
    if found is None:
        return None
    return str((found.get("metadata") or {}).get("name") or "") or None


def admit_default_storage_class(rest: ResourceREST, claim: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half on a claim's create: give a claim without a class the default one."""
    spec = claim.get("spec")
    if not isinstance(spec, dict) or not claim_needs_default_class(claim):
        return []
    name = default_class_name(_storage_classes(rest))
    if name is not None:
        spec["storageClassName"] = name
    return []


# ---- StorageObjectInUseProtection ----------------------------------------------------------

def missing_finalizer(obj: Mapping[str, Any], finalizer: str) -> bool:
    return finalizer not in ((obj.get("metadata") or {}).get("finalizers") or [])


def admit_protection(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half on a claim's or a volume's create: add its protection finalizer."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return []
    finalizer = PVC_PROTECTION_FINALIZER if rest.rt.plural == CLAIMS[1] else PV_PROTECTION_FINALIZER
    if missing_finalizer(obj, finalizer):
        meta["finalizers"] = [*(meta.get("finalizers") or []), finalizer]  # a new list: the body's may be shared
    return []


# ---- PersistentVolumeClaimResize -------------------------------------------------------------

def _requested_storage(claim: Mapping[str, Any]) -> Fraction:
    value = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    if value is None:
        return parse_quantity(0)
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError, ValueError):
        return parse_quantity(0)  # validation words a malformed quantity


def resize_refusal(claim: Mapping[str, Any], old: Mapping[str, Any],
                   storage_class: Mapping[str, Any] | None) -> str | None:
    """Why growing ``old`` into ``claim`` is refused, or None (not a growth, or allowed).

    ``storage_class``: the class the new claim names (None when it names none or it does not exist).
    """
    if _requested_storage(claim) <= _requested_storage(old):
        return None
    if (old.get("status") or {}).get("phase") != "Bound":
        return ONLY_BOUND_CAN_EXPAND
    new_class, old_class = claim_class(claim), claim_class(old)
    if not new_class or new_class != old_class or storage_class is None:
        return CLASS_MUST_SUPPORT_RESIZE
    if storage_class.get("allowVolumeExpansion") is not True:
        return CLASS_MUST_SUPPORT_RESIZE
    return None


def validate_resize(rest: ResourceREST, claim: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The validating half on a claim's update: only a bound claim of an expandable class may grow."""
    if old is None:
        return []
    class_name = claim_class(claim)
    why = resize_refusal(claim, old, _storage_class(rest, class_name) if class_name else None)
    if why is not None:
        raise refuse(rest, claim, why)
    return []


DEFAULT_STORAGE_CLASS_PLUGIN = AdmissionPlugin(DEFAULT_STORAGE_CLASS, frozenset({CLAIMS}), CREATE_ONLY,
                                               mutate=admit_default_storage_class)
STORAGE_OBJECT_IN_USE_PROTECTION_PLUGIN = AdmissionPlugin(STORAGE_OBJECT_IN_USE_PROTECTION,
                                                          frozenset({CLAIMS, VOLUMES}), CREATE_ONLY,
                                                          mutate=admit_protection)
PERSISTENT_VOLUME_CLAIM_RESIZE_PLUGIN = AdmissionPlugin(PERSISTENT_VOLUME_CLAIM_RESIZE, frozenset({CLAIMS}),
                                                        frozenset({UPDATE}), validate=validate_resize)
