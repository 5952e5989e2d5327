"""Service environment variables (podlife.kubelet.service_env) and how the resolver adds them.

The pure part is table cases; the resolver's part runs against the in-process API (real
Services, the ``kubernetes`` Service the API server makes) and checks the order of
Kubernetes' ``makeEnvironmentVariables``: the container's variables win, ``$(VAR)`` sees
service variables, and the Services are listed once per pod, not per container.
"""

from __future__ import annotations

from typing import Any

import pytest

from podlife.client.base import NAMESPACES, SERVICES
from podlife.kubelet.environment import EnvResolver, ServiceSnapshots
from podlife.kubelet.service_env import linked_services, service_env, services_env

from .in_process import InProcessApi


def svc(name: str, namespace: str, ip: str, *ports: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": ip, "ports": list(ports)}}


MASTER = svc("kubernetes", "default", "10.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"})


def test_master_service_variables() -> None:
    assert service_env(MASTER) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }


def test_several_ports_names_and_protocols() -> None:
    env = service_env(svc("my-db", "team", "10.96.0.20", {"port": 5432},
                          {"name": "metrics-udp", "port": 9000, "protocol": "UDP"}))
    assert env == {
        "MY_DB_SERVICE_HOST": "10.96.0.20",
        "MY_DB_SERVICE_PORT": "5432",  # the first port, unnamed
        "MY_DB_SERVICE_PORT_METRICS_UDP": "9000",
        "MY_DB_PORT": "tcp://10.96.0.20:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.96.0.20:5432",
        "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432",
        "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.20",
        "MY_DB_PORT_9000_UDP": "udp://10.96.0.20:9000",
        "MY_DB_PORT_9000_UDP_PROTO": "udp",
        "MY_DB_PORT_9000_UDP_PORT": "9000",
        "MY_DB_PORT_9000_UDP_ADDR": "10.96.0.20",
    }


def test_ipv6_cluster_ip_is_bracketed() -> None:
    env = service_env(svc("v6", "team", "fd00::10", {"port": 80}))
    assert env["V6_PORT"] == "tcp://[fd00::10]:80" and env["V6_PORT_80_TCP_ADDR"] == "fd00::10"


@pytest.mark.parametrize("ip", ["None", "", None])
def test_no_cluster_ip_no_variables(ip: str | None) -> None:
    assert service_env(svc("headless", "team", ip, {"port": 80})) == {}  # type: ignore[arg-type]


SERVICES_SEEN = [
    MASTER,
    svc("web", "team", "10.96.0.30", {"port": 80}),
    svc("headless", "team", "None", {"port": 80}),
    svc("other", "elsewhere", "10.96.0.31", {"port": 80}),
    svc("db", "default", "10.96.0.32", {"port": 5432}),
]


@pytest.mark.parametrize(("namespace", "links", "names"), [
    ("team", True, ["kubernetes", "web"]),
    ("team", False, ["kubernetes"]),
    ("default", True, ["db", "kubernetes"]),
    ("default", False, ["kubernetes"]),
])
def test_which_services(namespace: str, links: bool, names: list[str]) -> None:
    chosen = linked_services(namespace, SERVICES_SEEN, links)
    assert [s["metadata"]["name"] for s in chosen] == names


def test_a_namespace_service_named_kubernetes_takes_the_masters_place() -> None:
    own = svc("kubernetes", "team", "10.96.0.40", {"port": 8080})
    for order in ([MASTER, own], [own, MASTER]):
        assert services_env("team", order)["KUBERNETES_SERVICE_HOST"] == "10.96.0.40"
    assert services_env("team", [MASTER, own], enable_service_links=False)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


# ---------------------------------------------------------------------- the resolver


async def _namespace_with_service(api: InProcessApi, ns: str) -> None:
    await api.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await api.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-front"},
                                       "spec": {"ports": [{"name": "http", "port": 8080}]}}, ns)


def _pod(ns: str, uid: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns, "uid": uid}, "spec": {"containers": [], **spec}}


async def test_resolver_adds_service_variables_after_the_containers_own(local_api: InProcessApi) -> None:
    await _namespace_with_service(local_api, "team")
    web = await local_api.client.get(SERVICES, "web-front", "team")
    ip = web["spec"]["clusterIP"]
    resolver = EnvResolver(local_api.client, _pod("team", "u1"), host_ip="127.0.0.1", pod_ips=("10.244.0.5",),
                           services=ServiceSnapshots())
    env = await resolver.resolve({"name": "c", "env": [
        {"name": "WEB_FRONT_SERVICE_PORT", "value": "mine"},  # the container's own wins
        {"name": "URL", "value": "http://$(WEB_FRONT_SERVICE_HOST):$(WEB_FRONT_SERVICE_PORT_HTTP)/"},
        {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
    ]})
    assert env["WEB_FRONT_SERVICE_HOST"] == ip
    assert env["WEB_FRONT_SERVICE_PORT"] == "mine"
    assert env["URL"] == f"http://{ip}:8080/"
    assert env["API"] == "10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    names = list(env)
    assert names.index("API") < names.index("WEB_FRONT_SERVICE_HOST")  # the container's variables first


async def test_enable_service_links_false_gives_only_the_master_service(local_api: InProcessApi) -> None:
    await _namespace_with_service(local_api, "team")
    resolver = EnvResolver(local_api.client, _pod("team", "u2", enableServiceLinks=False), host_ip="127.0.0.1",
                           pod_ips=(), services=ServiceSnapshots())
    env = await resolver.resolve({"name": "c"})
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(name.startswith("WEB_FRONT_") for name in env)


async def test_services_are_listed_once_per_pod_start(local_api: InProcessApi) -> None:
    await _namespace_with_service(local_api, "team")
    snapshots = ServiceSnapshots()
    pod = _pod("team", "u3")
    first = await EnvResolver(local_api.client, pod, host_ip="", pod_ips=(), services=snapshots).resolve({})
    await local_api.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late"},
                                             "spec": {"ports": [{"port": 81}]}}, "team")
    second = await EnvResolver(local_api.client, pod, host_ip="", pod_ips=(), services=snapshots).resolve({})
    assert "LATE_SERVICE_HOST" not in second and second == first  # the pod's next container: the same list
    other = await EnvResolver(local_api.client, _pod("team", "u4"), host_ip="", pod_ips=(),
                              services=snapshots).resolve({})
    assert "LATE_SERVICE_HOST" in other  # a new pod lists again
    snapshots.ttl = 0.0
    third = await EnvResolver(local_api.client, pod, host_ip="", pod_ips=(), services=snapshots).resolve({})
    assert "LATE_SERVICE_HOST" in third  # later (a restart) sees the Services of then
