"""A real image registry on loopback for tests, and images the tests build themselves.

* :class:`RegistryProcess` runs Debian's ``docker-registry`` (distribution 2.8)
  on ``127.0.0.1:<free port>`` with its storage in the test's directory: open, with
  htpasswd (Basic) auth, or with token auth against a :class:`TokenServer`. It is
  stopped by its pid (SIGTERM, then SIGKILL), even when the test failed.
* :class:`TokenServer` is a small aiohttp token service in a thread of its own: it
  checks Basic credentials and issues RS256 JWTs with an ``x5c`` header whose
  self-signed certificate is the registry's ``rootcertbundle``, which is what the
  registry's token access controller verifies.
* :func:`make_layer`, :func:`build_image` and :func:`busybox_rootfs_entries` build
  layers (tar, gzip) and OCI manifests and configs in memory; :meth:`RegistryProcess.push`
  uploads them with plain HTTP (``POST`` + ``PUT`` blob uploads, ``PUT`` manifest)
  and :func:`write_oci_layout` writes them as an OCI image layout directory.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster_harness import missing

REGISTRY_BINARY = "/usr/bin/docker-registry"
BUSYBOX = Path("/usr/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SERVICE = "podlife-test-registry"
ISSUER = "podlife-test-issuer"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_registry() -> str:
    if not Path(REGISTRY_BINARY).exists():
        missing("docker-registry is not installed (Debian package docker-registry)")
    if not BUSYBOX.exists():
        missing("busybox is not installed (Debian package busybox-static)")
    return REGISTRY_BINARY


# ---------------------------------------------------------------- building images


@dataclass(frozen=True)
class Entry:
    """One tar entry of a layer: a file (``data``), a directory, a symlink or a hard link."""

    name: str
    data: bytes | None = None
    mode: int = 0o644
    kind: str = "file"  # file | dir | symlink | hardlink
    target: str = ""
    uid: int = 0
    gid: int = 0


def file(name: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(name, data.encode() if isinstance(data, str) else data, mode)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, mode=mode, kind="dir")


def symlink(name: str, target: str) -> Entry:
    return Entry(name, mode=0o777, kind="symlink", target=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, kind="hardlink", target=target)


@dataclass(frozen=True)
class Layer:
    blob: bytes
    diff_id: str
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.blob)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


def make_layer(entries: Iterable[Entry], *, compress: bool = True) -> Layer:
    """A layer from entries, in order (a gzip'd tar unless ``compress`` is false)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.mtime = 1_700_000_000
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry.target
                tar.addfile(info)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    if not compress:
        return Layer(tar_bytes, sha256(tar_bytes), OCI_LAYER_TAR)
    return Layer(gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes), OCI_LAYER_GZIP)


def busybox_rootfs_entries(applets: Sequence[str] = ("sh", "echo", "cat", "ls", "id", "test")) -> list[Entry]:
    """A minimal root: ``/bin/busybox`` (the host's busybox-static) with applet links, ``/etc`` files."""
    entries = [
        directory("bin"),
        file("bin/busybox", BUSYBOX.read_bytes(), 0o755),
        *[symlink(f"bin/{name}", "busybox") for name in applets],
        directory("etc"),
        file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                           "app:x:1000:1000:app:/app:/bin/sh\n"),
        file("etc/group", "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n"),
        directory("tmp", 0o1777),
        directory("root", 0o700),
    ]
    return entries


@dataclass
class BuiltImage:
    """An image made in memory: config, manifest and layers, with their digests."""

    config: bytes
    manifest: bytes
    layers: list[Layer]
    platform: dict[str, str] = field(default_factory=lambda: {"os": "linux", "architecture": "amd64"})
    media_type: str = OCI_MANIFEST

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    def manifest_descriptor(self, **annotations: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.manifest_digest, "size": len(self.manifest),
                               "platform": dict(self.platform)}
        if annotations:
            doc["annotations"] = annotations
        return doc

    def blobs(self) -> dict[str, bytes]:
        found = {self.config_digest: self.config, self.manifest_digest: self.manifest}
        found.update({layer.digest: layer.blob for layer in self.layers})
        return found


