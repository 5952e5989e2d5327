"""The controller manager: every kube-controller-manager controller podlife has, started together on shared informers.

kube-controller-manager in one class. What it runs: every controller of
:data:`CONTROLLERS` that ``--controllers`` enables (:class:`ControllerManagerOptions`),
each built from a :class:`ControllerContext` -- its own client (its service account, as
``--use-service-account-credentials`` gives each controller in Kubernetes, so RBAC and
the audit log name who did what), the one :class:`SharedInformers` (one watch per
resource for all of them) and the options.

Leader election: with ``--leader-elect`` (the default) the controllers start only once
this process holds the Lease ``kube-system/kube-controller-manager``
(:class:`~podlife.client.leaderelection.LeaderElector`), and stop when it loses it, so
two podlife servers on one store never both act; without it they start at once. A
candidate's identity is its host name and a suffix: unique per process by default (as
kube-controller-manager's), or one the caller keeps stable across restarts of the same
server (``podlife up`` derives it from its data directory), so a server restarted after
a crash takes its own Lease back at once instead of waiting for it to expire.

Each controller class takes the context and has ``async run()``; it waits for the
informers it uses to sync before its workers start. A controller that cannot run with
what it was given raises :class:`ControllerDisabled` from its constructor and is left
out, as kube-controller-manager leaves out a controller whose start function says it is
disabled (the token controller without ``--service-account-private-key-file``).

Every controller kube-controller-manager runs that podlife has is here, under
kube-controller-manager's canonical ``--controllers`` name (``namespace-controller``,
``garbage-collector-controller``, ...; :data:`~.options.ALIASES` holds the older names)
and with the service account Kubernetes gives it (``namespace-controller``,
``generic-garbage-collector``, ``endpoint-controller``, ``root-ca-cert-publisher``, ...).
The service-account token controller is the exception, as in Kubernetes: it acts as
kube-controller-manager itself (:data:`OWN_IDENTITY`; its root client), since it makes
the very tokens service accounts authenticate with.

What they need beyond a client comes in the context, as kube-controller-manager's
flags give it: :attr:`ControllerContext.root_ca` (``--root-ca-file``: the CA bundle the
root CA publisher and the token controller hand out) and
:attr:`ControllerContext.token_generator` (what ``--service-account-private-key-file``
signs legacy tokens with); :attr:`ControllerContext.signing_cert` and ``signing_key``
(``--cluster-signing-cert-file``/``--cluster-signing-key-file``: the CA the CSR signer issues
certificates with); the options (``--max-endpoints-per-slice``, the
``--concurrent-*-syncs``, ...) in :attr:`ControllerContext.options`.

The API server's own loops (APIService registration, the ``kubernetes`` Service's
endpoint reconciler) are not here: they run as the API server, outside the election.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..client.base import Client
from ..client.events import EventRecorder
from ..client.leaderelection import LeaderElector
from ..client.shared_informers import SharedInformers
from ..machinery.tasks import Supervisor
from .options import ControllerManagerOptions

log = logging.getLogger(__name__)

LEADER_LEASE = "kube-controller-manager"
LEADER_NAMESPACE = "kube-system"

#: the registry's account for a controller that acts as kube-controller-manager itself (its root client)
OWN_IDENTITY: str | None = None

#: ``--controllers`` name (kube-controller-manager's canonical one) -> (module, class, service account the
#: controller acts as, or :data:`OWN_IDENTITY`), in start order
CONTROLLERS: dict[str, tuple[str, str, str | None]] = {
    "serviceaccount-token-controller": ("service_account_tokens", "TokensController", OWN_IDENTITY),
    "namespace-controller": ("namespace", "NamespaceController", "namespace-controller"),
    "garbage-collector-controller": ("garbage_collector", "GarbageCollector", "generic-garbage-collector"),
    "serviceaccount-controller": ("serviceaccounts", "ServiceAccountController", "service-account-controller"),
    "endpoints-controller": ("endpoints", "EndpointsController", "endpoint-controller"),
    "endpointslice-controller": ("endpointslices", "EndpointSliceController", "endpointslice-controller"),
    "endpointslice-mirroring-controller": ("endpointslices", "EndpointSliceMirroringController",
                                           "endpointslicemirroring-controller"),
    "clusterrole-aggregation-controller": ("clusterrole_aggregation", "ClusterRoleAggregationController",
                                           "clusterrole-aggregation-controller"),
    "root-ca-certificate-publisher-controller": ("root_ca", "RootCAPublisher", "root-ca-cert-publisher"),
    "token-cleaner-controller": ("token_cleaner", "TokenCleaner", "token-cleaner"),
    "bootstrap-signer-controller": ("bootstrap_signer", "BootstrapSigner", "bootstrap-signer"),
    "certificatesigningrequest-approving-controller": ("csr_approving", "CSRApprovingController",
                                                       "certificate-controller"),
    "certificatesigningrequest-signing-controller": ("csr_signing", "CSRSigningController", "certificate-controller"),
    "certificatesigningrequest-cleaner-controller": ("csr_cleaner", "CSRCleanerController", "certificate-controller"),
    "node-lifecycle-controller": ("node_lifecycle", "NodeLifecycleController", "node-controller"),
    "taint-eviction-controller": ("taint_eviction", "TaintEvictionController", "node-controller"),
    "pod-garbage-collector-controller": ("podgc", "PodGCController", "pod-garbage-collector"),
    "replicaset-controller": ("replicaset", "ReplicaSetController", "replicaset-controller"),
    "replicationcontroller-controller": ("replicaset", "ReplicationControllerController", "replication-controller"),
    "deployment-controller": ("deployment", "DeploymentController", "deployment-controller"),
    "job-controller": ("job", "JobController", "job-controller"),
    "cronjob-controller": ("cronjob", "CronJobController", "cronjob-controller"),
    "ttl-after-finished-controller": ("ttl_after_finished", "TTLAfterFinishedController", "ttl-after-finished-controller"),
    "daemonset-controller": ("daemonset", "DaemonSetController", "daemon-set-controller"),
    "statefulset-controller": ("statefulset", "StatefulSetController", "statefulset-controller"),
    "resourcequota-controller": ("resource_quota", "ResourceQuotaController", "resourcequota-controller"),
    "disruption-controller": ("disruption", "DisruptionController", "disruption-controller"),
    "persistentvolume-binder-controller": ("volume.binder", "PersistentVolumeBinder", "persistent-volume-binder"),
    "persistentvolume-protection-controller": ("volume.protection", "PVProtectionController",
                                               "pv-protection-controller"),
    "persistentvolumeclaim-protection-controller": ("volume.protection", "PVCProtectionController",
                                                    "pvc-protection-controller"),
    "persistentvolume-expander-controller": ("volume.expander", "VolumeExpander", "expand-controller"),
    "ephemeral-volume-controller": ("volume.ephemeral", "EphemeralVolumeController", "ephemeral-volume-controller"),
}

#: ``(namespace, account, account uid, secret name) -> token``: a legacy service-account token's signer
TokenGenerator = Callable[[str, str, str, str], str]


class ControllerDisabled(Exception):
    """Raised by a controller's constructor when it cannot run with this context (the reason is the message)."""


