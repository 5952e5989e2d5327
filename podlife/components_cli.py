"""``podlife scheduler`` and ``podlife controller-manager``: control-plane components in their own process.

Design
------
kube-scheduler and kube-controller-manager run apart from the API server, each as a
client of it (:class:`~podlife.client.http.HTTPClient` from ``--kubeconfig``: the
component kubeconfigs ``podlife up``/``podlife server`` write under
``DATA_DIR/kubeconfigs/``, or any other), and any number of copies may run: they are
active/standby on a ``coordination.k8s.io`` Lease
(:func:`~podlife.client.leaderelection.run_while_leading`):

* ``podlife scheduler``: :class:`~podlife.scheduler.scheduler.Scheduler` while holding
  ``kube-system/kube-scheduler``; ``--config`` is the KubeSchedulerConfiguration that
  ``podlife up --scheduler-config`` takes (:mod:`podlife.scheduler.config`, checked
  before anything starts), whose ``leaderElection`` section is honoured; the
  ``--leader-elect*`` flags given on the command line override it (kube-scheduler's rule).
* ``podlife controller-manager``: the :class:`~podlife.controllers.manager.ControllerManager`
  (``--controllers`` and the other flags of :mod:`podlife.controllers.options`) and the
  network controller (:class:`~podlife.network.controller.NetworkController`, the
  ``network.podlife.io`` Ports and Subnets), both while holding
  ``kube-system/kube-controller-manager``: one Lease for both, so the pod addresses are
  handed out by the one leader only, and ``podlife up`` runs them the same way.

A leader that cannot renew its Lease within the renew deadline stops its work and the
process exits with code 1 after logging "leaderelection lost", as kube-scheduler and
kube-controller-manager do (their supervisor restarts them as a standby); SIGTERM or
SIGINT stop it cleanly (exit 0) and release the Lease, so a standby takes over at once.
A candidate's identity is ``<hostname>_<uuid>``, new for each process.

Identities: kube-controller-manager's ``--use-service-account-credentials`` (off by
default, as there; kubeadm turns it on): each controller then acts as its service
account ``kube-system/<account>`` (created if missing), with a token from the
TokenRequest API (one hour, renewed when 80% of it has passed) -- what the
``system:kube-controller-manager`` role allows (``create serviceaccounts/token``). Without
it every controller acts with the process's own credentials, which must then be allowed
everything the controllers do (the admin kubeconfig is; ``controller-manager.conf``'s
user is not). The shared informers, the Lease and the service-account token controller
always use the process's own credentials.

Writes: nothing beyond what the components write (and, with service-account
credentials, the controllers' ServiceAccounts and TokenRequests).
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import ipaddress
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client.base import Client, Obj, Resource, WatchEvent
from .client.leaderelection import LeaderElectionConfig, LeaderElectionLost, run_while_leading, together
from .controllers.manager import LEADER_LEASE as CONTROLLER_MANAGER_LEASE, LEADER_NAMESPACE
from .controllers.options import ControllerManagerOptions
from .flag_values import go_bool, go_duration
from .machinery.timeutil import go_duration_seconds

if TYPE_CHECKING:
    from .client.http import HTTPClient
    from .scheduler.config import SchedulerConfig

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "kube-scheduler"
#: the network controller's account (its RBAC role: ``system:controller:network-controller``)
NETWORK_CONTROLLER_ACCOUNT = "network-controller"
#: a controller's TokenRequest lifetime, and the share of it after which it is renewed (client-go's)
TOKEN_SECONDS = 3600
TOKEN_RENEW_AFTER = 0.8


# ---- leader election settings --------------------------------------------------------------


def scheduler_election(settings: SchedulerConfig | None,
                       flags: Mapping[str, Any] | None = None) -> LeaderElectionConfig:
    """kube-scheduler's leader election: its defaults, then the config file's ``leaderElection``, then the flags
    given on the command line (``flags``: :class:`LeaderElectionConfig` field -> value)."""
    section: Mapping[str, Any] = ((settings.raw if settings is not None else {}) or {}).get("leaderElection") or {}
    values: dict[str, Any] = {"resource_name": SCHEDULER_LEASE, "resource_namespace": LEADER_NAMESPACE}
    for key, field in (("leaderElect", "leader_elect"), ("resourceName", "resource_name"),
                       ("resourceNamespace", "resource_namespace")):
        if section.get(key) not in (None, ""):
            values[field] = section[key]
    for key, field in (("leaseDuration", "lease_duration"), ("renewDeadline", "renew_deadline"),
                       ("retryPeriod", "retry_period")):
        seconds = go_duration_seconds(str(section[key])) if section.get(key) else None
        if seconds is not None:
            values[field] = seconds
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    return LeaderElectionConfig(**values)


def controller_manager_election(options: ControllerManagerOptions, name: str = CONTROLLER_MANAGER_LEASE,
                                namespace: str = LEADER_NAMESPACE) -> LeaderElectionConfig:
    """kube-controller-manager's leader election, from its options (``--leader-elect*``)."""
    return LeaderElectionConfig(name, namespace, leader_elect=options.leader_elect,
                                lease_duration=options.leader_elect_lease_duration,
                                renew_deadline=options.leader_elect_renew_deadline,
                                retry_period=options.leader_elect_retry_period)


