"""The kubelet's side of claims: podlife's node-local CSI volumes, ephemeral volumes, fsGroup, node expansion.

One ``podlife up --container-runtime oci`` cluster for the module (real containers under
runc), without the storage controllers that would act on what the tests set up by hand
(binder, expander, ephemeral-volume controller): each test makes its PVs --
``csi: {driver: local-path.podlife.io, volumeAttributes: {local-path.podlife.io/path: <dir>}}``
over a directory under ``tmp_path`` -- and its claims, binds them itself (the claim's
``spec.volumeName``, then phase Bound with ``kubectl patch --subresource=status``) and runs
pods with ``spec.nodeName`` set.

Checked through the real kubectl and real containers: a file written through a claim is
in the PV's directory; a ``readOnly`` claim cannot be written; a claim of a missing
directory is a ``FailedMount``; an ``ephemeral`` volume whose claim the pod does not
control is a ``FailedMount`` with Kubernetes' words, one it does control is mounted; a claim
waiting for node expansion gets ``status.capacity`` and loses ``FileSystemResizePending``
when its pod mounts it (the kubelet writing as ``system:node:<name>``), with
``FileSystemResizeSuccessful`` on the pod. Driving :class:`~podlife.kubelet.volumes.VolumeManager`
directly against the same API (pods bound to a node no kubelet runs): ``fsGroupChangePolicy``
``Always`` versus ``OnRootMismatch``, no fsGroup on read-only or hostPath claims, in-use
expansion at ``refresh()`` and the read-only refusal. The pure rules of
:mod:`podlife.node.volume_expansion` are checked on their own at the end.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.client.base import EVENTS, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, Obj
from podlife.client.http import HTTPClient
from podlife.kubelet.volumes import VolumeError, VolumeManager
from podlife.machinery.storage import LOCAL_PATH_DRIVER, PATH_ATTRIBUTE
from podlife.node.volume_expansion import needs_node_expansion, node_expansion_status_patch

from .cluster_harness import PodlifeProcess, async_wait_for, wait_for
from .test_e2e_containers import oci_cluster

pytestmark = pytest.mark.e2e

#: the storage controllers stay off: the tests bind and resize by hand
CONTROLLERS = "*,-persistentvolume-binder-controller,-persistentvolume-expander-controller,-ephemeral-volume-controller"
FAKE_NODE = "claims-test-node"  # no kubelet runs it: pods bound there are the VolumeManager's alone
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("claims") / "data", "--controllers", CONTROLLERS) as proc:
        yield proc


@pytest.fixture(scope="module")
def node_name(cluster: PodlifeProcess) -> str:
    return str(cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"])


@pytest.fixture
async def api(cluster: PodlifeProcess) -> AsyncIterator[HTTPClient]:
    client = HTTPClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()


# ---------------------------------------------------------------------- objects


def tag() -> str:
    return uuid.uuid4().hex[:6]


def local_path_pv(name: str, path: Path, claim: str, *, capacity: str = "1Gi", node: str = "") -> Obj:
    spec: Obj = {"capacity": {"storage": capacity}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain",
                 "csi": {"driver": LOCAL_PATH_DRIVER, "volumeHandle": name,
                         "volumeAttributes": {PATH_ATTRIBUTE: str(path)}},
                 "claimRef": {"namespace": "default", "name": claim}}
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def claim_manifest(name: str, pv: str, *, owner: Obj | None = None) -> Obj:
    meta: Obj = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": "", "volumeName": pv}}


def bound_status(capacity: str = "1Gi", **extra: Any) -> Obj:
    return {"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": capacity}, **extra}}


def pending_expansion(old: str, new: str) -> Obj:
    """A claim's status as the expander leaves it for the node (RecoverVolumeExpansionFailure fields)."""
    return bound_status(old, allocatedResources={"storage": new},
                        allocatedResourceStatuses={"storage": "NodeResizePending"},
                        conditions=[{"type": "FileSystemResizePending", "status": "True",
                                     "message": "Waiting for user to (re-)start a pod to finish file system resize "
                                                "of volume on node."}])


