"""Tests for the channel WebSocket protocol and the kubelet's exec, attach and port-forward endpoints.

The first half checks the pure parts of :mod:`podlife.kubelet.streams` (framing,
subprotocol negotiation, statuses, options). The second half starts a real
:class:`~podlife.kubelet.runtime.ProcessRuntime` container and a
:class:`~podlife.kubelet.server.KubeletServer` on loopback and talks to it with
an aiohttp WebSocket client, as the API server does. Nothing sleeps for a fixed
time: tests wait for messages, for processes, or poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict, MultiDict

from podlife.machinery.errors import ApiError
from podlife.api.streaming import pick_container
from podlife.kubelet import streams
from podlife.kubelet.runtime import ContainerHandle, ContainerSpec, PodKey, ProcessRuntime
from podlife.kubelet.server import KubeletServer, LogTarget
from podlife.machinery.upgrade import offered_protocols
from podlife.kubelet.streams import (
    ChannelProtocol,
    RequestRefused,
    encode_status,
    exit_code_status,
    negotiate,
    parse_resize,
    port_list,
    port_prefix,
    stream_options,
)

from .cluster_harness import async_wait_for

TOKEN = "kubelet-test-token"
POD = PodKey("default", "box", "uid-1234")
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


# --------------------------------------------------------------------------- framing


def test_binary_framing_puts_the_channel_first() -> None:
    proto = ChannelProtocol(V4, version=4)
    assert proto.encode(1, b"hi") == b"\x01hi"
    assert proto.decode(b"\x00input") == (0, b"input")
    assert proto.decode(b"\xff\x00") == (255, b"\x00")
    assert proto.decode(b"\x02") == (2, b"")


def test_base64_framing_uses_a_digit_and_base64() -> None:
    proto = ChannelProtocol("v4.base64.channel.k8s.io", base64=True, version=4)
    assert proto.encode(1, b"foo\n") == "1Zm9vCg=="
    assert proto.decode("0Zm9vCg==") == (0, b"foo\n")
    assert proto.decode("0not base64!") is None


@pytest.mark.parametrize(("base64", "message"), [(False, b""), (False, ""), (True, ""), (True, b"1Zm9v")])
def test_undecodable_messages_are_none(base64: bool, message: bytes | str) -> None:
    assert ChannelProtocol("p", base64=base64).decode(message) is None


def test_a_text_message_in_a_binary_protocol_is_read_as_its_bytes() -> None:
    """The official Python client sends ``write_stdin("...")`` as a text message; Kubernetes reads its bytes."""
    assert ChannelProtocol(V5, version=5).decode("\x00echo one\n") == (0, b"echo one\n")


def test_port_prefix_is_little_endian() -> None:
    assert port_prefix(8080) == b"\x90\x1f"
    assert port_prefix(1) == b"\x01\x00"


# --------------------------------------------------------------------------- negotiation


def test_offered_protocols_keep_the_client_order() -> None:
    headers = CIMultiDict([("Sec-WebSocket-Protocol", f"{V5}, {V4}"), ("Sec-WebSocket-Protocol", "channel.k8s.io")])
    assert offered_protocols(headers) == [V5, V4, "channel.k8s.io"]


@pytest.mark.parametrize(("offered", "chosen"), [
    ([V5], V5),  # kubectl 1.32
    ([V4], V4),  # kr8s
    ([V5, V4], V5),  # kubernetes-python, lightkube
    (["SPDY/3.1+portforward.k8s.io", V4], V4),
    ([], ""),
])
def test_negotiate_picks_the_first_supported_offer(offered: list[str], chosen: str) -> None:
    assert negotiate(offered, streams.EXEC_PROTOCOLS).name == chosen


def test_negotiate_refuses_unknown_protocols() -> None:
    with pytest.raises(RequestRefused) as err:
        negotiate(["v9.channel.k8s.io"], streams.EXEC_PROTOCOLS)
    assert err.value.code == 400 and "not supported" in err.value.message


def test_port_forward_has_no_v5() -> None:
    assert negotiate([V5, V4], streams.PORT_FORWARD_PROTOCOLS).name == V4


# --------------------------------------------------------------------------- statuses


def test_exit_code_status_is_what_kubectl_expects() -> None:
    assert exit_code_status(["sh", "-c", "exit 3"], 3) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }


def test_status_encoding_by_protocol_version() -> None:
    v4, v1 = ChannelProtocol(V4, version=4), ChannelProtocol("channel.k8s.io")
    assert orjson.loads(encode_status(v4, streams.success_status()) or b"") == {"metadata": {}, "status": "Success"}
    assert encode_status(v1, streams.success_status()) is None
    assert encode_status(v1, exit_code_status(["false"], 1)) == (
        b"command terminated with non-zero exit code: error executing command [false], exit code 1")


# --------------------------------------------------------------------------- options


def test_stream_options_from_query() -> None:
    opts = stream_options(MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo a b"),
                                     ("stdin", "true"), ("stdout", "1"), ("stderr", "True")]), needs_command=True)
    assert opts.command == ("sh", "-c", "echo a b") and opts.stdin and opts.stdout and opts.stderr and not opts.tty


def test_a_terminal_has_no_stderr_channel() -> None:
    opts = stream_options(MultiDict(command="sh", stdout="true", stderr="true", tty="true"), needs_command=True)
    assert opts.tty and not opts.stderr and opts.first_output == streams.STDOUT


@pytest.mark.parametrize(("query", "message"), [
    ({"command": "ls"}, "at least 1 of stdin, stdout, stderr"),
    ({"stdout": "true"}, "at least one command"),
    ({"command": "ls", "stdout": "maybe"}, 'invalid value for stdout: "maybe"'),
])
def test_stream_options_refusals(query: dict[str, str], message: str) -> None:
    with pytest.raises(RequestRefused) as err:
        stream_options(MultiDict(query), needs_command=True)
    assert message in err.value.message


def test_port_list() -> None:
    assert port_list(MultiDict([("ports", "8080,9090"), ("ports", "1")])) == [8080, 9090, 1]
    for bad in ({}, {"ports": "0"}, {"ports": "70000"}, {"ports": "http"}):
        with pytest.raises(RequestRefused):
            port_list(MultiDict(bad))


def test_parse_resize() -> None:
    assert parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    assert parse_resize(b"{}") is None
    assert parse_resize(b"not json") is None
    assert parse_resize(b'{"Width":-1,"Height":4}') is None


# --------------------------------------------------------------------------- the API server's checks


def _pod(*names: str, init: tuple[str, ...] = ()) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": n} for n in names],
                                                "initContainers": [{"name": n} for n in init]}}


def test_pick_container_defaults_to_the_only_one() -> None:
    assert pick_container(_pod("a"), None) == "a"
    assert pick_container(_pod("a", "b", init=("i",)), "i") == "i"


@pytest.mark.parametrize(("pod", "requested", "message"), [
    (_pod("a"), "z", "container z is not valid for pod p"),
    (_pod("a", "b", init=("i",)), None,
     "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"),
])
def test_pick_container_refusals(pod: dict, requested: str | None, message: str) -> None:
    with pytest.raises(ApiError) as err:
        pick_container(pod, requested)
    assert err.value.code == 400 and err.value.message == message


# --------------------------------------------------------------------------- a real kubelet endpoint


@dataclass
class FakeHost:
    """The kubelet's part of stream lookups: one pod, its running containers."""

    runtime: ProcessRuntime
    containers: dict[str, ContainerHandle] = field(default_factory=dict)

    def pod_uid(self, namespace: str, pod: str) -> str:
        if (namespace, pod) != (POD.namespace, POD.name):
            raise RequestRefused.not_found(f'pods "{pod}" not found')
        return POD.uid

    def pod_network_namespace(self, namespace: str, pod: str) -> str | None:
        """The process runtime's pods share the host's network: port-forward dials the host's loopback."""
        self.pod_uid(namespace, pod)
        return None

    def running_container(self, namespace: str, pod: str, container: str) -> ContainerHandle:
        self.pod_uid(namespace, pod)
        handle = self.containers.get(container)
        if handle is None or not handle.running:
            raise RequestRefused.bad_request(f'container not found ("{container}")')
        return handle


