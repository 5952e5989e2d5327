"""An embedded cluster: every component of podlife in one process.

``podlife up`` is this class. Start order matters and follows the seeds:

1. certificates, token and store (SQLite in the data directory);
2. the API (watch caches filled from the store, system namespaces created);
3. the host's ``unreachable`` routes for the pod and service ranges, *before* any
   pod can get an address (network safety);
4. the HTTPS server, then the kubeconfig (written before ``/readyz`` turns ready);
5. the controllers (scheduler, network controller) and the nodes (kubelets, each
   with its own process runtime), all talking to the API through the in-process
   client;
6. ``/readyz`` answers ok.

Stopping runs it backwards; every pod process a kubelet started is stopped, and the
routes are removed.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api.authn import AuthenticationOptions
from .api.context import build_api
from .api.pki import PKI, write_kubeconfig
from .api.rest import ApiContext
from .api.server import APIServer
from .api.audit import AuditLog, load_policy
from .api.pod_security import NamespacePolicy
from .api.authz.bootstrap import ensure_bootstrap_policy
from .api.local_client import LocalClient
from .machinery.tasks import Supervisor
from .store import SQLiteStore, Store
from .store.memory import MemoryStore

log = logging.getLogger(__name__)

DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


def default_node_name() -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.") or "node"
    return name[:63]


@dataclass
class ClusterConfig:
    data_dir: Path = Path(".podlife")
    host: str = "127.0.0.1"
    port: int = 6443
    nodes: int = 1
    sim_nodes: int = 0
    sim_stages: Path | None = None
    in_memory: bool = False
    pod_cidr: str = DEFAULT_POD_CIDR
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_name: str = field(default_factory=default_node_name)
    guard_routes: bool = True
    kubelet_options: dict[str, Any] = field(default_factory=dict)
    #: ``--pod-security-default``: the PodSecurity level enforced in namespaces without labels
    pod_security_default: str = "baseline"
    #: ``--audit-log-path``/``--audit-policy-file``: the audit log (none without a path)
    audit_log_path: Path | None = None
    audit_policy_file: Path | None = None
    #: ``--token-auth-file``: static bearer tokens, CSV ``token,user,uid,"group1,group2"``
    token_auth_file: Path | None = None


class Cluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.pki = PKI(self.data_dir / "pki")
        self.store: Store | None = None
        self.ctx: ApiContext | None = None
        self.server: APIServer | None = None
        self.client: LocalClient | None = None
        self.kubelets: list[Any] = []
        #: the control-plane components (controllers, scheduler, network controller)
        self.components = Supervisor("cluster", logger=log)
        self.route_guard: Any = None
        self.url = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def node_names(self) -> list[str]:
        base = self.config.node_name
        return [base] if self.config.nodes == 1 else [f"{base}-{i}" for i in range(1, self.config.nodes + 1)]

    async def start(self) -> str:
        cfg = self.config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki.ensure([cfg.host])
        token = self.pki.token()
        self.store = MemoryStore() if cfg.in_memory else SQLiteStore(self.data_dir / "store.sqlite")
        await self.store.start()
        self.ctx = await build_api(self.store)
        self.ctx.pod_security_defaults = NamespacePolicy(enforce=cfg.pod_security_default)
        self.client = LocalClient(self.ctx, shared_results=True)  # components only read what writes return
        await ensure_bootstrap_policy(self.client)  # kube-apiserver's rbac/bootstrap-roles, before anyone asks
        authentication = AuthenticationOptions(client_ca_file=self.pki.ca_cert, token_auth_file=cfg.token_auth_file)
        audit = AuditLog(cfg.audit_log_path, load_policy(cfg.audit_policy_file)) if cfg.audit_log_path else None
        self.server = APIServer(self.ctx, token=token, service_account_key=self.pki.service_account_key(),
                                authentication=authentication, kubelet_tls=self.pki.kubelet_client_ssl_context(),
                                audit=audit)
        self._guard_routes()
        self.url = await self.server.start(cfg.host, cfg.port, self.pki.server_ssl_context())
        # the admin's client certificate, as kubeadm and k3s write it (no token: one credential per user)
        write_kubeconfig(self.kubeconfig, self.url, self.pki.ca_cert, self.pki.admin_credentials())
        await self._start_components(token)
        self.server.ready = True
        return self.url

    def _guard_routes(self) -> None:
        if not self.config.guard_routes:
            return
        from .network.hostroutes import HostRouteGuard

        self.route_guard = HostRouteGuard([self.config.pod_cidr, self.config.service_cidr])
        added = self.route_guard.install()
        if added:
            log.info("unreachable routes installed for %s", ", ".join(added))

    async def _start_components(self, token: str) -> None:
        from .kubelet.kubelet import Kubelet
        from .node.cni import CNIPlugin
        from .network.controller import NetworkController
        from .scheduler.scheduler import Scheduler

        from .controllers import (APIServiceRegistration, ClusterRoleAggregationController, GarbageCollector,
                                  NamespaceController, RootCAPublisher, ServiceAccountController)
        from .registry.catalog import builtin_types

        assert self.client is not None and self.ctx is not None
        self.components.start(NamespaceController(self.client).run(), "namespace-controller")
        self.components.start(GarbageCollector(self.client).run(), "garbage-collector")
        self.components.start(ServiceAccountController(self.client).run(), "serviceaccount-controller")
        self.components.start(ClusterRoleAggregationController(self.client).run(), "clusterrole-aggregation-controller")
        builtin_group_versions = {(t.group, t.version) for t in builtin_types()}
        self.components.start(APIServiceRegistration(self.client, builtin_group_versions).run(), "apiservice-registration")
        self.components.start(RootCAPublisher(self.client, self.pki.ca_cert.read_text()).run(), "root-ca-cert-publisher")
        self.components.start(Scheduler(self.client).run(), "scheduler")
        self.components.start(NetworkController(self.client, pod_cidr=self.config.pod_cidr).run(), "network-controller")
        for name in self.node_names():
            kubelet = Kubelet(self.client, name, root_dir=self.data_dir / "nodes" / name, cni=CNIPlugin(),
                              address="127.0.0.1", server_token=token, tls=self.pki.kubelet_server_ssl_context(),
                              **self.config.kubelet_options)
            await kubelet.start()
            self.kubelets.append(kubelet)
        if self.config.sim_nodes:
            from .sim.simulator import Simulator

            sim = Simulator(self.client, self.config.sim_nodes, stages_file=self.config.sim_stages)
            self.kubelets.append(sim)
            await sim.start()

    async def stop(self) -> None:
        """Stop everything started, newest first; every step runs even if one fails."""
        try:
            if self.server is not None:
                self.server.ready = False
            for kubelet in reversed(self.kubelets):
                await _quietly(kubelet.stop(), f"stopping {kubelet!r}")
            await self.components.stop()
            if self.server is not None:
                await _quietly(self.server.stop(), "stopping the API server")
            if self.store is not None:
                await _quietly(self.store.close(), "closing the store")
        finally:
            if self.route_guard is not None:
                self.route_guard.remove()
                self.route_guard = None


async def _quietly(coro: Any, what: str) -> None:
    try:
        await coro
    except Exception:
        log.exception("%s failed", what)
