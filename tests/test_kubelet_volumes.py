"""The kubelet's volume manager against a real ``podlife up``: the files a pod's volumes get on the host.

Each test makes its own namespace and pods through the API server (so the pods carry the
server's defaults -- ``defaultMode: 420``, the ServiceAccount admission's
``kube-api-access-*`` volume), then drives :class:`~podlife.kubelet.volumes.VolumeManager`
with a real client (HTTPS, the cluster's kubeconfig) over a ``tmp_path`` kubelet root. The
pods are bound to a node no kubelet runs, so nothing else touches them.

What is checked: configMap/secret files, modes, ``items``, ``binaryData``, ``optional``; a
missing source or key is a ``VolumeError`` with the kubelet's exact FailedMount text; an
update is published by swapping ``..data`` (a reader never sees a mix) and is visible
through the key symlink; the service-account token volume that admission adds works end
to end (a JWT the server's TokenReview accepts, ``ca.crt``, ``namespace``) and is renewed
when due; emptyDir ``medium: Memory``, secrets and projected volumes really are tmpfs
(``/proc/mounts``) and ``tear_down`` unmounts them; hostPath types; subPath; fsGroup.
Mounts left under ``tmp_path`` are unmounted even when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import stat
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.client.base import CONFIGMAPS, NAMESPACES, NODES, PODS, SECRETS, Obj, Resource
from podlife.client.http import HTTPClient
from podlife.kubelet.volumes import HostVolume, VolumeError, VolumeManager, container_mounts

from .cluster_harness import PodlifeProcess, async_wait_for, require_tool

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False)
NODE = "volume-test-node"  # no kubelet runs it: the pods bound there are ours alone
TS_DIR = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting tmpfs and chown need root")


# ---------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """A cluster without the PV controller: these tests bind claims by hand, and keep some unbound."""
    proc = PodlifeProcess(tmp_path_factory.mktemp("cluster") / "data", "--controllers",
                          "*,-persistentvolume-binder-controller", kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture
async def api(cluster: PodlifeProcess) -> AsyncIterator[HTTPClient]:
    client = HTTPClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()


def mount_points(root: Path) -> list[tuple[str, str, str]]:
    """``(mount point, fs type, options)`` of each mount at or below ``root``, from /proc/mounts."""
    base = os.path.realpath(root)
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
        if point == base or point.startswith(base + "/"):
            found.append((point, fstype, options))
    return found


@pytest.fixture
def kubelet_root(tmp_path: Path) -> Iterator[Path]:
    """The kubelet's root dir; whatever is still mounted below it is unmounted afterwards, pass or fail."""
    root = tmp_path / "kubelet"
    try:
        yield root
    finally:
        for point, _, _ in sorted(mount_points(tmp_path), key=lambda m: len(m[0]), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def manager(api: HTTPClient, kubelet_root: Path) -> VolumeManager:
    return VolumeManager(api, kubelet_root, node_name=NODE)


async def namespace(api: HTTPClient, *, wait_for_account: bool = False, privileged: bool = False) -> str:
    """A fresh namespace (``privileged``: Pod Security lets hostPath volumes in)."""
    name = f"vol-{uuid.uuid4().hex[:8]}"
    meta: Obj = {"name": name}
    if privileged:
        meta["labels"] = {"pod-security.kubernetes.io/enforce": "privileged"}
    await api.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    if wait_for_account:
        await async_wait_for(lambda: api.get(SERVICE_ACCOUNTS, "default", name), 30, what=f"{name}/default")
    return name


async def configmap(api: HTTPClient, ns: str, name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> Obj:
    body: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    if binary:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return await api.create(CONFIGMAPS, body, ns)


async def secret(api: HTTPClient, ns: str, name: str, data: dict[str, bytes]) -> Obj:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    return await api.create(SECRETS, body, ns)


async def pod(api: HTTPClient, ns: str, volumes: list[Obj], *, mounts: list[Obj] | None = None,
              node: str = NODE, automount: bool = False, **spec: Any) -> Obj:
    """A pod bound to ``node`` with ``volumes``, created through the API (so it has the server's defaults)."""
    body = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{uuid.uuid4().hex[:8]}", "labels": {"app": "vol"}},
        "spec": {"nodeName": node, "automountServiceAccountToken": automount, "volumes": volumes,
                 "containers": [{"name": "app", "image": "busybox", "volumeMounts": mounts or []}], **spec},
    }
    return await api.create(PODS, body, ns)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def data_dir(volume: Path) -> str:
    return os.readlink(volume / "..data")


def jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    assert len(parts) == 3, token
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


async def failure(manager: VolumeManager, pod_obj: Obj) -> str:
    with pytest.raises(VolumeError) as caught:
        await manager.set_up(pod_obj)
    return caught.value.message


# ---------------------------------------------------------------------- configMap and secret


async def test_configmap_files_modes_items_and_binary_data(api: HTTPClient, manager: VolumeManager,
                                                           kubelet_root: Path) -> None:
    ns = await namespace(api)
    await configmap(api, ns, "app", {"a.conf": "alpha", "b.conf": "beta"}, {"blob": b"\x00\xffbinary"})
    p = await pod(api, ns, [
        {"name": "all", "configMap": {"name": "app", "defaultMode": 0o640}},
        {"name": "some", "configMap": {"name": "app", "items": [{"key": "a.conf", "path": "etc/x.conf", "mode": 0o600},
                                                               {"key": "blob", "path": "blob.bin"}]}},
    ])
    volumes = await manager.set_up(p)
    uid = p["metadata"]["uid"]
    base = kubelet_root / "pods" / uid / "volumes" / "kubernetes.io~configmap"
    assert volumes == {"all": HostVolume("all", base / "all", True, "configMap"),
                       "some": HostVolume("some", base / "some", True, "configMap")}

    every = base / "all"
    assert sorted(os.listdir(every)) == sorted(["..data", data_dir(every), "a.conf", "b.conf", "blob"])
    assert TS_DIR.match(data_dir(every)) and mode(every / data_dir(every)) == 0o755
    assert os.readlink(every / "a.conf") == "..data/a.conf"
    assert (every / "a.conf").read_text() == "alpha" and (every / "blob").read_bytes() == b"\x00\xffbinary"
    assert {mode(every / k) for k in ("a.conf", "b.conf", "blob")} == {0o640}

    some = base / "some"
    assert sorted(p for p in os.listdir(some) if not p.startswith("..")) == ["blob.bin", "etc"]
    assert os.readlink(some / "etc") == "..data/etc"  # the top-level component is the link
    assert (some / "etc" / "x.conf").read_text() == "alpha" and mode(some / "etc" / "x.conf") == 0o600
    assert mode(some / "blob.bin") == 0o644  # the API's defaultMode 420

    assert await manager.set_up(p) == volumes  # idempotent: nothing rewritten
    assert TS_DIR.match(data_dir(every)) and len([n for n in os.listdir(every) if TS_DIR.match(n)]) == 1


async def test_missing_configmap_or_key_is_a_failed_mount_unless_optional(api: HTTPClient, manager: VolumeManager,
                                                                         kubelet_root: Path) -> None:
    ns = await namespace(api)
    missing = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "absent"}}])
    assert await failure(manager, missing) == 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    assert not (kubelet_root / "pods" / missing["metadata"]["uid"] / "volumes" / "kubernetes.io~configmap" / "cfg").exists()

    optional = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "absent", "optional": True}}])
    volumes = await manager.set_up(optional)
    assert [n for n in os.listdir(volumes["cfg"].path) if not n.startswith("..")] == []
    assert TS_DIR.match(data_dir(volumes["cfg"].path))

    await configmap(api, ns, "present", {"k": "v"})
    no_key = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "present", "items": [{"key": "nope", "path": "n"}]}}])
    assert await failure(manager, no_key) == ('MountVolume.SetUp failed for volume "cfg" : '
                                              "configmap references non-existent config key: nope")
    key_optional = await pod(api, ns, [{"name": "cfg", "configMap": {
        "name": "present", "optional": True, "items": [{"key": "nope", "path": "n"}, {"key": "k", "path": "k"}]}}])
    path = (await manager.set_up(key_optional))["cfg"].path
    assert (path / "k").read_text() == "v" and not (path / "n").exists()

    # the missing ConfigMap appears: the retried set up succeeds
    await configmap(api, ns, "absent", {"late": "here"})
    assert ((await manager.set_up(missing))["cfg"].path / "late").read_text() == "here"


