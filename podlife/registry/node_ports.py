"""NodePort allocation: the service registry's ``--service-node-port-range`` allocator.

What it reads: a Service being created or updated (after defaulting and validation), the
stored one on update, and every other stored Service (the REST layer passes its watch
cache's). What it writes: ``spec.ports[*].nodePort`` and ``spec.healthCheckNodePort`` of
the new object, or the field errors of a 422. Why here: as in kube-apiserver, node ports
are allocated by the Service registry, before the object is stored, so every stored
Service already carries its ports and nothing downstream (the service proxy) waits for a
controller.

There is no second record of the allocations: the ports in use are those of the stored
Services, so they survive restarts (the watch cache is filled from the store before the
API serves) and a deleted Service, or one whose type no longer takes node ports, frees
its ports by no longer naming them.

Kubernetes facts followed (``pkg/registry/core/service/portallocator``,
``pkg/registry/core/service/storage``: ``patchAllocatedValues``, ``dropTypeDependentFields``):

* NodePort and LoadBalancer Services take a node port per port; LoadBalancer ones with
  ``allocateLoadBalancerNodePorts: false`` get none unless asked;
* a requested port must be in the range and not used by another Service: ``provided port
  is not in the valid range. The range of valid ports is 30000-32767`` / ``provided port is
  already allocated``; ports with the same number (TCP and UDP 53, say) share one node port;
* picked ports come at random from above the range's static band (KEP-3668: its first
  ``min(max(16, size/32), 128)`` ports are left for Services that ask for one), then from it;
* an update that leaves a node port out keeps the old one of the port with the same name;
  a change to a type without node ports that leaves the numbers as they were drops them;
* a LoadBalancer with ``externalTrafficPolicy: Local`` gets a ``healthCheckNodePort`` too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from .types import FieldError, Obj, invalid

DEFAULT_NODE_PORT_RANGE = (30000, 32767)
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def parse_port_range(text: str) -> tuple[int, int]:
    """``30000-32767`` (or one port) as a pair; ValueError when it is not a range of ports."""
    low, _, high = text.strip().partition("-")
    first, last = int(low), int(high or low)
    if not 0 < first <= last < 65536:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


def takes_node_ports(spec: Obj) -> bool:
    return spec.get("type") in NODE_PORT_TYPES


def allocates_node_ports(spec: Obj) -> bool:
    """Whether missing node ports are picked (a LoadBalancer may decline them)."""
    if spec.get("type") == "LoadBalancer":
        return spec.get("allocateLoadBalancerNodePorts") is not False
    return spec.get("type") == "NodePort"


def needs_health_check_port(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _ports(spec: Obj) -> list[Obj]:
    return [p for p in spec.get("ports") or [] if isinstance(p, dict)]


def ports_of(spec: Obj) -> set[int]:
    """The node ports a Service's spec holds (its ports' and its health check's)."""
    used = {p["nodePort"] for p in _ports(spec) if isinstance(p.get("nodePort"), int) and p["nodePort"]}
    health = spec.get("healthCheckNodePort")
    if isinstance(health, int) and health:
        used.add(health)
    return used


def ports_in_use(services: Iterable[Obj], skip: tuple[Any, Any] | None = None) -> set[int]:
    """Every node port the stored Services hold, but for the one at ``skip`` (namespace, name)."""
    used: set[int] = set()
    for svc in services:
        meta = svc.get("metadata") or {}
        if skip is not None and (meta.get("namespace"), meta.get("name")) == skip:
            continue
        used |= ports_of(svc.get("spec") or {})
    return used


def _range_error(path: str, port: int, port_range: tuple[int, int]) -> FieldError:
    return invalid(path, port, "provided port is not in the valid range. The range of valid ports is "
                               f"{port_range[0]}-{port_range[1]}")


def _check_requested(path: str, port: Any, used: set[int], port_range: tuple[int, int]) -> FieldError | None:
    if not isinstance(port, int) or not port_range[0] <= port <= port_range[1]:
        return _range_error(path, port, port_range)
    if port in used:
        return invalid(path, port, "provided port is already allocated")
    return None


