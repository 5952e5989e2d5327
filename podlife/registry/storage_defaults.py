"""The storage objects a cluster starts with: the ``local-path`` StorageClass and its CSIDriver.

k3s ships Rancher's local-path provisioner with a StorageClass ``local-path`` that is the
cluster's default; podlife does the same with its own node-local driver
(:data:`~podlife.machinery.storage.LOCAL_PATH_DRIVER`, which provisions a directory per
volume on the node of the claim's first pod):

- StorageClass ``local-path``: annotated ``storageclass.kubernetes.io/is-default-class:
  "true"``, provisioner the driver, ``reclaimPolicy: Delete``, ``volumeBindingMode:
  WaitForFirstConsumer`` (the volume is made where the scheduler placed the pod) and
  ``allowVolumeExpansion: true``;
- CSIDriver of the driver, as a node-local driver registers itself: nothing to attach
  (``attachRequired: false``), the pod's identity given to the mount
  (``podInfoOnMount: true``), ``Persistent`` volumes only, no capacity tracking, the
  ``fsGroup`` applied to the files (``fsGroupPolicy: File``), no republishing, no SELinux
  mount option (every field spelled out, so ``kubectl describe`` reads as on a cluster
  that runs such a driver; the rest are ``CSIDriverSpec``'s defaults).

What happens at start (:func:`ensure_storage_defaults`, called by ``Cluster.start`` unless
``--no-default-storage-class``), and why: nothing that exists is ever changed, so a user's
edit (another default class, a different reclaim policy) survives restarts. The CSIDriver
is the driver's own registration and is created whenever it is missing. The class is
created only on a cluster's first start -- when neither it nor the CSIDriver exists yet --
so a user who deleted ``local-path`` (to have another default, or none) does not get it
back on the next restart. (k3s re-applies its manifests at every start unless told
``--disable local-storage``; podlife keeps the user's deletion instead, and
``--no-default-storage-class`` is its ``--disable``.) When another class is already the
default at that first start (a data directory from before this default existed),
``local-path`` is created without the default annotation: two defaults would make the
newest -- ours -- win over the user's choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..client.base import CSI_DRIVERS, STORAGE_CLASSES, Client, Resource
from ..machinery.errors import ApiError
from ..machinery.storage import ANN_DEFAULT_CLASS, LOCAL_PATH_CLASS, LOCAL_PATH_DRIVER, default_class
from .types import Obj

STORAGE_API_VERSION = "storage.k8s.io/v1"


def local_path_storage_class(*, default: bool = True) -> Obj:
    """The ``local-path`` StorageClass (the cluster's default one unless ``default`` is False)."""
    metadata: Obj = {"name": LOCAL_PATH_CLASS}
    if default:
        metadata["annotations"] = {ANN_DEFAULT_CLASS: "true"}
    return {"apiVersion": STORAGE_API_VERSION, "kind": "StorageClass", "metadata": metadata,
            "provisioner": LOCAL_PATH_DRIVER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}


def local_path_csi_driver() -> Obj:
    """The CSIDriver of podlife's node-local driver."""
    return {"apiVersion": STORAGE_API_VERSION, "kind": "CSIDriver", "metadata": {"name": LOCAL_PATH_DRIVER},
            "spec": {"attachRequired": False, "podInfoOnMount": True, "volumeLifecycleModes": ["Persistent"],
                     "storageCapacity": False, "fsGroupPolicy": "File", "requiresRepublish": False,
                     "seLinuxMount": False}}


def class_to_create(driver_exists: bool, class_exists: bool,
                    classes: Iterable[Mapping[str, Any]]) -> Obj | None:
    """The StorageClass to create at start, or None (see the module docstring: first start only)."""
    if driver_exists or class_exists:
        return None
    return local_path_storage_class(default=default_class(classes) is None)


async def _exists(client: Client, res: Resource, name: str) -> bool:
    try:
        await client.get(res, name)
    except ApiError as exc:
        if exc.code != 404:
            raise
        return False
    return True


async def _create(client: Client, res: Resource, obj: Obj) -> bool:
    """Create ``obj``; False when another writer made it first."""
    try:
        await client.create(res, obj)
    except ApiError as exc:
        if exc.code != 409:
            raise
        return False
    return True


async def ensure_storage_defaults(client: Client) -> list[str]:
    """Create the default StorageClass (first start only) and the CSIDriver (when missing).

    Returns the kinds and names created (``StorageClass/local-path``, ``CSIDriver/...``).
    """
    created: list[str] = []
    driver_exists = await _exists(client, CSI_DRIVERS, LOCAL_PATH_DRIVER)
    class_exists = await _exists(client, STORAGE_CLASSES, LOCAL_PATH_CLASS)
    classes = [] if driver_exists or class_exists else (await client.list(STORAGE_CLASSES)).get("items") or []
    storage_class = class_to_create(driver_exists, class_exists, classes)
    if storage_class is not None and await _create(client, STORAGE_CLASSES, storage_class):
        created.append(f"StorageClass/{LOCAL_PATH_CLASS}")
    if not driver_exists and await _create(client, CSI_DRIVERS, local_path_csi_driver()):
        created.append(f"CSIDriver/{LOCAL_PATH_DRIVER}")
    return created
