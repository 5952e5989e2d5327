"""Authentication: which user a request is, decided as kube-apiserver decides it.

The chain (kube-apiserver's, ``pkg/kubeapiserver/authenticator``)::

    credentials ─► union ─┬─ bearer token ─► the admin token
                          ├─ bearer token ─► union ─┬─ static token file (--token-auth-file)
                          │                         ├─ bootstrap tokens (podlife.api.bootstrap_tokens)
                          │                         └─ service-account JWTs
                          └─ x509 client certificate, chained to the cluster CA
                   accepted ─► system:authenticated added to the groups
                   nothing recognised, no error ─► system:anonymous
                   an error (credentials recognised and rejected) ─► 401, never anonymous

- A *union* asks its members in order and the first that accepts decides. A member that
  recognises the credentials and rejects them records an error and the next is asked; when
  none accepts, the errors together are the answer, worded as Go's aggregate error (one
  message as is, several as ``[a, b]``, each once). A bearer-token authenticator turns "no
  token authenticator knows this token" into the error ``invalid bearer token``.
- The admin token stands where kube-apiserver has its privileged loopback token: a bearer
  authenticator of its own beside the main chain. So a rejected token is worded as on a real
  cluster (``[invalid bearer token, service account token has expired]``), in the 401's log
  line and in a TokenReview. x509 comes *last* (kube-apiserver asks it first): a request
  that carries a bearer token as well as a certificate is the token's, so ``kubectl
  --token=...`` with the admin's kubeconfig acts as the token says, as a user means it.
- x509: the TLS server asks for an optional client certificate verified against the CA
  (:meth:`podlife.api.pki.PKI.server_ssl_context`); the authenticator checks it again (issued
  by the CA, in its validity period, usable for client auth) and makes the subject's CN the
  user, its O values the groups, the 1.3.6.1.4.1.57683.2 attribute the uid, and the
  certificate's SHA-256 the ``credential-id`` extra, as Kubernetes 1.33+ does.
- Service-account tokens (:class:`ServiceAccountTokens`): a JWT naming an accepted issuer
  (otherwise it is not ours: the next authenticator may know it), signed by one of the keys
  (the ``kid`` picks it), whose ``aud`` meets the audiences asked for (the API server's,
  ``--api-audiences``, default the issuer; a TokenReview may ask for others), within
  ``nbf``/``exp``/``iat`` with go-jose's minute of leeway, and whose service account -- and
  the pod, secret or node it is bound to -- still exists with the uid in the token. The
  objects are found through lookup callbacks (:class:`BoundObjectLookups`; the API server
  reads its watch cache, :func:`context_lookups`), so deleting or recreating an account
  revokes its tokens at once. A verified signature is remembered (the checks after it run
  every time), so a client sending one token many times pays for one ECDSA verification.
- Anonymous requests get through only where Kubernetes' default RBAC lets
  ``system:unauthenticated`` in (``system:public-info-viewer``: GET ``/healthz``, ``/livez``,
  ``/readyz``, ``/version``, ``/version/``), and to the authorizer on a GET of
  ``kube-public/cluster-info`` (joining nodes' discovery: RBAC decides, 403 unless bound);
  elsewhere they are answered 401 (:func:`anonymous_allowed`), the stand-in until an
  authorizer answers them all as RBAC does.
- Legacy secret-based service-account tokens (issuer ``kubernetes/serviceaccount``,
  :mod:`podlife.api.legacy_tokens`) are one more token authenticator in the union, before
  the service-account one; they need the Secret itself (``BoundObjectLookups.secret_object``).
- Cookies are never credentials here. The web UI's session cookie is read only by
  :mod:`podlife.api.ui`, which answers ``/ui`` requests before this chain runs (and
  authenticates the session's stored credentials with this authenticator), so a browser's
  cookie cannot authenticate an API request.
- Not here yet: tokens carried in ``Sec-WebSocket-Protocol`` (every client podlife is
  tested with sends the header), OIDC and webhook token authenticators, and a cache of
  successful authentications.

Everything here is synchronous -- credentials are checked against the watch cache, with no
I/O -- because it runs on the event loop for every request.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..machinery import errors
from .identity import (
    ADMIN_USER, ANONYMOUS_USER, AUTHENTICATED, CREDENTIAL_ID_KEY, ISSUER, UNAUTHENTICATED, ObjectRef, SignedToken,
    UserInfo, key_id, parse_jws, service_account_user, verify_es256,
)
from .pki import UID_OID

if TYPE_CHECKING:
    from .rest import ApiContext

log = logging.getLogger(__name__)

#: go-jose's ``jwt.DefaultLeeway``: clocks may disagree by a minute
LEEWAY = 60.0
INVALID_BEARER_TOKEN = "invalid bearer token"
INVALIDATED = "service account token has been invalidated"
#: what go-jose says of a signature that does not verify (whatever the reason)
CRYPTO_FAILURE = "go-jose/go-jose: error in cryptographic primitive"
#: the paths default RBAC (``system:public-info-viewer``) opens to ``system:unauthenticated``
PUBLIC_INFO_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
#: paths an anonymous request is let through to the authorizer on (which decides as RBAC does): the
#: ``kube-public/cluster-info`` ConfigMap joining nodes discover the cluster from (kubeadm binds its read to
#: ``system:anonymous``; ``podlife token create`` does too; docs/joining.md)
ANONYMOUS_AUTHORIZED_PATHS = frozenset({"/api/v1/namespaces/kube-public/configmaps/cluster-info"})


class AuthenticationFailed(Exception):
    """Credentials were recognised and rejected: the request is 401, never anonymous.

    ``messages`` are the errors of every authenticator that rejected them; ``str()`` words
    them as Go's aggregate error does.
    """

    def __init__(self, *messages: str) -> None:
        self.messages = messages
        super().__init__(aggregate(messages))


def aggregate(messages: Iterable[str]) -> str:
    """Go's ``utilerrors.NewAggregate(...).Error()``: one message as is, several as ``[a, b]``, each once."""
    unique = list(dict.fromkeys(messages))
    if len(unique) <= 1:
        return unique[0] if unique else ""
    return "[" + ", ".join(unique) + "]"


