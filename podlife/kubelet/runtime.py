"""The kubelet's local container runtime: each container is a real process on this machine.

Design
------
podlife has no images and no namespaces. A container is a process started from
``command + args``. The runtime keeps the parts of a container runtime that
the kubelet and users can see:

* **A process group per container.** Every container is started with
  ``start_new_session=True``, so its pid is also its process group and session
  id. Stopping a container signals the whole group, so children it forked
  (``sh -c 'worker & wait'``) get the signal as well. When the main process
  exits, whether on its own or because it was stopped, whatever is left in its
  group is SIGKILLed. This is what happens in Kubernetes when PID 1 of a
  container's PID namespace exits. Processes are only ever signalled by the
  pid/pgid this runtime got when it started them, never by name.
* **Graceful stop.** :meth:`ProcessRuntime.stop_container` sends SIGTERM to the
  group, waits up to the grace period, then sends SIGKILL. A process killed by
  signal N reports exit code ``128 + N`` (SIGKILL gives 137, SIGTERM 143), as
  Kubernetes reports it.
* **Logs in CRI format.** stdout and stderr go to two pipes that the runtime
  creates itself. One asyncio reader per pipe appends CRI records
  (``<RFC3339Nano> <stream> <F|P> <content>``) to a single file,
  ``root_dir/pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log``,
  the kubelet's ``/var/log/pods`` layout. :mod:`podlife.kubelet.logs` encodes
  and reads it. The runtime owns the pipes and does not use asyncio's
  ``PIPE``, so waiting for the process depends only on the process exiting. A
  grandchild that keeps stdout open cannot delay the exit status. The log is
  appended with one ``os.write`` per pipe read, on the loop thread. These are
  small appends to a local file.
* **No blocking, no zombies.** Processes are started with
  ``asyncio.create_subprocess_exec`` and awaited with ``Process.wait()``, on the
  plain asyncio loop and on uvloop alike. The event loop's child watcher reaps
  each process. Every started container stays in the runtime's table until its
  exit has been recorded. :meth:`ProcessRuntime.shutdown` stops whatever is
  still running.

Decisions
---------
* Command line: ``command + args`` when ``command`` is set. When only ``args`` is
  set, ``args`` alone, since there is no image entrypoint to prepend. When both
  are empty, :data:`DEFAULT_COMMAND` (``sh -c 'exec sleep 2147483647'``), a
  container that runs until it is stopped. This stands in for an image's
  default command.
* Environment: the process gets exactly ``spec.env``, which the kubelet has
  already resolved, and nothing inherited from the kubelet. The one addition
  is ``PATH``: when ``spec.env`` does not set it, it is :data:`DEFAULT_PATH`,
  the default PATH that container runtimes give a container. The executable
  is looked up in that PATH.
* Working directory: ``spec.working_dir`` if set, else the runtime's
  ``default_working_dir`` (``/``, like an image without ``WORKDIR``). A missing
  directory is a start error. It is not created, because this is the host's
  filesystem.
* Start failures (executable not found, bad working directory) raise
  :class:`ContainerStartError`. Kubernetes reports these as a terminated
  container with reason ``StartError`` and exit code 128, and the exception
  carries those two values.
* ``oom_killed`` is always False: there are no memory cgroups here.

Limits: a process that leaves its group (``setsid``, ``setpgid``) is out of
reach, as it would be of any tool that lacks cgroups. If it holds the output
pipe, :meth:`ContainerHandle.wait` stops waiting for the log after
``log_drain_timeout`` (default :data:`LOG_DRAIN_TIMEOUT_SECONDS`). The pipe is closed when the runtime forgets
the container (:meth:`ProcessRuntime.remove_pod` or
:meth:`ProcessRuntime.shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from podlife.kubelet.logs import CRILogEncoder
from podlife.kubelet.pipes import PipeReader
from podlife.machinery.tasks import Supervisor

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_PATH",
    "ContainerHandle",
    "ContainerNotRunningError",
    "ContainerSpec",
    "ContainerStartError",
    "ExitInfo",
    "ImageRef",
    "ImageUnavailableError",
    "MountLike",
    "PodKey",
    "PodKeyLike",
    "ProcessRuntime",
]

log = logging.getLogger(__name__)

#: Run when a container has neither ``command`` nor ``args``: sleep until stopped.
DEFAULT_COMMAND: tuple[str, ...] = ("/bin/sh", "-c", "exec sleep 2147483647")
#: ``PATH`` given to a container whose env does not set one (containerd's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Exit code Kubernetes reports for a container that could not be started.
START_ERROR_EXIT_CODE = 128
#: Container id scheme, as in ``containerd://<id>``.
CONTAINER_ID_SCHEME = "podlife"
#: After the main process exits, how long to wait for its output to reach the log file.
LOG_DRAIN_TIMEOUT_SECONDS = 2.0
#: Bytes asked for per read from an output pipe (the pipe buffer size on Linux).
PIPE_READ_BYTES = 64 * 1024


def signal_number(name: str | None) -> int:
    """A stop signal as Kubernetes and image configs write it (``SIGUSR1``, ``USR1``, ``10``);
    SIGTERM when none (or one this machine does not know) is given."""
    if not name:
        return signal.SIGTERM
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    found = getattr(signal, text if text.startswith("SIG") else f"SIG{text}", None)
    return int(found) if isinstance(found, signal.Signals) else signal.SIGTERM


class PodKeyLike(Protocol):
    """Anything naming a pod: ``namespace``, ``name`` and ``uid`` attributes."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def uid(self) -> str: ...