def _no_logs(namespace: str, pod: str, container: str, previous: bool) -> LogTarget:
    raise RequestRefused.not_found("no logs here")


@dataclass
class Kubelet:
    host: FakeHost
    url: str
    session: aiohttp.ClientSession

    async def start(self, name: str, script: str) -> ContainerHandle:
        handle = await self.host.runtime.start_container(POD, ContainerSpec(name, ["/bin/sh", "-c", script]), 0)
        self.host.containers[name] = handle
        return handle

    def connect(self, path: str, query: list[tuple[str, str]], protocols: tuple[str, ...] = (V5,)):  # noqa: ANN201
        return self.session.ws_connect(f"{self.url}{path}", params=query, protocols=protocols,
                                       headers={"Authorization": f"Bearer {TOKEN}"})


@contextlib.asynccontextmanager
async def running_kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    """A real kubelet server with one running container ``main`` of pod ``default/box``."""
    runtime = ProcessRuntime(tmp_path)
    host = FakeHost(runtime)
    server = KubeletServer(_no_logs, token=TOKEN, streams=host)
    await server.start()
    session = aiohttp.ClientSession()
    try:
        k = Kubelet(host, server.url, session)
        await k.start("main", "exec sleep 600")
        yield k
    finally:
        await session.close()
        await server.stop()
        await runtime.shutdown(grace_seconds=0)


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    async with running_kubelet(tmp_path) as k:
        yield k


