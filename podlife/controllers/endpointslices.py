"""The EndpointSlice and EndpointSliceMirroring controllers.

:class:`EndpointSliceController` is kube-controller-manager's ``endpointslice-controller``.
What it watches: Services, Pods, and the EndpointSlices it manages (label
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``). What it
writes: for each Service with a selector, slices named ``<service>-<random>``
(``generateName``) labelled ``kubernetes.io/service-name``, owned by the Service
(``controller``/``blockOwnerDeletion``), address type IPv4, holding at most
``max_endpoints_per_slice`` (``--max-endpoints-per-slice``, 100) endpoints each. A pod is an
endpoint when it has an IP and is not terminal; its conditions are Kubernetes':
``serving`` = the pod's Ready condition, ``terminating`` = ``deletionTimestamp`` set,
``ready`` = serving and not terminating, or always with ``publishNotReadyAddresses``.
Terminating pods stay in the slices (``serving``/``terminating`` tell consumers). A Service
whose pods give no endpoint keeps one empty placeholder slice.

:class:`EndpointSliceMirroringController` is ``endpointslicemirroring-controller``: the
Endpoints of a Service *without* a selector (written by a user or another controller) are
mirrored into slices labelled managed-by ``endpointslicemirroring-controller.k8s.io``,
owned by the Endpoints; Endpoints labelled ``endpointslice.kubernetes.io/skip-mirror:
"true"`` are not (the API server's ``kubernetes`` Endpoints, whose slice it writes itself).

Both compute a :class:`SlicePlan` with pure functions (:func:`desired_slices`,
:func:`mirrored_slices`) from the wanted endpoints and the existing slices, reusing slices
so an unchanged endpoint stays where it is, filling slices with room before creating new
ones, and changing only slices whose content differs -- so a pod update that changes no
endpoint writes nothing. The I/O (:func:`apply_plan`) creates, updates and deletes.

Both run in the controller manager (``endpointslice-controller`` and
``endpointslice-mirroring-controller`` in ``--controllers``, acting as
``endpointslice-controller`` and ``endpointslicemirroring-controller``): Services, Pods and
Endpoints come from its shared informers (one watch each, shared with the Endpoints
controller; a namespace's pods from the by-namespace index), the managed slices from each
controller's own informer (label-selected on its managed-by value).

Informer caches may lag the controller's own writes over HTTP (in-process they are
current when a write returns); :class:`WriteTracker` holds a Service's next sync until the
cache has seen its last writes, so a stale cache never makes a second slice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..client.base import ENDPOINTS, PODS, SERVICES, Client, Obj, Resource
from ..client.informer import Informer, object_key
from ..client.shared_informers import BY_NAMESPACE, SharedInformers
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from .manager import ControllerContext
from .endpoints import (
    TRIGGER_TIME_ANNOTATION,
    ServicePodIndex,
    TriggerTimes,
    endpoint_port,
    queue_pod_change,
    find_port,
    hostname_for,
    in_endpoints,
    is_headless,
    is_ready,
    is_terminating,
    pod_ip,
    selector_of,
    selects,
    service_labels,
    target_ref,
)

log = logging.getLogger(__name__)

ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100
MIRRORING_MAX_ENDPOINTS_PER_SLICE = 1000
ADDRESS_TYPE = "IPv4"

PortsKey = tuple[tuple[str, int, str, str], ...]


@dataclass
class SlicePlan:
    """What to write: new slices (with ``generateName``), changed ones (with their name and
    resourceVersion), and the ones to delete."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


@dataclass
class EndpointGroup:
    """The wanted endpoints that share one port list, by identity."""

    ports: list[Obj]
    endpoints: dict[str, Obj] = field(default_factory=dict)


# --------------------------------------------------------------------------- pure: what the slices hold


def ports_key(ports: Iterable[Obj]) -> PortsKey:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in ports))


def endpoint_identity(endpoint: Obj) -> str:
    ref = endpoint.get("targetRef") or {}
    addresses = endpoint.get("addresses") or [""]
    return f"{ref.get('uid') or ''}/{addresses[0]}"


