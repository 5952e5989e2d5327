"""Validation of PersistentVolumes, PersistentVolumeClaims and StorageClasses.

What it reads: the object after defaulting (a PV's ``persistentVolumeReclaimPolicy:
Retain`` and ``volumeMode: Filesystem``, a StorageClass's ``reclaimPolicy: Delete`` and
``volumeBindingMode: Immediate``) and, on update, the stored one. What it writes: field
errors for the strategies in :mod:`podlife.registry.core` and
:mod:`podlife.registry.validated_kinds`. Why: the binder
matches claims to volumes by access modes and sizes; a claim without a size, a volume
with two sources, or a class whose provisioner changed under existing volumes would be
stored and then bind wrongly or never.

Kubernetes facts followed (``pkg/apis/core/validation/validation.go``:
``ValidatePersistentVolumeSpec``, ``ValidatePersistentVolumeUpdate``,
``ValidatePersistentVolumeClaimSpec``, ``ValidatePersistentVolumeClaimUpdate``;
``pkg/apis/storage/validation/validation.go``: ``ValidateStorageClass``,
``ValidateStorageClassUpdate``):

* access modes required, each ReadOnlyMany/ReadWriteMany/ReadWriteOnce/ReadWriteOncePod,
  ReadWriteOncePod alone;
* a PV's capacity holds ``storage`` only, greater than zero; exactly one volume source
  (the second one named is "may not specify more than 1 volume type"), with its required
  fields; a ``local`` volume needs node affinity; reclaim policy Delete/Recycle/Retain;
* a PVC needs ``resources.requests.storage`` > 0; volumeMode Block/Filesystem;
* on update a PV's source and volumeMode are immutable; a PVC's spec is immutable except
  ``volumeName`` (set once), and -- for bound claims -- growing ``resources.requests``;
  shrinking below ``status.capacity`` is refused;
* a StorageClass needs a provisioner (a qualified name), parameters of at most 512
  entries and 256 KiB, reclaim policy Delete/Retain, binding mode
  Immediate/WaitForFirstConsumer; provisioner, parameters, reclaim policy and binding
  mode never change.

Kubernetes appends a ``cmp.Diff`` of the two specs to the PV/PVC immutability messages;
podlife names the changed fields instead (the first line is Kubernetes' own).
"""

from __future__ import annotations

from typing import Any

from .field_rules import (FIELD_IMMUTABLE, GoValue, malformed_quantity, quantity, qualified_errors, subdomain_errors,
                          too_long)
from .rbac import validate_label_selector
from .types import FieldError, Obj, forbidden, invalid, not_supported, required

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
PV_RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
CLASS_RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
#: PersistentVolumeSource fields, in the order Kubernetes' ValidatePersistentVolumeSpec looks at them
PV_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "glusterfs", "flocker", "nfs", "rbd", "quobyte",
              "cinder", "cephfs", "iscsi", "fc", "flexVolume", "azureFile", "vsphereVolume", "photonPersistentDisk",
              "portworxVolume", "azureDisk", "scaleIO", "local", "storageos", "csi")
_SOURCE_NEEDS = {"hostPath": ("path",), "nfs": ("server", "path"), "local": ("path",), "csi": ("driver", "volumeHandle"),
                 "iscsi": ("targetPortal", "iqn"), "rbd": ("monitors", "image"), "cephfs": ("monitors",),
                 "glusterfs": ("endpoints", "path"), "gcePersistentDisk": ("pdName",), "awsElasticBlockStore": ("volumeID",),
                 "azureDisk": ("diskName", "diskURI"), "azureFile": ("secretName", "shareName"), "flexVolume": ("driver",),
                 "cinder": ("volumeID",), "vsphereVolume": ("volumePath",)}
MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