@dataclass
class Transcript:
    """Everything a stream sent, by channel, and the decoded status."""

    channels: dict[int, bytes]
    first: int | None
    protocol: str | None

    @property
    def status(self) -> dict:
        return orjson.loads(self.channels[streams.ERROR])


async def transcript(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> Transcript:
    channels: dict[int, bytes] = {}
    first = None
    async with asyncio.timeout(timeout):
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.BINARY
            channel, data = message.data[0], message.data[1:]
            first = channel if first is None else first
            channels[channel] = channels.get(channel, b"") + data
    return Transcript(channels, first, ws.protocol)


def command(*argv: str, **flags: str) -> list[tuple[str, str]]:
    return [("command", a) for a in argv] + list(flags.items())


async def test_exec_output_and_success(kubelet: Kubelet) -> None:
    async with kubelet.connect("/exec/default/box/main", command("echo", "hi", stdout="true", stderr="true")) as ws:
        got = await transcript(ws)
    assert got.protocol == V5 and got.first == streams.STDOUT
    assert got.channels[1] == b"hi\n" and got.status == {"metadata": {}, "status": "Success"}


async def test_exec_stderr_and_exit_code(kubelet: Kubelet) -> None:
    script = "echo out; echo err >&2; exit 3"
    async with kubelet.connect("/exec/default/box/main", command("sh", "-c", script, stdout="1", stderr="1"),
                               protocols=(V4,)) as ws:
        got = await transcript(ws)
    assert got.protocol == V4
    assert got.channels[1] == b"out\n" and got.channels[2] == b"err\n"
    assert got.status == exit_code_status(["sh", "-c", script], 3)


async def test_exec_runs_with_the_container_environment(kubelet: Kubelet, tmp_path: Path) -> None:
    spec = ContainerSpec("envy", ["/bin/sh", "-c", "exec sleep 600"], env={"GREETING": "hello"}, working_dir=str(tmp_path))
    kubelet.host.containers["envy"] = await kubelet.host.runtime.start_container(POD, spec, 0)
    async with kubelet.connect("/exec/default/box/envy", command("sh", "-c", 'echo "$GREETING $PWD"', stdout="1")) as ws:
        got = await transcript(ws)
    assert got.channels[1] == f"hello {tmp_path}\n".encode()


async def test_exec_stdin_until_v5_close(kubelet: Kubelet) -> None:
    async with kubelet.connect("/exec/default/box/main", command("cat", stdin="1", stdout="1", stderr="1")) as ws:
        await ws.send_bytes(b"\x00line one\n")
        await ws.send_bytes(b"\x00line two\n")
        await ws.send_bytes(b"\xff\x00")  # v5: the client has finished writing stdin
        got = await transcript(ws)
    assert got.channels[1] == b"line one\nline two\n" and got.status["status"] == "Success"


async def test_exec_without_stdout_still_finishes(kubelet: Kubelet) -> None:
    async with kubelet.connect("/exec/default/box/main", command("sh", "-c", "seq 1 100000; echo e >&2", stderr="1")) as ws:
        got = await transcript(ws)
    assert got.first == streams.STDERR_CHANNEL and 1 not in got.channels and got.channels[2] == b"e\n"


async def test_exec_large_output_arrives_whole(kubelet: Kubelet) -> None:
    async with kubelet.connect("/exec/default/box/main", command("seq", "1", "200000", stdout="1")) as ws:
        got = await transcript(ws)
    assert got.channels[1] == b"".join(b"%d\n" % i for i in range(1, 200001))


async def test_exec_with_a_terminal(kubelet: Kubelet) -> None:
    query = command("sh", "-c", "tty; stty size; echo $TERM", stdin="1", stdout="1", tty="1")
    async with kubelet.connect("/exec/default/box/main", query) as ws:
        got = await transcript(ws)
    lines = got.channels[1].decode().split("\r\n")
    assert lines[0].startswith("/dev/pts/") and lines[1] == "24 80" and lines[2] == "xterm"
    assert 2 not in got.channels and got.status["status"] == "Success"


async def test_terminal_resize_and_interactive_input(kubelet: Kubelet) -> None:
    query = command("sh", stdin="1", stdout="1", tty="1")
    async with kubelet.connect("/exec/default/box/main", query) as ws:
        await ws.send_bytes(b"\x04" + orjson.dumps({"Width": 101, "Height": 33}))
        await ws.send_bytes(b"\x00stty size; exit 7\n")
        got = await transcript(ws)
    assert b"33 101" in got.channels[1]
    assert got.status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


async def test_exec_of_a_missing_command_is_an_internal_error(kubelet: Kubelet) -> None:
    for tty in ("0", "1"):
        async with kubelet.connect("/exec/default/box/main", command("no-such-command", stdout="1", tty=tty)) as ws:
            got = await transcript(ws)
        assert got.status["reason"] == "InternalError"
        assert 'exec: "no-such-command": executable file not found in $PATH' in got.status["message"]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead; it may be reaped while we look)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_a_client_leaving_kills_the_command(kubelet: Kubelet) -> None:
    async with kubelet.connect("/exec/default/box/main", command("sh", "-c", "echo $$; exec sleep 600", stdout="1")) as ws:
        message = await ws.receive(timeout=10)
        while message.data == b"\x01":  # the empty "stream established" message
            message = await ws.receive(timeout=10)
        pid = int(message.data[1:])
        assert _alive(pid)
    await async_wait_for(lambda: not _alive(pid), 10, what=f"process {pid} to end")


