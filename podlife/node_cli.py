"""``podlife node``: a node on another host joins the cluster with a bootstrap token, then runs its kubelet.

    podlife node --server https://HOST:PORT (--token-file F | --token T)
                 (--discovery-token-ca-cert-hash sha256:<hex> ... | --discovery-token-unsafe-skip-ca-verification)
                 [--node-name NAME] [--node-ip IP] [--data-dir DIR] [--container-runtime auto|oci|process]
                 [--allowed-image-registries LIST] [--cluster-dns IPS] [--cluster-domain DOMAIN]
                 [--rotate-server-certificates[=false]] [--discovery-timeout DURATION]

What ``kubeadm join`` and the kubelet do on a new node, in one process (docs/joining.md):

1. **join** (:func:`podlife.node.join.join`): discovery of ``kube-public/cluster-info`` checked
   with the token's JWS and the CA pin, then the TLS bootstrap -- a kubelet client
   CertificateSigningRequest made with the token, auto-approved and signed -- written to
   ``DATA_DIR/kubelet.conf`` and ``DATA_DIR/pki/``. A restart with the same data directory
   reuses ``kubelet.conf`` while its certificate is valid: no token needed then, no new request.
2. **kubelet** (:class:`podlife.kubelet.kubelet.Kubelet`) as ``system:node:<name>`` over HTTPS
   with that kubeconfig: registers the Node, renews its Lease, runs the pods bound to it with
   the chosen runtime (``--container-runtime``: real containers when runc and conmon are there
   and this is root, else host processes; :func:`podlife.kubelet.runtimes.choose_runtime`),
   serves logs, exec and metrics on ``--node-ip`` (default: this host's address towards the
   server; nothing is sent to find it) at a free port.
2b. **pod network** (:func:`_pod_network`): with real containers, as root with ``ip``, the node
   gets its own node network namespace and fabric (:mod:`podlife.nodenet.fabric`, named by the
   data directory's cluster id), its CNI daemon and ``podlife-cni`` exactly as ``podlife up``'s
   local nodes do (:mod:`podlife.nodenet.wiring`), and the VXLAN overlay to the other hosts'
   fabrics (:mod:`podlife.nodenet.overlay`: its VTEP published on its Node, routes to the other
   nodes' pods from their Ports); all of it is deleted when the node stops. Otherwise pod
   networking is the records-only CNI step (the pod's Port from the network controller).
3. **serving certificate** (``--rotate-server-certificates``, on by default here since podlife's
   API server checks kubelets' certificates with the cluster CA): a ``kubernetes.io/kubelet-serving``
   request as the node, which an admin approves (``kubectl certificate approve``); until then the
   kubelet serves with a self-signed certificate and ``kubectl logs`` to this node fails TLS.

SIGTERM or SIGINT stop the kubelet (every pod process it started) and exit 0. A join that
fails is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .machinery import bootstrap_token as bt
from .flag_values import go_bool, go_duration
from .node.join import JoinError

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".podlife-node")
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def default_node_name() -> str:
    """The host name, lower-cased and made a valid node name (the kubelet's ``--hostname-override`` default)."""
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.") or "node"
    return name[:63]


def address_towards(server: str) -> str:
    """This host's address on the route to ``server`` (a UDP socket's local end after connect: no packet is sent)."""
    parts = urlsplit(server)
    host = parts.hostname or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_DGRAM)
    except OSError:
        return "127.0.0.1"
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(sockaddr)
        except OSError:
            return "127.0.0.1"
        return str(probe.getsockname()[0])


def read_token(args: argparse.Namespace) -> tuple[str, str]:
    """(id, secret) of ``--token`` or the first line of ``--token-file``; JoinError if malformed or missing."""
    if args.token_file is not None:
        try:
            text = args.token_file.read_text().strip()
        except OSError as exc:
            raise JoinError(f"couldn't read the token file {args.token_file}: {exc.strerror}") from None
    elif args.token is not None:
        text = args.token.strip()
    else:
        raise JoinError("a bootstrap token is needed to join: --token-file FILE or --token TOKEN")
    parsed = bt.parse_token(text)
    if parsed is None:
        raise JoinError(f'the bootstrap token "{text}" was not of the form "{bt.TOKEN_PATTERN.pattern}"')
    return parsed


def check_server(server: str) -> str:
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise JoinError(f'--server must be an https URL such as https://HOST:6443, not "{server}"')
    return server.rstrip("/")


