"""The bootstrap-token format: ``<id>.<secret>`` tokens and the kube-system Secrets that hold them.

Pure data, no I/O: the names, formats and defaults of ``k8s.io/cluster-bootstrap/token/api``
and kubeadm's ``bootstraptoken`` phase, shared by the API server's authenticator
(:mod:`podlife.api.bootstrap_tokens`), the token cleaner
(:mod:`podlife.controllers.token_cleaner`) and ``podlife token`` (:mod:`podlife.join_cli`).

- A token is ``[a-z0-9]{6}.[a-z0-9]{16}``: the public *id* and the *secret*. It is kept in
  the Secret ``kube-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token``
  whose data has ``token-id``, ``token-secret``, optionally ``expiration`` (RFC 3339),
  ``usage-bootstrap-authentication``, ``usage-bootstrap-signing``, ``auth-extra-groups``
  (comma-separated, each ``system:bootstrappers:...``) and ``description``.
  :func:`token_secret` builds one (what ``podlife token create`` posts).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
#: the extra group kubeadm gives the tokens it makes (bound to node bootstrapping and auto-approval)
KUBEADM_DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
GROUP_PATTERN = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
#: kubeadm's default ``--ttl``
DEFAULT_TTL_SECONDS = 24 * 3600
DEFAULT_USAGES = ("signing", "authentication")


@dataclass(frozen=True)
class BootstrapToken:
    """One token and what its Secret says of it."""

    token_id: str
    secret: str
    expiration: str | None = None
    usages: tuple[str, ...] = DEFAULT_USAGES
    groups: tuple[str, ...] = (KUBEADM_DEFAULT_GROUP,)
    description: str = ""

    @property
    def token(self) -> str:
        return f"{self.token_id}.{self.secret}"


def generate_token() -> str:
    """A fresh random ``<6>.<16>`` token (kubeadm's ``GenerateBootstrapToken``)."""
    def random_string(length: int) -> str:
        return "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{random_string(6)}.{random_string(16)}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token; None otherwise."""
    match = TOKEN_PATTERN.match(token)
    return (match.group(1), match.group(2)) if match else None


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def token_secret(token: BootstrapToken) -> dict[str, Any]:
    """The Secret that keeps ``token`` (kubeadm's ``BootstrapTokenToSecret``)."""
    data: dict[str, str] = {"token-id": token.token_id, "token-secret": token.secret}
    if token.description:
        data["description"] = token.description
    if token.expiration:
        data["expiration"] = token.expiration
    for usage in token.usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if token.groups:
        data["auth-extra-groups"] = ",".join(token.groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + token.token_id, "namespace": NAMESPACE},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """The Secret's data, decoded (``stringData`` is folded in by the API server; values not base64 are left out)."""
    decoded: dict[str, str] = {}
    for key, value in ((secret.get("data") or {}).items()):
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, ValueError, TypeError):
            continue
    return decoded


def expired(data: Mapping[str, str], now: float) -> bool:
    """Whether the token Secret's ``expiration`` has passed (an unreadable one counts as expired, as Kubernetes does)."""
    expiration = data.get("expiration")
    if not expiration:
        return False
    moment = parse_rfc3339(expiration)
    return moment is None or moment <= now


def token_from_secret(secret: Mapping[str, Any]) -> BootstrapToken | None:
    """The token a Secret keeps; None if it is not a bootstrap-token Secret."""
    if secret.get("type") != SECRET_TYPE:
        return None
    data = secret_data(secret)
    token_id, token_secret_value = data.get("token-id", ""), data.get("token-secret", "")
    if not token_id or not token_secret_value:
        return None
    usages = tuple(key.removeprefix("usage-bootstrap-") for key, value in sorted(data.items())
                   if key.startswith("usage-bootstrap-") and value == "true")
    groups = tuple(group.strip() for group in data.get("auth-extra-groups", "").split(",") if group.strip())
    return BootstrapToken(token_id, token_secret_value, data.get("expiration"), usages, groups,
                          data.get("description", ""))
