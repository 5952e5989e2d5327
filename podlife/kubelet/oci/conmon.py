"""conmon, the per-container monitor: started the way CRI-O starts it.

Design
------
conmon is the parent of a container's process, not podlife. :func:`create_container`
starts ``conmon`` with the flags CRI-O passes (``internal/oci/runtime_oci.go``):

``-c/-u`` (container id), ``-n`` (name), ``-r`` (runtime binary), ``--runtime-arg
--root=<state dir>``, ``-b`` (bundle), ``-p`` (container pidfile), ``-P`` (conmon's own
pidfile), ``-l`` (log file), ``--exit-dir``, ``-0`` (persist dir), ``--socket-dir-path``
and ``--api-version 1``; for a container with ``tty: true`` also ``-t`` (conmon makes the
console and keeps its controller end), for one with ``stdin: true`` (and no ``tty``) ``-i``,
plus ``--leave-stdin-open`` unless ``stdinOnce`` (:func:`stdio_flags`, as CRI-O).

conmon then runs ``runc create`` itself, double-forks so it is no child of ours
(re-parented to init or the nearest subreaper: it keeps running when podlife dies,
which is what makes re-adoption possible), and:

* copies the container's stdout and stderr into the log file in the CRI format
  (``<RFC3339Nano> <stream> <F|P> <content>``, which :mod:`podlife.kubelet.logs`
  reads);
* when the container's process ends, writes its exit code (``128 + N`` for signal N)
  to ``<exit-dir>/<id>`` and ``<persist-dir>/exit``, and an ``oom`` file to the
  persist dir when the cgroup saw an OOM kill; then exits.

conmon is started with :func:`podlife.kubelet.oci.runc.spawn` (``vfork``, not the
event loop's ``fork`` of the whole agent). The start handshake uses conmon's two pipes: ``_OCI_STARTPIPE`` (conmon waits for a
byte on it before it forks) and ``_OCI_SYNCPIPE`` (conmon answers
``{"data": <container pid>}`` once ``runc create`` has succeeded, or ``{"data": -1,
"message": ...}`` with runc's error). The env vars carry the fd numbers, so the fds
are passed as they are, with no ``preexec_fn`` (asyncio and uvloop alike).

**Attaching** (:class:`AttachSocket`) is CRI-O's ``AttachContainer``: conmon listens on
``<socket dir>/<container id>/attach`` (a ``SOCK_SEQPACKET`` socket; the path is a symlink
to the bundle, which keeps it short enough for ``sun_path``). Every packet conmon sends
starts with the stream it comes from (2 stdout, 3 stderr; a terminal's output is stdout);
what is written to the socket goes to the container's stdin (or its terminal). When an
attached client closes its sending side (or the connection), conmon closes the container's
stdin -- unless ``--leave-stdin-open``: that is ``stdinOnce``. Terminal resizes are
``1 <height> <width>`` lines on the ``ctl`` fifo in the bundle.

Waiting for an exit uses a pidfd on conmon's pid (:func:`wait_for_exit`): the
event loop is woken when conmon exits, without polling and without being its
parent. A pid is only watched after checking, in ``/proc/<pid>/cmdline``, that it
is the conmon of that container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from podlife.kubelet.oci import runc
from podlife.kubelet.pipes import PipeReader
from podlife.kubelet.oci.runc import runc_message, spawn, wait_process

__all__ = [
    "AttachSocket",
    "ConmonError",
    "ConmonPaths",
    "Stdio",
    "conmon_pid",
    "create_container",
    "find_conmon",
    "read_exit_code",
    "read_oom",
    "reopen_log",
    "resize_message",
    "stdio_flags",
    "wait_for_exit",
]

#: Seconds conmon may take to report the result of ``runc create``.
CREATE_TIMEOUT_SECONDS = 60.0


class ConmonError(Exception):
    """conmon or ``runc create`` failed; ``message`` is the runtime's error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def find_conmon() -> str | None:
    return shutil.which("conmon") or shutil.which("conmon", path="/usr/libexec/podman:/usr/local/libexec/podman")


@dataclass(frozen=True)
class ConmonPaths:
    """Where conmon reads and writes for one container."""

    bundle_dir: Path
    log_path: Path
    exit_dir: Path
    socket_dir: Path

    @property
    def conmon_pidfile(self) -> Path:
        return self.bundle_dir / "conmon.pid"

    @property
    def container_pidfile(self) -> Path:
        return self.bundle_dir / "pidfile"

    @property
    def persist_dir(self) -> Path:
        return self.bundle_dir

    @property
    def conmon_stderr(self) -> Path:
        return self.bundle_dir / "conmon.stderr"

    @property
    def control_fifo(self) -> Path:
        """conmon's ``ctl`` fifo: ``"<type> <a> <b>\\n"`` messages (1: terminal size, 2: reopen the log)."""
        return self.bundle_dir / "ctl"