@needs_root
async def test_secret_volume_is_decoded_on_tmpfs_and_missing_ones_fail(api: HTTPClient, manager: VolumeManager,
                                                                       kubelet_root: Path) -> None:
    ns = await namespace(api)
    missing = await pod(api, ns, [{"name": "creds", "secret": {"secretName": "nope"}}])
    assert await failure(manager, missing) == 'MountVolume.SetUp failed for volume "creds" : secret "nope" not found'

    await secret(api, ns, "db", {"user": b"admin", "password": b"s3cr\x00t"})
    no_key = await pod(api, ns, [{"name": "creds", "secret": {"secretName": "db", "items": [{"key": "token", "path": "t"}]}}])
    assert await failure(manager, no_key) == ('MountVolume.SetUp failed for volume "creds" : '
                                              "references non-existent secret key: token")

    good = await pod(api, ns, [{"name": "creds", "secret": {"secretName": "db"}},
                               {"name": "opt", "secret": {"secretName": "nope", "optional": True}}])
    volumes = await manager.set_up(good)
    creds = volumes["creds"]
    assert creds.kind == "secret" and creds.read_only and creds.path.parent.name == "kubernetes.io~secret"
    assert (creds.path / "password").read_bytes() == b"s3cr\x00t" and (creds.path / "user").read_text() == "admin"
    assert mode(creds.path / "user") == 0o644
    assert sorted((p, t) for p, t, _ in mount_points(kubelet_root)) == sorted(
        [(os.path.realpath(v.path), "tmpfs") for v in volumes.values()])

    await manager.tear_down(good["metadata"]["uid"])
    assert mount_points(kubelet_root) == []
    assert not (kubelet_root / "pods" / good["metadata"]["uid"]).exists()


