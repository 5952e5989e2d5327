"""The node-local provisioner of ``local-path.podlife.io``: a directory per volume on the claim's node.

podlife's storage is k3s' local-path provisioner with Kubernetes' CSI conventions: the
driver :data:`~podlife.machinery.storage.LOCAL_PATH_DRIVER` provisions a directory on one
node and a PersistentVolume pinned to that node. This module is the controller half of
such a driver, as external-provisioner runs it with ``--node-deployment``: one
:class:`LocalPathProvisioner` serves the nodes of its process (``podlife up``'s local
nodes; the simulator's nodes, which have no filesystem) and only those.

What it watches (informers, handlers only enqueue):

* PersistentVolumeClaims: a claim the PV controller handed to this driver (annotation
  ``volume.kubernetes.io/storage-provisioner``, or its beta name, naming the driver) that
  names no volume and is not being deleted is queued;
* PersistentVolumes provisioned by the driver: counted per node (to spread Immediate
  claims) and queued when they are to be reclaimed;
* StorageClasses: a class of this driver appearing queues the claims waiting for it;
* Nodes and CSINodes: a node of ours appearing, or its CSINode changing or going, queues
  that node for its CSINode.

What a claim's turn does (:func:`decide_claim`, pure): the claim qualifies when its class
exists with this driver as provisioner and no volume ``pvc-<claim uid>`` exists yet (so a
restart never provisions twice). ``WaitForFirstConsumer``: provision when the scheduler's
``volume.kubernetes.io/selected-node`` is one of our nodes. ``Immediate`` without a selected
node: *take* the claim by writing ``selected-node`` (one of ours: the fewest volumes of
ours, ties by name; simulated nodes in rotation) with a resourceVersion precondition -- a
conflict means another instance took it, and it is dropped -- then provision. Provisioning
refuses what a node-local directory cannot give (``volumeMode: Block``, ``ReadWriteMany``,
``ReadOnlyMany``) with a Warning ``ProvisioningFailed``; else it makes the directory
:func:`volume_path` (mode 0777; nothing on a simulated node) and the PV (:func:`volume_for`):
pre-bound to the claim (``claimRef`` with its uid; the PV controller completes the binding),
the claim's request, access and volume modes, the class's reclaim policy and mount options,
node affinity to the node, a CSI source carrying the directory. Events on the claim are
external-provisioner's: ``Provisioning``, ``ProvisioningSucceeded``, ``ProvisioningFailed``;
a failure is retried with backoff.

Reclaiming (:func:`decide_reclaim`, pure): a PV of this driver on one of our nodes whose
policy is ``Delete`` and which is ``Released`` (or being deleted and no longer bound) loses
its directory -- only a directory inside that node's storage directory is ever removed --,
then the ``external-provisioner.volume.kubernetes.io/finalizer`` (which the provisioner puts
on the PVs it may have to delete, as external-provisioner does), then the PV itself. A
failure is a Warning ``VolumeFailedDelete`` on the PV and a retry with backoff. ``Retain``
leaves both; a retained PV being deleted only loses the finalizer.

CSINodes (:func:`csinode_for`, pure): each of our nodes gets a CSINode named after it, owned
by its Node, listing the driver with ``nodeID`` the node and ``topologyKeys``
:data:`~podlife.machinery.storage.TOPOLOGY_KEY` (other drivers' entries are kept), as a
kubelet registers a node plugin. This runs on its own queue with a few workers, so a
thousand simulated nodes delay nothing else; a node not registered yet is done when its
Node appears (its informer event), never polled.

Cost: nothing here runs per pod; per claim or volume event one dict lookup decides whether
to queue, and node status updates reach no handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client.base import (CSI_NODES, NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES, Client,
                           Obj)
from ..client.events import EventRecorder
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.storage import (ANN_BETA_STORAGE_PROVISIONER, ANN_PROVISIONED_BY, ANN_SELECTED_NODE,
                                 ANN_STORAGE_PROVISIONER, LOCAL_PATH_DRIVER, PATH_ATTRIBUTE, TOPOLOGY_KEY,
                                 claim_class, claim_ref, volume_mode)
from ..machinery.tasks import Supervisor

log = logging.getLogger(__name__)

#: what external-provisioner puts on the PVs it provisions with reclaim policy Delete
PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
#: the CSI volume attribute naming the provisioner instance (external-provisioner's)
PROVISIONER_IDENTITY_ATTRIBUTE = "storage.kubernetes.io/csiProvisionerIdentity"
#: where a simulated node's volumes "are": recorded in the PV, never touched
SIMULATED_ROOT = Path("/var/lib/podlife-sim/local-path")
#: access modes a directory on one node cannot give
UNSUPPORTED_ACCESS_MODES = ("ReadWriteMany", "ReadOnlyMany")
#: workers of the claim/volume queue and of the CSINode queue
WORKERS = 16
CSINODE_WORKERS = 4

_CLAIM = "claim:"
_VOLUME = "volume:"


def volume_path(storage_dir: Path, pv_name: str, namespace: str, claim: str) -> Path:
    """The directory of a volume on its node: ``<dir>/<pv>_<namespace>_<claim>`` (k3s' naming)."""
    return storage_dir / f"{pv_name}_{namespace}_{claim}"


def volume_name(claim: Mapping[str, Any]) -> str:
    """The PV provisioned for a claim: ``pvc-<claim uid>`` (external-provisioner's name)."""
    return f"pvc-{(claim.get('metadata') or {}).get('uid')}"


# --------------------------------------------------------------------------- pure decisions


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def wants_provisioning(claim: Mapping[str, Any]) -> bool:
    """The PV controller asked this driver for the claim, which is unbound and not being deleted."""
    annotations = _annotations(claim)
    return (LOCAL_PATH_DRIVER in (annotations.get(ANN_STORAGE_PROVISIONER), annotations.get(ANN_BETA_STORAGE_PROVISIONER))
            and not (claim.get("spec") or {}).get("volumeName")
            and not (claim.get("metadata") or {}).get("deletionTimestamp"))


def is_wait_for_first_consumer(storage_class: Mapping[str, Any]) -> bool:
    return storage_class.get("volumeBindingMode") == "WaitForFirstConsumer"


def unsupported(claim: Mapping[str, Any]) -> str | None:
    """Why a node-local directory cannot serve the claim, or None when it can."""
    if volume_mode(claim) == "Block":
        return "volumeMode Block is not supported: local-path volumes are directories (volumeMode Filesystem)"
    for mode in (claim.get("spec") or {}).get("accessModes") or ():
        if mode in UNSUPPORTED_ACCESS_MODES:
            return (f"access mode {mode} is not supported: a local-path volume is a directory on one node "
                    f"(ReadWriteOnce, ReadWriteOncePod)")
    if not _requested(claim):
        return "the claim requests no storage (spec.resources.requests.storage)"
    return None


def _requested(claim: Mapping[str, Any]) -> Any:
    """The claim's storage request as written (a quantity string), or None."""
    return ((((claim.get("spec") or {}).get("resources") or {}).get("requests")) or {}).get("storage")


@dataclass(frozen=True)
class Skip:
    """Nothing to do now (``why`` for the logs)."""

    why: str


@dataclass(frozen=True)
class Take:
    """An Immediate claim no node was chosen for: write ``selected-node`` = ``node``, then provision."""

    node: str


@dataclass(frozen=True)
class Provision:
    node: str


@dataclass(frozen=True)
class Refuse:
    """The claim is ours to provision (on ``node``) but cannot be served: ``ProvisioningFailed``."""

    node: str
    message: str


ClaimDecision = Skip | Take | Provision | Refuse


def decide_claim(claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None, volume_exists: bool,
                 my_nodes: Iterable[str], choose: Any = None) -> ClaimDecision:
    """What this provisioner does with a claim (module docstring).

    ``volume_exists``: a PV ``pvc-<claim uid>`` is known. ``choose``: a callable giving the node an
    Immediate claim is taken for (:func:`choose_node`); without it such claims are skipped.
    """
    if not wants_provisioning(claim):
        return Skip("not asked for, bound or being deleted")
    if storage_class is None:
        return Skip(f"storage class {claim_class(claim)!r} not found")
    if storage_class.get("provisioner") != LOCAL_PATH_DRIVER:
        return Skip(f"storage class {claim_class(claim)!r} is another provisioner's")
    if volume_exists:
        return Skip("provisioned already")
    nodes = set(my_nodes)
    selected = _annotations(claim).get(ANN_SELECTED_NODE)
    if selected:
        if selected not in nodes:
            return Skip(f"selected node {selected} is not one of ours")
        why = unsupported(claim)
        return Refuse(str(selected), why) if why else Provision(str(selected))
    if is_wait_for_first_consumer(storage_class):
        return Skip("waiting for the scheduler to select a node")
    if choose is None or not nodes:
        return Skip("no node to take the claim for")
    return Take(str(choose()))


def choose_node(nodes: Sequence[str], load: Mapping[str, int], *, simulated: bool = False, turn: int = 0) -> str:
    """The node an Immediate claim is taken for: the fewest volumes (ties: name order); for simulated
    nodes, the ``turn``-th in name order (rotation: no scan of a thousand nodes per claim)."""
    ordered = sorted(nodes)
    if simulated:
        return ordered[turn % len(ordered)]
    return min(ordered, key=lambda name: (load.get(name, 0), name))


def reclaim_policy(storage_class: Mapping[str, Any]) -> str:
    return str(storage_class.get("reclaimPolicy") or "Delete")


def node_affinity(node: str) -> Obj:
    return {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [node]}]}]}}


