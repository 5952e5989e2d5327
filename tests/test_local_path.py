"""The local-path provisioner (``podlife/node/local_path.py``): its decisions, then a real ``podlife up``.

The cluster runs without the storage controllers (their work -- binding, protection --
would change the objects under the test's feet) and without the
StorageObjectInUseProtection admission (no protection finalizers, which only those
controllers remove); the test plays the PV controller: it annotates claims with
``volume.kubernetes.io/storage-provisioner`` (and, for WaitForFirstConsumer, the
scheduler's ``selected-node``) and marks volumes Released. What it checks: the PV and
its fields, the directory under the node's storage directory, the claim's events, an
Immediate claim taken for the node, reclaim Delete removing both, Retain keeping both,
the CSINode, and a Block / ReadWriteMany claim refused.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from podlife.cli import _parser
from podlife.client.base import CSI_NODES, NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES
from podlife.cluster import Cluster, ClusterConfig
from podlife.machinery.storage import (ANN_BETA_STORAGE_PROVISIONER, ANN_PROVISIONED_BY, ANN_SELECTED_NODE,
                                       ANN_STORAGE_PROVISIONER, LOCAL_PATH_DRIVER, PATH_ATTRIBUTE, TOPOLOGY_KEY)
from podlife.node.local_path import (PROVISIONER_FINALIZER, PROVISIONER_IDENTITY_ATTRIBUTE, SIMULATED_ROOT,
                                     LocalPathProvisioner, Provision, Reclaim, Refuse, Skip, Take, choose_node,
                                     csinode_for, decide_claim, decide_reclaim, removable_directory, volume_for,
                                     volume_node, volume_path)
from tests.cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
from tests.in_process import InProcessApi

Obj = dict[str, Any]

STORAGE_CONTROLLERS = ("persistentvolume-binder-controller", "persistentvolume-protection-controller",
                       "persistentvolumeclaim-protection-controller", "persistentvolume-expander-controller",
                       "ephemeral-volume-controller")


# --------------------------------------------------------------------------- pure decisions


def claim(name: str = "data", *, annotations: dict[str, str] | None = None, uid: str = "u-1",
          **spec: Any) -> Obj:
    body: Obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7",
                              "annotations": {ANN_STORAGE_PROVISIONER: LOCAL_PATH_DRIVER, **(annotations or {})}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                          "storageClassName": "lp", **spec}}
    return body


def storage_class(mode: str = "WaitForFirstConsumer", *, provisioner: str = LOCAL_PATH_DRIVER, **extra: Any) -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "lp"},
            "provisioner": provisioner, "volumeBindingMode": mode, **extra}


def never() -> str:
    raise AssertionError("no node should be chosen")


def test_volume_path_is_pv_namespace_claim() -> None:
    assert volume_path(Path("/s"), "pvc-1", "ns", "data") == Path("/s/pvc-1_ns_data")


def test_a_claim_not_asked_for_bound_or_deleted_is_skipped() -> None:
    sc = storage_class()
    selected = {ANN_SELECTED_NODE: "n1"}
    not_ours = claim(annotations=selected)
    not_ours["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] = "other.example.com"
    bound = claim(annotations=selected, volumeName="pv-1")
    deleting = claim(annotations=selected)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    for c in (not_ours, bound, deleting):
        assert isinstance(decide_claim(c, sc, False, ["n1"], never), Skip)
    beta = claim(annotations=selected)
    beta["metadata"]["annotations"] = {ANN_BETA_STORAGE_PROVISIONER: LOCAL_PATH_DRIVER, **selected}
    assert decide_claim(beta, sc, False, ["n1"], never) == Provision("n1")


def test_the_class_must_exist_and_be_ours_and_no_volume_made_yet() -> None:
    c = claim(annotations={ANN_SELECTED_NODE: "n1"})
    assert isinstance(decide_claim(c, None, False, ["n1"], never), Skip)
    assert isinstance(decide_claim(c, storage_class(provisioner="x.example.com"), False, ["n1"], never), Skip)
    assert isinstance(decide_claim(c, storage_class(), True, ["n1"], never), Skip)  # idempotent
    assert decide_claim(c, storage_class(), False, ["n1"], never) == Provision("n1")


def test_wait_for_first_consumer_provisions_only_on_our_selected_node() -> None:
    sc = storage_class("WaitForFirstConsumer")
    assert isinstance(decide_claim(claim(), sc, False, ["n1"], never), Skip)  # no node selected yet
    assert isinstance(decide_claim(claim(annotations={ANN_SELECTED_NODE: "n2"}), sc, False, ["n1"], never), Skip)
    assert decide_claim(claim(annotations={ANN_SELECTED_NODE: "n2"}), sc, False, ["n1", "n2"], never) == Provision("n2")


def test_an_immediate_claim_is_taken_for_a_chosen_node() -> None:
    sc = storage_class("Immediate")
    assert decide_claim(claim(), sc, False, ["n1", "n2"], lambda: "n2") == Take("n2")
    assert decide_claim(claim(annotations={ANN_SELECTED_NODE: "n1"}), sc, False, ["n1"], never) == Provision("n1")
    assert isinstance(decide_claim(claim(annotations={ANN_SELECTED_NODE: "n9"}), sc, False, ["n1"], never), Skip)


def test_block_and_shared_access_modes_are_refused() -> None:
    sc = storage_class()
    selected = {ANN_SELECTED_NODE: "n1"}
    block = decide_claim(claim(annotations=selected, volumeMode="Block"), sc, False, ["n1"], never)
    assert isinstance(block, Refuse) and "Block" in block.message
    for mode in ("ReadWriteMany", "ReadOnlyMany"):
        refused = decide_claim(claim(annotations=selected, accessModes=[mode]), sc, False, ["n1"], never)
        assert isinstance(refused, Refuse) and mode in refused.message
    assert decide_claim(claim(annotations=selected, accessModes=["ReadWriteOncePod"]), sc, False, ["n1"],
                        never) == Provision("n1")


def test_choose_node_fewest_volumes_then_name_simulated_in_rotation() -> None:
    assert choose_node(["b", "a", "c"], {"a": 2, "b": 1, "c": 1}) == "b"
    assert choose_node(["b", "a"], {}) == "a"
    assert [choose_node(["b", "a", "c"], {"a": 5}, simulated=True, turn=t) for t in range(4)] == ["a", "b", "c", "a"]


def test_volume_for_carries_the_claim_class_node_and_directory() -> None:
    sc = storage_class(reclaimPolicy="Retain", mountOptions=["noatime"])
    pv = volume_for(claim(volumeMode="Filesystem"), sc, "n1", Path("/s/pvc-u-1_ns_data"), "123-n1")
    assert pv["metadata"] == {"name": "pvc-u-1", "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_DRIVER}}
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "1Gi"} and spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain" and spec["mountOptions"] == ["noatime"]
    assert spec["storageClassName"] == "lp" and spec["volumeMode"] == "Filesystem"
    assert spec["claimRef"]["uid"] == "u-1" and spec["claimRef"]["name"] == "data"
    assert spec["csi"] == {"driver": LOCAL_PATH_DRIVER, "volumeHandle": "pvc-u-1", "volumeAttributes": {
        PATH_ATTRIBUTE: "/s/pvc-u-1_ns_data", PROVISIONER_IDENTITY_ATTRIBUTE: "123-n1"}}
    assert volume_node(pv) == "n1"
    deleting = volume_for(claim(), storage_class(), "n1", Path("/s/x"), "i")
    assert deleting["metadata"]["finalizers"] == [PROVISIONER_FINALIZER]
    assert deleting["spec"]["persistentVolumeReclaimPolicy"] == "Delete" and "mountOptions" not in deleting["spec"]


def provisioned(policy: str = "Delete", phase: str = "Released", node: str = "n1", **meta: Any) -> Obj:
    sc = storage_class(reclaimPolicy=policy)
    pv = volume_for(claim(), sc, node, Path("/s/x"), "i")
    pv["metadata"].update(meta)
    pv["status"] = {"phase": phase}
    return pv


def test_reclaim_decisions() -> None:
    assert decide_reclaim(provisioned(), ["n1"]) == Reclaim("n1", True, True, True)
    assert decide_reclaim(provisioned(), ["n2"]) is None  # another node's
    assert decide_reclaim(provisioned(phase="Bound"), ["n1"]) is None
    assert decide_reclaim(provisioned(phase="Available"), ["n1"]) is None
    being_deleted = provisioned(phase="Available", deletionTimestamp="2026-01-01T00:00:00Z")
    assert decide_reclaim(being_deleted, ["n1"]) == Reclaim("n1", True, True, False)
    assert decide_reclaim(provisioned(phase="Bound", deletionTimestamp="2026-01-01T00:00:00Z"), ["n1"]) is None
    assert decide_reclaim(provisioned("Retain"), ["n1"]) is None
    retained_deleted = provisioned("Retain", deletionTimestamp="2026-01-01T00:00:00Z",
                                   finalizers=[PROVISIONER_FINALIZER])
    assert decide_reclaim(retained_deleted, ["n1"]) == Reclaim("n1", False, True, False)
    foreign = provisioned()
    foreign["metadata"]["annotations"] = {ANN_PROVISIONED_BY: "other.example.com"}
    assert decide_reclaim(foreign, ["n1"]) is None


def test_only_a_directory_inside_the_storage_dir_is_removable(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (storage / "out").symlink_to(tmp_path / "elsewhere")
    assert removable_directory(str(storage / "pvc-1_ns_c"), storage) == storage.resolve() / "pvc-1_ns_c"
    assert removable_directory(str(storage / "out"), storage) == storage.resolve() / "out"  # the link, not its target
    for bad in (str(storage), str(tmp_path / "elsewhere"), str(storage / ".." / "elsewhere"),
                str(storage / "out" / "x"), "relative/dir", "", "/"):
        assert removable_directory(bad, storage) is None, bad


def test_csinode_for_creates_keeps_other_drivers_and_follows_the_node_uid() -> None:
    node = {"metadata": {"name": "n1", "uid": "node-uid"}}
    ours = {"name": LOCAL_PATH_DRIVER, "nodeID": "n1", "topologyKeys": [TOPOLOGY_KEY]}
    created = csinode_for(node, None)
    assert created == {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {
        "name": "n1", "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid"}]},
        "spec": {"drivers": [ours]}}
    assert csinode_for(node, {**created, "metadata": {**created["metadata"], "resourceVersion": "3"}}) is None
    other = {"name": "other.csi.example.com", "nodeID": "x"}
    existing = {"metadata": {"name": "n1", "resourceVersion": "3", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "old-uid"}]}, "spec": {"drivers": [other]}}
    updated = csinode_for(node, existing)
    assert updated is not None
    assert updated["spec"]["drivers"] == [other, ours] and updated["metadata"]["resourceVersion"] == "3"
    assert [r["uid"] for r in updated["metadata"]["ownerReferences"]] == ["node-uid"]


def test_local_path_dir_flag_and_storage_dirs(tmp_path: Path) -> None:
    args = _parser().parse_args(["up", "--local-path-dir", str(tmp_path / "volumes")])
    assert args.local_path_dir == tmp_path / "volumes"
    assert _parser().parse_args(["up"]).local_path_dir is None
    default = Cluster(ClusterConfig(data_dir=tmp_path / "data"))
    assert default.local_path_dir("n1") == (tmp_path / "data").resolve() / "nodes" / "n1" / "storage"
    configured = Cluster(ClusterConfig(data_dir=tmp_path / "data", local_path_dir=tmp_path / "volumes"))
    assert configured.local_path_dir("n1") == (tmp_path / "volumes").resolve() / "n1"


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    controllers = ",".join(["*", *(f"-{name}" for name in STORAGE_CONTROLLERS)])
    proc = PodlifeProcess(tmp_path_factory.mktemp("local-path") / "data", "--controllers", controllers,
                          "--disable-admission-plugins", "StorageObjectInUseProtection",
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def node(cluster: PodlifeProcess) -> str:
    nodes = wait_for(lambda: cluster.kubectl_json("get", "nodes")["items"], 30, what="the node")
    return str(nodes[0]["metadata"]["name"])


@pytest.fixture(scope="module")
def classes(cluster: PodlifeProcess) -> Iterator[None]:
    made = {"lp-wffc": ("WaitForFirstConsumer", "Delete"), "lp-immediate": ("Immediate", "Delete"),
            "lp-retain": ("WaitForFirstConsumer", "Retain")}
    for name, (mode, policy) in made.items():
        cluster.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": LOCAL_PATH_DRIVER, "volumeBindingMode": mode, "reclaimPolicy": policy}))
    yield
    cluster.kubectl("delete", "storageclass", *made, "--ignore-not-found")


def storage_dir(cluster: PodlifeProcess, node: str) -> Path:
    return cluster.data_dir / "nodes" / node / "storage"


def make_claim(cluster: PodlifeProcess, ns: str, name: str, cls: str, *, node: str | None = None,
               **spec: Any) -> Obj:
    annotations = {ANN_STORAGE_PROVISIONER: LOCAL_PATH_DRIVER}
    if node:
        annotations[ANN_SELECTED_NODE] = node
    body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}},
                     "storageClassName": cls, **spec}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    created: Obj = cluster.kubectl_json("get", "pvc", "-n", ns, name)
    return created


def get_pv(cluster: PodlifeProcess, name: str) -> Obj | None:
    result = cluster.kubectl("get", "pv", name, "-o", "json", "--ignore-not-found")
    return json.loads(result.stdout) if result.stdout.strip() else None


def wait_pv(cluster: PodlifeProcess, claim_obj: Obj) -> Obj:
    name = f"pvc-{claim_obj['metadata']['uid']}"
    found = wait_for(lambda: get_pv(cluster, name), 30, 0.1, what=f"volume {name}")
    assert found is not None
    return found


def claim_events(cluster: PodlifeProcess, ns: str, name: str) -> list[Obj]:
    events = cluster.kubectl_json("get", "events", "-n", ns)["items"]
    return [e for e in events if e["involvedObject"].get("name") == name
            and e["involvedObject"].get("kind") == "PersistentVolumeClaim"]


def wait_reasons(cluster: PodlifeProcess, ns: str, name: str, reasons: set[str]) -> list[Obj]:
    def found() -> list[Obj]:
        events = claim_events(cluster, ns, name)
        return events if reasons <= {e["reason"] for e in events} else []
    return wait_for(found, 30, 0.1, what=f"events {sorted(reasons)} of claim {ns}/{name}")


def release(cluster: PodlifeProcess, ns: str, claim_name: str, pv_name: str) -> None:
    """What the PV controller does once a claim is gone: its volume turns Released."""
    cluster.kubectl("delete", "pvc", "-n", ns, claim_name, "--wait=true")
    cluster.kubectl("patch", "pv", pv_name, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Released"}}))


@pytest.fixture
def ns(cluster: PodlifeProcess, classes: None, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "lp-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=true", timeout=90)


def test_a_selected_claim_gets_a_directory_and_a_prebound_volume_then_delete_removes_both(
        cluster: PodlifeProcess, node: str, ns: str) -> None:
    c = make_claim(cluster, ns, "data", "lp-wffc", node=node)
    pv = wait_pv(cluster, c)
    name = f"pvc-{c['metadata']['uid']}"
    directory = volume_path(storage_dir(cluster, node).resolve(), name, ns, "data")
    assert pv["metadata"]["annotations"][ANN_PROVISIONED_BY] == LOCAL_PATH_DRIVER
    assert PROVISIONER_FINALIZER in pv["metadata"]["finalizers"]
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "64Mi"} and spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete" and spec["storageClassName"] == "lp-wffc"
    assert spec["volumeMode"] == "Filesystem"
    assert {k: spec["claimRef"][k] for k in ("kind", "namespace", "name", "uid")} == {
        "kind": "PersistentVolumeClaim", "namespace": ns, "name": "data", "uid": c["metadata"]["uid"]}
    assert spec["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [node]}]}]
    csi = spec["csi"]
    assert csi["driver"] == LOCAL_PATH_DRIVER and csi["volumeHandle"] == name
    assert csi["volumeAttributes"][PATH_ATTRIBUTE] == str(directory)
    identity = csi["volumeAttributes"][PROVISIONER_IDENTITY_ATTRIBUTE]
    assert identity.endswith(f"-{node}")
    assert directory.is_dir() and stat.S_IMODE(directory.stat().st_mode) == 0o777

    events = wait_reasons(cluster, ns, "data", {"Provisioning", "ProvisioningSucceeded"})
    by_reason = {e["reason"]: e for e in events}
    assert by_reason["Provisioning"]["message"] == f'External provisioner is provisioning volume for claim "{ns}/data"'
    assert by_reason["ProvisioningSucceeded"]["message"] == f"Successfully provisioned volume {name}"
    assert by_reason["ProvisioningSucceeded"]["type"] == "Normal"
    assert by_reason["ProvisioningSucceeded"]["source"]["component"] == f"{LOCAL_PATH_DRIVER}_{identity}"
    assert "ProvisioningFailed" not in by_reason

    (directory / "file").write_text("written by a pod")
    release(cluster, ns, "data", name)
    wait_for(lambda: get_pv(cluster, name) is None, 30, 0.1, what=f"volume {name} deleted")
    assert not directory.exists()


def test_an_immediate_claim_is_taken_for_the_node(cluster: PodlifeProcess, node: str, ns: str) -> None:
    c = make_claim(cluster, ns, "now", "lp-immediate")
    taken = wait_for(lambda: cluster.kubectl_json("get", "pvc", "-n", ns, "now")["metadata"]
                     .get("annotations", {}).get(ANN_SELECTED_NODE), 30, 0.1, what="selected-node written")
    assert taken == node
    pv = wait_pv(cluster, c)
    assert volume_node(pv) == node
    directory = Path(pv["spec"]["csi"]["volumeAttributes"][PATH_ATTRIBUTE])
    assert directory.parent == storage_dir(cluster, node).resolve() and directory.is_dir()
    release(cluster, ns, "now", pv["metadata"]["name"])
    wait_for(lambda: get_pv(cluster, pv["metadata"]["name"]) is None, 30, 0.1, what="volume deleted")
    assert not directory.exists()


def test_retain_keeps_the_directory_and_the_volume(cluster: PodlifeProcess, node: str, ns: str) -> None:
    kept = make_claim(cluster, ns, "kept", "lp-retain", node=node)
    gone = make_claim(cluster, ns, "gone", "lp-wffc", node=node)
    kept_pv, gone_pv = wait_pv(cluster, kept), wait_pv(cluster, gone)
    kept_dir = Path(kept_pv["spec"]["csi"]["volumeAttributes"][PATH_ATTRIBUTE])
    assert kept_pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert PROVISIONER_FINALIZER not in (kept_pv["metadata"].get("finalizers") or [])
    try:
        release(cluster, ns, "kept", kept_pv["metadata"]["name"])
        # the Delete volume released after it: once that one is reclaimed, the retained one was judged too
        release(cluster, ns, "gone", gone_pv["metadata"]["name"])
        wait_for(lambda: get_pv(cluster, gone_pv["metadata"]["name"]) is None, 30, 0.1, what="the Delete volume gone")
        still = get_pv(cluster, kept_pv["metadata"]["name"])
        assert still is not None and still["status"]["phase"] == "Released"
        assert kept_dir.is_dir()
    finally:
        cluster.kubectl("delete", "pv", kept_pv["metadata"]["name"], "--ignore-not-found")
        shutil.rmtree(kept_dir, ignore_errors=True)


def test_block_and_read_write_many_claims_are_refused(cluster: PodlifeProcess, node: str, ns: str) -> None:
    block = make_claim(cluster, ns, "block", "lp-wffc", node=node, volumeMode="Block")
    shared = make_claim(cluster, ns, "shared", "lp-wffc", node=node, accessModes=["ReadWriteMany"])
    for c, word in ((block, "Block"), (shared, "ReadWriteMany")):
        name = c["metadata"]["name"]
        failed = [e for e in wait_reasons(cluster, ns, name, {"ProvisioningFailed"}) if e["reason"] == "ProvisioningFailed"]
        assert failed[0]["type"] == "Warning"
        assert failed[0]["message"].startswith('failed to provision volume with StorageClass "lp-wffc": ')
        assert word in failed[0]["message"]
        assert get_pv(cluster, f"pvc-{c['metadata']['uid']}") is None
        assert not volume_path(storage_dir(cluster, node).resolve(), f"pvc-{c['metadata']['uid']}", ns, name).exists()


def test_the_node_has_a_csinode_listing_the_driver(cluster: PodlifeProcess, node: str) -> None:
    def csinode() -> Obj | None:
        result = cluster.kubectl("get", "csinode", node, "-o", "yaml", "--ignore-not-found")
        return yaml.safe_load(result.stdout) if result.stdout.strip() else None
    found = wait_for(csinode, 30, 0.1, what=f"CSINode {node}")
    assert found is not None
    node_obj = cluster.kubectl_json("get", "node", node)
    assert found["apiVersion"] == "storage.k8s.io/v1" and found["kind"] == "CSINode"
    assert found["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_obj["metadata"]["uid"]}]
    assert found["spec"]["drivers"] == [{"name": LOCAL_PATH_DRIVER, "nodeID": node, "topologyKeys": [TOPOLOGY_KEY]}]


# --------------------------------------------------------------------------- simulated nodes, in process


async def test_simulated_nodes_get_csinodes_and_claims_in_rotation_taken_once(local_api: InProcessApi) -> None:
    """Two instances with disjoint simulated nodes (as ``--node-deployment`` runs one per node): every node
    gets its CSINode (nodes registered after the start too), every Immediate claim one volume on a node of
    the instance that took it, its path under the simulated root and nothing on disk."""
    client = local_api.client
    a_nodes = [f"a-{i:03d}" for i in range(60)]
    b_nodes = [f"b-{i:03d}" for i in range(60)]
    for name in a_nodes[:30] + b_nodes[:30]:  # the others register after the provisioners start
        await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    await client.create(STORAGE_CLASSES, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                          "metadata": {"name": "lp"}, "provisioner": LOCAL_PATH_DRIVER,
                                          "volumeBindingMode": "Immediate"})
    a = LocalPathProvisioner(client, dict.fromkeys(a_nodes), identity="1-a")
    b = LocalPathProvisioner(client, dict.fromkeys(b_nodes), identity="1-b")
    tasks = [asyncio.create_task(p.run()) for p in (a, b)]
    try:
        await a.wait_synced()
        await b.wait_synced()
        for name in a_nodes[30:] + b_nodes[30:]:
            await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        claims = []
        for i in range(40):
            body = claim(f"c{i}")
            body["metadata"] = {"name": f"c{i}", "namespace": "default",
                                "annotations": {ANN_STORAGE_PROVISIONER: LOCAL_PATH_DRIVER}}
            claims.append(await client.create(PERSISTENT_VOLUME_CLAIMS, body, "default"))
        await async_wait_for(lambda: len(a.volumes.cache) >= len(claims), 30, what="a volume per claim")
        volumes: list[Obj] = (await client.list(PERSISTENT_VOLUMES))["items"]
        assert sorted(v["metadata"]["name"] for v in volumes) == sorted(f"pvc-{c['metadata']['uid']}" for c in claims)
        for c in claims:
            current = await client.get(PERSISTENT_VOLUME_CLAIMS, c["metadata"]["name"], "default")
            node = current["metadata"]["annotations"][ANN_SELECTED_NODE]
            pv = next(v for v in volumes if v["metadata"]["name"] == f"pvc-{c['metadata']['uid']}")
            assert volume_node(pv) == node
            path = Path(pv["spec"]["csi"]["volumeAttributes"][PATH_ATTRIBUTE])
            assert path == volume_path(SIMULATED_ROOT / node, pv["metadata"]["name"], "default", c["metadata"]["name"])
            assert not path.exists()
        by_instance = {p: {node for node, names in p.volumes_on.items() if names} for p in (a, b)}
        assert all(len(names) == 1 for p in (a, b) for names in p.volumes_on.values() if names), \
            "simulated nodes are taken in rotation: no node twice before all had one"
        assert by_instance[a] <= set(a_nodes) and by_instance[b] <= set(b_nodes)
        await async_wait_for(lambda: len(b.csinodes.cache) == len(a_nodes) + len(b_nodes), 30,
                             what="a CSINode per node")
        found: list[Obj] = (await client.list(CSI_NODES))["items"]
        assert {n["metadata"]["name"] for n in found} == set(a_nodes) | set(b_nodes)
        assert all(n["spec"]["drivers"][0]["nodeID"] == n["metadata"]["name"] for n in found)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