# ---------------------------------------------------------------------- updates


async def test_refresh_swaps_data_and_the_key_link_shows_the_new_content(api: HTTPClient, manager: VolumeManager) -> None:
    ns = await namespace(api)
    cm = await configmap(api, ns, "live", {"a": "one", "gone": "soon"})
    p = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "live"}}])
    path = (await manager.set_up(p))["cfg"].path
    first = data_dir(path)
    assert await manager.refresh(p) is False  # nothing changed: no new version
    assert data_dir(path) == first

    cm["data"] = {"a": "two", "new": "here"}
    await api.update(CONFIGMAPS, cm)
    assert await manager.refresh(p) is True
    second = data_dir(path)
    assert second != first and TS_DIR.match(second) and not (path / first).exists()
    assert (path / "a").read_text() == "two" and (path / "new").read_text() == "here"
    assert not os.path.lexists(path / "gone")  # the removed key's link is gone too
    assert await manager.refresh(p) is False and data_dir(path) == second


async def test_a_reader_never_sees_half_an_update(api: HTTPClient, manager: VolumeManager) -> None:
    versions = ["x" * 400_000, "y" * 400_000]  # two keys of a ConfigMap: under its 1 MiB limit
    ns = await namespace(api)
    cm = await configmap(api, ns, "big", {"blob": versions[0], "twin": versions[0]})
    p = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "big"}}])
    path = (await manager.set_up(p))["cfg"].path
    seen: list[str] = []
    mixed: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                data = os.readlink(path / "..data")  # one version: both of its files agree
                blob, twin = (path / data / "blob").read_text(), (path / data / "twin").read_text()
                direct = (path / "blob").read_text()
            except FileNotFoundError:  # the version resolved was removed meanwhile: read again
                continue
            except Exception as exc:  # anything else ends the reader and fails the test
                mixed.append(repr(exc))
                return
            for text in (blob, twin, direct):
                if text not in versions:
                    mixed.append(text[:20] + "..." + text[-20:])
            if blob != twin:
                mixed.append("blob and twin of one version differ")
            seen.append(direct[0])

    def latest_is(mark: str) -> Callable[[], bool]:
        return lambda: bool(seen) and seen[-1] == mark

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(1, 9):
            value = versions[round_ % 2]
            cm["data"] = {"blob": value, "twin": value}
            cm = await api.update(CONFIGMAPS, cm)
            assert await manager.refresh(p) is True
            await async_wait_for(latest_is(value[0]), 10, what="the reader to see the update")
    finally:
        stop.set()
        await asyncio.to_thread(reader.join)
    assert not mixed, mixed[:3]
    assert {"x", "y"} <= set(seen)


