"""The root CA publisher: every namespace has a ``kube-root-ca.crt`` ConfigMap.

Kubernetes publishes the cluster CA bundle in each namespace (key ``ca.crt``) so that
pods can verify the API server; the projected service-account volume mounts it, and
clients and charts read it. kube-controller-manager's
``root-ca-certificate-publisher-controller`` (acting as ``root-ca-cert-publisher``); the
bundle is ``--root-ca-file``'s (:attr:`ControllerContext.root_ca`): without one it is
disabled. This controller watches namespaces (the shared informer) and those ConfigMaps
(its own informer, of that one name), and creates the missing one or puts its data back
when somebody changed or deleted it. AlreadyExists and Conflict are fine: the next event
brings the key back to the queue.
"""

from __future__ import annotations

import asyncio
import logging

from ..machinery.errors import ApiError
from ..client.base import NAMESPACES, Obj, Resource
from ..client.informer import Informer
from ..client.workqueue import WorkQueue
from .manager import ControllerContext, ControllerDisabled

log = logging.getLogger(__name__)

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
ROOT_CA_NAME = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"


def _active(ns: Obj | None) -> bool:
    return ns is not None and not (ns.get("metadata") or {}).get("deletionTimestamp")


def desired_config_map(namespace: str, ca_pem: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_NAME, "namespace": namespace}, "data": {ROOT_CA_KEY: ca_pem}}


class RootCAPublisher:
    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        if not ctx.root_ca:
            raise ControllerDisabled("no root CA bundle (--root-ca-file) to publish")
        self.client = ctx.client
        self.ca_pem = ctx.root_ca
        self.informers = ctx.informers
        self.namespaces = ctx.informers.informer(NAMESPACES)
        self.config_maps = Informer(ctx.client, CONFIG_MAPS, field_selector=f"metadata.name={ROOT_CA_NAME}")
        self.queue = WorkQueue()
        self.workers = workers
        self.namespaces.add_handlers(on_add=self._enqueue_namespace, on_update=lambda _old, new: self._enqueue_namespace(new))
        self.config_maps.add_handlers(on_update=lambda _old, new: self._enqueue_owner(new), on_delete=self._enqueue_owner)

    def _enqueue_namespace(self, ns: Obj) -> None:
        if _active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _enqueue_owner(self, cm: Obj) -> None:
        self.queue.add((cm.get("metadata") or {}).get("namespace") or "")

    async def run(self) -> None:
        own = asyncio.ensure_future(self.config_maps.run())
        try:
            await asyncio.gather(self.informers.wait_synced(NAMESPACES), self.config_maps.wait_synced())
            await asyncio.gather(own, self.queue.run_workers(self.sync, self.workers))
        finally:
            own.cancel()
            await asyncio.gather(own, return_exceptions=True)

    async def sync(self, namespace: str) -> None:
        if not _active(self.namespaces.get(None, namespace)):
            return
        want = desired_config_map(namespace, self.ca_pem)
        try:
            current = await self.client.get(CONFIG_MAPS, ROOT_CA_NAME, namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self._create(want, namespace)
            return
        if (current.get("data") or {}) != want["data"] or current.get("binaryData"):
            fixed = {**current, "metadata": dict(current["metadata"]), "data": want["data"]}  # results may be shared
            fixed.pop("binaryData", None)
            try:
                await self.client.update(CONFIG_MAPS, fixed)
            except ApiError as exc:
                if exc.code not in (404, 409):  # gone or changed meanwhile: its event queues it again
                    raise

    async def _create(self, want: Obj, namespace: str) -> None:
        try:
            await self.client.create(CONFIG_MAPS, want, namespace)
        except ApiError as exc:
            if exc.code not in (409, 403):  # exists already, or the namespace began terminating
                raise
