"""kube-controller-manager's settings for the controllers around pods, as ``podlife up`` flags.

What: :class:`ControllerManagerOptions` holds every setting the workload, node and
quota controllers read, named and defaulted as kube-controller-manager names and
defaults them (``--node-monitor-grace-period`` 50 s, ``--terminated-pod-gc-threshold``
12500, ``--concurrent-deployment-syncs`` 5, ...). :func:`add_flags` declares them on an
argparse parser and :func:`from_args` reads them back, so ``podlife up --help`` lists
them and one place holds each default.

``--controllers`` is kube-controller-manager's list: ``*`` is every controller on by
default, ``name`` turns one on, ``-name`` turns one off (``*,-job`` runs all but the Job
controller); :meth:`ControllerManagerOptions.enabled` answers for one name. Names are
kube-controller-manager's canonical ones (``garbage-collector-controller``,
``serviceaccount-controller``, ...); the older short names it still accepts as aliases
(``garbagecollector``, ``serviceaccount``, ``podgc``, ...: :data:`ALIASES`) mean the same
controller, and a name it does not know is refused when the flag is parsed.

``--cluster-signing-duration`` (8760h) caps what the CSR signer issues.

``--max-endpoints-per-slice`` (100) is the EndpointSlice controller's slice size, as in
kube-controller-manager (values below 1 count as 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..machinery.timeutil import go_duration_seconds

#: kube-controller-manager's older ``--controllers`` names (its ``KCMControllerAliases``) -> the canonical names
ALIASES: dict[str, str] = {
    "serviceaccount-token": "serviceaccount-token-controller",
    "endpoint": "endpoints-controller",
    "endpointslice": "endpointslice-controller",
    "endpointslicemirroring": "endpointslice-mirroring-controller",
    "replicationcontroller": "replicationcontroller-controller",
    "podgc": "pod-garbage-collector-controller",
    "resourcequota": "resourcequota-controller",
    "namespace": "namespace-controller",
    "serviceaccount": "serviceaccount-controller",
    "garbagecollector": "garbage-collector-controller",
    "daemonset": "daemonset-controller",
    "job": "job-controller",
    "deployment": "deployment-controller",
    "replicaset": "replicaset-controller",
    "disruption": "disruption-controller",
    "statefulset": "statefulset-controller",
    "cronjob": "cronjob-controller",
    "nodelifecycle": "node-lifecycle-controller",
    "clusterrole-aggregation": "clusterrole-aggregation-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "root-ca-cert-publisher": "root-ca-certificate-publisher-controller",
    "persistentvolume-binder": "persistentvolume-binder-controller",
    "pv-protection": "persistentvolume-protection-controller",
    "pvc-protection": "persistentvolumeclaim-protection-controller",
    "persistentvolume-expander": "persistentvolume-expander-controller",
    "ephemeral-volume": "ephemeral-volume-controller",
    "csrapproving": "certificatesigningrequest-approving-controller",
    "csrsigning": "certificatesigningrequest-signing-controller",
    "csrcleaner": "certificatesigningrequest-cleaner-controller",
    "bootstrapsigner": "bootstrap-signer-controller",
    "tokencleaner": "token-cleaner-controller",
}


def canonical(name: str) -> str:
    """A ``--controllers`` name in its canonical form (an alias resolved; ``-name`` stays negated)."""
    if name.startswith("-"):
        return "-" + ALIASES.get(name[1:], name[1:])
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class ControllerManagerOptions:
    #: ``--controllers``: which controllers run (``*``: all)
    controllers: tuple[str, ...] = ("*",)
    #: node lifecycle (``pkg/controller/nodelifecycle``)
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 50.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    #: pod garbage collection (``pkg/controller/podgc``)
    terminated_pod_gc_threshold: int = 12500
    #: ``--max-endpoints-per-slice``: endpoints per EndpointSlice the EndpointSlice controller writes at most
    max_endpoints_per_slice: int = 100
    #: workers per controller (``--concurrent-*-syncs``)
    concurrent_replicaset_syncs: int = 5
    concurrent_rc_syncs: int = 5
    concurrent_deployment_syncs: int = 5
    concurrent_job_syncs: int = 5
    concurrent_cron_job_syncs: int = 5
    concurrent_daemonset_syncs: int = 2
    concurrent_statefulset_syncs: int = 5
    concurrent_resource_quota_syncs: int = 5
    concurrent_ttl_after_finished_syncs: int = 5
    #: ``--resource-quota-sync-period``: the quota controller's full recount
    resource_quota_sync_period: float = 300.0
    #: ``--pvclaimbinder-sync-period``: how often the PV controller looks at every claim and volume again
    pvclaimbinder_sync_period: float = 15.0
    #: ``--cluster-signing-duration``: the longest certificate the CSR signer issues (8760h)
    cluster_signing_duration: float = 365 * 24 * 3600.0
    #: leader election of the controller set (``--leader-elect`` and its timings)
    leader_elect: bool = True
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0

    def enabled(self, name: str) -> bool:
        """kube-controller-manager's rule: an explicit ``name``/``-name`` wins, else ``*`` turns it on
        (aliases and canonical names alike)."""
        name = canonical(name)
        listed = [canonical(entry) for entry in self.controllers]
        if name in listed:
            return True
        if f"-{name}" in listed:
            return False
        return "*" in listed


def _duration(text: str) -> float:
    seconds = go_duration_seconds(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (want e.g. 40s, 1m0s)")
    return seconds


def _controllers(text: str) -> tuple[str, ...]:
    """``--controllers``: every name known (canonical or alias; ``*``), as kube-controller-manager checks them."""
    from .manager import CONTROLLERS  # the registry imports these options: a late import

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if name != "*" and canonical(name).removeprefix("-") not in CONTROLLERS:
            raise argparse.ArgumentTypeError(f"{name.removeprefix('-')!r} is not in the list of known controllers")
    return names


def _at_least_one(text: str) -> int:
    try:
        return max(1, int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None


#: (flag, attribute, type, help); the default is the dataclass's
_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--controllers", "controllers", _controllers,
     "controllers to run: '*' for all, 'name' to enable, '-name' to disable (e.g. '*,-job')"),
    ("--node-monitor-period", "node_monitor_period", _duration, "how often node health is checked"),
    ("--node-monitor-grace-period", "node_monitor_grace_period", _duration,
     "how long a node may go unheard before it is marked unhealthy (Ready=Unknown)"),
    ("--node-startup-grace-period", "node_startup_grace_period", _duration,
     "how long a starting node may go unheard before it is marked unhealthy"),
    ("--node-eviction-rate", "node_eviction_rate", float,
     "nodes per second whose pods are evicted in a healthy zone"),
    ("--secondary-node-eviction-rate", "secondary_node_eviction_rate", float,
     "nodes per second whose pods are evicted in an unhealthy zone of a large cluster"),
    ("--unhealthy-zone-threshold", "unhealthy_zone_threshold", float,
     "fraction of not-Ready nodes (at least 3) that makes a zone unhealthy"),
    ("--large-cluster-size-threshold", "large_cluster_size_threshold", int,
     "zones with more nodes than this use the secondary eviction rate when unhealthy"),
    ("--terminated-pod-gc-threshold", "terminated_pod_gc_threshold", int,
     "terminated pods kept before the oldest are deleted (<= 0: none deleted)"),
    ("--max-endpoints-per-slice", "max_endpoints_per_slice", _at_least_one,
     "endpoints per EndpointSlice the EndpointSlice controller writes at most"),
    ("--concurrent-replicaset-syncs", "concurrent_replicaset_syncs", int, "ReplicaSets synced at once"),
    ("--concurrent-rc-syncs", "concurrent_rc_syncs", int, "ReplicationControllers synced at once"),
    ("--concurrent-deployment-syncs", "concurrent_deployment_syncs", int, "Deployments synced at once"),
    ("--concurrent-job-syncs", "concurrent_job_syncs", int, "Jobs synced at once"),
    ("--concurrent-cron-job-syncs", "concurrent_cron_job_syncs", int, "CronJobs synced at once"),
    ("--concurrent-daemonset-syncs", "concurrent_daemonset_syncs", int, "DaemonSets synced at once"),
    ("--concurrent-statefulset-syncs", "concurrent_statefulset_syncs", int, "StatefulSets synced at once"),
    ("--concurrent-resource-quota-syncs", "concurrent_resource_quota_syncs", int, "ResourceQuotas synced at once"),
    ("--concurrent-ttl-after-finished-syncs", "concurrent_ttl_after_finished_syncs", int,
     "finished Jobs whose TTL is handled at once"),
    ("--resource-quota-sync-period", "resource_quota_sync_period", _duration,
     "how often every quota's usage is recounted in full"),
    ("--pvclaimbinder-sync-period", "pvclaimbinder_sync_period", _duration,
     "how often the PV controller syncs every claim and volume again"),
    ("--cluster-signing-duration", "cluster_signing_duration", _duration,
     "the longest validity of certificates the CSR signer issues (a request may ask for less)"),
    ("--leader-elect-lease-duration", "leader_elect_lease_duration", _duration,
     "how long a leader's Lease holds without renewal"),
    ("--leader-elect-renew-deadline", "leader_elect_renew_deadline", _duration,
     "how long the leader keeps trying to renew before it steps down"),
    ("--leader-elect-retry-period", "leader_elect_retry_period", _duration,
     "how often candidates try to acquire or renew the Lease"),
]


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer() and value >= 1:
        whole = int(value)
        if whole >= 3600:  # Go's Duration form: 8760h0m0s
            return f"{whole // 3600}h{whole % 3600 // 60}m{whole % 60}s"
        return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"
    return str(value)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Declare kube-controller-manager's flags on ``parser`` (``podlife up``)."""
    defaults = ControllerManagerOptions()
    group = parser.add_argument_group("controller manager", "kube-controller-manager's settings")
    for flag, attr, type_, help_ in _FLAGS:
        default = getattr(defaults, attr)
        shown = _shown(default) if type_ in (_duration, _controllers) else str(default)
        metavar = {_duration: "DURATION", _controllers: "NAMES", int: "N", _at_least_one: "N", float: "X"}[type_]
        if type_ is _controllers:
            from .manager import CONTROLLERS  # the registry imports these options: a late import

            help_ = f"{help_}; all controllers: {', '.join(sorted(CONTROLLERS))}"
        group.add_argument(flag, dest=f"kcm_{attr}", type=type_, default=default, metavar=metavar,
                           help=f"{help_} (default: {shown})")
    group.add_argument("--leader-elect", dest="kcm_leader_elect", action=argparse.BooleanOptionalAction,
                       default=defaults.leader_elect,
                       help="take a Lease before running the controllers, so only one controller manager acts "
                            "(default: on)")


def from_args(args: argparse.Namespace) -> ControllerManagerOptions:
    """The options :func:`add_flags` declared, read back from parsed arguments."""
    values = {attr: getattr(args, f"kcm_{attr}") for _, attr, _, _ in _FLAGS}
    return ControllerManagerOptions(leader_elect=args.kcm_leader_elect, **values)