def pick_free(used: set[int], port_range: tuple[int, int], rng: random.Random | None = None) -> int | None:
    """A free port: at random above the static band, else the lowest free one of the band."""
    rng = rng or random.Random()
    first, last = port_range
    size = last - first + 1
    band = min(max(16, size // 32), 128) if size > 16 else 0
    dynamic = range(first + band, last + 1)
    for _ in range(64):  # a sparse range: a few random tries find a port
        if dynamic:
            candidate = rng.choice(dynamic)
            if candidate not in used:
                return candidate
    for candidate in (*dynamic, *range(first, first + band)):
        if candidate not in used:
            return candidate
    return None


def allocate_node_ports(spec: Obj, used: set[int], port_range: tuple[int, int],
                        rng: random.Random | None = None) -> list[FieldError]:
    """Check the requested node ports of ``spec`` and fill in the missing ones, in place.

    ``used``: the ports other Services hold (this one's own are not in it). Returns the
    errors of a 422; on errors ``spec`` may be half filled (the request fails anyway).
    """
    errs: list[FieldError] = []
    if not takes_node_ports(spec):
        return _stray_health_check(spec)
    taken = set(used)
    by_number: dict[Any, int] = {}  # service port number -> the node port its ports share
    for i, port in enumerate(_ports(spec)):
        wanted = port.get("nodePort")
        if not wanted:
            continue
        if by_number.get(port.get("port")) == wanted:
            continue  # the same port number's other protocol
        problem = _check_requested(f"spec.ports[{i}].nodePort", wanted, taken, port_range)
        if problem is not None:
            errs.append(problem)
            continue
        taken.add(wanted)
        by_number.setdefault(port.get("port"), wanted)
    if allocates_node_ports(spec) and any(not p.get("nodePort") for p in _ports(spec)):
        for i, port in enumerate(_writable_ports(spec)):
            if port.get("nodePort"):
                continue
            shared = by_number.get(port.get("port"))
            chosen = shared if shared is not None else pick_free(taken, port_range, rng)
            if chosen is None:
                errs.append(invalid(f"spec.ports[{i}].nodePort", 0, "failed to allocate a nodePort: range is full"))
                continue
            port["nodePort"] = chosen
            taken.add(chosen)
            by_number.setdefault(port.get("port"), chosen)
    return errs + _health_check_port(spec, taken, port_range, rng)


def _writable_ports(spec: Obj) -> list[Obj]:
    """``spec``'s ports, copied first: an update's ports may be the stored object's (a merge
    patch that left them alone shares them), which must never change in place."""
    ports = [dict(p) if isinstance(p, dict) else p for p in spec.get("ports") or []]
    spec["ports"] = ports
    return [p for p in ports if isinstance(p, dict)]


def _stray_health_check(spec: Obj) -> list[FieldError]:
    health = spec.get("healthCheckNodePort")
    if health and not needs_health_check_port(spec):
        return [invalid("spec.healthCheckNodePort", health,
                        "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")]
    return []


def _health_check_port(spec: Obj, taken: set[int], port_range: tuple[int, int],
                       rng: random.Random | None) -> list[FieldError]:
    if not needs_health_check_port(spec):
        return _stray_health_check(spec)
    wanted = spec.get("healthCheckNodePort")
    if wanted:
        problem = _check_requested("spec.healthCheckNodePort", wanted, taken, port_range)
        return [problem] if problem is not None else []
    chosen = pick_free(taken, port_range, rng)
    if chosen is None:
        return [invalid("spec.healthCheckNodePort", 0, "failed to allocate a nodePort: range is full")]
    spec["healthCheckNodePort"] = chosen
    return []


def keep_node_ports(new: Obj, old: Obj) -> None:
    """What an update of a Service does to its node ports before they are allocated, in place.

    A change to a type without node ports that leaves the numbers as they were drops them
    (and the health check port); an update that keeps node ports but leaves one out gets
    the old one of the port with the same name, unless another port now has it.
    """
    new_spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return
    new_ports, old_ports = _ports(new_spec), _ports(old_spec)
    if takes_node_ports(old_spec) and not takes_node_ports(new_spec) and _same_node_ports(new_ports, old_ports) \
            and any(p.get("nodePort") for p in new_ports):
        for port in _writable_ports(new_spec):
            port.pop("nodePort", None)
    if needs_health_check_port(old_spec) and not needs_health_check_port(new_spec) \
            and new_spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
        new_spec.pop("healthCheckNodePort", None)
    if takes_node_ports(old_spec) and takes_node_ports(new_spec):
        in_both = {p.get("nodePort") for p in new_ports} & {p.get("nodePort") for p in old_ports}
        by_name = {p.get("name") or "": p.get("nodePort") for p in old_ports}
        if any(not p.get("nodePort") and by_name.get(p.get("name") or "") for p in new_ports):
            for port in _writable_ports(new_spec):
                kept = by_name.get(port.get("name") or "")
                if not port.get("nodePort") and kept and kept not in in_both:
                    port["nodePort"] = kept
    if needs_health_check_port(old_spec) and needs_health_check_port(new_spec) and not new_spec.get("healthCheckNodePort"):
        if old_spec.get("healthCheckNodePort"):
            new_spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _same_node_ports(new_ports: list[Obj], old_ports: list[Obj]) -> bool:
    if len(new_ports) != len(old_ports):
        return False
    return all((n.get("nodePort") or 0) == (o.get("nodePort") or 0) for n, o in zip(new_ports, old_ports, strict=True))
