"""Real containers, driven as a user drives them: the real kubectl against ``podlife up --container-runtime oci``.

One cluster for the module (runc under conmon, the host image class). Each test
creates its pods and deletes them; the module's teardown stops the cluster (which
stops and removes every container) and then checks, through runc's own state
directory and the cgroup tree, that nothing of podlife's is left -- also after the
test that kills ``podlife up`` with SIGKILL and starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.kubelet.oci.cgroups import detect_layout, pod_cgroup_path
from podlife.kubelet.oci.runtime import OCIRuntime, unavailable_reasons
from podlife.kubelet.oci.conmon import find_conmon
from podlife.nodenet import names
from podlife.kubelet.oci.runc import find_runc

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e


def _require_oci() -> None:
    problems = unavailable_reasons(find_runc(), find_conmon(), detect_layout())
    if problems:
        if os.environ.get("CI"):
            pytest.fail("real containers cannot run here: " + "; ".join(problems))
        pytest.skip("real containers cannot run here: " + "; ".join(problems))


def _node_dirs(data_dir: Path) -> list[Path]:
    return [d for d in (data_dir / "nodes").iterdir() if d.is_dir()] if (data_dir / "nodes").is_dir() else []


def _leftovers(data_dir: Path) -> list[str]:
    """Containers still in runc's state dirs of the cluster's nodes."""
    left: list[str] = []
    for node in _node_dirs(data_dir):
        runtime = OCIRuntime(node)
        left += [s.id for s in asyncio.run(runtime.runc.list())]
    return left


def _network_namespaces(data_dir: Path) -> list[str]:
    """The cluster's node and fabric network namespaces still pinned under /run/netns."""
    prefix = names.cluster_netns_prefix(names.cluster_id(data_dir))
    return sorted(p.name for p in names.NETNS_DIR.glob(f"{prefix}*")) if names.NETNS_DIR.is_dir() else []


def _remove_everything(data_dir: Path) -> None:
    for node in _node_dirs(data_dir):
        asyncio.run(OCIRuntime(node).remove_everything())


@contextlib.contextmanager
def oci_cluster(data_dir: Path, *args: str) -> Iterator[PodlifeProcess]:
    """A ``podlife up --container-runtime oci`` cluster that leaves no container or mount behind.

    After it stops, whatever is left is removed (a failed test must not leave containers
    or mounts behind either), and then named in a failure.
    """
    _require_oci()
    proc = PodlifeProcess(data_dir, "--container-runtime", "oci", *args, kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()
        left = _leftovers(data_dir)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if str(data_dir) in line.split()[1]]
        _remove_everything(data_dir)
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount], check=False)
        namespaces = _network_namespaces(data_dir)
        for name in namespaces:
            subprocess.run(["ip", "netns", "del", name], check=False)
        assert not left, f"containers left behind by podlife up: {left}"
        assert not mounts, f"mounts left behind by podlife up: {mounts}"
        assert not namespaces, f"network namespaces left behind by podlife up: {namespaces}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("containers") / "data",
                     "--container-log-max-size", "16Ki", "--container-log-max-files", "3") as proc:
        yield proc


