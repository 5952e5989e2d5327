"""runc's command line, driven from asyncio.

Design
------
:class:`Runc` runs ``runc --root <state dir> <command>`` as asyncio subprocesses;
it never blocks the event loop and never keeps a process of its own running, except
for ``runc exec``, whose process is the exec'd command's parent for as long as it
runs (runc forwards signals to it and exits with its status). ``--root`` is
podlife's own state directory under the node's root dir, so ``runc list`` shows
podlife's containers only and tests on one machine do not see each other's.

Commands used, as CRI-O uses them (``internal/oci/runtime_oci.go``):

* ``create`` is run by conmon (:mod:`podlife.kubelet.oci.conmon`), not here.
* ``start <id>`` releases a created container's process.
* ``state <id>`` / ``list --format json``: status (``created``, ``running``,
  ``paused``, ``stopped``), the init pid, bundle and annotations.
* ``kill <id> <signal>``: signal the container's init process (its PID 1).
* ``delete [--force] <id>``: forget a stopped container; runc removes its cgroup.
* ``exec``: a process in a running container's namespaces and cgroup, with
  ``--env``, ``--user uid:gid``, ``--additional-gids``, ``--cwd`` and, for a
  terminal, ``--tty`` with the caller's pseudo-terminal as its stdio (runc relays it to
  one it makes in the container).

runc reports failures on stderr as ``level=error msg="..."`` lines;
:class:`RuncError` carries the message.

Processes are started with :func:`spawn` (``subprocess.Popen``: ``vfork`` + ``exec``),
not the event loop's ``subprocess_exec``: under uvloop that forks the whole agent
(its page tables copied, a hundred MB and more) and blocks the loop until the child
has exec'd, some 7 ms a process against 0.5 ms, which with two runc commands and a
conmon per container was most of what the loop did while pods started. The exit is
awaited with a pidfd (:func:`wait_for_exit`), the output read through the loop
(:func:`run_command`, with :mod:`podlife.kubelet.pipes`: uvloop's ``connect_read_pipe`` closes a
file object's fd twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podlife.kubelet.pipes import read_to_end

__all__ = [
    "CommandResult",
    "ContainerState",
    "ExecProcess",
    "Runc",
    "RuncError",
    "find_runc",
    "run_command",
    "spawn",
    "wait_for_exit",
    "wait_process",
]

#: Seconds any runc command other than exec may take.
RUNC_TIMEOUT_SECONDS = 60.0
_MSG_RE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


class RuncError(Exception):
    """A runc command failed; ``message`` is runc's own error text."""

    def __init__(self, command: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr
        self.message = runc_message(stderr) or f"runc {' '.join(command)} failed with exit code {returncode}"
        super().__init__(self.message)

    @property
    def not_found(self) -> bool:
        """Whether runc said the container does not exist."""
        return "does not exist" in self.message or "not exist" in self.stderr


def runc_message(stderr: str) -> str:
    """The ``msg="..."`` of runc's last error line, else the last non-empty line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        m = _MSG_RE.search(line)
        if m:
            return m.group(1).replace('\\"', '"')
    return lines[-1].strip() if lines else ""


def spawn(argv: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` with ``subprocess.Popen`` (``vfork``: cheap for a big agent; see the design)."""
    return subprocess.Popen(list(argv), **options)


async def wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` (not necessarily our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def wait_process(process: subprocess.Popen[bytes]) -> int:
    """Wait for a process of :func:`spawn` to exit, reap it, and return its exit status."""
    await wait_for_exit(process.pid)
    return process.wait()


@dataclass(frozen=True)
class CommandResult:
    """How a command ended, with everything it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run_command(argv: Sequence[str], *, timeout: float) -> CommandResult:
    """Run ``argv`` (stdin from ``/dev/null``), collecting its output; ``TimeoutError`` once it is killed."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        process = spawn(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    finished = asyncio.ensure_future(_communicate(process, out_r, err_r))
    try:
        return await asyncio.wait_for(asyncio.shield(finished), timeout)
    except BaseException:  # timed out or cancelled: the process goes, and is reaped
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        finished.cancel()
        await asyncio.shield(wait_process(process))
        raise


async def _communicate(process: subprocess.Popen[bytes], out_r: int, err_r: int) -> CommandResult:
    """The process's output, read to the end from our own pipe fds (see :mod:`podlife.kubelet.pipes`)."""
    out, err = await asyncio.gather(read_to_end(out_r), read_to_end(err_r))
    return CommandResult(await wait_process(process), out, err)


def find_runc() -> str | None:
    """runc on PATH, or in the sbin directories a non-login PATH may lack."""
    return shutil.which("runc") or shutil.which("runc", path="/usr/local/sbin:/usr/sbin:/sbin")


@dataclass(frozen=True)
class ContainerState:
    """What ``runc state`` / ``runc list`` says about one container."""

    id: str
    pid: int
    status: str
    bundle: str
    created: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ContainerState:
        return cls(
            id=str(doc["id"]),
            pid=int(doc.get("pid") or 0),
            status=str(doc.get("status", "")),
            bundle=str(doc.get("bundle", "")),
            created=str(doc.get("created", "")),
            annotations=dict(doc.get("annotations") or {}),
        )

    @property
    def running(self) -> bool:
        return self.status in {"running", "paused"} and self.pid > 0


@dataclass
class ExecProcess:
    """A ``runc exec``: its process (whose stdio is pipes, or the caller's terminal)."""

    process: asyncio.subprocess.Process


class Runc:
    """runc with podlife's state directory."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = Path(root)

    def base_argv(self) -> list[str]:
        return [self.binary, "--root", str(self.root)]

    async def run(self, *args: str, timeout: float = RUNC_TIMEOUT_SECONDS) -> str:
        """Run ``runc --root <root> *args``; its stdout, or :class:`RuncError`."""
        try:
            result = await run_command([*self.base_argv(), *args], timeout=timeout)
        except TimeoutError:
            raise RuncError(args, None, f"runc {args[0]} did not finish in {timeout}s") from None
        if result.returncode != 0:
            raise RuncError(args, result.returncode, result.stderr.decode(errors="replace"))
        return result.stdout.decode(errors="replace")

    async def state(self, container_id: str) -> ContainerState | None:
        """The container's state, or None if runc does not know it."""
        try:
            out = await self.run("state", container_id)
        except RuncError as exc:
            if exc.not_found:
                return None
            raise
        return ContainerState.from_json(json.loads(out))

    async def list(self) -> list[ContainerState]:
        """Every container in the state directory."""
        if not self.root.is_dir():
            return []
        out = await self.run("list", "--format", "json")
        docs = json.loads(out or "null") or []
        return [ContainerState.from_json(d) for d in docs]

    async def start(self, container_id: str) -> None:
        await self.run("start", container_id)

    async def kill(self, container_id: str, signal: int | str) -> bool:
        """Signal the container's init; False if it is already stopped or gone."""
        try:
            await self.run("kill", container_id, str(signal))
        except RuncError as exc:
            if exc.not_found or "not running" in exc.message or "process already finished" in exc.message:
                return False
            raise
        return True

    async def delete(self, container_id: str, *, force: bool = False) -> bool:
        """Delete the container (``force``: kill it first); False if runc did not know it."""
        args = ["delete", *(["--force"] if force else []), container_id]
        try:
            await self.run(*args)
        except RuncError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        additional_gids: Sequence[int] = (),
        cwd: str | None = None,
        stdin: bool = False,
        tty: bool = False,
        stdio_fd: int | None = None,
    ) -> ExecProcess:
        """Start ``argv`` in the container; stdout/stderr are pipes (or the terminal with ``tty``,
        or all three stdio streams ``stdio_fd``).

        ``stdio_fd`` and ``tty``: ``runc exec --tty`` with that terminal as its stdio. runc makes
        a terminal in the container (the command's controlling one), sets ours to raw mode,
        copies between the two, and copies our window size to it on ``SIGWINCH``. ``tty``
        without ``stdio_fd`` is refused: runc's other way, ``--console-socket``, needs
        ``--detach``, which would lose the command's exit status.
        """
        options: list[str] = []
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if uid is not None:
            options += ["--user", f"{uid}:{gid if gid is not None else 0}"]
        for extra in additional_gids:
            options += ["--additional-gids", str(extra)]
        if cwd:
            options += ["--cwd", cwd]
        if stdio_fd is not None:  # with ``tty``: runc relays between the fd and a terminal it makes
            process = await asyncio.create_subprocess_exec(
                *self.base_argv(), "exec", *(["--tty"] if tty else []), *options, container_id, *argv,
                stdin=stdio_fd, stdout=stdio_fd, stderr=stdio_fd, start_new_session=True,
            )
            return ExecProcess(process)
        if not tty:  # a terminal comes only as stdio_fd (above)
            process = await asyncio.create_subprocess_exec(
                *self.base_argv(),
                "exec",
                *options,
                container_id,
                *argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            return ExecProcess(process)
        raise ValueError("a terminal needs stdio_fd: runc exec --console-socket works only with --detach")