# ---------------------------------------------------------------------- projected, token, downward API


async def test_service_account_token_volume_end_to_end(api: HTTPClient, manager: VolumeManager,
                                                       kubelet_root: Path) -> None:
    ns = await namespace(api, wait_for_account=True)
    root_ca = await async_wait_for(lambda: api.get(CONFIGMAPS, "kube-root-ca.crt", ns), 30, what="kube-root-ca.crt")
    p = await pod(api, ns, [], automount=True)
    [volume] = [v for v in p["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    host = (await manager.set_up(p))[volume["name"]]
    assert host.kind == "projected" and host.read_only and host.path.parent.name == "kubernetes.io~projected"
    assert (host.path / "ca.crt").read_text() == root_ca["data"]["ca.crt"]
    assert (host.path / "namespace").read_text() == ns
    assert {mode(host.path / f) for f in ("token", "ca.crt", "namespace")} == {0o644}
    if os.geteuid() == 0:
        assert [t for _, t, _ in mount_points(host.path)] == ["tmpfs"]

    token = (host.path / "token").read_text()
    claims = jwt_claims(token)
    assert claims["sub"] == f"system:serviceaccount:{ns}:default"
    assert claims["kubernetes.io"]["pod"] == {"name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}
    review = await api.create(TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                              "spec": {"token": token}})
    assert review["status"]["authenticated"] is True, review["status"]
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{ns}:default"

    assert await manager.refresh(p) is False  # not due: the same token stays
    assert (host.path / "token").read_text() == token

    eager = VolumeManager(api, kubelet_root, node_name=NODE, token_refresh_fraction=0.0)
    assert await eager.refresh(p) is True  # due at once: a new token, swapped in
    renewed = (host.path / "token").read_text()
    assert renewed != token and jwt_claims(renewed)["sub"] == claims["sub"]
    review = await api.create(TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                              "spec": {"token": renewed}})
    assert review["status"]["authenticated"] is True

    await manager.tear_down(p["metadata"]["uid"])
    assert mount_points(kubelet_root) == [] and not host.path.exists()


async def test_a_token_for_a_missing_account_is_a_failed_mount(api: HTTPClient, manager: VolumeManager) -> None:
    ns = await namespace(api)
    await api.create(SERVICE_ACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ghost"}}, ns)
    p = await pod(api, ns, [{"name": "tok", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 600}},
        {"configMap": {"name": "missing-too"}},
    ]}}], serviceAccountName="ghost")
    await api.delete(SERVICE_ACCOUNTS, "ghost", ns)
    assert await failure(manager, p) == ('MountVolume.SetUp failed for volume "tok" : [failed to fetch token: '
                                         'serviceaccounts "ghost" not found, configmap "missing-too" not found]')


async def test_projected_token_audience_and_configmap_secret_sources(api: HTTPClient, manager: VolumeManager) -> None:
    ns = await namespace(api)
    await api.create(SERVICE_ACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}, ns)
    await configmap(api, ns, "cfg", {"c": "config"})
    await secret(api, ns, "sec", {"s": b"secret"})
    p = await pod(api, ns, [{"name": "all", "projected": {"defaultMode": 0o600, "sources": [
        {"serviceAccountToken": {"path": "vault/token", "audience": "vault", "expirationSeconds": 600}},
        {"configMap": {"name": "cfg", "items": [{"key": "c", "path": "conf/c", "mode": 0o644}]}},
        {"secret": {"name": "sec"}},
        {"secret": {"name": "absent", "optional": True}},
    ]}}], serviceAccountName="robot")
    path = (await manager.set_up(p))["all"].path
    claims = jwt_claims((path / "vault" / "token").read_text())
    assert claims["aud"] == ["vault"] and claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["exp"] - claims["iat"] == 600
    assert (path / "conf" / "c").read_text() == "config" and mode(path / "conf" / "c") == 0o644
    assert (path / "s").read_text() == "secret" and mode(path / "s") == 0o600
    assert mode(path / "vault" / "token") == 0o600