def apply(cluster: PodlifeProcess, pod: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def pod_manifest(name: str, *containers: dict, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": list(containers), **spec}}


def busybox(name: str = "c", *command: str, **extra: object) -> dict:
    return {"name": name, "image": "busybox", "command": list(command or ("sleep", "3600")), **extra}


def status(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name).get("status", {})


def wait_ready(cluster: PodlifeProcess, name: str, timeout: float = 60) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={int(timeout)}s", timeout=timeout + 10)


def exec_out(cluster: PodlifeProcess, pod: str, *command: str, input: str | None = None) -> str:
    args = ["exec", *(["-i"] if input is not None else []), pod, "--", *command]
    return cluster.kubectl(*args, input=input).stdout


def delete(cluster: PodlifeProcess, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--grace-period=1", "--wait=true", "--timeout=60s", check=False,
                    timeout=90)


def test_node_says_it_runs_real_containers(cluster: PodlifeProcess) -> None:
    node = cluster.kubectl_json("get", "nodes")["items"][0]
    annotations = node["metadata"]["annotations"]
    assert annotations["podlife.io/container-runtime"] == "oci"
    assert annotations["podlife.io/isolation"].startswith("containers")


def test_own_hostname_pid_namespace_mounts_and_no_host_paths(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("iso", busybox()))
    try:
        wait_ready(cluster, "iso")
        assert exec_out(cluster, "iso", "hostname").strip() == "iso"
        assert exec_out(cluster, "iso", "cat", "/proc/1/cmdline").split("\0")[:2] == ["sleep", "3600"]
        assert exec_out(cluster, "iso", "readlink", "/proc/1/ns/mnt").strip() != os.readlink("/proc/self/ns/mnt")
        for host_path in (str(Path.cwd()), "/root", str(cluster.data_dir)):
            result = cluster.kubectl("exec", "iso", "--", "ls", host_path, check=False)
            assert result.returncode != 0 or not result.stdout.strip(), f"{host_path} is visible: {result.stdout}"
        assert "podlife" not in exec_out(cluster, "iso", "cat", "/etc/hosts").lower().replace("kubernetes", "")
        assert status(cluster, "iso")["qosClass"] == "BestEffort"
        cid = status(cluster, "iso")["containerStatuses"][0]["containerID"]
        assert cid.startswith("podlife://") and len(cid) == len("podlife://") + 64
    finally:
        delete(cluster, "iso")


def test_env_configmap_secret_and_emptydir_volumes(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hello")
    cluster.kubectl("create", "secret", "generic", "sec", "--from-literal=password=s3cret")
    container = busybox(
        env=[{"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
             {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
             {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "COMBINED", "value": "$(MY_POD)-x"}],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"},
                      {"name": "scratch", "mountPath": "/scratch"}])
    apply(cluster, pod_manifest("vols", container, volumes=[
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "scratch", "emptyDir": {}}]))
    try:
        wait_ready(cluster, "vols")
        out = exec_out(cluster, "vols", "sh", "-c", "echo $FROM_CM $FROM_SECRET $MY_POD $COMBINED")
        assert out.strip() == "hello s3cret vols vols-x"
        assert exec_out(cluster, "vols", "cat", "/etc/cfg/greeting") == "hello"
        assert exec_out(cluster, "vols", "cat", "/etc/sec/password") == "s3cret"
        assert exec_out(cluster, "vols", "stat", "-L", "-c", "%a", "/etc/sec/password").strip() == "400"
        assert exec_out(cluster, "vols", "sh", "-c", "echo z > /scratch/f && cat /scratch/f").strip() == "z"
        write = cluster.kubectl("exec", "vols", "--", "sh", "-c", "echo x > /etc/cfg/new", check=False)
        assert write.returncode != 0  # configMap volumes are read-only
        assert exec_out(cluster, "vols", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace") == "default"
        cluster.kubectl("patch", "configmap", "cfg", "--type=merge", "-p", '{"data":{"greeting":"changed"}}')
        wait_for(lambda: exec_out(cluster, "vols", "cat", "/etc/cfg/greeting") == "changed", 60,
                 what="the configMap update in the file")
    finally:
        delete(cluster, "vols")
        cluster.kubectl("delete", "configmap", "cfg", check=False)
        cluster.kubectl("delete", "secret", "sec", check=False)


def test_a_bound_claim_mounts_its_host_path_volume(cluster: PodlifeProcess, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "e2e-disk"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                   "hostPath": {"path": str(disk), "type": "DirectoryOrCreate"},
                   "claimRef": {"namespace": "default", "name": "disk"}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "disk"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "", "volumeName": "e2e-disk"}}
    cluster.kubectl("apply", "-f", "-", input=f"{json.dumps(pv)}\n---\n{json.dumps(pvc)}\n")
    apply(cluster, pod_manifest("claims", busybox(volumeMounts=[{"name": "d", "mountPath": "/data"}]),
                                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "disk"}}]))
    try:
        # the PV controller completes the binding the two objects name, then the pod mounts the PV's path
        wait_for(lambda: cluster.kubectl_json("get", "pvc", "disk").get("status", {}).get("phase") == "Bound", 60,
                 what="the claim Bound to the PV it names")
        wait_ready(cluster, "claims")
        exec_out(cluster, "claims", "sh", "-c", "echo kept > /data/file")
        assert (disk / "file").read_text() == "kept\n"  # on the PV's path, outliving the pod
    finally:
        delete(cluster, "claims")
        cluster.kubectl("delete", "pvc", "disk", "--wait=false", check=False)
        cluster.kubectl("delete", "pv", "e2e-disk", "--wait=false", check=False)


