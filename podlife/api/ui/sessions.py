"""Login codes and browser sessions of the web UI.

What it keeps: in memory only (a restart of ``podlife up`` logs every browser out), keyed
by the SHA-256 of the secret so the secrets themselves are never stored as keys:

- *login codes*: minted by ``POST /ui/api/login-codes`` for a caller who authenticated with
  a bearer token or a client certificate (what ``podlife ui`` does with the kubeconfig's
  credentials); a code is good for :data:`CODE_TTL` seconds and for one use;
- *sessions*: made when a code is used (``GET /ui/login?code=``) or a bearer token is posted
  to the login form; the browser holds the session id in an HttpOnly cookie.

A session keeps the :class:`~podlife.api.authn.Credentials` it was made from, not a user:
each request of the session authenticates those credentials again with the API server's
authenticator, so a revoked service-account token or an expired certificate ends the
session at once, as it would end the user's kubectl access. Sessions also end after
:data:`SESSION_TTL`, on logout, or when :data:`MAX_SESSIONS` newer ones push them out.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..authn import Credentials

#: how long a login code printed by ``podlife ui`` can be used
CODE_TTL = 60.0
#: how long a browser session lasts at most
SESSION_TTL = 12 * 3600.0
#: sessions (and codes) kept at most; the oldest go first
MAX_SESSIONS = 1024


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a code or a session stands for: credentials and when it stops being valid."""

    credentials: Credentials
    expires: float


class _Secrets:
    """Random secrets mapped to grants, bounded in number and in time."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._grants: OrderedDict[bytes, Grant] = OrderedDict()

    def issue(self, credentials: Credentials) -> str:
        secret = secrets.token_urlsafe(32)
        self._grants[_digest(secret)] = Grant(credentials, self.clock() + self.ttl)
        while len(self._grants) > MAX_SESSIONS:
            self._grants.popitem(last=False)
        return secret

    def get(self, secret: str, *, consume: bool = False) -> Grant | None:
        if not secret:
            return None
        key = _digest(secret)
        grant = self._grants.pop(key, None) if consume else self._grants.get(key)
        if grant is None:
            return None
        if grant.expires < self.clock():
            self._grants.pop(key, None)
            return None
        return grant

    def drop(self, secret: str) -> None:
        self._grants.pop(_digest(secret), None)


class Sessions:
    """The UI's login codes and sessions."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._codes = _Secrets(CODE_TTL, clock)
        self._sessions = _Secrets(SESSION_TTL, clock)

    def mint_code(self, credentials: Credentials) -> str:
        """A one-time login code for these credentials."""
        return self._codes.issue(credentials)

    def redeem(self, code: str) -> Credentials | None:
        """The credentials of a valid code, which is used up; None for an unknown, used or expired one."""
        grant = self._codes.get(code, consume=True)
        return grant.credentials if grant is not None else None

    def open(self, credentials: Credentials) -> str:
        """A new session id for these credentials."""
        return self._sessions.issue(credentials)

    def credentials(self, session: str) -> Credentials | None:
        grant = self._sessions.get(session)
        return grant.credentials if grant is not None else None

    def close(self, session: str) -> None:
        self._sessions.drop(session)
