"""Pulling images over the OCI distribution API (Docker Registry HTTP API v2).

Design
------
:func:`parse_reference` reads an image reference the way ``docker pull`` and the
kubelet do (distribution's ``ParseNormalizedNamed``): a first path component with a
``.`` or ``:``, ``localhost`` or an upper-case letter is a registry host, anything else
is on ``docker.io``, where a single name is under ``library/``; a reference with
neither tag nor digest gets ``:latest``. :class:`InvalidReferenceError` (Kubernetes:
``InvalidImageName``) says why one does not parse.

:class:`RegistryClient` speaks the API with aiohttp:

* ``GET /v2/<name>/manifests/<tag or digest>`` accepting the OCI image index and
  manifest and Docker's v2 manifest list and manifest. An index (list) is resolved to
  the manifest of this machine's platform (``linux/<arch>`` from
  :func:`host_platform`, or the one the client was given). A manifest fetched by
  digest must hash to it.
* ``GET /v2/<name>/blobs/<digest>`` streamed to a file while its sha256 and size are
  checked against the descriptor (:meth:`RegistryClient.fetch_blob`).
* Auth as registries ask for it on a 401: ``WWW-Authenticate: Bearer realm=...,
  service=..., scope=...`` sends the client to the token server (with Basic
  credentials when it has some for the host) and retries with ``Authorization:
  Bearer``; ``Basic realm=...`` is answered with the credentials directly.
  Credentials are a mapping host -> (username, password), what the kubelet builds
  from a pod's ``imagePullSecrets`` (:func:`credentials_from_docker_config` reads a
  ``.dockerconfigjson`` document).
* Plain HTTP for loopback registries (``127.0.0.1``, ``localhost``, ``[::1]``: the
  "insecure" local registry case) and for hosts the client is told to; HTTPS
  otherwise. Redirects (blob storage) are followed by hand, at most five, and the
  ``Authorization`` header never goes to another host.

Every failure is a :class:`PullError` whose message is in the style of containerd's
(``failed to pull and unpack image "docker.io/library/x:latest": failed to resolve
reference "...": ...: not found``), with :attr:`PullError.kind` telling "not found",
"unauthorized", "unreachable", "corrupt" (digest or size mismatch), "unsupported"
(schema 1 manifests, unknown media types) and other failures apart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import fnmatch
import hashlib
import json
import logging
import os
import platform as platform_module
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Credentials",
    "Descriptor",
    "InvalidReferenceError",
    "Platform",
    "PullError",
    "PullErrorKind",
    "Reference",
    "RegistryClient",
    "ResolvedImage",
    "credentials_from_docker_config",
    "host_platform",
    "parse_reference",
]

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: The Accept header of a manifest request: every kind podlife can use, the OCI ones first.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))

DEFAULT_DOMAIN = "docker.io"
#: Where docker.io's API is actually served.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: containerd refuses manifests and configs larger than this.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_REDIRECTS = 5
CHUNK_BYTES = 1 << 20

#: host -> (username, password)
Credentials = Mapping[str, tuple[str, str]]

# distribution/reference's grammar, in our own words.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_NAME_LENGTH = 255


class PullErrorKind(enum.StrEnum):
    """Why a pull failed, for callers that act on it (retry, back off, report)."""

    NOT_FOUND = "not found"
    UNAUTHORIZED = "unauthorized"
    UNREACHABLE = "unreachable"
    INVALID_REFERENCE = "invalid reference"
    CORRUPT = "corrupt"
    UNSUPPORTED = "unsupported"
    FAILED = "failed"


class PullError(Exception):
    """A pull that failed; the message is containerd's style, :attr:`kind` says which way."""

    def __init__(self, image: str, kind: PullErrorKind, detail: str) -> None:
        self.image = image
        self.kind = kind
        self.detail = detail
        self.message = f'failed to pull and unpack image "{image}": {detail}'
        super().__init__(self.message)

    @property
    def not_found(self) -> bool:
        return self.kind is PullErrorKind.NOT_FOUND

    @property
    def unauthorized(self) -> bool:
        return self.kind is PullErrorKind.UNAUTHORIZED

    @property
    def unreachable(self) -> bool:
        return self.kind is PullErrorKind.UNREACHABLE