#: conmon's control message asking it to reopen its log file (CRI-O's ReopenContainerLog)
REOPEN_LOG_MESSAGE = b"2 0 0\n"


def reopen_log(paths: ConmonPaths) -> bool:
    """Ask conmon to reopen its log file (after the kubelet renamed it); False if conmon is gone."""
    try:
        fd = os.open(paths.control_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no fifo, or no reader on it: conmon has exited
        return False
    try:
        os.write(fd, REOPEN_LOG_MESSAGE)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


@dataclass(frozen=True)
class Stdio:
    """A container's ``stdin``, ``stdinOnce`` and ``tty`` (``pod.spec.containers[i]``)."""

    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False


def stdio_flags(stdio: Stdio) -> list[str]:
    """conmon's flags for the container's stdin and terminal, as CRI-O passes them."""
    if stdio.tty:
        return ["-t"]
    if stdio.stdin:
        return ["-i"] if stdio.stdin_once else ["--leave-stdin-open", "-i"]
    return []


def conmon_argv(
    conmon: str, runtime: str, runtime_root: Path, container_id: str, name: str, paths: ConmonPaths,
    stdio: Stdio | None = None,
) -> list[str]:
    """conmon's command line for ``container_id`` (see the module's design)."""
    return [
        conmon,
        "--api-version",
        "1",
        "-c",
        container_id,
        "-u",
        container_id,
        "-n",
        name,
        "-r",
        runtime,
        "--runtime-arg",
        f"--root={runtime_root}",
        "-b",
        str(paths.bundle_dir),
        "-p",
        str(paths.container_pidfile),
        "-P",
        str(paths.conmon_pidfile),
        "-l",
        f"k8s-file:{paths.log_path}",
        "--exit-dir",
        str(paths.exit_dir),
        "-0",
        str(paths.persist_dir),
        "--socket-dir-path",
        str(paths.socket_dir),
        "--log-level",
        "error",
        *stdio_flags(stdio or Stdio()),
    ]


async def create_container(
    conmon: str, runtime: str, runtime_root: Path, container_id: str, name: str, paths: ConmonPaths,
    stdio: Stdio | None = None,
) -> int:
    """Have conmon ``runc create`` the container; return the container's init pid.

    Raises :class:`ConmonError` with runc's message when creation fails. The
    container is then *created*: ``runc start`` runs its process.
    """
    for directory in (paths.exit_dir, paths.socket_dir, paths.log_path.parent):
        directory.mkdir(parents=True, exist_ok=True)
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r)}
    argv = conmon_argv(conmon, runtime, runtime_root, container_id, name, paths, stdio)
    try:
        with open(paths.conmon_stderr, "wb") as stderr:
            process = spawn(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env=env,
                cwd=str(paths.bundle_dir),
                pass_fds=(sync_w, start_r),
                start_new_session=True,
            )
    except OSError as exc:
        for fd in (sync_r, sync_w, start_r, start_w):
            os.close(fd)
        raise ConmonError(f"cannot run conmon: {exc.strerror or exc}") from exc
    os.close(sync_w)
    os.close(start_r)
    try:
        os.write(start_w, b"0")
    except OSError:  # conmon is already gone; the sync pipe says why
        pass
    finally:
        os.close(start_w)
    try:
        answer = await _read_sync_answer(sync_r)
    finally:
        await asyncio.shield(wait_process(process))  # the parent conmon exits once it has forked the monitor
    return _container_pid(answer, paths)


async def _read_sync_answer(fd: int) -> bytes:
    """conmon's one-line answer on the sync pipe (``fd`` is closed after)."""
    pipe = PipeReader(fd)
    try:
        return await asyncio.wait_for(pipe.reader.readline(), CREATE_TIMEOUT_SECONDS)
    except TimeoutError:
        raise ConmonError(f"conmon did not report the container's creation within {CREATE_TIMEOUT_SECONDS}s") from None
    finally:
        pipe.close()


def _container_pid(answer: bytes, paths: ConmonPaths) -> int:
    if not answer.strip():
        detail = _tail(paths.conmon_stderr)
        raise ConmonError(f"conmon exited without creating the container{': ' + detail if detail else ''}")
    try:
        doc = json.loads(answer)
        pid = int(doc.get("data", -1))
    except (ValueError, TypeError, AttributeError):
        raise ConmonError(f"conmon answered {answer!r}") from None
    if pid <= 0:
        message = str(doc.get("message") or "").strip() or _tail(paths.conmon_stderr) or "runc create failed"
        raise ConmonError(_runc_message(message))
    return pid


def _runc_message(text: str) -> str:
    """runc's ``msg="..."`` out of the text conmon relays, else the text."""
    return runc_message(text) or text


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


