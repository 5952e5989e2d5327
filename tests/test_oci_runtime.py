"""Real containers on runc under conmon (needs root, runc, conmon and busybox; under CI a
missing one is a failure). Each test gets its own node root dir and pod uid; the fixture's
finalizer removes whatever the test left and then checks that nothing is left behind: runc
state, cgroups, conmon processes, mounts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podlife.kubelet.oci.cgroups import pod_cgroup_path
from podlife.kubelet.oci.images import ImageNotFoundError
from podlife.kubelet.oci.resources import ContainerResources
from podlife.kubelet.oci.runtime import (
    ContainerRequest,
    OCIContainer,
    OCIRuntime,
    OCIStartError,
    Sandbox,
    SandboxRequest,
)
from podlife.kubelet.runtime import PodKey
from tests.cluster_harness import missing, require_tool

pytestmark = pytest.mark.timeout(120)


def _require_machine() -> None:
    if os.geteuid() != 0:
        missing("real containers need root")
    if _which("runc") is None:
        missing("runc is not installed (Debian package runc; `make system-deps`)")
    require_tool("conmon")
    if not Path("/usr/bin/busybox").exists():
        missing("busybox is not installed (Debian package busybox-static; `make system-deps`)")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _conmon_pids_for(root: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmdline.split(b"\0")[0] and str(root).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


async def _clean_up(runtime: OCIRuntime, pods: list[PodKey]) -> None:
    await runtime.remove_everything()
    for pod in pods:
        runtime.cgroups.remove(pod_cgroup_path(pod.uid))


async def _assert_nothing_left(runtime: OCIRuntime, pods: list[PodKey]) -> None:
    assert await runtime.runc.list() == [], "runc still knows containers"
    for pod in pods:
        assert not runtime.cgroups.exists(pod_cgroup_path(pod.uid)), f"pod cgroup of {pod.uid} left behind"
    assert _conmon_pids_for(runtime.root_dir) == [], "conmon processes left behind"
    assert str(runtime.root_dir) not in Path("/proc/self/mountinfo").read_text(), "mounts left behind"
    containers = runtime.state_dir / "containers"
    assert not containers.exists() or list(containers.iterdir()) == [], "bundles left behind"


class Node:
    """A runtime under test, with the pods it made (for clean-up)."""

    def __init__(self, runtime: OCIRuntime) -> None:
        self.runtime = runtime
        self.pods: list[PodKey] = []

    def new_pod(self, name: str = "web") -> PodKey:
        pod = PodKey("default", name, f"test-{uuid.uuid4()}")
        self.pods.append(pod)
        return pod

    def log(self, pod: PodKey, container: str) -> Path:
        return self.runtime.root_dir / "pods" / f"{pod.namespace}_{pod.name}_{pod.uid}" / container / "0.log"

    async def sandbox(self, name: str = "web") -> Sandbox:
        pod = self.new_pod(name)
        return await self.runtime.run_sandbox(SandboxRequest(pod, hostname=name), self.log(pod, "POD"))

    async def run(self, sandbox: Sandbox, request: ContainerRequest) -> OCIContainer:
        return await self.runtime.start_container(sandbox, request, 0, self.log(sandbox.pod, request.name))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    _require_machine()
    node = Node(OCIRuntime(tmp_path / "node"))
    try:
        yield node
    finally:
        try:
            await _clean_up(node.runtime, node.pods)
        finally:
            await node.runtime.close()
    await _assert_nothing_left(node.runtime, node.pods)


def cri_lines(path: Path) -> list[tuple[str, str]]:
    """(stream, content) of each complete line of a CRI log file."""
    out = []
    partial: dict[str, str] = {}
    for line in path.read_text().splitlines():
        _ts, stream, tag, content = (line.split(" ", 3) + [""])[:4]
        partial[stream] = partial.get(stream, "") + content
        if tag == "F":
            out.append((stream, partial.pop(stream)))
    return out


async def test_busybox_container_is_isolated_and_logs_in_cri_format(node: Node) -> None:
    sandbox = await node.sandbox("isolated")
    script = (
        "hostname; tr '\\0' ' ' </proc/1/cmdline; echo; "
        "test -e /work && echo SEES-WORK; ls -A /root | grep . && echo SEES-ROOT; "
        "test -e /etc/shadow && echo SEES-SHADOW; echo to-stderr >&2; exit 3"
    )
    container = await node.run(sandbox, ContainerRequest("main", "busybox", command=["sh", "-c", script]))
    info = await asyncio.wait_for(container.wait(), 30)
    assert (info.exit_code, info.reason) == (3, "Error")
    lines = cri_lines(container.log_path)
    stdout = [c for s, c in lines if s == "stdout"]
    assert stdout[0] == "isolated"
    assert stdout[1].startswith("sh -c hostname;")  # PID 1 is the container's own command
    assert ("stderr", "to-stderr") in lines
    assert not any(word in " ".join(stdout[2:]) for word in ("SEES-WORK", "SEES-ROOT", "SEES-SHADOW"))
    assert Path("/root").is_dir()  # the host has one; the container saw its own, empty


async def _sh(node: Node, container: OCIContainer, script: str) -> tuple[int, str, str]:
    exec_ = await node.runtime.exec_in_container(container, ["sh", "-c", script])
    out, err = await asyncio.wait_for(exec_.process.communicate(), 30)
    assert exec_.process.returncode is not None
    return exec_.process.returncode, out.decode(), err.decode()


async def test_each_container_writes_its_own_etc_and_opt_over_the_shared_layers(node: Node) -> None:
    first, second = await node.sandbox("first"), await node.sandbox("second")
    idle = ContainerRequest("idle", "busybox", command=["sleep", "3600"])
    a, b = await node.run(first, idle), await node.run(second, idle)
    code, _, err = await _sh(node, a, "echo app:x:1000:1000::/:/bin/sh >> /etc/passwd && echo 1 > /etc/new "
                                       "&& rm /etc/os-release && echo x > /opt/busybox/bin/mine")
    assert code == 0, err
    code, out, _ = await _sh(node, a, "grep -c app: /etc/passwd; cat /etc/new; test -e /etc/os-release || echo gone; "
                                      "cat /etc/hostname")
    assert (code, out.split()) == (0, ["1", "1", "gone", "first"])
    # The other container (of another pod) sees none of it; its applets are there.
    code, out, _ = await _sh(node, b, "grep -c app: /etc/passwd; test -e /etc/new || echo no-new; "
                                      "test -e /etc/os-release && echo has-release; cat /etc/hostname; "
                                      "test -e /opt/busybox/bin/mine || echo no-mine; readlink /opt/busybox/bin/wget")
    assert out.split() == ["0", "no-new", "has-release", "second", "no-mine", "/usr/bin/busybox"]
    # Both read one shared layer on the host, which their writes did not touch.
    layers = node.runtime.state_dir / "host-images"
    etc_layers = [p for p in layers.iterdir() if p.name.startswith("etc-")]
    assert len(etc_layers) == 1 and "app:x:1000" not in (etc_layers[0] / "passwd").read_text()
    assert (etc_layers[0] / "os-release").exists() or (etc_layers[0] / "os-release").is_symlink()
    assert not (etc_layers[0] / "new").exists()


async def test_a_read_only_root_makes_etc_read_only_and_volumes_below_it_still_mount(node: Node, tmp_path: Path) -> None:
    from podlife.kubelet.oci.bundle import bind_mount

    config = tmp_path / "config"
    config.mkdir()
    (config / "greeting").write_text("hello\n")
    sandbox = await node.sandbox("locked")
    request = ContainerRequest("locked", "busybox", command=["sleep", "3600"], read_only_root_filesystem=True,
                               mounts=[bind_mount(str(config), "/etc/app/config"), bind_mount(str(config), "/opt/cfg")])
    container = await node.run(sandbox, request)
    for path in ("/etc/x", "/opt/x", "/x"):
        code, _, err = await _sh(node, container, f"touch {path}")
        assert code != 0 and "Read-only file system" in err, (path, err)
    code, out, err = await _sh(node, container, "cat /etc/app/config/greeting /opt/cfg/greeting; cat /etc/hostname; "
                                                 "echo ok > /tmp/f && cat /tmp/f")
    assert (code, out.split()) == (0, ["hello", "hello", "locked", "ok"]), err


async def test_memory_limit_oom_kills_and_is_reported_oomkilled(node: Node) -> None:
    sandbox = await node.sandbox("hog")
    request = ContainerRequest(
        "hog",
        "python",
        command=["python3", "-c", "s = 'x' * (300 << 20); print('survived')"],
        resources=ContainerResources(memory_limit_bytes=64 << 20),
    )
    container = await node.run(sandbox, request)
    info = await asyncio.wait_for(container.wait(), 60)
    assert (info.exit_code, info.oom_killed, info.reason) == (137, True, "OOMKilled")
    assert ("stdout", "survived") not in cri_lines(container.log_path)


async def test_exec_runs_inside_with_the_container_env_and_cpu_quota_in_its_cgroup(node: Node) -> None:
    sandbox = await node.sandbox("execd")
    request = ContainerRequest(
        "idle",
        "busybox",
        command=["sleep", "3600"],
        env={"ROLE": "db"},
        working_dir="/tmp",
        resources=ContainerResources(cpu_request_milli=250, cpu_limit_milli=500),
    )
    container = await node.run(sandbox, request)
    exec_ = await node.runtime.exec_in_container(container, ["sh", "-c", "hostname; echo $ROLE; pwd; tr '\\0' ' ' </proc/1/cmdline"])
    out, err = await asyncio.wait_for(exec_.process.communicate(), 30)
    assert exec_.process.returncode == 0, err
    assert out.decode().split("\n")[:4] == ["execd", "db", "/tmp", "sleep 3600 "]
    cpu = node.runtime.cgroups.controller_dir("cpu", container.cgroup_path)
    assert cpu is not None
    if node.runtime.cgroups.version == 1:
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu / "cpu.shares").read_text().strip() == "256"
    else:
        assert (cpu / "cpu.max").read_text().split() == ["50000", "100000"]
    stats = node.runtime.stats(container)
    assert stats.memory_usage_bytes and stats.cpu_usage_nanoseconds is not None and stats.pids == 1
    info = await node.runtime.stop_container(container, 0.2)
    assert info.exit_code == 137  # sleep as PID 1 ignores SIGTERM: killed after the grace period
    await node.runtime.remove_sandbox(sandbox)
    assert not node.runtime.cgroups.exists(pod_cgroup_path(sandbox.pod.uid))


async def test_start_errors_carry_runcs_message_and_leave_nothing(node: Node) -> None:
    sandbox = await node.sandbox("broken")
    with pytest.raises(OCIStartError) as err:
        await node.run(sandbox, ContainerRequest("main", "busybox", command=["/no/such/binary"]))
    assert err.value.reason == "StartError" and err.value.exit_code == 128
    assert "/no/such/binary" in err.value.message
    with pytest.raises(ImageNotFoundError):
        await node.run(sandbox, ContainerRequest("main", "quay.io/x/not-in-catalog"))
    assert node.runtime.containers(sandbox.pod) == []
    assert [s.id for s in await node.runtime.runc.list()] == [sandbox.id]


async def test_commands_report_their_output_and_a_timed_out_one_is_killed_and_reaped() -> None:
    from podlife.kubelet.oci.runc import run_command

    big = await run_command([sys.executable, "-c", "import sys; sys.stdout.write('x' * 300000); "
                             "sys.stderr.write('oops'); sys.exit(3)"], timeout=30)
    assert (big.returncode, len(big.stdout), big.stderr) == (3, 300000, b"oops")  # more than a pipe holds
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await run_command(["sleep", "30"], timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 10
    children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
    assert not [pid for pid in children if Path(f"/proc/{pid}/stat").read_text().split()[1] == "(sleep)"]  # nor a zombie


STARTER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from podlife.kubelet.oci.runtime import ContainerRequest, OCIRuntime, SandboxRequest
    from podlife.kubelet.runtime import PodKey

    async def main():
        root, uid = Path(sys.argv[1]), sys.argv[2]
        runtime = OCIRuntime(root)
        pod = PodKey("default", "survivor", uid)
        logs = root / "pods"
        sandbox = await runtime.run_sandbox(SandboxRequest(pod, hostname="survivor"), logs / "pod.log")
        long = await runtime.start_container(
            sandbox, ContainerRequest("long", "busybox", command=["sleep", "3600"]), 2, logs / "long.log")
        short = await runtime.start_container(
            sandbox, ContainerRequest("short", "busybox", command=["sh", "-c", "exit 7"]), 0,
            logs / "short.log")
        print(json.dumps({"sandbox": sandbox.id, "long": long.id, "short": short.id, "pid": long.pid}))

    asyncio.run(main())
    """
)


