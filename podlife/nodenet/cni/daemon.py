"""The node's CNI daemon: ``podlife-cni``'s work done in a long-lived process (Kuryr's ``kuryr-daemon``).

What it watches
---------------
The pods bound to its node (an :class:`~podlife.client.informer.Informer` with
``fieldSelector=spec.nodeName=<node>``, as the kubelet's), so an ADD finds the pod and its
``network.podlife.io/port`` annotation in memory, fed by the API watch. A pod that is not in
the cache, or is there without the annotation, is read once more with a GET (the cache may
trail the write the kubelet saw); still no annotation is the plugin's code 11, as ever.

What it serves
--------------
A unix socket (mode 0600, :func:`socket_path_for`: ``<node dir>/cni.sock``) that the
``podlife-cni`` shim forwards to (:func:`podlife.nodenet.cni.main.forward`). One request per
connection: the shim writes ``{"env": {CNI_*...}, "config": {...}}`` and half-closes; the
daemon answers ``{"code": <exit status>, "stdout": "<what the plugin prints>"}`` and closes.

What it writes
--------------
What the plugin writes: the veth pair, addresses and routes (:mod:`.plumbing`, run in a
worker thread of its own pool -- plumbing is synchronous and enters namespaces with
``setns(2)``, which moves only the calling thread; ``ip`` children inherit that thread's
namespace), and the Port's ``status.phase: ACTIVE`` through the daemon's client (the node's
identity, in the API server's process: no TLS handshake, no HTTP).

Why
---
Under load a standalone ADD spent most of its time outside plumbing: starting an interpreter
and importing, a TLS connection for the GET, another request for the PATCH. The daemon pays
those once. The operations themselves are :func:`podlife.nodenet.cni.main.handle` -- the
same ADD/DEL/CHECK the standalone plugin runs, given this daemon's :class:`InformerPodApi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...client.base import PODS, PORTS, Client
from ...client.informer import Informer
from ...machinery.constants import PORT_ANNOTATION
from ...machinery.errors import ApiError
from ...machinery.netns import setns
from . import main, spec
from .spec import CniError

if TYPE_CHECKING:
    from collections.abc import Coroutine

log = logging.getLogger(__name__)

__all__ = ["CNIDaemon", "InformerPodApi", "api_error", "parse_request", "socket_path_for"]

SOCKET_NAME = "cni.sock"
#: sun_path holds 108 bytes with the terminating NUL
MAX_SOCKET_PATH = 107
SHORT_SOCKET_DIR = Path("/run/podlife-cni")
MAX_REQUEST = 1 << 20
#: how long one API call of an operation may take before the runtime is told to try again
API_TIMEOUT = 10.0
#: Statuses that may clear up by themselves (as :mod:`.api` maps them)
TRANSIENT_STATUSES = frozenset({404, 409, 429, 500, 502, 503, 504})


def socket_path_for(node_dir: Path) -> Path:
    """``<node_dir>/cni.sock``, or a short path under /run named by its hash when that is too long for a unix socket."""
    path = node_dir / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(node_dir.resolve())).hexdigest()[:20]
    return SHORT_SOCKET_DIR / f"{digest}.sock"


def parse_request(data: bytes, node_name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The request's (CNI environment, network configuration); :class:`CniError` when it is not one (pure)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CniError(spec.DECODING_FAILURE, "the CNI daemon's request is not JSON", str(exc)) from None
    env, config = (doc.get("env"), doc.get("config")) if isinstance(doc, dict) else (None, None)
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise CniError(spec.DECODING_FAILURE, "the CNI daemon's request has no env object of strings")
    if not isinstance(config, dict):
        raise CniError(spec.DECODING_FAILURE, "network configuration is not a JSON object")
    asked = config.get("nodeName")
    if asked and asked != node_name:
        raise CniError(spec.INVALID_CONFIG, "invalid network configuration",
                       f"nodeName {asked!r} is not this daemon's node {node_name!r}")
    return env, config


def api_error(exc: ApiError, what: str) -> CniError:
    """The CNI error for a failed API call: 11 for what may clear up, :data:`~.spec.API_FAILED` for the rest."""
    code = spec.TRY_AGAIN_LATER if exc.code in TRANSIENT_STATUSES else spec.API_FAILED
    return CniError(code, f"API request failed with {exc.code}", f"{what}: {exc}")


class InformerPodApi:
    """The operations' :class:`~podlife.nodenet.cni.main.PodApi` in the daemon: called from worker threads.

    Pods come from the informer's cache (a GET when the cache has no annotated copy); the
    Port status goes through the daemon's client. Calls into the client are run on the
    daemon's event loop and waited for by the calling thread.
    """

    def __init__(self, client: Client, informer: Informer, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.informer = informer
        self.loop = loop

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self.informer.get(namespace, name)
        if pod is not None and PORT_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            return pod
        return self._call(self.client.get(PODS, name, namespace), f"GET pod {namespace}/{name}")

    def patch_port_phase(self, namespace: str, name: str, phase: str) -> object:
        patch = {"status": {"phase": phase}}
        return self._call(self.client.patch(PORTS, name, patch, namespace, patch_type="merge", subresource="status"),
                          f"PATCH port {namespace}/{name}/status")

    def close(self) -> None:
        """Nothing to close: the client is the daemon's."""

    def _call(self, coro: Coroutine[Any, Any, dict[str, Any]], what: str) -> dict[str, Any]:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(API_TIMEOUT)
        except ApiError as exc:
            raise api_error(exc, what) from None
        except TimeoutError:
            future.cancel()
            raise CniError(spec.TRY_AGAIN_LATER, "the API did not answer in time", what) from None
        except (OSError, ConnectionError) as exc:
            raise CniError(spec.TRY_AGAIN_LATER, "cannot reach the API server", f"{what}: {exc!r}") from None