def _access_modes(modes: Any, path: str, required_detail: str) -> list[FieldError]:
    if not modes:
        return [required(path, required_detail)]
    if not isinstance(modes, list):
        return [invalid(path, modes, "must be a list")]
    errs = [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and any(m in ACCESS_MODES and m != "ReadWriteOncePod" for m in modes):
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _positive_quantity(value: Any, path: str) -> list[FieldError]:
    parsed = quantity(value)
    if parsed is None:
        return [malformed_quantity(value, path)]
    if parsed < 0:
        return [invalid(path, str(value), "must be greater than or equal to 0"),
                invalid(path, str(value), "must be greater than zero")]
    if parsed == 0:
        return [invalid(path, str(value), "must be greater than zero")]
    return []


def _class_name(spec: Obj, path: str) -> list[FieldError]:
    name = spec.get("storageClassName")
    return subdomain_errors(name, path) if name else []


def _volume_mode(spec: Obj, path: str) -> list[FieldError]:
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        return [not_supported(path, mode, VOLUME_MODES)]
    return []


# --------------------------------------------------------------------------- PersistentVolume


def validate_persistent_volume(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes", "")
    capacity = spec.get("capacity")
    if not capacity:
        errs.append(required("spec.capacity"))
    capacity = capacity if isinstance(capacity, dict) else {}
    if "storage" not in capacity or len(capacity) > 1:
        errs.append(not_supported("spec.capacity", _go_resource_list(capacity), ["storage"]))
    for name, value in capacity.items():
        errs += _positive_quantity(value, f"spec.capacity[{name}]")
    errs += _class_name(spec, "spec.storageClassName")
    errs += _volume_mode(spec, "spec.volumeMode")
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in PV_RECLAIM_POLICIES:
        errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, PV_RECLAIM_POLICIES))
    errs += _volume_source(spec)
    return errs


def _go_resource_list(resources: dict[str, Any]) -> GoValue:
    if not resources:
        return GoValue("core.ResourceList(nil)")
    return GoValue("core.ResourceList{" + ", ".join(f'"{k}":resource.Quantity{{...}}' for k in sorted(resources)) + "}")


def _volume_source(spec: Obj) -> list[FieldError]:
    found = [s for s in PV_SOURCES if spec.get(s) is not None]
    if not found:
        return [required("spec", "must specify a volume type")]
    errs = [forbidden(f"spec.{s}", "may not specify more than 1 volume type") for s in found[1:]]
    source = spec[found[0]]
    if not isinstance(source, dict):
        return errs + [invalid(f"spec.{found[0]}", source, "must be an object")]
    for key in _SOURCE_NEEDS.get(found[0], ()):
        if not source.get(key):
            errs.append(required(f"spec.{found[0]}.{key}"))
    if found[0] == "local" and spec.get("nodeAffinity") is None:
        errs.append(required("spec.nodeAffinity", "Local volumes require node affinity"))
    return errs


def validate_persistent_volume_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    errs: list[FieldError] = []
    changed = [s for s in PV_SOURCES if new_spec.get(s) != old_spec.get(s)]
    if changed:
        errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation\n"
                                                             + _changed_fields(changed)))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        errs.append(invalid("volumeMode", new_spec.get("volumeMode") or "", FIELD_IMMUTABLE))
    if old_spec.get("nodeAffinity") is not None and new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
        errs.append(invalid("nodeAffinity", GoValue("core.VolumeNodeAffinity{...}"), FIELD_IMMUTABLE))
    return errs


def _changed_fields(names: list[str]) -> str:
    return "changed: " + ", ".join(names)


# --------------------------------------------------------------------------- PersistentVolumeClaim