async def test_downward_api_volume_fields_resources_and_updates(api: HTTPClient, kubelet_root: Path) -> None:
    ns = await namespace(api)
    node = f"vol-node-{uuid.uuid4().hex[:6]}"
    await api.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    try:
        await api.patch(NODES, node, {"status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}}, subresource="status")
        manager = VolumeManager(api, kubelet_root, node_name=node)
        items: list[Obj] = [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
            {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o600},
            {"path": "meta/labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "meta/tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
            {"path": "cpu_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
            {"path": "cpu_request", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu"}},
            {"path": "mem_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                       "divisor": "1Mi"}},
        ]
        body: Obj = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "downward", "labels": {"tier": "web", "app": "x"}},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "volumes": [{"name": "info", "downwardAPI": {"items": items}}],
                     "containers": [{"name": "app", "image": "busybox",
                                     "resources": {"requests": {"cpu": "250m"}}}]},
        }
        p = await api.create(PODS, body, ns)
        path = (await manager.set_up(p))["info"].path
        assert path.parent.name == "kubernetes.io~downward-api"
        read = {f: (path / f).read_text() for f in ("name", "ns", "uid", "meta/labels", "meta/tier", "cpu_limit",
                                                     "cpu_request", "mem_limit")}
        assert read == {"name": "downward", "ns": ns, "uid": p["metadata"]["uid"], "meta/labels": 'app="x"\ntier="web"',
                        "meta/tier": "web",
                        "cpu_limit": "4000",   # no limit: the node's allocatable, in millicores
                        "cpu_request": "1",    # 250m rounded up to whole CPUs
                        "mem_limit": "8192"}   # 8Gi in Mi
        assert mode(path / "uid") == 0o600 and mode(path / "name") == 0o644

        p = await api.patch(PODS, "downward", {"metadata": {"labels": {"tier": "db"}}}, ns)
        assert await manager.refresh(p) is True
        assert (path / "meta" / "tier").read_text() == "db"

        bad = dict(body, metadata={"name": "bad"})
        bad["spec"] = dict(body["spec"], volumes=[{"name": "info", "downwardAPI": {"items": [
            {"path": "x", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
        ]}}])
        broken = await api.create(PODS, bad, ns)
        broken["spec"]["volumes"][0]["downwardAPI"]["items"][0]["resourceFieldRef"]["containerName"] = "other"
        assert await failure(manager, broken) == 'MountVolume.SetUp failed for volume "info" : container other not found'
    finally:
        await api.delete(NODES, node)


# ---------------------------------------------------------------------- emptyDir, hostPath, others


@needs_root
async def test_memory_empty_dir_is_tmpfs_until_tear_down(api: HTTPClient, manager: VolumeManager,
                                                         kubelet_root: Path) -> None:
    ns = await namespace(api)
    p = await pod(api, ns, [{"name": "disk", "emptyDir": {}},
                            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}])
    volumes = await manager.set_up(p)
    disk, ram = volumes["disk"], volumes["ram"]
    assert disk == HostVolume("disk", kubelet_root / "pods" / p["metadata"]["uid"] / "volumes" / "kubernetes.io~empty-dir"
                              / "disk", False, "emptyDir")
    assert mode(disk.path) == 0o777
    [(point, fstype, options)] = mount_points(kubelet_root)
    assert (point, fstype) == (os.path.realpath(ram.path), "tmpfs") and "size=16384k" in options.split(",")

    (ram.path / "scratch").write_text("kept")
    assert await manager.set_up(p) == volumes  # idempotent: mounted once, content kept
    assert len(mount_points(kubelet_root)) == 1 and (ram.path / "scratch").read_text() == "kept"

    await manager.tear_down(p["metadata"]["uid"])
    assert mount_points(kubelet_root) == [] and not disk.path.exists() and not ram.path.exists()
    await manager.tear_down(p["metadata"]["uid"])  # already gone: no error
    await manager.tear_down("never-seen")


async def test_without_root_memory_volumes_are_plain_directories(api: HTTPClient, manager: VolumeManager,
                                                                 kubelet_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    ns = await namespace(api)
    await secret(api, ns, "s", {"k": b"v"})
    p = await pod(api, ns, [{"name": "ram", "emptyDir": {"medium": "Memory"}},
                            {"name": "sec", "secret": {"secretName": "s"}}])
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with caplog.at_level(logging.WARNING, logger="podlife.kubelet.volumes"):
        volumes = await manager.set_up(p)
        await manager.set_up(p)
    assert mount_points(kubelet_root) == []
    assert (volumes["sec"].path / "k").read_text() == "v" and volumes["ram"].path.is_dir()
    assert len([r for r in caplog.records if "not running as root" in r.getMessage()]) == 1
    monkeypatch.undo()
    await manager.tear_down(p["metadata"]["uid"])


async def test_host_path_types(api: HTTPClient, manager: VolumeManager, tmp_path: Path) -> None:
    ns = await namespace(api, privileged=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("f")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(host / "sock"))
    try:
        good = await pod(api, ns, [
            {"name": "made-dir", "hostPath": {"path": str(host / "new" / "dir"), "type": "DirectoryOrCreate"}},
            {"name": "made-file", "hostPath": {"path": str(host / "new-file"), "type": "FileOrCreate"}},
            {"name": "dir", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "file", "hostPath": {"path": str(host / "file"), "type": "File"}},
            {"name": "sock", "hostPath": {"path": str(host / "sock"), "type": "Socket"}},
            {"name": "null", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
            {"name": "untyped", "hostPath": {"path": str(host / "not-there")}},
        ])
        volumes = await manager.set_up(good)
        assert volumes["file"] == HostVolume("file", host / "file", False, "hostPath")
        assert mode(host / "new" / "dir") == 0o755 & ~_umask() and (host / "new-file").is_file()
        assert mode(host / "new-file") == 0o644 & ~_umask() and not (host / "not-there").exists()
        assert await manager.set_up(good) == volumes  # the *OrCreate ones exist now: checked as Directory/File

        cases = {
            ("Directory", str(host / "file")): f"hostPath type check failed: {host / 'file'} is not a directory, it's a File",
            ("File", str(host)): f"hostPath type check failed: {host} is not a file, it's a Directory",
            ("FileOrCreate", str(host)): f"hostPath type check failed: {host} is not a file, it's a Directory",
            ("DirectoryOrCreate", str(host / "file")):
                f"hostPath type check failed: {host / 'file'} is not a directory, it's a File",
            ("Socket", str(host / "file")): f"hostPath type check failed: {host / 'file'} is not a socket file, it's a File",
            ("BlockDevice", "/dev/null"): "hostPath type check failed: /dev/null is not a block device, it's a CharDevice",
            ("CharDevice", str(host)): f"hostPath type check failed: {host} is not a character device, it's a Directory",
            ("Directory", str(host / "absent")): f"hostPath {host / 'absent'} doesn't exist",
            ("FileOrCreate", str(host / "no-dir" / "f")):
                f"open {host / 'no-dir' / 'f'}: no such file or directory",
        }
        for (kind, path), reason in cases.items():
            bad = await pod(api, ns, [{"name": "hp", "hostPath": {"path": path, "type": kind}}])
            assert await failure(manager, bad) == f'MountVolume.SetUp failed for volume "hp" : {reason}', (kind, path)
    finally:
        sock.close()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)


async def claim(api: HTTPClient, ns: str, name: str, volume: str | None, *, bound: bool) -> Obj:
    """A claim naming ``volume``, marked Bound in its status when ``bound`` (no binder runs here)."""
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": ""}
    if volume is not None:
        spec["volumeName"] = volume
    created = await api.create(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "metadata": {"name": name}, "spec": spec}, ns)
    if bound:
        created["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
        created = await api.update(PVCS, created, subresource="status")
    return created


async def persistent_volume(api: HTTPClient, name: str, source: Obj, claim_ref: Obj | tuple[str, str] | None) -> Obj:
    """A PV of ``source`` bound to ``claim_ref``: a claim (its uid in the ``claimRef``, as the binder
    writes it) or just a namespace and name (a reservation for a claim that is not this one)."""
    spec: Obj = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "", **source}
    if "local" in source:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}]}}
    if isinstance(claim_ref, dict):
        meta = claim_ref["metadata"]
        spec["claimRef"] = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    elif claim_ref is not None:
        spec["claimRef"] = {"namespace": claim_ref[0], "name": claim_ref[1]}
    return await api.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                                  "spec": spec})


