"""The bootstrap signer: ``kube-public/cluster-info`` carries a signature per bootstrap token.

kube-controller-manager's ``bootstrapsigner`` (``bootstrap-signer-controller``, acting as
``kube-system:bootstrap-signer``, whose Roles let it read Secrets in kube-system and
ConfigMaps in kube-public, and update ``cluster-info``). It watches two things, each with an
informer of its own: the ConfigMap ``kube-public/cluster-info`` (that name only; ``podlife up``
publishes it, :func:`podlife.node.join.cluster_info_configmap`) and the bootstrap-token Secrets
of kube-system (their type). Any change to either queues the one key there is, and a sync
recomputes every signature: for each Secret that may sign -- named ``bootstrap-token-<id>``
after its ``token-id``, with ``usage-bootstrap-signing: "true"``, a secret, and not expired --
``data["jws-kubeconfig-<id>"]`` is the detached JWS of ``data.kubeconfig`` made with that token
(:func:`podlife.node.join.detached_signature`); signatures of tokens that are gone, expired or
no longer signing are dropped. The ConfigMap is updated only when something changed (a
conflict or a deleted ConfigMap is left for the next event). A joining node
(:func:`podlife.node.join.discover`) checks the signature of its token: proof that whoever
wrote the kubeconfig knew the token, so the CA in it is the cluster's.

A token that expires later is queued for then, so its signature goes when it stops being valid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..client.base import Obj, Resource
from ..client.informer import Informer
from ..client.workqueue import WorkQueue
from ..machinery import bootstrap_token as bt
from ..machinery.errors import ApiError
from ..node.join import CLUSTER_INFO, JWS_PREFIX, KUBE_PUBLIC, KUBECONFIG_KEY, detached_signature
from .cronjob import KeyTimers
from .manager import ControllerContext

log = logging.getLogger(__name__)

SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
KEY = f"{KUBE_PUBLIC}/{CLUSTER_INFO}"


def signing_token(secret: Obj, now: float) -> tuple[str, str] | None:
    """(token id, secret) of a bootstrap-token Secret that may sign now (the signer's ``validateSecretForSigning``)."""
    if secret.get("type") != bt.SECRET_TYPE:
        return None
    data = bt.secret_data(secret)
    token_id, token_secret = data.get("token-id", ""), data.get("token-secret", "")
    if not token_id or not token_secret or secret.get("metadata", {}).get("name") != bt.SECRET_PREFIX + token_id:
        return None
    if data.get("usage-bootstrap-signing") != "true" or bt.expired(data, now):
        return None
    return token_id, token_secret


def signed_data(data: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """``data`` with exactly one signature per token (id -> secret) and no others."""
    content = data.get(KUBECONFIG_KEY, "")
    kept = {key: value for key, value in data.items() if not key.startswith(JWS_PREFIX)}
    for token_id, token_secret in sorted(tokens.items()):
        kept[JWS_PREFIX + token_id] = detached_signature(content, token_id, token_secret)
    return kept


def next_expiry(secrets: list[Obj], now: float) -> float | None:
    """Seconds until the next signing token expires (None: none will)."""
    moments = []
    for secret in secrets:
        if signing_token(secret, now) is None:
            continue
        expiration = bt.secret_data(secret).get("expiration")
        moment = bt.parse_rfc3339(expiration) if expiration else None
        if moment is not None:
            moments.append(moment - now)
    return min(moments) if moments else None


class BootstrapSigner:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.secrets = Informer(ctx.client, SECRETS, bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}")
        self.config_maps = Informer(ctx.client, CONFIG_MAPS, KUBE_PUBLIC, field_selector=f"metadata.name={CLUSTER_INFO}")
        self.queue = WorkQueue()
        self.timers = KeyTimers(self.queue)  # the next expiry, one timer
        for informer in (self.secrets, self.config_maps):
            informer.add_handlers(on_add=self._poke, on_update=lambda _old, _new: self._poke(),
                                  on_delete=self._poke)

    def _poke(self, _obj: Any = None) -> None:
        self.queue.add(KEY)

    async def run(self) -> None:
        own = [asyncio.ensure_future(self.secrets.run()), asyncio.ensure_future(self.config_maps.run())]
        try:
            await self.secrets.wait_synced()
            await self.config_maps.wait_synced()
            self._poke()
            await asyncio.gather(*own, self.queue.run_workers(self.sync, 1))
        finally:
            self.timers.cancel_all()
            for task in own:
                task.cancel()
            await asyncio.gather(*own, return_exceptions=True)

    async def sync(self, key: str) -> None:
        now = time.time()
        secrets = list(self.secrets.cache.values())
        left = next_expiry(secrets, now)
        if left is not None:
            self.timers.add_after(KEY, max(left, 0.0) + 0.001)
        config_map = self.config_maps.get(KUBE_PUBLIC, CLUSTER_INFO)
        if config_map is None:
            return
        data = dict(config_map.get("data") or {})
        if KUBECONFIG_KEY not in data:
            log.debug("no %s key in %s", KUBECONFIG_KEY, KEY)
            return
        tokens = dict(filter(None, (signing_token(secret, now) for secret in secrets)))
        wanted = signed_data(data, tokens)
        if wanted == data:
            return
        try:
            await self.client.update(CONFIG_MAPS, {**config_map, "data": wanted})
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or changed meanwhile: its event brings us back
                raise
            return
        log.info("signed %s for %d bootstrap token(s)", KEY, len(tokens))