# ---- flags ---------------------------------------------------------------------------------


def _add_kubeconfig_flag(parser: argparse.ArgumentParser, component: str) -> None:
    parser.add_argument("--kubeconfig", type=Path, required=True, metavar="FILE",
                        help=f"kubeconfig with the API server, its CA and this component's credentials (podlife's "
                             f"own: DATA_DIR/kubeconfigs/{component}.conf)")


def _add_lease_name_flags(parser: argparse.ArgumentParser, lease: str, *, defaults_from_config: bool) -> None:
    later = " (default: the config file's, else %s)" if defaults_from_config else " (default: %s)"
    parser.add_argument("--leader-elect-resource-name", default=None if defaults_from_config else lease,
                        metavar="NAME", help="the Lease candidates compete for" + later % lease)
    parser.add_argument("--leader-elect-resource-namespace", default=None if defaults_from_config else LEADER_NAMESPACE,
                        metavar="NAMESPACE", help="its namespace" + later % LEADER_NAMESPACE)


def _add_scheduler_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scheduler", help="run the scheduler in its own process, active/standby on the Lease kube-system/kube-scheduler",
        description="kube-scheduler apart from the API server: schedules pods over HTTP while it holds the Lease "
                    "kube-system/kube-scheduler, stands by while another holds it, exits 1 when it loses it "
                    "('leaderelection lost'). See docs/operations.md.")
    _add_kubeconfig_flag(p, "scheduler")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1, YAML or JSON), as podlife up "
                        "--scheduler-config takes it; its leaderElection section is honoured; checked before "
                        "anything starts (default: Kubernetes' default profile)")
    group = p.add_argument_group("leader election", "flags given here override the config file's leaderElection")
    group.add_argument("--leader-elect", nargs="?", const=True, default=None, type=go_bool, metavar="BOOL",
                       help="take the Lease before scheduling, so only one scheduler acts (default: true)")
    for flag, default, help_ in (
            ("--leader-elect-lease-duration", "15s", "how long a standby waits after the leader's last renewal "
                                                     "before taking the Lease"),
            ("--leader-elect-renew-deadline", "10s", "how long the leader retries renewing before it stops"),
            ("--leader-elect-retry-period", "2s", "how often candidates try to acquire or renew the Lease")):
        group.add_argument(flag, type=go_duration, default=None, metavar="DURATION", help=f"{help_} (default: {default})")
    _add_lease_name_flags(group, SCHEDULER_LEASE, defaults_from_config=True)
    p.set_defaults(run_command=run_scheduler)


