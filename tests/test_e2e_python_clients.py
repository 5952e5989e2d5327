"""The Python client libraries people use, unchanged, against podlife (issue 4).

Each test drives a real ``podlife up`` with the library the way its users do: the
official ``kubernetes`` client (typed and dynamic APIs, watch, patch flavours, logs,
exec), ``lightkube`` and ``kr8s``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e

SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.2; done"]


# ---- kubernetes (the official client) -------------------------------------------------------


@pytest.fixture(scope="module")
def k8s(cluster: PodlifeProcess):
    kubernetes = pytest.importorskip("kubernetes")
    return kubernetes.config.new_client_from_config(str(cluster.kubeconfig))


def test_official_client_crud_watch_and_patches(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(k8s)
    assert client.VersionApi(k8s).get_code().minor == "32"
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm", "labels": {"py": "yes"}},
                                                       "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.resource_version
    core.patch_namespaced_config_map("py-cm", "default", {"data": {"b": "2"}})  # strategic merge
    core.patch_namespaced_config_map("py-cm", "default", [{"op": "add", "path": "/data/c", "value": "3"}])  # json patch
    assert core.read_namespaced_config_map("py-cm", "default").data == {"a": "1", "b": "2", "c": "3"}
    names = [i.metadata.name for i in core.list_namespaced_config_map("default", label_selector="py=yes").items]
    assert names == ["py-cm"]
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "default", label_selector="py=yes", timeout_seconds=2):
        seen.append((ev["type"], ev["object"].metadata.name))
    assert ("ADDED", "py-cm") in seen
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}})
    assert err.value.status == 409
    core.delete_namespaced_config_map("py-cm", "default")
    events = core.list_namespaced_event("default")  # pydantic-validated: involvedObject must be present
    assert all(e.involved_object is not None for e in events.items)


def test_official_client_pod_logs_and_exec(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod("default", {"metadata": {"name": "py-pod"},
                                           "spec": {"containers": [{"name": "c", "image": "busybox", "command": SLEEPER}]}})
    wait_for(lambda: core.read_namespaced_pod("py-pod", "default").status.phase == "Running", 60, what="py-pod Running")
    wait_for(lambda: "ready" in core.read_namespaced_pod_log("py-pod", "default"), 30, what="log")
    try:
        out = stream(core.connect_get_namespaced_pod_exec, "py-pod", "default", command=["echo", "from-exec"],
                     stderr=True, stdin=False, stdout=True, tty=False)
        assert "from-exec" in out
    except (client.ApiException, ValueError) as exc:  # exec needs the streaming subresource
        pytest.fail(f"exec failed: {exc}")
    finally:
        core.delete_namespaced_pod("py-pod", "default", grace_period_seconds=1)


def test_official_dynamic_client_and_server_side_apply(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(k8s)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "py-deploy", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "py"}},
                     "template": {"metadata": {"labels": {"app": "py"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    created = deployments.create(body=body, namespace="default")
    assert created.spec.replicas == 2 and created.metadata.generation == 1
    listed = deployments.get(namespace="default")
    assert "py-deploy" in [d.metadata.name for d in listed.items]
    deployments.delete(name="py-deploy", namespace="default")


# ---- lightkube ------------------------------------------------------------------------------


def test_lightkube(cluster: PodlifeProcess) -> None:
    pytest.importorskip("lightkube")
    from lightkube import Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap, Namespace
    from lightkube.types import PatchType

    lk = Client(KubeConfig.from_file(str(cluster.kubeconfig)))
    assert "default" in [ns.metadata.name for ns in lk.list(Namespace)]
    lk.create(ConfigMap(metadata=ObjectMeta(name="lk-cm"), data={"k": "v"}), namespace="default")
    lk.patch(ConfigMap, "lk-cm", {"data": {"k2": "v2"}}, namespace="default", patch_type=PatchType.MERGE)
    assert lk.get(ConfigMap, "lk-cm", namespace="default").data == {"k": "v", "k2": "v2"}
    applied = lk.apply(ConfigMap(metadata=ObjectMeta(name="lk-applied"), data={"x": "1"}), namespace="default",
                       field_manager="lightkube-test")
    assert applied.data == {"x": "1"}
    events = []
    for op, obj in lk.watch(ConfigMap, namespace="default"):  # replays existing objects as ADDED first
        events.append((op, obj.metadata.name))
        if ("ADDED", "lk-cm") in events:
            break
    assert ("ADDED", "lk-cm") in events
    lk.delete(ConfigMap, "lk-cm", namespace="default")
    lk.delete(ConfigMap, "lk-applied", namespace="default")


# ---- kr8s ---------------------------------------------------------------------------------


def test_kr8s(cluster: PodlifeProcess) -> None:
    pytest.importorskip("kr8s")
    import kr8s.asyncio
    from kr8s.asyncio.objects import ConfigMap, Pod

    async def scenario() -> None:
        api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
        version = await api.version()
        assert version["minor"] == "32"
        cm = await ConfigMap({"metadata": {"name": "kr8s-cm", "namespace": "default"}, "data": {"a": "b"}}, api=api)
        await cm.create()
        await cm.label({"kr8s": "yes"})
        found = [c.name async for c in api.get("configmaps", namespace="default", label_selector="kr8s=yes")]
        assert found == ["kr8s-cm"]
        await cm.delete()
        pod = await Pod({"metadata": {"name": "kr8s-pod", "namespace": "default"},
                         "spec": {"containers": [{"name": "c", "image": "busybox", "command": SLEEPER}]}}, api=api)
        await pod.create()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await pod.refresh()
            if pod.status.get("phase") == "Running":
                break
            await asyncio.sleep(0.2)
        assert pod.status.get("phase") == "Running"
        result = await pod.exec(["echo", "kr8s-exec"])
        assert b"kr8s-exec" in result.stdout
        await pod.delete(grace_period=1)

    asyncio.run(scenario())