class PodKey(NamedTuple):
    """Identifies one pod instance (a re-created pod with the same name has a new uid)."""

    namespace: str
    name: str
    uid: str


def pod_dir_name(pod: PodKeyLike) -> str:
    """``<namespace>_<name>_<uid>``: a pod's directory under ``pods/`` (the kubelet's /var/log/pods)."""
    return f"{pod.namespace}_{pod.name}_{pod.uid}"


_pod_dir_name = pod_dir_name


class MountLike(Protocol):
    """One resolved volume mount of a container (:class:`podlife.kubelet.volumes.VolumeMount`)."""

    @property
    def source(self) -> Path: ...

    @property
    def destination(self) -> str: ...

    @property
    def read_only(self) -> bool: ...


@dataclass
class ContainerSpec:
    """What the kubelet takes from ``pod.spec.containers[i]`` to run it.

    ``command``/``args``/``env`` are resolved (``$(VAR)`` expanded); ``container`` and
    ``pod`` are the API's objects, for what a runtime with isolation reads itself
    (securityContext, resources); ``mounts`` are the pod's volumes for this container.
    This runtime uses neither images, mounts nor securityContext.
    """

    name: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    image: str = ""
    container: dict = field(default_factory=dict)
    pod: dict = field(default_factory=dict)
    mounts: Sequence[MountLike] = ()
    image_ref: ImageRef | None = None

    def argv(self) -> list[str]:
        """The command line to run (see the module's "Decisions")."""
        if self.command:
            return [*self.command, *self.args]
        if self.args:
            return list(self.args)
        return list(DEFAULT_COMMAND)

    def process_env(self) -> dict[str, str]:
        """The environment of the process: ``env`` plus a default ``PATH``."""
        env = dict(self.env)
        env.setdefault("PATH", DEFAULT_PATH)
        return env


@dataclass(frozen=True)
class ExitInfo:
    """How a container's main process ended."""

    exit_code: int
    signal: int | None
    finished_at: datetime
    oom_killed: bool = False

    @property
    def reason(self) -> str:
        """The ``containerStatuses[].state.terminated.reason`` Kubernetes would show."""
        if self.oom_killed:
            return "OOMKilled"
        return "Completed" if self.exit_code == 0 else "Error"

    @classmethod
    def from_returncode(cls, returncode: int, finished_at: datetime) -> ExitInfo:
        """Map a ``Popen.returncode`` (``-N`` for signal N) to Kubernetes' exit code."""
        if returncode < 0:
            return cls(128 - returncode, -returncode, finished_at)
        return cls(returncode, None, finished_at)


class ContainerStartError(Exception):
    """The process could not be started; Kubernetes shows ``StartError`` with exit code 128."""

    reason = "StartError"
    exit_code = START_ERROR_EXIT_CODE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ContainerNotRunningError(Exception):
    """The operation needs a running container."""