def build_image(layers: Sequence[Layer], *, architecture: str = "amd64", variant: str | None = None,
                docker: bool = False, **process: Any) -> BuiltImage:
    """An OCI image of ``layers`` whose config's ``config`` is ``process`` (Entrypoint, Cmd, Env, ...).

    ``docker``: Docker's schema 2 media types instead of OCI's.
    """
    config: dict[str, Any] = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": "linux",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    platform = {"os": "linux", "architecture": architecture}
    if variant:
        config["variant"] = variant
        platform["variant"] = variant
    config_bytes = json.dumps(config).encode()
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    layer_descriptors = [layer.descriptor() for layer in layers]
    if docker:
        layer_descriptors = [{**d, "mediaType": DOCKER_LAYER} for d in layer_descriptors]
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": sha256(config_bytes),
                   "size": len(config_bytes)},
        "layers": layer_descriptors,
    }
    return BuiltImage(config_bytes, json.dumps(manifest).encode(), list(layers), platform, media_type)


def build_index(images: Sequence[BuiltImage], *, extra: Sequence[dict[str, Any]] = (), docker: bool = False) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST if docker else OCI_INDEX,
                       "manifests": [*extra, *(image.manifest_descriptor() for image in images)]}).encode()


def write_oci_layout(directory: Path, images: Sequence[tuple[str | None, BuiltImage]]) -> Path:
    """An OCI image layout with ``images``; a name goes into ``org.opencontainers.image.ref.name``."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    manifests = []
    for name, image in images:
        for digest, body in image.blobs().items():
            (blobs / digest.removeprefix("sha256:")).write_bytes(body)
        annotations = {"org.opencontainers.image.ref.name": name} if name else {}
        manifests.append(image.manifest_descriptor(**annotations))
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
    return directory


# ---------------------------------------------------------------- the token server


class TokenServer:
    """A token service for the registry's ``auth: token`` (see the module's docstring)."""

    def __init__(self, workdir: Path, users: Mapping[str, str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = dict(users)
        self.requests: list[dict[str, str]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _authenticate(self, header: str) -> str | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == password and password else ""

    def start(self) -> TokenServer:
        self._thread = threading.Thread(target=self._run, name="token-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("token server did not start")
        return self

    def _run(self) -> None:
        from aiohttp import web

        async def token(request: web.Request) -> web.Response:
            scope = request.query.get("scope", "")
            self.requests.append({"service": request.query.get("service", ""), "scope": scope,
                                  "authorization": request.headers.get("Authorization", "")})
            user = self._authenticate(request.headers.get("Authorization", ""))
            if user == "":
                return web.json_response({"details": "wrong username or password"}, status=401)
            access = []
            if user and scope.startswith("repository:"):
                _, repo, actions = scope.split(":", 2)
                access.append({"type": "repository", "name": repo, "actions": actions.split(",")})
            return web.json_response({"token": self.token(user or "anonymous", access), "expires_in": 300})

        async def main() -> None:
            self._stop = asyncio.Event()
            app = web.Application()
            app.router.add_get("/token", token)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the registry's htpasswd auth only takes bcrypt), from glibc's crypt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}"


# ---------------------------------------------------------------- the registry


class RegistryProcess:
    """``docker-registry serve`` on 127.0.0.1 with its storage under ``workdir``."""

    def __init__(self, workdir: Path, *, token_server: TokenServer | None = None,
                 htpasswd: Mapping[str, str] | None = None, push_credentials: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = workdir / "storage"
        self.port = free_port()
        self.token_server = token_server
        self.htpasswd = htpasswd
        self.push_credentials = push_credentials
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "registry.log"
        self._auth: dict[str, str] = {}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "podlife-test-secret"},
        }
        if self.token_server is not None:
            config["auth"] = {"token": {"realm": self.token_server.realm, "service": SERVICE, "issuer": ISSUER,
                                        "rootcertbundle": str(self.token_server.cert_path)}}
        elif self.htpasswd is not None:
            path = self.workdir / "htpasswd"
            path.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self.htpasswd.items()))
            config["auth"] = {"htpasswd": {"realm": "podlife-test", "path": str(path)}}
        return config

    def start(self, timeout: float = 30.0) -> RegistryProcess:
        binary = require_registry()
        config_path = self.workdir / "config.yml"
        config_path.write_text(yaml.safe_dump(self._config()))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=2).close()
                return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stored_blob(self, digest: str) -> Path:
        """Where the registry's filesystem driver keeps a blob (to corrupt it in a test)."""
        hex_part = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_part[:2] / hex_part / "data"

    # ------------------------------------------------------------ pushing

    def _request(self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                 scope: str | None = None) -> tuple[int, Mapping[str, str], bytes]:
        headers = dict(headers or {})
        if scope in self._auth:  # authorize up front: a 401 in the middle of a large body is a broken pipe
            headers["Authorization"] = self._auth[scope]
        for attempt in range(2):
            request = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    return resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    headers["Authorization"] = self._authorization(exc.headers.get("WWW-Authenticate", ""), scope)
                    if scope is not None:
                        self._auth[scope] = headers["Authorization"]
                    continue
                raise AssertionError(f"{method} {url}: {exc.code} {exc.read()[:500]!r}") from exc
        raise AssertionError(f"{method} {url}: still unauthorized")

    def _authorization(self, challenge: str, scope: str | None) -> str:
        assert self.push_credentials is not None, f"registry wants auth ({challenge}) but the test gave no credentials"
        user, password = self.push_credentials
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if challenge.lower().startswith("basic"):
            return basic
        assert self.token_server is not None
        query = urllib.parse.urlencode({"service": SERVICE, "scope": scope or ""})
        request = urllib.request.Request(f"{self.token_server.realm}?{query}", headers={"Authorization": basic})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return "Bearer " + json.loads(resp.read())["token"]

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        scope = f"repository:{repo}:pull,push"
        _, headers, _ = self._request("POST", f"{self.url}/v2/{repo}/blobs/uploads/", b"", scope=scope)
        location = urllib.parse.urljoin(self.url, headers["Location"])
        separator = "&" if "?" in location else "?"
        status, _, _ = self._request("PUT", f"{location}{separator}digest={digest}", data,
                                     {"Content-Type": "application/octet-stream"}, scope=scope)
        assert status == 201, status
        return digest

    def push_manifest(self, repo: str, tag: str, body: bytes, media_type: str = OCI_MANIFEST) -> str:
        status, headers, _ = self._request("PUT", f"{self.url}/v2/{repo}/manifests/{tag}", body,
                                           {"Content-Type": media_type}, scope=f"repository:{repo}:pull,push")
        assert status == 201, status
        return headers.get("Docker-Content-Digest", sha256(body))

    def push(self, repo: str, tag: str, image: BuiltImage) -> str:
        """Push an image's blobs and its manifest under ``tag``; the manifest's digest."""
        for layer in image.layers:
            self.push_blob(repo, layer.blob)
        self.push_blob(repo, image.config)
        return self.push_manifest(repo, tag, image.manifest, image.media_type)

    def push_index(self, repo: str, tag: str, images: Sequence[BuiltImage], extra: Sequence[dict[str, Any]] = (),
                   docker: bool = False) -> str:
        for image in images:
            self.push(repo, image.manifest_digest, image)
        return self.push_manifest(repo, tag, build_index(images, extra=extra, docker=docker),
                                  DOCKER_LIST if docker else OCI_INDEX)
