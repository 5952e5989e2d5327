"""An embedded cluster: every component of podlife in one process.

``podlife up`` is this class. Start order matters and follows the seeds:

1. the store (SQLite in the data directory, or ``--store``: etcd, which several API servers
   may share), then certificates and token (on a shared store, the cluster's CA, keys and
   admin credentials come from the store: :mod:`podlife.api.shared_pki`);
2. the API (watch caches filled from the store, system namespaces created);
3. the host's ``unreachable`` routes for the pod and service ranges, *before* any
   pod can get an address (network safety);
4. the HTTPS server, then the kubeconfig (written before ``/readyz`` turns ready) and, if absent, the
   ``kube-public/cluster-info`` ConfigMap joining nodes discover the cluster with (docs/joining.md);
5. (not for ``podlife server``, the API server alone) the controllers (the controller manager -- every kube-controller-manager controller,
   and the network controller, under its Lease --, the scheduler under its own) and the nodes (kubelets, each
   with its own process runtime; one local-path provisioner, :mod:`podlife.node.local_path`, making
   the local nodes' volumes and CSINodes), all talking to the API through the in-process
   client, each as its own user (:func:`component_client`), so RBAC, the Node
   authorizer, NodeRestriction and the audit log see who did what; when the nodes run
   real containers (and this process is root with ``ip``), first every local node's
   network namespace and the fabric joining them (:mod:`podlife.nodenet.fabric`,
   :attr:`Cluster.node_networks`), and each kubelet plugs its pods in with
   ``podlife-cni`` as its node (``kubeconfigs/node-<name>.conf``), which forwards to
   the node's CNI daemon (:mod:`podlife.nodenet.cni.daemon`, started before the kubelet);
6. ``/readyz`` answers ok.

Stopping runs it backwards; every pod process a kubelet started is stopped, the
node network namespaces are deleted (after the kubelets), and the routes are removed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api.authn import AuthenticationOptions
from .api.context import build_api, ensure_dns_service
from .api.endpoint_reconciler import reconcile_kubernetes_endpoints
from .api.pki import PKI, write_kubeconfig
from .api.rest import ApiContext
from .api.server import APIServer
from .api.audit import AuditLog, load_policy
from .api.pod_security import NamespacePolicy
from .api.authz.bootstrap import ensure_bootstrap_policy
from .api.default_toleration_seconds import TolerationDefaults
from .api.priority_admission import ensure_system_priority_classes
from .registry.storage_defaults import ensure_storage_defaults
from .api.identity import (AUTHENTICATED, CONTROLLER_MANAGER_USER, KUBE_PROXY_USER, SCHEDULER_USER, UserInfo,
                           controller_user, node_user)
from .api.local_client import LocalClient
from .client.base import Resource
from .controllers.options import ControllerManagerOptions
from .machinery.errors import ApiError
from .machinery.tasks import Supervisor
from .api.shared_pki import share_pki
from .store import SQLiteStore, Store, open_store
from .store.memory import MemoryStore
from .trace.journal import Journal
from .trace.recorder import PodTraces

if TYPE_CHECKING:
    from .kubelet.eviction import EvictionConfig
    from .nodenet.fabric import NodeNetwork, NodeNetworks
    from .scheduler.config import SchedulerConfig

log = logging.getLogger(__name__)

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")

#: the users podlife's own components act as, each with a kubeconfig under ``DATA_DIR/kubeconfigs``
COMPONENT_KUBECONFIGS: dict[str, UserInfo] = {
    "scheduler": SCHEDULER_USER,
    "controller-manager": CONTROLLER_MANAGER_USER,
    "node-simulator": controller_user("node-simulator"),
    "network-controller": controller_user("network-controller"),
}

DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
#: the local nodes' address (InternalIP): the host's loopback, where each kubelet serves; hostNetwork pods' IP
NODE_ADDRESS = "127.0.0.1"


def kubernetes_service_ip(service_cidr: str) -> str:
    """The ``kubernetes`` Service's ClusterIP: the first address of the service range."""
    return str(next(ipaddress.ip_network(service_cidr).hosts()))