def conmon_pid(paths: ConmonPaths, container_id: str) -> int | None:
    """conmon's pid from its pidfile, if that process is alive and is this container's conmon."""
    try:
        pid = int(paths.conmon_pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not cmdline or not cmdline[0].endswith(b"conmon") or container_id.encode() not in cmdline:
        return None
    return pid


def process_matches(pid: int, starttime: str | None) -> bool:
    """Whether ``pid`` is alive (and, given ``starttime``, the same process as before)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if starttime is None:
        return True
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) > 19 and fields[19] == starttime


def process_starttime(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


async def wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` (not necessarily our child) has exited."""
    await runc.wait_for_exit(pid)


def read_exit_code(paths: ConmonPaths, container_id: str) -> int | None:
    """The exit code conmon recorded (exit dir first, then the persist dir), or None."""
    for path in (paths.exit_dir / container_id, paths.persist_dir / "exit"):
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
    return None


def read_oom(paths: ConmonPaths) -> bool:
    """Whether conmon saw the container's cgroup OOM-kill a process."""
    return (paths.persist_dir / "oom").exists()


def remove_exit_file(paths: ConmonPaths, container_id: str) -> None:
    """Forget conmon's files outside the bundle: the exit file and the attach-socket link."""
    for path in (paths.exit_dir / container_id, paths.socket_dir / container_id):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --------------------------------------------------------------------------- attach

#: conmon's stream ids in attach packets, and the stream names of the CRI log format
ATTACH_STREAMS = {2: "stdout", 3: "stderr"}
#: conmon's stdio buffer (``STDIO_BUF_SIZE``) plus the stream byte
ATTACH_PACKET_BYTES = 8192 + 1
#: how long a terminal resize waits for a later one before it is written (see AttachSocket.resize)
RESIZE_SETTLE_SECONDS = 0.05


def resize_message(width: int, height: int) -> bytes:
    """The ``ctl`` fifo line that resizes the container's terminal (height first, as conmon reads it)."""
    return f"1 {height} {width}\n".encode()


def parse_attach_packet(packet: bytes) -> tuple[str, bytes] | None:
    """``(stream, data)`` of one packet from the attach socket; None for an unknown stream."""
    stream = ATTACH_STREAMS.get(packet[0]) if packet else None
    return (stream, packet[1:]) if stream is not None else None


class AttachSocket:
    """A connection to a container's conmon attach socket (see the module's design)."""

    def __init__(self, sock: socket.socket, paths: ConmonPaths, stdio: Stdio) -> None:
        self._sock = sock
        self._paths = paths
        self._input_closed = False
        self._size: tuple[int, int] | None = None
        self._resize_timer: asyncio.TimerHandle | None = None
        #: whether conmon closes the container's stdin when this client's input ends
        self.stdin_once = stdio.stdin_once or not stdio.stdin

    @classmethod
    async def connect(cls, paths: ConmonPaths, container_id: str, stdio: Stdio) -> AttachSocket:
        """Connect to the container's attach socket; ``OSError`` when conmon is not listening."""
        # The path may not fit ``sun_path`` (108 bytes); as conmon binds it, reach it by a
        # descriptor of its directory.
        directory = os.open(paths.socket_dir / container_id, os.O_PATH | os.O_CLOEXEC)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{directory}/attach")
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(directory)
        return cls(sock, paths, stdio)

    async def read(self) -> tuple[str, bytes]:
        """The next output ``(stream, data)``; ``("", b"")`` once conmon has closed the socket."""
        loop = asyncio.get_running_loop()
        while self._sock.fileno() >= 0:
            try:
                packet = await loop.sock_recv(self._sock, ATTACH_PACKET_BYTES)
            except OSError:
                break
            if not packet:
                break
            parsed = parse_attach_packet(packet)
            if parsed is not None and parsed[1]:
                return parsed
        return "", b""

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the container's stdin (dropped once input is closed or conmon is gone)."""
        if self._input_closed or self._sock.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def close_input(self) -> None:
        """End of the client's input: conmon closes the container's stdin unless it is left open."""
        if not self._input_closed and self._sock.fileno() >= 0:
            self._input_closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def resize(self, width: int, height: int) -> None:
        """Resize the container's terminal, with the last size of :data:`RESIZE_SETTLE_SECONDS`.

        conmon (2.1) relays ``ctl`` lines to its terminal through a second fifo and reads only
        the first of the sizes that arrive together there; kubectl sends two at once when it
        attaches (its size plus one, then its size), so only the last of a burst is written.
        """
        self._size = (width, height)
        if self._resize_timer is None:
            self._resize_timer = asyncio.get_running_loop().call_later(RESIZE_SETTLE_SECONDS, self._write_size)

    def _write_size(self) -> None:
        self._resize_timer = None
        if self._size is None or self._sock.fileno() < 0:
            return
        width, height = self._size
        try:
            fd = os.open(self._paths.control_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.write(fd, resize_message(width, height))
        except OSError:
            pass
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._resize_timer is not None:
            self._resize_timer.cancel()
            self._resize_timer = None
        self._sock.close()
