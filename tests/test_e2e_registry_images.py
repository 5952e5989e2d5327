"""Pods whose images come from a registry on loopback, pulled as imagePullPolicy says, driven with kubectl.

A real ``docker-registry`` (Debian's distribution 2.8) on 127.0.0.1 holds an image this
test builds itself (a busybox root, a second layer with a whiteout); a real ``podlife up
--container-runtime oci`` pulls it over the distribution API and runs it with its own
root (an overlay of the layers), the image's Entrypoint/Cmd/Env/WorkingDir/User
combined with the container's command and args as Kubernetes combines them.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.kubelet.oci.cgroups import detect_layout
from podlife.kubelet.oci.conmon import find_conmon
from podlife.kubelet.oci.runc import find_runc
from podlife.kubelet.oci.runtime import OCIRuntime, unavailable_reasons

from .cluster_harness import PodlifeProcess, require_tool, wait_for
from .registry_harness import (
    BuiltImage, RegistryProcess, build_image, busybox_rootfs_entries, directory, file, make_layer, require_registry,
)

pytestmark = pytest.mark.e2e

PROCESS = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo default $GREETING from $(pwd) as $(id -u)"],
           "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/app", "User": "1234"}


def image() -> BuiltImage:
    base = make_layer([*busybox_rootfs_entries(("sh", "echo", "cat", "ls", "id", "pwd", "sleep", "test")),
                       file("etc/doomed", "gone in the next layer\n")])
    top = make_layer([file("etc/.wh.doomed", ""), directory("app"), file("app/marker", "from the registry\n")])
    return build_image([base, top], **PROCESS)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    require_registry()
    open_registry = RegistryProcess(tmp_path_factory.mktemp("registry"))
    private = RegistryProcess(tmp_path_factory.mktemp("private"), htpasswd={"bob": "hunter2"},
                              push_credentials=("bob", "hunter2"))
    try:
        open_registry.start().push("demo/app", "v1", image())
        private.start().push("team/app", "v1", image())
        yield open_registry, private
    finally:
        open_registry.stop()
        private.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            registries: tuple[RegistryProcess, RegistryProcess]) -> Iterator[PodlifeProcess]:
    problems = unavailable_reasons(find_runc(), find_conmon(), detect_layout())
    if problems:
        pytest.fail("real containers cannot run here: " + "; ".join(problems))
    data_dir = tmp_path_factory.mktemp("images") / "data"
    proc = PodlifeProcess(data_dir, "--container-runtime", "oci", kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if str(data_dir) in line.split()[1]]
        for node in (data_dir / "nodes").iterdir() if (data_dir / "nodes").is_dir() else []:
            import asyncio

            asyncio.run(OCIRuntime(node).remove_everything())
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount], check=False)
        assert not mounts, f"mounts left behind: {mounts}"


def run_pod(cluster: PodlifeProcess, name: str, container: dict, **spec: object) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", **container}], **spec}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def container_status(cluster: PodlifeProcess, name: str) -> dict:
    statuses = cluster.kubectl_json("get", "pod", name).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def events(cluster: PodlifeProcess, name: str) -> list[dict]:
    return cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]


def finished(cluster: PodlifeProcess, name: str) -> dict:
    wait_for(lambda: "terminated" in container_status(cluster, name).get("state", {}), 90, what=f"{name} finished")
    return container_status(cluster, name)


def delete(cluster: PodlifeProcess, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--grace-period=0", "--wait=true", "--timeout=60s", check=False,
                    timeout=90)


def test_a_pulled_image_runs_with_its_own_root_and_config(cluster: PodlifeProcess,
                                                          registries: tuple[RegistryProcess, RegistryProcess]) -> None:
    ref = f"{registries[0].host}/demo/app:v1"
    run_pod(cluster, "pulled", {"image": ref})
    try:
        status = finished(cluster, "pulled")
        assert status["state"]["terminated"]["exitCode"] == 0
        assert cluster.kubectl("logs", "pulled").stdout.strip() == "default hello from /app as 1234"
        assert status["imageID"].startswith(f"{registries[0].host}/demo/app@sha256:")
        reasons = {e["reason"]: e["message"] for e in events(cluster, "pulled")}
        assert reasons["Pulling"] == f'Pulling image "{ref}"'
        assert reasons["Pulled"].startswith(f'Successfully pulled image "{ref}" in ') and "Image size: " in reasons["Pulled"]
    finally:
        delete(cluster, "pulled")
    # command replaces the entrypoint; args alone replace Cmd; the whiteout removed /etc/doomed
    run_pod(cluster, "args", {"image": ref, "args": ["test ! -e /etc/doomed && cat /app/marker"],
                               "imagePullPolicy": "IfNotPresent"})
    run_pod(cluster, "cmd", {"image": ref, "command": ["/bin/echo", "plain"], "imagePullPolicy": "Never"})
    try:
        assert finished(cluster, "args")["state"]["terminated"]["exitCode"] == 0
        assert cluster.kubectl("logs", "args").stdout.strip() == "from the registry"
        assert reasons_of(cluster, "args").get("Pulled", "").endswith("already present on machine")
        assert finished(cluster, "cmd")["state"]["terminated"]["exitCode"] == 0
        assert cluster.kubectl("logs", "cmd").stdout.strip() == "plain"
    finally:
        delete(cluster, "args", "cmd")


def reasons_of(cluster: PodlifeProcess, name: str) -> dict[str, str]:
    return {e["reason"]: e["message"] for e in events(cluster, name)}


def test_a_private_registry_needs_the_pods_image_pull_secret(
        cluster: PodlifeProcess, registries: tuple[RegistryProcess, RegistryProcess]) -> None:
    ref = f"{registries[1].host}/team/app:v1"
    run_pod(cluster, "nocreds", {"image": ref})
    try:
        wait_for(lambda: container_status(cluster, "nocreds").get("state", {}).get("waiting", {}).get("reason")
                 in ("ErrImagePull", "ImagePullBackOff"), 60, what="ErrImagePull without credentials")
    finally:
        delete(cluster, "nocreds")
    auth = base64.b64encode(b"bob:hunter2").decode()
    config = json.dumps({"auths": {registries[1].host: {"auth": auth}}})
    cluster.kubectl("create", "secret", "generic", "regcred", "--type=kubernetes.io/dockerconfigjson",
                    f"--from-literal=.dockerconfigjson={config}")
    run_pod(cluster, "withcreds", {"image": ref, "args": ["cat /app/marker"]}, imagePullSecrets=[{"name": "regcred"}])
    try:
        assert finished(cluster, "withcreds")["state"]["terminated"]["exitCode"] == 0
        assert cluster.kubectl("logs", "withcreds").stdout.strip() == "from the registry"
    finally:
        delete(cluster, "withcreds")
        cluster.kubectl("delete", "secret", "regcred", check=False)


def test_pull_policy_never_and_invalid_names_wait_with_kubernetes_reasons(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "never", {"image": "127.0.0.1:1/not/here:v9", "imagePullPolicy": "Never"})
    run_pod(cluster, "badname", {"image": "UPPER/Case:x"})
    run_pod(cluster, "remote", {"image": "quay.io/some/image:1"})
    try:
        def waiting(name: str) -> dict:
            return container_status(cluster, name).get("state", {}).get("waiting", {})

        wait_for(lambda: waiting("never").get("reason") == "ErrImageNeverPull", 30, what="ErrImageNeverPull")
        assert waiting("never")["message"] == ('Container image "127.0.0.1:1/not/here:v9" is not present '
                                               "with pull policy of Never")
        wait_for(lambda: waiting("badname").get("reason") == "InvalidImageName", 30, what="InvalidImageName")
        wait_for(lambda: waiting("remote").get("reason") in ("ErrImagePull", "ImagePullBackOff"), 30,
                 what="a remote registry refused")
        assert "not allowed on this node" in reasons_of(cluster, "remote")["Failed"]
    finally:
        delete(cluster, "never", "badname", "remote")
