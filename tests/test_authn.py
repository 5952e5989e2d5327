"""Authentication (issue 10): the authenticator chain, service-account tokens, x509, TokenReview.

Three levels. Unit tests drive :mod:`podlife.api.authn` directly, with a clock the test
moves and lookup callbacks over a dict (so "the account was deleted" is one line). The
in-process tests serve the API over real TLS (:meth:`PKI.server_ssl_context`) in this
process, to check what needs a server's options or a request's peer certificate. The e2e
tests start ``podlife up`` (``cluster`` fixture) and use kubectl and raw HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from podlife.api.authn import (
    CRYPTO_FAILURE, INVALID_BEARER_TOKEN, AuthenticationFailed, AuthenticationOptions, Authenticator, BearerToken,
    BoundObjectLookups, Credentials, Live, Lookup, ServiceAccountTokens, StaticTokens, TokenUnion, Union,
    X509ClientCertificates, aggregate, anonymous_allowed, bearer_token, build_authenticator, go_quote, load_certificates,
    parse_token_file,
)
from podlife.api.identity import (
    ADMIN_USER, ANONYMOUS_USER, ISSUER, ObjectRef, TokenIssuer, UserInfo, b64url, encode_jws, key_id,
    load_signing_key, new_signing_key, parse_jws,
)
from podlife.api.pki import PKI, write_kubeconfig
from podlife.client.base import Resource

from .cluster_harness import PodlifeProcess, wait_for
from .in_process import InProcessApi

NOW = 1_800_000_000.0
SA_UID = "6b1f0a8e-0000-4000-8000-000000000001"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """The objects tokens may name: ``(kind, namespace, name) -> Live``."""

    objects: dict[tuple[str, str, str], Live] = field(default_factory=dict)

    def lookups(self) -> BoundObjectLookups:
        def finder(kind: str) -> Lookup:
            return lambda namespace, name: self.objects.get((kind, namespace, name))
        return BoundObjectLookups(finder("sa"), finder("pod"), finder("secret"), finder("node"))


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    made = PKI(tmp_path / "pki")
    made.ensure(["127.0.0.1"])
    return made


@pytest.fixture
def world() -> World:
    return World({("sa", "default", "robot"): Live(SA_UID)})


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return new_signing_key()


@pytest.fixture
def issuer(key: ec.EllipticCurvePrivateKey) -> TokenIssuer:
    return TokenIssuer(key)


def sa_tokens(issuer: TokenIssuer, world: World, clock: Clock, audiences: tuple[str, ...] = (ISSUER,)) -> ServiceAccountTokens:
    return ServiceAccountTokens([issuer.public_key], [ISSUER], audiences, world.lookups(), clock)


def robot_token(issuer: TokenIssuer, seconds: int = 3600, audiences: list[str] | None = None, **bound: Any) -> str:
    return issuer.issue("default", "robot", SA_UID, audiences or [ISSUER], seconds, NOW, **bound)[0]


def rejection(authenticate: Any, *args: Any) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        authenticate(*args)
    return str(caught.value)


# ---- the token format -------------------------------------------------------------------------


def test_tokens_are_es256_jwts_with_kubernetes_claims(issuer: TokenIssuer) -> None:
    token, expires = issuer.issue("team", "robot", SA_UID, ["api", "vault"], 600, NOW,
                                  pod=ObjectRef("web-0", "pod-uid"), node=ObjectRef("node-a", "node-uid"))
    head, body, signature = token.split(".")
    assert orjson.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": "ES256", "kid": issuer.key_id}
    assert issuer.key_id == key_id(issuer.public_key) and len(base64.urlsafe_b64decode(signature + "==")) == 64
    claims = parse_jws(token).claims
    assert list(claims) == sorted(claims)  # go-jose writes keys sorted
    assert claims["iss"] == ISSUER and claims["sub"] == "system:serviceaccount:team:robot"
    assert claims["aud"] == ["api", "vault"]
    assert claims["iat"] == claims["nbf"] == int(NOW) and claims["exp"] == expires == int(NOW) + 600
    assert len(claims["jti"]) == 36
    assert claims["kubernetes.io"] == {"namespace": "team", "serviceaccount": {"name": "robot", "uid": SA_UID},
                                       "pod": {"name": "web-0", "uid": "pod-uid"},
                                       "node": {"name": "node-a", "uid": "node-uid"}}


def test_kid_is_the_sha256_of_the_public_key_der(issuer: TokenIssuer) -> None:
    der = issuer.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert issuer.key_id == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def test_a_token_binds_at_most_one_kind_of_object(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="only be bound to one object type"):
        issuer.issue("default", "robot", SA_UID, [ISSUER], 600, NOW, secret=ObjectRef("s", "u"), pod=ObjectRef("p", "u"))


def test_warnafter_is_written_when_asked(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("default", "robot", SA_UID, [ISSUER], 3600, NOW, warn_after=3607)
    assert parse_jws(token).claims["kubernetes.io"]["warnafter"] == int(NOW) + 3607


# ---- service-account tokens ---------------------------------------------------------------------


def test_a_valid_token_is_its_service_account(issuer: TokenIssuer, world: World) -> None:
    token = robot_token(issuer)
    response = sa_tokens(issuer, world, Clock(NOW + 10)).authenticate_token(token, None)
    assert response is not None
    user = response.user
    assert user.username == "system:serviceaccount:default:robot" and user.uid == SA_UID
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default")
    assert user.extra == {"authentication.kubernetes.io/credential-id": [f"JTI={parse_jws(token).claims['jti']}"]}
    assert response.audiences == (ISSUER,)


def test_expiry_has_a_minute_of_leeway(issuer: TokenIssuer, world: World) -> None:
    token = robot_token(issuer, seconds=600)
    clock = Clock(NOW + 600 + 59)
    tokens = sa_tokens(issuer, world, clock)
    assert tokens.authenticate_token(token, None) is not None
    clock.now = NOW + 600 + 61
    assert rejection(tokens.authenticate_token, token, None) == "service account token has expired"


def test_not_yet_valid_and_issued_in_the_future(key: ec.EllipticCurvePrivateKey, issuer: TokenIssuer, world: World) -> None:
    tokens = sa_tokens(issuer, world, Clock(NOW - 61))
    assert rejection(tokens.authenticate_token, robot_token(issuer), None) == "service account token is not valid yet"
    claims = {**parse_jws(robot_token(issuer)).claims, "nbf": int(NOW - 3600), "iat": int(NOW + 3600)}
    future = encode_jws(key, issuer.key_id, claims)
    assert rejection(sa_tokens(issuer, world, Clock(NOW)).authenticate_token, future, None) == \
        "service account token is issued in the future"


def test_audiences_must_meet(issuer: TokenIssuer, world: World) -> None:
    tokens = sa_tokens(issuer, world, Clock(), audiences=(ISSUER,))
    other = robot_token(issuer, audiences=["vault"])
    assert rejection(tokens.authenticate_token, other, None) == \
        f'token audiences ["vault"] is invalid for the target audiences ["{ISSUER}"]'
    reviewed = tokens.authenticate_token(other, ("vault", "other"))  # a TokenReview naming the token's audience
    assert reviewed is not None and reviewed.audiences == ("vault",)
    assert rejection(tokens.authenticate_token, robot_token(issuer), ("a", "b")) == \
        f'token audiences ["{ISSUER}"] is invalid for the target audiences ["a" "b"]'


def test_a_token_without_audiences_is_the_api_servers(key: ec.EllipticCurvePrivateKey, issuer: TokenIssuer,
                                                      world: World) -> None:
    claims = parse_jws(robot_token(issuer)).claims
    del claims["aud"]
    response = sa_tokens(issuer, world, Clock()).authenticate_token(encode_jws(key, issuer.key_id, claims), None)
    assert response is not None and response.audiences == (ISSUER,)


def test_deleted_and_replaced_accounts_revoke_their_tokens(issuer: TokenIssuer, world: World) -> None:
    token = robot_token(issuer)
    tokens = sa_tokens(issuer, world, Clock())
    assert tokens.authenticate_token(token, None) is not None
    world.objects[("sa", "default", "robot")] = Live("another-uid")  # deleted and created again
    assert rejection(tokens.authenticate_token, token, None) == \
        f"service account UID (another-uid) does not match claim ({SA_UID})"
    del world.objects[("sa", "default", "robot")]
    assert rejection(tokens.authenticate_token, token, None) == 'serviceaccounts "robot" not found'
    world.objects[("sa", "default", "robot")] = Live(SA_UID, deleted_at=NOW - 61)  # being deleted, for over a minute
    assert rejection(tokens.authenticate_token, token, None) == "service account default/robot has been deleted"
    world.objects[("sa", "default", "robot")] = Live(SA_UID, deleted_at=NOW - 30)
    assert tokens.authenticate_token(token, None) is not None


def test_pod_bound_tokens_die_with_the_pod_and_name_its_node(issuer: TokenIssuer, world: World) -> None:
    token = robot_token(issuer, pod=ObjectRef("web-0", "pod-1"), node=ObjectRef("node-a", "node-1"))
    tokens = sa_tokens(issuer, world, Clock())
    assert rejection(tokens.authenticate_token, token, None) == "service account token has been invalidated"
    world.objects[("pod", "default", "web-0")] = Live("pod-2")
    assert rejection(tokens.authenticate_token, token, None) == \
        "pod UID (pod-2) does not match service account pod ref claim (pod-1)"
    world.objects[("pod", "default", "web-0")] = Live("pod-1")
    response = tokens.authenticate_token(token, None)  # the node need not exist: a pod-bound token only names it
    assert response is not None and {k: v for k, v in response.user.extra.items() if "credential" not in k} == {
        "authentication.kubernetes.io/pod-name": ["web-0"], "authentication.kubernetes.io/pod-uid": ["pod-1"],
        "authentication.kubernetes.io/node-name": ["node-a"], "authentication.kubernetes.io/node-uid": ["node-1"]}
    world.objects[("pod", "default", "web-0")] = Live("pod-1", deleted_at=NOW - 120)
    assert rejection(tokens.authenticate_token, token, None) == "service account token has been invalidated"


def test_secret_and_node_bound_tokens(issuer: TokenIssuer, world: World) -> None:
    tokens = sa_tokens(issuer, world, Clock())
    secret_token = robot_token(issuer, secret=ObjectRef("creds", "secret-1"))
    assert rejection(tokens.authenticate_token, secret_token, None) == "service account token has been invalidated"
    world.objects[("secret", "default", "creds")] = Live("secret-0")
    assert rejection(tokens.authenticate_token, secret_token, None) == \
        "secret UID (secret-0) does not match service account secret ref claim (secret-1)"
    world.objects[("secret", "default", "creds")] = Live("secret-1")
    assert tokens.authenticate_token(secret_token, None) is not None
    node_token = robot_token(issuer, node=ObjectRef("node-a", "node-1"))
    assert rejection(tokens.authenticate_token, node_token, None) == "service account token has been invalidated"
    world.objects[("node", "", "node-a")] = Live("node-0")
    assert rejection(tokens.authenticate_token, node_token, None) == \
        "node UID (node-0) does not match service account node ref claim (node-1)"
    world.objects[("node", "", "node-a")] = Live("node-1")
    response = tokens.authenticate_token(node_token, None)
    assert response is not None and response.user.extra["authentication.kubernetes.io/node-name"] == ["node-a"]


def test_signatures(issuer: TokenIssuer, world: World) -> None:
    tokens = sa_tokens(issuer, world, Clock())
    token = robot_token(issuer)
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{b64url(bytes(64))}"
    assert rejection(tokens.authenticate_token, forged, None) == CRYPTO_FAILURE
    tampered = f"{head}.{b64url(orjson.dumps({**parse_jws(token).claims, 'sub': 'system:admin'}))}.{signature}"
    assert rejection(tokens.authenticate_token, tampered, None) == CRYPTO_FAILURE
    stranger = TokenIssuer(new_signing_key())  # same issuer name, another key: its kid is unknown here
    assert rejection(tokens.authenticate_token, robot_token(stranger), None) == "invalid signature, no keys found"
    hs256 = b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    hmac_era = f"{hs256}.{body}.{b64url(bytes(32))}"  # podlife's tokens before ES256
    assert rejection(tokens.authenticate_token, hmac_era, None) == CRYPTO_FAILURE


def test_tokens_that_are_not_ours_are_left_to_others(issuer: TokenIssuer, world: World) -> None:
    tokens = sa_tokens(issuer, world, Clock())
    elsewhere = TokenIssuer(new_signing_key(), "https://oidc.example.com")
    for token in ("not-a-jwt", "a.b.c", robot_token(elsewhere), '{"iss": "x"}.e30.e30'):
        assert tokens.authenticate_token(token, None) is None


def test_verified_signatures_are_remembered_not_the_verdict(issuer: TokenIssuer, world: World) -> None:
    clock = Clock()
    tokens = sa_tokens(issuer, world, clock)
    token = robot_token(issuer, seconds=600)
    assert tokens.authenticate_token(token, None) is not None and token in tokens._verified
    clock.now = NOW + 3600
    assert rejection(tokens.authenticate_token, token, None) == "service account token has expired"


# ---- the chain ----------------------------------------------------------------------------------


def chain(issuer: TokenIssuer, world: World, clock: Clock, *, token_file: Path | None = None,
          ca: Path | None = None) -> Authenticator:
    options = AuthenticationOptions(client_ca_file=ca, token_auth_file=token_file)
    return build_authenticator(options, admin_token="admin-secret", service_account_keys=[issuer.public_key],
                               lookups=world.lookups(), clock=clock)


def bearer(token: str) -> Credentials:
    return Credentials(f"Bearer {token}")


def test_errors_are_worded_as_kube_apiservers(issuer: TokenIssuer, world: World) -> None:
    clock = Clock(NOW + 7200)
    authn = chain(issuer, world, clock)
    assert rejection(authn.authenticate, bearer(robot_token(issuer))) == \
        "[invalid bearer token, service account token has expired]"
    assert rejection(authn.authenticate, bearer("nope")) == INVALID_BEARER_TOKEN
    assert authn.review(robot_token(issuer)) == {
        "user": {}, "error": "[invalid bearer token, service account token has expired]"}


def test_the_admin_token_and_anonymous(issuer: TokenIssuer, world: World) -> None:
    authn = chain(issuer, world, Clock())
    assert authn.authenticate(bearer("admin-secret")).user == ADMIN_USER
    assert authn.authenticate(Credentials()).user == ANONYMOUS_USER
    assert authn.authenticate(Credentials("Basic YTpi")).user == ANONYMOUS_USER  # not ours: anonymous, as Kubernetes
    response = authn.authenticate(bearer(robot_token(issuer)))
    assert response.user.groups[-1] == "system:authenticated"
    no_anonymous = Authenticator(authn.chain, api_audiences=(ISSUER,), anonymous=False)
    with pytest.raises(AuthenticationFailed):
        no_anonymous.authenticate(Credentials())


def test_union_asks_in_order_and_collects_errors() -> None:
    class Rejects:
        def __init__(self, why: str) -> None:
            self.why = why

        def authenticate_token(self, token: str, audiences: Any) -> Any:
            raise AuthenticationFailed(self.why)

    known = StaticTokens({"t": UserInfo("u")}, [ISSUER])
    assert TokenUnion(Rejects("a"), known).authenticate_token("t", None) is not None
    assert rejection(TokenUnion(Rejects("a"), Rejects("b"), Rejects("a")).authenticate_token, "t", None) == "[a, b]"
    assert TokenUnion(known).authenticate_token("other", None) is None
    assert Union().authenticate(bearer("t")) is None


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer abc") == "abc"
    assert bearer_token("  Bearer abc  ") == "abc" and bearer_token("Bearer abc def") == "abc"
    for header in ("", "Bearer", "Bearer ", "Basic abc", "Bearer  abc"):
        assert bearer_token(header) is None, header
    assert rejection(BearerToken(TokenUnion()).authenticate, bearer("x")) == INVALID_BEARER_TOKEN


def test_go_wording_helpers() -> None:
    assert aggregate([]) == "" and aggregate(["a"]) == "a" and aggregate(["a", "b", "a"]) == "[a, b]"
    assert go_quote(["a", 'q"']) == '["a" "q\\""]' and go_quote([]) == "[]"


def test_anonymous_paths_are_default_rbacs_public_info() -> None:
    for path in ("/healthz", "/livez", "/readyz", "/version", "/version/"):
        assert anonymous_allowed("GET", path) and anonymous_allowed("HEAD", path)
    for method, path in (("POST", "/version"), ("GET", "/api"), ("GET", "/healthz/ping"), ("GET", "/api/v1/pods"),
                         ("GET", "/openapi/v3")):
        assert not anonymous_allowed(method, path), (method, path)


def test_options() -> None:
    assert AuthenticationOptions().audiences == (ISSUER,)
    assert AuthenticationOptions(service_account_issuers=("https://a", "https://b")).audiences == ("https://a",)
    assert AuthenticationOptions(api_audiences=("x",)).audiences == ("x",)
    with pytest.raises(ValueError, match="between 1 hour and 2"):
        AuthenticationOptions(service_account_max_token_expiration=600)
    with pytest.raises(ValueError, match="required"):
        AuthenticationOptions(service_account_issuers=())


# ---- static tokens ------------------------------------------------------------------------------


def test_token_file_parsing(caplog: pytest.LogCaptureFixture) -> None:
    tokens = parse_token_file('t1,alice,uid-1,"dev,ops"\n\nt2,bob,uid-2\n,nobody,uid-3\nt2,bobby,uid-4,\n', "tokens.csv")
    assert tokens == {"t1": UserInfo("alice", "uid-1", ("dev", "ops")), "t2": UserInfo("bobby", "uid-4")}
    assert "empty token has been found in token file 'tokens.csv', record number '3'" in caplog.text
    assert "duplicate token has been found in token file 'tokens.csv', record number '4'" in caplog.text
    with pytest.raises(ValueError) as caught:
        parse_token_file("t1,alice\n", "tokens.csv")
    assert str(caught.value) == "token file 'tokens.csv' must have at least 3 columns (token, user name, user uid), found 2"


def test_static_tokens_through_the_chain(tmp_path: Path, issuer: TokenIssuer, world: World) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('s3cret,alice,uid-1,"dev,ops"\n')
    authn = chain(issuer, world, Clock(), token_file=path)
    user = authn.authenticate(bearer("s3cret")).user
    assert user == UserInfo("alice", "uid-1", ("dev", "ops", "system:authenticated"))
    review = authn.review("s3cret")
    assert review["authenticated"] is True and review["audiences"] == [ISSUER]
    assert review["user"] == {"username": "alice", "uid": "uid-1", "groups": ["dev", "ops", "system:authenticated"]}
    # audience-agnostic: valid for the API server's audiences only
    assert authn.review("s3cret", ["vault"]) == {"user": {}, "error": INVALID_BEARER_TOKEN}


# ---- x509 ---------------------------------------------------------------------------------------


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_certificate_subject_is_the_user(pki: PKI, issuer: TokenIssuer, world: World) -> None:
    made = pki.client_certificate("jane", ["dev", "ops"], uid="jane-uid")
    der = der_of(made.certificate)
    authn = chain(issuer, world, Clock(time.time()), ca=pki.ca_cert)
    user = authn.authenticate(Credentials(client_certificate=der)).user
    assert user.username == "jane" and user.uid == "jane-uid" and user.groups == ("dev", "ops", "system:authenticated")
    assert user.extra == {"authentication.kubernetes.io/credential-id": ["X509SHA256=" + hashlib.sha256(der).hexdigest()]}
    # a bearer token comes first: with the admin token too, the request is the token's
    assert authn.authenticate(Credentials("Bearer admin-secret", der)).user.username == "podlife-admin"


def test_certificates_the_ca_did_not_sign_or_not_for_clients(pki: PKI, tmp_path: Path) -> None:
    authn = X509ClientCertificates(load_certificates(pki.ca_cert), Clock(time.time()))
    other = PKI(tmp_path / "other")
    other.ensure([])
    foreign = der_of(other.client_certificate("mallory", ["system:masters"]).certificate)
    message = rejection(authn.authenticate, Credentials(client_certificate=foreign))
    serial = x509.load_der_x509_certificate(foreign).serial_number
    assert message.startswith(f"verifying certificate SN={serial}, SKID=, AKID=")
    assert message.endswith(" failed: x509: certificate signed by unknown authority")
    server_only = der_of(pki.client_certificate("web", usage=ExtendedKeyUsageOID.SERVER_AUTH).certificate)
    assert rejection(authn.authenticate, Credentials(client_certificate=server_only)).endswith(
        "failed: x509: certificate specifies an incompatible key usage")
    no_name = der_of(pki.client_certificate("", ["dev"]).certificate)
    assert authn.authenticate(Credentials(client_certificate=no_name)) is None  # no CN: not a user, next please


def test_certificate_validity_is_checked_each_time(pki: PKI) -> None:
    clock = Clock(time.time())
    authn = X509ClientCertificates(load_certificates(pki.ca_cert), clock)
    der = der_of(pki.client_certificate("jane").certificate)
    assert authn.authenticate(Credentials(client_certificate=der)) is not None
    clock.now += 400 * 24 * 3600
    assert "x509: certificate has expired or is not yet valid: current time " in \
        rejection(authn.authenticate, Credentials(client_certificate=der))


# ---- PKI ----------------------------------------------------------------------------------------


def test_pki_makes_the_admin_certificate_and_the_token_key_pair(pki: PKI) -> None:
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    assert admin.subject.rfc4514_string() == "CN=podlife-admin,O=system:masters"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    key = load_signing_key(pki.service_account_key())
    public = serialization.load_pem_public_key(pki.service_account_public_key_file.read_bytes())
    assert key_id(key.public_key()) == key_id(public)  # type: ignore[arg-type]
    before = pki.admin_cert.read_bytes(), pki.service_account_key()
    pki.ensure(["127.0.0.1"])
    assert (pki.admin_cert.read_bytes(), pki.service_account_key()) == before  # kept across restarts


def test_pki_replaces_the_old_hmac_key_and_a_stale_admin_certificate(pki: PKI) -> None:
    pki.service_account_key_file.write_bytes(bytes(32))  # what podlife kept before ES256
    old_admin = pki.admin_cert.read_bytes()
    pki.ca_cert.unlink()  # a new CA: the admin certificate must follow it
    pki.ensure(["127.0.0.1"])
    load_signing_key(pki.service_account_key())
    assert pki.admin_cert.read_bytes() != old_admin
    x509.load_pem_x509_certificate(pki.admin_cert.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))


def test_kubeconfig_carries_the_client_certificate(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", pki.ca_cert, pki.admin_credentials())
    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    assert set(user) == {"client-certificate-data", "client-key-data"}
    assert base64.b64decode(user["client-certificate-data"]) == pki.admin_cert.read_bytes()
    write_kubeconfig(path, "https://127.0.0.1:6443", pki.ca_cert, pki.admin_credentials(), token="t")
    assert yaml.safe_load(path.read_text())["users"][0]["user"]["token"] == "t"


# ---- in process: the API over TLS -------------------------------------------------------------------


@dataclass
class Served:
    url: str
    pki: PKI
    api: InProcessApi

    def context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx


@pytest.fixture
async def served(local_api: InProcessApi, pki: PKI) -> AsyncIterator[Served]:
    from podlife.api.authz.bootstrap import ensure_bootstrap_policy
    from podlife.api.server import APIServer

    await ensure_bootstrap_policy(local_api.client)  # as podlife up does: default RBAC before the first request
    options = AuthenticationOptions(client_ca_file=pki.ca_cert, service_account_max_token_expiration=7200)
    server = APIServer(local_api.ctx, token="admin-secret", service_account_key=pki.service_account_key(),
                       authentication=options)
    url = await server.start("127.0.0.1", 0, pki.server_ssl_context())
    try:
        yield Served(url, pki, local_api)
    finally:
        await server.stop()


def write_pair(tmp_path: Path, pki: PKI, name: str, groups: list[str]) -> tuple[Path, Path]:
    made = pki.client_certificate(name, groups)
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert.write_bytes(made.certificate)
    key.write_bytes(made.key)
    return cert, key


async def call(served: Served, method: str, path: str, body: Any = None, *, token: str | None = "admin-secret",
               cert: tuple[Path, Path] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, served.url + path, json=body, headers=headers,
                                   ssl=served.context(cert)) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text.startswith("{") else text, resp


async def test_the_peer_certificate_reaches_the_authenticator(served: Served, tmp_path: Path) -> None:
    pair = write_pair(tmp_path, served.pki, "jane", ["dev"])
    status, body, _ = await call(served, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                 {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                                 token=None, cert=pair)
    assert status == 201, body
    info = body["status"]["userInfo"]
    assert info["username"] == "jane" and info["groups"] == ["dev", "system:authenticated"]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("X509SHA256=")
    assert (await call(served, "GET", "/api/v1/pods", token=None))[0] == 401
    assert (await call(served, "GET", "/version", token=None))[0] == 200


async def test_a_certificate_of_another_ca_fails_the_handshake(served: Served, tmp_path: Path) -> None:
    other = PKI(tmp_path / "other")
    other.ensure([])
    pair = write_pair(tmp_path, other, "mallory", ["system:masters"])
    with pytest.raises(aiohttp.ClientError):
        await call(served, "GET", "/api/v1/pods", token=None, cert=pair)


def token_request(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


async def create_token(served: Served, spec: dict[str, Any], account: str = "robot") -> tuple[int, Any, Any]:
    return await call(served, "POST", f"/api/v1/namespaces/default/serviceaccounts/{account}/token", token_request(spec))


async def make(served: Served, obj: dict[str, Any]) -> dict[str, Any]:
    plural = {"ServiceAccount": "serviceaccounts", "Pod": "pods"}[obj["kind"]]
    created: dict[str, Any] = await served.api.client.create(Resource("", "v1", plural, obj["kind"]), obj, "default")
    return created


async def test_token_request_expiry_rules(served: Served) -> None:
    await make(served, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}})
    status, body, _ = await create_token(served, {})
    assert status == 201 and body["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600}
    assert "boundObjectRef" not in body["spec"] and body["metadata"]["creationTimestamp"]
    claims = parse_jws(body["status"]["token"]).claims
    assert claims["exp"] - claims["iat"] == 3600
    status, body, _ = await create_token(served, {"expirationSeconds": 599})
    assert status == 422 and body["message"] == ('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
                                                 "Invalid value: 599: may not specify a duration less than 10 minutes")
    assert body["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    status, body, _ = await create_token(served, {"expirationSeconds": (1 << 32) + 1})
    assert status == 422 and "may not specify a duration larger than 2^32 seconds" in body["message"]
    status, body, resp = await create_token(served, {"expirationSeconds": 86400})  # the server's maximum is 2h
    assert status == 201 and body["spec"]["expirationSeconds"] == 7200
    assert resp.headers["Warning"] == '299 - "requested expiration of 86400 seconds shortened to 7200 seconds"'
    status, body, _ = await create_token(served, {}, account="nobody")
    assert status == 404 and body["message"] == 'serviceaccounts "nobody" not found'


async def test_token_request_bound_objects(served: Served) -> None:
    sa = await make(served, {"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": "robot", "namespace": "default"}})
    pod = await make(served, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                              "spec": {"serviceAccountName": "robot", "nodeName": "gone-node",
                                       "containers": [{"name": "c", "image": "x"}]}})
    other = await make(served, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other", "namespace": "default"},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}})
    status, body, _ = await create_token(served, {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"},
                                                  "expirationSeconds": 3607})
    assert status == 201, body
    claims = parse_jws(body["status"]["token"]).claims
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    assert claims["kubernetes.io"]["node"] == {"name": "gone-node", "uid": ""}
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600 and claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    assert body["spec"]["expirationSeconds"] == 3607  # what was asked: the status' expiry says an hour and 7s
    status, body, _ = await create_token(served, {"boundObjectRef": {"kind": "Pod", "name": other["metadata"]["name"]}})
    assert status == 400 and body["message"] == ('cannot bind token for serviceaccount "robot" to pod running with '
                                                 "different serviceaccount name.")
    status, body, _ = await create_token(served, {"boundObjectRef": {"kind": "Pod", "name": "web", "uid": "stale"}})
    assert status == 409 and body["message"] == (
        'Operation cannot be fulfilled on Pod "web": the UID in the bound object reference (stale) does not match the '
        "UID in record. The object might have been deleted and then recreated")
    status, body, _ = await create_token(served, {"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}})
    assert status == 400 and body["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    # the pod-bound token works while the pod lives, and the review names the pod
    status, body, _ = await create_token(served, {"boundObjectRef": {"kind": "Pod", "name": "web"}})
    token = body["status"]["token"]
    review = await call(served, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    user = review[1]["status"]["user"]
    assert user["uid"] == sa["metadata"]["uid"] and user["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]


async def test_token_review_answers(served: Served) -> None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    status, body, _ = await call(served, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {**review, "spec": {}})
    assert status == 400 and body["message"] == "token is required for TokenReview in authentication"
    status, body, _ = await call(served, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                 {**review, "spec": {"token": "admin-secret"}})
    assert status == 201 and body["status"] == {"authenticated": True, "user": ADMIN_USER.as_dict(), "audiences": [ISSUER]}
    status, body, _ = await call(served, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                 {**review, "spec": {"token": "nope"}})
    assert body["status"] == {"user": {}, "error": INVALID_BEARER_TOKEN}


# ---- e2e: podlife up ----------------------------------------------------------------------------------

def https(cluster: PodlifeProcess, method: str, path: str, body: Any = None, *, token: str | None = None,
          cert: tuple[Path, Path] | None = None) -> tuple[int, Any]:
    """Raw HTTPS with only the credentials given (a bearer token, a client certificate, or none)."""
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    req = urllib.request.Request(cluster.server + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Content-Type": "application/json"})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    return status, json.loads(raw) if raw.startswith(b"{") else raw.decode()


def review(cluster: PodlifeProcess, token: str) -> dict[str, Any]:
    status, body = cluster.http("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert status == 201, body
    return body["status"]


def cert_only_kubeconfig(cluster: PodlifeProcess, tmp_path: Path) -> Path:
    """The kubeconfig podlife wrote, without the admin token: the client certificate is the only credential."""
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg["users"][0]["user"].pop("token", None)
    path = tmp_path / "cert-kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.e2e
def test_kubectl_is_the_admin_certificates_user(cluster: PodlifeProcess, tmp_path: Path) -> None:
    user = yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["user"]
    assert "client-certificate-data" in user and "client-key-data" in user
    der = der_of((cluster.data_dir / "pki" / "admin.crt").read_bytes())
    fingerprint = "X509SHA256=" + hashlib.sha256(der).hexdigest()
    assert "token" not in user  # one credential per user, as kubeadm and k3s write it
    kubeconfig = cert_only_kubeconfig(cluster, tmp_path)
    for config in (kubeconfig, cluster.kubeconfig):
        out = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", f"--kubeconfig={config}").stdout)
        info = out["status"]["userInfo"]
        assert info["username"] == "podlife-admin" and info["groups"] == ["system:masters", "system:authenticated"]
        assert info["extra"] == {"authentication.kubernetes.io/credential-id": [fingerprint]}
    assert cluster.kubectl("get", "namespaces", "default", f"--kubeconfig={kubeconfig}").returncode == 0


@pytest.mark.e2e
def test_client_certificates_the_ca_signed(cluster: PodlifeProcess, tmp_path: Path) -> None:
    pki = PKI(cluster.data_dir / "pki")
    pair = write_pair(tmp_path, pki, "jane", ["dev", "ops"])
    status, body = https(cluster, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, cert=pair)
    assert status == 201 and body["status"]["userInfo"]["username"] == "jane"
    assert body["status"]["userInfo"]["groups"] == ["dev", "ops", "system:authenticated"]
    other = PKI(tmp_path / "other")
    other.ensure([])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        https(cluster, "GET", "/api/v1/pods", cert=write_pair(tmp_path, other, "mallory", ["system:masters"]))


@pytest.mark.e2e
def test_service_account_token_dies_with_its_account(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "serviceaccount", "doomed")
    token = cluster.kubectl("create", "token", "doomed").stdout.strip()
    status, body = https(cluster, "GET", "/api/v1/namespaces/default/configmaps", token=token)
    assert status == 403 and body["reason"] == "Forbidden"  # authenticated; RBAC grants it nothing
    assert review(cluster, token)["user"]["username"] == "system:serviceaccount:default:doomed"
    cluster.kubectl("delete", "serviceaccount", "doomed")
    wait_for(lambda: https(cluster, "GET", "/api/v1/namespaces/default/configmaps", token=token)[0] == 401, 10,
             what="the token of the deleted account to be refused")
    assert review(cluster, token) == {"user": {}, "error": '[invalid bearer token, serviceaccounts "doomed" not found]'}
    cluster.kubectl("create", "serviceaccount", "doomed")  # the same name again is another account
    assert https(cluster, "GET", "/api/v1/namespaces/default/configmaps", token=token)[0] == 401
    assert "does not match claim" in review(cluster, token)["error"]


@pytest.mark.e2e
def test_an_expired_token_is_refused(cluster: PodlifeProcess) -> None:
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30,
             what="the default service account")
    uid = cluster.kubectl_json("get", "serviceaccount", "default")["metadata"]["uid"]
    issuer = TokenIssuer(load_signing_key(PKI(cluster.data_dir / "pki").service_account_key()))
    expired, _ = issuer.issue("default", "default", uid, [ISSUER], 600, time.time() - 3600)  # signed by the cluster's key
    fresh, _ = issuer.issue("default", "default", uid, [ISSUER], 600)
    assert https(cluster, "GET", "/api/v1/namespaces/default/pods", token=fresh)[0] == 403  # known, not permitted
    assert https(cluster, "GET", "/api/v1/namespaces/default/pods", token=expired)[0] == 401
    assert review(cluster, expired) == {"user": {}, "error": "[invalid bearer token, service account token has expired]"}


@pytest.mark.e2e
def test_anonymous_requests(cluster: PodlifeProcess) -> None:
    for path in ("/version", "/version/", "/healthz", "/livez", "/readyz"):
        assert https(cluster, "GET", path)[0] == 200, path
    for path in ("/api", "/api/v1/pods", "/healthz/ping", "/openapi/v3"):
        assert https(cluster, "GET", path)[0] == 401, path
    assert https(cluster, "GET", "/version", token="nope")[0] == 401  # bad credentials are never anonymous