def test_termination_message_from_its_file_or_the_log(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("says-why", busybox("c", "sh", "-c", "echo disk full > /dev/termination-log; exit 3"),
                                busybox("d", "sh", "-c", "echo last words; exit 4",
                                        terminationMessagePolicy="FallbackToLogsOnError"),
                                busybox("e", "sh", "-c", "echo why > /tmp/why; exit 5", terminationMessagePath="/tmp/why",
                                        securityContext={"readOnlyRootFilesystem": True}),
                                restartPolicy="Never"))
    try:
        wait_for(lambda: status(cluster, "says-why").get("phase") == "Failed", 60, what="the pod Failed")
        terminated = {c["name"]: c["state"]["terminated"] for c in status(cluster, "says-why")["containerStatuses"]}
        assert (terminated["c"]["exitCode"], terminated["c"]["message"]) == (3, "disk full\n")
        assert (terminated["d"]["exitCode"], terminated["d"]["message"]) == (4, "last words\n")
        assert (terminated["e"]["exitCode"], terminated["e"]["message"]) == (5, "why\n")
    finally:
        delete(cluster, "says-why")


def test_missing_configmap_keeps_pod_creating_until_it_appears(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("waits", busybox(volumeMounts=[{"name": "v", "mountPath": "/v"}]),
                                volumes=[{"name": "v", "configMap": {"name": "later"}}]))
    try:
        def failed_mount() -> bool:
            events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=waits")["items"]
            return any(e["reason"] == "FailedMount" and 'configmap "later" not found' in e["message"] for e in events)

        wait_for(failed_mount, 30, what="a FailedMount event")
        waiting = status(cluster, "waits")["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
        cluster.kubectl("create", "configmap", "later", "--from-literal=k=v")
        wait_ready(cluster, "waits")
        assert exec_out(cluster, "waits", "cat", "/v/k") == "v"
    finally:
        delete(cluster, "waits")
        cluster.kubectl("delete", "configmap", "later", check=False)


def test_exec_with_stdin_and_run_as_user(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("nonroot", busybox(), securityContext={"runAsUser": 1000, "runAsGroup": 3000}))
    try:
        wait_ready(cluster, "nonroot")
        assert exec_out(cluster, "nonroot", "cat", input="piped\n") == "piped\n"
        assert exec_out(cluster, "nonroot", "id", "-u").strip() == "1000"
        assert exec_out(cluster, "nonroot", "id", "-g").strip() == "3000"
    finally:
        delete(cluster, "nonroot")


def test_memory_limit_kills_with_oomkilled_and_cpu_quota_is_set(cluster: PodlifeProcess) -> None:
    hog = {"name": "c", "image": "python",
           "command": ["python3", "-c", "a = bytearray(300 * 1024 * 1024); import time; time.sleep(30)"],
           "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
    apply(cluster, pod_manifest("hog", hog, restartPolicy="Never"))
    try:
        def terminated() -> dict:
            statuses = status(cluster, "hog").get("containerStatuses") or [{}]
            return statuses[0].get("state", {}).get("terminated") or {}

        wait_for(lambda: terminated().get("reason") == "OOMKilled", 60, what="hog OOMKilled")
        assert terminated()["exitCode"] == 137
        assert status(cluster, "hog")["phase"] == "Failed"
        assert status(cluster, "hog")["qosClass"] == "Guaranteed"
    finally:
        delete(cluster, "hog")
    apply(cluster, pod_manifest("quota", busybox(resources={"limits": {"cpu": "500m", "memory": "32Mi"}})))
    try:
        wait_ready(cluster, "quota")
        uid = cluster.kubectl_json("get", "pod", "quota")["metadata"]["uid"]
        layout = detect_layout()
        assert layout is not None
        cpu_dir = layout.controller_dir("cpu", pod_cgroup_path(uid))
        assert cpu_dir is not None
        quotas = [p.read_text().split()[0] for p in cpu_dir.rglob("cpu.cfs_quota_us")] + \
                 [p.read_text().split()[0] for p in cpu_dir.rglob("cpu.max")]
        assert "50000" in quotas, quotas
    finally:
        delete(cluster, "quota")


def test_unknown_image_is_err_image_pull(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("badimg", {"name": "c", "image": "registry.invalid/none/such:1"},
                                restartPolicy="Never"))
    try:
        def reason() -> str:
            statuses = status(cluster, "badimg").get("containerStatuses") or [{}]
            return (statuses[0].get("state", {}).get("waiting") or {}).get("reason", "")

        wait_for(lambda: reason() in ("ErrImagePull", "ImagePullBackOff"), 30, what="ErrImagePull")
        events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=badimg")["items"]
        assert any(e["reason"] == "Failed" and "such" in e["message"] for e in events)
    finally:
        delete(cluster, "badimg")


def test_containers_outlive_a_killed_agent_and_are_adopted(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("survivor", busybox()))
    wait_ready(cluster, "survivor")
    before = status(cluster, "survivor")["containerStatuses"][0]
    assert cluster.proc is not None
    os.kill(cluster.proc.pid, signal.SIGKILL)  # the agent only: conmon and the container go on
    cluster.proc.wait(10)
    cluster.proc = None
    cluster.start()
    try:
        def adopted() -> bool:
            st = status(cluster, "survivor")
            cs = (st.get("containerStatuses") or [{}])[0]
            return (st.get("phase") == "Running" and cs.get("containerID") == before["containerID"]
                    and cs.get("restartCount") == 0 and "running" in cs.get("state", {}))

        wait_for(adopted, 60, what="the container re-adopted")
        assert exec_out(cluster, "survivor", "cat", "/proc/1/cmdline").split("\0")[:2] == ["sleep", "3600"]
        assert len(_leftovers(cluster.data_dir)) == 2  # the pause container and this one: nothing twice
    finally:
        delete(cluster, "survivor")


def test_runtime_default_seccomp_read_only_root_and_dropped_capabilities(cluster: PodlifeProcess) -> None:
    locked = busybox(securityContext={"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                      "capabilities": {"drop": ["ALL"]},
                                      "seccompProfile": {"type": "RuntimeDefault"}})
    apply(cluster, pod_manifest("locked", locked))
    try:
        wait_ready(cluster, "locked")
        status_text = exec_out(cluster, "locked", "cat", "/proc/1/status")
        fields = dict(line.split(":\t", 1) for line in status_text.splitlines() if ":\t" in line)
        assert fields["Seccomp"].strip() == "2"  # filtered
        assert fields["NoNewPrivs"].strip() == "1"
        assert int(fields["CapEff"].strip(), 16) == 0
        refused = cluster.kubectl("exec", "locked", "--", "touch", "/newfile", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr + refused.stdout
        assert exec_out(cluster, "locked", "sh", "-c", "echo ok > /tmp/f && cat /tmp/f").strip() == "ok"
    finally:
        delete(cluster, "locked")


def test_logs_are_rotated_by_size_and_kubectl_logs_reads_the_current_file(cluster: PodlifeProcess) -> None:
    chatty = busybox("c", "sh", "-c", "i=0; while :; do i=$((i+1)); echo line $i padding-padding-padding; "
                                      "[ $((i % 50)) = 0 ] && sleep 0.05; done")
    apply(cluster, pod_manifest("chatty", chatty))
    try:
        wait_ready(cluster, "chatty")
        uid = cluster.kubectl_json("get", "pod", "chatty")["metadata"]["uid"]
        log_dir = next(cluster.data_dir.glob(f"nodes/*/pods/default_chatty_{uid}/c"))

        def rotated() -> list[Path]:
            return sorted(p for p in log_dir.iterdir() if p.name.startswith("0.log."))

        wait_for(lambda: len(rotated()) == 2, 60, what="two rotated log files")
        assert len(list(log_dir.iterdir())) <= 3  # --container-log-max-files 3: the current one and two rotated
        last = cluster.kubectl("logs", "chatty", "--tail=1").stdout.split()
        assert last[0] == "line" and int(last[1]) > 1000  # the current file: newer than any rotated line
    finally:
        delete(cluster, "chatty")