async def test_a_bound_claim_mounts_its_host_path_or_local_volume(api: HTTPClient, manager: VolumeManager,
                                                                 tmp_path: Path) -> None:
    ns = await namespace(api, privileged=True)
    tag = uuid.uuid4().hex[:8]
    data, disk = tmp_path / "data", tmp_path / "disk"
    disk.mkdir()
    pvs = [f"hp-{tag}", f"local-{tag}", f"other-{tag}", f"nfs-{tag}"]
    try:
        data_claim = await claim(api, ns, "data", pvs[0], bound=True)
        disk_claim = await claim(api, ns, "disk", pvs[1], bound=True)
        await claim(api, ns, "pending", None, bound=False)
        stolen = await claim(api, ns, "stolen", pvs[2], bound=True)
        remote = await claim(api, ns, "remote", pvs[3], bound=True)
        await persistent_volume(api, pvs[0], {"hostPath": {"path": str(data), "type": "DirectoryOrCreate"}}, data_claim)
        await persistent_volume(api, pvs[1], {"local": {"path": str(disk)}}, disk_claim)
        await persistent_volume(api, pvs[2], {"hostPath": {"path": str(data)}}, (ns, "someone-else"))
        await persistent_volume(api, pvs[3], {"nfs": {"server": "nfs.example", "path": "/x"}}, remote)
        good = await pod(api, ns, [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                                   {"name": "disk", "persistentVolumeClaim": {"claimName": "disk", "readOnly": True}}])
        volumes = await manager.set_up(good)
        assert volumes["data"] == HostVolume("data", data, False, "persistentVolumeClaim")
        assert data.is_dir()  # the PV's hostPath type made it
        assert volumes["disk"] == HostVolume("disk", disk, True, "persistentVolumeClaim")

        cases = {
            "pending": f"error processing PVC {ns}/pending: PVC is not bound",
            "missing": 'persistentvolumeclaim "missing" not found',
            "stolen": f"error processing PVC {ns}/stolen: found PV object {pvs[2]} but its pv.Spec.ClaimRef.UID  "
                      f"does not point to claim.UID {stolen['metadata']['uid']}",
            "remote": f"persistentVolume {pvs[3]}: nfs volumes are not supported yet",
        }
        for claim_name, reason in cases.items():
            bad = await pod(api, ns, [{"name": "v", "persistentVolumeClaim": {"claimName": claim_name}}])
            assert await failure(manager, bad) == f'MountVolume.SetUp failed for volume "v" : {reason}', claim_name
    finally:
        for pv in pvs:
            try:
                await api.delete(PVS, pv)
            except Exception:  # noqa: BLE001 - a create that failed left nothing to delete
                pass