def go_quote(values: Sequence[str]) -> str:
    """Go's ``%q`` of a string slice: ``["a" "b"]``."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def intersect(ours: Sequence[str], theirs: Sequence[str]) -> tuple[str, ...]:
    """Kubernetes' ``Audiences.Intersect``: those of ``theirs`` that are also ``ours``, in their order."""
    return tuple(a for a in theirs if a in ours)


@dataclass(frozen=True)
class Credentials:
    """What a request presents.

    ``client_certificate`` is the DER certificate TLS verified (None without one);
    ``audiences`` are those a TokenReview asks for (None: the API server's own).
    """

    authorization: str = ""
    client_certificate: bytes | None = None
    audiences: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Response:
    """Who the credentials are, and the audiences a token was accepted for."""

    user: UserInfo
    audiences: tuple[str, ...] = ()


class TokenAuthenticator(Protocol):
    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        """The token's user; None if this authenticator does not know the token; AuthenticationFailed to reject it."""


class RequestAuthenticator(Protocol):
    def authenticate(self, credentials: Credentials) -> Response | None:
        """The credentials' user; None if they are not for this authenticator; AuthenticationFailed to reject them."""


# ---- unions and wrappers ----------------------------------------------------------------------


class Union:
    """Request authenticators in order; the first that accepts decides (``union.New``)."""

    def __init__(self, *members: RequestAuthenticator) -> None:
        self.members = members
        self._ask = _first_accepting(member.authenticate for member in members)

    def authenticate(self, credentials: Credentials) -> Response | None:
        return self._ask(credentials)


class TokenUnion:
    """Token authenticators in order; the first that accepts decides (``tokenunion.New``)."""

    def __init__(self, *members: TokenAuthenticator) -> None:
        self.members = members
        self._ask = _first_accepting(member.authenticate_token for member in members)

    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        return self._ask(token, audiences)