def pod_manifest(name: str, node: str, volumes: list[Obj], mounts: list[Obj], **spec: Any) -> Obj:
    container = {"name": "c", "image": "busybox", "command": ["sleep", "3600"], "volumeMounts": mounts}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [container],
                     "volumes": volumes, **spec}}


def claim_volume(name: str, claim: str, *, read_only: bool = False) -> Obj:
    source: Obj = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": source}


# ---------------------------------------------------------------------- kubectl helpers


def apply(cluster: PodlifeProcess, *objs: Obj) -> None:
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objs))


def make_bound_claim(cluster: PodlifeProcess, claim: str, pv: str, path: Path, *, status: Obj | None = None,
                     owner: Obj | None = None, capacity: str = "1Gi", node: str = "") -> None:
    """A PV over ``path`` and its claim, bound by hand as the binder would (``claimRef`` with the claim's uid)."""
    apply(cluster, claim_manifest(claim, pv, owner=owner))
    volume = local_path_pv(pv, path, claim, capacity=capacity, node=node)
    volume["spec"]["claimRef"]["uid"] = cluster.kubectl_json("get", "pvc", claim)["metadata"]["uid"]
    apply(cluster, volume)
    cluster.kubectl("patch", "pvc", claim, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status or bound_status()))


def events_of(cluster: PodlifeProcess, name: str) -> list[Obj]:
    return cluster.kubectl_json("get", "events", f"--field-selector=involvedObject.name={name}").get("items", [])


def wait_event(cluster: PodlifeProcess, name: str, reason: str, text: str, timeout: float = 60) -> Obj:
    def found() -> Obj | None:
        return next((e for e in events_of(cluster, name) if e["reason"] == reason and text in e["message"]), None)

    return wait_for(found, timeout, what=f"{reason} event on {name} saying {text!r}")


def wait_ready(cluster: PodlifeProcess, name: str, timeout: float = 60) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={int(timeout)}s", timeout=timeout + 10)


def exec_sh(cluster: PodlifeProcess, pod: str, script: str, *, check: bool = True) -> Any:
    return cluster.kubectl("exec", pod, "--", "sh", "-c", script, check=check)


def clean_up(cluster: PodlifeProcess, pods: list[str], claims: list[str], pvs: list[str]) -> None:
    if pods:
        cluster.kubectl("delete", "pod", *pods, "--grace-period=1", "--wait=true", "--timeout=60s",
                        "--ignore-not-found", check=False, timeout=90)
    if claims:
        cluster.kubectl("delete", "pvc", *claims, "--wait=true", "--timeout=60s", "--ignore-not-found",
                        check=False, timeout=90)
    if pvs:
        cluster.kubectl("delete", "pv", *pvs, "--wait=true", "--timeout=60s", "--ignore-not-found",
                        check=False, timeout=90)


# ---------------------------------------------------------------------- through the real kubelet


def test_a_local_path_claim_is_written_through_and_a_read_only_one_refuses(
        cluster: PodlifeProcess, node_name: str, tmp_path: Path) -> None:
    t = tag()
    rw_dir, ro_dir = tmp_path / "rw", tmp_path / "ro"
    rw_dir.mkdir()
    ro_dir.mkdir()
    (ro_dir / "seed").write_text("from the host\n")
    pod, claims, pvs = f"writer-{t}", [f"rw-{t}", f"ro-{t}"], [f"pv-rw-{t}", f"pv-ro-{t}"]
    try:
        make_bound_claim(cluster, claims[0], pvs[0], rw_dir, node=node_name)
        make_bound_claim(cluster, claims[1], pvs[1], ro_dir, node=node_name)
        apply(cluster, pod_manifest(pod, node_name, [claim_volume("rw", claims[0]),
                                                     claim_volume("ro", claims[1], read_only=True)],
                                    [{"name": "rw", "mountPath": "/data"}, {"name": "ro", "mountPath": "/ro"}]))
        wait_ready(cluster, pod)
        exec_sh(cluster, pod, "echo through the claim > /data/file")
        assert (rw_dir / "file").read_text() == "through the claim\n"  # in the PV's own directory
        assert exec_sh(cluster, pod, "cat /ro/seed").stdout == "from the host\n"
        refused = exec_sh(cluster, pod, "echo x > /ro/new", check=False)
        assert refused.returncode != 0 and not (ro_dir / "new").exists()
    finally:
        clean_up(cluster, [pod], claims, pvs)