class ImageUnavailableError(Exception):
    """The node cannot provide the container's image: ``reason`` is the waiting reason
    Kubernetes shows (``ErrImagePull``, ``ErrImageNeverPull``, ``InvalidImageName``)."""

    def __init__(self, message: str, reason: str = "ErrImagePull") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class ImageRef:
    """The image a container will run, as the runtime resolved it.

    ``image_id``: the status's ``imageID`` ("" lets the node make one up, as for the host
    image class); ``pulled_message``: the text of the ``Pulled`` event ("" for "already
    present"); ``stored``: the runtime's own handle of a pulled image, if any.
    """

    image_id: str = ""
    pulled_message: str = ""
    stored: Any = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_container_id() -> str:
    return f"{CONTAINER_ID_SCHEME}://{secrets.token_hex(32)}"


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id now belongs to someone else's group: not ours
        log.warning("not allowed to signal process group %d", pgid)
        return False
    return True


class _LogFile:
    """The append-only log file shared by a container's two output readers."""

    def __init__(self, path: Path, users: int) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._users = users
        self._failed = False

    def write(self, data: bytes) -> None:
        """Append ``data``; on a write error, log once and drop output (the pipe keeps draining)."""
        view = memoryview(data)
        while view and self._fd is not None and not self._failed:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError as exc:
                self._failed = True
                log.error("cannot write container log %s: %s", self.path, exc)
                return
            view = view[written:]

    def release(self) -> None:
        """One reader is done; the last one closes the file."""
        self._users -= 1
        if self._users <= 0 and self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def _connect_pipe(fd: int) -> tuple[asyncio.StreamReader, PipeReader]:
    """Wrap the read end of a pipe in a StreamReader on the running loop (one owner of ``fd``: :mod:`podlife.kubelet.pipes`)."""
    pipe = PipeReader(fd, limit=PIPE_READ_BYTES)
    return pipe.reader, pipe


async def _pump(
    reader: asyncio.StreamReader, transport: PipeReader, encoder: CRILogEncoder, out: _LogFile
) -> None:
    """Copy one output stream into the log file as CRI records until EOF (or cancellation)."""
    try:
        while data := await reader.read(PIPE_READ_BYTES):
            out.write(encoder.feed(data))
    finally:
        out.write(encoder.finish())
        transport.close()
        out.release()


class ContainerHandle:
    """A started container: its process, its log file and, once it has exited, how it ended."""

    def __init__(
        self,
        *,
        container_id: str,
        pod_key: PodKeyLike,
        spec: ContainerSpec,
        restart_count: int,
        process: asyncio.subprocess.Process,
        started_at: datetime,
        log_path: Path,
        pumps: list[asyncio.Task[None]],
    ) -> None:
        self.container_id = container_id
        self.pod_key = pod_key
        self.spec = spec
        self.restart_count = restart_count
        self.pid = process.pid
        self.started_at = started_at
        self.log_path = log_path
        self.stop_requested = False
        self._process = process
        self._pumps = pumps
        self._execs: set[asyncio.subprocess.Process] = set()
        self._process_exited = asyncio.Event()
        self._exit: ExitInfo | None = None
        self._done: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        state = "running" if self._exit is None else f"exited({self._exit.exit_code})"
        return f"<ContainerHandle {self.spec.name} pid={self.pid} {state} {self.container_id}>"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def env(self) -> dict[str, str]:
        return self.spec.env

    @property
    def exited(self) -> ExitInfo | None:
        """How the container ended, once it has and its output is in the log file."""
        return self._exit

    @property
    def running(self) -> bool:
        """True until the container's exit has been recorded."""
        return self._exit is None

    async def wait(self) -> ExitInfo:
        """Wait until the container has exited and its output has been written to the log."""
        return await asyncio.shield(self._done)


