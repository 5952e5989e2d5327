"""Who is calling: users and groups, service-account tokens, and the review answers.

Names and groups are Kubernetes' own: the admin ``podlife-admin`` in ``system:masters``;
``system:anonymous`` in ``system:unauthenticated`` for a request without credentials;
``system:authenticated`` for everyone else; a service account is the user
``system:serviceaccount:<namespace>:<name>`` in ``system:serviceaccounts`` and
``system:serviceaccounts:<namespace>``. :class:`UserInfo` is ``authentication.k8s.io/v1``
``UserInfo`` and renders in its field order. How a credential becomes a user is
:mod:`podlife.api.authn`.

Service-account tokens are JWTs as kube-apiserver issues them, so a client or another
service can read and check them as it would a real cluster's: signed with an asymmetric
key (ES256, the P-256 pair in ``DATA_DIR/pki/sa.key``, whose public half anyone may hold),
the ``kid`` header Kubernetes derives from the public key, and Kubernetes' claims --
``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti`` and ``kubernetes.io`` naming
the namespace, the service account (name and uid) and the object the token is bound to
(a pod, and its node; a secret; or a node). :class:`TokenIssuer` signs; checking a token
(signature, issuer, audiences, times, and that what it names still exists with that uid)
is the authenticator's job, because it needs the API's objects.

The cluster's own components call the API in process, each as its own user, the names
Kubernetes gives them (:func:`component_users`): the API server's loopback writes as
``system:apiserver`` (in ``system:masters``), the scheduler as ``system:kube-scheduler``,
each controller as its service account ``system:serviceaccount:kube-system:<controller>``
(kube-controller-manager's ``--use-service-account-credentials``) with its reads as
``system:kube-controller-manager`` (its shared informers), a kubelet as
``system:node:<name>`` in ``system:nodes``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ADMIN = "podlife-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNTS = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ADMIN_GROUPS = (MASTERS, AUTHENTICATED)

#: the keys of a user's ``extra`` Kubernetes' authenticators fill
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"

#: ``--service-account-issuer``'s value in every kubeadm cluster, and the API audience by default
ISSUER = "https://kubernetes.default.svc.cluster.local"
#: TokenRequest's ``spec.expirationSeconds`` default, minimum and maximum (validation.go)
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600
MAX_TOKEN_SECONDS = 1 << 32
#: the expiry kubelets ask for in projected volumes; a pod-bound token asked for exactly that
#: is valid a year and carries ``warnafter`` (``--service-account-extend-token-expiration``)
WARN_ONLY_BOUND_TOKEN_SECONDS = 3600 + 7
EXTENDED_TOKEN_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``UserInfo`` object: username, uid, groups, extra (empty ones left out)."""
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = self.extra
        return out

    @property
    def anonymous(self) -> bool:
        return self.username == ANONYMOUS


ADMIN_USER = UserInfo(ADMIN, groups=ADMIN_GROUPS)
ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))

#: the groups and prefix of node identities (Kubernetes' ``user.NodesGroup``, ``NodeUserNamePrefix``)
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
KUBE_SYSTEM = "kube-system"
#: the API server's own identity, for writes no HTTP caller made (Kubernetes' loopback client)
APISERVER_USER = UserInfo("system:apiserver", uid=str(uuid.uuid4()), groups=(MASTERS, AUTHENTICATED))
SCHEDULER_USER = UserInfo("system:kube-scheduler", groups=(AUTHENTICATED,))
CONTROLLER_MANAGER_USER = UserInfo("system:kube-controller-manager", groups=(AUTHENTICATED,))
#: the service proxy's identity (kube-proxy's: bound to ``system:node-proxier``)
KUBE_PROXY_USER = UserInfo("system:kube-proxy", groups=(AUTHENTICATED,))


def node_user(node: str) -> UserInfo:
    """A kubelet's identity: what its client certificate says on Kubernetes (``O=system:nodes``)."""
    return UserInfo(NODE_PREFIX + node, groups=(NODES_GROUP, AUTHENTICATED))