@dataclass
class ControllerContext:
    """What a controller is built from."""

    #: the controller's own client (writes as its service account)
    client: Client
    informers: SharedInformers
    options: ControllerManagerOptions
    #: the component name its Events carry (``replicaset-controller``, ...)
    component: str
    #: ``--root-ca-file``'s content: the CA bundle (PEM) published to namespaces and put in token Secrets
    root_ca: str = ""
    #: ``--service-account-private-key-file``'s signer of legacy tokens (None: the token controller is off)
    token_generator: TokenGenerator | None = None
    #: ``--cluster-signing-cert-file``/``--cluster-signing-key-file``'s content (PEM): the CA the CSR signer
    #: issues with (empty: the signer is off)
    signing_cert: bytes = b""
    signing_key: bytes = b""

    def recorder(self) -> EventRecorder:
        return EventRecorder(self.client, self.component)


def _controller_class(module: str, cls: str) -> Any:
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def candidate_identity(suffix: str | None = None) -> str:
    """A candidate's identity, as kube-controller-manager's: host name and a suffix (unique if none is given)."""
    return f"{socket.gethostname()}_{suffix or uuid.uuid4()}"


async def run_controllers(informers: SharedInformers, controllers: dict[str, Any], what: str = "controllers") -> None:
    """Run ``controllers`` (name -> built controller) and the informers they share, until cancelled."""
    tasks = Supervisor(what, logger=log)
    tasks.start(informers.run(), "shared-informers")
    for name, controller in controllers.items():
        tasks.start(controller.run(), name)
    try:
        await tasks.wait()
    finally:
        await tasks.stop()