def test_a_missing_directory_is_a_failed_mount(cluster: PodlifeProcess, node_name: str, tmp_path: Path) -> None:
    t = tag()
    gone = tmp_path / "never-made"
    pod, claim, pv = f"nodir-{t}", f"nodir-{t}", f"pv-nodir-{t}"
    try:
        make_bound_claim(cluster, claim, pv, gone)
        apply(cluster, pod_manifest(pod, node_name, [claim_volume("d", claim)], [{"name": "d", "mountPath": "/d"}]))
        event = wait_event(cluster, pod, "FailedMount", f"directory {gone} does not exist")
        assert event["type"] == "Warning"
        assert event["message"] == (f'MountVolume.SetUp failed for volume "d" : rpc error: code = NotFound desc = '
                                    f"volume {pv}: directory {gone} does not exist")
        waiting = cluster.kubectl_json("get", "pod", pod)["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
        gone.mkdir()  # the directory appears: the retry mounts it
        wait_ready(cluster, pod)
    finally:
        clean_up(cluster, [pod], [claim], [pv])


def test_an_ephemeral_volume_needs_a_claim_its_pod_controls(cluster: PodlifeProcess, node_name: str,
                                                            tmp_path: Path) -> None:
    t = tag()
    foreign_dir, own_dir = tmp_path / "foreign", tmp_path / "own"
    foreign_dir.mkdir()
    own_dir.mkdir()
    template = {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                                 "resources": {"requests": {"storage": "1Gi"}}}}}
    volumes = [{"name": "scratch", "ephemeral": template}]
    mounts = [{"name": "scratch", "mountPath": "/scratch"}]
    foreign_pod, own_pod = f"foreign-{t}", f"own-{t}"
    claims, pvs = [f"{foreign_pod}-scratch", f"{own_pod}-scratch"], [f"pv-foreign-{t}", f"pv-own-{t}"]
    try:
        make_bound_claim(cluster, claims[0], pvs[0], foreign_dir)  # somebody else's claim of that name
        apply(cluster, pod_manifest(foreign_pod, node_name, volumes, mounts))
        wait_event(cluster, foreign_pod, "FailedMount",
                   f"PVC default/{claims[0]} was not created for pod default/{foreign_pod} (pod is not owner)")
        assert cluster.kubectl_json("get", "pod", foreign_pod)["status"]["phase"] == "Pending"

        apply(cluster, pod_manifest(own_pod, node_name, volumes, mounts))
        wait_event(cluster, own_pod, "FailedMount", 'persistentvolumeclaim "' + claims[1] + '" not found')
        owner = cluster.kubectl_json("get", "pod", own_pod)
        make_bound_claim(cluster, claims[1], pvs[1], own_dir, owner=owner)  # as the ephemeral controller makes it
        wait_ready(cluster, own_pod)
        exec_sh(cluster, own_pod, "echo mine > /scratch/f")
        assert (own_dir / "f").read_text() == "mine\n"
    finally:
        clean_up(cluster, [foreign_pod, own_pod], claims, pvs)