def _first_accepting(calls: Iterable[Callable[..., Response | None]]) -> Callable[..., Response | None]:
    """A union's walk: the first member that accepts decides; if none does, their errors together
    (Go's aggregate), or None when none recognised the credentials at all."""
    members = tuple(calls)

    def ask(*args: Any) -> Response | None:
        failures: list[str] = []
        for call in members:
            try:
                response = call(*args)
            except AuthenticationFailed as exc:
                failures.extend(exc.messages)
                continue
            if response is not None:
                return response
        if failures:
            raise AuthenticationFailed(*failures)
        return None

    return ask


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, parsed as Kubernetes does; None if there is none."""
    parts = authorization.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class BearerToken:
    """The request authenticator of ``Authorization: Bearer`` tokens (``bearertoken.New``)."""

    def __init__(self, tokens: TokenAuthenticator) -> None:
        self.tokens = tokens

    def authenticate(self, credentials: Credentials) -> Response | None:
        token = bearer_token(credentials.authorization)
        if token is None:
            return None
        response = self.tokens.authenticate_token(token, credentials.audiences)
        if response is None:
            raise AuthenticationFailed(INVALID_BEARER_TOKEN)
        return response


def with_authenticated_group(response: Response) -> Response:
    """Add ``system:authenticated`` to an authenticated user's groups (``group.NewAuthenticatedGroupAdder``)."""
    user = response.user
    if user.anonymous or AUTHENTICATED in user.groups or UNAUTHENTICATED in user.groups:
        return response
    return Response(replace(user, groups=(*user.groups, AUTHENTICATED)), response.audiences)


# ---- static tokens ----------------------------------------------------------------------------


class StaticTokens:
    """A fixed set of tokens: the admin token, or ``--token-auth-file``'s.

    They are audience-agnostic (``authenticator.WrapAudienceAgnosticToken``): valid for the
    API server's audiences, so a TokenReview asking for other audiences does not know them.
    """

    def __init__(self, tokens: Mapping[str, UserInfo], api_audiences: Sequence[str]) -> None:
        self.tokens = dict(tokens)
        self.api_audiences = tuple(api_audiences)

    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        accepted: tuple[str, ...] = ()
        if audiences is not None:
            accepted = intersect(self.api_audiences, audiences)
            if not accepted:
                return None
        user = self.tokens.get(token)
        return Response(user, accepted) if user is not None else None


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """``--token-auth-file`` records, ``token,user,uid[,"group1,group2"]`` (``tokenfile.NewCSV``).

    Blank lines are skipped; fewer than three columns is an error; an empty token is skipped
    and a repeated one replaces the earlier, each with a warning. Empty group names are
    dropped (Go would keep an empty string).
    """
    tokens: dict[str, UserInfo] = {}
    number = 0
    for record in csv.reader(io.StringIO(text)):
        if not record:
            continue
        if len(record) < 3:
            raise ValueError(f"token file '{source}' must have at least 3 columns (token, user name, user uid), "
                             f"found {len(record)}")
        number += 1
        token, name, uid = record[0], record[1], record[2]
        if not token:
            log.warning("empty token has been found in token file '%s', record number '%d'", source, number)
            continue
        if token in tokens:
            log.warning("duplicate token has been found in token file '%s', record number '%d'", source, number)
        groups = tuple(g for g in record[3].split(",") if g) if len(record) >= 4 else ()
        tokens[token] = UserInfo(name, uid=uid, groups=groups)
    return tokens


def load_token_file(path: Path) -> dict[str, UserInfo]:
    return parse_token_file(path.read_text(), str(path))


# ---- service-account tokens ---------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """An object a token may name, as it is now: its uid and when its deletion began (epoch seconds)."""

    uid: str
    deleted_at: float | None = None


#: ``(namespace, name) -> the object, or None if there is none`` (nodes: namespace "")
Lookup = Callable[[str, str], "Live | None"]


#: ``(namespace, name) -> the object as served, or None``
ObjectLookup = Callable[[str, str], "Mapping[str, Any] | None"]


def _absent(namespace: str, name: str) -> Live | None:
    return None


def _no_object(namespace: str, name: str) -> Mapping[str, Any] | None:
    return None


def _ignore(namespace: str, name: str) -> None:
    return None


