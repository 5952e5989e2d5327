"""Controllers: the control loops that act on objects after the API has stored them.

Each controller is a client of the API like any other component (it works the same
over :class:`~podlife.api.local_client.LocalClient` or HTTP): informers feed a
:class:`~podlife.client.workqueue.WorkQueue` of keys, and workers reconcile one key at
a time from live reads, so every step is idempotent and safe to retry.

- :class:`NamespaceController` (:mod:`.namespace`) -- empties a namespace being
  deleted (every namespaced kind), reports progress in its status conditions, waits
  for graceful pod shutdown, then removes the ``kubernetes`` finalizer so the API
  server can remove the namespace.
- :class:`GarbageCollector` (:mod:`.garbage_collector`) -- keeps the owner -> dependents
  graph of ``metadata.ownerReferences``; deletes dependents whose owners are gone
  (Background), runs the ``foregroundDeletion`` finalizer (dependents first) and the
  ``orphan`` finalizer (dependents kept, references removed).
- :class:`ServiceAccountController` (:mod:`.serviceaccounts`) -- creates the
  ``default`` ServiceAccount of every namespace.
- :class:`RootCAPublisher` (:mod:`.root_ca`) -- keeps the ``kube-root-ca.crt``
  ConfigMap (the cluster CA bundle) in every namespace.
- :class:`APIServiceRegistration` (:mod:`.apiservice_registration`) -- the local
  APIService of every served group-version, built-in or from a CRD.
- :class:`ClusterRoleAggregationController` (:mod:`.clusterrole_aggregation`) -- the
  rules of ClusterRoles with an ``aggregationRule`` (admin, edit, view): the union of
  the ClusterRoles their selectors pick.
- :class:`EndpointsController` (:mod:`.endpoints`) -- the Endpoints of every Service
  with a selector: its Ready pods as addresses, the others as not ready.
- :class:`EndpointSliceController`, :class:`EndpointSliceMirroringController`
  (:mod:`.endpointslices`) -- the Services' EndpointSlices (ready/serving/terminating),
  and slices mirroring the Endpoints of Services without a selector.

The namespace controller and the garbage collector act on every served kind: they ask
the server (``Client.discover``), so kinds added by CRDs after start are included.
"""

from .apiservice_registration import APIServiceRegistration
from .clusterrole_aggregation import ClusterRoleAggregationController
from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController, EndpointSliceMirroringController
from .garbage_collector import GarbageCollector
from .namespace import NamespaceController
from .root_ca import RootCAPublisher
from .serviceaccounts import ServiceAccountController

__all__ = ["APIServiceRegistration", "ClusterRoleAggregationController", "EndpointSliceController",
           "EndpointSliceMirroringController", "EndpointsController", "GarbageCollector", "NamespaceController",
           "RootCAPublisher", "ServiceAccountController"]