def test_mounting_a_claim_finishes_its_node_expansion(cluster: PodlifeProcess, node_name: str, tmp_path: Path) -> None:
    t = tag()
    disk = tmp_path / "grown"
    disk.mkdir()
    pod, claim, pv = f"grow-{t}", f"grow-{t}", f"pv-grow-{t}"
    try:
        # the expander's work, done by hand: the PV already grew to 2Gi, the claim waits for the node
        make_bound_claim(cluster, claim, pv, disk, capacity="2Gi", status=pending_expansion("1Gi", "2Gi"))
        before = cluster.kubectl_json("get", "pvc", claim)["status"]
        assert before["capacity"]["storage"] == "1Gi" and before["allocatedResourceStatuses"]
        apply(cluster, pod_manifest(pod, node_name, [claim_volume("d", claim)], [{"name": "d", "mountPath": "/d"}]))
        wait_ready(cluster, pod)

        def finished() -> Obj | None:
            status = cluster.kubectl_json("get", "pvc", claim)["status"]
            return status if status["capacity"]["storage"] == "2Gi" else None

        status = wait_for(finished, 60, what="the claim's capacity written by the node")
        assert "allocatedResourceStatuses" not in status
        assert not [c for c in status.get("conditions") or [] if c["type"] == "FileSystemResizePending"]
        assert status["allocatedResources"] == {"storage": "2Gi"} and status["phase"] == "Bound"
        event = wait_event(cluster, pod, "FileSystemResizeSuccessful", "NodeExpandVolume")
        assert event["type"] == "Normal"
        assert event["message"] == f'MountVolume.NodeExpandVolume succeeded for volume "{pv}" {node_name}'
        assert event["source"]["component"] == "kubelet"
        wait_event(cluster, claim, "FileSystemResizeSuccessful", f'for volume "{pv}"')
        kubectl_get = cluster.kubectl("get", "pvc", claim).stdout
        assert "2Gi" in kubectl_get.splitlines()[1]
    finally:
        clean_up(cluster, [pod], [claim], [pv])


# ---------------------------------------------------------------------- the VolumeManager directly


async def make_claim(api: HTTPClient, name: str, pv: Obj, status: Obj | None = None) -> Obj:
    """The claim and its volume, bound to each other by hand as the PV controller binds them (no binder
    runs here): the volume's ``claimRef`` carries the claim's uid, which the kubelet checks."""
    claim = await api.create(PERSISTENT_VOLUME_CLAIMS, claim_manifest(name, pv["metadata"]["name"]), "default")
    pv["spec"]["claimRef"]["uid"] = claim["metadata"]["uid"]
    await api.create(PERSISTENT_VOLUMES, pv)
    claim["status"] = (status or bound_status())["status"]
    return await api.update(PERSISTENT_VOLUME_CLAIMS, claim, subresource="status")


async def delete_all(api: HTTPClient, pods: list[str], claims: list[str], pvs: list[str]) -> None:
    for res, names, namespace in ((PODS, pods, "default"), (PERSISTENT_VOLUME_CLAIMS, claims, "default"),
                                  (PERSISTENT_VOLUMES, pvs, None)):
        for name in names:
            try:
                await api.delete(res, name, namespace, grace_period_seconds=0)
            except Exception:  # noqa: BLE001 - never made, or already gone
                pass


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@needs_root
async def test_fs_group_change_policy_always_walks_on_root_mismatch_skips(api: HTTPClient, tmp_path: Path) -> None:
    manager = VolumeManager(api, tmp_path / "kubelet", node_name=FAKE_NODE)
    t = tag()
    gid = 2345
    dirs = {policy: tmp_path / policy for policy in ("Always", "OnRootMismatch", "fresh", "readonly")}
    for directory in dirs.values():
        (directory / "sub").mkdir(parents=True)
        (directory / "sub" / "old").write_text("x")
        os.chmod(directory / "sub" / "old", 0o600)
    for ready in (dirs["Always"], dirs["OnRootMismatch"]):  # roots that already look owned, their content not
        os.chown(ready, -1, gid)
        os.chmod(ready, 0o2775)
    pods: list[str] = []
    made: dict[str, Obj] = {}
    claims = [f"fs-{policy.lower()}-{t}" for policy in dirs]
    pvs = [f"pv-{c}" for c in claims]
    try:
        for directory, claim, pv in zip(dirs.values(), claims, pvs, strict=True):
            await make_claim(api, claim, local_path_pv(pv, directory, claim))
        for (policy, _), claim in zip(dirs.items(), claims, strict=True):
            change = {"Always": "Always", "OnRootMismatch": "OnRootMismatch", "fresh": "OnRootMismatch"}.get(policy)
            context: Obj = {"fsGroup": gid, **({"fsGroupChangePolicy": change} if change else {})}
            body = pod_manifest(f"fs-{policy.lower()}-{t}", FAKE_NODE,
                                [claim_volume("v", claim, read_only=policy == "readonly")],
                                [{"name": "v", "mountPath": "/v"}], securityContext=context)
            made[policy] = await api.create(PODS, body, "default")
            pods.append(made[policy]["metadata"]["name"])
        for policy in dirs:
            await manager.set_up(made[policy])
        old = {policy: os.stat(directory / "sub" / "old") for policy, directory in dirs.items()}
        # Always: the whole volume, although its root looked right
        assert old["Always"].st_gid == gid and mode(dirs["Always"] / "sub" / "old") == 0o660
        assert mode(dirs["Always"] / "sub") & stat.S_ISGID
        # OnRootMismatch with a root that has the group, setgid and rwx for the group: left alone
        assert old["OnRootMismatch"].st_gid == 0 and mode(dirs["OnRootMismatch"] / "sub" / "old") == 0o600
        # OnRootMismatch with a root that does not: walked
        assert old["fresh"].st_gid == gid and os.stat(dirs["fresh"]).st_gid == gid
        assert mode(dirs["fresh"]) & (stat.S_ISGID | 0o070) == stat.S_ISGID | 0o070
        # a read-only claim mount gets no ownership change
        assert old["readonly"].st_gid == 0 and os.stat(dirs["readonly"]).st_gid == 0
    finally:
        for made_pod in made.values():
            await manager.tear_down(made_pod["metadata"]["uid"])
        await delete_all(api, pods, claims, pvs)


