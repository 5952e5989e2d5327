"""Legacy secret-based service-account tokens: made only for a Secret that asks, valid while it lasts.

Learned from Kubernetes' ``pkg/serviceaccount/legacy.go`` and
``pkg/controller/serviceaccount/tokens_controller.go``. Kubernetes 1.24+ makes no such
token by itself; a user who still wants a long-lived token creates a Secret of type
``kubernetes.io/service-account-token`` annotated ``kubernetes.io/service-account.name``,
and the token controller (:mod:`podlife.controllers.service_account_tokens`) fills in
``token``, ``ca.crt`` and ``namespace``.

- The token (:class:`LegacyTokenGenerator`) is a JWT signed with the service-account key
  (ES256 here, the same key as bound tokens, with its ``kid``) whose claims are only
  ``iss: kubernetes/serviceaccount``, ``sub: system:serviceaccount:<ns>:<name>`` and
  ``kubernetes.io/serviceaccount/namespace``, ``.../secret.name``,
  ``.../service-account.name``, ``.../service-account.uid``: no audience, no expiry.
- The authenticator (:class:`LegacyServiceAccountTokens`, one more token authenticator of
  :func:`podlife.api.authn.build_authenticator`, before the bound-token one) accepts such
  a token only while its Secret exists, is not being deleted and holds this very token,
  and while the account exists with the uid of the claim -- the token stops working when
  either is deleted. Errors are Kubernetes' words (``Token has been invalidated``,
  ``ServiceAccount UID (a) does not match claim (b)``, ...). A token without ``aud`` is
  for the API server's audiences, as in kube-apiserver's JWT authenticator.
- A Secret whose token authenticated gets the label ``kubernetes.io/legacy-token-last-used``
  with the day (UTC, ``2006-01-02``), written once a day at most, after the request (the
  authenticator does no I/O: :func:`last_used_marker` patches the Secret in a task).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from .authn import AuthenticationFailed, BoundObjectLookups, Response, ServiceAccountTokens, go_quote, intersect
from .identity import SERVICE_ACCOUNT_PREFIX, encode_jws, key_id, service_account_user, service_account_username

if TYPE_CHECKING:
    from .rest import ApiContext

log = logging.getLogger(__name__)

LEGACY_ISSUER = "kubernetes/serviceaccount"
SECRET_TYPE = "kubernetes.io/service-account-token"
ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
ACCOUNT_UID_ANNOTATION = "kubernetes.io/service-account.uid"
#: set by Kubernetes' legacy-token cleaner; a token so labelled is refused
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"
LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
NAMESPACE_CLAIM = "kubernetes.io/serviceaccount/namespace"
SECRET_NAME_CLAIM = "kubernetes.io/serviceaccount/secret.name"
ACCOUNT_NAME_CLAIM = "kubernetes.io/serviceaccount/service-account.name"
ACCOUNT_UID_CLAIM = "kubernetes.io/serviceaccount/service-account.uid"
INVALIDATED = "Token has been invalidated"


class LegacyTokenGenerator:
    """Signs legacy tokens (the token controller's ``--service-account-private-key-file``)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.key_id = key_id(key.public_key())

    def generate(self, namespace: str, account: str, account_uid: str, secret: str) -> str:
        claims = {"iss": LEGACY_ISSUER, NAMESPACE_CLAIM: namespace, SECRET_NAME_CLAIM: secret,
                  ACCOUNT_NAME_CLAIM: account, ACCOUNT_UID_CLAIM: account_uid,
                  "sub": service_account_username(namespace, account)}
        return encode_jws(self._key, self.key_id, claims)


def secret_token(secret: Mapping[str, Any]) -> bytes:
    """The secret's ``data.token``, decoded (empty if there is none or it is not base64)."""
    encoded = (secret.get("data") or {}).get("token")
    if not isinstance(encoded, str):
        return b""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _claim(claims: Mapping[str, Any], name: str, what: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise AuthenticationFailed(f"{what} claim is missing")
    return value


class LegacyServiceAccountTokens(ServiceAccountTokens):
    """Secret-based tokens: the bound-token authenticator's signature checks, the legacy validator."""

    def __init__(self, public_keys: Sequence[ec.EllipticCurvePublicKey], api_audiences: Sequence[str],
                 lookups: BoundObjectLookups) -> None:
        super().__init__(public_keys, [LEGACY_ISSUER], api_audiences, lookups)

    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        signed = self._signed(token)
        if signed is None:
            return None
        wanted = audiences if audiences is not None else self.api_audiences
        accepted = intersect(self.api_audiences, wanted)  # no ``aud``: the API server's audiences
        if not accepted and self.api_audiences:
            raise AuthenticationFailed(f"token audiences {go_quote(self.api_audiences)} is invalid for the target "
                                       f"audiences {go_quote(wanted)}")
        return Response(self._validate_legacy(token, signed.claims), accepted)

    def _validate_legacy(self, token: str, claims: Mapping[str, Any]) -> Any:
        subject = _claim(claims, "sub", "sub")
        namespace = _claim(claims, NAMESPACE_CLAIM, "namespace")
        secret_name = _claim(claims, SECRET_NAME_CLAIM, "secretName")
        account = _claim(claims, ACCOUNT_NAME_CLAIM, "serviceAccountName")
        account_uid = _claim(claims, ACCOUNT_UID_CLAIM, "serviceAccountUID")
        if subject != f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account}":
            raise AuthenticationFailed("sub claim is invalid")
        secret = self.lookups.secret_object(namespace, secret_name)
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            raise AuthenticationFailed(INVALIDATED)
        if not hmac.compare_digest(secret_token(secret), token.encode()):
            raise AuthenticationFailed("Token does not match server's copy")
        if ((secret.get("metadata") or {}).get("labels") or {}).get(INVALID_SINCE_LABEL):
            raise AuthenticationFailed(INVALIDATED)
        found = self.lookups.service_account(namespace, account)
        if found is None:
            raise AuthenticationFailed(f'serviceaccounts "{account}" not found')
        if found.deleted_at is not None:
            raise AuthenticationFailed(f"ServiceAccount {namespace}/{account} has been deleted")
        if found.uid != account_uid:
            raise AuthenticationFailed(f"ServiceAccount UID ({found.uid}) does not match claim ({account_uid})")
        if ((secret.get("metadata") or {}).get("labels") or {}).get(LAST_USED_LABEL) != today():
            self.lookups.mark_secret_used(namespace, secret_name)
        return service_account_user(namespace, account, account_uid)


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def last_used_marker(ctx: ApiContext) -> Callable[[str, str], None]:
    """Labels a Secret with today's date, in a task of its own (once per Secret at a time)."""
    pending: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def label(namespace: str, name: str) -> None:
        secrets = ctx.rest_by("", "v1", "secrets")
        if secrets is None:
            return
        try:
            await secrets.patch(namespace, name, "merge", {"metadata": {"labels": {LAST_USED_LABEL: today()}}})
        except Exception as exc:  # the Secret may be gone meanwhile: the next use tries again
            log.info("failed to label legacy service account token secret %s/%s with last-used: %s",
                     namespace, name, exc)

    def mark(namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in pending:
            return
        task = asyncio.get_running_loop().create_task(label(namespace, name))
        pending[key] = task
        task.add_done_callback(lambda _done: pending.pop(key, None))

    return mark