async def _refusal(kubelet: Kubelet, path: str, query: list[tuple[str, str]],
                   protocols: tuple[str, ...] = (V5,)) -> tuple[int, dict]:
    """The refused upgrade's status code, and the Status a plain request with the same offer gets."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with kubelet.connect(path, query, protocols):
            pass
    headers = {"Authorization": f"Bearer {TOKEN}", "Sec-WebSocket-Protocol": ", ".join(protocols)}
    async with kubelet.session.get(f"{kubelet.url}{path}", params=query, headers=headers) as plain:
        assert plain.status == err.value.status
        return plain.status, await plain.json()


async def test_refusals_are_statuses_before_any_upgrade(kubelet: Kubelet) -> None:
    echo = command("echo", stdout="1")
    code, body = await _refusal(kubelet, "/exec/default/nope/main", echo)
    assert code == 404 and body["message"] == 'pods "nope" not found'
    code, body = await _refusal(kubelet, "/exec/default/box/other", echo)
    assert code == 400 and body["message"] == 'container not found ("other")'
    code, body = await _refusal(kubelet, "/exec/default/box/main", [("command", "ls")])
    assert code == 400 and "at least 1 of stdin" in body["message"]
    code, body = await _refusal(kubelet, "/exec/default/box/main", echo, protocols=("v9.channel.k8s.io",))
    assert code == 400 and "not supported" in body["message"]


async def test_a_plain_request_needs_an_upgrade(kubelet: Kubelet) -> None:
    async with kubelet.session.post(f"{kubelet.url}/exec/default/box/main", params=command("ls", stdout="1"),
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 400 and (await resp.json())["message"] == "Upgrade request required"


async def test_streams_need_the_token(kubelet: Kubelet) -> None:
    async with kubelet.session.get(f"{kubelet.url}/exec/default/box/main", params=command("ls", stdout="1")) as resp:
        assert resp.status == 401


async def test_a_finished_container_cannot_be_exec_ed(kubelet: Kubelet) -> None:
    handle = await kubelet.start("short", "exit 0")
    await handle.wait()
    code, body = await _refusal(kubelet, "/exec/default/box/short", command("ls", stdout="1"))
    assert code == 400 and body["message"] == 'container not found ("short")'


async def test_attach_streams_output_until_the_container_exits(kubelet: Kubelet, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    script = f"while [ ! -e {gate} ]; do sleep 0.01; done; echo one; echo two >&2; printf three"
    await kubelet.start("talker", script)
    async with kubelet.connect("/attach/default/box/talker", [("stdout", "1"), ("stderr", "1")]) as ws:
        first = await ws.receive(timeout=10)
        assert first.data == b"\x01"  # stream established
        gate.touch()
        got = await transcript(ws)
    assert got.channels[1] == b"one\nthree" and got.channels[2] == b"two\n"
    assert got.status == {"metadata": {}, "status": "Success"}


async def test_attach_ends_quietly_when_the_client_leaves(kubelet: Kubelet) -> None:
    async with kubelet.connect("/attach/default/box/main", [("stdout", "1")]) as ws:
        assert (await ws.receive(timeout=10)).data == b"\x01"
    assert kubelet.host.containers["main"].running


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
            if b"bye" in data:
                break
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_port_forward_to_loopback(kubelet: Kubelet) -> None:
    server, port = await _echo_server()
    async with server:
        async with kubelet.connect("/portForward/default/box", [("ports", str(port))], protocols=(V4,)) as ws:
            assert ws.protocol == V4
            prefixes = [await ws.receive(timeout=10) for _ in range(2)]
            assert [m.data for m in prefixes] == [b"\x00" + port_prefix(port), b"\x01" + port_prefix(port)]
            await ws.send_bytes(b"\x00hello ")
            await ws.send_bytes(b"\x00bye")
            got = await transcript(ws)
    assert got.channels[0] == b"HELLO BYE" and 1 not in got.channels


async def test_port_forward_reports_a_refused_connection(kubelet: Kubelet) -> None:
    server, port = await _echo_server()
    server.close()
    await server.wait_closed()
    async with kubelet.connect("/portForward/default/box", [("ports", str(port))], protocols=(V4,)) as ws:
        got = await transcript(ws)
    assert got.channels[0] == port_prefix(port)
    error = got.channels[1][2:].decode()
    assert error.startswith(f"error forwarding port {port} to pod box, uid {POD.uid}: failed to connect to 127.0.0.1:{port}")


async def test_port_forward_needs_ports(kubelet: Kubelet) -> None:
    code, body = await _refusal(kubelet, "/portForward/default/box", [], protocols=(V4,))
    assert code == 400 and body["message"] == 'query parameter "ports" is required'
