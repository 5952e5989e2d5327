"""The storage admission plugins and the storage objects a cluster starts with, on a real ``podlife up``.

- the ``local-path`` StorageClass is the default (``kubectl get storageclass`` says
  ``local-path (default)``) and its CSIDriver is there as a node-local driver shows it;
- DefaultStorageClass gives a claim without a class ``local-path``, leaves ``""`` alone
  and is off with ``--disable-admission-plugins DefaultStorageClass``;
- StorageObjectInUseProtection puts the protection finalizers on new claims and volumes;
- PersistentVolumeClaimResize lets a bound claim of an expandable class grow and refuses
  the others with Kubernetes' 403, as kubectl prints it;
- ``--no-default-storage-class`` starts without them; a later start creates them once, and
  keeps a user's deletion of the class across restarts.

The storage controllers are off (``--controllers``): nothing but admission touches the
claims (a claim is marked Bound through its status subresource, as the binder would).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from podlife.api.storage_admission import CLASS_MUST_SUPPORT_RESIZE, ONLY_BOUND_CAN_EXPAND, resize_refusal
from podlife.machinery.storage import LOCAL_PATH_DRIVER

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
#: every controller but the storage ones, whose work would change the claims under test
NO_STORAGE_CONTROLLERS = ("*,-persistentvolume-binder-controller,-persistentvolume-expander-controller,"
                          "-persistentvolume-protection-controller,-persistentvolumeclaim-protection-controller,"
                          "-ephemeral-volume-controller")


def start(data_dir: Path, *args: str) -> PodlifeProcess:
    return PodlifeProcess(data_dir, "--nodes", "0", "--controllers", NO_STORAGE_CONTROLLERS, *args,
                          kubectl=require_tool("kubectl")).start()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = start(tmp_path_factory.mktemp("storage-admission") / "data")
    try:
        yield proc
    finally:
        proc.stop()


def namespace(cluster: PodlifeProcess) -> str:
    name = f"sa-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def claim(name: str, size: str = "1Gi", annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    metadata: Obj = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def create(cluster: PodlifeProcess, ns: str | None, obj: Obj) -> Obj:
    where = ["-n", ns] if ns else []
    result = cluster.kubectl("create", *where, "-f", "-", "-o", "json", input=json.dumps(obj))
    return json.loads(result.stdout)


def storage_class(name: str, *, expandable: bool) -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "example.com/nowhere", "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": expandable}


def mark_bound(cluster: PodlifeProcess, ns: str, name: str) -> None:
    """What the binder writes when it binds a claim (the phase is what resize looks at)."""
    cluster.kubectl("patch", "pvc", name, "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}))


def grow(cluster: PodlifeProcess, ns: str, name: str, size: str = "2Gi") -> Any:
    return cluster.kubectl("patch", "pvc", name, "-n", ns, "--type=merge",
                           "-p", json.dumps({"spec": {"resources": {"requests": {"storage": size}}}}), check=False)


def requested(cluster: PodlifeProcess, ns: str, name: str) -> str:
    return str(cluster.kubectl_json("get", "pvc", name, "-n", ns)["spec"]["resources"]["requests"]["storage"])


# ---- what a cluster starts with ------------------------------------------------------------


def test_local_path_is_the_default_storage_class(cluster: PodlifeProcess) -> None:
    table = cluster.kubectl("get", "storageclass").stdout
    assert re.search(rf"^local-path \(default\)\s+{re.escape(LOCAL_PATH_DRIVER)}\s+Delete\s+WaitForFirstConsumer\s+"
                     r"true\s", table, re.MULTILINE), table
    sc = cluster.kubectl_json("get", "storageclass", "local-path")
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (sc["provisioner"], sc["reclaimPolicy"], sc["volumeBindingMode"], sc["allowVolumeExpansion"]) == (
        LOCAL_PATH_DRIVER, "Delete", "WaitForFirstConsumer", True)


def test_the_csi_driver_is_shown_as_a_node_local_driver(cluster: PodlifeProcess) -> None:
    table = cluster.kubectl("get", "csidriver").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY", "TOKENREQUESTS",
                              "REQUIRESREPUBLISH", "MODES", "AGE"]
    [row] = rows
    assert row.split()[:7] == [LOCAL_PATH_DRIVER, "false", "true", "false", "<unset>", "false", "Persistent"]
    driver = cluster.kubectl_json("get", "csidriver", LOCAL_PATH_DRIVER)
    assert driver["spec"] == {"attachRequired": False, "podInfoOnMount": True, "volumeLifecycleModes": ["Persistent"],
                              "storageCapacity": False, "fsGroupPolicy": "File", "requiresRepublish": False,
                              "seLinuxMount": False}


# ---- DefaultStorageClass ---------------------------------------------------------------------


def test_a_claim_without_a_class_gets_the_default_one(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    created = create(cluster, ns, claim("plain"))
    assert created["spec"]["storageClassName"] == "local-path"
    columns = cluster.kubectl("get", "pvc", "plain", "-n", ns, "--no-headers",
                              "-o", "custom-columns=CLASS:.spec.storageClassName").stdout.split()
    assert columns == ["local-path"]


def test_an_empty_class_asks_for_none_and_stays_empty(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    created = create(cluster, ns, claim("classless", storageClassName=""))
    assert created["spec"]["storageClassName"] == ""


def test_a_named_class_and_the_beta_annotation_are_kept(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    assert create(cluster, ns, claim("named", storageClassName="fast"))["spec"]["storageClassName"] == "fast"
    annotated = create(cluster, ns, claim("annotated", annotations={"volume.beta.kubernetes.io/storage-class": "old"}))
    assert "storageClassName" not in annotated["spec"]


def test_of_two_default_classes_the_newest_wins(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    newer = storage_class(f"z-newer-{ns}", expandable=False)  # after local-path by name: only its age wins
    newer["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    stamp = cluster.kubectl_json("get", "storageclass", "local-path")["metadata"]["creationTimestamp"]
    born = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    wait_for(lambda: datetime.now(timezone.utc) >= born + timedelta(seconds=1),
             what="a creationTimestamp (whole seconds) later than local-path's")
    create(cluster, None, newer)
    try:
        assert create(cluster, ns, claim("second"))["spec"]["storageClassName"] == newer["metadata"]["name"]
    finally:
        cluster.kubectl("delete", "storageclass", newer["metadata"]["name"])
    assert create(cluster, ns, claim("third"))["spec"]["storageClassName"] == "local-path"


def test_the_plugin_can_be_disabled(tmp_path: Path) -> None:
    proc = start(tmp_path / "data", "--disable-admission-plugins", "DefaultStorageClass")
    try:
        assert "local-path (default)" in proc.kubectl("get", "storageclass").stdout
        ns = namespace(proc)
        created = create(proc, ns, claim("untouched"))
        assert "storageClassName" not in created["spec"]
        assert created["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]  # the other plugins still run
    finally:
        proc.stop()


# ---- StorageObjectInUseProtection ---------------------------------------------------------


def test_new_claims_and_volumes_carry_their_protection_finalizer(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    assert create(cluster, ns, claim("guarded"))["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    own = claim("own-finalizers")
    own["metadata"]["finalizers"] = ["example.com/keep", "kubernetes.io/pvc-protection"]
    assert create(cluster, ns, own)["metadata"]["finalizers"] == ["example.com/keep", "kubernetes.io/pvc-protection"]
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}",
                                                                           "finalizers": ["example.com/keep"]},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                       "hostPath": {"path": "/nonexistent/podlife-test"}, "storageClassName": "manual"}}
    created = create(cluster, None, volume)
    assert created["metadata"]["finalizers"] == ["example.com/keep", "kubernetes.io/pv-protection"]
    kubectl_view = cluster.kubectl("get", "pv", f"pv-{ns}", "-o", "jsonpath={.metadata.finalizers}").stdout
    assert json.loads(kubectl_view) == ["example.com/keep", "kubernetes.io/pv-protection"]


def test_an_update_adds_no_finalizer(cluster: PodlifeProcess) -> None:
    """The plugin looks at creates only: a finalizer a user removes stays removed."""
    ns = namespace(cluster)
    create(cluster, ns, claim("unguarded"))
    cluster.kubectl("patch", "pvc", "unguarded", "-n", ns, "--type=json",
                    "-p", json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]))
    assert "finalizers" not in cluster.kubectl_json("get", "pvc", "unguarded", "-n", ns)["metadata"]


# ---- PersistentVolumeClaimResize --------------------------------------------------------------


def test_a_bound_claim_of_an_expandable_class_grows(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster)
    create(cluster, ns, claim("growing"))  # local-path: allowVolumeExpansion true
    mark_bound(cluster, ns, "growing")
    result = grow(cluster, ns, "growing")
    assert result.returncode == 0, result.stderr
    assert requested(cluster, ns, "growing") == "2Gi"


@pytest.mark.parametrize("class_kind", ["not-expandable", "missing", "none"])
def test_growing_a_claim_whose_class_forbids_it_is_forbidden(cluster: PodlifeProcess, class_kind: str) -> None:
    ns = namespace(cluster)
    class_name = {"not-expandable": f"fixed-{ns}", "missing": f"gone-{ns}", "none": ""}[class_kind]
    if class_kind == "not-expandable":
        create(cluster, None, storage_class(class_name, expandable=False))
    create(cluster, ns, claim("fixed", storageClassName=class_name))
    mark_bound(cluster, ns, "fixed")
    result = grow(cluster, ns, "fixed")
    assert result.returncode != 0
    assert (f'Error from server (Forbidden): persistentvolumeclaims "fixed" is forbidden: '
            f'{CLASS_MUST_SUPPORT_RESIZE}') in result.stderr
    assert requested(cluster, ns, "fixed") == "1Gi"
    if class_kind == "not-expandable":
        cluster.kubectl("delete", "storageclass", class_name)


def test_shrinking_or_keeping_the_size_is_not_resize_admissions_business(cluster: PodlifeProcess) -> None:
    """A bound claim of a class that forbids expansion may still change its labels (no growth)."""
    ns = namespace(cluster)
    create(cluster, ns, claim("steady", storageClassName=""))
    mark_bound(cluster, ns, "steady")
    cluster.kubectl("label", "pvc", "steady", "-n", ns, "tier=db")
    assert grow(cluster, ns, "steady", "1Gi").returncode == 0


def test_growing_an_unbound_claim_is_refused(cluster: PodlifeProcess) -> None:
    """As in Kubernetes, the claim's own validation refuses first (422: only a bound claim's requests may
    change), before PersistentVolumeClaimResize would say ``Only bound ... can be expanded``."""
    ns = namespace(cluster)
    create(cluster, ns, claim("pending"))
    result = grow(cluster, ns, "pending")
    assert result.returncode != 0
    assert ('The PersistentVolumeClaim "pending" is invalid: spec: Forbidden: spec is immutable after creation '
            'except resources.requests and volumeAttributesClassName for bound claims') in result.stderr
    assert requested(cluster, ns, "pending") == "1Gi"


def test_resize_decisions() -> None:
    """The decision itself, for the case the API cannot reach (an unbound claim passes validation only if
    its spec did not change) and the others."""
    def pvc(size: str, phase: str = "Bound", cls: str = "c") -> Obj:
        return {"spec": {"storageClassName": cls, "resources": {"requests": {"storage": size}}},
                "status": {"phase": phase}}

    expandable = {"allowVolumeExpansion": True}
    assert resize_refusal(pvc("2Gi"), pvc("1Gi", "Pending"), expandable) == ONLY_BOUND_CAN_EXPAND
    assert resize_refusal(pvc("2Gi"), pvc("1Gi"), expandable) is None
    assert resize_refusal(pvc("2Gi"), pvc("1Gi"), {"allowVolumeExpansion": False}) == CLASS_MUST_SUPPORT_RESIZE
    assert resize_refusal(pvc("2Gi"), pvc("1Gi"), {}) == CLASS_MUST_SUPPORT_RESIZE
    assert resize_refusal(pvc("2Gi"), pvc("1Gi"), None) == CLASS_MUST_SUPPORT_RESIZE
    assert resize_refusal(pvc("2Gi", cls="d"), pvc("1Gi"), expandable) == CLASS_MUST_SUPPORT_RESIZE
    assert resize_refusal(pvc("1Gi", "Pending"), pvc("2Gi", "Pending"), None) is None  # shrinking
    assert resize_refusal(pvc("1024Mi"), pvc("1Gi"), None) is None  # the same quantity, spelled otherwise


# ---- --no-default-storage-class and restarts -------------------------------------------------


def test_defaults_are_created_once_and_a_deleted_class_stays_deleted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = start(data_dir, "--no-default-storage-class")
    try:
        assert proc.kubectl_json("get", "storageclass")["items"] == []
        assert proc.kubectl_json("get", "csidriver")["items"] == []
        ns = namespace(proc)
        assert "storageClassName" not in create(proc, ns, claim("no-default"))["spec"]  # no default: left alone
    finally:
        proc.stop()
    proc = start(data_dir)  # the first start with defaults: both are made
    try:
        assert "local-path (default)" in proc.kubectl("get", "storageclass").stdout
        assert proc.kubectl_json("get", "csidriver", LOCAL_PATH_DRIVER)["spec"]["fsGroupPolicy"] == "File"
        proc.kubectl("delete", "storageclass", "local-path")
    finally:
        proc.stop()
    proc = start(data_dir)  # the user's deletion is kept; the driver's registration stays
    try:
        assert proc.kubectl_json("get", "storageclass")["items"] == []
        assert proc.kubectl_json("get", "csidriver", LOCAL_PATH_DRIVER)["metadata"]["name"] == LOCAL_PATH_DRIVER
    finally:
        proc.stop()
