"""The controller manager: the controllers around pods, started together on shared informers.

kube-controller-manager in one class. What it runs: every controller of
:data:`CONTROLLERS` that ``--controllers`` enables (:class:`ControllerManagerOptions`),
each built from a :class:`ControllerContext` -- its own client (its service account, as
``--use-service-account-credentials`` gives each controller in Kubernetes, so RBAC and
the audit log name who did what), the one :class:`SharedInformers` (one watch per
resource for all of them) and the options.

Leader election: with ``--leader-elect`` (the default) the controllers start only once
this process holds the Lease ``kube-system/kube-controller-manager``
(:class:`~podlife.client.leaderelection.LeaderElector`), and stop when it loses it, so
two podlife servers on one store never both act; without it they start at once.

Each controller class takes the context and has ``async run()``; it waits for the
informers it uses to sync before its workers start.
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
from ..client.shared_informers import SharedInformers
from ..machinery.tasks import Supervisor
from .options import ControllerManagerOptions

log = logging.getLogger(__name__)

LEADER_LEASE = "kube-controller-manager"
LEADER_NAMESPACE = "kube-system"

#: ``--controllers`` name -> (module, class, service account the controller acts as), in start order
CONTROLLERS: dict[str, tuple[str, str, str]] = {
    "nodelifecycle": ("node_lifecycle", "NodeLifecycleController", "node-controller"),
    "taint-eviction-controller": ("taint_eviction", "TaintEvictionController", "node-controller"),
    "podgc": ("podgc", "PodGCController", "pod-garbage-collector"),
    "replicaset": ("replicaset", "ReplicaSetController", "replicaset-controller"),
    "replicationcontroller": ("replicaset", "ReplicationControllerController", "replication-controller"),
    "deployment": ("deployment", "DeploymentController", "deployment-controller"),
    "job": ("job", "JobController", "job-controller"),
    "cronjob": ("cronjob", "CronJobController", "cronjob-controller"),
    "ttl-after-finished": ("ttl_after_finished", "TTLAfterFinishedController", "ttl-after-finished-controller"),
    "daemonset": ("daemonset", "DaemonSetController", "daemon-set-controller"),
    "statefulset": ("statefulset", "StatefulSetController", "statefulset-controller"),
    "resourcequota": ("resource_quota", "ResourceQuotaController", "resourcequota-controller"),
    "disruption": ("disruption", "DisruptionController", "disruption-controller"),
}


@dataclass
class ControllerContext:
    """What a controller is built from."""

    #: the controller's own client (writes as its service account)
    client: Client
    informers: SharedInformers
    options: ControllerManagerOptions
    #: the component name its Events carry (``replicaset-controller``, ...)
    component: str

    def recorder(self) -> EventRecorder:
        return EventRecorder(self.client, self.component)


def _controller_class(module: str, cls: str) -> Any:
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def _identity() -> str:
    """A candidate's identity, as kube-controller-manager's: host name and a unique suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class ControllerManager:
    def __init__(self, client_for: Callable[[str], Client], informer_client: Client,
                 options: ControllerManagerOptions, *, lease_client: Client | None = None) -> None:
        """``client_for(service_account)``: each controller's client; ``informer_client``: the shared watches'."""
        self.client_for = client_for
        self.options = options
        self.informer_client = informer_client
        self.informers = SharedInformers(informer_client)
        self.lease_client = lease_client or informer_client
        self.identity = _identity()
        self.controllers: dict[str, Any] = {}

    def build(self) -> dict[str, Any]:
        """The enabled controllers, built afresh (not started) on fresh informers: each leadership term starts clean."""
        self.informers = SharedInformers(self.informer_client)
        self.controllers = {}
        for name, (module, cls, account) in CONTROLLERS.items():
            if not self.options.enabled(name):
                continue
            context = ControllerContext(self.client_for(account), self.informers, self.options, account)
            self.controllers[name] = _controller_class(module, cls)(context)
        return self.controllers

    async def run(self) -> None:
        if not self.options.leader_elect:
            await self._run_controllers()
            return
        from ..client.leaderelection import LeaderElector

        elector = LeaderElector(self.lease_client, LEADER_LEASE, LEADER_NAMESPACE, self.identity,
                                lease_duration=self.options.leader_elect_lease_duration,
                                renew_deadline=self.options.leader_elect_renew_deadline,
                                retry_period=self.options.leader_elect_retry_period)
        await elector.run(self._run_controllers)

    async def _run_controllers(self) -> None:
        """Run the controllers and their informers until cancelled (leadership lost or stop)."""
        self.build()
        tasks = Supervisor("controller manager", logger=log)
        tasks.start(self.informers.run(), "shared-informers")
        for name, controller in self.controllers.items():
            tasks.start(controller.run(), f"{name}-controller")
        log.info("controller manager %s (pid %d) runs %s", self.identity, os.getpid(), ", ".join(self.controllers))
        try:
            await tasks.wait()
        finally:
            await tasks.stop()
