"""Joining a node with a bootstrap token: discovery of the cluster, then the kubelet's TLS bootstrap.

The node side of ``podlife token create`` (:mod:`podlife.join_cli`), as ``kubeadm join`` and
the kubelet do it; ``podlife node`` (:mod:`podlife.node_cli`) calls it, then runs the kubelet
with what it wrote. Shared with the control plane: the shape of ``kube-public/cluster-info``
(:func:`cluster_info_configmap`, which ``podlife up`` publishes) and its detached JWS
signatures (:func:`detached_signature`, which the bootstrap signer,
:mod:`podlife.controllers.bootstrap_signer`, writes), so both sides agree by construction.

**Discovery** (kubeadm's token discovery, :func:`discover`): ``GET
/api/v1/namespaces/kube-public/configmaps/cluster-info`` anonymously over TLS *without*
verifying the server (we do not know its CA yet); the ConfigMap's ``kubeconfig`` must carry
the signature ``jws-kubeconfig-<token id>``, an HS256 JWS over the kubeconfig keyed with the
token's secret (so only someone who knows the token could have signed it); the CA in that
kubeconfig must have the pinned SubjectPublicKeyInfo hash (``--discovery-token-ca-cert-hash
sha256:...``); then the ConfigMap is fetched again, this time verifying the server with that
CA, and must say the same. Any mismatch is a :class:`JoinError` (one line). A request that
fails, or a signature not there yet (the signer writes it just after the token is made), is
tried again until the discovery timeout.

**TLS bootstrap** (the kubelet's ``--bootstrap-kubeconfig``, :func:`bootstrap_client_certificate`):
with the token as bearer (user ``system:bootstrap:<id>``), a CertificateSigningRequest for
signer ``kubernetes.io/kube-apiserver-client-kubelet`` with subject ``CN=system:node:<name>,
O=system:nodes``, usages digital signature and client auth, from a fresh P-256 key; the
approving controller approves it (the token's group may ``create
certificatesigningrequests/nodeclient``), the signer issues it, and we poll it until
``status.certificate`` is there. The result is ``DATA_DIR/kubelet.conf`` (the server, CA,
certificate and key, as the kubelet writes it) and ``DATA_DIR/pki/`` (``ca.crt``,
``kubelet-client-current.pem``). A later start reuses ``kubelet.conf`` while its certificate
is the node's and still valid for a while (:func:`usable_kubeconfig`): no new request.

**Serving certificate** (the kubelet's ``serverTLSBootstrap``): until a
``kubernetes.io/kubelet-serving`` certificate is issued the kubelet serves with a self-signed
one (``pki/kubelet.crt``, as the kubelet makes); :func:`request_serving_certificate` asks for
one as the node (an admin approves it: ``kubectl certificate approve``, as in Kubernetes) and
the caller loads it into the live TLS context when it comes.

No I/O besides the files under the data directory and the HTTP requests named above.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..client.base import Client, Obj, Resource
from ..client.kubeconfig import Kubeconfig, load_kubeconfig
from ..machinery import certificates as certs
from ..machinery.errors import ApiError

log = logging.getLogger(__name__)

KUBE_PUBLIC = "kube-public"
CLUSTER_INFO = "cluster-info"
#: the ConfigMap's keys (``k8s.io/cluster-bootstrap/token/api``)
KUBECONFIG_KEY = "kubeconfig"
JWS_PREFIX = "jws-kubeconfig-"
CLUSTER_INFO_PATH = f"/api/v1/namespaces/{KUBE_PUBLIC}/configmaps/{CLUSTER_INFO}"
CSRS = Resource(certs.GROUP, "v1", "certificatesigningrequests", "CertificateSigningRequest", namespaced=False)
#: a certificate this close to its end is not reused: a new one is requested at start
RENEW_BEFORE = dt.timedelta(minutes=10)
POLL_INTERVAL = 0.2


class JoinError(Exception):
    """Joining cannot go on; the message is one line for the user."""


# ---- what both sides share ----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """The detached JWS (RFC 7515 appendix F) of ``content``: HS256 keyed with the token's secret, ``kid`` the
    token id; ``<header>..<signature>``, the payload left out (cluster-bootstrap's ``ComputeDetachedSignature``)."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(signature)}"


def signature_valid(detached: str, content: str, token_id: str, token_secret: str) -> bool:
    """Whether ``detached`` is the token's signature of ``content`` (compared in constant time)."""
    return hmac.compare_digest(detached.encode(), detached_signature(content, token_id, token_secret).encode())


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's CA pin: ``sha256:`` and the hex SHA-256 of the CA certificate's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig ``cluster-info`` carries: one cluster (its server and CA), no users, no contexts (kubeadm's)."""
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "", "cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(),
                                                    "server": server}}],
              "contexts": None, "current-context": "", "preferences": {}, "users": None}
    return yaml.safe_dump(config, sort_keys=False)