def controller_user(name: str) -> UserInfo:
    """A controller's identity: its service account in ``kube-system``, as kube-controller-manager runs it."""
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{KUBE_SYSTEM}:{name}",
                    groups=(SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{KUBE_SYSTEM}", AUTHENTICATED))


@dataclass(frozen=True)
class ObjectRef:
    """An object a token names: its name and uid."""

    name: str
    uid: str

    def claim(self) -> dict[str, str]:
        return {"name": self.name, "uid": self.uid}


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_user(namespace: str, name: str, uid: str, *, pod: ObjectRef | None = None,
                         node: ObjectRef | None = None, credential_id: str = "") -> UserInfo:
    """The user a service-account token authenticates as (Kubernetes' ``ServiceAccountInfo.UserInfo``)."""
    extra: dict[str, list[str]] = {}
    if pod is not None and pod.name and pod.uid:
        extra[POD_NAME_KEY], extra[POD_UID_KEY] = [pod.name], [pod.uid]
    if credential_id:
        extra[CREDENTIAL_ID_KEY] = [credential_id]
    if node is not None and node.name:
        extra[NODE_NAME_KEY] = [node.name]
        if node.uid:
            extra[NODE_UID_KEY] = [node.uid]
    return UserInfo(service_account_username(namespace, name), uid=uid,
                    groups=(SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}"), extra=extra)


# ---- the token format: compact JWS, ES256 -------------------------------------------------------

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Base64url without padding, strictly (Go's ``base64.RawURLEncoding``): padding is an error."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Kubernetes' ``kid``: base64url of the SHA-256 of the public key's DER (PKIX) form."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def load_signing_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the service-account signing key must be an EC P-256 private key")
    return key


def new_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign_es256(key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    """The JWS signature: r and s, 32 bytes each (not DER)."""
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_es256(key: ec.EllipticCurvePublicKey, signing_input: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SignedToken:
    """A compact JWS taken apart (nothing verified yet)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_jws(token: str) -> SignedToken:
    """Split and decode a compact JWS; ValueError if it is not one (three parts, JSON objects)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWS has three parts")
    header, claims = orjson.loads(unb64url(parts[0])), orjson.loads(unb64url(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("the JWS header and payload must be objects")
    return SignedToken(header, claims, f"{parts[0]}.{parts[1]}".encode(), unb64url(parts[2]))


def encode_jws(key: ec.EllipticCurvePrivateKey, kid: str, claims: dict[str, Any]) -> str:
    """A compact ES256 JWS; keys sorted at every level, as go-jose writes Kubernetes' tokens."""
    head = b64url(orjson.dumps({"alg": "ES256", "kid": kid}, option=orjson.OPT_SORT_KEYS))
    body = b64url(orjson.dumps(claims, option=orjson.OPT_SORT_KEYS))
    return f"{head}.{body}.{b64url(sign_es256(key, f'{head}.{body}'.encode()))}"


class TokenIssuer:
    """Signs service-account tokens (what ``serviceaccounts/<name>/token`` hands out).

    ``issuer`` is the ``iss`` claim (the first ``--service-account-issuer``).
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str = ISSUER) -> None:
        self._key = key
        self.issuer = issuer
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)

    def issue(self, namespace: str, name: str, sa_uid: str, audiences: list[str], seconds: int,
              now: float | None = None, *, pod: ObjectRef | None = None, secret: ObjectRef | None = None,
              node: ObjectRef | None = None, warn_after: int = 0) -> tuple[str, int]:
        """A token for the service account, bound to at most one of pod (with its node), secret or node.

        Returns the token and its ``exp``.
        """
        if secret is not None and (pod is not None or node is not None):
            raise ValueError("internal error, token can only be bound to one object type")
        issued = int(now if now is not None else time.time())
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid}}
        for claim, ref in (("pod", pod), ("secret", secret), ("node", node)):
            if ref is not None:
                private[claim] = ref.claim()
        if warn_after:
            private["warnafter"] = issued + warn_after
        claims = {
            "iss": self.issuer, "sub": service_account_username(namespace, name), "aud": list(audiences),
            "iat": issued, "nbf": issued, "exp": issued + seconds, "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
        }
        return encode_jws(self._key, self.key_id, claims), issued + seconds


def self_subject_access_review(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["status"] = {"allowed": True, "reason": "podlife does not enforce authorization: every authenticated user may do everything"}
    return out


def self_subject_review(body: dict[str, Any], user: UserInfo) -> dict[str, Any]:
    out = dict(body)
    out["status"] = {"userInfo": user.as_dict()}
    return out
