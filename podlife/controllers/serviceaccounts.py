"""The service-account controller: every namespace has a ``default`` ServiceAccount.

Kubernetes creates it in each new namespace (``serviceaccount-controller`` of
kube-controller-manager, acting as ``service-account-controller``); pods run as it
unless they name another, and ``kubectl create token default`` needs it.

Watches (the shared informers): Namespaces (an added or changed namespace that is not
terminating is queued) and ServiceAccounts (a deleted ``default`` queues its namespace,
so it is made again, as Kubernetes' ``serviceAccountDeleted`` does). Writes: the missing
``default`` ServiceAccount (AlreadyExists is fine: another writer won the race;
Forbidden too: the namespace began terminating).
"""

from __future__ import annotations

import logging

from ..machinery.errors import ApiError
from ..client.base import NAMESPACES, Obj, Resource
from ..client.workqueue import WorkQueue
from .manager import ControllerContext

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
DEFAULT_NAME = "default"


class ServiceAccountController:
    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.namespaces = ctx.informers.informer(NAMESPACES)
        self.queue = WorkQueue()
        self.workers = workers
        self.namespaces.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        ctx.informers.informer(SERVICE_ACCOUNTS).add_handlers(on_delete=self._account_deleted)

    def _enqueue(self, ns: Obj) -> None:
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, account: Obj) -> None:
        meta = account.get("metadata") or {}
        if meta.get("name") == DEFAULT_NAME and meta.get("namespace"):
            self.queue.add(str(meta["namespace"]))

    async def run(self) -> None:
        await self.informers.wait_synced(NAMESPACES, SERVICE_ACCOUNTS)
        await self.queue.run_workers(self.ensure_default, self.workers)

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