def cluster_info_configmap(server: str, ca_pem: bytes) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CLUSTER_INFO, "namespace": KUBE_PUBLIC},
            "data": {KUBECONFIG_KEY: cluster_info_kubeconfig(server, ca_pem)}}


def cluster_info_ca(kubeconfig_text: str) -> tuple[str, bytes]:
    """(server, CA PEM) of a cluster-info kubeconfig; JoinError if it has not exactly one cluster with a CA."""
    try:
        config = yaml.safe_load(kubeconfig_text)
        clusters = config.get("clusters") or []
        if len(clusters) != 1:
            raise JoinError(f"expected the kubeconfig file in the {CLUSTER_INFO} configmap to have a single cluster, "
                            f"but it had {len(clusters)}")
        cluster = clusters[0]["cluster"]
        return str(cluster.get("server", "")), base64.b64decode(cluster["certificate-authority-data"])
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, JoinError):
            raise
        raise JoinError(f"couldn't parse the kubeconfig file in the {CLUSTER_INFO} configmap: {exc}") from None


# ---- discovery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovered:
    """What discovery established: the server to use and its CA."""

    server: str
    ca_pem: bytes


async def _get_cluster_info(session: aiohttp.ClientSession, server: str, ssl_context: Any) -> Obj:
    async with session.get(server + CLUSTER_INFO_PATH, ssl=ssl_context,
                           headers={"Accept": "application/json"}) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise _Retry(f"GET {CLUSTER_INFO_PATH}: HTTP {resp.status}")
        try:
            answer: Obj = json.loads(body)
        except ValueError:
            raise _Retry(f"GET {CLUSTER_INFO_PATH}: not JSON") from None
        return answer


class _Retry(Exception):
    """A failure discovery tries again after."""


def validate_cluster_info(configmap: Obj, token_id: str, token_secret: str) -> str:
    """The ConfigMap's kubeconfig if the token signed it; JoinError (or _Retry while unsigned) otherwise."""
    data = configmap.get("data") or {}
    content = data.get(KUBECONFIG_KEY) or ""
    if not content:
        raise JoinError(f"there is no {KUBECONFIG_KEY} key in the {CLUSTER_INFO} ConfigMap. This API Server isn't "
                        "set up for token bootstrapping, can't connect")
    detached = data.get(JWS_PREFIX + token_id) or ""
    if not detached:
        raise _Retry(f'token id "{token_id}" is invalid for this cluster or it has expired. Use "podlife token '
                     'create" on the control-plane node to create a new valid token')
    if not signature_valid(detached, content, token_id, token_secret):
        raise JoinError("failed to verify JWS signature of received cluster info object, can't trust this API Server")
    return str(content)


def check_pins(ca_pem: bytes, pins: Sequence[str]) -> None:
    """kubeadm's ``--discovery-token-ca-cert-hash`` check: the CA's key must be one of ``pins``."""
    try:
        found = ca_cert_hash(ca_pem)
    except ValueError as exc:
        raise JoinError(f"failed to parse cluster CA from the {CLUSTER_INFO} ConfigMap: {exc}") from None
    if found.lower() not in {pin.strip().lower() for pin in pins}:
        raise JoinError(f'cluster CA found in {CLUSTER_INFO} ConfigMap is invalid: none of the public keys "{found}" '
                        "are pinned")


def check_pin_format(pins: Sequence[str]) -> None:
    for pin in pins:
        kind, _, digest = pin.partition(":")
        if kind.lower() != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise JoinError(f'invalid hash "{pin}", expected "sha256:" and 64 hex digits (the output of '
                            '"podlife token create --print-join-command")')