class CNIDaemon:
    """Serves ``podlife-cni`` requests for node ``node_name`` on ``socket_path`` (see the module docstring)."""

    def __init__(self, client: Client, node_name: str, socket_path: Path, *, workers: int = 8,
                 sync_timeout: float = 10.0) -> None:
        self.client = client
        self.node_name = node_name
        self.socket_path = socket_path
        self.sync_timeout = sync_timeout
        self.informer = Informer(client, PODS, field_selector=f"spec.nodeName={node_name}")
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._api: InformerPodApi | None = None
        self._informer_task: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._home_fd = -1
        self._home_inode = 0

    async def start(self) -> None:
        """Start the informer (waiting a while for its first list) and listen on the socket."""
        loop = asyncio.get_running_loop()
        self._home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._home_inode = os.fstat(self._home_fd).st_ino
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=f"cni-{self.node_name}")
        self._api = InformerPodApi(self.client, self.informer, loop)
        self._informer_task = asyncio.create_task(self.informer.run(), name=f"cni-daemon {self.node_name} pods")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.informer.wait_synced(), self.sync_timeout)
        self._server = await asyncio.start_unix_server(self._accept, sock=_listening_socket(self.socket_path))
        log.info("CNI daemon of node %s listening on %s", self.node_name, self.socket_path)

    async def run(self) -> None:
        """:meth:`start`, then serve until cancelled, then :meth:`stop`."""
        await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.stop()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let requests in flight finish (``grace`` seconds), stop the informer, remove the socket."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._requests:
            await asyncio.wait(set(self._requests), timeout=grace)
        for task in list(self._requests):
            task.cancel()
        if self._informer_task is not None:
            self._informer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._informer_task
            self._informer_task = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._home_fd >= 0:
            os.close(self._home_fd)
            self._home_fd = -1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._requests.add(task)
        try:
            data = await reader.read(MAX_REQUEST + 1)
            while data and len(data) <= MAX_REQUEST and not reader.at_eof():
                more = await reader.read(MAX_REQUEST + 1 - len(data))
                if not more:
                    break
                data += more
            code, out = await self.answer(data)
            writer.write(json.dumps({"code": code, "stdout": out}).encode())
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("CNI daemon %s: the shim went away: %s", self.node_name, exc)
        finally:
            if task is not None:
                self._requests.discard(task)
            writer.close()

    async def answer(self, data: bytes) -> tuple[int, str]:
        """The (exit status, stdout) of one request, as the standalone plugin would give them."""
        try:
            env, config = parse_request(data, self.node_name)
        except CniError as exc:
            return 1, spec.dumps(exc.document())
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._in_worker, env, config)

    def _in_worker(self, env: dict[str, str], config: dict[str, Any]) -> tuple[int, str]:
        """One operation in a pool thread; the thread is put back in the daemon's namespace if it was left elsewhere."""
        try:
            return main.handle(env, config, self._connect)
        finally:
            if os.stat("/proc/thread-self/ns/net").st_ino != self._home_inode:
                setns(self._home_fd)
                log.warning("CNI daemon %s: a worker thread was left in another network namespace; moved back",
                            self.node_name)

    def _connect(self, conf: spec.NetConf) -> InformerPodApi:
        del conf  # the daemon's own client and cache, whatever the kubeconfig says
        assert self._api is not None
        return self._api


def _listening_socket(path: Path) -> socket.socket:
    """A unix socket bound at ``path`` (a stale one replaced), mode 0600 before it listens."""
    path.parent.mkdir(parents=True, exist_ok=True)  # the node directory: its mode is the kubelet's business
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
