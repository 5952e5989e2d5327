"""APIService registration: every API group-version podlife serves has its local APIService.

On Kubernetes the aggregator registers an ``apiregistration.k8s.io/v1`` APIService for
each group-version the API server serves itself (``v1.``, ``v1.apps``, ...; labelled
``kube-aggregator.kubernetes.io/automanaged: onstart``) and one for each served version of
every CustomResourceDefinition (``automanaged: "true"``, removed with the CRD), so
``kubectl get apiservices`` lists them all as ``Local``, ``Available``. This controller
does the same through the API: at start it writes the built-in ones, then it follows
CRDs with an informer. Which built-in group-versions get one, and with which priorities,
follows Kubernetes' table of group priorities; a group-version missing from it gets none,
as in Kubernetes. podlife's own ``network.podlife.io`` group is registered like a CRD's.

What it writes is desired state computed by pure functions (:func:`local_api_service`,
:func:`crd_group_versions`); the reconcile step only compares and writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from ..machinery.errors import ApiError
from ..client.base import CRDS, Client, Obj, Resource
from ..client.informer import Informer
from ..client.workqueue import WorkQueue

log = logging.getLogger(__name__)

API_SERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False)
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
ON_START, CRD_MANAGED = "onstart", "true"
#: CustomResourceDefinitions' group-versions sort after every built-in group
CRD_PRIORITY = (1000, 100)

#: (group priority minimum, version priority) of the built-in group-versions podlife serves
BUILTIN_PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("autoscaling", "v1"): (17500, 15),
    ("batch", "v1"): (17400, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    # served by metrics-server on Kubernetes, whose APIService has these priorities; here the API server's own
    ("metrics.k8s.io", "v1beta1"): (100, 100),
}
#: groups podlife adds to Kubernetes' API, registered as a CRD's would be
PODLIFE_GROUPS = ("network.podlife.io", "trace.podlife.io")


def api_service_name(group: str, version: str) -> str:
    return f"{version}.{group}"


def local_api_service(group: str, version: str, priorities: tuple[int, int], managed: str) -> Obj:
    """The APIService of a group-version served by this API server (no ``spec.service``)."""
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": api_service_name(group, version), "labels": {AUTOMANAGED: managed}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": priorities[0],
                     "versionPriority": priorities[1]}}


def builtin_api_services(group_versions: Iterable[tuple[str, str]]) -> list[Obj]:
    """The ``onstart`` APIServices for the built-in group-versions served."""
    out = []
    for group, version in group_versions:
        if group in PODLIFE_GROUPS:
            out.append(local_api_service(group, version, CRD_PRIORITY, ON_START))
        elif (group, version) in BUILTIN_PRIORITIES:
            out.append(local_api_service(group, version, BUILTIN_PRIORITIES[(group, version)], ON_START))
    return out


def crd_group_versions(crd: Obj) -> set[tuple[str, str]]:
    """The group-versions a CRD serves (none while it is being deleted)."""
    if (crd.get("metadata") or {}).get("deletionTimestamp"):
        return set()
    spec = crd.get("spec") or {}
    return {(spec.get("group") or "", v.get("name") or "") for v in spec.get("versions") or [] if v.get("served")}


class APIServiceRegistration:
    def __init__(self, client: Client, builtin_group_versions: Iterable[tuple[str, str]], *, workers: int = 2) -> None:
        self.client = client
        self.builtin = {api_service_name(s["spec"]["group"], s["spec"]["version"]): s
                        for s in builtin_api_services(builtin_group_versions)}
        self.crds = Informer(client, CRDS)
        self.api_services = Informer(client, API_SERVICES)
        self.queue = WorkQueue()
        self.workers = workers
        self.crds.add_handlers(on_add=self._enqueue_crd, on_update=self._on_crd_update, on_delete=self._enqueue_crd)
        # somebody else's change to one of ours (or its deletion) is undone
        self.api_services.add_handlers(on_update=lambda _old, new: self._enqueue_api_service(new),
                                       on_delete=self._enqueue_api_service)

    def _enqueue_api_service(self, api_service: Obj) -> None:
        self.queue.add((api_service.get("metadata") or {}).get("name") or "")

    def _on_crd_update(self, old: Obj, new: Obj) -> None:
        self._enqueue_crd(old)  # versions it no longer serves
        self._enqueue_crd(new)

    def _enqueue_crd(self, crd: Obj) -> None:
        group = (crd.get("spec") or {}).get("group") or ""
        for v in (crd.get("spec") or {}).get("versions") or []:
            self.queue.add(api_service_name(group, v.get("name") or ""))

    async def run(self) -> None:
        await asyncio.gather(self.crds.run(), self.api_services.run(), self._work())

    async def _work(self) -> None:
        # Only once every CRD is known can an APIService be judged orphaned (as Kubernetes
        # waits for its CRD sync): then the built-in ones, and those left by deleted CRDs.
        await asyncio.gather(self.crds.wait_synced(), self.api_services.wait_synced())
        for name in self.builtin:
            self.queue.add(name)
        for item in list(self.api_services.cache.values()):
            if ((item.get("metadata") or {}).get("labels") or {}).get(AUTOMANAGED) == CRD_MANAGED:
                self.queue.add(item["metadata"]["name"])
        await self.queue.run_workers(self.sync, self.workers)

    def desired(self, name: str) -> Obj | None:
        """What the APIService ``name`` should be; None when nothing serves its group-version."""
        if name in self.builtin:
            return self.builtin[name]
        for crd in self.crds.cache.values():
            for group, version in crd_group_versions(crd):
                if api_service_name(group, version) == name:
                    return local_api_service(group, version, CRD_PRIORITY, CRD_MANAGED)
        return None

    async def sync(self, name: str) -> None:
        want = self.desired(name)
        try:
            current = await self.client.get(API_SERVICES, name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            current = None
        if want is None:
            if current is not None and ((current.get("metadata") or {}).get("labels") or {}).get(AUTOMANAGED) == CRD_MANAGED:
                await self._ignore_gone(self.client.delete(API_SERVICES, name))
            return
        if current is None:
            await self._ignore_exists(self.client.create(API_SERVICES, want))
        elif current.get("spec") != want["spec"]:
            fixed = {**current, "metadata": dict(current["metadata"]), "spec": want["spec"]}  # results may be shared
            await self._ignore_gone(self.client.update(API_SERVICES, fixed))

    @staticmethod
    async def _ignore_exists(aw: Awaitable[Any]) -> None:
        try:
            await aw
        except ApiError as exc:
            if exc.code != 409:
                raise

    @staticmethod
    async def _ignore_gone(aw: Awaitable[Any]) -> None:
        try:
            await aw
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone or changed meanwhile: its next event queues it again
                raise
