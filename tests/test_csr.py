"""CertificateSigningRequests end to end: the API, kubectl, and the approving, signing and cleaner controllers.

Against a real ``podlife up --nodes 0`` driven with kubectl: a CSR made from a key the test
generates is created, listed (kubectl's columns), approved with ``kubectl certificate
approve`` and signed by the cluster CA, and the issued certificate then authenticates as the
request's subject (``kubectl auth whoami``). A bootstrap token (``podlife token create``)
posting a kubelet client request has it auto-approved and signed, and the certificate is the
node's identity; a request that is not a node client's stays pending. Bad requests are 422s
naming the field. The cleaner's deadlines and the signer's duration are checked as the pure
functions the controllers use.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podlife.controllers.csr_cleaner import deletion_time
from podlife.machinery import certificates as certs
from tests.cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("csr") / "data", "--nodes", "0",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def request_pem(key: ec.EllipticCurvePrivateKey, cn: str, orgs: tuple[str, ...] = (), dns: tuple[str, ...] = (),
                ips: tuple[str, ...] = ()) -> bytes:
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs] + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def manifest(name: str, pem: bytes, signer: str | None, usages: list[str], **spec: Any) -> dict:
    body: dict[str, Any] = {"request": base64.b64encode(pem).decode(), "usages": usages, **spec}
    if signer is not None:
        body["signerName"] = signer
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": body}


def get_csr(cluster: PodlifeProcess, name: str) -> dict:
    status, body = cluster.http("GET", f"{CSRS}/{name}")
    assert status == 200, body
    return body


def issued(cluster: PodlifeProcess, name: str) -> x509.Certificate:
    def certificate() -> bytes | None:
        raw = (get_csr(cluster, name).get("status") or {}).get("certificate")
        return base64.b64decode(raw) if raw else None

    pem = wait_for(certificate, timeout=30, what=f"a certificate for {name}")
    return x509.load_pem_x509_certificate(pem)


def cert_kubeconfig(cluster: PodlifeProcess, path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
        "client-key-data": base64.b64encode(key_pem(key)).decode()}
    path.write_text(yaml.safe_dump(cfg))
    return path


def whoami(cluster: PodlifeProcess, kubeconfig: Path) -> dict:
    out = cluster.kubectl("auth", "whoami", "-o", "json", f"--kubeconfig={kubeconfig}")
    return json.loads(out.stdout)["status"]["userInfo"]


def create_token(cluster: PodlifeProcess) -> str:
    result = subprocess.run([sys.executable, "-m", "podlife.cli", "token", "create", "--kubeconfig",
                             str(cluster.kubeconfig)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def post_as(cluster: PodlifeProcess, token: str, obj: dict) -> tuple[int, Any]:
    return cluster.http("POST", CSRS, obj, auth=False, headers={"Authorization": f"Bearer {token}"})


def causes(body: dict) -> dict[str, str]:
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


# -- the API and kubectl -------------------------------------------------------------------


@pytest.mark.e2e
def test_create_list_approve_and_authenticate_with_the_certificate(cluster: PodlifeProcess, tmp_path: Path) -> None:
    key = new_key()
    obj = manifest("jane", request_pem(key, "jane", ("dev",)), CLIENT, ["client auth", "digital signature"],
                   expirationSeconds=7200)
    obj["spec"]["username"] = "mallory"  # forged: the server puts the requesting user here
    cluster.kubectl("create", "-f", "-", input=json.dumps(obj))
    csr = get_csr(cluster, "jane")
    assert csr["spec"]["username"] == "podlife-admin"
    assert csr["spec"]["groups"] == ["system:masters", "system:authenticated"]
    assert "status" not in csr or not csr["status"].get("conditions")

    table = cluster.kubectl("get", "csr", "jane").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    row = table[1].split()
    assert row[0] == "jane" and row[2:] == [CLIENT, "podlife-admin", "120m", "Pending"]

    out = cluster.kubectl("certificate", "approve", "jane")
    assert "certificatesigningrequest.certificates.k8s.io/jane approved" in out.stdout
    cert = issued(cluster, "jane")
    approved = certs.condition(get_csr(cluster, "jane"), "Approved")
    assert approved is not None and approved["reason"] == "KubectlApprove" and approved["lastTransitionTime"]
    assert cluster.kubectl("get", "csr", "jane").stdout.splitlines()[1].split()[-1] == "Approved,Issued"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(hours=2, minutes=5)  # 5m backdated
    assert cert.issuer == x509.load_pem_x509_certificate((cluster.data_dir / "pki" / "ca.crt").read_bytes()).subject

    info = whoami(cluster, cert_kubeconfig(cluster, tmp_path / "jane.conf", cert, key))
    assert info["username"] == "jane" and info["groups"] == ["dev", "system:authenticated"]

    # spec is immutable: an update keeps the stored one
    stored = get_csr(cluster, "jane")
    stored["spec"]["usages"] = ["server auth"]
    status, body = cluster.http("PUT", f"{CSRS}/jane", stored)
    assert status == 200 and body["spec"]["usages"] == ["client auth", "digital signature"], body


@pytest.mark.e2e
def test_deny_and_a_request_the_signer_refuses(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest(
        "denied", request_pem(new_key(), "x"), CLIENT, ["client auth"])))
    cluster.kubectl("certificate", "deny", "denied")
    denied = get_csr(cluster, "denied")
    assert certs.condition(denied, "Denied")["reason"] == "KubectlDeny"  # type: ignore[index]
    # serving certificates need a DNS or IP name: approved, then Failed by the signer
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest(
        "no-sans", request_pem(new_key(), "system:node:n9", ("system:nodes",)), KUBELET_SERVING,
        ["digital signature", "server auth"])))
    cluster.kubectl("certificate", "approve", "no-sans")
    failed = wait_for(lambda: certs.condition(get_csr(cluster, "no-sans"), "Failed"), what="Failed")
    assert failed["reason"] == "SignerValidationFailure" and failed["message"] == "DNS or IP subjectAltName is required"
    assert not get_csr(cluster, "no-sans")["status"].get("certificate")
    assert cluster.kubectl("get", "csr", "no-sans").stdout.splitlines()[1].split()[-1] == "Approved,Failed"
    assert not get_csr(cluster, "denied")["status"].get("certificate")

    # a serving request with names is signed with them
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest(
        "serving", request_pem(new_key(), "system:node:n9", ("system:nodes",), ("n9.example",), ("127.0.0.9",)),
        KUBELET_SERVING, ["digital signature", "server auth"])))
    cluster.kubectl("certificate", "approve", "serving")
    sans = issued(cluster, "serving").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n9.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.9"]


@pytest.mark.e2e
def test_bad_requests_are_invalid_naming_the_field(cluster: PodlifeProcess) -> None:
    good = request_pem(new_key(), "bad")
    for obj, field, message in [
        (manifest("bad", b"not a pem", CLIENT, ["client auth"]), "spec.request",
         "PEM block type must be CERTIFICATE REQUEST"),
        (manifest("bad", good, None, ["client auth"]), "spec.signerName", "Required value"),
        (manifest("bad", good, "nodomain", ["client auth"]), "spec.signerName",
         "must be a fully qualified domain and path of the form 'example.com/signer-name'"),
        (manifest("bad", good, CLIENT, ["client auth", "flying"]), "spec.usages[1]", 'Unsupported value: "flying"'),
        (manifest("bad", good, CLIENT, []), "spec.usages", "Required value"),
        (manifest("bad", good, CLIENT, ["client auth"], expirationSeconds=599), "spec.expirationSeconds",
         "may not specify a duration less than 600 seconds (10 minutes)"),
    ]:
        status, body = cluster.http("POST", CSRS, obj)
        assert status == 422 and body["reason"] == "Invalid", body
        assert field in causes(body) and message in causes(body)[field], body
        assert f'CertificateSigningRequest.certificates.k8s.io "bad" is invalid: {field}' in body["message"]

    # approving with both conditions; a status write of a non-certificate; removing an approval
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest("both", good, "example.com/own", ["client auth"])))
    csr = get_csr(cluster, "both")
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Yes"},
                                    {"type": "Denied", "status": "True", "reason": "No"}]}
    status, body = cluster.http("PUT", f"{CSRS}/both/approval", csr)
    assert status == 422 and "Approved and Denied conditions are mutually exclusive" in causes(body)[
        "status.conditions[1].type"], body
    csr = get_csr(cluster, "both")
    csr["status"] = {"certificate": base64.b64encode(b"junk").decode()}
    status, body = cluster.http("PUT", f"{CSRS}/both/status", csr)
    assert status == 422 and causes(body)["status.certificate"].endswith(
        "must contain at least one CERTIFICATE PEM block"), body
    # Approved through status is not an approval
    csr = get_csr(cluster, "both")
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    status, body = cluster.http("PUT", f"{CSRS}/both/status", csr)
    assert status == 422 and 'updates may not add a condition of type "Approved"' in causes(body)["status.conditions"]
    cluster.kubectl("certificate", "approve", "both")
    csr = get_csr(cluster, "both")
    csr["status"]["conditions"] = []
    status, body = cluster.http("PUT", f"{CSRS}/both/approval", csr)
    assert status == 422 and 'updates may not remove a condition of type "Approved"' in causes(body)[
        "status.conditions"], body
    # another signer's request is left alone by podlife's signer
    assert not get_csr(cluster, "both")["status"].get("certificate")


# -- bootstrap tokens: auto-approval -----------------------------------------------------


@pytest.mark.e2e
def test_bootstrap_token_node_client_request_is_auto_approved(cluster: PodlifeProcess, tmp_path: Path) -> None:
    token = create_token(cluster)
    token_id = token.split(".")[0]
    # not a node client request (no system:nodes organization): left pending
    status, body = post_as(cluster, token, manifest("not-a-node", request_pem(new_key(), "system:node:n1"),
                                                    KUBELET_CLIENT, ["digital signature", "client auth"]))
    assert status == 201, body
    key = new_key()
    status, body = post_as(cluster, token, manifest("node-n1", request_pem(key, "system:node:n1", ("system:nodes",)),
                                                    KUBELET_CLIENT, ["digital signature", "client auth"]))
    assert status == 201, body
    assert body["spec"]["username"] == f"system:bootstrap:{token_id}"
    assert "system:bootstrappers:kubeadm:default-node-token" in body["spec"]["groups"]

    cert = issued(cluster, "node-n1")
    approved = certs.condition(get_csr(cluster, "node-n1"), "Approved")
    assert approved is not None and approved["reason"] == "AutoApproved"
    assert approved["message"] == "Auto approving kubelet client certificate after SubjectAccessReview."
    info = whoami(cluster, cert_kubeconfig(cluster, tmp_path / "n1.conf", cert, key))
    assert info["username"] == "system:node:n1" and info["groups"] == ["system:nodes", "system:authenticated"]

    # the token's user may not approve, nor read other requests' certificates through approval
    pending = get_csr(cluster, "not-a-node")
    assert not (pending.get("status") or {}).get("conditions"), pending
    pending["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    status, body = cluster.http("PUT", f"{CSRS}/not-a-node/approval", pending, auth=False,
                                headers={"Authorization": f"Bearer {token}"})
    assert status == 403, body


def test_signer_duration_and_cleaner_deadlines() -> None:
    year = certs.DEFAULT_SIGNING_DURATION
    assert certs.signing_duration(year, None) == year
    assert certs.signing_duration(year, 10 * year) == year
    assert certs.signing_duration(year, 3600) == 3600
    created = "2026-01-01T00:00:00Z"
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    pending = {"metadata": {"creationTimestamp": created}, "status": {}}
    assert deletion_time(pending) == base + 24 * 3600
    for kind in ("Approved", "Denied", "Failed"):
        decided = {"metadata": {"creationTimestamp": created},
                   "status": {"conditions": [{"type": kind, "status": "True", "lastUpdateTime": "2026-01-01T02:00:00Z"}]}}
        assert deletion_time(decided) == base + 3 * 3600, kind