@needs_root
async def test_a_host_path_claim_gets_no_fs_group(api: HTTPClient, tmp_path: Path) -> None:
    manager = VolumeManager(api, tmp_path / "kubelet", node_name=FAKE_NODE)
    t = tag()
    directory = tmp_path / "hp"
    directory.mkdir()
    claim, pv = f"hp-{t}", f"pv-hp-{t}"
    pv_obj = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                       "hostPath": {"path": str(directory)}, "claimRef": {"namespace": "default", "name": claim}}}
    pod_name = f"hp-{t}"
    try:
        await make_claim(api, claim, pv_obj)
        pod = await api.create(PODS, pod_manifest(pod_name, FAKE_NODE, [claim_volume("v", claim)], [],
                                                  securityContext={"fsGroup": 4321}), "default")
        volumes = await manager.set_up(pod)
        assert volumes["v"].path == directory and os.stat(directory).st_gid == 0
        await manager.tear_down(pod["metadata"]["uid"])
    finally:
        await delete_all(api, [pod_name], [claim], [pv])


async def test_refresh_finishes_an_expansion_of_a_mounted_claim(api: HTTPClient, tmp_path: Path) -> None:
    manager = VolumeManager(api, tmp_path / "kubelet", node_name=FAKE_NODE)
    t = tag()
    rw_dir, ro_dir = tmp_path / "rw", tmp_path / "ro"
    rw_dir.mkdir()
    ro_dir.mkdir()
    claims, pvs = [f"inuse-{t}", f"inuse-ro-{t}"], [f"pv-inuse-{t}", f"pv-inuse-ro-{t}"]
    pod_name = f"inuse-{t}"
    try:
        await make_claim(api, claims[0], local_path_pv(pvs[0], rw_dir, claims[0]))
        await make_claim(api, claims[1], local_path_pv(pvs[1], ro_dir, claims[1]))
        pod = await api.create(PODS, pod_manifest(pod_name, FAKE_NODE, [
            claim_volume("rw", claims[0]), claim_volume("ro", claims[1], read_only=True)], []), "default")
        await manager.set_up(pod)
        assert await manager.refresh(pod) is False  # nothing to expand, no file changed

        for claim, pv in zip(claims, pvs, strict=True):  # the expander's work while the pod runs
            await api.patch(PERSISTENT_VOLUMES, pv, {"spec": {"capacity": {"storage": "3Gi"}}})
            await api.patch(PERSISTENT_VOLUME_CLAIMS, claim, pending_expansion("1Gi", "3Gi"), "default",
                            subresource="status")
        await manager.refresh(pod)
        grown = (await api.get(PERSISTENT_VOLUME_CLAIMS, claims[0], "default"))["status"]
        assert grown["capacity"] == {"storage": "3Gi"} and "allocatedResourceStatuses" not in grown
        assert "conditions" not in grown
        untouched = (await api.get(PERSISTENT_VOLUME_CLAIMS, claims[1], "default"))["status"]
        assert untouched["capacity"] == {"storage": "1Gi"}  # mounted read-only: not expanded
        assert untouched["allocatedResourceStatuses"] == {"storage": "NodeResizePending"}

        async def reasons() -> dict[str, str] | None:
            events = (await api.list(EVENTS, "default", field_selector=f"involvedObject.name={pod_name}"))["items"]
            found = {e["reason"]: e["message"] for e in events}
            return found if {"FileSystemResizeSuccessful", "FileSystemResizeFailed"} <= set(found) else None

        found = await async_wait_for(reasons, 30, what="the expansion events on the pod")
        assert found["FileSystemResizeSuccessful"] == \
            f'MountVolume.NodeExpandVolume succeeded for volume "{pvs[0]}" {FAKE_NODE}'
        assert found["FileSystemResizeFailed"] == \
            f'MountVolume.NodeExpandVolume failed for volume "{pvs[1]}" requested read-only file system'
        await manager.tear_down(pod["metadata"]["uid"])
    finally:
        await manager.recorder.flush()
        await delete_all(api, [pod_name], claims, pvs)