def volume_for(claim: Mapping[str, Any], storage_class: Mapping[str, Any], node: str, path: Path,
               identity: str) -> Obj:
    """The PV provisioned for ``claim`` on ``node``, its directory ``path`` (module docstring)."""
    spec = claim.get("spec") or {}
    name = volume_name(claim)
    policy = reclaim_policy(storage_class)
    metadata: Obj = {"name": name, "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_DRIVER}}
    if policy == "Delete":
        metadata["finalizers"] = [PROVISIONER_FINALIZER]
    pv_spec: Obj = {
        "capacity": {"storage": _requested(claim)},
        "csi": {"driver": LOCAL_PATH_DRIVER, "volumeHandle": name,
                "volumeAttributes": {PATH_ATTRIBUTE: str(path), PROVISIONER_IDENTITY_ATTRIBUTE: identity}},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "claimRef": claim_ref(claim),
        "persistentVolumeReclaimPolicy": policy,
        "storageClassName": (storage_class.get("metadata") or {}).get("name"),
        "volumeMode": volume_mode(claim),
        "nodeAffinity": node_affinity(node),
    }
    if storage_class.get("mountOptions"):
        pv_spec["mountOptions"] = list(storage_class["mountOptions"])
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": pv_spec}


def volume_node(volume: Mapping[str, Any]) -> str | None:
    """The node a volume of this driver is pinned to (its node affinity's hostname), or None."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    for term in required.get("nodeSelectorTerms") or ():
        for expression in term.get("matchExpressions") or ():
            if (expression.get("key") == TOPOLOGY_KEY and expression.get("operator") == "In"
                    and len(expression.get("values") or ()) == 1):
                return str(expression["values"][0])
    return None


def is_ours(volume: Mapping[str, Any]) -> bool:
    return _annotations(volume).get(ANN_PROVISIONED_BY) == LOCAL_PATH_DRIVER


def volume_directory(volume: Mapping[str, Any]) -> str:
    csi = (volume.get("spec") or {}).get("csi") or {}
    return str((csi.get("volumeAttributes") or {}).get(PATH_ATTRIBUTE) or "")


@dataclass(frozen=True)
class Reclaim:
    """What reclaiming a volume takes: remove its directory (when ``remove_directory``), drop the
    finalizer (when it has it), delete the PV (when it is not being deleted already)."""

    node: str
    remove_directory: bool
    remove_finalizer: bool
    delete_volume: bool


def decide_reclaim(volume: Mapping[str, Any], my_nodes: Iterable[str]) -> Reclaim | None:
    """Whether and how this provisioner reclaims ``volume`` (module docstring); None: nothing to do."""
    if not is_ours(volume):
        return None
    node = volume_node(volume)
    if node is None or node not in set(my_nodes):
        return None
    meta = volume.get("metadata") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    has_finalizer = PROVISIONER_FINALIZER in (meta.get("finalizers") or ())
    phase = (volume.get("status") or {}).get("phase")
    if (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete":
        if deleting and has_finalizer:  # retained: the directory stays, the PV may go
            return Reclaim(node, remove_directory=False, remove_finalizer=True, delete_volume=False)
        return None
    if phase == "Released" or (deleting and phase != "Bound"):
        return Reclaim(node, remove_directory=True, remove_finalizer=has_finalizer, delete_volume=not deleting)
    return None


def removable_directory(path: str, storage_dir: Path) -> Path | None:
    """``path`` when it is strictly inside ``storage_dir`` (resolved: no ``..`` or symlink out), else None."""
    if not path:
        return None
    root = storage_dir.resolve()
    target = Path(os.path.normpath(path))
    if not target.is_absolute():
        return None
    resolved = target.parent.resolve() / target.name  # the directory itself may be a symlink: never followed
    if resolved.parent != root or target.name in ("", ".", ".."):
        return None
    return resolved


def csinode_driver(node: str) -> Obj:
    return {"name": LOCAL_PATH_DRIVER, "nodeID": node, "topologyKeys": [TOPOLOGY_KEY]}


def node_owner(node: Mapping[str, Any]) -> Obj:
    meta = node.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Node", "name": meta.get("name"), "uid": meta.get("uid")}


def csinode_for(node: Mapping[str, Any], existing: Mapping[str, Any] | None) -> Obj | None:
    """The CSINode to write for ``node`` (create when ``existing`` is None, else update), or None when
    ``existing`` lists the driver as it should and is owned by this Node."""
    name = str((node.get("metadata") or {}).get("name") or "")
    owner = node_owner(node)
    driver = csinode_driver(name)
    if existing is None:
        return {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                "metadata": {"name": name, "ownerReferences": [owner]}, "spec": {"drivers": [driver]}}
    meta = existing.get("metadata") or {}
    drivers = list((existing.get("spec") or {}).get("drivers") or [])
    refs = list(meta.get("ownerReferences") or [])
    node_refs = [r for r in refs if r.get("kind") == "Node" and r.get("apiVersion") == "v1"]
    ours = [d for d in drivers if d.get("name") == LOCAL_PATH_DRIVER]
    if ours == [driver] and any(r.get("uid") == owner["uid"] for r in node_refs):
        return None
    others = [d for d in drivers if d.get("name") != LOCAL_PATH_DRIVER]
    other_refs = [r for r in refs if r not in node_refs]
    updated = {**existing, "metadata": {**meta, "ownerReferences": [*other_refs, owner]},
               "spec": {**(existing.get("spec") or {}), "drivers": [*others, driver]}}
    return updated


# --------------------------------------------------------------------------- the provisioner


class LocalPathProvisioner:
    def __init__(self, client: Client, storage_dirs: Mapping[str, Path | None], *, identity: str = "") -> None:
        """storage_dirs: node name -> the directory volumes are made in on that node; None for a simulated
        node (API objects only, no filesystem)."""
        self.client = client
        self.storage_dirs = dict(storage_dirs)
        self.nodes = frozenset(self.storage_dirs)
        self.identity = identity
        component = f"{LOCAL_PATH_DRIVER}_{identity}" if identity else LOCAL_PATH_DRIVER
        self.events = EventRecorder(client, component)
        self.claims = Informer(client, PERSISTENT_VOLUME_CLAIMS)
        self.volumes = Informer(client, PERSISTENT_VOLUMES)
        self.classes = Informer(client, STORAGE_CLASSES)
        self.node_informer = Informer(client, NODES)
        self.csinodes = Informer(client, CSI_NODES)
        self.queue = WorkQueue(base_delay=0.5, max_delay=60.0)
        self.csinode_queue = WorkQueue(base_delay=0.5, max_delay=30.0)
        #: node -> names of the volumes of ours on it (what spreads Immediate claims)
        self.volumes_on: dict[str, set[str]] = {}
        #: PVs this instance created, until its informer has them (a lagging watch never doubles one)
        self._created: set[str] = set()
        self._turn = 0
        self._synced = asyncio.Event()
        self._tasks = Supervisor("local-path provisioner", logger=log)
        self.claims.add_handlers(self._on_claim, lambda old, new: self._on_claim(new))
        self.volumes.add_handlers(self._on_volume, self._on_volume_update, self._on_volume_deleted)
        self.classes.add_handlers(self._on_class, lambda old, new: self._on_class(new))
        self.node_informer.add_handlers(on_add=self._on_node)
        self.csinodes.add_handlers(self._on_node, lambda old, new: self._on_node(new), self._on_node)

    def __repr__(self) -> str:
        return f"<LocalPathProvisioner {len(self.nodes)} nodes>"

    # ---- running ----

    async def run(self) -> None:
        """Until cancelled."""
        informers = (self.classes, self.volumes, self.claims, self.node_informer, self.csinodes)
        try:
            for informer in informers:
                self._tasks.start(informer.run(), f"local-path-{informer.res.plural}")
            for informer in informers:
                await informer.wait_synced()
            for key, claim in list(self.claims.cache.items()):
                if wants_provisioning(claim):
                    self.queue.add(_CLAIM + key)
            for key in list(self.volumes.cache):
                self.queue.add(_VOLUME + key)
            for node in sorted(self.nodes):
                self.csinode_queue.add(node)
            self._synced.set()
            self._tasks.start(self.csinode_queue.run_workers(self._ensure_csinode, CSINODE_WORKERS),
                              "local-path-csinodes")
            await self.queue.run_workers(self._reconcile, WORKERS)
        finally:
            await self._tasks.stop()
            await self.events.flush()

    async def wait_synced(self) -> None:
        """Until the informers have listed and the queue holds what they found."""
        await self._synced.wait()

    # ---- handlers (only enqueue) ----

    def _on_claim(self, claim: Obj) -> None:
        if wants_provisioning(claim):
            self.queue.add(_CLAIM + object_key(claim))

    def _on_class(self, storage_class: Obj) -> None:
        if storage_class.get("provisioner") != LOCAL_PATH_DRIVER:
            return
        name = (storage_class.get("metadata") or {}).get("name")
        for key, claim in list(self.claims.cache.items()):  # a class appears rarely
            if claim_class(claim) == name and wants_provisioning(claim):
                self.queue.add(_CLAIM + key)

    def _count(self, volume: Obj, present: bool) -> str | None:
        """Keep :attr:`volumes_on`; the volume's node when it is ours on one of our nodes."""
        if not is_ours(volume):
            return None
        node = volume_node(volume)
        if node not in self.nodes:
            return None
        name = str((volume.get("metadata") or {}).get("name") or "")
        if present:
            self.volumes_on.setdefault(node, set()).add(name)
        else:
            self.volumes_on.get(node, set()).discard(name)
        return node

    def _on_volume(self, volume: Obj) -> None:
        if self._count(volume, True) is not None:
            self._created.discard(str(volume["metadata"].get("name")))
            if decide_reclaim(volume, self.nodes) is not None:
                self.queue.add(_VOLUME + object_key(volume))

    def _on_volume_update(self, old: Obj, new: Obj) -> None:
        self._on_volume(new)

    def _on_volume_deleted(self, volume: Obj) -> None:
        self._count(volume, False)

    def _on_node(self, obj: Obj) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if name in self.nodes:
            self.csinode_queue.add(str(name))

    # ---- claims and volumes ----

    async def _reconcile(self, key: str) -> None:
        if key.startswith(_CLAIM):
            await self._sync_claim(key.removeprefix(_CLAIM))
        else:
            await self._sync_volume(key.removeprefix(_VOLUME))

    def _volume_exists(self, claim: Obj) -> bool:
        name = volume_name(claim)
        return name in self._created or self.volumes.get(None, name) is not None

    def _choose(self) -> str:
        simulated = all(self.storage_dirs[n] is None for n in self.nodes)
        load = {node: len(self.volumes_on.get(node, ())) for node in self.nodes}
        node = choose_node(sorted(self.nodes), load, simulated=simulated, turn=self._turn)
        self._turn += 1
        return node

    async def _sync_claim(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        claim = self.claims.get(namespace, name)
        if claim is None:
            return
        storage_class = self.classes.get(None, claim_class(claim)) if claim_class(claim) else None
        decision = decide_claim(claim, storage_class, self._volume_exists(claim), self.nodes, self._choose)
        if isinstance(decision, Skip):
            return
        assert storage_class is not None
        if isinstance(decision, Take):
            taken = await self._take(claim, decision.node)
            if taken is None:
                return
            claim = taken
            why = unsupported(claim)
            decision = Refuse(decision.node, why) if why else Provision(decision.node)
        if isinstance(decision, Refuse):
            self._claim_event(claim, "Warning", "ProvisioningFailed",
                              _failed(storage_class, decision.message))
            return
        if isinstance(decision, Provision):
            await self._provision(claim, storage_class, decision.node)

    async def _take(self, claim: Obj, node: str) -> Obj | None:
        """Write ``selected-node`` with a resourceVersion precondition; None when another instance (or a
        change) came first: dropped, the claim's next event brings it back if it is still ours."""
        meta = claim["metadata"]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                              "annotations": {ANN_SELECTED_NODE: node}}}
        try:
            return await self.client.patch(PERSISTENT_VOLUME_CLAIMS, meta["name"], patch, meta.get("namespace"))
        except ApiError as exc:
            if exc.code in (404, 409):
                log.debug("claim %s/%s not taken for %s: %s", meta.get("namespace"), meta["name"], node, exc)
                return None
            raise

    def _directory(self, claim: Obj, node: str) -> tuple[Path, bool]:
        """The volume's directory and whether it is on a real node's filesystem."""
        meta = claim["metadata"]
        storage_dir = self.storage_dirs.get(node)
        root = storage_dir if storage_dir is not None else SIMULATED_ROOT / node
        return volume_path(root, volume_name(claim), meta.get("namespace", ""), meta["name"]), storage_dir is not None

    async def _provision(self, claim: Obj, storage_class: Obj, node: str) -> None:
        meta = claim["metadata"]
        self._claim_event(claim, "Normal", "Provisioning",
                          f'External provisioner is provisioning volume for claim "{meta.get("namespace")}/{meta["name"]}"')
        path, real = self._directory(claim, node)
        volume = volume_for(claim, storage_class, node, path, self.identity)
        name = volume["metadata"]["name"]
        self._created.add(name)  # until the informer has it (which may be before create returns)
        try:
            if real:
                await asyncio.to_thread(_make_directory, path)
            try:
                await self.client.create(PERSISTENT_VOLUMES, volume)
            except ApiError as exc:
                if exc.code != 409:  # 409: made already (by this instance, before a restart)
                    raise
        except Exception as exc:
            self._created.discard(name)
            self._claim_event(claim, "Warning", "ProvisioningFailed", _failed(storage_class, str(exc)))
            raise
        self._claim_event(claim, "Normal", "ProvisioningSucceeded",
                          f"Successfully provisioned volume {volume['metadata']['name']}")

    def _claim_event(self, claim: Obj, type_: str, reason: str, message: str) -> None:
        self.events.event({**claim, "kind": "PersistentVolumeClaim", "apiVersion": "v1"}, type_, reason, message)

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(None, name)
        if volume is None:
            return
        action = decide_reclaim(volume, self.nodes)
        if action is None:
            return
        try:
            await self._reclaim(volume, action)
        except Exception as exc:
            self.events.event({**volume, "kind": "PersistentVolume", "apiVersion": "v1"}, "Warning",
                              "VolumeFailedDelete", str(exc))
            raise

    async def _reclaim(self, volume: Obj, action: Reclaim) -> None:
        meta = volume["metadata"]
        storage_dir = self.storage_dirs.get(action.node)
        if action.remove_directory and storage_dir is not None:
            path = volume_directory(volume)
            target = removable_directory(path, storage_dir)
            if target is None:
                raise RuntimeError(f"refusing to remove {path!r}: not a directory inside the storage directory "
                                   f"{storage_dir} of node {action.node}")
            await asyncio.to_thread(_remove_directory, target)
        if action.remove_finalizer:
            finalizers = [f for f in meta.get("finalizers") or () if f != PROVISIONER_FINALIZER]
            await self._ignoring_gone(self.client.patch(
                PERSISTENT_VOLUMES, meta["name"],
                {"metadata": {"resourceVersion": meta.get("resourceVersion"), "finalizers": finalizers}}))
        if action.delete_volume and await self._ignoring_gone(self.client.delete(
                PERSISTENT_VOLUMES, meta["name"], preconditions={"uid": meta.get("uid")})):
            log.info("volume %s reclaimed on node %s", meta["name"], action.node)

    @staticmethod
    async def _ignoring_gone(request: Any) -> bool:
        """Send ``request``; False when its object is gone already (a second sync of a reclaimed volume)."""
        try:
            await request
        except ApiError as exc:
            if exc.code != 404:
                raise
            return False
        return True

    # ---- CSINodes ----

    async def _ensure_csinode(self, name: str) -> None:
        node = self.node_informer.get(None, name)
        if node is None:
            return  # not registered yet: its ADDED event brings it back
        wanted = csinode_for(node, self.csinodes.get(None, name))
        if wanted is None:
            return
        if (wanted.get("metadata") or {}).get("resourceVersion"):
            await self.client.update(CSI_NODES, wanted)
        else:
            await self.client.create(CSI_NODES, wanted)


def _failed(storage_class: Mapping[str, Any], why: str) -> str:
    """external-provisioner's ProvisioningFailed message."""
    return f'failed to provision volume with StorageClass "{(storage_class.get("metadata") or {}).get("name")}": {why}'


def _make_directory(path: Path) -> None:
    path.mkdir(mode=0o777, parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # mkdir's mode passes through the umask


def _remove_directory(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
