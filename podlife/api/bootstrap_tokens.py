"""Bootstrap tokens: ``<id>.<secret>`` bearer tokens kept as Secrets in kube-system, for joining nodes.

Learned from Kubernetes' bootstrap-token authenticator
(``plugin/pkg/auth/authenticator/token/bootstrap``), ``k8s.io/cluster-bootstrap/token/api``
and kubeadm's ``bootstraptoken`` phase; the names, formats and defaults are theirs.

- The token format and its Secret are :mod:`podlife.machinery.bootstrap_token`.
- The authenticator (:class:`BootstrapTokens`, one more token authenticator of
  :func:`podlife.api.authn.build_authenticator`) accepts the token while its Secret exists,
  is not being deleted, holds this secret (compared in constant time), has not expired and
  allows authentication. The user is ``system:bootstrap:<id>`` in ``system:bootstrappers``
  plus the extra groups. Like Kubernetes it says nothing of *why* a token is refused (only
  the server log does): a token it does not accept is simply not known, so the client gets
  the usual ``invalid bearer token`` 401 and learns nothing about which tokens exist.
- The Secret is read from the API server's watch cache (``BoundObjectLookups.secret_object``),
  so this does no I/O on the request path, and deleting the Secret revokes the token at once.
- Expired token Secrets are deleted by the token cleaner (:mod:`podlife.controllers.token_cleaner`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence

from ..machinery.bootstrap_token import (
    GROUP, GROUP_PATTERN, NAMESPACE, SECRET_PREFIX, SECRET_TYPE, USER_PREFIX, expired, parse_token,
    secret_data,
)
from .authn import BoundObjectLookups, Response
from .identity import UserInfo

log = logging.getLogger(__name__)


class BootstrapTokens:
    """The token authenticator (see the module's design)."""

    def __init__(self, lookups: BoundObjectLookups, api_audiences: Sequence[str],
                 clock: Callable[[], float] = time.time) -> None:
        self.lookups = lookups
        self.api_audiences = tuple(api_audiences)
        self.clock = clock

    def authenticate_token(self, token: str, audiences: tuple[str, ...] | None) -> Response | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, presented = parsed
        name = SECRET_PREFIX + token_id
        secret = self.lookups.secret_object(NAMESPACE, name)
        if secret is None:
            log.debug("no secret %s/%s for bootstrap token %s", NAMESPACE, name, token_id)
            return None
        if (secret.get("metadata") or {}).get("deletionTimestamp"):
            log.debug("bootstrap token secret %s/%s is being deleted", NAMESPACE, name)
            return None
        if secret.get("type") != SECRET_TYPE:
            log.debug("secret %s/%s has type %r, not %r", NAMESPACE, name, secret.get("type"), SECRET_TYPE)
            return None
        data = secret_data(secret)
        if not hmac.compare_digest(data.get("token-secret", "").encode(), presented.encode()):
            log.debug("bootstrap token %s: secret does not match", token_id)
            return None
        if data.get("token-id") != token_id:
            log.debug("bootstrap token %s: token-id does not match the secret's", token_id)
            return None
        if expired(data, self.clock()):
            log.info("rejected expired bootstrap token %s", token_id)
            return None
        if data.get("usage-bootstrap-authentication") != "true":
            log.debug("bootstrap token %s is not usable for authentication", token_id)
            return None
        groups = [GROUP]
        for group in (g.strip() for g in data.get("auth-extra-groups", "").split(",") if g.strip()):
            if not GROUP_PATTERN.match(group):
                log.info("bootstrap token %s: bad auth-extra-groups %r", token_id, group)
                return None
            groups.append(group)
        return Response(UserInfo(USER_PREFIX + token_id, groups=tuple(groups)), self.api_audiences)
