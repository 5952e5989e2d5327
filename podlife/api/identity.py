"""Who is calling: the admin token and service-account tokens, and the review APIs.

podlife has one all-powerful user, the admin whose token is in the kubeconfig.
Service accounts get tokens too (``kubectl create token``, the ``serviceaccounts/token``
subresource): signed JWTs (HS256, the server's own key in ``DATA_DIR/pki``) naming
``system:serviceaccount:<namespace>:<name>``, with an audience and an expiry, so the
server can check them without storing them. Authorization is not enforced yet (every
authenticated user may do everything), and the review APIs say so:
``SelfSubjectAccessReview`` answers allowed, ``SelfSubjectReview`` names the caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

ADMIN = "podlife-admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")
DEFAULT_TOKEN_SECONDS = 3600
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out


ADMIN_USER = UserInfo(ADMIN, groups=ADMIN_GROUPS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and checks service-account tokens with one secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, namespace: str, name: str, sa_uid: str, audiences: list[str], seconds: int,
              now: float | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}", "aud": audiences,
            "iat": issued, "nbf": issued, "exp": issued + seconds, "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid}},
        }
        head = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        body = _b64(orjson.dumps(claims))
        sig = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}", issued + seconds

    def verify(self, token: str, now: float | None = None) -> UserInfo | None:
        try:
            head, body, sig = token.split(".")
            expected = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, expected):
                return None
            claims = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if claims.get("exp", 0) < (now if now is not None else time.time()):
            return None
        sa = (claims.get("kubernetes.io") or {})
        namespace = sa.get("namespace", "")
        return UserInfo(claims.get("sub", ""), uid=(sa.get("serviceaccount") or {}).get("uid", ""),
                        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


def self_subject_access_review(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["status"] = {"allowed": True, "reason": "podlife does not enforce authorization: every authenticated user may do everything"}
    return out


def self_subject_review(body: dict[str, Any], user: UserInfo) -> dict[str, Any]:
    out = dict(body)
    out["status"] = {"userInfo": user.as_dict()}
    return out
