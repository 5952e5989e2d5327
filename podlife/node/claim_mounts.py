"""Mounting a pod's claims on a node, in the kubelet's words: shared by the kubelet and the simulator.

Before a node sets up a pod's sandbox, every volume that uses a claim must be usable:
Kubernetes' volume manager has its desired-state populator refuse a claim that is missing,
being deleted or not bound (``getPVCExtractPV``), or a volume not bound back to it
(``getPVSpec``); its reconciler refuses a volume whose node affinity does not admit the node;
``WaitForAttachAndMount`` sums the populator's errors up in the ``FailedMount`` event. The
kubelet (:mod:`podlife.kubelet.volumes`, which then mounts the volume's directory) and the
simulator (:mod:`podlife.sim.simulator`, which only "mounts") judge with these same pure
functions, so a pod waiting for its claim reads the same on both kinds of node.
"""

from __future__ import annotations

from typing import Any

from ..machinery.storage import ephemeral_claim_problem, is_claim_bound

Obj = dict[str, Any]


def claim_problem(pod: Obj, ephemeral: bool, claim: Obj | str, claim_name: str) -> str | None:
    """Why the populator cannot use ``claim`` for the pod's volume (a string: why it could not be
    read), or None when it can. An ``ephemeral`` volume's claim must be the pod's own."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    where = f"error processing PVC {namespace}/{claim_name}"
    if isinstance(claim, str):
        return f"{where}: failed to fetch PVC from API server: {claim}"
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        return f"{where}: PVC is being deleted"
    if (claim.get("status") or {}).get("phase") != "Bound":
        return f"{where}: PVC is not bound"
    if not is_claim_bound(claim):
        return f"{where}: PVC has empty pvc.Spec.VolumeName"
    return ephemeral_claim_problem(pod, claim) if ephemeral else None


def volume_problem(claim: Obj, pv: Obj | str) -> str | None:
    """Why the claim's bound volume cannot be used (a string: why it could not be read; or it is not
    bound back to the claim), or None when it can."""
    meta = claim.get("metadata") or {}
    where = f"error processing PVC {meta.get('namespace')}/{meta.get('name')}"
    name = str((claim.get("spec") or {}).get("volumeName") or "")
    if isinstance(pv, str):
        return f"{where}: failed to fetch PV {name} from API server: {pv}"
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        return (f"{where}: found PV object {name} but it has a nil pv.Spec.ClaimRef indicating it is not yet "
                "bound to the claim")
    if ref.get("uid") != meta.get("uid"):
        return (f"{where}: found PV object {name} but its pv.Spec.ClaimRef.UID {ref.get('uid') or ''} does not "
                f"point to claim.UID {meta.get('uid')}")
    return None


def _go_list(names: list[str]) -> str:
    """A list of names as Go's ``%v`` prints a ``[]string``."""
    return "[" + " ".join(sorted(names)) + "]"


def unable_to_mount(unmounted: list[str], unprocessed: list[str], errors: list[str]) -> str:
    """The kubelet's ``FailedMount`` event when volumes could not be processed (``WaitForAttachAndMount``)."""
    return (f"Unable to attach or mount volumes: unmounted volumes={_go_list(unmounted)}, unattached volumes=[], "
            f"failed to process volumes={_go_list(unprocessed)}: {'; '.join(errors)}")


def node_affinity_failed(pv_name: str) -> str:
    """The reconciler's ``FailedMount`` event for a volume whose node affinity does not admit the node."""
    return f'MountVolume.NodeAffinity check failed for volume "{pv_name}" : no matching NodeSelectorTerms'
