"""Certificates, keys, the admin credentials and the kubeconfig, made on first start.

Kubernetes clients only send credentials over TLS (kubectl sends no bearer token on
``http://``), so podlife serves HTTPS from the start. ``DATA_DIR/pki`` holds, as a
kubeadm control plane does:

- ``ca.crt``/``ca.key``: the self-signed cluster CA; it signs the serving certificate
  and every client certificate, and the server trusts client certificates it signed
  (``--client-ca-file``);
- ``server.crt``/``server.key``: the serving certificate for 127.0.0.1/localhost and the
  ``--host`` given;
- ``admin.crt``/``admin.key``: the admin's client certificate, subject
  ``CN=podlife-admin, O=system:masters`` -- the x509 authenticator makes that the user
  ``podlife-admin`` in the group ``system:masters`` (kubeadm's admin is ``kubernetes-admin``,
  k3s' ``system:admin``; podlife keeps its own name). It is valid for a year, as kubeadm's
  client certificates are, and renewed on a start when it nears its end or the CA changed;
- ``sa.key``/``sa.pub``: the service-account token signing key pair (P-256, so tokens are
  ES256 JWTs, as kube-apiserver signs with an ECDSA ``--service-account-signing-key-file``).
  A data directory from before this key pair held a 32-byte HMAC secret in ``sa.key``:
  that is replaced (tokens signed with it stop working, as after a key rotation);
- ``admin.token``: a random bearer token for the admin, kept for scripts, tests and
  benchmarks that send ``Authorization: Bearer``.

Everything is made once and reused on every restart (only what is missing, stale or of
the old format is replaced). The kubeconfig embeds the CA and the admin's client
certificate and key, so ``KUBECONFIG=DATA_DIR/kubeconfig kubectl ...`` just works.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..machinery.constants import KUBELET_CLIENT_USER

VALIDITY = dt.timedelta(days=3650)
#: kubeadm's client certificates last a year
CLIENT_VALIDITY = dt.timedelta(days=365)
#: a client certificate with less left than this is renewed on start
RENEW_BEFORE = dt.timedelta(days=30)
ADMIN_COMMON_NAME = "podlife-admin"
ADMIN_ORGANIZATIONS = ("system:masters",)
#: The user the API server is to kubelets (kubeadm's apiserver-kubelet-client certificate).
KUBELET_CLIENT_COMMON_NAME = KUBELET_CLIENT_USER
#: the subject attribute Kubernetes' x509 authenticator reads a user's UID from (1.33+)
UID_OID = ObjectIdentifier("1.3.6.1.4.1.57683.2")


@dataclass(frozen=True)
class ClientCredentials:
    """A client certificate and its private key, both PEM."""

    certificate: bytes
    key: bytes


@dataclass(frozen=True)
class PKI:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def kubelet_cert(self) -> Path:
        """The kubelets' serving certificate (they all listen on this machine's loopback)."""
        return self.dir / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.dir / "kubelet.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """The API server's client certificate for kubelets (kubeadm's apiserver-kubelet-client)."""
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    @property
    def token_file(self) -> Path:
        return self.dir / "admin.token"

    @property
    def service_account_key_file(self) -> Path:
        return self.dir / "sa.key"

    @property
    def service_account_public_key_file(self) -> Path:
        return self.dir / "sa.pub"

    def ensure(self, hosts: list[str]) -> None:
        """Create whatever is missing, stale or of an old format (never replaces a good one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.ca_cert.exists() or not self.ca_key.exists():
            _write_ca(self.dir)
        if not self.server_cert.exists() or not self.server_key.exists() or not _names_covered(self.server_cert, hosts):
            _write_server_cert(self.dir, hosts)
        if not _client_cert_usable(self.admin_cert, self.admin_key, self.ca_cert):
            admin = self.client_certificate(ADMIN_COMMON_NAME, ADMIN_ORGANIZATIONS)
            _write_private(self.admin_key, admin.key)
            self.admin_cert.write_bytes(admin.certificate)
        if not self.kubelet_cert.exists() or not self.kubelet_key.exists():
            _write_server_cert(self.dir, hosts, name="kubelet", common_name="podlife-kubelet")
        if not _client_cert_usable(self.kubelet_client_cert, self.kubelet_client_key, self.ca_cert):
            client = self.client_certificate(KUBELET_CLIENT_COMMON_NAME, ADMIN_ORGANIZATIONS[:1])
            _write_private(self.kubelet_client_key, client.key)
            self.kubelet_client_cert.write_bytes(client.certificate)
        if not self.token_file.exists():
            _write_private(self.token_file, secrets.token_urlsafe(32).encode())
        if _load_ec_private_key(self.service_account_key_file) is None:  # missing, or the old HMAC secret
            _write_private(self.service_account_key_file, _key_pem(ec.generate_private_key(ec.SECP256R1())))
            self.service_account_public_key_file.unlink(missing_ok=True)
        if not self.service_account_public_key_file.exists():
            private = _load_ec_private_key(self.service_account_key_file)
            assert private is not None
            self.service_account_public_key_file.write_bytes(public_key_pem(private.public_key()))

    def service_account_key(self) -> bytes:
        """The PEM private key service-account tokens are signed with."""
        return self.service_account_key_file.read_bytes()

    def token(self) -> str:
        return self.token_file.read_text().strip()

    def admin_credentials(self) -> ClientCredentials:
        return ClientCredentials(self.admin_cert.read_bytes(), self.admin_key.read_bytes())

    def component_credentials(self, name: str, common_name: str, organizations: Sequence[str] = ()) -> ClientCredentials:
        """A component's client certificate (``pki/<name>.crt``), made once and kept while the CA signs it."""
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        if not _client_cert_usable(cert, key, self.ca_cert):
            made = self.client_certificate(common_name, organizations)
            _write_private(key, made.key)
            cert.write_bytes(made.certificate)
        return ClientCredentials(cert.read_bytes(), key.read_bytes())

    def client_certificate(self, common_name: str, organizations: Sequence[str] = (), *, uid: str | None = None,
                           validity: dt.timedelta = CLIENT_VALIDITY, not_before: dt.datetime | None = None,
                           usage: ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH) -> ClientCredentials:
        """A new key and a certificate for it signed by the cluster CA (what ``kubeadm kubeconfig user`` makes).

        The subject is ``CN=<common_name>`` and one ``O`` per organization (the user's
        groups), with the UID attribute when ``uid`` is given.
        """
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        if common_name:  # none: a certificate the x509 authenticator does not take for a user
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        if uid is not None:
            attributes.append(x509.NameAttribute(UID_OID, uid))
        start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + validity)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return ClientCredentials(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def server_ssl_context(self) -> ssl.SSLContext:
        """TLS for the API: the serving certificate, and an optional client certificate.

        As kube-apiserver with ``--client-ca-file``: a client may present a certificate,
        which must chain to the cluster CA (only that CA: no system roots), or none and
        authenticate otherwise. The x509 authenticator reads the verified certificate.
        """
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_cert))
        ctx.load_cert_chain(self.server_cert, self.server_key)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


    def kubelet_server_ssl_context(self) -> ssl.SSLContext:
        """TLS for a kubelet's endpoint: its serving certificate; clients may show one the CA signed."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_cert))
        ctx.load_cert_chain(self.kubelet_cert, self.kubelet_key)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def kubelet_client_ssl_context(self) -> ssl.SSLContext:
        """TLS for the API server dialling a kubelet: the kubelet must be the CA's, and we show our certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.load_cert_chain(self.kubelet_client_cert, self.kubelet_client_key)
        return ctx


