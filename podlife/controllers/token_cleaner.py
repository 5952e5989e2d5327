"""The token cleaner: expired bootstrap-token Secrets are deleted.

kube-controller-manager's ``tokencleaner`` (``token-cleaner-controller``, acting as
``kube-system:token-cleaner``; kubeadm turns it on, and so does podlife, a cluster that joins
nodes as kubeadm's does). It watches the Secrets of type ``bootstrap.kubernetes.io/token`` in
kube-system (an informer of its own, that namespace and field selector), and deletes one whose
``expiration`` (:func:`podlife.machinery.bootstrap_token.expired`) has passed, with the Secret's
uid as a precondition so a recreated token of that name is left alone. A token that expires
later is queued for then. An expired token already authenticates no one (the authenticator
checks the time); deleting it keeps ``podlife token list`` and kube-system tidy, as on a
kubeadm cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..machinery import bootstrap_token as bt
from ..client.base import Obj, Resource
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from .cronjob import KeyTimers
from .manager import ControllerContext

log = logging.getLogger(__name__)

SECRETS = Resource("", "v1", "secrets", "Secret")


def seconds_left(secret: Obj, now: float) -> float | None:
    """Seconds until the token Secret expires (<= 0: expired); None if it never does."""
    data = bt.secret_data(secret)
    if not data.get("expiration"):
        return None
    moment = bt.parse_rfc3339(data["expiration"])
    return 0.0 if moment is None else moment - now


class TokenCleaner:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.secrets = Informer(ctx.client, SECRETS, bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}")
        self.queue = WorkQueue()
        self.timers = KeyTimers(self.queue)
        self.secrets.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                                  on_delete=lambda gone: self.timers.forget(object_key(gone)))

    def _enqueue(self, secret: Obj) -> None:
        self.queue.add(object_key(secret))

    async def run(self) -> None:
        own = asyncio.ensure_future(self.secrets.run())
        try:
            await self.secrets.wait_synced()
            await asyncio.gather(own, self.queue.run_workers(self.sync, 1))
        finally:
            self.timers.cancel_all()
            own.cancel()
            await asyncio.gather(own, return_exceptions=True)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        secret = self.secrets.get(namespace, name)
        if secret is None:
            return
        left = seconds_left(secret, time.time())
        if left is None:
            return
        if left > 0:
            self.timers.add_after(key, left)
            return
        try:
            await self.client.delete(SECRETS, name, namespace, preconditions={"uid": secret["metadata"]["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or a new Secret of that name
                raise
            return
        log.info("deleted expired bootstrap token secret %s", key)