@needs_root
async def test_fs_group_owns_the_volumes(api: HTTPClient, manager: VolumeManager) -> None:
    ns = await namespace(api, wait_for_account=True)
    await async_wait_for(lambda: api.get(CONFIGMAPS, "kube-root-ca.crt", ns), 30, what="kube-root-ca.crt")
    await configmap(api, ns, "cfg", {"k": "v"})
    p = await pod(api, ns, [{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o600}},
                            {"name": "work", "emptyDir": {}}],
                  automount=True, securityContext={"fsGroup": 2345})
    volumes = await manager.set_up(p)
    cfg = volumes["cfg"].path
    assert os.stat(cfg / "k").st_gid == 2345 and mode(cfg / "k") == 0o640
    assert mode(cfg / data_dir(cfg)) == 0o2755
    work = volumes["work"].path
    assert os.stat(work).st_gid == 2345 and mode(work) == 0o2777
    [token_volume] = [v for name, v in volumes.items() if name.startswith("kube-api-access-")]
    assert mode(token_volume.path / "token") == 0o640 and os.stat(token_volume.path / "token").st_gid == 2345
    assert mode(token_volume.path / "ca.crt") == 0o644  # already group-readable

    (cfg_obj := await api.get(CONFIGMAPS, "cfg", ns))["data"] = {"k": "v2"}
    await api.update(CONFIGMAPS, cfg_obj)
    assert await manager.refresh(p) is True  # the new version is owned before it is published
    assert (cfg / "k").read_text() == "v2" and os.stat(cfg / "k").st_gid == 2345 and mode(cfg / "k") == 0o640
    await manager.tear_down(p["metadata"]["uid"])