async def test_an_unbound_or_missing_ephemeral_claim_is_a_volume_error(api: HTTPClient, tmp_path: Path) -> None:
    manager = VolumeManager(api, tmp_path / "kubelet", node_name=FAKE_NODE)
    t = tag()
    pod_name = f"eph-{t}"
    template = {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}}}
    try:
        pod = await api.create(PODS, pod_manifest(pod_name, FAKE_NODE, [{"name": "e", "ephemeral": template}], []),
                               "default")
        with pytest.raises(VolumeError) as missing:
            await manager.set_up(pod)
        assert missing.value.message == \
            f'MountVolume.SetUp failed for volume "e" : persistentvolumeclaim "{pod_name}-e" not found'
        await api.create(PERSISTENT_VOLUME_CLAIMS, claim_manifest(f"{pod_name}-e", "nowhere", owner=pod), "default")
        with pytest.raises(VolumeError) as unbound:
            await manager.set_up(pod)
        assert unbound.value.reason == f"error processing PVC default/{pod_name}-e: PVC is not bound"
    finally:
        await delete_all(api, [pod_name], [f"{pod_name}-e"], [])


# ---------------------------------------------------------------------- the pure rules


def test_needs_node_expansion_and_the_status_patch() -> None:
    pv = local_path_pv("pv-x", Path("/nowhere"), "c", capacity="2Gi")
    claim = {"metadata": {"name": "c", "namespace": "default", "resourceVersion": "7"},
             "spec": {"volumeName": "pv-x"}, **pending_expansion("1Gi", "2Gi")}
    claim["status"]["conditions"].insert(0, {"type": "ModifyingVolume", "status": "True"})
    assert needs_node_expansion(claim, pv)
    assert node_expansion_status_patch(claim, pv) == {
        "metadata": {"resourceVersion": "7"},
        "status": {"capacity": {"storage": "2Gi"}, "allocatedResourceStatuses": None,
                   "conditions": [{"type": "ModifyingVolume", "status": "True"}]}}
    claim["status"]["allocatedResourceStatuses"]["other"] = "NodeResizePending"
    assert node_expansion_status_patch(claim, pv)["status"]["allocatedResourceStatuses"] == {"storage": None}

    def variant(**status: Any) -> Obj:
        return {**claim, "status": {**claim["status"], **status}}

    assert not needs_node_expansion(variant(allocatedResourceStatuses={"storage": "ControllerResizeInProgress"}), pv)
    assert not needs_node_expansion(variant(capacity={"storage": "2Gi"}), pv)
    assert not needs_node_expansion(variant(phase="Pending"), pv)
    assert needs_node_expansion(variant(allocatedResourceStatuses=None), pv)  # the legacy path: no resize status
    host_path_pv = {**pv, "spec": {**pv["spec"], "csi": None, "hostPath": {"path": "/x"}}}
    assert not needs_node_expansion(claim, host_path_pv)