def api_server_names(service_cidr: str, cluster_domain: str) -> list[str]:
    """The names pods reach the API server by (the ``kubernetes`` Service), for its certificate, as kubeadm adds them."""
    return [kubernetes_service_ip(service_cidr), "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            f"kubernetes.default.svc.{cluster_domain}"]


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
    pod_security_default: str = "privileged"
    #: ``--audit-log-path``/``--audit-policy-file``: the audit log (none without a path)
    audit_log_path: Path | None = None
    audit_policy_file: Path | None = None
    #: ``--token-auth-file``: static bearer tokens, CSV ``token,user,uid,"group1,group2"``
    token_auth_file: Path | None = None
    #: ``--default-not-ready-toleration-seconds``/``--default-unreachable-toleration-seconds``
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    #: ``--disable-admission-plugins``: e.g. ``("ServiceAccount",)``
    disable_admission_plugins: tuple[str, ...] = ()
    #: the ``local-path`` default StorageClass and its CSIDriver at start (``--no-default-storage-class``: off)
    default_storage_class: bool = True
    #: ``--container-runtime``: auto (real containers when this machine can run them), oci, process
    container_runtime: str = "auto"
    #: ``--allowed-image-registries``: registries beyond loopback that nodes may pull from ("*": any)
    allowed_image_registries: tuple[str, ...] = ()
    #: ``--container-log-max-size``/``--container-log-max-files``: log rotation (Kubernetes' defaults)
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    #: ``--cluster-dns``/``--cluster-domain``: the pods' nameservers and domain (their resolv.conf)
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    #: ``--eviction-hard`` and the other eviction flags (None: Kubernetes' defaults)
    eviction: EvictionConfig | None = None
    #: ``--service-node-port-range``: where NodePort Services' node ports come from
    service_node_port_range: tuple[int, int] = (30000, 32767)
    #: ``--subnet-per``: pod subnets per namespace (Kuryr's model) or per node (one block each)
    subnet_per: str = "namespace"
    #: ``--port-pool-size``: address reservations kept ready per namespace/node (0: no pool)
    port_pool_size: int = 0
    #: kube-controller-manager's flags (``--controllers``, ``--node-monitor-grace-period``, ...)
    controller_manager: ControllerManagerOptions = field(default_factory=ControllerManagerOptions)
    #: ``--local-path-dir``: where local nodes' local-path volumes are made (``<dir>/<node>``; None: in the data dir)
    local_path_dir: Path | None = None
    #: ``--scheduler-config``: a KubeSchedulerConfiguration file (profiles, plugins, weights, backoff); None: defaults
    scheduler_config: Path | None = None
    #: ``--[no-]trace``: record every pod's life (:mod:`podlife.trace`; docs/tracing.md), kept in
    #: ``DATA_DIR/trace.sqlite`` (memory only with ``in_memory``) for at most ``trace_max_pods`` pods
    #: (``--trace-max-pods``) and ``trace_max_age`` seconds after a pod's last write (``--trace-max-age``)
    trace: bool = True
    trace_max_pods: int = 20_000
    trace_max_age: float = 3600.0
    #: ``--store``: the store's URL (``etcd://h:p[,h:p]``, ``sqlite:///path``, ``memory://``); None: SQLite in the
    #: data directory (memory with ``in_memory``). ``etcd_tls``: ``--etcd-cafile/certfile/keyfile`` as open_store's
    #: ca_file/cert_file/key_file; ``etcd_compaction_interval``: ``--etcd-compaction-interval`` seconds
    store: str | None = None
    etcd_tls: dict[str, Any] = field(default_factory=dict)
    etcd_compaction_interval: float = 300.0
    #: ``--cluster-token-file``: the secret the PKI kept in a shared store is encrypted with (:mod:`podlife.api.shared_pki`)
    cluster_token: str = ""
    #: False for ``podlife server``: the API server alone, no controllers, scheduler, network controller or nodes
    control_plane: bool = True
    #: ``--metric-resolution``: seconds between scrapes of the real kubelets for ``kubectl top`` (metrics-server's flag)
    metric_resolution: float = 5.0


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
        #: the local nodes' network namespaces (real containers only), by node name
        self.node_networks: dict[str, NodeNetwork] = {}
        self._node_netns: NodeNetworks | None = None
        #: the local nodes' CNI daemons (:mod:`podlife.nodenet.cni.daemon`), which ``podlife-cni`` forwards to
        self.cni_daemons: list[Any] = []
        self.controller_manager: Any = None
        self.url = ""
        #: the ``--scheduler-config`` file's settings, read by :meth:`start` (None: the scheduler's defaults)
        self.scheduler_settings: SchedulerConfig | None = None
        #: the pod traces (``ctx.trace``; None with ``trace`` off)
        self.traces: PodTraces | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def node_names(self) -> list[str]:
        base = self.config.node_name
        return [base] if self.config.nodes == 1 else [f"{base}-{i}" for i in range(1, self.config.nodes + 1)]

    async def start(self) -> str:
        cfg = self.config
        # read and checked before anything starts: a bad file stops ``up`` with every problem it has
        self.scheduler_settings = self._load_scheduler_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = self._open_store()
        await self.store.start()
        # loopback too, whatever --host is: a local `podlife apiserver-proxy` reaches every server (as k3s' certs)
        hosts = list(dict.fromkeys([cfg.host, "127.0.0.1", "localhost",
                                    *api_server_names(cfg.service_cidr, cfg.cluster_domain)]))
        if self.store.shared:  # several servers, one cluster: the PKI lives in the store too
            await share_pki(self.store, self.pki, hosts, cfg.cluster_token)
        else:
            self.pki.ensure(hosts)
        token = self.pki.token()
        traces = await self._start_trace(self.store)
        self.ctx = await build_api(self.store)
        self.ctx.trace = traces
        await self._service_defaults()
        self.ctx.pod_security_defaults = NamespacePolicy(enforce=cfg.pod_security_default)
        self.ctx.toleration_defaults = TolerationDefaults(cfg.default_not_ready_toleration_seconds,
                                                          cfg.default_unreachable_toleration_seconds)
        self.ctx.disabled_admission_plugins.update(cfg.disable_admission_plugins)
        self.client = LocalClient(self.ctx, shared_results=True)  # components only read what writes return
        await ensure_bootstrap_policy(self.client)  # kube-apiserver's rbac/bootstrap-roles, before anyone asks
        await ensure_system_priority_classes(self.client)  # its scheduling/bootstrap-system-priority-classes
        if cfg.default_storage_class:
            await ensure_storage_defaults(self.client)  # k3s' local-path StorageClass, as the default
        authentication = AuthenticationOptions(client_ca_file=self.pki.ca_cert, token_auth_file=cfg.token_auth_file)
        audit = AuditLog(cfg.audit_log_path, load_policy(cfg.audit_policy_file)) if cfg.audit_log_path else None
        self.server = APIServer(self.ctx, token=token, service_account_key=self.pki.service_account_key(),
                                authentication=authentication, kubelet_tls=self.pki.kubelet_client_ssl_context(),
                                audit=audit)
        self._start_resource_metrics()
        self._guard_routes()
        self.url = await self.server.start(cfg.host, cfg.port, self.pki.server_ssl_context())
        await reconcile_kubernetes_endpoints(self.ctx, cfg.host, int(self.url.rsplit(":", 1)[1]))
        # the admin's client certificate, as kubeadm and k3s write it (no token: one credential per user)
        write_kubeconfig(self.kubeconfig, self.url, self.pki.ca_cert, self.pki.admin_credentials())
        self._write_component_kubeconfigs()
        await self._publish_cluster_info()
        if cfg.control_plane:
            await self._start_components(token)
        self.server.ready = True
        return self.url

    @property
    def store_url(self) -> str:
        """The store as ``--store`` names it (the default spelled out)."""
        cfg = self.config
        if cfg.store:
            return cfg.store
        return "memory://" if cfg.in_memory else f"sqlite://{self.data_dir / 'store.sqlite'}"

    def _open_store(self) -> Store:
        cfg = self.config
        if cfg.store is None or cfg.store == "memory://":
            return MemoryStore() if cfg.in_memory or cfg.store else SQLiteStore(self.data_dir / "store.sqlite")
        if cfg.store.startswith("etcd://"):
            return open_store(cfg.store, compaction_interval=cfg.etcd_compaction_interval,
                              **{k: v for k, v in cfg.etcd_tls.items() if v})
        return open_store(cfg.store)

    def _start_resource_metrics(self) -> None:
        """``metrics.k8s.io``'s numbers (:mod:`podlife.api.resource_metrics`): the kubelets scraped with the API
        server's kubelet client, simulated nodes' usage declared; ``ctx.resource_metrics`` for the API to serve."""
        from .api.resource_metrics import ResourceMetrics

        assert self.ctx is not None and self.server is not None
        metrics = ResourceMetrics(self.ctx, self.server.app, resolution=self.config.metric_resolution)
        self.ctx.resource_metrics = metrics
        self.components.start(metrics.run(), "resource-metrics")

    async def _start_trace(self, store: Store) -> PodTraces | None:
        """The pod traces, following the store from its first commit; loaded from ``trace.sqlite`` unless in memory."""
        cfg = self.config
        if not cfg.trace:
            return None
        journal = Journal(None if cfg.in_memory else self.data_dir / "trace.sqlite")
        self.traces = PodTraces(journal=journal, max_pods=cfg.trace_max_pods, max_age=cfg.trace_max_age)
        await self.traces.start()
        self.traces.attach(store)
        return self.traces

    def _load_scheduler_config(self) -> SchedulerConfig | None:
        """``--scheduler-config``, defaulted and validated (SchedulerConfigError, a ValueError, lists every problem)."""
        if self.config.scheduler_config is None:
            return None
        from .scheduler.config import load_config

        settings = load_config(self.config.scheduler_config)
        log.info("scheduler profiles from %s: %s", self.config.scheduler_config,
                 ", ".join(p.scheduler_name for p in settings.profiles))
        return settings

    def _write_component_kubeconfigs(self) -> None:
        """``kubeconfigs/<component>.conf``: each component's own identity, for running it in another process.

        As kubeadm writes ``scheduler.conf`` and ``controller-manager.conf`` beside
        ``admin.conf``: a client certificate whose subject is the component's user, e.g.
        ``podlife sim --kubeconfig DATA_DIR/kubeconfigs/node-simulator.conf``.
        """
        directory = self.data_dir / "kubeconfigs"
        directory.mkdir(mode=0o700, exist_ok=True)
        for name, user in COMPONENT_KUBECONFIGS.items():
            credentials = self.pki.component_credentials(name, user.username, [g for g in user.groups
                                                                               if g != AUTHENTICATED])
            write_kubeconfig(directory / f"{name}.conf", self.url, self.pki.ca_cert, credentials, name=name)

    async def _publish_cluster_info(self) -> None:
        """``kube-public/cluster-info`` (kubeadm's ``bootstrap-token`` phase): the server and CA for joining nodes
        to discover, unless it exists; the bootstrap signer adds the tokens' signatures (docs/joining.md)."""
        from .node.join import CLUSTER_INFO, KUBE_PUBLIC, cluster_info_configmap

        assert self.client is not None
        try:
            await self.client.create(CONFIG_MAPS, cluster_info_configmap(self.url, self.pki.ca_cert.read_bytes()),
                                     KUBE_PUBLIC)
        except ApiError as exc:
            if exc.code != 409:  # AlreadyExists: kept as it is (another server, or an admin, wrote it)
                log.warning("%s/%s could not be published: %s", KUBE_PUBLIC, CLUSTER_INFO, exc)

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
        from .kubelet.runtimes import choose_runtime
        from .client.leaderelection import run_while_leading
        from .components_cli import scheduler_election
        from .controllers.manager import candidate_identity
        from .network.controller import NetworkController
        from .nodenet.names import cluster_id
        from .scheduler.scheduler import Scheduler

        from .controllers import APIServiceRegistration
        from .registry.catalog import builtin_types

        assert self.client is not None and self.ctx is not None
        builtin_group_versions = {(t.group, t.version) for t in builtin_types()}
        if self.server is not None:  # podtraces, metrics.k8s.io: served from providers, registered alike
            builtin_group_versions |= self.server.virtual.served_group_versions()
        # the API server's own controller: its loopback identity (system:apiserver), outside the controller manager
        self.components.start(APIServiceRegistration(self.client, builtin_group_versions).run(), "apiservice-registration")
        network = self.component_client(COMPONENT_KUBECONFIGS["network-controller"], "network-controller")
        self._start_controller_manager(NetworkController(  # under the controller manager's Lease
            network, pod_cidr=self.config.pod_cidr, subnet_per=self.config.subnet_per,
            port_pool_size=self.config.port_pool_size, dns_nameservers=self.config.cluster_dns))
        scheduler = self.component_client(COMPONENT_KUBECONFIGS["scheduler"], "kube-scheduler")
        options = self.scheduler_settings.scheduler_options() if self.scheduler_settings is not None else {}
        # kube-scheduler's Lease (an extra `podlife scheduler` stands by); the first attempt is immediate
        self.components.start(run_while_leading(scheduler, scheduler_election(self.scheduler_settings),
                                                candidate_identity(cluster_id(self.data_dir)),
                                                Scheduler(scheduler, **options).run), "scheduler")
        for name in self.node_names():
            root_dir = self.data_dir / "nodes" / name
            runtime, why = choose_runtime(root_dir, self.config.container_runtime,
                                          allowed_registries=self.config.allowed_image_registries)
            self._configure_dns(runtime)
            kubelet = Kubelet(self.component_client(node_user(name), "kubelet"), name,
                              root_dir=root_dir, cni=await self._node_cni(name, runtime), runtime=runtime,
                              runtime_reason=why,
                              address=NODE_ADDRESS, server_token=token, tls=self.pki.kubelet_server_ssl_context(),
                              **self._kubelet_options())
            await kubelet.start()
            self.kubelets.append(kubelet)
        if self.node_names():
            self._start_local_path_provisioner()
        if self.node_networks:
            self._start_node_services()
            if self._overlay_ip() is not None:
                self._start_overlay()
        if self.config.sim_nodes:
            from .sim.simulator import Simulator

            simulator = self.component_client(COMPONENT_KUBECONFIGS["node-simulator"], "node-simulator")
            sim = Simulator(simulator, self.config.sim_nodes, stages_file=self.config.sim_stages,
                            lease_period=self._lease_renew_interval())
            self.kubelets.append(sim)
            if self.ctx.resource_metrics is not None:  # its usage stages, for kubectl top
                self.ctx.resource_metrics.declared_usage = sim.declared_usage
            await sim.start()

    def local_path_dir(self, node: str) -> Path:
        """Where the local-path provisioner makes a local node's volumes: ``--local-path-dir``/<node>, else
        ``<data dir>/nodes/<node>/storage``."""
        if self.config.local_path_dir is not None:
            return self.config.local_path_dir.resolve() / node
        return self.data_dir / "nodes" / node / "storage"

    def _start_local_path_provisioner(self) -> None:
        """One node-local provisioner (:mod:`podlife.node.local_path`) for every local node, as its own service
        account; its identity is external-provisioner's kind (start time in ms, then who)."""
        from .node.local_path import LocalPathProvisioner

        names = self.node_names()
        identity = f"{int(time.time() * 1000)}-{names[0] if len(names) == 1 else 'podlife'}"
        client = self.component_client(controller_user("local-path-provisioner"), "local-path-provisioner")
        provisioner = LocalPathProvisioner(client, {name: self.local_path_dir(name) for name in names},
                                           identity=identity)
        self.components.start(provisioner.run(), "local-path-provisioner")

    async def _node_cni(self, name: str, runtime: Any) -> Any:
        """The node's CNI plugin: ``podlife-cni`` in the node's network namespace for real containers
        (the namespaces are made on first need), else the records-only :class:`CNIPlugin`."""
        from .node.cni import CNIPlugin

        if not await self._ensure_node_networks(runtime):
            return CNIPlugin(host_ip=NODE_ADDRESS)
        from .nodenet.wiring import start_node_cni

        daemon, plugin = await start_node_cni(self.component_client(node_user(name), "podlife-cni"),
                                              self.node_networks[name], self._write_node_kubeconfig(name),
                                              self.data_dir / "nodes" / name, NODE_ADDRESS)
        self.cni_daemons.append(daemon)
        return plugin

    async def _ensure_node_networks(self, runtime: Any) -> bool:
        """Create every local node's network namespace and the fabric (:mod:`podlife.nodenet.fabric`)
        once, when pods run as real containers and this process may manage namespaces; whether they exist."""
        from .kubelet.oci_pods import OCIPodRuntime
        from .nodenet.fabric import NodeNetworks
        from .nodenet.wiring import pod_network_possible

        if self._node_netns is not None:
            return True
        if not pod_network_possible(isinstance(runtime, OCIPodRuntime)):
            return False
        networks = NodeNetworks(self.data_dir, self.node_names(), self._node_service_addresses(),
                                mtu=self._pod_mtu())
        self._node_netns = networks
        made = await asyncio.to_thread(networks.setup)
        self.node_networks = networks.by_node()
        log.info("node network namespaces: %s (fabric %s)", ", ".join(n.netns for n in made), networks.fabric_netns)
        return True

    def _start_node_services(self) -> None:
        """The service proxy, NetworkPolicy agent and API forwarder of every node namespace, and the cluster DNS
        (:mod:`podlife.nodenet.node_services`), each reading the API as its own user."""
        from .nodenet.node_services import NodeServiceClients, NodeServiceSettings, run_node_services

        cfg = self.config
        clients = NodeServiceClients(
            proxy=self.component_client(KUBE_PROXY_USER, "kube-proxy"),
            dns=self.component_client(controller_user("coredns"), "coredns"),
            policy=self.component_client(controller_user("network-policy-agent"), "network-policy-agent"))
        settings = NodeServiceSettings(
            api_port=int(self.url.rsplit(":", 1)[1]), api_host=cfg.host,
            kubernetes_ip=kubernetes_service_ip(cfg.service_cidr),
            cluster_dns=cfg.cluster_dns, cluster_domain=cfg.cluster_domain,
            pod_cidr=cfg.pod_cidr, service_cidr=cfg.service_cidr)
        self.components.start(run_node_services(list(self.node_networks.values()), clients, settings),
                              "node-network-services")

    def _overlay_ip(self) -> str | None:
        """Where the local nodes' fabric joins the hosts' overlay from (:mod:`podlife.nodenet.overlay`): ``--host``
        when it is an IPv4 address other hosts reach (not loopback, not a wildcard); None: no overlay."""
        try:
            address = ipaddress.IPv4Address(self.config.host)
        except ValueError:
            return None
        return None if address.is_loopback or address.is_unspecified else str(address)

    def _pod_mtu(self) -> int:
        """The pods' MTU: what fits in a VXLAN datagram when the fabric joins the overlay, else the fabric's."""
        from .nodenet.fabric import DEFAULT_MTU
        from .nodenet.overlay import VXLAN_OVERHEAD

        return DEFAULT_MTU - VXLAN_OVERHEAD if self._overlay_ip() is not None else DEFAULT_MTU

    def _start_overlay(self) -> None:
        """The local nodes' fabric in the hosts' overlay, one VTEP for them all, sending from ``--host``; each
        node's identity publishes it on its own Node."""
        from .nodenet.overlay import Overlay, OverlayAgent

        address = self._overlay_ip()
        assert self._node_netns is not None and address is not None
        nodes = self.node_names()
        publishers = {n: self.component_client(node_user(n), "podlife-overlay") for n in nodes}
        overlay = Overlay(self._node_netns.cluster_id, self._node_netns.fabric_netns, address, self._pod_mtu())
        self.components.start(OverlayAgent(publishers[nodes[0]], nodes, overlay, publishers=publishers).run(),
                              "pod-overlay")

    def _node_service_addresses(self) -> list[str]:
        """What node-local servers bind in each node namespace: the cluster DNS and the ``kubernetes`` Service."""
        return [*self.config.cluster_dns, kubernetes_service_ip(self.config.service_cidr)]

    def _write_node_kubeconfig(self, name: str) -> Path:
        """``kubeconfigs/node-<name>.conf``: the node's identity (``system:node:<name>``, group ``system:nodes``),
        as a kubelet's; what the CNI plugin talks to the API with."""
        user = node_user(name)
        path = self.data_dir / "kubeconfigs" / f"node-{name}.conf"
        credentials = self.pki.component_credentials(f"node-{name}", user.username,
                                                     [g for g in user.groups if g != AUTHENTICATED])
        write_kubeconfig(path, self.url, self.pki.ca_cert, credentials, name=f"node-{name}", as_json=True)
        return path

    async def _tear_down_node_networks(self) -> None:
        networks, self._node_netns = self._node_netns, None
        self.node_networks = {}
        if networks is not None:
            await asyncio.to_thread(networks.teardown)

    async def _service_defaults(self) -> None:
        """The Service registry's node port range, and the cluster DNS Service on the first ``--cluster-dns`` address."""
        assert self.ctx is not None
        services = self.ctx.rest_by("", "v1", "services")
        if services is not None:
            services.strategy.node_port_range = self.config.service_node_port_range  # type: ignore[attr-defined]
        if self.config.cluster_dns:
            try:
                await ensure_dns_service(self.ctx, self.config.cluster_dns[0])
            except ApiError as exc:  # e.g. an address outside the service range: no kube-dns Service
                log.warning("the kube-dns Service could not be created: %s", exc)

    def _start_controller_manager(self, network_controller: Any) -> None:
        """kube-controller-manager: every controller of :mod:`podlife.controllers.manager` (namespaces, garbage
        collection, service accounts and their tokens, endpoints and slices, RBAC aggregation, the root CA, the
        workloads, nodes, pod GC, quotas, budgets), under ``--controllers``, and the network controller, both
        under its leader election (one Lease, as ``podlife controller-manager`` runs them: an external one stands
        by, no address is handed out twice).

        What its flags would name is given here: the cluster CA (``--root-ca-file``) and the signer of legacy
        tokens (``--service-account-private-key-file``)."""
        from dataclasses import replace

        from .api.identity import load_signing_key
        from .api.legacy_tokens import LegacyTokenGenerator
        from .client.leaderelection import run_while_leading, together
        from .components_cli import controller_manager_election
        from .controllers.manager import ControllerManager, candidate_identity
        from .nodenet.names import cluster_id

        generator = LegacyTokenGenerator(load_signing_key(self.pki.service_account_key()))
        manager_client = self.component_client(CONTROLLER_MANAGER_USER, "kube-controller-manager")
        options = self.config.controller_manager
        identity = candidate_identity(cluster_id(self.data_dir))  # restarted after a crash: its own Lease back at once
        self.controller_manager = ControllerManager(  # elects below, with the network controller
            self.controller_client, manager_client, replace(options, leader_elect=False),
            root_ca=self.pki.ca_cert.read_text(), token_generator=generator.generate, identity=identity,
            signing_cert=self.pki.ca_cert.read_bytes(), signing_key=self.pki.ca_key.read_bytes())  # the CSR signer's CA
        self.components.start(run_while_leading(manager_client, controller_manager_election(options), identity,
                                                together(self.controller_manager.run, network_controller.run)),
                              "controller-manager")

    def component_client(self, user: UserInfo, user_agent: str, *, reads_as: UserInfo | None = None) -> LocalClient:
        """The in-process client a component calls the API with, as ``user``."""
        assert self.client is not None
        return self.client.as_user(user, reads_as=reads_as, user_agent=user_agent)

    def controller_client(self, controller: str) -> LocalClient:
        """A controller's client: writes as its service account, reads as kube-controller-manager's informers."""
        return self.component_client(controller_user(controller), f"kube-controller-manager/{controller}",
                                     reads_as=CONTROLLER_MANAGER_USER)

    def _configure_dns(self, runtime: Any) -> None:
        """Give a real-container runtime ``--cluster-dns``/``--cluster-domain`` (pods' resolv.conf)."""
        from .kubelet.dns import DNSSettings
        from .kubelet.oci_pods import OCIPodRuntime

        if isinstance(runtime, OCIPodRuntime):
            runtime.dns = DNSSettings(self.config.cluster_dns, self.config.cluster_domain)

    def _kubelet_options(self) -> dict[str, Any]:
        """The local kubelets' options: ``kubelet_options`` with the log rotation settings."""
        from .kubelet.kubelet import KubeletConfig
        from .kubelet.log_rotation import LogRotationConfig

        options = dict(self.config.kubelet_options)
        config = options.get("config") or KubeletConfig()
        config.logs = LogRotationConfig(max_size=self.config.container_log_max_size,
                                        max_files=self.config.container_log_max_files,
                                        interval=config.logs.interval)
        if self.config.eviction is not None:
            config.eviction = self.config.eviction
        config.lease_renew_interval = min(config.lease_renew_interval, self._lease_renew_interval())
        options["config"] = config
        return options

    def _lease_renew_interval(self) -> float:
        """How often nodes renew their Leases: often enough for ``--node-monitor-grace-period`` (short in tests)."""
        from .controllers.node_lifecycle import lease_renew_interval

        return lease_renew_interval(self.config.controller_manager.node_monitor_grace_period)

    def local_kubelets(self) -> list[Any]:
        """The kubelets of this host's local nodes (not the simulator)."""
        from .kubelet.kubelet import Kubelet

        return [k for k in self.kubelets if isinstance(k, Kubelet)]

    async def stop(self) -> None:
        """Stop everything started, newest first; every step runs even if one fails."""
        try:
            if self.server is not None:
                self.server.ready = False
            for kubelet in reversed(self.kubelets):
                await _quietly(kubelet.stop(), f"stopping {kubelet!r}")
            for daemon in reversed(self.cni_daemons):  # after the kubelets (their DELs), before the namespaces go
                await _quietly(daemon.stop(), f"stopping the CNI daemon of {daemon.node_name}")
            self.cni_daemons = []
            await self.components.stop()
            if self.server is not None:
                await _quietly(self.server.stop(), "stopping the API server")
            if self.store is not None:
                await _quietly(self.store.close(), "closing the store")
            if self.traces is not None:  # after the store: its last commits are recorded
                await _quietly(self.traces.stop(), "closing the pod traces")
        finally:
            try:
                await self._tear_down_node_networks()  # after the kubelets: their pods' veths end there
            except Exception:
                log.exception("removing the node network namespaces failed")
            if self.route_guard is not None:
                self.route_guard.remove()
                self.route_guard = None


async def _quietly(coro: Any, what: str) -> None:
    try:
        await coro
    except Exception:
        log.exception("%s failed", what)