class ControllerManager:
    def __init__(self, client_for: Callable[[str], Client], informer_client: Client,
                 options: ControllerManagerOptions, *, lease_client: Client | None = None, root_ca: str = "",
                 token_generator: TokenGenerator | None = None, identity: str | None = None,
                 signing_cert: bytes = b"", signing_key: bytes = b"") -> None:
        """``client_for(service_account)``: each controller's client; ``informer_client``: the shared watches'
        and the manager's own identity (:data:`OWN_IDENTITY`); ``root_ca``/``token_generator``/``signing_cert``/
        ``signing_key``: see :class:`ControllerContext`."""
        self.client_for = client_for
        self.options = options
        self.informer_client = informer_client
        self.informers = SharedInformers(informer_client)
        self.lease_client = lease_client or informer_client
        self.root_ca = root_ca
        self.token_generator = token_generator
        self.signing_cert, self.signing_key = signing_cert, signing_key
        self.identity = identity or candidate_identity()
        #: the controllers running now (empty while another manager leads)
        self.controllers: dict[str, Any] = {}

    def _context(self, account: str | None) -> ControllerContext:
        client = self.informer_client if account is None else self.client_for(account)  # None: OWN_IDENTITY
        return ControllerContext(client, self.informers, self.options, account or LEADER_LEASE,
                                 root_ca=self.root_ca, token_generator=self.token_generator,
                                 signing_cert=self.signing_cert, signing_key=self.signing_key)

    def build(self) -> dict[str, Any]:
        """The enabled controllers, built afresh (not started) on fresh informers: each leadership term starts clean."""
        self.informers = SharedInformers(self.informer_client)
        built: dict[str, Any] = {}
        for name, (module, cls, account) in CONTROLLERS.items():
            if not self.options.enabled(name):
                continue
            try:
                built[name] = _controller_class(module, cls)(self._context(account))
            except ControllerDisabled as why:
                log.warning("%s is disabled: %s", name, why)
        self.controllers = built
        return built

    async def run(self) -> None:
        if not self.options.leader_elect:
            await self._run_controllers()
            return
        elector = LeaderElector(self.lease_client, LEADER_LEASE, LEADER_NAMESPACE, self.identity,
                                lease_duration=self.options.leader_elect_lease_duration,
                                renew_deadline=self.options.leader_elect_renew_deadline,
                                retry_period=self.options.leader_elect_retry_period)
        await elector.run(self._run_controllers)

    async def _run_controllers(self) -> None:
        """Run the controllers and their informers until cancelled (leadership lost or stop)."""
        controllers = self.build()
        log.info("controller manager %s (pid %d) runs %s", self.identity, os.getpid(), ", ".join(controllers))
        try:
            await run_controllers(self.informers, controllers, "controller manager")
        finally:
            self.controllers = {}
