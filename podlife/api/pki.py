"""Certificates, the admin token and the kubeconfig, made on first start.

Kubernetes clients only send credentials over TLS (kubectl sends no bearer token on
``http://``), so podlife serves HTTPS from the start: a self-signed CA and a serving
certificate for 127.0.0.1/localhost are generated into ``DATA_DIR/pki`` once and reused
on every restart, together with a random admin bearer token. The kubeconfig embeds the
CA and the token, so ``KUBECONFIG=DATA_DIR/kubeconfig kubectl ...`` just works.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class PKI:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def token_file(self) -> Path:
        return self.dir / "admin.token"

    def ensure(self, hosts: list[str]) -> None:
        """Create whatever is missing (never replaces what exists)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.ca_cert.exists() or not (self.dir / "ca.key").exists():
            _write_ca(self.dir)
        if not self.server_cert.exists() or not self.server_key.exists():
            _write_server_cert(self.dir, hosts)
        if not self.token_file.exists():
            _write_private(self.token_file, secrets.token_urlsafe(32).encode())
        if not self.service_account_key_file.exists():
            _write_private(self.service_account_key_file, secrets.token_bytes(32))

    @property
    def service_account_key_file(self) -> Path:
        return self.dir / "sa.key"

    def service_account_key(self) -> bytes:
        return self.service_account_key_file.read_bytes()

    def token(self) -> str:
        return self.token_file.read_text().strip()

    def server_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def client_ssl_context(ca_file: Path | str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


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
        .sign(key, hashes.SHA256())
    )
    _write_private(d / "ca.key", _key_pem(key))
    (d / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_server_cert(d: Path, hosts: list[str]) -> None:
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
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podlife-apiserver")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(d / "server.key", _key_pem(key))
    (d / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_kubeconfig(path: Path, server_url: str, ca_file: Path, token: str, name: str = "podlife") -> None:
    import base64

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
        }}],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    _write_private(tmp, yaml.safe_dump(config, sort_keys=False).encode())
    tmp.replace(path)