def check_node_name(name: str) -> str:
    """A Node's name must be a DNS subdomain (RFC 1123), as the API server validates it."""
    if len(name) > 253 or not NODE_NAME.fullmatch(name):
        raise JoinError(f'invalid --node-name "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
    return name


def serving_context(pki: Path, node_name: str, node_ip: str) -> tuple[ssl.SSLContext, bool]:
    """The kubelet endpoint's TLS: the cluster-issued serving certificate if there is one, else a self-signed one;
    clients may show a certificate the cluster CA signed (the API server's). Whether it is the issued one."""
    from .node.join import issued_serving_certificate, self_signed_serving_certificate

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    issued = issued_serving_certificate(pki, node_name)
    if issued is not None:
        ctx.load_cert_chain(issued)
        return ctx, True
    ctx.load_cert_chain(*self_signed_serving_certificate(pki, node_name, [node_ip]))
    return ctx, False


async def _serving_certificate(client: Any, node_name: str, node_ip: str, pki: Path, ctx: ssl.SSLContext) -> None:
    """Ask for the serving certificate and load it into the live TLS context once issued."""
    from .node.join import request_serving_certificate

    try:
        path = await request_serving_certificate(client, node_name, [node_ip], pki)
    except JoinError as exc:
        log.error("serving certificate: %s", exc)
        return
    ctx.load_cert_chain(path)
    log.info("node %s serves with its issued certificate (%s)", node_name, path)


def _runtime(args: argparse.Namespace, root_dir: Path) -> tuple[Any, str]:
    from .kubelet.dns import DNSSettings
    from .kubelet.oci_pods import OCIPodRuntime
    from .kubelet.runtimes import choose_runtime

    registries = tuple(r.strip() for r in args.allowed_image_registries.split(",") if r.strip())
    runtime, why = choose_runtime(root_dir, args.container_runtime, allowed_registries=registries)
    if isinstance(runtime, OCIPodRuntime):
        runtime.dns = DNSSettings(tuple(ip.strip() for ip in args.cluster_dns.split(",") if ip.strip()),
                                  args.cluster_domain)
    return runtime, why


async def _node(args: argparse.Namespace) -> None:
    """Join, then run the kubelet (and the pod network) until cancelled; undo it all, newest first."""
    from .client.http import HTTPClient
    from .kubelet.kubelet import Kubelet
    from .node.join import join, usable_kubeconfig

    server = check_server(args.server)
    node_name = check_node_name(args.node_name)
    data_dir = args.data_dir.resolve()
    node_ip = args.node_ip or address_towards(server)
    kubeconfig = data_dir / "kubelet.conf"
    if usable_kubeconfig(kubeconfig, node_name, server) is None:  # the token is needed only to join
        token_id, token_secret = read_token(args)
        await join(server, token_id, token_secret, node_name, data_dir,
                   pins=args.discovery_token_ca_cert_hash or [],
                   unsafe_skip_ca_verification=args.discovery_token_unsafe_skip_ca_verification,
                   discovery_timeout=args.discovery_timeout)
    else:
        log.info("node %s: reusing the client certificate of %s", node_name, kubeconfig)
    client = HTTPClient.from_kubeconfig(kubeconfig)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(client.close)
        root_dir = data_dir / "kubelet"
        runtime, why = _runtime(args, root_dir)
        cni, network = await _pod_network(stack, client, node_name, node_ip, data_dir, runtime)
        tls, issued = serving_context(data_dir / "pki", node_name, node_ip)
        kubelet = Kubelet(client, node_name, root_dir=root_dir, cni=cni,
                          runtime=runtime, runtime_reason=why, address=node_ip, tls=tls)
        await kubelet.start()
        stack.push_async_callback(kubelet.stop)  # before the CNI daemon and the namespaces (the pods' DELs)
        print(f"podlife node {node_name} joined {server} as system:node:{node_name}; pods run as "
              f"{runtime.description} ({why}); {network}; kubelet at {kubelet.server.url}", flush=True)
        if args.rotate_server_certificates and not issued:
            stack.push_async_callback(_cancelled, asyncio.ensure_future(
                _serving_certificate(client, node_name, node_ip, data_dir / "pki", tls)))
        await asyncio.Event().wait()  # until SIGTERM/SIGINT cancel us


async def _pod_network(stack: contextlib.AsyncExitStack, client: Any, node_name: str, node_ip: str, data_dir: Path,
                       runtime: Any) -> tuple[Any, str]:
    """The kubelet's CNI plugin and a phrase saying what it is: the node's namespaces, CNI daemon and overlay
    when pods run as real containers and this is root with ``ip`` (their undoing pushed on ``stack``), else the
    records-only step."""
    from .kubelet.oci_pods import OCIPodRuntime
    from .node.cni import CNIPlugin
    from .nodenet.fabric import DEFAULT_MTU, NodeNetworks
    from .nodenet.overlay import VXLAN_OVERHEAD, Overlay, OverlayAgent
    from .nodenet.wiring import pod_network_possible, start_node_cni

    if not pod_network_possible(isinstance(runtime, OCIPodRuntime)):
        return CNIPlugin(node_name, host_ip=node_ip), "pod addresses recorded only (no pod network)"
    mtu = DEFAULT_MTU - VXLAN_OVERHEAD  # what fits in a VXLAN datagram on a 1500-byte LAN
    networks = NodeNetworks(data_dir, [node_name], mtu=mtu)
    stack.push_async_callback(asyncio.to_thread, networks.teardown)
    network = (await asyncio.to_thread(networks.setup))[0]
    overlay = Overlay(networks.cluster_id, networks.fabric_netns, node_ip, mtu)
    agent = OverlayAgent(client, [node_name], overlay)
    agent.vtep = await asyncio.to_thread(overlay.setup)
    daemon, plugin = await start_node_cni(client, network, data_dir / "kubelet.conf", data_dir / "kubelet", node_ip)
    stack.push_async_callback(daemon.stop)
    stack.push_async_callback(_cancelled, asyncio.ensure_future(agent.run()))
    log.info("node %s: network namespace %s, fabric %s, overlay %s (VTEP %s)", node_name, network.netns,
             networks.fabric_netns, overlay.device, agent.vtep.annotation())
    return plugin, f"pod network in {network.netns}, overlay {overlay.device} from {node_ip}"


async def _cancelled(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _until_signal(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(_node(args))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("podlife node stopped")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 1


def run(args: argparse.Namespace) -> int:
    """``podlife node``'s exit code: 0 when stopped by a signal, 1 (one line on stderr) when it cannot go on."""
    from .machinery.errors import ApiError
    from .nodenet.fabric import NodeNetworkError
    from .nodenet.overlay import OverlayError

    try:
        return asyncio.run(_until_signal(args))
    except JoinError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
    except (OSError, ValueError, NodeNetworkError, OverlayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return 1


def add_parser(subparsers: Any) -> None:
    node = subparsers.add_parser(
        "node", help="join this host to a cluster as a node with a bootstrap token, and run its kubelet",
        description="Join a cluster as kubeadm join does (discovery of kube-public/cluster-info checked with the "
                    "token and the CA pin, then a kubelet client certificate through a CertificateSigningRequest), "
                    "then run the kubelet as system:node:NAME until SIGTERM. See docs/joining.md.")
    node.add_argument("--server", required=True, help="the API server, https://HOST:PORT")
    token = node.add_mutually_exclusive_group()
    token.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                       help="a file holding the bootstrap token (what `podlife token create` prints)")
    token.add_argument("--token", default=None, help="the bootstrap token itself (visible in ps; prefer --token-file)")
    node.add_argument("--discovery-token-ca-cert-hash", action="append", default=None, metavar="sha256:HEX",
                      help="the cluster CA's public key pin (`podlife token create --print-join-command` prints it); "
                           "may be given several times")
    node.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true",
                      help="trust the CA in cluster-info on the token's signature alone, without a pin")
    node.add_argument("--discovery-timeout", type=go_duration, default="5m0s",
                      help="how long discovery keeps trying to reach the server and find the token's signature "
                           "(default: 5m0s)")
    node.add_argument("--node-name", default=default_node_name(), help="the Node's name (default: the host name)")
    node.add_argument("--node-ip", default=None,
                      help="the address the kubelet serves on and reports, and the pod overlay's VXLAN source "
                           "(default: this host's address towards the server)")
    node.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                      help="kubelet.conf, pki/ and the kubelet's pods and logs (default: ./.podlife-node)")
    node.add_argument("--container-runtime", choices=("auto", "oci", "process"), default="auto",
                      help="real containers (oci: runc under conmon, needs root; with ip they get the pod network "
                           "and the overlay to other hosts), host processes, or auto (default)")
    node.add_argument("--allowed-image-registries", default="",
                      help="registries beyond loopback this node may pull images from ('*': any)")
    node.add_argument("--cluster-dns", default="10.96.0.10", help="the pods' nameservers (default: 10.96.0.10)")
    node.add_argument("--cluster-domain", default="cluster.local", help="the pods' DNS domain (default: cluster.local)")
    node.add_argument("--rotate-server-certificates", type=go_bool, nargs="?", const=True, default=True,
                      metavar="BOOL",
                      help="request a kubelet-serving certificate from the cluster (an admin approves it) instead of "
                           "serving with a self-signed one only (default: true)")
    node.set_defaults(run_command=run)