def pod_endpoint(pod: Obj, service: Obj) -> Obj:
    """A pod's endpoint in its Service's slices, conditions as Kubernetes sets them."""
    serving, terminating = is_ready(pod), is_terminating(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    endpoint: Obj = {"addresses": [pod_ip(pod)],
                     "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                                    "terminating": terminating}}
    hostname = hostname_for(pod, service)
    if hostname:
        endpoint["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    endpoint["targetRef"] = target_ref(pod)
    return endpoint


def pod_ports(pod: Obj, service: Obj) -> list[Obj]:
    """The Service's ports as this pod serves them (ports whose target the pod lacks are left out)."""
    out = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        if isinstance(service_port, dict):
            number = find_port(pod, service_port)
            if number is not None:
                out.append(endpoint_port(service_port, number))
    return out


def service_groups(service: Obj, pods: Iterable[Obj]) -> dict[PortsKey, EndpointGroup]:
    """The endpoints the Service's selector picks among ``pods``, grouped by the ports they serve."""
    selector = selector_of(service)
    groups: dict[PortsKey, EndpointGroup] = {}
    if selector is None:
        return groups
    for pod in pods:
        if not selects(selector, pod) or not in_endpoints(pod, include_terminating=True) or ":" in str(pod_ip(pod)):
            continue  # (IPv6 addresses would go to IPv6 slices: podlife's cluster is single-stack IPv4)
        ports = pod_ports(pod, service)
        if not ports and (service.get("spec") or {}).get("ports") and not is_headless(service):
            continue  # serves none of the Service's ports
        endpoint = pod_endpoint(pod, service)
        groups.setdefault(ports_key(ports), EndpointGroup(ports)).endpoints[endpoint_identity(endpoint)] = endpoint
    return groups


def _slice_template(owner: Obj, labels: dict[str, str], managed_by: str) -> Obj:
    """A slice owned by ``owner`` (its Service, or the Endpoints it mirrors), named after it, with ``labels``
    plus the service-name and managed-by labels."""
    meta = owner.get("metadata") or {}
    name = str(meta.get("name"))
    reference = {"apiVersion": "v1", "kind": owner.get("kind"), "name": name, "uid": meta.get("uid"),
                 "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{name[:57]}-", "namespace": meta.get("namespace"),
                         "labels": {**labels, SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: managed_by},
                         "ownerReferences": [reference]},
            "addressType": ADDRESS_TYPE}


def service_template(service: Obj) -> Obj:
    """What every slice of the Service carries: labels, owner, name prefix, address type."""
    return _slice_template({"kind": "Service", **service},
                           service_labels(service, (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)), CONTROLLER_NAME)


def desired_slices(service: Obj, pods: Iterable[Obj], existing: Iterable[Obj], *,
                   max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
                   trigger_time: str | None = None) -> SlicePlan:
    """The writes that bring ``existing`` (the Service's managed slices) to what its pods make."""
    return pack_slices(service_template(service), service_groups(service, pods), existing,
                       max_endpoints_per_slice, trigger_time)


# --------------------------------------------------------------------------- pure: mirroring


def _mirrorable(ip: Any) -> bool:
    """An address a slice may hold: IPv4, not unspecified, loopback or link-local (validation refuses those)."""
    try:
        address = ipaddress.ip_address(str(ip))
    except ValueError:
        return False
    return address.version == 4 and not (address.is_unspecified or address.is_loopback or address.is_link_local)


def _mirrored_endpoint(address: Obj, ready: bool) -> Obj:
    endpoint: Obj = {"addresses": [address.get("ip")], "conditions": {"ready": ready}}
    for key in ("hostname", "nodeName", "targetRef"):
        if address.get(key):
            endpoint[key] = address[key]
    return endpoint


def mirror_groups(endpoints: Obj) -> dict[PortsKey, EndpointGroup]:
    groups: dict[PortsKey, EndpointGroup] = {}
    for subset in endpoints.get("subsets") or []:
        ports = [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in subset.get("ports") or []]
        group = groups.setdefault(ports_key(ports), EndpointGroup(ports))
        for field_name, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(field_name) or []:
                if isinstance(address, dict) and _mirrorable(address.get("ip")):
                    endpoint = _mirrored_endpoint(address, ready)
                    group.endpoints.setdefault(endpoint_identity(endpoint), endpoint)
    return {k: g for k, g in groups.items() if g.endpoints}


def mirror_template(endpoints: Obj) -> Obj:
    reserved = {SERVICE_NAME_LABEL, MANAGED_BY_LABEL, SKIP_MIRROR_LABEL}
    labels = {k: v for k, v in ((endpoints.get("metadata") or {}).get("labels") or {}).items() if k not in reserved}
    return _slice_template({"kind": "Endpoints", **endpoints}, labels, MIRRORING_CONTROLLER_NAME)


def should_mirror(service: Obj | None, endpoints: Obj | None) -> bool:
    """A selector-less Service's Endpoints, unless they ask not to be mirrored."""
    if service is None or endpoints is None:
        return False
    spec = service.get("spec") or {}
    if spec.get("selector") or spec.get("type") == "ExternalName":
        return False
    return ((endpoints.get("metadata") or {}).get("labels") or {}).get(SKIP_MIRROR_LABEL) != "true"


def mirrored_slices(endpoints: Obj, existing: Iterable[Obj], *,
                    max_endpoints_per_slice: int = MIRRORING_MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """The writes that make ``existing`` (the mirrored slices) mirror ``endpoints``."""
    groups = mirror_groups(endpoints)
    if not groups:  # nothing to mirror: no placeholder, as Kubernetes' mirroring keeps none
        return SlicePlan(delete=list(existing))
    return pack_slices(mirror_template(endpoints), groups, existing, max_endpoints_per_slice, None)


# --------------------------------------------------------------------------- pure: packing


@dataclass
class _Slot:
    base: Obj | None  # the existing slice it becomes, or None for a new one
    ports: list[Obj]
    endpoints: list[Obj]


def _slot_fill(slots: list[_Slot], leftovers: list[Obj], ports: list[Obj], limit: int,
               spare: list[Obj]) -> list[_Slot]:
    for slot in slots:
        room = limit - len(slot.endpoints)
        if room > 0 and leftovers:
            slot.endpoints.extend(leftovers[:room])
            del leftovers[:room]
    new = []
    while leftovers:
        new.append(_Slot(spare.pop(0) if spare else None, ports, leftovers[:limit]))
        del leftovers[:limit]
    return new


def pack_slices(template: Obj, groups: dict[PortsKey, EndpointGroup], existing: Iterable[Obj], limit: int,
                trigger_time: str | None) -> SlicePlan:
    """Place each group's endpoints in slices of at most ``limit``, disturbing ``existing`` least.

    An endpoint already in a slice with its ports stays there (updated if it changed);
    new ones fill slices with room, then new slices -- for which existing slices no group
    wants any more are reused before any is created. No endpoints at all: one empty
    placeholder slice (ports and endpoints empty), reusing an existing one.
    """
    limit = max(1, limit)
    current = sorted(existing, key=lambda s: str((s.get("metadata") or {}).get("name")))
    same_type = [s for s in current if s.get("addressType") == template["addressType"]]
    plan = SlicePlan(delete=[s for s in current if s.get("addressType") != template["addressType"]])
    by_ports: dict[PortsKey, list[Obj]] = {}
    for sl in same_type:
        by_ports.setdefault(ports_key(sl.get("ports") or []), []).append(sl)
    kept: list[tuple[PortsKey, list[_Slot], list[Obj]]] = []
    for key in sorted(groups):
        group, remaining = groups[key], dict(groups[key].endpoints)
        slots = []
        for sl in by_ports.pop(key, []):
            held = [remaining.pop(i) for i in (endpoint_identity(e) for e in sl.get("endpoints") or []) if i in remaining]
            slots.append(_Slot(sl, group.ports, held))
        kept.append((key, slots, [remaining[i] for i in sorted(remaining)]))
    spare = [sl for slices in by_ports.values() for sl in slices]
    slots_all: list[_Slot] = []
    for key, slots, leftovers in kept:
        slots_all += slots + _slot_fill(slots, leftovers, groups[key].ports, limit, spare)
    live = [s for s in slots_all if s.endpoints]
    emptied = [s.base for s in slots_all if not s.endpoints and s.base is not None]
    if not live:  # the placeholder
        reusable = emptied + spare
        live = [_Slot(reusable.pop(0) if reusable else None, [], [])]
        emptied, spare = reusable, []
    plan.delete += emptied + spare
    for slot in live:
        _plan_slot(plan, template, slot, trigger_time)
    return plan


_COMPARED = ("addressType", "endpoints", "ports")


def _plan_slot(plan: SlicePlan, template: Obj, slot: _Slot, trigger_time: str | None) -> None:
    body = {"addressType": template["addressType"], "endpoints": slot.endpoints, "ports": slot.ports}
    t_meta = template["metadata"]
    if slot.base is None:
        meta = {k: v for k, v in t_meta.items()}
        if trigger_time:
            meta["annotations"] = {TRIGGER_TIME_ANNOTATION: trigger_time}
        plan.create.append({"apiVersion": template["apiVersion"], "kind": template["kind"], "metadata": meta, **body})
        return
    base, b_meta = slot.base, slot.base.get("metadata") or {}
    same = all((base.get(k) or []) == (body.get(k) or []) for k in _COMPARED if k != "addressType")
    same = same and (b_meta.get("labels") or {}) == t_meta["labels"] \
        and (b_meta.get("ownerReferences") or []) == t_meta["ownerReferences"]
    if same:
        return
    meta = dict(b_meta)
    meta["labels"], meta["ownerReferences"] = t_meta["labels"], t_meta["ownerReferences"]
    if trigger_time:
        meta["annotations"] = {**(b_meta.get("annotations") or {}), TRIGGER_TIME_ANNOTATION: trigger_time}
    plan.update.append({**base, "metadata": meta, **body})


# --------------------------------------------------------------------------- I/O


class WriteTracker:
    """The versions a controller wrote per queue key, until its slice informer has seen them."""

    def __init__(self, slices: Informer, patience: float = 5.0) -> None:
        self.slices = slices
        self.patience = patience
        self.awaiting: dict[str, tuple[float, dict[str, int | None]]] = {}

    def wrote(self, key: str, namespace: str, name: str, rv: int | None) -> None:
        _, pending = self.awaiting.setdefault(key, (time.monotonic(), {}))
        pending[f"{namespace}/{name}"] = rv
        self.awaiting[key] = (time.monotonic(), pending)

    def caught_up(self, key: str) -> bool:
        entry = self.awaiting.get(key)
        if entry is None:
            return True
        since, pending = entry
        for slice_key, rv in pending.items():
            cached = self.slices.cache.get(slice_key)
            if rv is None and cached is not None and time.monotonic() - since < self.patience:
                return False
            if rv is not None and time.monotonic() - since < self.patience:
                seen = int((cached or {}).get("metadata", {}).get("resourceVersion") or 0)
                if seen < rv:
                    return False
        del self.awaiting[key]
        return True


async def apply_plan(client: Client, plan: SlicePlan, namespace: str,
                     wrote: Callable[[str, int | None], None] | None = None) -> None:
    """Write ``plan``: creations, then updates, then deletions (consumers never see a gap)."""
    for obj in plan.create:
        try:
            made = await client.create(ENDPOINT_SLICES, obj, namespace)
        except ApiError as exc:
            if exc.code == 403:  # the namespace is terminating
                return
            raise
        if wrote is not None:
            meta = made.get("metadata") or {}
            wrote(str(meta.get("name")), int(meta.get("resourceVersion") or 0))
    for obj in plan.update:
        made = await client.update(ENDPOINT_SLICES, obj)
        if wrote is not None:
            wrote(str(made["metadata"]["name"]), int(made["metadata"].get("resourceVersion") or 0))
    for obj in plan.delete:
        name = str((obj.get("metadata") or {}).get("name"))
        try:
            await client.delete(ENDPOINT_SLICES, name, namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
        if wrote is not None:
            wrote(name, None)


class SlicesByOwner:
    """Managed slices by the key (``namespace/service``) their service-name label names."""

    def __init__(self) -> None:
        self.slices: dict[str, dict[str, Obj]] = {}

    @staticmethod
    def owner_key(sl: Obj) -> str | None:
        meta = sl.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        return f"{meta.get('namespace')}/{name}" if name else None

    def changed(self, old: Obj | None, new: Obj | None) -> str | None:
        """Record a slice's change; returns the key of its owner (the new one's, else the old one's)."""
        old_key = self.owner_key(old) if old is not None else None
        if old is not None and old_key is not None:
            owned = self.slices.get(old_key, {})
            owned.pop(object_key(old), None)
            if not owned:
                self.slices.pop(old_key, None)
        new_key = self.owner_key(new) if new is not None else None
        if new is not None and new_key is not None:
            self.slices.setdefault(new_key, {})[object_key(new)] = new
        return new_key or old_key

    def of(self, key: str) -> list[Obj]:
        return list(self.slices.get(key, {}).values())


class _SliceControllerBase:
    """The loop both controllers share: their slice informer, a queue of keys, the managed slices' index."""

    managed_by = CONTROLLER_NAME
    #: the shared informers' resources this controller reads
    shared: tuple[Resource, ...] = ()

    def __init__(self, ctx: ControllerContext, workers: int) -> None:
        self.client = ctx.client
        self.informers: SharedInformers = ctx.informers
        self.slices = Informer(ctx.client, ENDPOINT_SLICES, label_selector=f"{MANAGED_BY_LABEL}={self.managed_by}")
        self.owned = SlicesByOwner()
        self.tracker = WriteTracker(self.slices)
        self.queue = WorkQueue()
        self.workers = workers
        self.slices.add_handlers(on_add=lambda sl: self._slice_changed(None, sl),
                                 on_update=self._slice_changed, on_delete=lambda sl: self._slice_changed(sl, None))

    def _slice_changed(self, old: Obj | None, new: Obj | None) -> None:
        key = self.owned.changed(old, new)
        if key is not None and new is None:
            self.queue.add(key)  # a deleted slice is made again if it is still wanted

    async def run(self) -> None:
        own = asyncio.ensure_future(self.slices.run())
        try:
            await asyncio.gather(self.slices.wait_synced(), self.informers.wait_synced(*self.shared))
            await asyncio.gather(own, self.queue.run_workers(self.sync, self.workers))
        finally:
            own.cancel()
            await asyncio.gather(own, return_exceptions=True)

    async def sync(self, key: str) -> None:
        if not self.tracker.caught_up(key):
            self.queue.add_after(key, 0.05)
            return
        namespace = key.partition("/")[0]
        plan = self.plan(key)
        if plan:
            await apply_plan(self.client, plan, namespace, lambda name, rv: self.tracker.wrote(key, namespace, name, rv))

    def plan(self, key: str) -> SlicePlan:
        raise NotImplementedError


class EndpointSliceController(_SliceControllerBase):
    shared = (SERVICES, PODS)

    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        """Slices of at most ``--max-endpoints-per-slice`` (``ctx.options.max_endpoints_per_slice``) endpoints."""
        super().__init__(ctx, workers)
        self.max_endpoints_per_slice = max(1, ctx.options.max_endpoints_per_slice)
        self.services = ctx.informers.informer(SERVICES)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_namespace = ctx.informers.index(PODS, BY_NAMESPACE)
        self.index = ServicePodIndex(self.services)
        self.triggers = TriggerTimes()
        self.services.add_handlers(on_add=self._service_added, on_update=lambda _o, new: self._service_added(new),
                                   on_delete=self._service_deleted)
        self.pods.add_handlers(on_add=lambda pod: self._pod_changed(None, pod), on_update=self._pod_changed,
                               on_delete=lambda pod: self._pod_changed(pod, None))

    def _service_added(self, service: Obj) -> None:
        self.index.add(service)
        key = object_key(service)
        if key not in self.owned.slices:
            self.triggers.note(key, (service.get("metadata") or {}).get("creationTimestamp"))
        self.queue.add(key)

    def _service_deleted(self, service: Obj) -> None:
        self.index.remove(service)
        self.queue.add(object_key(service))

    def _pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        queue_pod_change(self.index, self.triggers, self.queue, old, new)

    def plan(self, key: str) -> SlicePlan:
        service = self.services.cache.get(key)
        existing = self.owned.of(key)
        trigger = self.triggers.take(key)
        if service is None or selector_of(service) is None:
            # gone (the garbage collector would remove the owned slices too) or no longer selecting
            return SlicePlan(delete=existing)
        return desired_slices(service, self.pods_by_namespace.get(key.partition("/")[0]), existing,
                              max_endpoints_per_slice=self.max_endpoints_per_slice, trigger_time=trigger)


class EndpointSliceMirroringController(_SliceControllerBase):
    managed_by = MIRRORING_CONTROLLER_NAME
    shared = (SERVICES, ENDPOINTS)

    def __init__(self, ctx: ControllerContext, *, workers: int = 1,
                 max_endpoints_per_slice: int = MIRRORING_MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(ctx, workers)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = ctx.informers.informer(SERVICES)
        self.endpoints = ctx.informers.informer(ENDPOINTS)
        for informer in (self.services, self.endpoints):
            informer.add_handlers(on_add=lambda obj: self.queue.add(object_key(obj)),
                                  on_update=lambda _old, new: self.queue.add(object_key(new)),
                                  on_delete=lambda obj: self.queue.add(object_key(obj)))

    def plan(self, key: str) -> SlicePlan:
        service, endpoints = self.services.cache.get(key), self.endpoints.cache.get(key)
        existing = self.owned.of(key)
        if endpoints is None or not should_mirror(service, endpoints):
            return SlicePlan(delete=existing)
        return mirrored_slices(endpoints, existing, max_endpoints_per_slice=self.max_endpoints_per_slice)
