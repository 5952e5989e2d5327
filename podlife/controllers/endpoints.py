"""The Endpoints controller: each Service with a selector gets Endpoints of its name.

As kube-controller-manager's ``endpoints-controller`` (acting as ``endpoint-controller``).
What it watches: Services, Pods, Endpoints (the controller manager's shared informers, one
watch each for every controller; the pods of a namespace come from the shared
by-namespace index; a pod event queues the Services of its namespace whose selector
matches the pod before or after the change, and only when something the Endpoints show
changed -- IP, readiness, deletion, labels, node, hostname, ports). What it writes: the
``Endpoints`` of each queued Service, computed by the pure :func:`desired_endpoints` and
written only when the subsets or labels differ from the stored ones (a pod status update
that changes no address writes nothing); the Endpoints of a deleted Service are deleted.
Services without a selector are left to whoever writes their Endpoints (the ``kubernetes``
Service's are the API server's).

Kubernetes facts followed (``pkg/controller/endpoint``, ``pkg/api/v1/endpoints``,
``endpointslice/util``):

* a pod is an address when it has an IP (one an Endpoints may hold), is not terminal (Succeeded/Failed) and not being
  deleted (``deletionTimestamp`` set: out at once) -- unless the Service publishes
  not-ready addresses, which takes every such pod, terminating ones too, as ready;
* Ready pods (condition ``Ready=True``) go to ``addresses``, the others to
  ``notReadyAddresses``; an address has ``ip``, ``nodeName``, ``targetRef`` (the Pod) and
  ``hostname`` when the pod has ``spec.hostname`` and its ``spec.subdomain`` is the
  Service's name;
* each Service port resolves its ``targetPort`` for each pod (a name: the pod's container
  port of that name and protocol; a pod without it is skipped for that port); subsets then
  group the ports that share exactly the same addresses (``RepackSubsets``); a headless
  Service without ports lists its pods with no ports;
* labels: the Service's, ``endpoints.kubernetes.io/managed-by: endpoint-controller``, and
  ``service.kubernetes.io/headless`` for headless Services; the
  ``endpoints.kubernetes.io/last-change-trigger-time`` annotation is the earliest change
  (pod Ready transition, Service creation) not yet written, and at most 1000 addresses are
  kept (``endpoints.kubernetes.io/over-capacity: truncated``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from ..client.base import ENDPOINTS, PODS, SERVICES, Obj
from ..client.informer import Informer, object_key
from ..client.shared_informers import BY_NAMESPACE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from .manager import ControllerContext

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
MAX_ADDRESSES = 1000


# --------------------------------------------------------------------------- pod facts (shared with the slices)


def selector_of(service: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when it has none (its endpoints are someone else's)."""
    spec = service.get("spec") or {}
    selector = spec.get("selector")
    if spec.get("type") == "ExternalName" or not isinstance(selector, dict) or not selector:
        return None
    return selector


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_ip(pod: Obj) -> str | None:
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip:
        ips = status.get("podIPs") or []
        ip = ips[0].get("ip") if ips and isinstance(ips[0], dict) else None
    return str(ip) if ip else None


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [] if isinstance(c, dict))


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def usable_ip(ip: str | None) -> bool:
    """An address Endpoints may hold: not unspecified, loopback or link-local (``ValidateEndpointIP``
    refuses those; a host-network pod on a loopback node address would make the write fail forever)."""
    try:
        address = ipaddress.ip_address(str(ip))
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_loopback or address.is_link_local)


def in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``: an IP, not terminal, not deleted (unless terminating ones count)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or not usable_ip(pod_ip(pod)):
        return False
    return include_terminating or not is_terminating(pod)


def hostname_for(pod: Obj, service: Obj) -> str | None:
    """``spec.hostname`` when the pod's ``spec.subdomain`` is the Service (its DNS name under it)."""
    spec, meta, svc_meta = pod.get("spec") or {}, pod.get("metadata") or {}, service.get("metadata") or {}
    hostname = spec.get("hostname")
    if hostname and spec.get("subdomain") == svc_meta.get("name") and meta.get("namespace") == svc_meta.get("namespace"):
        return str(hostname)
    return None


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """``FindPort``: the port number a Service port's ``targetPort`` means on this pod (None: it has no such port)."""
    target = service_port.get("targetPort")
    if target is None or target == 0 or target == "":
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in (container or {}).get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return int(number) if isinstance(number, int) else None
    return None