async def discover(server: str, token_id: str, token_secret: str, pins: Sequence[str], *,
                   unsafe_skip_ca_verification: bool = False, timeout: float = 300.0) -> Discovered:
    """kubeadm's token discovery against ``server`` (see the module's docstring)."""
    import ssl

    if not pins and not unsafe_skip_ca_verification:
        raise JoinError("using token-based discovery without --discovery-token-ca-cert-hash can be unsafe; pass "
                        "--discovery-token-unsafe-skip-ca-verification to continue")
    check_pin_format(pins)
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while True:
            try:
                insecure = await _get_cluster_info(session, server, False)
                content = validate_cluster_info(insecure, token_id, token_secret)
                _, ca_pem = cluster_info_ca(content)
                if pins:
                    check_pins(ca_pem, pins)
                    # again, now trusting only that CA: the answer must be the same
                    secure_ctx = ssl.create_default_context(cadata=ca_pem.decode())
                    secure_ctx.check_hostname = False  # the server's name may be any address it serves on
                    secure = await _get_cluster_info(session, server, secure_ctx)
                    if validate_cluster_info(secure, token_id, token_secret) != content:
                        raise JoinError(f"the {CLUSTER_INFO} ConfigMap changed between the insecure and the secure "
                                        "request; try again")
                return Discovered(server, ca_pem)
            except (_Retry, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = str(exc) or type(exc).__name__
                if time.monotonic() >= deadline:
                    raise JoinError(f"couldn't validate the identity of the API Server: {last}") from None
                log.info("[discovery] will try again: %s", last)
                await asyncio.sleep(1.0)


# ---- files --------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_kubelet_kubeconfig(path: Path, server: str, ca_pem: bytes, cert_pem: bytes, key: bytes) -> None:
    """``kubelet.conf``: the cluster, and the node's client certificate and key (embedded)."""
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "default-cluster", "cluster": {
                  "certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server}}],
              "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster",
                                                                    "namespace": "default", "user": "default-auth"}}],
              "current-context": "default-context", "preferences": {},
              "users": [{"name": "default-auth", "user": {
                  "client-certificate-data": base64.b64encode(cert_pem).decode(),
                  "client-key-data": base64.b64encode(key).decode()}}]}
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def _certificate_usable(cert_pem: bytes, subject_cn: str, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names == [subject_cn] and cert.not_valid_before_utc <= now < cert.not_valid_after_utc - RENEW_BEFORE


def usable_kubeconfig(path: Path, node_name: str, server: str) -> Kubeconfig | None:
    """``kubelet.conf`` if it is this node's, for this server, with a certificate still valid (else None)."""
    try:
        config = load_kubeconfig(path)
    except (OSError, yaml.YAMLError, KeyError, StopIteration, TypeError, ValueError):
        return None
    if config.server.rstrip("/") != server.rstrip("/") or config.client_certificate is None:
        return None
    if not _certificate_usable(config.client_certificate, certs.NODE_PREFIX + node_name,
                               dt.datetime.now(dt.timezone.utc)):
        return None
    return config


# ---- certificate requests -----------------------------------------------------------------


def node_subject(node_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, certs.NODES_GROUP),
                      x509.NameAttribute(NameOID.COMMON_NAME, certs.NODE_PREFIX + node_name)])


