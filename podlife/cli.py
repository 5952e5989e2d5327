"""The ``podlife`` command.

``podlife up``   start the embedded cluster (API server, store, scheduler, network
                 controller, local and simulated nodes) and serve until SIGTERM/Ctrl-C.
``podlife server`` the API server alone (several may share one etcd store: ``--store etcd://...``).
``podlife sim``  run simulated nodes against any podlife server (a separate process).
``podlife trace`` a pod's recorded life from the podtraces API (:mod:`podlife.trace_cli`).
``podlife token`` bootstrap tokens (:mod:`podlife.join_cli`); ``podlife node`` joins this host with one
                 and runs its kubelet (:mod:`podlife.node_cli`, docs/joining.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .controllers.options import add_flags as controller_manager_flags, from_args as controller_manager_options
from .flag_values import go_bool
from .store.base import StoreError


def _quantity_bytes(text: str) -> int:
    """A size given as a Kubernetes quantity (``10Mi``, ``512Ki``, ``1G``), in bytes."""
    from .machinery.quantity import int_value

    try:
        value = int_value(text)
    except (ValueError, ArithmeticError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a quantity such as 10Mi") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _admission_plugins(text: str) -> tuple[str, ...]:
    """``--disable-admission-plugins``: names kube-apiserver would know (unknown ones are refused, as it does)."""
    from .api.admission import PLUGIN_NAMES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PLUGIN_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"plugins {unknown} in disable-admission-plugins flag are not registered; "
                                         f"known: {', '.join(sorted(PLUGIN_NAMES))}")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="podlife", description="A Kubernetes-compatible cluster in Python.")
    p.add_argument("--version", action="version", version=f"podlife {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded cluster (API server, controllers, scheduler, nodes) and serve "
                       "until stopped")
    _add_api_server_flags(up)
    up.add_argument("--nodes", type=int, default=1, help="local nodes running real processes (default: 1; 0 allowed)")
    up.add_argument("--sim-nodes", type=int, default=0, help="simulated nodes (default: 0)")
    up.add_argument("--sim-stages", type=Path, default=None, help="YAML stage file for simulated nodes")
    up.add_argument("--local-path-dir", type=Path, default=None, metavar="DIR",
                    help="where local nodes' local-path volumes are made, DIR/<node>/<pv>_<namespace>_<claim> "
                         "(default: DATA_DIR/nodes/<node>/storage)")
    up.add_argument("--scheduler-config", type=Path, default=None, metavar="FILE",
                    help="kube-scheduler's KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1, YAML or "
                         "JSON): scheduling profiles by schedulerName, enabled/disabled plugins and their weights "
                         "and args, percentageOfNodesToScore, pod backoff; checked before anything starts "
                         "(default: Kubernetes' default profile; see docs/scheduler.md)")
    up.add_argument("--container-runtime", choices=("auto", "oci", "process"), default="auto",
                    help="how local nodes run containers: oci (runc under conmon: namespaces, cgroups, volumes), "
                         "process (host processes, no isolation), auto (oci when this machine can: root, runc, "
                         "conmon, cgroups; default)")
    up.add_argument("--allowed-image-registries", default="",
                    help="comma-separated registries (host[:port]) beyond loopback that nodes may pull images from, "
                         "'*' for any (default: none: images come from registries on 127.0.0.1, `podlife images "
                         "load`, or the node image catalog)")
    up.add_argument("--container-log-max-size", type=_quantity_bytes, default="10Mi",
                    help="rotate a container's log once it is bigger than this (a quantity; default: 10Mi)")
    up.add_argument("--container-log-max-files", type=int, default=5,
                    help="log files kept per container instance, the current one included (default: 5)")
    _add_eviction_flags(up)
    controller_manager_flags(up)
    up.add_argument("--subnet-per", choices=("namespace", "node"), default="namespace",
                    help="pod subnets: one (or more) per namespace, Kuryr's model (default), or a /24 block per node")
    up.add_argument("--port-pool-size", type=int, default=0,
                    help="addresses the network controller keeps reserved per namespace (or node), so a new pod "
                         "takes one without waiting (Kuryr's port pools; default: 0, no pool)")

    server = sub.add_parser("server", help="run an API server only (its store shared with other servers on etcd)")
    _add_api_server_flags(server)

    sim = sub.add_parser("sim", help="run simulated nodes against a podlife server")
    sim.add_argument("--server", default=None, help="API server URL (default: from --kubeconfig)")
    sim.add_argument("--kubeconfig", type=Path, default=Path(".podlife/kubeconfig"),
                     help="kubeconfig with the server, CA and credentials (the simulator's own: "
                          "DATA_DIR/kubeconfigs/node-simulator.conf; default: .podlife/kubeconfig, the admin's)")
    sim.add_argument("--nodes", type=int, default=10, help="how many simulated nodes (default: 10)")
    sim.add_argument("--sim-stages", type=Path, default=None, help="YAML stage file")
    sim.add_argument("--name-prefix", default="sim-node", help="node name prefix (default: sim-node)")
    sim.add_argument("--node-lease-duration-seconds", type=int, default=40, metavar="N",
                     help="the nodes' Lease duration; they renew it every quarter of it, as the kubelet (default: 40)")

    from . import images_cli, trace_cli

    images_cli.add_parser(sub)
    trace_cli.add_parser(sub)
    from .api.ui import command as ui_command

    ui_command.add_parser(sub)
    from . import components_cli, join_cli, migrate_cli, node_cli, proxy_cli

    components_cli.add_parsers(sub)  # scheduler, controller-manager: control-plane components in their own process
    join_cli.add_parsers(sub)  # token create|list|delete: bootstrap tokens for nodes that join
    node_cli.add_parser(sub)  # node: this host joins a cluster with a bootstrap token and runs its kubelet
    migrate_cli.add_parser(sub)  # migrate: copy a cluster's objects from one store to another
    proxy_cli.add_parser(sub)  # apiserver-proxy: one local address in front of several API servers
    return p


def _add_api_server_flags(parser: argparse.ArgumentParser) -> None:
    """The API server's flags, shared by ``up`` (the all-in-one) and ``server`` (the API server alone)."""
    parser.add_argument("--data-dir", type=Path, default=Path(".podlife"),
                    help="where the store, certificates, kubeconfig and pod logs live (default: ./.podlife)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1); with `up`, a non-loopback IPv4 address also joins "
                             "the local nodes' pod network to the overlay between hosts (docs/networking.md)")
    parser.add_argument("--port", type=int, default=6443, help="HTTPS port (default: 6443; 0 picks a free port)")
    parser.add_argument("--in-memory", action="store_true", help="keep the store in memory only (nothing survives a restart)")
    parser.add_argument("--store", default=None, metavar="URL",
                        help="where the cluster's objects live: etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (etcd v3; "
                             "several API servers may share it), sqlite:///PATH, memory:// (default: "
                             "DATA_DIR/store.sqlite; memory:// with --in-memory)")
    parser.add_argument("--etcd-cafile", type=Path, default=None, help="CA bundle to verify etcd's serving certificates")
    parser.add_argument("--etcd-certfile", type=Path, default=None, help="client certificate presented to etcd")
    parser.add_argument("--etcd-keyfile", type=Path, default=None, help="its private key")
    parser.add_argument("--etcd-compaction-interval", type=_duration, default=300.0, metavar="DURATION",
                        help="how often etcd's history is compacted to the revision of one interval ago, by one API "
                             "server at a time (kube-apiserver's flag; default: 5m; 0 disables)")
    parser.add_argument("--cluster-token-file", type=Path, default=None, metavar="FILE",
                        help="a secret shared by the API servers of one etcd store: the cluster's certificate "
                             "authority, signing keys and admin credentials are kept in the store encrypted with a "
                             "key derived from it (default: $PODLIFE_CLUSTER_TOKEN, else none: protected only by "
                             "access to etcd; docs/etcd.md)")
    parser.add_argument("--pod-security-default", choices=("privileged", "baseline", "restricted"), default="privileged",
                    help="PodSecurity level enforced in namespaces without pod-security.kubernetes.io labels "
                         "(default: privileged, as in Kubernetes; kube-system is exempt)")
    parser.add_argument("--metric-resolution", type=_duration, default=5.0, metavar="DURATION",
                    help="how often the real nodes' kubelets are scraped for kubectl top (metrics-server's flag; "
                         "default: 5s)")
    parser.add_argument("--trace", nargs="?", const=True, default=True, type=go_bool, metavar="BOOL",
                    help="record every pod's life: writes, writers, field diffs, stages (docs/tracing.md; default: true)")
    parser.add_argument("--no-trace", dest="trace", action="store_false", help="do not record pod traces")
    parser.add_argument("--trace-max-pods", type=int, default=20_000, metavar="N",
                    help="pod traces kept at most, the oldest dropped first (default: 20000)")
    parser.add_argument("--trace-max-age", type=_duration, default=3600.0, metavar="DURATION",
                    help="a pod trace is dropped this long after its last write (default: 1h)")
    parser.add_argument("--audit-log-path", type=Path, default=None,
                    help="write audit.k8s.io/v1 events of every request to this file (JSON lines)")
    parser.add_argument("--audit-policy-file", type=Path, default=None,
                    help="audit.k8s.io/v1 Policy choosing each request's level (default: everything at Metadata)")
    parser.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                    help="tolerationSeconds of the not-ready:NoExecute toleration added to pods (default: 300)")
    parser.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                    help="tolerationSeconds of the unreachable:NoExecute toleration added to pods (default: 300)")
    parser.add_argument("--cluster-dns", default="10.96.0.10",
                    help="comma-separated nameserver IPs written into ClusterFirst pods' /etc/resolv.conf "
                         "(default: 10.96.0.10, kube-dns's conventional ClusterIP; empty: pods fall back to Default)")
    parser.add_argument("--cluster-domain", default="cluster.local",
                    help="the cluster's DNS domain, searched by ClusterFirst pods (default: cluster.local)")
    parser.add_argument("--service-node-port-range", type=_port_range, default="30000-32767",
                    help="the ports NodePort Services' node ports come from (default: 30000-32767)")
    parser.add_argument("--disable-admission-plugins", type=_admission_plugins, default="",
                    help="comma-separated admission plugins not to run, by their Kubernetes names (e.g. LimitRanger, "
                         "ServiceAccount, PodSecurity, ResourceQuota, ValidatingAdmissionWebhook)")
    parser.add_argument("--no-default-storage-class", dest="default_storage_class", action="store_false",
                    help="do not create the local-path StorageClass (the default class, as k3s ships it) and its "
                         "CSIDriver at start (default: create them on a new cluster)")