async def test_containers_outlive_the_agent_and_are_re_adopted(node: Node, tmp_path: Path) -> None:
    pod = node.new_pod("survivor")
    root = node.runtime.root_dir
    done = subprocess.run(
        [sys.executable, "-c", STARTER, str(root), pod.uid], capture_output=True, text=True, timeout=90, cwd=Path(__file__).parent.parent
    )
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout)
    # The agent that started them is gone; the containers are not.
    assert os.path.exists(f"/proc/{ids['pid']}")
    state = await node.runtime.runc.state(ids["long"])
    assert state is not None and state.status == "running"
    # "short" ended while no agent watched it: its exit code is only in conmon's exit file.
    adopted = await node.runtime.adopt()
    assert [s.id for s in adopted.sandboxes] == [ids["sandbox"]]
    by_name = {c.name: c for c in adopted.containers}
    assert set(by_name) == {"long", "short"}
    assert by_name["long"].restart_count == 2 and by_name["long"].running
    assert by_name["long"].pod_key == pod
    short_exit = await asyncio.wait_for(by_name["short"].wait(), 30)
    assert short_exit.exit_code == 7
    # Adopted containers are driven as if this runtime had started them.
    exec_ = await node.runtime.exec_in_container(by_name["long"], ["hostname"])
    out, _ = await asyncio.wait_for(exec_.process.communicate(), 30)
    assert out == b"survivor\n"
    info = await node.runtime.stop_container(by_name["long"], 0)
    assert info.exit_code == 137
    await node.runtime.remove_sandbox(adopted.sandboxes[0])
    assert await node.runtime.runc.list() == []