class ProcessRuntime:
    """Starts, stops and forgets the containers of one node as local processes."""

    #: what the Node says about this runtime (``podlife.io/container-runtime``)
    kind = "process"
    description = "host processes (no isolation: no namespaces, cgroups, images or volume mounts)"
    #: processes see the host's filesystem: the pod's volumes are neither set up nor mounted
    mounts_volumes = False
    #: the log is written through an fd this runtime holds: it is not rotated
    can_reopen_logs = False

    def __init__(
        self,
        root_dir: Path,
        *,
        default_working_dir: str = "/",
        log_drain_timeout: float = LOG_DRAIN_TIMEOUT_SECONDS,
    ) -> None:
        self.root_dir = Path(root_dir)
        self.default_working_dir = default_working_dir
        self.log_drain_timeout = log_drain_timeout
        self._live: dict[str, ContainerHandle] = {}
        self._watchers = Supervisor("process runtime: exit watchers", logger=log)
        self._pumps = Supervisor("process runtime: log pumps", logger=log)
        self._closed = False

    # ------------------------------------------------------------------ paths

    def pod_log_dir(self, pod_key: PodKeyLike) -> Path:
        """``root_dir/pods/<namespace>_<name>_<uid>``."""
        return self.root_dir / "pods" / _pod_dir_name(pod_key)

    def log_path(self, pod_key: PodKeyLike, container: str, restart_count: int) -> Path:
        """``root_dir/pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log``."""
        return self.pod_log_dir(pod_key) / container / f"{restart_count}.log"

    def termination_message_file(self, handle: ContainerHandle) -> Path | None:
        """None: a host process has no mount namespace to put the message file in (the log fallback still applies)."""
        return None

    # ------------------------------------------------------------------ queries

    def running_containers(self, pod_key: PodKeyLike | None = None) -> list[ContainerHandle]:
        """Containers whose exit has not been recorded yet, optionally of one pod."""
        handles = list(self._live.values())
        if pod_key is None:
            return handles
        return [h for h in handles if _same_pod(h.pod_key, pod_key)]

    def has_sandbox(self, pod_key: PodKeyLike) -> bool:
        """Processes have no sandbox to keep: there is never one to find again."""
        return False

    def network_namespace(self, handle: Any) -> str | None:
        """Host processes share this machine's network: None, the caller's own."""
        return None

    def pod_network_namespace(self, pod: Any) -> str | None:
        """No sandbox, no namespace: the CNI step only records the port."""
        return None

    def pod_sandbox_id(self, pod: Any) -> str:
        return ""

    @property
    def image_dir(self) -> Path | None:
        """Host processes run no images."""
        return None

    def bind(self, client: Any) -> None:
        """Nothing of the API is needed: there are no images to pull."""

    async def collect_image_garbage(self) -> list[str]:
        return []

    def reopen_log(self, handle: ContainerHandle) -> bool:
        return False

    # ------------------------------------------------------------------ sandbox and adoption (none here)

    async def ensure_image(self, image: str, policy: str, pod: dict,
                           on_pulling: Callable[[str], None] | None = None) -> ImageRef:
        """Nothing to pull: the command runs on the host."""
        return ImageRef()

    async def prepare_pod(self, pod: dict, pod_ips: Sequence[str] = ()) -> None:
        """No sandbox: processes share the host's namespaces."""

    async def write_hosts(self, pod: dict, pod_ips: Sequence[str]) -> None:
        """Processes see the host's ``/etc/hosts``."""

    async def adopt(self) -> int:
        """Processes die with the agent: nothing to find again."""
        return 0

    async def claim_adopted(self, pod_key: PodKeyLike, status: dict) -> dict[str, ContainerHandle]:
        return {}

    async def remove_orphans(self, pod_uids: Iterable[str]) -> None:
        """Nothing outlives the agent, so nothing can be orphaned."""

    # ------------------------------------------------------------------ lifecycle

    async def start_container(self, pod_key: PodKeyLike, spec: ContainerSpec, restart_count: int) -> ContainerHandle:
        """Start ``spec`` as a new process group, its output going to its log file.

        Raises :class:`ContainerStartError` when the process cannot be started.
        """
        if self._closed:
            raise RuntimeError("the runtime has been shut down")
        argv = spec.argv()
        cwd = spec.working_dir or self.default_working_dir
        env = spec.process_env()
        if not os.path.isdir(cwd):
            raise ContainerStartError(f"working directory {cwd!r}: no such directory")
        path = self.log_path(pod_key, spec.name, restart_count)
        pumps, out_w, err_w = await self._open_output(path)
        try:
            process = await _spawn(argv, env, cwd, out_w, err_w)
        except BaseException:
            os.close(out_w)
            os.close(err_w)
            await asyncio.wait(pumps)  # they see EOF at once and close the log file
            raise
        os.close(out_w)
        os.close(err_w)
        started_at = _utcnow()
        handle = ContainerHandle(
            container_id=_new_container_id(),
            pod_key=pod_key,
            spec=spec,
            restart_count=restart_count,
            process=process,
            started_at=started_at,
            log_path=path,
            pumps=pumps,
        )
        self._live[handle.container_id] = handle
        self._watchers.start(self._watch(handle), f"watch {spec.name}")
        log.debug("started %r for %s", handle, _pod_dir_name(pod_key))
        return handle

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> ExitInfo:
        """Stop a container: its stop signal (``lifecycle.stopSignal``, else SIGTERM) to its group,
        SIGKILL after ``grace_seconds``.

        ``grace_seconds <= 0`` sends SIGKILL at once. Returns how it ended (also
        when it had already exited).
        """
        if handle.exited is not None:
            return handle.exited
        handle.stop_requested = True
        if grace_seconds > 0 and handle._process.returncode is None:
            _signal_group(handle.pid, signal_number((handle.spec.container.get("lifecycle") or {}).get("stopSignal")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(handle._process_exited.wait(), grace_seconds)
        if handle._process.returncode is None and not handle._process_exited.is_set():
            _signal_group(handle.pid, signal.SIGKILL)
        return await handle.wait()

    async def exec_in_container(
        self,
        handle: ContainerHandle,
        command: Sequence[str],
        *,
        stdin: bool = False,
        env: Mapping[str, str] | None = None,
        terminal: int | None = None,
    ) -> asyncio.subprocess.Process:
        """Run ``command`` next to a running container, with its env and working directory.

        The process has pipes for stdout and stderr, and for stdin if ``stdin`` is
        true (else ``/dev/null``). It runs in its own process group, and it is
        killed when the container exits. ``env`` adds to or overrides the
        container's environment. The caller awaits ``wait()`` or
        ``communicate()``. Raises :class:`ContainerNotRunningError` or
        :class:`ContainerStartError`.

        ``terminal`` (``kubectl exec -t``) is the follower fd of a pseudo-terminal:
        it becomes the process's stdin, stdout, stderr and controlling terminal
        (``stdin`` is then ignored). See :func:`_terminal_argv`.
        """
        if handle.exited is not None or handle._process_exited.is_set():
            raise ContainerNotRunningError(f"container {handle.name} is not running")
        if not command:
            raise ContainerStartError("exec: empty command")
        proc_env = handle.spec.process_env()
        proc_env.update(env or {})
        cwd = handle.spec.working_dir or self.default_working_dir
        if terminal is not None:
            argv = _terminal_argv(command, proc_env, cwd)
            process = await _spawn(argv, proc_env, cwd, terminal, terminal, stdin=terminal)
        else:
            process = await _spawn(
                list(command),
                proc_env,
                cwd,
                subprocess.PIPE,
                subprocess.PIPE,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            )
        handle._execs.add(process)
        self._watchers.start(_forget_exec(handle, process), "exec watch")
        return process

    async def remove_pod(self, pod_key: PodKeyLike) -> None:
        """Forget a deleted pod: kill its remaining containers and delete its log directory."""
        handles = self.running_containers(pod_key)
        await asyncio.gather(*(self.stop_container(h, 0) for h in handles))
        await self._cancel_pumps(t for h in handles for t in h._pumps)
        await asyncio.to_thread(shutil.rmtree, self.pod_log_dir(pod_key), ignore_errors=True)

    async def shutdown(self, grace_seconds: float = 2) -> None:
        """Stop every container this runtime started and refuse to start more."""
        self._closed = True
        handles = list(self._live.values())
        results = await asyncio.gather(
            *(self.stop_container(h, grace_seconds) for h in handles), return_exceptions=True
        )
        for h, result in zip(handles, results, strict=True):
            if isinstance(result, BaseException):
                log.error("stopping %r failed: %r", h, result)
        await self._cancel_pumps(list(self._pumps))
        await self._watchers.wait()

    def kill_all_now(self) -> None:
        """SIGKILL every container group and exec process at once, without awaiting anything.

        For last-resort paths where the event loop can no longer run (``atexit``,
        a second Ctrl-C). The processes are reaped by the loop's child watcher if
        it runs again, else by init once this process exits.
        """
        self._closed = True
        for handle in list(self._live.values()):
            if not handle._process_exited.is_set():
                _signal_group(handle.pid, signal.SIGKILL)
            for process in list(handle._execs):
                if process.returncode is None:
                    _signal_group(process.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ internals

    async def _open_output(self, path: Path) -> tuple[list[asyncio.Task[None]], int, int]:
        """Create the log file and two pipes feeding it; return the readers and the write ends.

        Done before the process exists, so a failure here has nothing to clean up
        but file descriptors.
        """
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            logfile = _LogFile(path, users=2)
        except OSError as exc:
            raise ContainerStartError(f"cannot create log file {path}: {exc.strerror}") from exc
        pumps: list[asyncio.Task[None]] = []
        write_ends: list[int] = []
        try:
            for stream in ("stdout", "stderr"):
                read_end, write_end = os.pipe()
                write_ends.append(write_end)
                try:
                    reader, transport = await _connect_pipe(read_end)
                except BaseException:
                    os.close(read_end)
                    raise
                pumps.append(self._pumps.start(_pump(reader, transport, CRILogEncoder(stream), logfile), stream))
        except BaseException:
            for fd in write_ends:
                os.close(fd)
            for _ in range(2 - len(pumps)):
                logfile.release()
            if pumps:
                await asyncio.wait(pumps)
            raise
        return pumps, write_ends[0], write_ends[1]

    async def _watch(self, handle: ContainerHandle) -> None:
        """Wait for the main process, clean up its group, then record the exit."""
        returncode = await handle._process.wait()
        finished_at = _utcnow()
        handle._process_exited.set()
        # As when PID 1 of a container exits: whatever is left of the container dies.
        # The leader has been reaped, but while any member of its group lives the
        # kernel does not hand its pid out again, so this reaches only that group.
        _signal_group(handle.pid, signal.SIGKILL)
        for process in list(handle._execs):
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)
        if handle._pumps:
            await asyncio.wait(handle._pumps, timeout=self.log_drain_timeout)
        info = ExitInfo.from_returncode(returncode, finished_at)
        handle._exit = info
        handle._done.set_result(info)
        self._live.pop(handle.container_id, None)
        log.debug("%r exited: %s", handle, info)

    async def _cancel_pumps(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        pending = [t for t in tasks if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

def _same_pod(a: PodKeyLike, b: PodKeyLike) -> bool:
    return (a.namespace, a.name, a.uid) == (b.namespace, b.name, b.uid)


async def _spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    stdout: int,
    stderr: int,
    *,
    stdin: int = subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """Start ``argv`` in a new session; OS errors become :class:`ContainerStartError`."""
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if exc.filename == cwd or not os.path.isdir(cwd):
            raise ContainerStartError(f"working directory {cwd!r}: no such directory") from exc
        raise ContainerStartError(f'exec: "{argv[0]}": executable file not found in $PATH') from exc
    except PermissionError as exc:
        raise ContainerStartError(f'exec: "{argv[0]}": permission denied') from exc
    except (OSError, ValueError) as exc:
        message = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        raise ContainerStartError(f'exec: "{argv[0]}": {message}') from exc


#: Makes stdin the controlling terminal, then becomes the command (same pid, new session).
_CONTROLLING_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"
)


def _terminal_argv(command: Sequence[str], env: Mapping[str, str], cwd: str) -> list[str]:
    """``command`` behind a tiny ``python -c`` that takes its terminal as controlling terminal.

    Only the child may call ``TIOCSCTTY``, after ``setsid``; ``preexec_fn`` would do
    it, but uvloop runs that before ``setsid``. Since the wrapper always starts,
    the command is looked up first, so a missing one fails as :func:`_spawn` would.
    """
    name = command[0]
    if "/" in name:
        path = os.path.join(cwd, name)
        found = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        found = shutil.which(name, path=env.get("PATH", DEFAULT_PATH)) is not None
    if not found:
        raise ContainerStartError(f'exec: "{name}": executable file not found in $PATH')
    return [sys.executable, "-I", "-S", "-c", _CONTROLLING_TERMINAL, *command]


async def _forget_exec(handle: ContainerHandle, process: asyncio.subprocess.Process) -> None:
    """Drop an exec'd process from its container's table once it has exited."""
    try:
        await process.wait()
    finally:
        handle._execs.discard(process)
