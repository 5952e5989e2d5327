"""Service environment variables, as the kubelet gives every container (``pkg/kubelet/envvars``).

Design
------
Pure functions over Service objects; reading them is the caller's
(:class:`~podlife.kubelet.environment.EnvResolver`).

* Which Services: those of the pod's namespace when ``enableServiceLinks`` is true (the
  default), and always the master Service, ``kubernetes`` in ``default`` -- a Service of the
  pod's namespace with the same name takes its place. Services without a ClusterIP
  (headless ``None``, ExternalName) give no variables.
* Which variables, for a Service ``my-svc`` (name upper-cased, ``-`` -> ``_``):
  ``MY_SVC_SERVICE_HOST`` (the ClusterIP), ``MY_SVC_SERVICE_PORT`` (the first port),
  ``MY_SVC_SERVICE_PORT_<PORTNAME>`` per named port, and the Docker links ones:
  ``MY_SVC_PORT`` (``tcp://ip:port`` of the first port) and per port
  ``MY_SVC_PORT_<port>_<PROTO>`` with ``_PROTO``, ``_PORT``, ``_ADDR``.

The resolver lets the container's own variables win over these and lets ``$(VAR)``
refer to them (the kubelet's ``makeEnvironmentVariables``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MASTER_SERVICE", "MASTER_SERVICE_NAMESPACE", "linked_services", "service_env", "services_env"]

Obj = dict[str, Any]

#: the master Service every pod gets variables for (the kubelet's ``masterServices``)
MASTER_SERVICE = "kubernetes"
MASTER_SERVICE_NAMESPACE = "default"


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _cluster_ip(service: Obj) -> str:
    """The Service's ClusterIP, or "" when it has none (headless, ExternalName)."""
    ip = str((service.get("spec") or {}).get("clusterIP") or "")
    return "" if ip == "None" else ip


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_env(service: Obj) -> dict[str, str]:
    """The variables of one Service (none without a ClusterIP or ports)."""
    ip = _cluster_ip(service)
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    if not ip or not ports:
        return {}
    prefix = _env_name(str((service.get("metadata") or {}).get("name") or ""))
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(int(ports[0].get("port") or 0))}
    for port in ports:
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{_env_name(str(port['name']))}"] = str(int(port.get("port") or 0))
    for index, port in enumerate(ports):
        number = int(port.get("port") or 0)
        protocol = str(port.get("protocol") or "TCP")
        url = f"{protocol.lower()}://{_host_port(ip, number)}"
        if index == 0:
            env[f"{prefix}_PORT"] = url  # Docker special-cases the first port
        port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
        env.update({port_prefix: url, f"{port_prefix}_PROTO": protocol.lower(), f"{port_prefix}_PORT": str(number),
                    f"{port_prefix}_ADDR": ip})
    return env


def linked_services(namespace: str, services: Iterable[Obj], enable_service_links: bool = True) -> list[Obj]:
    """The Services a pod of ``namespace`` gets variables for, by name (its namespace's win)."""
    chosen: dict[str, Obj] = {}
    for service in services:
        if not _cluster_ip(service):
            continue
        meta = service.get("metadata") or {}
        name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        if ns == namespace and enable_service_links:
            chosen[name] = service
        elif ns == MASTER_SERVICE_NAMESPACE and name == MASTER_SERVICE:
            chosen.setdefault(name, service)
    return [chosen[name] for name in sorted(chosen)]


def services_env(namespace: str, services: Iterable[Obj], enable_service_links: bool = True) -> dict[str, str]:
    """All service variables of a pod of ``namespace``, given the Services it may see."""
    env: dict[str, str] = {}
    for service in linked_services(namespace, services, enable_service_links):
        env.update(service_env(service))
    return env