@dataclass(frozen=True)
class BoundObjectLookups:
    """How the service-account authenticator finds the objects tokens name.

    Kubernetes' ``ServiceAccountTokenGetter``. A lookup left out finds nothing, so tokens
    bound to that kind are refused (as kube-apiserver's generic getter does for pods and nodes).
    """

    service_account: Lookup
    pod: Lookup = _absent
    secret: Lookup = _absent
    node: Lookup = _absent
    #: the Secret itself, for legacy secret-based tokens (its ``data.token`` must be the token)
    secret_object: ObjectLookup = _no_object
    #: record that a legacy token Secret was used today (its ``kubernetes.io/legacy-token-last-used`` label)
    mark_secret_used: Callable[[str, str], None] = _ignore


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed(f"json: cannot unmarshal {type(value).__name__} into Go struct field Claims.{name} "
                                   "of type jwt.NumericDate")
    return float(value)


def _audience_claim(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """``aud``: one string or a list of them (go-jose's ``Audience``)."""
    aud = claims.get("aud")
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise AuthenticationFailed("go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience")


def _ref(value: Any) -> ObjectRef | None:
    if not isinstance(value, Mapping):
        return None
    return ObjectRef(str(value.get("name") or ""), str(value.get("uid") or ""))


class ServiceAccountTokens:
    """Service-account JWTs: signature, issuer, audiences, times, then the objects they name."""

    def __init__(self, public_keys: Sequence[ec.EllipticCurvePublicKey], issuers: Sequence[str],
                 api_audiences: Sequence[str], lookups: BoundObjectLookups, clock: Callable[[], float] = time.time,
                 cache_size: int = 4096) -> None:
        self.keys = [(key_id(k), k) for k in public_keys]
        self.issuers = frozenset(issuers)
        self.api_audiences = tuple(api_audiences)
        self.lookups = lookups
        self.clock = clock
        self._verified: OrderedDict[str, SignedToken] = OrderedDict()
        self._cache_size = cache_size

    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        signed = self._signed(token)
        if signed is None:
            return None
        claims = signed.claims
        ours = _audience_claim(claims) or self.api_audiences  # a token without audiences is the API server's
        wanted = audiences if audiences is not None else self.api_audiences
        accepted = intersect(ours, wanted)
        if not accepted and self.api_audiences:
            raise AuthenticationFailed(f"token audiences {go_quote(ours)} is invalid for the target audiences "
                                       f"{go_quote(wanted)}")
        return Response(self._validate(claims), accepted)

    def _signed(self, token: str) -> SignedToken | None:
        """The token with its signature verified; None if it is not a JWT of one of our issuers."""
        known = self._verified.get(token)
        if known is not None:
            self._verified.move_to_end(token)
            return known
        if token.lstrip().startswith("{"):
            return None
        try:
            signed = parse_jws(token)
        except ValueError:
            return None
        if not isinstance(signed.claims.get("iss"), str) or signed.claims["iss"] not in self.issuers:
            return None
        kid = signed.header.get("kid")
        keys = [k for i, k in self.keys if not kid or i == kid]
        if not keys:
            raise AuthenticationFailed("invalid signature, no keys found")
        if signed.header.get("alg") != "ES256" or not any(verify_es256(k, signed.signing_input, signed.signature)
                                                          for k in keys):
            raise AuthenticationFailed(CRYPTO_FAILURE)
        self._verified[token] = signed
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return signed

    def _validate(self, claims: Mapping[str, Any]) -> UserInfo:
        """Kubernetes' service-account validator: times, then the account and the bound objects."""
        now = self.clock()
        not_before, expiry, issued = (_numeric_date(claims, c) for c in ("nbf", "exp", "iat"))
        if not_before is not None and now + LEEWAY < not_before:
            raise AuthenticationFailed("service account token is not valid yet")
        if expiry is not None and now - LEEWAY > expiry:
            raise AuthenticationFailed("service account token has expired")
        if issued is not None and now + LEEWAY < issued:
            raise AuthenticationFailed("service account token is issued in the future")
        private = claims.get("kubernetes.io")
        private = private if isinstance(private, Mapping) else {}
        namespace = str(private.get("namespace") or "")
        account = _ref(private.get("serviceaccount")) or ObjectRef("", "")
        cutoff = now - LEEWAY  # what was deleted before this is gone
        self._check_account(namespace, account, cutoff)
        secret, pod, node = (_ref(private.get(k)) for k in ("secret", "pod", "node"))
        if secret is not None:
            self._check_bound(self.lookups.secret(namespace, secret.name), secret, "secret", cutoff)
        if pod is not None:
            self._check_bound(self.lookups.pod(namespace, pod.name), pod, "pod", cutoff)
        elif node is not None:
            self._check_bound(self.lookups.node("", node.name), node, "node", cutoff)
        jti = claims.get("jti")
        return service_account_user(namespace, account.name, account.uid, pod=pod, node=node,
                                    credential_id=f"JTI={jti}" if isinstance(jti, str) and jti else "")

    def _check_account(self, namespace: str, account: ObjectRef, cutoff: float) -> None:
        found = self.lookups.service_account(namespace, account.name)
        if found is None:
            raise AuthenticationFailed(f'serviceaccounts "{account.name}" not found')
        if found.uid != account.uid:
            raise AuthenticationFailed(f"service account UID ({found.uid}) does not match claim ({account.uid})")
        if found.deleted_at is not None and found.deleted_at < cutoff:
            raise AuthenticationFailed(f"service account {namespace}/{account.name} has been deleted")

    @staticmethod
    def _check_bound(found: Live | None, ref: ObjectRef, kind: str, cutoff: float) -> None:
        if found is None:
            raise AuthenticationFailed(INVALIDATED)
        if found.uid != ref.uid:
            raise AuthenticationFailed(f"{kind} UID ({found.uid}) does not match service account {kind} ref claim "
                                       f"({ref.uid})")
        if found.deleted_at is not None and found.deleted_at < cutoff:
            raise AuthenticationFailed(INVALIDATED)


# ---- x509 client certificates ---------------------------------------------------------------------


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def certificate_identifier(cert: x509.Certificate) -> str:
    """How Kubernetes names a certificate in errors: ``SN=<serial>, SKID=<hex>, AKID=<hex>``."""
    skid = akid = b""
    try:
        skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        pass
    try:
        akid = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier or b""
    except x509.ExtensionNotFound:
        pass
    return f"SN={cert.serial_number}, SKID={_colon_hex(skid)}, AKID={_colon_hex(akid)}"


def certificate_user(cert: x509.Certificate, der: bytes) -> UserInfo | None:
    """The user of a verified certificate (``CommonNameUserConversion``); None without a CN."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[-1].value) if names else ""
    if not common_name:
        return None
    groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    uids = [str(a.value) for a in cert.subject.get_attributes_for_oid(UID_OID)]
    if len(uids) > 1:
        raise AuthenticationFailed(f"expected at most one UID in the certificate subject, found {len(uids)}")
    credential = "X509SHA256=" + hashlib.sha256(der).hexdigest()
    return UserInfo(common_name, uid=uids[0] if uids else "", groups=groups, extra={CREDENTIAL_ID_KEY: [credential]})


def _rfc3339(moment: float | datetime) -> str:
    if isinstance(moment, float):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Checked:
    cert: x509.Certificate
    user: UserInfo | None
    error: str | None


class X509ClientCertificates:
    """Users from client certificates the cluster CA signed (Kubernetes' x509 authenticator)."""

    def __init__(self, authorities: Sequence[x509.Certificate], clock: Callable[[], float] = time.time,
                 cache_size: int = 256) -> None:
        self.authorities = tuple(authorities)
        self.clock = clock
        self._checked: OrderedDict[bytes, _Checked] = OrderedDict()
        self._cache_size = cache_size

    def authenticate(self, credentials: Credentials) -> Response | None:
        der = credentials.client_certificate
        if der is None or not self.authorities:
            return None
        checked = self._check(der)
        if checked.error is None:
            checked = self._in_validity(checked)
        if checked.error is not None:
            raise AuthenticationFailed(f"verifying certificate {certificate_identifier(checked.cert)} failed: {checked.error}")
        return Response(checked.user) if checked.user is not None else None

    def _check(self, der: bytes) -> _Checked:
        """Signature and key usage, once per certificate (they do not change); the validity period is checked each time."""
        known = self._checked.get(der)
        if known is not None:
            self._checked.move_to_end(der)
            return known
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise AuthenticationFailed(f"x509: malformed certificate: {exc}") from None
        error = _issuer_error(cert, self.authorities) or _usage_error(cert)
        try:
            user = certificate_user(cert, der) if error is None else None
        except AuthenticationFailed as exc:
            user, error = None, str(exc)
        checked = _Checked(cert, user, error)
        self._checked[der] = checked
        if len(self._checked) > self._cache_size:
            self._checked.popitem(last=False)
        return checked

    def _in_validity(self, checked: _Checked) -> _Checked:
        now = self.clock()
        if now > checked.cert.not_valid_after_utc.timestamp():
            return replace(checked, error="x509: certificate has expired or is not yet valid: current time "
                                          f"{_rfc3339(now)} is after {_rfc3339(checked.cert.not_valid_after_utc)}")
        if now < checked.cert.not_valid_before_utc.timestamp():
            return replace(checked, error="x509: certificate has expired or is not yet valid: current time "
                                          f"{_rfc3339(now)} is before {_rfc3339(checked.cert.not_valid_before_utc)}")
        return checked


def _issuer_error(cert: x509.Certificate, authorities: Sequence[x509.Certificate]) -> str | None:
    for authority in authorities:
        try:
            cert.verify_directly_issued_by(authority)
            return None
        except (ValueError, TypeError, InvalidSignature):
            continue
    return "x509: certificate signed by unknown authority"


def _usage_error(cert: x509.Certificate) -> str | None:
    """A certificate restricted to other uses than client auth is refused (no extended key usage: any use)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return None
    return "x509: certificate specifies an incompatible key usage"


def load_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


# ---- the whole chain ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthenticationOptions:
    """The API server's authentication settings, each one a kube-apiserver flag."""

    #: ``--client-ca-file``: client certificates it signed authenticate (None: no x509)
    client_ca_file: Path | None = None
    #: ``--token-auth-file``: static tokens, CSV ``token,user,uid,"group1,group2"``
    token_auth_file: Path | None = None
    #: ``--service-account-issuer``: the first is written in new tokens, all are accepted
    service_account_issuers: tuple[str, ...] = (ISSUER,)
    #: ``--api-audiences``: empty means the first issuer
    api_audiences: tuple[str, ...] = ()
    #: ``--service-account-max-token-expiration`` in seconds; 0: no maximum (Kubernetes' default)
    service_account_max_token_expiration: int = 0
    #: ``--service-account-extend-token-expiration``: kubelet-style pod-bound tokens last a year
    service_account_extend_token_expiration: bool = True
    #: ``--anonymous-auth``
    anonymous: bool = True

    def __post_init__(self) -> None:
        if not self.service_account_issuers:
            raise ValueError("service-account-issuer is a required flag")
        maximum = self.service_account_max_token_expiration
        if maximum and not 3600 <= maximum <= 1 << 32:
            raise ValueError("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds")

    @property
    def audiences(self) -> tuple[str, ...]:
        """The API server's audiences (what tokens must be for, and TokenRequest's default)."""
        return self.api_audiences or self.service_account_issuers[:1]


class Authenticator:
    """The chain, with anonymous requests and TokenReview on top."""

    def __init__(self, chain: RequestAuthenticator, *, api_audiences: Sequence[str], anonymous: bool = True) -> None:
        self.chain = chain
        self.api_audiences = tuple(api_audiences)
        self.anonymous = anonymous

    def authenticate(self, credentials: Credentials) -> Response:
        """The caller; ``system:anonymous`` for no credentials; AuthenticationFailed for bad ones (a 401)."""
        response = self.chain.authenticate(credentials)
        if response is not None:
            return with_authenticated_group(response)
        if self.anonymous:
            return Response(ANONYMOUS_USER)
        raise AuthenticationFailed()

    def review(self, token: str, audiences: Sequence[str] = ()) -> dict[str, Any]:
        """A TokenReview's ``status``: the token alone, for the audiences asked (default: the API server's)."""
        wanted = tuple(audiences) or self.api_audiences
        try:
            response = self.authenticate(Credentials(f"Bearer {token}", audiences=wanted or None))
        except AuthenticationFailed as exc:
            return {"user": {}, "error": str(exc)}
        if wanted and not intersect(wanted, response.audiences):
            log.error("error validating audience. want=%s got=%s", go_quote(wanted), go_quote(response.audiences))
            raise errors.ApiError(500, "InternalError", "Internal error occurred: error validating audiences",
                                  {"causes": [{"message": "error validating audiences"}]})
        status: dict[str, Any] = {"authenticated": True, "user": response.user.as_dict()}
        if response.audiences:
            status["audiences"] = list(response.audiences)
        return status


def build_authenticator(options: AuthenticationOptions, *, admin_token: str | None,
                        service_account_keys: Sequence[ec.EllipticCurvePublicKey], lookups: BoundObjectLookups,
                        clock: Callable[[], float] = time.time) -> Authenticator:
    """kube-apiserver's chain for these options (see the module's design)."""
    audiences = options.audiences
    members: list[RequestAuthenticator] = []
    if admin_token:
        members.append(BearerToken(StaticTokens({admin_token: ADMIN_USER}, audiences)))
    tokens: list[TokenAuthenticator] = []
    if options.token_auth_file is not None:
        tokens.append(StaticTokens(load_token_file(options.token_auth_file), audiences))
    from .bootstrap_tokens import BootstrapTokens  # it builds on this module

    tokens.append(BootstrapTokens(lookups, audiences, clock))  # kube-system/bootstrap-token-<id> Secrets
    if service_account_keys:
        from .legacy_tokens import LegacyServiceAccountTokens  # it builds on this module

        tokens.append(LegacyServiceAccountTokens(service_account_keys, audiences, lookups))
        tokens.append(ServiceAccountTokens(service_account_keys, options.service_account_issuers, audiences, lookups,
                                           clock))
    if tokens:
        members.append(BearerToken(TokenUnion(*tokens)))
    # Bearer tokens before the client certificate: a request that carries both is the
    # token's (kube-apiserver asks x509 first). ``kubectl --token=...`` with a kubeconfig
    # holding the admin's certificate then acts as the token says -- what a user passing
    # a token means, and what k3s/kind users expect from ``kubectl --token``.
    if options.client_ca_file is not None:
        members.append(X509ClientCertificates(load_certificates(options.client_ca_file), clock))
    return Authenticator(Union(*members), api_audiences=audiences, anonymous=options.anonymous)


def anonymous_allowed(method: str, path: str) -> bool:
    """Whether default RBAC lets ``system:unauthenticated`` make this request (``system:public-info-viewer``)."""
    return method in ("GET", "HEAD") and (path in PUBLIC_INFO_PATHS or path in ANONYMOUS_AUTHORIZED_PATHS)


# ---- the HTTP side: credentials of a request, objects of the API ------------------------------------


#: the API server's authenticator (absent when authentication is off)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
#: the API server's authentication settings (TokenRequest reads audiences and expiry rules)
AUTHENTICATION_OPTIONS: web.AppKey[AuthenticationOptions] = web.AppKey("authentication_options", AuthenticationOptions)


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER client certificate TLS verified for this connection, if the client sent one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def request_credentials(request: web.Request) -> Credentials:
    return Credentials(request.headers.get("Authorization", ""), peer_certificate(request))


def _epoch(timestamp: str) -> float | None:
    try:
        return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def live_object(obj: Mapping[str, Any]) -> Live:
    """An object's uid and deletion time, from its metadata."""
    meta = obj.get("metadata") or {}
    deleted = meta.get("deletionTimestamp")
    return Live(str(meta.get("uid") or ""), _epoch(deleted) if isinstance(deleted, str) else None)


def context_lookups(ctx: ApiContext) -> BoundObjectLookups:
    """Lookups that read the API server's watch cache (core/v1 service accounts, pods, secrets, nodes)."""
    def cached(plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        rest = ctx.rest_by("", "v1", plural)
        found = rest.cache.get(rest.rt.key(namespace or None, name)) if rest is not None else None
        return found.obj if found is not None else None

    def lookup(plural: str) -> Lookup:
        def find(namespace: str, name: str) -> Live | None:
            obj = cached(plural, namespace, name)
            return live_object(obj) if obj is not None else None
        return find

    def secret_object(namespace: str, name: str) -> Mapping[str, Any] | None:
        return cached("secrets", namespace, name)

    from .legacy_tokens import last_used_marker  # it builds on this module

    return BoundObjectLookups(service_account=lookup("serviceaccounts"), pod=lookup("pods"), secret=lookup("secrets"),
                              node=lookup("nodes"), secret_object=secret_object, mark_secret_used=last_used_marker(ctx))