def client_ssl_context(ca_file: Path | str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_ec_private_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The EC private key in ``path``, or None when it is missing or something else."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _client_cert_usable(cert_path: Path, key_path: Path, ca_path: Path) -> bool:
    """Whether the client certificate exists, was signed by this CA and has time left."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE


def _names_covered(cert_path: Path, hosts: list[str]) -> bool:
    """Whether the certificate names every one of ``hosts`` (a data dir from before a name was added gets a new one)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.IPAddress)} | set(sans.get_values_for_type(x509.DNSName))
    return all(h in have for h in hosts)


def _write_ca(d: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podlife-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(d / "ca.key", _key_pem(key))
    (d / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_server_cert(d: Path, hosts: list[str], name: str = "server", common_name: str = "podlife-apiserver") -> None:
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in dict.fromkeys(["127.0.0.1", "localhost", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(d / f"{name}.key", _key_pem(key))
    (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_kubeconfig(path: Path, server_url: str, ca_file: Path, credentials: ClientCredentials, *,
                     token: str | None = None, name: str = "podlife", as_json: bool = False) -> None:
    """A kubeconfig: the CA, and a user's client certificate and key (the admin's, or a component's).

    ``token`` adds a bearer token to the same user. kubectl and the client libraries then
    send both, and the token decides: podlife's token authenticators run before x509
    (:mod:`podlife.api.authn`). ``as_json``: written as JSON (which is YAML too, so kubectl
    reads it), for a reader that starts per pod and should not import a YAML parser (the
    ``podlife-cni`` plugin).
    """
    user: dict[str, str] = {
        "client-certificate-data": base64.b64encode(credentials.certificate).decode(),
        "client-key-data": base64.b64encode(credentials.key).decode(),
    }
    if token is not None:
        user["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
        }}],
        "users": [{"name": f"{name}-admin", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    text = json.dumps(config, indent=2) if as_json else yaml.safe_dump(config, sort_keys=False)
    _write_private(tmp, text.encode())
    tmp.replace(path)
