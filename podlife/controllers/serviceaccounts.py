"""The service-account controller: every namespace has a ``default`` ServiceAccount.

Kubernetes creates it in each new namespace; pods run as it unless they name another,
and ``kubectl create token default`` needs it. This controller watches namespaces and
creates the missing ones (AlreadyExists is fine: another writer won the race).
"""

from __future__ import annotations

import logging

from ..machinery.errors import ApiError
from ..client.base import NAMESPACES, Client, Obj, Resource
from ..client.informer import Informer
from ..client.workqueue import WorkQueue

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
DEFAULT_NAME = "default"


class ServiceAccountController:
    def __init__(self, client: Client, *, workers: int = 2) -> None:
        self.client = client
        self.namespaces = Informer(client, NAMESPACES)
        self.queue = WorkQueue()
        self.workers = workers
        self.namespaces.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, ns: Obj) -> None:
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def run(self) -> None:
        import asyncio

        await asyncio.gather(self.namespaces.run(), self.queue.run_workers(self.ensure_default, self.workers))

    async def ensure_default(self, namespace: str) -> None:
        ns = self.namespaces.get(None, namespace)
        if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        try:
            await self.client.get(SERVICE_ACCOUNTS, DEFAULT_NAME, namespace)
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
        try:
            await self.client.create(SERVICE_ACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": DEFAULT_NAME, "namespace": namespace}}, namespace)
        except ApiError as exc:
            if exc.code not in (409, 403):  # exists already, or the namespace began terminating
                raise