# ---------------------------------------------------------------------- container mounts


async def test_container_mounts_sub_path_read_only_and_propagation(api: HTTPClient, manager: VolumeManager,
                                                                   tmp_path: Path) -> None:
    ns = await namespace(api)
    await configmap(api, ns, "cfg", {"app.conf": "conf"})
    mounts: list[Obj] = [
        {"name": "work", "mountPath": "/work"},
        {"name": "work", "mountPath": "/logs", "subPath": "logs/app", "mountPropagation": "HostToContainer"},
        {"name": "work", "mountPath": "/ro", "readOnly": True, "mountPropagation": "None"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "work", "mountPath": "/per-pod", "subPathExpr": "$(POD_NAME)/data"},
    ]
    p = await pod(api, ns, [{"name": "work", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
                  mounts=mounts)
    volumes = await manager.set_up(p)
    container = p["spec"]["containers"][0]
    work, cfg = volumes["work"].path, volumes["cfg"].path
    resolved = container_mounts(container, volumes, env={"POD_NAME": "p1"})
    assert [(m.source, m.destination, m.read_only, m.propagation) for m in resolved] == [
        (work, "/work", False, None),
        (work / "logs" / "app", "/logs", False, "HostToContainer"),
        (work, "/ro", True, None),
        (cfg / data_dir(cfg) / "app.conf", "/etc/app.conf", True, None),  # the file itself, as the kubelet binds it
        (work / "p1" / "data", "/per-pod", False, None),
    ]
    assert mode(work / "logs") == mode(work / "logs" / "app") == 0o777  # the volume's mode, not the umask's

    def one(mount: Obj, env: dict[str, str] | None = None) -> str:
        with pytest.raises(ValueError) as caught:
            container_mounts({"name": "app", "volumeMounts": [mount]}, volumes, env=env)
        return str(caught.value)

    assert one({"name": "work", "mountPath": "/x", "subPath": "/etc"}) == "error SubPath `/etc` must not be an absolute path"
    assert one({"name": "work", "mountPath": "/x", "subPath": "a/../b"}) == (
        "unable to provision SubPath `a/../b`: must not contain '..'")
    assert one({"name": "nope", "mountPath": "/x"}) == 'cannot find volume "nope" to mount into container "app"'
    assert one({"name": "work", "mountPath": "/x", "subPathExpr": "$(MISSING)"}, {}) == "missing value for MISSING"
    os.symlink(str(tmp_path), work / "escape")
    assert "not within volume path" in one({"name": "work", "mountPath": "/x", "subPath": "escape/inside"})
    assert not (tmp_path / "inside").exists()


async def test_the_manager_knows_which_pods_still_have_volumes(api: HTTPClient, manager: VolumeManager) -> None:
    """What a stopping kubelet tears down: every pod with a volumes dir, also one no worker remembers."""
    ns = await namespace(api)
    first = await pod(api, ns, [{"name": "scratch", "emptyDir": {}}])
    second = await pod(api, ns, [{"name": "scratch", "emptyDir": {"medium": "Memory"}}])
    assert manager.pods_with_volumes() == []
    await manager.set_up(first)
    await manager.set_up(second)
    uids = sorted([first["metadata"]["uid"], second["metadata"]["uid"]])
    assert manager.pods_with_volumes() == uids
    for uid in uids:
        await manager.tear_down(uid)
    assert manager.pods_with_volumes() == []
    assert not mount_points(manager.root_dir)