class InvalidReferenceError(PullError, ValueError):
    """A reference that does not parse (Kubernetes: ``InvalidImageName``)."""

    def __init__(self, image: str, detail: str) -> None:
        super().__init__(image, PullErrorKind.INVALID_REFERENCE, detail)
        self.message = f'couldn\'t parse image name "{image}": {detail}'
        self.args = (self.message,)


@dataclass(frozen=True)
class Reference:
    """A normalized image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def locator(self) -> str:
        """What the manifest request names: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> str:
        """``repository@digest``: the repo digest of what this reference resolved to."""
        return f"{self.repository}@{digest}"


def parse_reference(text: str) -> Reference:
    """Parse and normalize an image reference (see the module's design)."""
    raw = text.strip()
    if not raw:
        raise InvalidReferenceError(text, "invalid reference format")
    name, digest = _split_digest(text, raw)
    name, tag = _split_tag(text, name)
    domain, path = _split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise InvalidReferenceError(text, "invalid reference format")
    if path.lower() != path and _PATH_RE.match(path.lower()):
        raise InvalidReferenceError(text, f"invalid reference format: repository name ({path}) must be lowercase")
    if not _PATH_RE.match(path):
        raise InvalidReferenceError(text, "invalid reference format")
    if len(f"{domain}/{path}") > MAX_NAME_LENGTH:
        raise InvalidReferenceError(text, f"repository name must not be more than {MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def _split_digest(original: str, raw: str) -> tuple[str, str | None]:
    if "@" not in raw:
        return raw, None
    name, digest = raw.split("@", 1)
    if not _DIGEST_RE.match(digest):
        raise InvalidReferenceError(original, "invalid reference format")
    algorithm, hex_part = digest.split(":", 1)
    if algorithm == "sha256" and not re.fullmatch(r"[0-9a-f]{64}", hex_part):
        raise InvalidReferenceError(original, "invalid checksum digest format")
    return name, digest


def _split_tag(original: str, name: str) -> tuple[str, str | None]:
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon <= last_slash:
        return name, None
    tag = name[colon + 1 :]
    if not _TAG_RE.match(tag):
        raise InvalidReferenceError(original, "invalid reference format")
    return name[:colon], tag


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    is_domain = bool(sep) and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first)
    if not is_domain:
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