def _add_controller_manager_parser(subparsers: Any) -> None:
    from .controllers.options import add_flags

    p = subparsers.add_parser(
        "controller-manager", conflict_handler="resolve",
        help="run the controllers and the network controller in their own process, active/standby on the Lease "
             "kube-system/kube-controller-manager",
        description="kube-controller-manager apart from the API server: runs the controllers (--controllers) and "
                    "podlife's network controller over HTTP while it holds the Lease "
                    "kube-system/kube-controller-manager, stands by while another holds it, exits 1 when it loses "
                    "it ('leaderelection lost'). See docs/operations.md.")
    _add_kubeconfig_flag(p, "controller-manager")
    add_flags(p)
    # kube-controller-manager's spelling --leader-elect[=BOOL] (replacing add_flags' one; --no-leader-elect stays)
    p.add_argument("--leader-elect", dest="kcm_leader_elect", nargs="?", const=True, default=True, type=go_bool,
                   metavar="BOOL", help="take the Lease before running the controllers, so only one controller "
                                        "manager acts (default: true)")
    p.add_argument("--no-leader-elect", dest="kcm_leader_elect", action="store_false",
                   help="the same as --leader-elect=false: run at once, without a Lease")
    _add_lease_name_flags(p, CONTROLLER_MANAGER_LEASE, defaults_from_config=False)
    p.add_argument("--use-service-account-credentials", nargs="?", const=True, default=False, type=go_bool,
                   metavar="BOOL", help="each controller acts as its own service account kube-system/<account>, with "
                                        "a TokenRequest token (default: false, as kube-controller-manager: every "
                                        "controller uses this process's credentials)")
    p.add_argument("--root-ca-file", type=Path, default=None, metavar="FILE",
                   help="the CA bundle published to namespaces (kube-root-ca.crt) and put in token Secrets "
                        "(default: the kubeconfig's CA)")
    p.add_argument("--service-account-private-key-file", type=Path, default=None, metavar="FILE",
                   help="PEM key legacy service-account token Secrets are signed with (podlife's: DATA_DIR/pki/sa.key; "
                        "default: none, the token controller does not run)")
    p.add_argument("--cluster-signing-cert-file", type=Path, default=None, metavar="FILE",
                   help="PEM CA certificate the CSR signer issues certificates with (podlife's: DATA_DIR/pki/ca.crt; "
                        "default: none, the signer does not run)")
    p.add_argument("--cluster-signing-key-file", type=Path, default=None, metavar="FILE",
                   help="PEM key of --cluster-signing-cert-file (podlife's: DATA_DIR/pki/ca.key)")
    network = p.add_argument_group("network controller", "podlife's pod network (network.podlife.io Ports, Subnets)")
    network.add_argument("--network-controller", nargs="?", const=True, default=True, type=go_bool, metavar="BOOL",
                         help="run the network controller too, under the same Lease (default: true)")
    network.add_argument("--cluster-cidr", default="10.244.0.0/16", metavar="CIDR",
                         help="the range pod addresses come from (default: 10.244.0.0/16, podlife up's)")
    network.add_argument("--subnet-per", choices=("namespace", "node"), default="namespace",
                         help="pod subnets per namespace (default) or a block per node, as podlife up's flag")
    network.add_argument("--port-pool-size", type=int, default=0, metavar="N",
                         help="addresses kept reserved per namespace (or node) (default: 0, no pool)")
    network.add_argument("--cluster-dns", default="10.96.0.10", metavar="IPS",
                         help="comma-separated nameservers given to pods' networks (default: 10.96.0.10)")
    p.set_defaults(run_command=run_controller_manager)


def add_parsers(subparsers: Any) -> None:
    """Register ``podlife scheduler`` and ``podlife controller-manager``."""
    _add_scheduler_parser(subparsers)
    _add_controller_manager_parser(subparsers)


# ---- running -------------------------------------------------------------------------------


def _fail(command: str, message: object) -> int:
    print(f"podlife {command}: {message}", file=sys.stderr)
    return 1


def _clients(kubeconfig: Path) -> tuple[HTTPClient, HTTPClient]:
    """The component's client and a second one for the Lease alone (renewals never queue behind the work's
    requests, as client-go gives leader election its own client)."""
    from .client.http import HTTPClient

    return HTTPClient.from_kubeconfig(kubeconfig), HTTPClient.from_kubeconfig(kubeconfig)


