"""CertificateSigningRequests' shared rules: parsing a request, the built-in signers' checks, signing.

Pure functions over ``cryptography`` objects and bytes (no I/O, no clock of their own), shared
by the API server's validation of ``certificates.k8s.io/v1`` (:mod:`podlife.registry.certificates`)
and kube-controller-manager's CSR controllers (:mod:`podlife.controllers.csr_approving`,
:mod:`podlife.controllers.csr_signing`, :mod:`podlife.controllers.csr_cleaner`), which may not
import the registry. Learned from Kubernetes' ``pkg/apis/certificates`` (``helpers.go``: what a
kubelet client or serving request looks like) and ``pkg/controller/certificates``
(``authority``: the signing policy; ``signer``: which signer accepts which request):

- :func:`parse_request` reads ``spec.request`` (PEM ``CERTIFICATE REQUEST``, signature checked);
- :func:`kubelet_client_problem`, :func:`kubelet_serving_problem`, :func:`apiserver_client_problem`
  say why a request is not one a signer issues (None: it is), with Kubernetes' messages;
- :func:`signing_duration` and :func:`sign` issue the certificate: the subject and SANs of the
  request, the requested usages, ``NotBefore`` backdated five minutes, never past the CA's own
  ``NotAfter``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
#: the signers kube-controller-manager's csrsigning controller issues for
BUILTIN_SIGNERS = (KUBE_APISERVER_CLIENT_KUBELET, KUBE_APISERVER_CLIENT, KUBELET_SERVING)

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
#: ``spec.expirationSeconds`` may not ask for less (and a signer never issues for less)
MIN_EXPIRATION_SECONDS = 600
#: kube-controller-manager's ``--cluster-signing-duration`` default (8760h)
DEFAULT_SIGNING_DURATION = 365 * 24 * 3600.0
BACKDATE = dt.timedelta(minutes=5)
#: below this lifetime the backdating is not added to NotAfter (the authority's ``Short``)
SHORT = dt.timedelta(hours=8)

_KEY_USAGE_BITS = {
    "signing": "digital_signature", "digital signature": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign", "crl sign": "crl_sign",
    "encipher only": "encipher_only", "decipher only": "decipher_only",
}
_EXTENDED_KEY_USAGES = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH, "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION, "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"), "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"), "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING, "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}
#: every ``spec.usages`` value Kubernetes knows, sorted as its "supported values" list is
KEY_USAGES = tuple(sorted({*_KEY_USAGE_BITS, *_EXTENDED_KEY_USAGES}))

_CLIENT_USAGES = ({"key encipherment", "digital signature", "client auth"}, {"digital signature", "client auth"})
_SERVING_USAGES = ({"key encipherment", "digital signature", "server auth"}, {"digital signature", "server auth"})


class RequestError(ValueError):
    """``spec.request`` is not a PEM certificate request with a valid signature (the message is Kubernetes')."""


def request_bytes(csr: Mapping[str, Any]) -> bytes:
    """``spec.request`` as bytes: a ``[]byte`` field, so base64 in JSON."""
    raw = (csr.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        return b""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 request in the first PEM block, its signature checked (Kubernetes' ``ParseCSR``)."""
    begin = pem.find(b"-----BEGIN ")
    if begin < 0 or not pem[begin:].startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise RequestError("PEM block type must be CERTIFICATE REQUEST")
    try:
        request = x509.load_pem_x509_csr(pem[begin:])
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RequestError(f"x509: malformed certificate request: {exc}") from None
    try:
        valid = request.is_signature_valid
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        valid = False
    if not valid:
        raise RequestError("x509: signature verification failure")
    return request


def common_name(request: x509.CertificateSigningRequest) -> str:
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def organizations(request: x509.CertificateSigningRequest) -> list[str]:
    return [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def _sans(request: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _san_kinds(request: x509.CertificateSigningRequest) -> dict[str, int]:
    sans = _sans(request)
    if sans is None:
        return {"dns": 0, "email": 0, "ip": 0, "uri": 0}
    return {"dns": len(sans.get_values_for_type(x509.DNSName)), "email": len(sans.get_values_for_type(x509.RFC822Name)),
            "ip": len(sans.get_values_for_type(x509.IPAddress)),
            "uri": len(sans.get_values_for_type(x509.UniformResourceIdentifier))}


def _usages_problem(usages: Iterable[str], allowed: tuple[set[str], ...]) -> str | None:
    if set(usages) in allowed:
        return None
    return "usages did not match [" + " ".join(sorted(allowed[0])) + "]"


def kubelet_client_problem(request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str | None:
    """Why this is not a kubelet's client request (``O=system:nodes``, ``CN=system:node:...``, no SANs)."""
    if organizations(request) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    sans = _san_kinds(request)
    for kind, label in (("dns", "DNS"), ("email", "Email"), ("ip", "IP"), ("uri", "URI")):
        if sans[kind]:
            return f"{label} subjectAltNames are not allowed"
    if not common_name(request).startswith(NODE_PREFIX):
        return f"subject common name does not begin with {NODE_PREFIX}"
    return _usages_problem(usages, _CLIENT_USAGES)


def kubelet_serving_problem(request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str | None:
    """Why this is not a kubelet's serving request (``O=system:nodes``, DNS or IP SANs, server auth)."""
    if organizations(request) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    sans = _san_kinds(request)
    if not sans["dns"] and not sans["ip"]:
        return "DNS or IP subjectAltName is required"
    if sans["email"]:
        return "Email subjectAltNames are not allowed"
    if sans["uri"]:
        return "URI subjectAltNames are not allowed"
    problem = _usages_problem(usages, _SERVING_USAGES)
    if problem is not None:
        return problem
    if not common_name(request).startswith(NODE_PREFIX):
        return f"subject common name does not begin with {NODE_PREFIX}"
    return None


def apiserver_client_problem(usages: Iterable[str]) -> str | None:
    """Why these usages do not fit a client certificate (digital signature and key encipherment optional)."""
    has_client_auth = False
    for usage in usages:
        if usage == "client auth":
            has_client_auth = True
        elif usage not in ("digital signature", "key encipherment"):
            return f"invalid usage for client certificate: {usage}"
    return None if has_client_auth else "missing required usage for client certificate: client auth"


def signer_problem(signer: str, request: x509.CertificateSigningRequest, usages: Iterable[str]) -> str | None:
    """Why ``signer`` (one of :data:`BUILTIN_SIGNERS`) refuses this request; None if it signs it."""
    usages = list(usages)
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        return kubelet_client_problem(request, usages)
    if signer == KUBELET_SERVING:
        return kubelet_serving_problem(request, usages)
    return apiserver_client_problem(usages)


def signing_duration(cluster_duration: float, expiration_seconds: Any) -> float:
    """The certificate's lifetime: the requested one within [10 minutes, ``--cluster-signing-duration``]."""
    if not isinstance(expiration_seconds, int) or isinstance(expiration_seconds, bool):
        return cluster_duration
    return max(float(MIN_EXPIRATION_SECONDS), min(float(expiration_seconds), cluster_duration))


def _key_usage(usages: Iterable[str]) -> x509.KeyUsage | None:
    bits = {_KEY_USAGE_BITS[u] for u in usages if u in _KEY_USAGE_BITS}
    if not bits:
        return None
    flags = {name: name in bits for name in ("digital_signature", "content_commitment", "key_encipherment",
                                             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")}
    agreement = flags["key_agreement"]  # encipher/decipher only mean something with key agreement alone
    return x509.KeyUsage(**flags, encipher_only=agreement and "encipher_only" in bits,
                         decipher_only=agreement and "decipher_only" in bits)


def sign(request: x509.CertificateSigningRequest, usages: Iterable[str], ca_cert_pem: bytes, ca_key_pem: bytes,
         lifetime: float, now: dt.datetime) -> bytes:
    """A certificate for ``request`` signed by the CA, as PEM (Kubernetes' permissive signing policy)."""
    usages = list(usages)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key: Any = serialization.load_pem_private_key(ca_key_pem, None)
    ttl = dt.timedelta(seconds=lifetime)
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else not_before + ttl
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(request.subject).issuer_name(ca_cert.subject)
               .public_key(request.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    key_usage = _key_usage(usages)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    extended = list(dict.fromkeys(_EXTENDED_KEY_USAGES[u] for u in usages if u in _EXTENDED_KEY_USAGES))
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    sans = _sans(request)
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    try:
        skid = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        akid = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(skid)
    except x509.ExtensionNotFound:
        akid = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    builder = builder.add_extension(akid, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_not_after(pem: bytes) -> dt.datetime | None:
    """When the first certificate of ``pem`` expires (None: none parses)."""
    try:
        return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc
    except (ValueError, IndexError):
        return None


def condition(csr: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The first ``status.conditions`` entry of type ``kind``."""
    for entry in (csr.get("status") or {}).get("conditions") or []:
        if isinstance(entry, dict) and entry.get("type") == kind:
            return entry
    return None


def certificate_pem(csr: Mapping[str, Any]) -> bytes:
    """``status.certificate`` as bytes (base64 in JSON; empty when not issued)."""
    raw = (csr.get("status") or {}).get("certificate")
    if not isinstance(raw, str) or not raw:
        return b""
    try:
        return base64.b64decode(raw)
    except (binascii.Error, ValueError):
        return b""