def validate_pvc_spec(spec: Any, path: str) -> list[FieldError]:
    """``ValidatePersistentVolumeClaimSpec`` (a claim, or a StatefulSet's claim template)."""
    if not isinstance(spec, dict):
        return [required(path)]
    errs = _access_modes(spec.get("accessModes"), f"{path}.accessModes", "at least 1 access mode is required")
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec["selector"], f"{path}.selector")
    resources: Obj = spec["resources"] if isinstance(spec.get("resources"), dict) else {}
    requests: Obj = resources["requests"] if isinstance(resources.get("requests"), dict) else {}
    if "storage" not in requests:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        errs += _positive_quantity(requests["storage"], f"{path}.resources[storage]")[:1]
    errs += _class_name(spec, f"{path}.storageClassName")
    errs += _volume_mode(spec, f"{path}.volumeMode")
    return errs


def validate_persistent_volume_claim(obj: Obj) -> list[FieldError]:
    return validate_pvc_spec(obj.get("spec"), "spec")


def _storage_request(spec: Obj) -> Any:
    return (((spec.get("resources") or {}).get("requests")) or {}).get("storage")


def validate_persistent_volume_claim_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec.get("volumeName")  # set once by the binder
        if old_spec["volumeName"] is None:
            old_spec.pop("volumeName")
            new_spec.pop("volumeName", None)
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName") is not None:
        # ``validateStorageClassUpgradeFromNil``: the retroactive default class may be written once
        old_class = ((old.get("metadata") or {}).get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class")
        if old_class is None or old_class == new_spec["storageClassName"]:
            old_spec["storageClassName"] = new_spec["storageClassName"]
    bound = (new.get("status") or {}).get("phase") == "Bound"
    fixed_new, fixed_old = _without_requests(new_spec, bound), _without_requests(old_spec, bound)
    errs: list[FieldError] = []
    if fixed_new != fixed_old:
        changed = sorted(k for k in set(fixed_new) | set(fixed_old) if fixed_new.get(k) != fixed_old.get(k))
        errs.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                      "volumeAttributesClassName for bound claims\n" + _changed_fields(changed)))
    new_size, old_size = quantity(_storage_request(new_spec)), quantity(_storage_request(old_spec))
    status_size = quantity(((old.get("status") or {}).get("capacity") or {}).get("storage") or 0)
    if new_size is not None and old_size is not None and status_size is not None and new_size < old_size \
            and new_size <= status_size:
        errs.append(forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
    return errs


def _without_requests(spec: Obj, bound: bool) -> Obj:
    out = dict(spec)
    if bound:
        out.pop("volumeAttributesClassName", None)
        resources = dict(out.get("resources") or {})
        requests = dict(resources.get("requests") or {})
        requests.pop("storage", None)
        resources["requests"] = requests
        out["resources"] = resources
    return out


# --------------------------------------------------------------------------- StorageClass


def validate_storage_class(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    provisioner = obj.get("provisioner")
    if not provisioner:
        errs.append(required("provisioner"))
    else:
        errs += qualified_errors(str(provisioner).lower(), "provisioner")
    params = obj.get("parameters") or {}
    if isinstance(params, dict):
        if len(params) > MAX_PARAMETERS:
            errs.append(FieldError("FieldValueTooLong", "parameters", f"must have at most {MAX_PARAMETERS} bytes"))
        else:
            errs += [invalid("parameters", k, "field can not be empty.") for k in params if not k]
            if sum(len(k) + len(str(v)) for k, v in params.items()) > MAX_PARAMETERS_SIZE:
                errs.append(too_long("parameters", MAX_PARAMETERS_SIZE))
    policy = obj.get("reclaimPolicy")
    if policy and policy not in CLASS_RECLAIM_POLICIES:
        errs.append(not_supported("reclaimPolicy", policy, CLASS_RECLAIM_POLICIES))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        errs.append(required("volumeBindingMode"))
    elif mode not in BINDING_MODES:
        errs.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
    return errs


def validate_storage_class_update(new: Obj, old: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    if (new.get("parameters") or None) != (old.get("parameters") or None):
        errs.append(forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(invalid("volumeBindingMode", new.get("volumeBindingMode") or "", FIELD_IMMUTABLE))
    return errs
