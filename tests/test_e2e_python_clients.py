"""The Python client libraries people use, unchanged, against podlife (issues 4 and 8).

Each test drives a real ``podlife up`` with a library the way its users do:

- the official ``kubernetes`` client (37.x): typed and dynamic APIs, ``watch.Watch``,
  the ``SharedInformer`` (list + watch + resync), ``utils.create_from_yaml`` of a
  multi-document file, interactive exec, port-forward, logs that follow;
- ``lightkube`` (1.x with ``lightkube-models`` 1.37), sync and async clients;
- ``kr8s`` (async and sync APIs);
- ``kopf``: an operator for a built-in kind (the CRD operator is in ``test_e2e_crds.py``).

The 36.x official client runs in a virtualenv of its own: ``test_e2e_clients_compat.py``.
One pod (``client_workloads.py``) serves the logs-follow, exec and port-forward tests
of every library.
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from podlife.machinery.constants import KUBERNETES_MINOR

from .client_workloads import (KOPF_FINALIZER, MULTI_DOC, KopfOperator, StreamingPod, assert_multi_doc_created,
                               delete_streaming_pod, http_get_over, multi_doc, start_streaming_pod)
from .cluster_harness import PodlifeProcess, require_module, wait_for

pytestmark = pytest.mark.e2e

SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.2; done"]


@pytest.fixture(scope="module")
def streaming_pod(cluster: PodlifeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamingPod]:
    pod = start_streaming_pod(cluster, tmp_path_factory.mktemp("streaming-pod"))
    yield pod
    delete_streaming_pod(cluster, pod)


# ---- kubernetes (the official client) -------------------------------------------------------


@pytest.fixture(scope="module")
def k8s(cluster: PodlifeProcess):
    kubernetes = require_module("kubernetes")
    return kubernetes.config.new_client_from_config(str(cluster.kubeconfig))


def test_official_client_crud_watch_and_patches(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(k8s)
    assert client.VersionApi(k8s).get_code().minor == KUBERNETES_MINOR
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
    assert seen == [("ADDED", "py-cm")]
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}})
    assert err.value.status == 409
    core.delete_namespaced_config_map("py-cm", "default")
    events = core.list_namespaced_event("default")  # pydantic-validated: involvedObject must be present
    assert all(e.involved_object is not None for e in events.items)


def test_official_watch_from_a_resource_version_sees_exactly_the_changes(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map("default", {"metadata": {"name": "w-a", "labels": {"w": "exact"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w-b", "labels": {"w": "exact"}}})
    core.patch_namespaced_config_map("w-b", "default", {"data": {"k": "v"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "w-other", "labels": {"w": "other"}}})
    core.delete_collection_namespaced_config_map("default", label_selector="w=exact")
    seen = []
    w = watch.Watch()
    started = time.monotonic()
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5,
                       label_selector="w=exact"):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 4:
            w.stop()
    assert seen == [("ADDED", "w-b"), ("MODIFIED", "w-b"), ("DELETED", "w-a"), ("DELETED", "w-b")]
    assert time.monotonic() - started < 4, "the events come as they are, not at the timeout"
    assert int(w.resource_version) > int(rv)
    core.delete_namespaced_config_map("w-other", "default")


def test_official_watch_streaming_list_and_bookmarks(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "py-streaming"}})
    core.create_namespaced_config_map("py-streaming", {"metadata": {"name": "s1", "labels": {"py": "streaming"}}})
    events = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "py-streaming", label_selector="py=streaming", send_initial_events=True,
                       resource_version_match="NotOlderThan", allow_watch_bookmarks=True, timeout_seconds=5):
        events.append(ev)
        if ev["type"] == "BOOKMARK":
            w.stop()
    assert [(e["type"], e["raw_object"]["metadata"].get("name")) for e in events] == [("ADDED", "s1"), ("BOOKMARK", None)]
    end = events[1]["raw_object"]
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert w.resource_version == end["metadata"]["resourceVersion"]  # the client resumes from the bookmark
    core.delete_namespace("py-streaming")


def test_official_shared_informer_lists_watches_and_resyncs(cluster: PodlifeProcess, k8s) -> None:
    from kubernetes import client
    from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer

    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "py-informer"}})
    mine = {"labels": {"py": "informer"}}  # (not the namespace's kube-root-ca.crt)
    core.create_namespaced_config_map("py-informer", {"metadata": {"name": "before", **mine}})
    events: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def record(kind: str):
        def handler(obj: Any) -> None:
            with lock:
                events.append((kind, obj.metadata.name, obj.metadata.resource_version))
        return handler

    def happened(kind: str, name: str) -> list[str]:
        with lock:
            return [rv for k, n, rv in events if (k, n) == (kind, name)]

    informer = SharedInformer(core.list_namespaced_config_map, namespace="py-informer", label_selector="py=informer",
                              resync_period=1)
    for kind in (ADDED, MODIFIED, DELETED):
        informer.add_event_handler(kind, record(kind))
    informer.start()
    try:
        wait_for(lambda: happened(ADDED, "before"), 30, what="the informer's list")
        core.create_namespaced_config_map("py-informer", {"metadata": {"name": "live", **mine}})
        wait_for(lambda: happened(ADDED, "live"), 30, what="ADDED from the informer's watch")
        patched = core.patch_namespaced_config_map("live", "py-informer", {"data": {"k": "v"}})
        wait_for(lambda: patched.metadata.resource_version in happened(MODIFIED, "live"), 30, what="MODIFIED")
        core.delete_namespaced_config_map("before", "py-informer")
        wait_for(lambda: happened(DELETED, "before"), 30, what="DELETED")
        # a resync hands the unchanged object to the handlers again
        wait_for(lambda: happened(MODIFIED, "live").count(patched.metadata.resource_version) >= 2, 30,
                 what="a resync")
        assert informer.cache.list_keys() == ["py-informer/live"]
        assert informer.cache.get_by_key("py-informer/live").data == {"k": "v"}
    finally:
        informer.stop()
        core.delete_namespace("py-informer")


def test_official_create_from_yaml_multi_document(cluster: PodlifeProcess, k8s, tmp_path: Path) -> None:
    from kubernetes import client, utils

    manifest = tmp_path / "app.yaml"
    manifest.write_text(multi_doc("py-yaml", api_service=True))
    created = utils.create_from_yaml(k8s, str(manifest))
    kinds = [obj.kind for group in created for obj in group]
    assert kinds == ["Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service", "APIService"]
    assert_multi_doc_created(cluster, "py-yaml")
    registration = client.ApiregistrationV1Api(k8s)
    assert registration.read_api_service("v1beta1.py-yaml.example.com").spec.group == "py-yaml.example.com"
    registration.delete_api_service("v1beta1.py-yaml.example.com")
    # again with server-side apply: the same file applies cleanly over what exists (the client sends
    # ``namespace`` with every object, so it must be the file's, as with a real API server)
    applied = utils.create_from_yaml(k8s, str(manifest), apply=True, namespace="py-yaml")
    assert len([obj for group in applied for obj in group]) == 7
    registration.delete_api_service("v1beta1.py-yaml.example.com")
    with pytest.raises(utils.FailToCreateError) as err:  # and plain create reports what exists
        utils.create_from_yaml(k8s, yaml_objects=[yaml.safe_load(MULTI_DOC.format(ns="py-yaml").split("---")[2])])
    assert err.value.api_exceptions[0].status == 409


def test_official_client_pod_logs_and_exec(cluster: PodlifeProcess, k8s, streaming_pod: StreamingPod) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(k8s)
    assert "ready" in core.read_namespaced_pod_log(streaming_pod.name, "default", container="log")
    out = stream(core.connect_get_namespaced_pod_exec, streaming_pod.name, "default", container="log",
                 command=["echo", "from-exec"], stderr=True, stdin=False, stdout=True, tty=False)
    assert "from-exec" in out


def test_official_logs_follow_streams_lines_as_written(k8s, streaming_pod: StreamingPod) -> None:
    from kubernetes import client

    core = client.CoreV1Api(k8s)
    resp = core.read_namespaced_pod_log(streaming_pod.name, "default", container="log", follow=True,
                                        _preload_content=False)
    try:
        lines = (line.decode() for line in resp.stream(amt=None) for line in line.splitlines())
        assert next(lines) == "ready"
        expected = streaming_pod.gate("official")  # written only now, while the stream is open
        assert expected in lines
    finally:
        resp.close()


def test_official_interactive_exec(k8s, streaming_pod: StreamingPod) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(k8s)
    ws = stream(core.connect_get_namespaced_pod_exec, streaming_pod.name, "default", container="log",
                command=["/bin/sh"], stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    try:
        ws.write_stdin("echo one\n")
        assert ws.readline_stdout(timeout=10) == "one"
        ws.write_stdin("echo two >&2\n")
        assert ws.readline_stderr(timeout=10) == "two"
        ws.write_stdin("echo three\n")
        assert ws.readline_stdout(timeout=10) == "three"
        assert ws.is_open()
        ws.close_channel(0)  # v5: closing stdin ends the shell
        ws.run_forever(timeout=10)
        assert ws.returncode == 0
    finally:
        ws.close()
    ws = stream(core.connect_get_namespaced_pod_exec, streaming_pod.name, "default", container="log",
                command=["/bin/sh"], stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    try:
        ws.write_stdin("exit 3\n")
        ws.run_forever(timeout=10)
        assert ws.returncode == 3
    finally:
        ws.close()


def test_official_portforward(k8s, streaming_pod: StreamingPod) -> None:
    from kubernetes import client
    from kubernetes.stream import portforward

    core = client.CoreV1Api(k8s)
    pf = portforward(core.connect_get_namespaced_pod_portforward, streaming_pod.name, "default",
                     ports=str(streaming_pod.web_port))
    try:
        sock = pf.socket(streaming_pod.web_port)
        sock.setblocking(True)
        sock.settimeout(10)
        reply = http_get_over(sock)
        sock.close()
        assert reply.startswith(b"HTTP/1.0 200") and streaming_pod.served.encode() in reply
        assert pf.error(streaming_pod.web_port) is None
    finally:
        pf.close()


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
    body["spec"]["replicas"] = 0
    applied = deployments.server_side_apply(body=body, namespace="default", field_manager="py-test", force_conflicts=True)
    assert applied.spec.replicas == 0
    seen = []  # the Deployment controller's status writes may come first; the apply's change comes
    for ev in deployments.watch(namespace="default", resource_version=created.metadata.resourceVersion, timeout=5):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].spec.replicas))
        if ev["object"].spec.replicas == 0:
            break
    assert seen[-1] == ("MODIFIED", "py-deploy", 0) and {(t, n) for t, n, _ in seen} == {("MODIFIED", "py-deploy")}
    deployments.delete(name="py-deploy", namespace="default")


def test_official_asyncio_client(cluster: PodlifeProcess, streaming_pod: StreamingPod) -> None:
    """``kubernetes.aio`` (shipped with the official client since 36): CRUD, watch, exec."""
    require_module("kubernetes.aio")
    from kubernetes.aio import client as aclient, config as aconfig, watch as awatch
    from kubernetes.aio.stream import WsApiClient

    async def scenario() -> None:
        api = await aconfig.new_client_from_config(str(cluster.kubeconfig))
        async with api:
            core = aclient.CoreV1Api(api)
            await core.create_namespaced_config_map("default", {"metadata": {"name": "aio-cm", "labels": {"aio": "yes"}}})
            rv = (await core.list_namespaced_config_map("default", label_selector="aio=yes")).metadata.resource_version
            await core.patch_namespaced_config_map("aio-cm", "default", {"data": {"a": "1"}})
            await core.delete_namespaced_config_map("aio-cm", "default")
            seen = []
            async with awatch.Watch() as w:
                async for ev in w.stream(core.list_namespaced_config_map, "default", label_selector="aio=yes",
                                         resource_version=rv, timeout_seconds=5):
                    seen.append((ev["type"], ev["object"].metadata.name))
                    if len(seen) == 2:
                        break
            assert seen == [("MODIFIED", "aio-cm"), ("DELETED", "aio-cm")]
            async with WsApiClient(configuration=api.configuration) as ws:
                out = await aclient.CoreV1Api(api_client=ws).connect_get_namespaced_pod_exec(
                    streaming_pod.name, "default", container="log", command=["echo", "aio-exec"],
                    stderr=True, stdin=False, stdout=True, tty=False)
            assert out == "aio-exec\n"

    asyncio.run(asyncio.wait_for(scenario(), 60))


# ---- lightkube ------------------------------------------------------------------------------


def test_lightkube(cluster: PodlifeProcess) -> None:
    require_module("lightkube")
    from lightkube import Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap, Namespace
    from lightkube.types import PatchType

    lk = Client(KubeConfig.from_file(str(cluster.kubeconfig)))
    assert "default" in [ns.metadata.name for ns in lk.list(Namespace)]
    lk.create(ConfigMap(metadata=ObjectMeta(name="lk-cm", labels={"lk": "yes"}), data={"k": "v"}), namespace="default")
    lk.patch(ConfigMap, "lk-cm", {"data": {"k2": "v2"}}, namespace="default", patch_type=PatchType.MERGE)
    assert lk.get(ConfigMap, "lk-cm", namespace="default").data == {"k": "v", "k2": "v2"}
    applied = lk.apply(ConfigMap(metadata=ObjectMeta(name="lk-applied", labels={"lk": "yes"}), data={"x": "1"}),
                       namespace="default", field_manager="lightkube-test")
    assert applied.data == {"x": "1"}
    events = []
    for op, obj in lk.watch(ConfigMap, namespace="default", labels={"lk": "yes"}):  # replays existing objects first
        events.append((op, obj.metadata.name))
        if len(events) == 2:
            break
    assert sorted(events) == [("ADDED", "lk-applied"), ("ADDED", "lk-cm")]
    listing = lk.list(ConfigMap, namespace="default", labels={"lk": "yes"})
    assert sorted(c.metadata.name for c in listing) == ["lk-applied", "lk-cm"]
    rv = listing.resourceVersion
    lk.patch(ConfigMap, "lk-cm", {"data": {"k3": "v3"}}, namespace="default", patch_type=PatchType.MERGE)
    lk.delete(ConfigMap, "lk-applied", namespace="default")
    changes = []
    for op, obj in lk.watch(ConfigMap, namespace="default", labels={"lk": "yes"}, resource_version=rv):
        changes.append((op, obj.metadata.name))
        if len(changes) == 2:
            break
    assert changes == [("MODIFIED", "lk-cm"), ("DELETED", "lk-applied")]
    lk.delete(ConfigMap, "lk-cm", namespace="default")


def test_lightkube_load_all_yaml_logs_follow_and_exec(cluster: PodlifeProcess, streaming_pod: StreamingPod) -> None:
    require_module("lightkube")
    from lightkube import Client, KubeConfig, codecs

    from lightkube.resources.apiregistration_v1 import APIService

    lk = Client(KubeConfig.from_file(str(cluster.kubeconfig)))
    objects = codecs.load_all_yaml(multi_doc("lk-yaml", api_service=True))
    assert [type(o).__name__ for o in objects][-1] == "APIService"
    for obj in objects:
        lk.create(obj)
    assert_multi_doc_created(cluster, "lk-yaml")
    assert lk.get(APIService, "v1beta1.lk-yaml.example.com").spec.group == "lk-yaml.example.com"
    lk.delete(APIService, "v1beta1.lk-yaml.example.com")
    lines = lk.log(streaming_pod.name, namespace="default", container="log", follow=True, newlines=False)
    assert next(lines) == "ready"
    expected = streaming_pod.gate("lightkube")
    assert expected in lines
    lines.close()
    result = lk.exec(streaming_pod.name, namespace="default", container="log", command=["sh", "-c", "echo out; echo err >&2; exit 4"],
                     stdout=True, stderr=True)
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 4)
    fed = lk.exec(streaming_pod.name, namespace="default", container="log", command=["cat"], stdin="fed through stdin",
                  stdout=True)
    assert fed.stdout == "fed through stdin"


def test_lightkube_async_client(cluster: PodlifeProcess, streaming_pod: StreamingPod) -> None:
    require_module("lightkube")
    from lightkube import AsyncClient, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap
    from lightkube.types import PatchType

    async def scenario() -> None:
        lk = AsyncClient(KubeConfig.from_file(str(cluster.kubeconfig)))
        try:
            await lk.create(ConfigMap(metadata=ObjectMeta(name="alk-cm", labels={"alk": "yes"})), namespace="default")
            listing = lk.list(ConfigMap, namespace="default", labels={"alk": "yes"})
            assert [c.metadata.name async for c in listing] == ["alk-cm"]
            rv = listing.resourceVersion
            await lk.patch(ConfigMap, "alk-cm", {"data": {"a": "1"}}, namespace="default", patch_type=PatchType.MERGE)
            await lk.apply(ConfigMap(metadata=ObjectMeta(name="alk-cm", labels={"alk": "yes"}), data={"a": "2"}),
                           namespace="default", field_manager="alk", force=True)
            seen = []
            async for op, obj in lk.watch(ConfigMap, namespace="default", labels={"alk": "yes"}, resource_version=rv):
                seen.append((op, (obj.data or {}).get("a")))
                if len(seen) == 2:
                    break
            assert seen == [("MODIFIED", "1"), ("MODIFIED", "2")]
            lines = lk.log(streaming_pod.name, namespace="default", container="log", follow=True, newlines=False)
            assert await lines.__anext__() == "ready"
            expected = streaming_pod.gate("lightkube-async")
            async for line in lines:
                if line == expected:
                    break
            await lines.aclose()
            await lk.delete(ConfigMap, "alk-cm", namespace="default")
        finally:
            await lk.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


# ---- kr8s ---------------------------------------------------------------------------------


def test_kr8s(cluster: PodlifeProcess) -> None:
    require_module("kr8s")
    import kr8s.asyncio
    from kr8s.asyncio.objects import ConfigMap, Pod

    async def scenario() -> None:
        api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
        version = await api.version()
        assert version["minor"] == KUBERNETES_MINOR
        cm = await ConfigMap({"metadata": {"name": "kr8s-cm", "namespace": "default"}, "data": {"a": "b"}}, api=api)
        await cm.create()
        await cm.label({"kr8s": "yes"})
        found = [c.name async for c in api.get("configmaps", namespace="default", label_selector="kr8s=yes")]
        assert found == ["kr8s-cm"]
        rv = cm.metadata.resourceVersion
        await cm.patch({"data": {"a": "c"}})
        await cm.delete()
        seen = []
        async for op, obj in api.watch("configmaps", namespace="default", label_selector="kr8s=yes", since=rv):
            seen.append((op, obj.name))
            if len(seen) == 2:
                break
        assert seen == [("MODIFIED", "kr8s-cm"), ("DELETED", "kr8s-cm")]
        pod = await Pod({"metadata": {"name": "kr8s-pod", "namespace": "default"},
                         "spec": {"containers": [{"name": "c", "image": "busybox", "command": SLEEPER}]}}, api=api)
        await pod.create()
        await pod.wait("condition=Ready", timeout=60)
        assert pod.status.get("phase") == "Running"
        result = await pod.exec(["echo", "kr8s-exec"])
        assert b"kr8s-exec" in result.stdout
        await pod.delete(grace_period=1)

    asyncio.run(scenario())


def test_kr8s_objects_from_files_logs_exec_and_portforward(cluster: PodlifeProcess, streaming_pod: StreamingPod,
                                                          tmp_path: Path) -> None:
    require_module("kr8s")
    import kr8s.asyncio
    from kr8s.asyncio.objects import Pod, objects_from_files

    manifest = tmp_path / "app.yaml"
    manifest.write_text(multi_doc("kr8s-yaml"))

    async def scenario() -> None:
        api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
        objects = await objects_from_files(manifest, api=api)
        assert [o.kind for o in objects] == ["Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service"]
        for obj in objects:
            await obj.create()
        assert_multi_doc_created(cluster, "kr8s-yaml")
        pod = await Pod.get(streaming_pod.name, namespace="default", api=api)
        lines = pod.logs(container="log", follow=True)
        assert await lines.__anext__() == "ready"
        expected = streaming_pod.gate("kr8s")
        async for line in lines:
            if line == expected:
                break
        await lines.aclose()
        done = await pod.exec(["sh", "-c", "echo out; exit 5"], container="log", check=False)
        assert (done.stdout, done.returncode) == (b"out\n", 5)
        # (kr8s 0.20 offers only v4.channel.k8s.io, and refuses stdin itself unless v5 is agreed)
        reply = await _kr8s_forwarded_get(pod, streaming_pod.web_port, "/index.html")
        assert reply.decode() == streaming_pod.served

    asyncio.run(asyncio.wait_for(scenario(), 90))


async def _kr8s_forwarded_get(pod, port: int, path: str) -> bytes:
    """GET ``path`` through kr8s' port-forward on a local port it picks.

    kr8s finds a free port and binds it later, so a test in the other worker can take it in
    between (EADDRINUSE): that race is kr8s', and a new port is tried, three times at most.
    """
    for attempt in range(3):
        try:
            async with pod.portforward(port, local_port="auto") as local_port:
                return await asyncio.to_thread(lambda: urllib.request.urlopen(
                    f"http://127.0.0.1:{local_port}{path}", timeout=10).read())
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_kr8s_sync_api(cluster: PodlifeProcess) -> None:
    kr8s = require_module("kr8s")
    from kr8s.objects import ConfigMap

    api = kr8s.api(kubeconfig=str(cluster.kubeconfig))
    cm = ConfigMap({"metadata": {"name": "kr8s-sync", "namespace": "default", "labels": {"sync": "yes"}}}, api=api)
    cm.create()
    assert [c.name for c in api.get("configmaps", namespace="default", label_selector="sync=yes")] == ["kr8s-sync"]
    cm.patch({"data": {"x": "y"}})
    cm.refresh()
    assert cm.raw["data"] == {"x": "y"}
    cm.delete()
    assert not cm.exists()


# ---- kopf -----------------------------------------------------------------------------------

@pytest.fixture(params=[False, True], ids=["list-then-watch", "initial-streaming"])
def kopf_operator(request: pytest.FixtureRequest, cluster: PodlifeProcess, tmp_path: Path) -> Iterator[KopfOperator]:
    require_module("kopf")
    namespace = "kopf-streaming" if request.param else "kopf-listing"
    cluster.http("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    operator = KopfOperator.start(cluster, tmp_path, namespace, initial_streaming=request.param, server_timeout=3)
    try:
        yield operator
    finally:
        operator.stop()


def test_kopf_operator_for_a_built_in_kind(cluster: PodlifeProcess, kopf_operator: KopfOperator) -> None:
    """kopf lists (or streams the initial events), watches with bookmarks and re-watches every 3 s."""
    op = kopf_operator
    path = f"/api/v1/namespaces/{op.namespace}/configmaps"
    status, body = cluster.http("POST", path, {"metadata": {"name": "op", "labels": {"kopf": "watched"}}, "data": {"a": "1"}})
    assert status == 201, body
    wait_for(lambda: op.seen(cluster, "op") == "create", 60, what=f"kopf's create handler (log: {op.log_path})")
    _, obj = cluster.http("GET", f"{path}/op")
    assert KOPF_FINALIZER in obj["metadata"]["finalizers"]
    # the update comes after kopf's watch timed out and it resumed from its last version
    watches = cluster.watches_served()
    wait_for(lambda: cluster.watches_served() > watches, 30, what="kopf to re-watch")
    cluster.http("PATCH", f"{path}/op", {"data": {"b": "2"}}, content_type="application/merge-patch+json")
    wait_for(lambda: op.seen(cluster, "op") == "update:a,b", 60, what=f"kopf's update handler (log: {op.log_path})")
    cluster.http("POST", path, {"metadata": {"name": "ignored"}})  # not labelled: no handler runs
    cluster.http("DELETE", f"{path}/op")
    wait_for(lambda: op.deleted() == ["op"], 60, what=f"kopf's delete handler (log: {op.log_path})")
    wait_for(lambda: cluster.http("GET", f"{path}/op")[0] == 404, 30, what="the finalizer to be removed")
    assert op.seen(cluster, "ignored") is None
    log = op.log()
    assert "Traceback" not in log and "Error in the watch-stream" not in log, log[-3000:]