async def _run_until_signal(command: str, work: Callable[[], Awaitable[None]],
                            cleanup: Callable[[], Awaitable[None]]) -> int:
    """Run ``work`` until it ends or SIGTERM/SIGINT cancels it; the exit code: 0 stopped, 1 lost or failed."""
    from .machinery.errors import ApiError

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("podlife %s stopped", command)
        return 0
    except LeaderElectionLost as exc:
        log.error("leaderelection lost: %s", exc)
        return 1
    except (ApiError, OSError, ValueError) as exc:
        return _fail(command, exc)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await cleanup()
    log.error("podlife %s: its work ended", command)
    return 1


def run_scheduler(args: argparse.Namespace) -> int:
    """``podlife scheduler``: check the configuration, then schedule while leading."""
    from .scheduler.config import SchedulerConfigError, load_config

    try:
        settings = load_config(args.config) if args.config is not None else None
    except SchedulerConfigError as exc:
        return _fail("scheduler", exc)
    election = scheduler_election(settings, {
        "leader_elect": args.leader_elect, "lease_duration": args.leader_elect_lease_duration,
        "renew_deadline": args.leader_elect_renew_deadline, "retry_period": args.leader_elect_retry_period,
        "resource_name": args.leader_elect_resource_name, "resource_namespace": args.leader_elect_resource_namespace})
    if problems := election.problems():
        return _fail("scheduler", "; ".join(problems))
    try:
        client, lease_client = _clients(args.kubeconfig)
    except (OSError, ValueError, KeyError) as exc:
        return _fail("scheduler", f"cannot load kubeconfig {args.kubeconfig}: {exc}")
    return asyncio.run(_schedule(client, lease_client, settings, election))


async def _schedule(client: HTTPClient, lease_client: HTTPClient, settings: SchedulerConfig | None,
                    election: LeaderElectionConfig) -> int:
    from .controllers.manager import candidate_identity
    from .scheduler.scheduler import Scheduler

    identity = candidate_identity()
    scheduler = Scheduler(client, **(settings.scheduler_options() if settings is not None else {}))
    log.info("podlife scheduler: identity %s, Lease %s/%s (leader election %s), API server %s", identity,
             election.resource_namespace, election.resource_name, "on" if election.leader_elect else "off",
             client.server)

    async def cleanup() -> None:
        await client.close()
        await lease_client.close()

    return await _run_until_signal("scheduler", lambda: run_while_leading(lease_client, election, identity,
                                                                          scheduler.run), cleanup)


