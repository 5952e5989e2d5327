"""The client interface every component uses, whatever carries the requests.

Components (scheduler, kubelet, network controller, simulator, controllers) are
written against :class:`Client` only. Two implementations exist:

- :class:`podlife.client.http.HTTPClient` speaks HTTPS to any podlife (or Kubernetes)
  API server, so a component can run in its own process or on another host;
- :class:`podlife.api.local_client.LocalClient` calls the API server's REST layer in the
  same process -- same validation, admission, concurrency and watch semantics, minus
  the HTTP and JSON round trips. It is the fast path ``podlife up`` uses, not a back
  door: nothing it can do is impossible over HTTP.

Objects returned by ``get``/``list``/``create``/``update``/``patch``/``delete`` belong to
the caller. Objects delivered by ``watch`` may be shared with other readers: treat
them as read-only (as with informer caches in client-go).
"""

from __future__ import annotations

import builtins

import abc
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .own_writes import TrackingClient

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods", "Pod")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
PORTS = Resource("network.podlife.io", "v1", "ports", "Port")
SUBNETS = Resource("network.podlife.io", "v1", "subnets", "Subnet")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False)
# what the controllers around pods read and write
REPLICA_SETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
REPLICATION_CONTROLLERS = Resource("", "v1", "replicationcontrollers", "ReplicationController")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
CONTROLLER_REVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
JOBS = Resource("batch", "v1", "jobs", "Job")
CRON_JOBS = Resource("batch", "v1", "cronjobs", "CronJob")
POD_DISRUPTION_BUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
RESOURCE_QUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota")
PERSISTENT_VOLUME_CLAIMS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
CSI_DRIVERS = Resource("storage.k8s.io", "v1", "csidrivers", "CSIDriver", namespaced=False)
CSI_NODES = Resource("storage.k8s.io", "v1", "csinodes", "CSINode", namespaced=False)


def one_version_each(resources: Iterable[Resource]) -> list[Resource]:
    """The first version of each group/resource: every version of a kind shares its objects."""
    seen: dict[tuple[str, str], Resource] = {}
    for r in resources:
        seen.setdefault((r.group, r.plural), r)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: Obj


class Client(abc.ABC):
    @abc.abstractmethod
    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj: ...

    @abc.abstractmethod
    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        """A ``<Kind>List`` with ``items`` and ``metadata.resourceVersion``."""

    @abc.abstractmethod
    def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str | None = None,
              timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (unset: the current state as ADDED first).

        Raises :class:`~podlife.machinery.errors.ApiError` 410 when the version is too old.
        """

    def subscribe(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                  field_selector: str | None = None,
                  on_event: Callable[[str, Obj], None]) -> Callable[[], None] | None:
        """Deliver the current state as ADDED, then every change, by calling ``on_event(type, obj)``.

        Only a client in the API server's own process can do this: it calls
        ``on_event`` synchronously as changes commit, and returns the function that
        ends the subscription. Other clients return None, and callers list and watch
        instead (what :class:`~podlife.client.informer.Informer` does). The objects are
        shared and read-only, as a watch's.
        """
        return None

    @abc.abstractmethod
    async def discover(self) -> builtins.list[Resource]:
        """Every kind the server serves now that can be listed, watched and deleted (one entry per version).

        Deletable, as Kubernetes' garbage collector, namespace controller and quota
        discover kinds (``SupportsAllVerbs``): read-only views such as podtraces are no
        objects those controllers own or clean up.

        Kinds that CustomResourceDefinitions add appear as soon as they are served, so
        controllers that act on "every kind" (namespace deletion, garbage collection)
        ask again when the set may have changed.
        """

    @abc.abstractmethod
    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj: ...

    @abc.abstractmethod
    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        """POST to a subresource such as ``pods/binding`` or ``pods/eviction``."""

    @abc.abstractmethod
    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        """PUT; fails with 409 when ``metadata.resourceVersion`` is stale."""

    @abc.abstractmethod
    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        """``patch_type``: merge, json or strategic."""

    @abc.abstractmethod
    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> Obj: ...

    async def close(self) -> None:  # noqa: B027
        """Release connections."""

    def tracking(self) -> TrackingClient:
        """This client, recording its writes so that their echoes can be skipped (:mod:`podlife.client.own_writes`)."""
        from .own_writes import TrackingClient

        return TrackingClient(self)
