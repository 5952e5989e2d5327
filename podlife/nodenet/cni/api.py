"""The plugin's two API calls: GET the pod, PATCH its Port's status -- with the node's kubeconfig.

Design
------
``podlife-cni`` is a short-lived process run once per pod sandbox, so it must not pay
for an async client and its event loop, nor for ``http.client`` (its ``email``
imports cost more than both requests): this is HTTP/1.1 written on an ``ssl`` socket,
one kept-alive connection (the GET and the PATCH share the TLS handshake). Credentials come
from the kubeconfig the network configuration names -- the node's own
(``system:node:<name>``), so the Node authorizer and RBAC judge the plugin as they
judge the kubelet. Certificates embedded in the kubeconfig (``*-data``) are handed to
``ssl`` through a memfd, never written to disk; file references are used as they are.

Failures map to CNI error codes the runtime can act on: what may clear up (connection
refused, 404 of a pod or port not there yet, 409/429/5xx) is 11 "try again later",
the rest (401, 403, bad requests) is podlife's :data:`~.spec.API_FAILED`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .spec import API_FAILED, INVALID_CONFIG, TRY_AGAIN_LATER, CniError

TIMEOUT = 10.0
USER_AGENT = "podlife-cni/1.0"
PORTS_PATH = "/apis/network.podlife.io/v1/namespaces/{namespace}/ports/{name}"
TRANSIENT_STATUSES = frozenset({404, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: bytes | None = None
    ca_file: str = ""
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    cert_file: str = ""
    key_file: str = ""
    token: str = ""
    insecure: bool = False


def load_credentials(path: str) -> Credentials:
    """The current context of the kubeconfig at ``path`` (code 7 if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        cfg = _parse_kubeconfig(raw)
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"]) if ctx.get("user") else {}
    except (OSError, KeyError, StopIteration, TypeError, ValueError) as exc:
        raise CniError(INVALID_CONFIG, f"cannot read kubeconfig {path}", repr(exc)) from None
    base = os.path.dirname(path)

    def data(obj: dict[str, Any], key: str) -> bytes | None:
        value = obj.get(f"{key}-data")
        return base64.b64decode(value) if value else None

    def ref(obj: dict[str, Any], key: str) -> str:
        value = obj.get(key) or ""
        return os.path.join(base, value) if value else ""

    return Credentials(str(cluster["server"]).rstrip("/"), data(cluster, "certificate-authority"),
                       ref(cluster, "certificate-authority"), data(user, "client-certificate"), data(user, "client-key"),
                       ref(user, "client-certificate"), ref(user, "client-key"), str(user.get("token") or ""),
                       bool(cluster.get("insecure-skip-tls-verify")))


def _parse_kubeconfig(raw: bytes) -> Any:
    """JSON when it is JSON (no YAML parser to import), else YAML (the C loader when there is one)."""
    if raw.lstrip().startswith(b"{"):
        return json.loads(raw)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(raw, Loader=loader)  # noqa: S506 -- a safe loader


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def ssl_context(creds: Credentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # only the kubeconfig's CA (loading the system's costs 25 ms)
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_pem:
        ctx.load_verify_locations(cadata=creds.ca_pem.decode())
    elif creds.ca_file:
        ctx.load_verify_locations(cafile=creds.ca_file)
    else:
        ctx.load_default_certs()
    if creds.cert_pem and creds.key_pem:
        fds = [_memfd("cert", creds.cert_pem), _memfd("key", creds.key_pem)]
        try:
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
    elif creds.cert_file and creds.key_file:
        ctx.load_cert_chain(creds.cert_file, creds.key_file)
    return ctx


class ApiSession:
    """One kept-alive connection to the API server (HTTP/1.1 written here: ``http.client`` costs 30 ms to import)."""

    def __init__(self, creds: Credentials) -> None:
        url = urlsplit(creds.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise CniError(INVALID_CONFIG, "invalid kubeconfig", f"server {creds.server!r} is not an http(s) URL")
        self.tls = ssl_context(creds) if url.scheme == "https" else None
        self.host = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.headers = {"Host": f"{host}:{self.port}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if creds.token:
            self.headers["Authorization"] = f"Bearer {creds.token}"
        self.sock: socket.socket | None = None
        self.reader: Any = None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        try:
            self.sock = self.tls.wrap_socket(raw, server_hostname=self.host) if self.tls else raw
        except BaseException:
            raw.close()
            raise
        self.reader = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                content_type: str = "application/json") -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        headers = dict(self.headers, **({"Content-Type": content_type} if body is not None else {}))
        headers["Content-Length"] = str(len(data))
        head = f"{method} {self.prefix + path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more on a new one
            reused = self.sock is not None
            try:
                if self.sock is None:
                    self._connect()
                assert self.sock is not None
                self.sock.sendall(head.encode() + data)
                status, raw = self._response()
                break
            except (OSError, ValueError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise CniError(TRY_AGAIN_LATER, "cannot reach the API server", f"{method} {path}: {exc!r}") from None
        if status >= 400:
            raise _status_error(method, path, status, raw)
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            raise CniError(API_FAILED, "the API server's answer is not JSON", f"{method} {path}") from None
        return doc if isinstance(doc, dict) else {}

    def _response(self) -> tuple[int, bytes]:
        """Status and body of the next response (Content-Length, chunked, or until close)."""
        line = self.reader.readline(65537)
        if not line:
            raise ConnectionResetError("connection closed before a response")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {line[:80]!r}")
        status = int(parts[1])
        fields: dict[str, str] = {}
        while True:
            header = self.reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            key, _, value = header.decode("latin-1").partition(":")
            fields[key.strip().lower()] = value.strip()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in fields:
            body = self._exactly(int(fields["content-length"]))
        else:
            body = self.reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def _exactly(self, n: int) -> bytes:
        body = self.reader.read(n)
        if len(body) != n:
            raise ConnectionResetError("connection closed in the middle of a response")
        return bytes(body)

    def _chunked(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            size = int(self.reader.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(pieces)
            pieces.append(self._exactly(size))
            self.reader.readline(3)

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}")

    def patch_port_phase(self, namespace: str, name: str, phase: str) -> dict[str, Any]:
        """Merge-patch ``status.phase`` of Port ``namespace/name`` through its status subresource."""
        path = PORTS_PATH.format(namespace=quote(namespace), name=quote(name)) + "/status"
        return self.request("PATCH", path, {"status": {"phase": phase}}, "application/merge-patch+json")


def _status_error(method: str, path: str, status: int, raw: bytes) -> CniError:
    message = raw[:500].decode(errors="replace")
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict) and doc.get("message"):
            message = str(doc["message"])
    except ValueError:
        pass
    code = TRY_AGAIN_LATER if status in TRANSIENT_STATUSES else API_FAILED
    return CniError(code, f"API request failed with {status}", f"{method} {path}: {message}")


__all__ = ["ApiSession", "Credentials", "load_credentials", "ssl_context"]