class ServiceAccountCredentials:
    """``--use-service-account-credentials``: a client per controller account, authenticated with a TokenRequest
    token of ``kube-system/<account>`` that is renewed before it expires (client-go's dynamic client builder)."""

    def __init__(self, root: HTTPClient, kubeconfig: Path) -> None:
        from .client.kubeconfig import load_kubeconfig

        self.root = root
        self.config = load_kubeconfig(kubeconfig)
        self.clients: dict[str, HTTPClient] = {}
        self._renew_at: dict[str, float] = {}

    async def prepare(self, accounts: set[str]) -> None:
        """A client with a fresh token for each account (its ServiceAccount created when missing)."""
        from .client.http import HTTPClient

        for account in sorted(accounts):
            token = await self._token(account)
            client = self.clients.get(account)
            if client is None:
                self.clients[account] = HTTPClient(self.config.server, token=token, ca_data=self.config.ca)
            else:
                _set_bearer_token(client, token)

    def client_for(self, account: str) -> Client:
        return ReadsAsClient(self.clients[account], self.root)

    async def _token(self, account: str) -> str:
        from .controllers.serviceaccounts import SERVICE_ACCOUNTS
        from .machinery.errors import ApiError

        try:
            await self.root.get(SERVICE_ACCOUNTS, account, LEADER_NAMESPACE)
        except ApiError as exc:
            if exc.code != 404:
                raise
            body = {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": account, "namespace": LEADER_NAMESPACE}}
            try:
                await self.root.create(SERVICE_ACCOUNTS, body, LEADER_NAMESPACE)
            except ApiError as again:
                if again.code != 409:  # made meanwhile: fine
                    raise
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"audiences": [], "expirationSeconds": TOKEN_SECONDS}}
        answer = await self.root.create_subresource(SERVICE_ACCOUNTS, account, "token", request, LEADER_NAMESPACE)
        lifetime = float((answer.get("spec") or {}).get("expirationSeconds") or TOKEN_SECONDS)
        self._renew_at[account] = time.monotonic() + lifetime * TOKEN_RENEW_AFTER
        return str((answer.get("status") or {}).get("token") or "")

    async def renew_forever(self) -> None:
        """Renew each token once 80% of its lifetime has passed (a failed renewal is retried a minute later)."""
        from .machinery.errors import ApiError

        while True:
            due = min(self._renew_at.values(), default=time.monotonic() + 60.0)
            await asyncio.sleep(max(1.0, due - time.monotonic()))
            for account, when in list(self._renew_at.items()):
                if when <= time.monotonic():
                    try:
                        _set_bearer_token(self.clients[account], await self._token(account))
                    except (ApiError, OSError) as exc:
                        log.warning("could not renew the token of kube-system/%s: %s", account, exc)
                        self._renew_at[account] = time.monotonic() + 60.0

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


class ReadsAsClient(Client):
    """A controller's client over HTTP: writes as its service account, reads also as the controller manager.

    What ``podlife up``'s in-process clients do with ``reads_as``: in Kubernetes the
    controllers read through the manager's shared informers and listers, so a
    controller's own role need not allow its reads. Lists and watches go as the manager
    (its role lists and watches everything); a get goes as the controller and, refused,
    again as the manager.
    """

    def __init__(self, writer: Client, reader: Client) -> None:
        self.writer = writer
        self.reader = reader

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        from .machinery.errors import ApiError

        try:
            return await self.writer.get(res, name, namespace)
        except ApiError as exc:
            if exc.code != 403:
                raise
            return await self.reader.get(res, name, namespace)

    async def list(self, res: Resource, namespace: str | None = None, **options: Any) -> Obj:
        return await self.reader.list(res, namespace, **options)

    def watch(self, res: Resource, namespace: str | None = None, **options: Any) -> AsyncIterator[WatchEvent]:
        return self.reader.watch(res, namespace, **options)

    async def discover(self) -> builtins.list[Resource]:
        return await self.reader.discover()

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return await self.writer.create(res, obj, namespace)

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        return await self.writer.create_subresource(res, name, subresource, obj, namespace)

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        return await self.writer.update(res, obj, subresource=subresource)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **options: Any) -> Obj:
        return await self.writer.patch(res, name, patch, namespace, **options)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **options: Any) -> Obj:
        return await self.writer.delete(res, name, namespace, **options)


def _set_bearer_token(client: HTTPClient, token: str) -> None:
    """A new bearer token for a client's next requests (its open watches keep theirs until they end)."""
    value = f"Bearer {token}"
    client._headers["Authorization"] = value  # noqa: SLF001 -- the headers a new session starts with
    if client._session is not None and not client._session.closed:  # noqa: SLF001
        client._session.headers["Authorization"] = value  # noqa: SLF001 -- the open session's default headers


def _controller_accounts(options: ControllerManagerOptions, network: bool) -> set[str]:
    """The service accounts the enabled controllers act as (the token controller acts as the process)."""
    from .controllers.manager import CONTROLLERS

    accounts = {account for name, (_, _, account) in CONTROLLERS.items() if account and options.enabled(name)}
    return accounts | ({NETWORK_CONTROLLER_ACCOUNT} if network else set())


