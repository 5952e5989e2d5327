"""Tests for podlife.kubelet.runtime: real processes, real signals, real log files.

Every test gets a runtime from the ``runtime`` fixture, which shuts it down
(SIGKILL for whatever is left) even when the test fails. Tests wait on processes,
or poll a condition with :func:`~tests.cluster_harness.async_wait_for`. None of them sleeps for a fixed
time.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from podlife.kubelet.logs import MAX_LOG_LINE_BYTES, LogOptions, parse_cri_record, parse_timestamp, read_log
from podlife.kubelet.runtime import (
    DEFAULT_COMMAND,
    DEFAULT_PATH,
    ContainerHandle,
    ContainerNotRunningError,
    ContainerSpec,
    ContainerStartError,
    PodKey,
    ProcessRuntime,
)

from .cluster_harness import async_wait_for, require_module

POD = PodKey("default", "web", "0b8f-uid")
OTHER_POD = PodKey("kube-system", "dns", "77aa-uid")

TERM_TRAPPING = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
TERM_IGNORING = "trap '' TERM; echo ready; while :; do sleep 0.1; done"


# --------------------------------------------------------------------------- helpers


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_records(path: Path) -> list[tuple[str, str, str]]:
    """(stream, tag, content) of every record in a CRI log file."""
    out = []
    for line in path.read_bytes().splitlines():
        rec = parse_cri_record(line)
        assert rec is not None, line
        assert parse_timestamp(rec.timestamp) is not None, line
        out.append((rec.stream.decode(), "P" if rec.partial else "F", rec.content.decode()))
    return out


def log_lines(path: Path) -> list[str]:
    return [content for _, _, content in log_records(path)]


async def wait_for_log_line(handle: ContainerHandle, predicate: Callable[[str], bool], what: str) -> str:
    found: list[str] = []

    def check() -> bool:
        found[:] = [line for line in log_lines(handle.log_path) if predicate(line)]
        return bool(found)

    await async_wait_for(check, what=what)
    return found[0]


async def wait_ready(handle: ContainerHandle) -> None:
    await wait_for_log_line(handle, lambda line: line == "ready", "the container to print 'ready'")


async def started_child_pid(handle: ContainerHandle) -> int:
    """The pid a container printed as ``child=<pid>``."""
    line = await wait_for_log_line(handle, lambda line: line.startswith("child="), "the child pid")
    return int(line.removeprefix("child="))


def sh(script: str, name: str = "main", **kwargs: object) -> ContainerSpec:
    return ContainerSpec(name=name, command=["/bin/sh", "-c", script], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "node")
    try:
        yield rt
    finally:
        await rt.shutdown(grace_seconds=0)


# --------------------------------------------------------------------------- start and logs


async def test_stdout_and_stderr_share_one_cri_log(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("echo hi; echo err >&2"), restart_count=0)
    info = await asyncio.wait_for(handle.wait(), 10)

    assert (info.exit_code, info.signal, info.reason, info.oom_killed) == (0, None, "Completed", False)
    assert handle.log_path == runtime.root_dir / "pods" / "default_web_0b8f-uid" / "main" / "0.log"
    # Two pipes, two readers: the order between the streams is not fixed (as with containerd).
    assert sorted(log_records(handle.log_path)) == [("stderr", "F", "err"), ("stdout", "F", "hi")]
    assert handle.exited == info and not handle.running
    assert handle.started_at <= info.finished_at
    assert handle.started_at.tzinfo is not None
    assert re.fullmatch(r"podlife://[0-9a-f]{64}", handle.container_id)


async def test_container_ids_are_unique(runtime: ProcessRuntime) -> None:
    handles = [await runtime.start_container(POD, sh("exit 0", name=f"c{i}"), 0) for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 10)
    assert len({h.container_id for h in handles}) == 3


async def test_each_restart_has_its_own_log_file(runtime: ProcessRuntime) -> None:
    for restart in range(2):
        handle = await runtime.start_container(POD, sh(f"echo run {restart}"), restart)
        await asyncio.wait_for(handle.wait(), 10)
    log_dir = runtime.log_path(POD, "main", 0).parent
    assert sorted(p.name for p in log_dir.iterdir()) == ["0.log", "1.log"]
    assert log_lines(runtime.log_path(POD, "main", 1)) == ["run 1"]


async def test_output_without_final_newline_is_a_partial_record(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("echo one; printf two"), 0)
    await asyncio.wait_for(handle.wait(), 10)
    assert log_records(handle.log_path) == [("stdout", "F", "one"), ("stdout", "P", "two")]


async def test_long_lines_are_split_into_partial_records(runtime: ProcessRuntime) -> None:
    length = 2 * MAX_LOG_LINE_BYTES + 100
    handle = await runtime.start_container(POD, sh(f"head -c {length} /dev/zero | tr '\\0' a; echo; echo next"), 0)
    await asyncio.wait_for(handle.wait(), 10)

    records = log_records(handle.log_path)
    assert [(s, t, len(c)) for s, t, c in records] == [
        ("stdout", "P", MAX_LOG_LINE_BYTES),
        ("stdout", "P", MAX_LOG_LINE_BYTES),
        ("stdout", "F", 100),
        ("stdout", "F", 4),
    ]
    text = b"".join([chunk async for chunk in read_log(handle.log_path, LogOptions())])
    assert text == b"a" * length + b"\nnext\n"


async def test_exit_code_is_reported(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("exit 3"), 0)
    info = await asyncio.wait_for(handle.wait(), 10)
    assert (info.exit_code, info.signal, info.reason) == (3, None, "Error")


async def test_death_by_signal_reports_128_plus_signal(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("kill -TERM $$; sleep 100"), 0)
    info = await asyncio.wait_for(handle.wait(), 10)
    assert (info.exit_code, info.signal) == (143, signal.SIGTERM)

    handle = await runtime.start_container(POD, sh("echo ready; exec sleep 100", name="k"), 0)
    await wait_ready(handle)
    os.kill(handle.pid, signal.SIGKILL)
    info = await asyncio.wait_for(handle.wait(), 10)
    assert (info.exit_code, info.signal, info.reason) == (137, signal.SIGKILL, "Error")


# --------------------------------------------------------------------------- command, env, cwd


def test_command_line_rules() -> None:
    assert ContainerSpec("c", command=["a", "b"], args=["c"]).argv() == ["a", "b", "c"]
    assert ContainerSpec("c", args=["x", "y"]).argv() == ["x", "y"]
    assert ContainerSpec("c").argv() == list(DEFAULT_COMMAND)


async def test_default_command_runs_until_stopped(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, ContainerSpec("idle"), 0)
    assert handle.exited is None and handle.running
    assert pid_alive(handle.pid)
    info = await runtime.stop_container(handle, grace_seconds=5)
    assert (info.exit_code, info.signal) == (143, signal.SIGTERM)  # sleep dies of SIGTERM


async def test_env_is_exactly_the_spec_plus_default_path(
    runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODLIFE_KUBELET_SECRET", "must-not-leak")
    spec = ContainerSpec("env", args=["/usr/bin/env"], env={"GREETING": "hello world", "EMPTY": ""})
    handle = await runtime.start_container(POD, spec, 0)
    await asyncio.wait_for(handle.wait(), 10)
    assert sorted(log_lines(handle.log_path)) == sorted(["GREETING=hello world", "EMPTY=", f"PATH={DEFAULT_PATH}"])


async def test_path_from_env_is_used_to_find_the_executable(runtime: ProcessRuntime, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "podlife-hello"
    tool.write_text("#!/bin/sh\necho hello from $0\n")
    tool.chmod(0o755)
    spec = ContainerSpec("tool", command=["podlife-hello"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    handle = await runtime.start_container(POD, spec, 0)
    info = await asyncio.wait_for(handle.wait(), 10)
    assert info.exit_code == 0
    assert log_lines(handle.log_path) == [f"hello from {tool}"]


async def test_working_dir(runtime: ProcessRuntime, tmp_path: Path) -> None:
    handle = await runtime.start_container(POD, sh("pwd", working_dir=str(tmp_path)), 0)
    await asyncio.wait_for(handle.wait(), 10)
    assert log_lines(handle.log_path) == [str(tmp_path)]

    handle = await runtime.start_container(POD, sh("pwd", name="default-cwd"), 0)
    await asyncio.wait_for(handle.wait(), 10)
    assert log_lines(handle.log_path) == ["/"]


async def test_start_errors(runtime: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(ContainerStartError, match="executable file not found") as missing:
        await runtime.start_container(POD, ContainerSpec("x", command=["podlife-no-such-binary"]), 0)
    assert (missing.value.reason, missing.value.exit_code) == ("StartError", 128)

    with pytest.raises(ContainerStartError, match="no such directory"):
        await runtime.start_container(POD, sh("true", working_dir=str(tmp_path / "absent")), 0)

    not_executable = tmp_path / "plain.txt"
    not_executable.write_text("hello")
    with pytest.raises(ContainerStartError, match="permission denied"):
        await runtime.start_container(POD, ContainerSpec("x", command=[str(not_executable)]), 0)

    assert runtime.running_containers() == []


# --------------------------------------------------------------------------- stopping


async def test_term_trapping_container_stops_within_grace(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh(TERM_TRAPPING), 0)
    await wait_ready(handle)
    began = time.monotonic()
    info = await runtime.stop_container(handle, grace_seconds=30)
    assert time.monotonic() - began < 10  # well inside the grace period
    assert (info.exit_code, info.signal, info.reason) == (0, None, "Completed")
    assert "bye" in log_lines(handle.log_path)
    assert handle.stop_requested


async def test_term_ignoring_container_is_killed_after_grace(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh(TERM_IGNORING), 0)
    await wait_ready(handle)
    began = time.monotonic()
    info = await runtime.stop_container(handle, grace_seconds=0.3)
    assert time.monotonic() - began >= 0.3
    assert (info.exit_code, info.signal) == (137, signal.SIGKILL)
    assert not pid_alive(handle.pid)


async def test_zero_grace_kills_at_once(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh(TERM_TRAPPING), 0)
    await wait_ready(handle)
    info = await runtime.stop_container(handle, grace_seconds=0)
    assert (info.exit_code, info.signal) == (137, signal.SIGKILL)
    assert "bye" not in log_lines(handle.log_path)


async def test_stopping_an_exited_container_returns_its_exit(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("exit 7"), 0)
    first = await asyncio.wait_for(handle.wait(), 10)
    assert await runtime.stop_container(handle, grace_seconds=1) == first
    assert await handle.wait() == first


async def test_stop_signals_children_in_the_group(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh("sleep 100 & echo child=$!; wait"), 0)
    child = await started_child_pid(handle)
    assert pid_alive(child)
    await runtime.stop_container(handle, grace_seconds=5)
    await async_wait_for(lambda: not pid_alive(child), what="the child to die")


async def test_children_that_ignore_term_die_with_the_container(runtime: ProcessRuntime) -> None:
    # The child ignores SIGTERM; the shell does not. The shell dies of the
    # SIGTERM, and what is left of the group is killed with it.
    script = "(trap '' TERM; exec sleep 100) & echo child=$!; wait"
    handle = await runtime.start_container(POD, sh(script), 0)
    child = await started_child_pid(handle)
    info = await runtime.stop_container(handle, grace_seconds=5)
    assert info.exit_code == 143
    await async_wait_for(lambda: not pid_alive(child), what="the TERM-ignoring child to die")


async def test_leftover_children_die_when_the_main_process_exits(runtime: ProcessRuntime) -> None:
    # sh exits at once; its background child still holds stdout open.
    handle = await runtime.start_container(POD, sh("sleep 100 & echo child=$!"), 0)
    info = await asyncio.wait_for(handle.wait(), 10)
    assert info.exit_code == 0
    child = int(log_lines(handle.log_path)[0].removeprefix("child="))
    await async_wait_for(lambda: not pid_alive(child), what="the orphaned child to die")


async def test_a_process_that_left_the_group_cannot_hold_wait_up(runtime: ProcessRuntime, tmp_path: Path) -> None:
    # setsid puts the child in a session of its own: out of the runtime's reach,
    # but it holds the log pipe. wait() returns anyway, after the drain timeout.
    # The main process exits only once the child has left the group.
    pid_file = tmp_path / "escaped.pid"
    script = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 100' & while [ ! -s {pid_file} ]; do sleep 0.01; done"
    runtime.log_drain_timeout = 0.2
    handle = await runtime.start_container(POD, sh(script), 0)
    try:
        info = await asyncio.wait_for(handle.wait(), 10)
        assert info.exit_code == 0
        assert not log_lines(handle.log_path)  # nothing written, and the pipe still open
        assert pid_alive(int(pid_file.read_text()))  # the documented limit
    finally:
        await async_wait_for(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), what="the pid file")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # a pid this test started, through the container


# --------------------------------------------------------------------------- exec


async def test_exec_runs_with_the_container_env_and_cwd(runtime: ProcessRuntime, tmp_path: Path) -> None:
    spec = ContainerSpec("idle", env={"ROLE": "db"}, working_dir=str(tmp_path))
    handle = await runtime.start_container(POD, spec, 0)
    proc = await runtime.exec_in_container(
        handle, ["sh", "-c", 'echo "$ROLE $EXTRA $(pwd)"; echo oops >&2; exit 4'], env={"EXTRA": "x"}
    )
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert (out, err, proc.returncode) == (f"db x {tmp_path}\n".encode(), b"oops\n", 4)


async def test_exec_with_stdin(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, ContainerSpec("idle"), 0)
    proc = await runtime.exec_in_container(handle, ["cat"], stdin=True)
    out, _ = await asyncio.wait_for(proc.communicate(b"ping\n"), 10)
    assert out == b"ping\n"


async def test_exec_processes_die_with_the_container(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, ContainerSpec("idle"), 0)
    proc = await runtime.exec_in_container(handle, ["sleep", "100"])
    await runtime.stop_container(handle, grace_seconds=0)
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    with pytest.raises(ContainerNotRunningError):
        await runtime.exec_in_container(handle, ["true"])


# --------------------------------------------------------------------------- pods and shutdown


async def test_remove_pod_kills_its_containers_and_deletes_its_logs(runtime: ProcessRuntime) -> None:
    mine = await runtime.start_container(POD, sh(TERM_IGNORING), 0)
    other = await runtime.start_container(OTHER_POD, sh(TERM_IGNORING), 0)
    await wait_ready(mine)
    await wait_ready(other)

    await runtime.remove_pod(POD)

    assert mine.exited is not None and mine.exited.exit_code == 137
    assert not runtime.pod_log_dir(POD).exists()
    assert other.running and pid_alive(other.pid)
    assert other.log_path.exists()
    assert runtime.running_containers() == [other]
    assert runtime.running_containers(OTHER_POD) == [other]


async def test_shutdown_leaves_nothing_running(runtime: ProcessRuntime) -> None:
    handles = [
        await runtime.start_container(POD, ContainerSpec("idle"), 0),
        await runtime.start_container(POD, sh(TERM_TRAPPING, name="trapper"), 0),
        await runtime.start_container(OTHER_POD, sh(TERM_IGNORING, name="stubborn"), 0),
        await runtime.start_container(
            OTHER_POD, sh("(trap '' TERM; exec sleep 100) & echo child=$!; wait", name="parent"), 0
        ),
    ]
    child = await started_child_pid(handles[3])
    await wait_ready(handles[1])
    await wait_ready(handles[2])
    pids = [h.pid for h in handles] + [child]
    assert all(pid_alive(pid) for pid in pids)

    await runtime.shutdown(grace_seconds=0.5)

    assert [h.exited.exit_code if h.exited else None for h in handles] == [143, 0, 137, 143]
    assert runtime.running_containers() == []
    await async_wait_for(lambda: not any(pid_alive(pid) for pid in pids), what="every process to be gone")
    with pytest.raises(RuntimeError):
        await runtime.start_container(POD, ContainerSpec("late"), 0)


async def test_kill_all_now_needs_no_awaiting(runtime: ProcessRuntime) -> None:
    handle = await runtime.start_container(POD, sh(TERM_IGNORING), 0)
    await wait_ready(handle)
    exec_proc = await runtime.exec_in_container(handle, ["sleep", "100"])
    runtime.kill_all_now()
    info = await asyncio.wait_for(handle.wait(), 10)
    assert (info.exit_code, info.signal) == (137, signal.SIGKILL)
    assert await asyncio.wait_for(exec_proc.wait(), 10) == -signal.SIGKILL
    with pytest.raises(RuntimeError):
        await runtime.start_container(POD, ContainerSpec("late"), 0)


async def test_follow_the_log_of_a_running_container(runtime: ProcessRuntime, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f"echo one; while [ ! -e {go} ]; do sleep 0.01; done; echo two"
    handle = await runtime.start_container(POD, sh(script), 0)
    stream = read_log(handle.log_path, LogOptions(follow=True), is_running=lambda: handle.running)
    try:
        assert await asyncio.wait_for(anext(stream), 10) == b"one\n"
        go.touch()
        rest = [chunk async for chunk in stream]  # ends because the container exits
    finally:
        await stream.aclose()
    assert b"".join(rest) == b"two\n"
    assert handle.exited is not None


# --------------------------------------------------------------------------- uvloop


def test_same_behaviour_on_uvloop(tmp_path: Path) -> None:
    uvloop = require_module("uvloop")

    async def scenario() -> None:
        rt = ProcessRuntime(tmp_path / "node")
        try:
            handle = await rt.start_container(POD, sh("echo hi; echo err >&2"), 0)
            assert (await asyncio.wait_for(handle.wait(), 10)).exit_code == 0
            assert sorted(log_records(handle.log_path)) == [("stderr", "F", "err"), ("stdout", "F", "hi")]

            handle = await rt.start_container(POD, sh(TERM_TRAPPING, name="trapper"), 0)
            await wait_ready(handle)
            assert (await rt.stop_container(handle, 30)).exit_code == 0

            handle = await rt.start_container(POD, sh(TERM_IGNORING, name="stubborn"), 0)
            await wait_ready(handle)
            assert (await rt.stop_container(handle, 0.2)).exit_code == 137

            script = "(trap '' TERM; exec sleep 100) & echo child=$!; wait"
            handle = await rt.start_container(POD, sh(script, name="parent"), 0)
            child = await started_child_pid(handle)
            idle = await rt.start_container(POD, ContainerSpec("idle"), 0)
        finally:
            await rt.shutdown(grace_seconds=0.5)
        assert idle.exited is not None
        await async_wait_for(lambda: not pid_alive(child) and not pid_alive(idle.pid), what="processes to be gone")

    uvloop.run(scenario())
