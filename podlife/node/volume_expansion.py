"""The node's half of a volume expansion: finishing it once the volume is mounted.

Design
------
Growing a claim is done in two halves, as in Kubernetes with ``RecoverVolumeExpansionFailure``
(the default since 1.34). The controller half (``controllers/volume/expander.py``, the
external-resizer of podlife's driver) grows the volume and leaves the claim waiting for the
node::

    status.allocatedResources.storage:         <new size>
    status.allocatedResourceStatuses.storage:  NodeResizePending
    status.conditions:                         FileSystemResizePending True
    pv.spec.capacity.storage:                  <new size>

The node half runs where a pod mounts the volume (the kubelet's ``NodeExpander``, and the
simulator "mounting" on its nodes). There is no file system to grow in a directory of
:data:`~podlife.machinery.storage.LOCAL_PATH_DRIVER`, so finishing is only what the kubelet
writes when ``NodeExpandVolume`` succeeds (``MarkNodeExpansionFinishedWithRecovery``):
``status.capacity.storage`` becomes the PV's capacity, the ``storage`` entry of
``allocatedResourceStatuses`` goes (the map with it when it was the last), and the resize
conditions (``FileSystemResizePending``, ``Resizing``, ``ControllerResizeError``,
``NodeResizeError``) are dropped; then a ``FileSystemResizeSuccessful`` event on the pod and
on the claim.

What is here: the decision (:func:`needs_node_expansion`) and the status patch
(:func:`node_expansion_status_patch`) as pure functions, the events' words, and one async
write (:func:`finish_node_expansion`). The patch carries the claim's ``resourceVersion``, as
the kubelet's ``PatchPVCStatus`` does, so a claim that moved on meanwhile is a conflict (the
caller reads it again and decides again) rather than a lost write.

Left out: expansion failures (``NodeResizeInfeasible``, ``NodeResizeError``) -- a directory
cannot fail to grow -- and other drivers' volumes (no node plugin here can grow them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..client.base import PERSISTENT_VOLUME_CLAIMS, Client, Obj
from ..machinery.errors import ApiError
from ..machinery.storage import LOCAL_PATH_DRIVER, storage_bytes

#: the claim condition the controller half leaves until a node finishes the expansion
FILE_SYSTEM_RESIZE_PENDING = "FileSystemResizePending"
#: the resize conditions ``MergeResizeConditionOnPVC`` knows (the node's write drops them all)
RESIZE_CONDITIONS = frozenset({FILE_SYSTEM_RESIZE_PENDING, "Resizing", "ControllerResizeError", "NodeResizeError"})
#: ``status.allocatedResourceStatuses.storage`` values under which the node may expand
NODE_RESIZE_PENDING = "NodeResizePending"
NODE_RESIZE_IN_PROGRESS = "NodeResizeInProgress"
_NODE_MAY_EXPAND = frozenset({"", NODE_RESIZE_PENDING, NODE_RESIZE_IN_PROGRESS})

#: the events' reasons (``kevents.FileSystemResizeSuccess`` / ``FileSystemResizeFailed``)
FILE_SYSTEM_RESIZE_SUCCESSFUL = "FileSystemResizeSuccessful"
FILE_SYSTEM_RESIZE_FAILED = "FileSystemResizeFailed"


def expansion_succeeded_message(pv_name: str, node_name: str) -> str:
    """``MountVolume.NodeExpandVolume succeeded for volume "<pv>" <node>`` (the kubelet's ``GenerateMsg``)."""
    return f'MountVolume.NodeExpandVolume succeeded for volume "{pv_name}" {node_name}'


def expansion_read_only_message(pv_name: str) -> str:
    """What the kubelet says instead of expanding a volume the pod mounts read-only."""
    return f'MountVolume.NodeExpandVolume failed for volume "{pv_name}" requested read-only file system'


def _resize_status(claim: Mapping[str, Any]) -> str:
    statuses = (claim.get("status") or {}).get("allocatedResourceStatuses") or {}
    return str(statuses.get("storage") or "") if isinstance(statuses, Mapping) else ""


def _is_local_path_volume(pv: Mapping[str, Any]) -> bool:
    return ((pv.get("spec") or {}).get("csi") or {}).get("driver") == LOCAL_PATH_DRIVER


def needs_node_expansion(claim: Mapping[str, Any], pv: Mapping[str, Any]) -> bool:
    """Whether a node mounting ``pv`` for ``claim`` must finish an expansion.

    The kubelet's test (``expandVolumeDuringMount``, ``NodeExpander.runPreCheck``): the claim
    is Bound to this volume, the volume's ``spec.capacity.storage`` is larger than the claim's
    ``status.capacity.storage``, and the resize status is one under which the node may go on
    (none, ``NodeResizePending``, ``NodeResizeInProgress``: not while the controller is still
    at it). Only podlife's node-local driver can expand on a node. A claim without
    ``status.capacity`` has not been bound fully yet (the binder writes it with the phase): no.
    """
    claim_status = claim.get("status") or {}
    pv_name = str((pv.get("metadata") or {}).get("name") or "")
    if claim_status.get("phase") != "Bound" or (claim.get("spec") or {}).get("volumeName") != pv_name:
        return False
    if not _is_local_path_volume(pv) or "storage" not in (claim_status.get("capacity") or {}):
        return False
    pv_capacity = storage_bytes((pv.get("spec") or {}).get("capacity"))
    if pv_capacity <= storage_bytes(claim_status.get("capacity")):
        return False
    return _resize_status(claim) in _NODE_MAY_EXPAND


def node_expansion_status_patch(claim: Mapping[str, Any], pv: Mapping[str, Any]) -> Obj:
    """The merge patch of the claim's status subresource that finishes the expansion.

    ``status.capacity.storage`` = the PV's capacity (the quantity as the PV writes it), the
    ``storage`` resize status removed (the whole map when nothing else is in it), the resize
    conditions removed (the others kept, in order), and ``metadata.resourceVersion`` as the
    precondition.
    """
    status = claim.get("status") or {}
    pv_capacity = ((pv.get("spec") or {}).get("capacity") or {}).get("storage")
    patch_status: Obj = {"capacity": {"storage": pv_capacity}}
    statuses = status.get("allocatedResourceStatuses") or {}
    if "storage" in statuses:
        others = {k: v for k, v in statuses.items() if k != "storage"}
        patch_status["allocatedResourceStatuses"] = {"storage": None} if others else None
    conditions = list(status.get("conditions") or [])
    kept = [c for c in conditions if c.get("type") not in RESIZE_CONDITIONS]
    if len(kept) != len(conditions):
        patch_status["conditions"] = kept or None
    patch: Obj = {"status": patch_status}
    if version := (claim.get("metadata") or {}).get("resourceVersion"):
        patch["metadata"] = {"resourceVersion": version}
    return patch


async def finish_node_expansion(client: Client, claim: Mapping[str, Any], pv: Mapping[str, Any]) -> bool:
    """Write :func:`node_expansion_status_patch` to the claim's status; False on a conflict
    (the claim moved on: read it again, ask :func:`needs_node_expansion` again). Other API
    errors are raised."""
    meta = claim.get("metadata") or {}
    try:
        await client.patch(PERSISTENT_VOLUME_CLAIMS, str(meta.get("name") or ""), node_expansion_status_patch(claim, pv),
                           str(meta.get("namespace") or "default"), subresource="status")
    except ApiError as exc:
        if exc.code == 409:
            return False
        raise
    return True


__all__ = [
    "FILE_SYSTEM_RESIZE_FAILED", "FILE_SYSTEM_RESIZE_PENDING", "FILE_SYSTEM_RESIZE_SUCCESSFUL", "NODE_RESIZE_IN_PROGRESS",
    "NODE_RESIZE_PENDING", "RESIZE_CONDITIONS", "expansion_read_only_message", "expansion_succeeded_message",
    "finish_node_expansion", "needs_node_expansion", "node_expansion_status_patch",
]