def _csr_pem(key: ec.EllipticCurvePrivateKey, node_name: str, sans: list[x509.GeneralName] | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(node_subject(node_name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_object(name: str, request_pem: bytes, signer: str, usages: list[str]) -> Obj:
    return {"apiVersion": f"{certs.GROUP}/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request_pem).decode(), "signerName": signer, "usages": usages}}


def csr_name(prefix: str, key: ec.EllipticCurvePrivateKey, node_name: str) -> str:
    """A name from the key and the subject, as the kubelet names its requests (the same request, the same name)."""
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha512(public + node_name.encode()).digest()
    return prefix + _b64url(digest)[:43].lower().replace("_", "-").strip("-")


async def wait_for_certificate(client: Client, name: str, timeout: float, interval: float = POLL_INTERVAL) -> bytes:
    """Poll the CSR until it is issued (its PEM) or denied/failed (JoinError), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        csr = await client.get(CSRS, name)
        if certs.condition(csr, certs.DENIED) is not None:
            raise JoinError(f"certificate request {name} was denied")
        failed = certs.condition(csr, certs.FAILED)
        if failed is not None:
            raise JoinError(f"certificate request {name} has failed: {failed.get('message', '')}")
        pem = (csr.get("status") or {}).get("certificate")
        if pem:
            return base64.b64decode(pem)
        if time.monotonic() >= deadline:
            raise JoinError(f"timed out waiting for the certificate of request {name} (is it approved? "
                            f"kubectl get csr {name})")
        await asyncio.sleep(interval)


async def _create_csr(client: Client, obj: Obj) -> None:
    try:
        await client.create(CSRS, obj)
    except ApiError as exc:
        if exc.code != 409:  # AlreadyExists: the same key's request, made by an earlier attempt
            raise


async def bootstrap_client_certificate(client: Client, node_name: str, timeout: float = 300.0) -> tuple[bytes, bytes]:
    """The node's client certificate through a kubelet client CSR made with ``client`` (the bootstrap token):
    (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = csr_name("node-csr-", key, node_name)
    await _create_csr(client, csr_object(name, _csr_pem(key, node_name), certs.KUBE_APISERVER_CLIENT_KUBELET,
                                         ["digital signature", "client auth"]))
    log.info("certificate signing request %s created for node %s", name, node_name)
    return await wait_for_certificate(client, name, timeout), key_pem(key)


async def join(server: str, token_id: str, token_secret: str, node_name: str, data_dir: Path, *,
               pins: Sequence[str], unsafe_skip_ca_verification: bool = False,
               discovery_timeout: float = 300.0, tls_bootstrap_timeout: float = 300.0) -> Path:
    """Discovery and TLS bootstrap unless ``DATA_DIR/kubelet.conf`` can be reused; the kubelet.conf path."""
    from ..client.http import HTTPClient

    kubeconfig = data_dir / "kubelet.conf"
    reused = usable_kubeconfig(kubeconfig, node_name, server)
    if reused is not None:
        log.info("using the client certificate in %s (node %s)", kubeconfig, node_name)
        return kubeconfig
    found = await discover(server, token_id, token_secret, pins,
                           unsafe_skip_ca_verification=unsafe_skip_ca_verification, timeout=discovery_timeout)
    client = HTTPClient(found.server, token=f"{token_id}.{token_secret}", ca_data=found.ca_pem)
    try:
        cert_pem, key = await bootstrap_client_certificate(client, node_name, tls_bootstrap_timeout)
    except ApiError as exc:
        raise JoinError(f"the certificate signing request could not be made with the bootstrap token: {exc.message}"
                        ) from None
    finally:
        await client.close()
    pki = data_dir / "pki"
    _write_private(pki / "ca.crt", found.ca_pem)
    _write_private(pki / "kubelet-client-current.pem", cert_pem + key)
    write_kubelet_kubeconfig(kubeconfig, found.server, found.ca_pem, cert_pem, key)
    log.info("node %s has its client certificate; wrote %s", node_name, kubeconfig)
    return kubeconfig


# ---- serving certificate ------------------------------------------------------------------


def _serving_sans(node_name: str, addresses: Sequence[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(node_name)]
    for address in addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            sans.append(x509.DNSName(address))
    return sans


def self_signed_serving_certificate(pki: Path, node_name: str, addresses: Sequence[str]) -> tuple[Path, Path]:
    """``pki/kubelet.crt``/``kubelet.key``: the kubelet's own self-signed serving certificate (made once, a year)."""
    cert_path, key_path = pki / "kubelet.crt", pki / "kubelet.key"
    if cert_path.exists() and key_path.exists() and _certificate_usable(
            cert_path.read_bytes(), f"{node_name}@podlife", dt.datetime.now(dt.timezone.utc)):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@podlife")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - certs.BACKDATE)
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(_serving_sans(node_name, addresses)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, key_pem(key))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issued_serving_certificate(pki: Path, node_name: str) -> Path | None:
    """``pki/kubelet-server-current.pem`` (certificate and key) if the cluster issued one that is still valid."""
    path = pki / "kubelet-server-current.pem"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return path if _certificate_usable(data, certs.NODE_PREFIX + node_name, dt.datetime.now(dt.timezone.utc)) else None


async def request_serving_certificate(client: Client, node_name: str, addresses: Sequence[str], pki: Path,
                                      timeout: float = 365 * 24 * 3600.0) -> Path:
    """A ``kubernetes.io/kubelet-serving`` certificate requested as the node, waited for (an admin approves it);
    written to ``pki/kubelet-server-current.pem`` (certificate then key), whose path is returned."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = csr_name("csr-", key, node_name)
    await _create_csr(client, csr_object(name, _csr_pem(key, node_name, _serving_sans(node_name, addresses)),
                                         certs.KUBELET_SERVING, ["digital signature", "server auth"]))
    log.info("serving certificate request %s created (approve it: kubectl certificate approve %s)", name, name)
    cert_pem = await wait_for_certificate(client, name, timeout, interval=1.0)
    path = pki / "kubelet-server-current.pem"
    _write_private(path, cert_pem + key_pem(key))
    return path
