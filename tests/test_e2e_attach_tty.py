"""Terminals and stdin of real containers: ``kubectl exec -it`` and ``kubectl attach -i`` (issue 11).

The e2e tests run one ``podlife up --container-runtime oci`` cluster for the module
(see ``test_e2e_containers.py``) and drive it with the real kubectl. Interactive
sessions run kubectl on a pseudo-terminal of the test's own (:class:`Terminal`), as a
user's shell would: kubectl then puts it in raw mode, sends its window size, and
follows its resizes (SIGWINCH). The unit tests at the end check the pure helpers.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.kubelet.oci import conmon
from podlife.kubelet.oci_pods import container_stdio

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_containers import oci_cluster, apply, busybox, delete, pod_manifest
from .test_e2e_containers import status, wait_ready

SESSION_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("attach-tty") / "data") as proc:
        yield proc


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """kubectl on a pseudo-terminal of ours: its controlling terminal, as in a user's shell."""

    def __init__(self, cluster: PodlifeProcess, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.leader, follower = os.openpty()
        _set_size(follower, rows, cols)

        def controlling_terminal() -> None:  # runs in the child, after setsid
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen([cluster.kubectl_bin, *args], stdin=follower, stdout=follower, stderr=follower,
                                        env=cluster.kubectl_env(), start_new_session=True,
                                        preexec_fn=controlling_terminal)
        os.close(follower)
        self.output = b""

    def send(self, data: str) -> None:
        os.write(self.leader, data.encode())

    def resize(self, rows: int, cols: int) -> None:
        """Resize the terminal; the kernel sends kubectl (its foreground group) SIGWINCH."""
        _set_size(self.leader, rows, cols)

    def expect(self, pattern: str, timeout: float = SESSION_TIMEOUT) -> re.Match[str]:
        """Read until the output (since the last match) matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output.decode(errors="replace"))
            if match:
                self.output = self.output[len(self.output.decode(errors="replace")[:match.end()].encode()):]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; output: {self.output!r}")
            ready, _, _ = select.select([self.leader], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.leader, 4096)
                except OSError:  # EIO: kubectl has exited and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{pattern!r} not seen before the end; output: {self.output!r}")
                self.output += chunk

    def wait(self, timeout: float = SESSION_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.leader)


def _attach(cluster: PodlifeProcess, pod: str, data: str) -> subprocess.Popen[str]:
    """``kubectl attach -i`` with ``data`` on a pipe as its stdin, closed at once after."""
    process = subprocess.Popen([cluster.kubectl_bin, "attach", "-i", pod, "-c", "c"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.kubectl_env(),
                               start_new_session=True)
    return process


# --------------------------------------------------------------------------- exec -it


@pytest.mark.e2e
def test_exec_it_gets_a_controlling_terminal_of_the_container(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("term", busybox()))
    term = None
    try:
        wait_ready(cluster, "term")
        term = Terminal(cluster, "exec", "-it", "term", "--", "sh", rows=33, cols=101)
        term.expect(r"/ # ")  # the shell knows it is interactive: it prompts
        term.send("tty; stty size\n")
        term.expect(r"(?m)^/dev/pts/\d+\r$")  # a terminal of the container's own devpts
        term.expect(r"(?m)^33 101\r$")  # kubectl's first window size
        term.send("cut -d' ' -f7 /proc/$$/stat\n")  # the shell's controlling terminal (tty_nr)
        tty_nr = int(term.expect(r"(?m)^(\d+)\r$").group(1))
        assert tty_nr != 0, "the shell has no controlling terminal"
        term.resize(40, 120)  # kubectl sends the new size on the resize channel: TIOCSWINSZ
        deadline = time.monotonic() + SESSION_TIMEOUT
        while True:
            term.send("stty size\n")
            if term.expect(r"(?m)^(\d+ \d+)\r$").group(1) == "40 120":
                break
            assert time.monotonic() < deadline, "the resize did not reach the terminal"
        term.send("exit 3\n")
        assert term.wait() == 3
    finally:
        if term is not None:
            term.close()
        delete(cluster, "term")


@pytest.mark.e2e
def test_exec_it_ends_with_ctrl_d(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("ctrld", busybox()))
    term = None
    try:
        wait_ready(cluster, "ctrld")
        term = Terminal(cluster, "exec", "-it", "ctrld", "--", "sh")
        term.expect(r"/ # ")
        term.send("echo $TERM\n")
        term.expect(r"(?m)^xterm\r$")
        term.send("\x04")  # ^D at the prompt: end of input, the shell exits 0
        assert term.wait() == 0
    finally:
        if term is not None:
            term.close()
        delete(cluster, "ctrld")


# --------------------------------------------------------------------------- attach


@pytest.mark.e2e
def test_attach_stdin_reaches_the_container_and_stays_open(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("cat", busybox("c", "cat", stdin=True)))
    try:
        wait_ready(cluster, "cat")
        for line in ("hello", "again"):  # not stdinOnce: the second attach still reaches cat
            attach = _attach(cluster, "cat", line)
            try:
                assert attach.stdin is not None and attach.stdout is not None
                attach.stdin.write(line + "\n")
                attach.stdin.flush()
                assert attach.stdout.readline() == line + "\n"  # cat echoes it back, through the attach socket
                attach.stdin.close()  # end of input detaches; the container's stdin stays open
                assert attach.wait(timeout=SESSION_TIMEOUT) == 0
            finally:
                if attach.poll() is None:
                    os.killpg(attach.pid, signal.SIGKILL)
                    attach.wait()
        assert status(cluster, "cat")["phase"] == "Running"
        wait_for(lambda: "again" in cluster.kubectl("logs", "cat").stdout, what="cat's output in its log")
    finally:
        delete(cluster, "cat")


@pytest.mark.e2e
def test_attach_stdin_once_closes_stdin_after_the_first_attach(cluster: PodlifeProcess) -> None:
    pod = pod_manifest("once", busybox("c", "sh", "-c", "cat; echo stdin closed", stdin=True, stdinOnce=True),
                       restartPolicy="Never")
    apply(cluster, pod)
    try:
        wait_ready(cluster, "once")
        attach = _attach(cluster, "once", "only")
        try:
            out, err = attach.communicate("only\n", timeout=SESSION_TIMEOUT)
        finally:
            if attach.poll() is None:
                os.killpg(attach.pid, signal.SIGKILL)
                attach.wait()
        assert attach.returncode == 0, err
        assert out == "only\nstdin closed\n"  # the container saw the end of its stdin, then exited
        wait_for(lambda: status(cluster, "once").get("phase") == "Succeeded", what="the pod to succeed")
    finally:
        delete(cluster, "once")


@pytest.mark.e2e
def test_attach_without_stdin_streams_output_and_ignores_input(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("ticks", busybox("c", "sh", "-c", "while :; do echo tick; sleep 0.2; done")))
    attach = None
    try:
        wait_ready(cluster, "ticks")
        attach = _attach(cluster, "ticks", "")
        assert attach.stdin is not None and attach.stdout is not None
        attach.stdin.write("ignored\n")
        attach.stdin.flush()
        assert attach.stdout.readline() == "tick\n"  # output from the log, as before
        assert "ignored" not in cluster.kubectl("logs", "ticks").stdout
    finally:
        if attach is not None and attach.poll() is None:
            os.killpg(attach.pid, signal.SIGKILL)
            attach.wait()
        delete(cluster, "ticks")


@pytest.mark.e2e
def test_attach_it_to_a_tty_container(cluster: PodlifeProcess) -> None:
    apply(cluster, pod_manifest("shell", busybox("c", "sh", stdin=True, tty=True)))
    term = None
    try:
        wait_ready(cluster, "shell")
        term = Terminal(cluster, "attach", "-it", "shell", "-c", "c", rows=30, cols=90)
        term.expect(r"try pressing enter")
        term.send("tty\n")
        term.expect(r"(?m)^/dev/pts/\d+\r$")  # the container's own terminal, from conmon
        deadline = time.monotonic() + SESSION_TIMEOUT
        while True:  # kubectl sends its size (+1, then the real one) on the resize channel: conmon's ctl fifo
            term.send("stty size\n")
            size = term.expect(r"(?m)^(\d+ \d+|stty: .*)\r$").group(1)  # a redraw may cut a line
            if size == "30 90":
                break
            assert time.monotonic() < deadline, f"the resize did not reach the container's terminal: {size}"
    finally:
        if term is not None:
            term.close()
        delete(cluster, "shell")


# --------------------------------------------------------------------------- pure helpers


def test_stdio_flags_are_cri_os() -> None:
    assert conmon.stdio_flags(conmon.Stdio()) == []
    assert conmon.stdio_flags(conmon.Stdio(stdin=True)) == ["--leave-stdin-open", "-i"]
    assert conmon.stdio_flags(conmon.Stdio(stdin=True, stdin_once=True)) == ["-i"]
    assert conmon.stdio_flags(conmon.Stdio(stdin=True, tty=True)) == ["-t"]
    assert conmon.stdio_flags(conmon.Stdio(tty=True)) == ["-t"]


def test_conmon_argv_ends_with_the_stdio_flags(tmp_path: Path) -> None:
    paths = conmon.ConmonPaths(tmp_path / "b", tmp_path / "log", tmp_path / "exits", tmp_path / "sockets")
    argv = conmon.conmon_argv("conmon", "runc", tmp_path / "root", "id", "c", paths, conmon.Stdio(stdin=True))
    assert argv[-2:] == ["--leave-stdin-open", "-i"]
    assert "-i" not in conmon.conmon_argv("conmon", "runc", tmp_path / "root", "id", "c", paths)


def test_attach_packets_and_resize_messages() -> None:
    assert conmon.parse_attach_packet(b"\x02hi") == ("stdout", b"hi")
    assert conmon.parse_attach_packet(b"\x03oops") == ("stderr", b"oops")
    assert conmon.parse_attach_packet(b"\x01x") is None
    assert conmon.parse_attach_packet(b"") is None
    assert conmon.resize_message(width=120, height=40) == b"1 40 120\n"


def test_container_stdio_from_the_container_spec() -> None:
    assert container_stdio({}) == conmon.Stdio()
    assert container_stdio({"stdin": True, "stdinOnce": True, "tty": True}) == conmon.Stdio(True, True, True)
    assert container_stdio({"stdin": "true"}) == conmon.Stdio()  # only booleans count