def run_controller_manager(args: argparse.Namespace) -> int:
    """``podlife controller-manager``: read the flags and keys, then run the controllers while leading."""
    from .controllers.options import from_args

    options = from_args(args)
    election = controller_manager_election(options, args.leader_elect_resource_name,
                                           args.leader_elect_resource_namespace)
    if problems := election.problems():
        return _fail("controller-manager", "; ".join(problems))
    try:
        from .client.kubeconfig import load_kubeconfig

        config = load_kubeconfig(args.kubeconfig)
        root_ca = args.root_ca_file.read_text() if args.root_ca_file else (config.ca or b"").decode()
        token_generator = _legacy_token_generator(args.service_account_private_key_file)
        signing = _cluster_signing(args.cluster_signing_cert_file, args.cluster_signing_key_file)
        client, lease_client = _clients(args.kubeconfig)
    except (OSError, ValueError, KeyError) as exc:
        return _fail("controller-manager", exc)
    if args.port_pool_size < 0:
        return _fail("controller-manager", "--port-pool-size must be 0 or more")
    try:
        ipaddress.ip_network(args.cluster_cidr)
    except ValueError as exc:
        return _fail("controller-manager", f"invalid --cluster-cidr: {exc}")
    return asyncio.run(_manage(args, options, election, client, lease_client, root_ca, token_generator, signing))


def _cluster_signing(cert_file: Path | None, key_file: Path | None) -> tuple[bytes, bytes]:
    """``--cluster-signing-cert-file`` and ``--cluster-signing-key-file``'s contents (both or neither)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("--cluster-signing-cert-file and --cluster-signing-key-file go together")
    if cert_file is None or key_file is None:
        return b"", b""
    return cert_file.read_bytes(), key_file.read_bytes()


def _legacy_token_generator(key_file: Path | None) -> Any:
    """``--service-account-private-key-file``'s signer of legacy tokens (None without it)."""
    if key_file is None:
        return None
    from .api.identity import load_signing_key
    from .api.legacy_tokens import LegacyTokenGenerator

    return LegacyTokenGenerator(load_signing_key(key_file.read_bytes())).generate


async def _manage(args: argparse.Namespace, options: ControllerManagerOptions, election: LeaderElectionConfig,
                  client: HTTPClient, lease_client: HTTPClient, root_ca: str, token_generator: Any,
                  signing: tuple[bytes, bytes] = (b"", b"")) -> int:
    from .controllers.manager import ControllerManager, candidate_identity
    from .network.controller import NetworkController

    identity = candidate_identity()
    credentials = ServiceAccountCredentials(client, args.kubeconfig) if args.use_service_account_credentials else None
    log.info("podlife controller-manager: identity %s, Lease %s/%s (leader election %s), API server %s, "
             "service-account credentials %s", identity, election.resource_namespace, election.resource_name,
             "on" if election.leader_elect else "off", client.server, "on" if credentials else "off")

    def client_for(account: str) -> Client:
        return credentials.client_for(account) if credentials is not None else client

    async def lead() -> None:
        """One leadership term: fresh tokens, then the controllers and the network controller together."""
        works: list[Callable[[], Awaitable[None]]] = []
        if credentials is not None:
            await credentials.prepare(_controller_accounts(options, args.network_controller))
            works.append(credentials.renew_forever)
        manager = ControllerManager(client_for, client, replace(options, leader_elect=False), root_ca=root_ca,
                                    token_generator=token_generator, identity=identity,
                                    signing_cert=signing[0], signing_key=signing[1])
        works.append(manager.run)
        if args.network_controller:
            dns = tuple(ip.strip() for ip in args.cluster_dns.split(",") if ip.strip())
            works.append(NetworkController(client_for(NETWORK_CONTROLLER_ACCOUNT), pod_cidr=args.cluster_cidr,
                                           subnet_per=args.subnet_per, port_pool_size=args.port_pool_size,
                                           dns_nameservers=dns).run)
        await together(*works)()

    async def cleanup() -> None:
        if credentials is not None:
            await credentials.close()
        await client.close()
        await lease_client.close()

    return await _run_until_signal("controller-manager",
                                   lambda: run_while_leading(lease_client, election, identity, lead), cleanup)