def endpoint_port(service_port: Obj, number: int) -> Obj:
    port: Obj = {"name": service_port.get("name") or "", "port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def target_ref(pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid")}


def is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def service_labels(service: Obj, reserved: Iterable[str]) -> dict[str, str]:
    """The Service's labels for its endpoints (minus ``reserved``), with the headless marker."""
    skip = set(reserved) | {HEADLESS_LABEL}
    labels = {k: v for k, v in ((service.get("metadata") or {}).get("labels") or {}).items() if k not in skip}
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def trigger_time_of_pod(pod: Obj) -> str | None:
    """When the pod last changed in a way endpoints show: its Ready transition, else its creation."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready" and condition.get("lastTransitionTime"):
            return str(condition["lastTransitionTime"])
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return str(created) if created else None


def endpoints_view(pod: Obj | None) -> tuple[Any, ...] | None:
    """What of a pod the endpoints depend on: a pod event that leaves it alone changes nothing."""
    if pod is None:
        return None
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ports = tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                  for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
                  for p in (c or {}).get("ports") or [])
    return (pod_ip(pod), is_ready(pod), bool(meta.get("deletionTimestamp")), (pod.get("status") or {}).get("phase"),
            tuple(sorted((meta.get("labels") or {}).items())), spec.get("nodeName"), spec.get("hostname"),
            spec.get("subdomain"), ports, meta.get("uid"))


# --------------------------------------------------------------------------- the pure computation


def _address(pod: Obj, service: Obj) -> Obj:
    address: Obj = {"ip": pod_ip(pod)}
    hostname = hostname_for(pod, service)
    if hostname:
        address["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = target_ref(pod)
    return address


def _port_key(port: Obj) -> tuple[str, int, str]:
    return str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol") or "")


def desired_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The subsets of a Service's Endpoints: ports grouped by the exact (address, ready) set they share."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    service_ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    by_port: dict[tuple[str, int, str] | None, dict[tuple[str, str], tuple[Obj, bool]]] = {}
    port_objs: dict[tuple[str, int, str], Obj] = {}
    for pod in pods:
        if not in_endpoints(pod, publish):
            continue
        address, ready = _address(pod, service), publish or is_ready(pod)
        ident = (str(address["ip"]), str(address["targetRef"].get("uid") or ""))
        if not service_ports:
            if is_headless(service):
                by_port.setdefault(None, {})[ident] = (address, ready)
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                continue
            port = endpoint_port(service_port, number)
            key = _port_key(port)
            port_objs[key] = port
            by_port.setdefault(key, {})[ident] = (address, ready)
    groups: dict[tuple[Any, ...], tuple[dict[tuple[str, str], tuple[Obj, bool]], list[Obj]]] = {}
    for port_key, members in by_port.items():
        signature = tuple(sorted((ident, ready) for ident, (_, ready) in members.items()))
        entry = groups.setdefault(signature, (members, []))
        if port_key is not None:
            entry[1].append(port_objs[port_key])
    subsets = [_subset(members, ports) for members, ports in groups.values()]
    return sorted(subsets, key=_subset_order)


def _subset(members: dict[tuple[str, str], tuple[Obj, bool]], ports: list[Obj]) -> Obj:
    ordered = sorted(members.items(), key=lambda item: item[0])
    subset: Obj = {}
    ready = [address for _, (address, ok) in ordered if ok]
    not_ready = [address for _, (address, ok) in ordered if not ok]
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    if ports:
        subset["ports"] = sorted(ports, key=_port_key)
    return subset


def _subset_order(subset: Obj) -> tuple[Any, ...]:
    ports = tuple(_port_key(p) for p in subset.get("ports") or [])
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0].get("ip") or ""
    return ports, first


def _truncate(subsets: list[Obj]) -> tuple[list[Obj], bool]:
    """At most :data:`MAX_ADDRESSES` addresses, ready ones first (``endpoints.kubernetes.io/over-capacity``)."""
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if total <= MAX_ADDRESSES:
        return subsets, False
    room, kept = MAX_ADDRESSES, []
    for field in ("addresses", "notReadyAddresses"):
        for subset in subsets:
            take = (subset.get(field) or [])[:room]
            room -= len(take)
            if take:
                kept.append({field: take, **({"ports": subset["ports"]} if subset.get("ports") else {})})
    return kept, True


def desired_endpoints(service: Obj, pods: Iterable[Obj], *, trigger_time: str | None = None) -> Obj:
    """The Endpoints the controller wants for ``service`` given the pods of its namespace.

    ``pods`` may hold pods the selector does not pick (they are filtered out here).
    ``trigger_time``: the value of the last-change-trigger-time annotation (None: none).
    """
    meta = service.get("metadata") or {}
    selector = selector_of(service) or {}
    chosen = [p for p in pods if selects(selector, p)] if selector else []
    subsets, truncated = _truncate(desired_subsets(service, chosen))
    labels = {**service_labels(service, (MANAGED_BY_LABEL,)), MANAGED_BY_LABEL: CONTROLLER_NAME}
    annotations: dict[str, str] = {}
    if trigger_time:
        annotations[TRIGGER_TIME_ANNOTATION] = trigger_time
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    out_meta: Obj = {"name": meta.get("name"), "namespace": meta.get("namespace"), "labels": labels}
    if annotations:
        out_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": out_meta, "subsets": subsets}


def needs_write(desired: Obj, current: Obj | None) -> bool:
    """Whether the stored Endpoints differ from the wanted ones in what the controller owns.

    The trigger-time annotation alone never causes a write; the over-capacity one does.
    """
    if current is None:
        return True
    cur_meta, want_meta = current.get("metadata") or {}, desired["metadata"]
    over = OVER_CAPACITY_ANNOTATION
    return ((current.get("subsets") or []) != desired["subsets"]
            or (cur_meta.get("labels") or {}) != want_meta["labels"]
            or (cur_meta.get("annotations") or {}).get(over) != (want_meta.get("annotations") or {}).get(over))


def merged_for_update(desired: Obj, current: Obj) -> Obj:
    """``current`` carrying ``desired``'s subsets, labels and controller annotations (others' annotations kept)."""
    meta = dict(current.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in (TRIGGER_TIME_ANNOTATION, OVER_CAPACITY_ANNOTATION)}
    annotations.update(desired["metadata"].get("annotations") or {})
    meta["labels"] = desired["metadata"]["labels"]
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**current, "metadata": meta, "subsets": desired["subsets"]}


# --------------------------------------------------------------------------- the controller


class ServicePodIndex:
    """Services with a selector, by namespace, and the keys of those that select a pod: what a pod event queues.

    A Service without a selector (``kubernetes`` in ``default``, or one whose endpoints a user writes) is
    not indexed: no pod event concerns it, so the pods of a namespace holding only such Services cost
    the endpoint controllers nothing (the benchmark's 10,000 pods in ``default``)."""

    def __init__(self, services: Informer) -> None:
        self.services = services
        self.by_namespace: dict[str, set[str]] = {}

    def add(self, service: Obj) -> None:
        """Index ``service`` as it is now (added or updated): kept while it has a selector, dropped otherwise."""
        if not selector_of(service):
            self.remove(service)
            return
        meta = service.get("metadata") or {}
        self.by_namespace.setdefault(str(meta.get("namespace")), set()).add(object_key(service))

    def remove(self, service: Obj) -> None:
        meta = service.get("metadata") or {}
        keys = self.by_namespace.get(str(meta.get("namespace")))
        if keys is not None:
            keys.discard(object_key(service))
            if not keys:
                del self.by_namespace[str(meta.get("namespace"))]

    def watches(self, pod: Obj) -> bool:
        """Whether any Service with a selector is in ``pod``'s namespace (else none of its events matter)."""
        return str((pod.get("metadata") or {}).get("namespace")) in self.by_namespace

    def selecting(self, *pods: Obj | None) -> set[str]:
        found: set[str] = set()
        for pod in pods:
            if pod is None:
                continue
            namespace = str((pod.get("metadata") or {}).get("namespace"))
            for key in self.by_namespace.get(namespace, ()):
                service = self.services.cache.get(key)
                selector = selector_of(service) if service is not None else None
                if selector and selects(selector, pod):
                    found.add(key)
        return found


class TriggerTimes:
    """The earliest not yet written change per Service key (the trigger-time annotation's value)."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}

    def note(self, key: str, when: str | None) -> None:
        if when and (key not in self.pending or when < self.pending[key]):
            self.pending[key] = when

    def take(self, key: str) -> str | None:
        return self.pending.pop(key, None)


def queue_pod_change(index: ServicePodIndex, triggers: TriggerTimes, queue: WorkQueue,
                     old: Obj | None, new: Obj | None) -> None:
    """A pod event, for both endpoint controllers: the Services selecting the pod (before or after) queued
    with the change's time -- unless nothing the endpoints show changed, or no Service is in its namespace
    (most pods at scale)."""
    pod = new if new is not None else old
    if pod is None or not index.watches(pod) or endpoints_view(old) == endpoints_view(new):
        return
    when = trigger_time_of_pod(pod)
    for key in index.selecting(old, new):
        triggers.note(key, when)
        queue.add(key)


class EndpointsController:
    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.services = ctx.informers.informer(SERVICES)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_namespace = ctx.informers.index(PODS, BY_NAMESPACE)
        self.endpoints = ctx.informers.informer(ENDPOINTS)
        self.index = ServicePodIndex(self.services)
        self.triggers = TriggerTimes()
        self.queue = WorkQueue()
        self.workers = workers
        self.services.add_handlers(on_add=self._service_added, on_update=self._service_updated,
                                   on_delete=self._service_deleted)
        self.pods.add_handlers(on_add=lambda pod: self._pod_changed(None, pod), on_update=self._pod_changed,
                               on_delete=lambda pod: self._pod_changed(pod, None))
        self.endpoints.add_handlers(on_delete=lambda ep: self.queue.add(object_key(ep)))

    # ---- handlers: only enqueue

    def _queue_leftovers(self) -> None:
        """Our Endpoints found without their Service (deleted while we were away): queued, so they go."""
        for key, endpoints in self.endpoints.cache.items():
            labels = (endpoints.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and key not in self.services.cache:
                self.queue.add(key)

    def _service_added(self, service: Obj) -> None:
        self.index.add(service)
        key = object_key(service)
        self.triggers.note(key, (service.get("metadata") or {}).get("creationTimestamp"))
        self.queue.add(key)

    def _service_updated(self, _old: Obj, new: Obj) -> None:
        self.index.add(new)
        self.queue.add(object_key(new))

    def _service_deleted(self, service: Obj) -> None:
        self.index.remove(service)
        self.queue.add(object_key(service))

    def _pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        queue_pod_change(self.index, self.triggers, self.queue, old, new)

    # ---- the loop

    async def run(self) -> None:
        await self.informers.wait_synced(SERVICES, PODS, ENDPOINTS)
        self._queue_leftovers()
        await self.queue.run_workers(self.sync, self.workers)

    def pods_in(self, namespace: str) -> list[Obj]:
        return self.pods_by_namespace.get(namespace)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.cache.get(key)
        current = self.endpoints.cache.get(key)
        if service is None:
            self.triggers.take(key)
            if current is not None:
                await self._delete(namespace, name)
            return
        if selector_of(service) is None:
            self.triggers.take(key)
            return
        trigger = self.triggers.take(key)
        if trigger is None and current is not None:
            trigger = ((current.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
        desired = desired_endpoints(service, self.pods_in(namespace), trigger_time=trigger)
        if not needs_write(desired, current):
            return
        try:
            if current is None:
                await self.client.create(ENDPOINTS, desired, namespace)
            else:
                await self.client.update(ENDPOINTS, merged_for_update(desired, current))
        except ApiError as exc:
            if trigger:
                self.triggers.note(key, trigger)
            if exc.code == 403 and current is None:
                return  # the namespace is terminating: nothing may be created in it
            raise  # 409 (stale cache, or created meanwhile): the retry reads the informer again

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, name, namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