# ---------------------------------------------------------------- platforms


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as an image index describes a manifest."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: want os/architecture[/variant]")
        arch, variant = _normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
        return cls(parts[0], arch, variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """Whether an index entry's ``platform`` is this one (an entry without variant fits any)."""
        arch, variant = _normalize_arch(str(entry.get("architecture") or ""), str(entry.get("variant") or ""))
        if str(entry.get("os") or "") != self.os or arch != self.architecture:
            return False
        return not variant or not self.variant or variant == self.variant


_MACHINE_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's platform normalization: ``aarch64`` is ``arm64``, arm64's variant ``v8`` is implied."""
    arch = arch.lower()
    variant = variant.lower()
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("", "v8", "8") else variant
    if arch in ("x86_64", "x86-64"):
        return "amd64", ""
    if arch in ("i386", "i686"):
        return "386", ""
    return arch, variant


def host_platform() -> Platform:
    """This machine's platform (``linux/amd64`` on x86-64)."""
    arch, variant = _MACHINE_ARCH.get(platform_module.machine().lower(), (platform_module.machine().lower(), ""))
    arch, variant = _normalize_arch(arch, variant)
    return Platform("linux", arch, variant)


# ---------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about a blob."""

    media_type: str
    digest: str
    size: int
    platform: Mapping[str, Any] | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Descriptor:
        """Read a descriptor; ``ValueError`` names what is wrong with it."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"{where}: must be an object")
        digest = doc.get("digest")
        size = doc.get("size")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise ValueError(f"{where}.digest: {digest!r} is not a sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"{where}.size: {size!r} is not a size in bytes")
        platform = doc.get("platform")
        annotations = doc.get("annotations") or {}
        return cls(
            media_type=str(doc.get("mediaType") or ""),
            digest=digest,
            size=size,
            platform=platform if isinstance(platform, Mapping) else None,
            annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, Mapping) else {},
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            doc["platform"] = dict(self.platform)
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_media_type(body: bytes, content_type: str | None) -> str:
    """The manifest's media type: its own ``mediaType`` field, else the response's Content-Type."""
    with contextlib.suppress(ValueError):
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
            return str(doc["mediaType"])
        if isinstance(doc, dict) and "manifests" in doc:
            return OCI_INDEX
        if isinstance(doc, dict) and "layers" in doc and "config" in doc:
            return OCI_MANIFEST
    return (content_type or "").split(";", 1)[0].strip()


def select_platform(index: Mapping[str, Any], wanted: Platform) -> Descriptor | None:
    """The index entry for ``wanted`` (``None`` when it has none); a bad entry raises ``ValueError``."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ValueError("manifests: must be a list")
    descriptors = [Descriptor.from_json(e, f"manifests[{i}]") for i, e in enumerate(entries)]
    for descriptor in descriptors:
        if descriptor.platform is not None and wanted.matches(descriptor.platform):
            return descriptor
    return None


def check_manifest(doc: Any) -> tuple[Descriptor, list[Descriptor]]:
    """An image manifest's config and layer descriptors; ``ValueError`` when it is not one."""
    if not isinstance(doc, Mapping):
        raise ValueError("manifest: must be an object")
    if doc.get("schemaVersion") != 2:
        raise ValueError(f"manifest: schemaVersion {doc.get('schemaVersion')!r} is not supported")
    config = Descriptor.from_json(doc.get("config"), "config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ValueError("layers: must be a list")
    return config, [Descriptor.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers)]


# ---------------------------------------------------------------- credentials


def credentials_from_docker_config(doc: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Credentials from a ``.dockerconfigjson`` (``{"auths": {host: {username, password | auth}}}``).

    The older ``.dockercfg`` form (hosts at the top level) is read too. Entries
    without a username and password are left out.
    """
    nested = doc.get("auths")
    auths: Mapping[str, Any] = nested if isinstance(nested, Mapping) else doc
    found: dict[str, tuple[str, str]] = {}
    for key, entry in auths.items():
        if not isinstance(entry, Mapping):
            continue
        user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if not user and entry.get("auth"):
            try:
                decoded = base64.b64decode(str(entry["auth"])).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            user, _, password = decoded.partition(":")
        if user:
            found[credential_host(str(key))] = (user, password)
    return found


def credential_host(key: str) -> str:
    """A credentials key as a registry host: ``https://index.docker.io/v1/`` is ``docker.io``."""
    text = key.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/", 1)[0].lower()
    if text in ("index.docker.io", DOCKER_HUB_API_HOST):
        return DEFAULT_DOMAIN
    return text


def credentials_for(credentials: Credentials, domain: str) -> tuple[str, str] | None:
    """The credentials for a registry: an exact host first, then a ``*.example.com`` pattern."""
    wanted = credential_host(domain)
    normalized = {credential_host(k): v for k, v in credentials.items()}
    if wanted in normalized:
        return normalized[wanted]
    for pattern, value in normalized.items():
        if "*" in pattern and fnmatch.fnmatchcase(wanted, pattern):
            return value
    return None


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class ResolvedImage:
    """What a reference resolved to on its registry, ready for the blobs to be fetched."""

    reference: Reference
    #: the digest the reference resolved to (an index's when it names one): the repo digest
    digest: str
    manifest_digest: str
    manifest: bytes
    manifest_media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    platform: Platform
    #: the index document when the reference named one
    index: bytes | None = None


@dataclass
class _Challenge:
    scheme: str
    params: dict[str, str]


_CHALLENGE_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_www_authenticate(header: str) -> _Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (``Bearer realm="...",service="..."``)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_PARAM.finditer(rest)}
    return _Challenge(scheme.lower(), params)


class RegistryClient:
    """An HTTP client of image registries for one set of credentials (see the module's design)."""

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        platform: Platform | None = None,
        plain_http_hosts: Sequence[str] = (),
        timeout: float = 300.0,
    ) -> None:
        self.credentials: Credentials = dict(credentials or {})
        self.platform = platform or host_platform()
        self.plain_http_hosts = frozenset(h.lower() for h in plain_http_hosts)
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        #: Authorization header per (host, scope), once a challenge has been answered
        self._auth: dict[tuple[str, str], str] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False, auto_decompress=False)
        return self._session

    # ------------------------------------------------------------ URLs

    def api_host(self, domain: str) -> str:
        return DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain

    def scheme(self, domain: str) -> str:
        host = domain.lower()
        bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", 1)[0] + "]"
        return "http" if bare in LOOPBACK_HOSTS or host in self.plain_http_hosts or bare in self.plain_http_hosts else "https"

    def url(self, ref: Reference, kind: str, locator: str) -> str:
        return f"{self.scheme(ref.domain)}://{self.api_host(ref.domain)}/v2/{ref.path}/{kind}/{locator}"

    # ------------------------------------------------------------ manifests

    async def resolve(self, ref: Reference) -> ResolvedImage:
        """Fetch the manifest ``ref`` names, through an index to this platform's manifest."""
        body, media_type, digest = await self.fetch_manifest(ref, ref.locator)
        index: bytes | None = None
        manifest_body, manifest_type, manifest_digest = body, media_type, digest
        for _ in range(2):  # an index may name another index (rare, but allowed) once
            if manifest_type not in INDEX_TYPES:
                break
            index = manifest_body
            entry = self._pick(ref, manifest_body)
            manifest_body, manifest_type, manifest_digest = await self.fetch_manifest(ref, entry.digest)
        if manifest_type in DOCKER_SCHEMA1:
            raise PullError(str(ref), PullErrorKind.UNSUPPORTED,
                            "schema 1 image manifests are no longer supported: "
                            "the image must be rebuilt or pushed again with a newer client")
        if manifest_type not in MANIFEST_TYPES:
            raise PullError(str(ref), PullErrorKind.UNSUPPORTED,
                            f"unexpected media type {manifest_type or '(none)'} for {manifest_digest}: not found")
        try:
            config, layers = check_manifest(json.loads(manifest_body))
        except ValueError as exc:
            raise PullError(str(ref), PullErrorKind.CORRUPT, f"invalid manifest {manifest_digest}: {exc}") from exc
        return ResolvedImage(ref, digest, manifest_digest, manifest_body, manifest_type, config, tuple(layers), self.platform, index)

    def _pick(self, ref: Reference, body: bytes) -> Descriptor:
        try:
            entry = select_platform(json.loads(body), self.platform)
        except ValueError as exc:
            raise PullError(str(ref), PullErrorKind.CORRUPT, f"invalid image index: {exc}") from exc
        if entry is None:
            raise PullError(str(ref), PullErrorKind.NOT_FOUND, "no match for platform in manifest: not found")
        return entry

    async def fetch_manifest(self, ref: Reference, locator: str) -> tuple[bytes, str, str]:
        """A manifest or index by tag or digest: (body, media type, digest); a digest is checked."""
        url = self.url(ref, "manifests", locator)
        async with await self._get(ref, url, {"Accept": MANIFEST_ACCEPT}, resolving=True) as resp:
            if resp.status == 404:
                raise PullError(str(ref), PullErrorKind.NOT_FOUND, f'failed to resolve reference "{ref}": {ref}: not found')
            await self._raise_for_status(ref, resp, "GET", url, resolving=True)
            body = await self._read_limited(ref, resp, MAX_MANIFEST_BYTES)
            content_type = resp.headers.get("Content-Type")
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(body)
        expected = locator if _DIGEST_RE.match(locator) else (header_digest if _SHA256_RE.match(header_digest) else None)
        if expected is not None and expected != digest:
            raise PullError(str(ref), PullErrorKind.CORRUPT,
                            f'failed to resolve reference "{ref}": unexpected manifest digest {digest}, '
                            f"expected {expected}: failed precondition")
        return body, manifest_media_type(body, content_type), digest

    async def _read_limited(self, ref: Reference, resp: aiohttp.ClientResponse, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            total += len(chunk)
            if total > limit:
                raise PullError(str(ref), PullErrorKind.CORRUPT, f"manifest is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------ blobs

    async def fetch_blob(self, ref: Reference, descriptor: Descriptor, dest: Path) -> None:
        """Stream a blob into ``dest``, checking its size and sha256; a mismatch removes ``dest``."""
        url = self.url(ref, "blobs", descriptor.digest)
        hasher = hashlib.sha256()
        written = 0
        try:
            async with await self._get(ref, url, {}, resolving=False) as resp:
                if resp.status == 404:
                    raise PullError(str(ref), PullErrorKind.NOT_FOUND,
                                    f"failed to copy: httpReadSeeker: failed open: content at {url} not found: not found")
                await self._raise_for_status(ref, resp, "GET", url, resolving=False)
                with open(dest, "wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        written += len(chunk)
                        if written > descriptor.size:
                            break
                        hasher.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
            actual = "sha256:" + hasher.hexdigest()
            if written != descriptor.size:
                raise PullError(str(ref), PullErrorKind.CORRUPT,
                                f"failed to copy: unexpected commit size {written}, expected {descriptor.size} "
                                f"for {descriptor.digest}: failed precondition")
            if actual != descriptor.digest:
                raise PullError(str(ref), PullErrorKind.CORRUPT,
                                f"failed to copy: unexpected commit digest {actual}, expected {descriptor.digest}: failed precondition")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(dest)
            raise

    async def fetch_blob_bytes(self, ref: Reference, descriptor: Descriptor, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        """A small blob (an image config) in memory, checked like :meth:`fetch_blob`."""
        if descriptor.size > limit:
            raise PullError(str(ref), PullErrorKind.CORRUPT, f"blob {descriptor.digest} is larger than {limit} bytes")
        url = self.url(ref, "blobs", descriptor.digest)
        async with await self._get(ref, url, {}, resolving=False) as resp:
            if resp.status == 404:
                raise PullError(str(ref), PullErrorKind.NOT_FOUND,
                                f"failed to copy: httpReadSeeker: failed open: content at {url} not found: not found")
            await self._raise_for_status(ref, resp, "GET", url, resolving=False)
            body = await resp.content.read(limit + 1)
        if len(body) != descriptor.size:
            raise PullError(str(ref), PullErrorKind.CORRUPT,
                            f"failed to copy: unexpected commit size {len(body)}, expected {descriptor.size} "
                            f"for {descriptor.digest}: failed precondition")
        actual = sha256_digest(body)
        if actual != descriptor.digest:
            raise PullError(str(ref), PullErrorKind.CORRUPT,
                            f"failed to copy: unexpected commit digest {actual}, expected {descriptor.digest}: failed precondition")
        return body

    # ------------------------------------------------------------ HTTP with auth

    async def _get(self, ref: Reference, url: str, headers: Mapping[str, str], *, resolving: bool) -> aiohttp.ClientResponse:
        """GET with the registry's auth, following redirects by hand; the caller closes the response."""
        scope = f"repository:{ref.path}:pull"
        host = urlsplit(url).netloc
        resp = await self._send(ref, url, headers, host, scope, resolving=resolving)
        if resp.status == 401:
            challenge = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
            resp.release()
            await self._answer(ref, host, scope, challenge, resolving=resolving)
            resp = await self._send(ref, url, headers, host, scope, resolving=resolving)
        return resp

    async def _send(
        self, ref: Reference, url: str, headers: Mapping[str, str], host: str, scope: str, *, resolving: bool
    ) -> aiohttp.ClientResponse:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            request_headers = dict(headers)
            same_host = urlsplit(current).netloc == host
            auth = self._auth.get((host, scope))
            if auth and same_host:
                request_headers["Authorization"] = auth
            try:
                resp = await self._http().get(current, headers=request_headers, allow_redirects=False)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise self._unreachable(ref, "GET", current, exc, resolving) from exc
            if resp.status not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
                return resp
            current = urljoin(current, resp.headers["Location"])
            resp.release()
        raise PullError(str(ref), PullErrorKind.FAILED, f"stopped after {MAX_REDIRECTS} redirects: GET {url}")

    def _unreachable(self, ref: Reference, method: str, url: str, exc: BaseException, resolving: bool) -> PullError:
        reason = _network_reason(url, exc)
        detail = f'failed to do request: {method.title()} "{url}": {reason}'
        if resolving:
            detail = f'failed to resolve reference "{ref}": {detail}'
        else:
            detail = f"failed to copy: {detail}"
        return PullError(str(ref), PullErrorKind.UNREACHABLE, detail)

    async def _answer(self, ref: Reference, host: str, scope: str, challenge: _Challenge | None, *, resolving: bool) -> None:
        """Get an Authorization header for a 401's challenge (a token, or Basic credentials)."""
        creds = credentials_for(self.credentials, ref.domain)
        if challenge is not None and challenge.scheme == "bearer" and challenge.params.get("realm"):
            token = await self._fetch_token(ref, challenge, scope, creds, resolving=resolving)
            self._auth[(host, scope)] = f"Bearer {token}"
            return
        if challenge is not None and challenge.scheme == "basic" and creds is not None:
            user, password = creds
            self._auth[(host, scope)] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return
        raise PullError(str(ref), PullErrorKind.UNAUTHORIZED, _denied(ref, resolving, "authentication required: no credentials"))

    async def _fetch_token(
        self, ref: Reference, challenge: _Challenge, scope: str, creds: tuple[str, str] | None, *, resolving: bool
    ) -> str:
        realm = challenge.params["realm"]
        query = {"scope": challenge.params.get("scope") or scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {}
        if creds is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        which = "oauth" if creds is not None else "anonymous"
        try:
            async with self._http().get(url, headers=headers, allow_redirects=True) as resp:
                if resp.status in (401, 403):
                    raise PullError(str(ref), PullErrorKind.UNAUTHORIZED, _prefix(ref, resolving,
                                    f"failed to authorize: failed to fetch {which} token: unexpected status from GET "
                                    f"request to {url}: {resp.status} {resp.reason}"))
                if resp.status >= 400:
                    raise PullError(str(ref), PullErrorKind.FAILED, _prefix(ref, resolving,
                                    f"failed to authorize: failed to fetch {which} token: unexpected status from GET "
                                    f"request to {url}: {resp.status} {resp.reason}"))
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(ref, "GET", url, exc, resolving) from exc
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise PullError(str(ref), PullErrorKind.UNAUTHORIZED,
                            _prefix(ref, resolving, f"failed to authorize: failed to fetch {which} token: "
                                                    f"no token in the answer of {realm}"))
        return token

    async def _raise_for_status(
        self, ref: Reference, resp: aiohttp.ClientResponse, method: str, url: str, *, resolving: bool
    ) -> None:
        if resp.status < 400:
            return
        if resp.status in (401, 403):
            message = await _server_message(resp)
            raise PullError(str(ref), PullErrorKind.UNAUTHORIZED, _denied(ref, resolving, message))
        raise PullError(str(ref), PullErrorKind.FAILED,
                        _prefix(ref, resolving, f"unexpected status from {method} request to {url}: {resp.status} {resp.reason}"))


def _prefix(ref: Reference, resolving: bool, detail: str) -> str:
    return f'failed to resolve reference "{ref}": {detail}' if resolving else f"failed to copy: {detail}"


def _denied(ref: Reference, resolving: bool, server_message: str) -> str:
    return _prefix(ref, resolving, "pull access denied, repository does not exist or may require authorization: "
                                   f"server message: {server_message}")


async def _server_message(resp: aiohttp.ClientResponse) -> str:
    """``code: message`` of a registry's error document (``UNAUTHORIZED: authentication required``)."""
    try:
        doc = json.loads(await resp.content.read(64 * 1024))
        first = doc["errors"][0]
        return f"{str(first.get('code', '')).lower()}: {first.get('message', '')}"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, aiohttp.ClientError):
        return f"{resp.status} {resp.reason}"


def _network_reason(url: str, exc: BaseException) -> str:
    """Go's wording for the common network failures (``dial tcp HOST:PORT: connect: connection refused``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = f"{parts.hostname}:{port}"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {address}: connect: connection refused"
        if isinstance(cause, TimeoutError):
            return f"dial tcp {address}: i/o timeout"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError):
        return f"dial tcp {address}: connect: connection refused"
    return f"dial tcp {address}: {exc}"