def _port_range(text: str) -> tuple[int, int]:
    """``--service-node-port-range``: ``30000-32767``."""
    from .registry.node_ports import parse_port_range

    try:
        return parse_port_range(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port range {text!r} (want e.g. 30000-32767)") from None


def _tune_garbage_collector() -> None:
    """Collect cycles less often: the API server allocates many short-lived dicts.

    With Python's default thresholds a full collection runs every few thousand
    allocations and walks the whole heap -- every cached object -- so its cost grows
    with the cluster. podlife makes few reference cycles; reference counting frees
    almost everything, and the rarer collections below catch the rest. Objects alive
    at start-up are frozen out of collection entirely.

    The youngest generation is collected every 2,000,000 net allocations: at scale,
    most objects that live a little (old versions of objects, replaced informer
    entries) are gone by then and are never examined. Measured with
    ``benchmarks/scale.py`` (10,000 pods): 0.42-0.46 s of collection instead of
    0.74-0.75 s at 50,000, with pauses of a few tens of milliseconds; once pods carry
    their service-account token volume (larger objects, more of them alive), 500,000
    took 16.2-17.4 s to all Running and 2,000,000 took 15.1-15.9 s, with the same peak
    memory and a lower p99 (0.30-0.32 s against 0.45-0.50 s).

    The threshold is 3,000,000 since pods are traced: a young-generation pass walks every
    object that survived since the last one, and a burst of 10,000 pods leaves about 1.2
    million (cached objects, watch events, trace records). At 2,000,000 the traced burst
    crossed the threshold once mid-run, a single 0.92 s pass that raised the scale
    benchmark's p99 from 0.47 s to 1.3 s; at 3,000,000 the largest pass took 0.2 ms. A
    larger burst meets the same cliff further on: a pass costs about 0.7 s per million
    survivors.
    """
    import gc

    gc.set_threshold(3_000_000, 50, 100)
    gc.freeze()


def _install_event_loop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve_until_signal(start, stop) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await start()
        await stopping.wait()
    finally:
        await stop()


def _duration(text: str) -> float:
    """A Go duration flag (``30s``, ``5m0s``) in seconds."""
    from .kubelet.eviction import EvictionConfigError, parse_duration

    try:
        return parse_duration(text)
    except EvictionConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_eviction_flags(up: argparse.ArgumentParser) -> None:
    """The kubelet's node-pressure eviction flags (Kubernetes' names and defaults)."""
    up.add_argument("--eviction-hard", default=None,
                    help="hard eviction thresholds, e.g. 'memory.available<100Mi,nodefs.available<10%%' (default: "
                         "memory.available<100Mi,nodefs.available<10%%,imagefs.available<15%%,nodefs.inodesFree<5%%; "
                         "giving any replaces them all)")
    up.add_argument("--eviction-soft", default="",
                    help="soft eviction thresholds, e.g. 'memory.available<1Gi' (each needs a grace period)")
    up.add_argument("--eviction-soft-grace-period", default="",
                    help="grace period of each soft threshold, e.g. 'memory.available=1m30s'")
    up.add_argument("--eviction-pressure-transition-period", type=_duration, default="5m0s",
                    help="how long a pressure condition stays True after its last threshold was met (default: 5m0s)")
    up.add_argument("--eviction-max-pod-grace-period", type=int, default=0,
                    help="the grace period (seconds) of pods evicted for a soft threshold (default: 0)")
    up.add_argument("--housekeeping-interval", type=_duration, default="10s",
                    help="how often the kubelet measures the node for eviction (default: 10s)")


def _eviction_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ClusterConfig fields of the eviction flags, checked now (a bad threshold fails ``up``)."""
    from .kubelet.eviction import EvictionConfig, EvictionConfigError

    config = EvictionConfig(hard=args.eviction_hard, soft=args.eviction_soft,
                            soft_grace_period=args.eviction_soft_grace_period,
                            pressure_transition_period=args.eviction_pressure_transition_period,
                            max_pod_grace_period=args.eviction_max_pod_grace_period,
                            housekeeping_interval=args.housekeeping_interval)
    try:
        config.thresholds()
    except EvictionConfigError as exc:
        raise SystemExit(f"podlife up: {exc}") from None
    return {"eviction": config}


def _api_server_config(args: argparse.Namespace) -> dict[str, Any]:
    """ClusterConfig fields of the API server's flags (``up`` and ``server``)."""
    import os

    token = args.cluster_token_file.read_text().strip() if args.cluster_token_file else os.environ.get(
        "PODLIFE_CLUSTER_TOKEN", "")
    return dict(data_dir=args.data_dir, host=args.host, port=args.port, in_memory=args.in_memory,
                store=args.store, etcd_tls={"ca_file": args.etcd_cafile, "cert_file": args.etcd_certfile,
                                            "key_file": args.etcd_keyfile},
                etcd_compaction_interval=args.etcd_compaction_interval, cluster_token=token,
                audit_log_path=args.audit_log_path, audit_policy_file=args.audit_policy_file,
                metric_resolution=args.metric_resolution,
                trace=args.trace, trace_max_pods=max(1, args.trace_max_pods), trace_max_age=args.trace_max_age,
                pod_security_default=args.pod_security_default,
                default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
                default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
                disable_admission_plugins=args.disable_admission_plugins,
                default_storage_class=args.default_storage_class,
                cluster_dns=tuple(ip.strip() for ip in args.cluster_dns.split(",") if ip.strip()),
                cluster_domain=args.cluster_domain, service_node_port_range=args.service_node_port_range)


def _node_and_component_config(args: argparse.Namespace) -> dict[str, Any]:
    """ClusterConfig fields of ``up``'s own flags: its nodes, scheduler, controllers and network."""
    return dict(nodes=args.nodes, sim_nodes=args.sim_nodes, sim_stages=args.sim_stages,
                local_path_dir=args.local_path_dir, scheduler_config=args.scheduler_config,
                container_runtime=args.container_runtime,
                allowed_image_registries=tuple(r.strip() for r in args.allowed_image_registries.split(",")
                                               if r.strip()),
                container_log_max_size=args.container_log_max_size,
                container_log_max_files=args.container_log_max_files,
                subnet_per=args.subnet_per, port_pool_size=max(0, args.port_pool_size),
                controller_manager=controller_manager_options(args), **_eviction_options(args))


async def _up(args: argparse.Namespace) -> None:
    """``podlife up`` (everything) or ``podlife server`` (the API server alone: no nodes, no controllers)."""
    from .cluster import Cluster, ClusterConfig
    from .progress import progress

    if args.command == "up":
        cfg = ClusterConfig(**_api_server_config(args), **_node_and_component_config(args))
    else:
        cfg = ClusterConfig(**_api_server_config(args), nodes=0, control_plane=False)
    cluster = Cluster(cfg)

    async def start() -> None:
        async with progress(transient=True) as board:  # drawn on a terminal only
            if cfg.sim_nodes:
                board.add("simulated nodes registered", cfg.sim_nodes, lambda: _sim_nodes_registered(cluster))
            url = await cluster.start()
        print(f"podlife {__version__} is serving the Kubernetes API at {url}", flush=True)
        if cfg.control_plane:
            print(f"  nodes: {cfg.nodes} local, {cfg.sim_nodes} simulated; data: {cluster.data_dir}", flush=True)
        else:
            print(f"  API server only (no nodes, scheduler or controllers); data: {cluster.data_dir}", flush=True)
        print(f"  store: {cluster.store_url}", flush=True)
        for kubelet in cluster.local_kubelets():
            print(f"  node {kubelet.node_name}: pods run as {kubelet.runtime.description} ({kubelet.runtime_reason})",
                  flush=True)
        print(f"  export KUBECONFIG={cluster.kubeconfig}", flush=True)
        print("  kubectl get nodes", flush=True)

    await _serve_until_signal(start, cluster.stop)


def _sim_nodes_registered(cluster: Any) -> int:
    """How many simulated nodes have their Node object (a uid) so far: what ``up``'s progress bar shows."""
    from .sim.simulator import Simulator

    return sum(1 for sim in cluster.kubelets if isinstance(sim, Simulator) for node in sim.pool.nodes.values()
               if node.uid)


async def _sim(args: argparse.Namespace) -> None:
    from .client.http import HTTPClient
    from .sim.simulator import Simulator

    client = HTTPClient.from_kubeconfig(args.kubeconfig)
    if args.server:
        client.server = args.server.rstrip("/")
    if args.node_lease_duration_seconds <= 0:
        raise SystemExit("podlife sim: --node-lease-duration-seconds must be greater than 0")
    sim = Simulator(client, args.nodes, stages_file=args.sim_stages, name_prefix=args.name_prefix,
                    lease_duration=args.node_lease_duration_seconds,
                    lease_period=args.node_lease_duration_seconds / 4)  # the kubelet's renew interval

    async def stop() -> None:
        await sim.stop()
        await client.close()

    async def start() -> None:
        await sim.start()
        print(f"podlife sim: {args.nodes} simulated nodes registered at {client.server}", flush=True)

    await _serve_until_signal(start, stop)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "images":  # a node's image store: no server, no event loop tuning
        from . import images_cli

        return asyncio.run(images_cli.run(args))
    if args.command == "ui":  # a client of the API: mint a login code, open the browser
        from .api.ui import command as ui_command

        return asyncio.run(ui_command.run(args))
    if args.command == "trace":  # a client of the podtraces API: no server here
        from . import trace_cli

        return trace_cli.run(args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _install_event_loop()
    _tune_garbage_collector()
    if hasattr(args, "run_command"):  # the subcommands whose module runs them (components, join, migrate)
        return args.run_command(args)
    try:
        asyncio.run(_up(args) if args.command in ("up", "server") else _sim(args))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError, StoreError) as exc:  # bad files, ports in use, invalid stage files, no store
        print(f"podlife: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
