"""A node's image store: images pulled from registries or loaded from files, as container roots.

Design
------
Everything is under one root directory (``<data-dir>/nodes/<node>/images``)::

    index.json            image records and the container roots made from them
    .lock                 flock(2) held while index.json is rewritten (the CLI and the
                          kubelet may use one store at the same time)
    blobs/sha256/<hex>    image configs, manifests and indexes, by digest
    layers/sha256/<hex>/  one unpacked layer per diff ID (the sha256 of its tar)
    tmp/                  downloads and unpacks in progress

**Layers are kept unpacked in overlayfs form**, each in its own directory, and a
container's root is an overlay mount of them (lower = the image's layers, upper and
work directories beside the target), as containerd's overlayfs snapshotter and
Docker's overlay2 driver do. Chosen over flattening one rootfs per image because
images that share a base share its layers on disk, starting a container copies
nothing, and the kernel does the copy-up. OCI whiteouts become what overlayfs reads:
``.wh.NAME`` is a character device 0:0 named ``NAME``, ``.wh..wh..opq`` sets
``trusted.overlay.opaque=y`` on its directory. Where an overlay mount is impossible
(the store on a filesystem overlayfs cannot use) ``rootfs_mode="auto"`` falls back to
copying the layers, bottom up, into the target, applying the same whiteouts; that is
also ``rootfs_mode="copy"``. Compressed layer blobs are not kept once a layer is
unpacked and its diff ID checked: the layer is the content, and keeping both would
double the disk an image takes.

**Layers are untrusted.** Each tar is unpacked entry by entry: an absolute path, a
``..`` component, an entry whose parent is a symbolic link (how a layer would write
through ``link -> /etc``), or a hard link to anything outside the layer refuses the
whole layer (:class:`UnsafeLayerError`); nothing of it stays. The unpacked tar must
hash to the config's diff ID. Extended attributes other than ``security.*`` and
``user.*`` are dropped, so a layer cannot set overlayfs's own ``trusted.overlay.*``.

**Records.** ``index.json`` maps an image ID (the config's digest, as containerd
and the kubelet name images) to its references (``127.0.0.1:5000/team/app:v1``,
normalized by :func:`~podlife.kubelet.oci.registry.parse_reference`), repo digests
(``repo@sha256:...`` of what was pulled), size (config and compressed layers, what
``crictl images`` shows), the config fields a container needs, its layers and when
it was last used (pulled, loaded or made into a container root). A reference
belongs to one image: pulling a tag that moved takes it off the old image.

**Garbage collection** is the kubelet's image GC: when the store's filesystem is
used above ``high_percent``, images no container uses are removed, least recently
used first, until usage is below ``low_percent``; layers and blobs no image (and
no prepared container root) needs go with them.

Blocking work (unpacking, copying, mounting, index updates) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import gzip
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from podlife.kubelet.oci.bundle import Mount
from podlife.kubelet.oci.registry import (
    INDEX_TYPES,
    Descriptor,
    Platform,
    PullError,
    PullErrorKind,
    RegistryClient,
    check_manifest,
    host_platform,
    parse_reference,
    select_platform,
    sha256_digest,
)

__all__ = [
    "ImageConfig",
    "ImageNotKnownError",
    "ImageStore",
    "ImageStoreError",
    "StoredImage",
    "UnsafeLayerError",
    "parse_image_config",
    "resolve_user",
    "unpack_layer",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
RootfsMode = Literal["auto", "overlay", "copy"]

OPAQUE_MARKER = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
#: xattr namespaces a layer may set; ``trusted.*`` (overlayfs's own) and ``system.*`` are dropped
KEPT_XATTR_PREFIXES = ("security.", "user.")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
#: the kernel takes at most a page of mount options
MAX_MOUNT_OPTIONS = 4000
MNT_DETACH = 2
CHUNK = 1 << 20


class ImageStoreError(Exception):
    """The store cannot do what was asked (a bad file to load, a layer refused, a mount that failed)."""


class ImageNotKnownError(ImageStoreError, LookupError):
    """No image in the store has that reference or ID."""


class UnsafeLayerError(ImageStoreError):
    """A layer tries to write outside its own directory (absolute path, ``..``, through a symlink)."""


# ---------------------------------------------------------------- image config


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config (``application/vnd.oci.image.config.v1+json``) podlife uses."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    working_dir: str
    user: str
    stop_signal: str | None
    diff_ids: tuple[str, ...]
    platform: str
    created: str | None


def parse_image_config(body: bytes) -> ImageConfig:
    """Read an image config; ``ValueError`` names what is wrong with it."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"image config is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("image config: must be an object")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _is_sha256(d) for d in diff_ids):
        raise ValueError("image config: rootfs.diff_ids must be a list of sha256 digests")
    process = doc.get("config") or {}
    if not isinstance(process, dict):
        raise ValueError("image config: config must be an object")
    env: dict[str, str] = {}
    for item in process.get("Env") or []:
        name, sep, value = str(item).partition("=")
        if sep and name:
            env[name] = value
    platform = "/".join(str(p) for p in (doc.get("os") or "linux", doc.get("architecture") or "", doc.get("variant") or "") if p)
    return ImageConfig(
        entrypoint=_string_list(process.get("Entrypoint"), "Entrypoint"),
        cmd=_string_list(process.get("Cmd"), "Cmd"),
        env=env,
        working_dir=str(process.get("WorkingDir") or "/"),
        user=str(process.get("User") or ""),
        stop_signal=str(process["StopSignal"]) if process.get("StopSignal") else None,
        diff_ids=tuple(diff_ids),
        platform=platform,
        created=str(doc["created"]) if doc.get("created") else None,
    )


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"image config: config.{name} must be a list of strings")
    return tuple(str(v) for v in value)


def _is_sha256(digest: str) -> bool:
    return digest.startswith("sha256:") and len(digest) == 71 and all(c in "0123456789abcdef" for c in digest[7:])


# ---------------------------------------------------------------- stored images


@dataclass(frozen=True)
class StoredImage:
    """One image of the store, with the config fields a container is made from."""

    #: the config's digest (``sha256:...``): the image ID the kubelet reports
    id: str
    references: tuple[str, ...]
    repo_digests: tuple[str, ...]
    #: bytes of the config and the compressed layers (what ``crictl images`` shows)
    size: int
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str
    user: str
    #: diff IDs, bottom layer first
    layers: tuple[str, ...]
    manifest_digest: str
    platform: str
    stop_signal: str | None = None
    created: str | None = None
    #: seconds since the epoch
    last_used: float = 0.0
    blobs: tuple[str, ...] = field(default=(), repr=False)

    @property
    def repo_digest(self) -> str | None:
        """The repo digest of the last pull (``repo@sha256:...``), the kubelet's ``imageID``."""
        return self.repo_digests[0] if self.repo_digests else None

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:13]

    def to_record(self) -> dict[str, Any]:
        return {
            "references": list(self.references),
            "repoDigests": list(self.repo_digests),
            "size": self.size,
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "env": dict(self.env),
            "workingDir": self.working_dir,
            "user": self.user,
            "layers": list(self.layers),
            "manifestDigest": self.manifest_digest,
            "platform": self.platform,
            "stopSignal": self.stop_signal,
            "created": self.created,
            "lastUsed": self.last_used,
            "blobs": list(self.blobs),
        }

    @classmethod
    def from_record(cls, image_id: str, doc: Mapping[str, Any]) -> StoredImage:
        return cls(
            id=image_id,
            references=tuple(doc.get("references") or ()),
            repo_digests=tuple(doc.get("repoDigests") or ()),
            size=int(doc.get("size") or 0),
            entrypoint=tuple(doc.get("entrypoint") or ()),
            cmd=tuple(doc.get("cmd") or ()),
            env=dict(doc.get("env") or {}),
            working_dir=str(doc.get("workingDir") or "/"),
            user=str(doc.get("user") or ""),
            layers=tuple(doc.get("layers") or ()),
            manifest_digest=str(doc.get("manifestDigest") or ""),
            platform=str(doc.get("platform") or ""),
            stop_signal=doc.get("stopSignal"),
            created=doc.get("created"),
            last_used=float(doc.get("lastUsed") or 0.0),
            blobs=tuple(doc.get("blobs") or ()),
        )


# ---------------------------------------------------------------- the index file


class _Index:
    """``index.json``, read without a lock (it is replaced atomically), rewritten under flock."""

    def __init__(self, root: Path) -> None:
        self.path = root / "index.json"
        self.lock_path = root / ".lock"

    def read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            doc = {}
        except ValueError as exc:
            raise ImageStoreError(f"{self.path}: not valid JSON ({exc})") from exc
        doc.setdefault("images", {})
        doc.setdefault("rootfs", {})
        return doc

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the document and write it back, holding the store's lock."""
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self.read()
            result = change(doc)
            tmp = self.path.with_name(f".index.json.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
            return result


def find_image_id(doc: Mapping[str, Any], reference_or_id: str) -> str | None:
    """The ID of the image a reference, repo digest, ID or unique ID prefix names."""
    images: Mapping[str, Any] = doc.get("images") or {}
    text = reference_or_id.strip()
    if text in images:
        return text
    try:
        ref = parse_reference(text)
    except ValueError:
        ref = None
    if ref is not None:
        name = str(ref)
        for image_id, record in images.items():
            if name in (record.get("references") or ()):
                return image_id
        if ref.digest:
            wanted = ref.with_digest(ref.digest)
            for image_id, record in images.items():
                if wanted in (record.get("repoDigests") or ()):
                    return image_id
    hex_part = text.removeprefix("sha256:")
    if len(hex_part) >= 4 and all(c in "0123456789abcdef" for c in hex_part):
        matches = [i for i in images if i.removeprefix("sha256:").startswith(hex_part)]
        if len(matches) == 1:
            return matches[0]
    return None


# ---------------------------------------------------------------- unpacking layers


class _HashingReader:
    """A file object that hashes what is read through it (the diff ID of a decompressed layer)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


@contextlib.contextmanager
def _decompressed(blob: Path) -> Iterator[IO[bytes]]:
    """The layer's tar stream, whatever its compression (told by magic bytes: gzip, zstd, none)."""
    with open(blob, "rb") as probe:
        magic = probe.read(4)
    if magic[:2] == GZIP_MAGIC:
        with gzip.open(blob, "rb") as stream:
            yield stream  # type: ignore[misc]
    elif magic == ZSTD_MAGIC:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ImageStoreError("zstd-compressed layers need the zstd program (Debian package zstd)")
        proc = subprocess.Popen([zstd, "-dcq", str(blob)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            _, err = proc.communicate()
            if proc.returncode not in (0, None) and not err.startswith(b"zstd: error 70"):  # 70: reader stopped early
                log.debug("zstd exited %s: %s", proc.returncode, err.decode(errors="replace").strip())
    else:
        with open(blob, "rb") as stream:
            yield stream


def unpack_layer(blob: Path, diff_id: str, dest: Path) -> None:
    """Unpack a layer blob into the new directory ``dest`` in overlayfs form, checking its diff ID.

    On any failure ``dest`` is removed and :class:`ImageStoreError` (or
    :class:`UnsafeLayerError`) says why.
    """
    dest.mkdir(mode=0o755)
    try:
        with _decompressed(blob) as stream:
            reader = _HashingReader(stream)
            writer = _LayerWriter(dest)
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    writer.add(tar, member)
            reader.drain()
        writer.finish()
        if reader.digest != diff_id:
            raise ImageStoreError(f"layer content has diff ID {reader.digest}, the image config says {diff_id}")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ImageStoreError(f"layer {diff_id} is not a valid tar archive: {exc}") from exc
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ImageStoreError(f"layer {diff_id}: {exc}") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _member_parts(name: str) -> list[str]:
    """A tar entry's path components, refusing absolute paths and ``..``."""
    if name.startswith("/"):
        raise UnsafeLayerError(f'"{name}": absolute paths are not allowed in a layer')
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f'"{name}": ".." would leave the layer')
    return parts


class _LayerWriter:
    """Writes a layer's tar entries under its root, never following a link (see the module's design)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_root = os.geteuid() == 0
        self._dir_times: list[tuple[Path, float]] = []

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _member_parts(member.name)
        if not parts:
            if member.isdir():
                self._metadata(self.root, member)
            return
        parent = self._parent(parts[:-1], member.name)
        base = parts[-1]
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(AUFS_META_PREFIX):
            return  # aufs hard-link bookkeeping (.wh..wh.plnk): nothing to unpack
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base[len(WHITEOUT_PREFIX):], member.name)
            return
        path = parent / base
        self._clear_for(path, member)
        self._create(tar, member, path)

    def _parent(self, parts: Sequence[str], name: str) -> Path:
        """The entry's directory: real directories only, made when missing; a symlink refuses the layer."""
        current = self.root
        for i, part in enumerate(parts):
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeLayerError(f'"{name}" goes through the symbolic link "{"/".join(parts[: i + 1])}"')
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout this layer also refills
                os.unlink(current)
                os.mkdir(current, 0o755)
            elif not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayerError(f'"{name}": "{"/".join(parts[: i + 1])}" is not a directory')
        return current

    def _whiteout(self, parent: Path, name: str, entry: str) -> None:
        if not name or name in (".", "..") or "/" in name:
            raise UnsafeLayerError(f'"{entry}": not a valid whiteout')
        target = parent / name
        _remove_path(target)
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    def _clear_for(self, path: Path, member: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) and member.isdir():
            return
        _remove_path(path)

    def _create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
        if member.isdir():
            if not path.is_dir():
                os.mkdir(path, 0o700)
            self._metadata(path, member)
            self._dir_times.append((path, member.mtime))
        elif member.isreg():
            source = tar.extractfile(member)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    shutil.copyfileobj(source, out, CHUNK)
            self._metadata(path, member)
        elif member.issym():
            os.symlink(member.linkname, path)
            self._owner(path, member)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        elif member.islnk():
            os.link(self._link_source(member), path, follow_symlinks=False)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            self._metadata(path, member)
        elif member.isfifo():
            os.mkfifo(path, 0o600)
            self._metadata(path, member)
        else:
            log.debug("layer entry %s of type %r skipped", member.name, member.type)

    def _link_source(self, member: tarfile.TarInfo) -> Path:
        parts = _member_parts(member.linkname)
        if not parts:
            raise UnsafeLayerError(f'hard link "{member.name}" to "{member.linkname}": not a file')
        current = self.root
        for part in parts[:-1]:
            current = current / part
            st = os.lstat(current) if os.path.lexists(current) else None
            if st is None or not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayerError(f'hard link "{member.name}" to "{member.linkname}": not a file of this layer')
        source = current / parts[-1]
        if not os.path.lexists(source) or os.path.isdir(source) and not os.path.islink(source):
            raise UnsafeLayerError(f'hard link "{member.name}" to "{member.linkname}": not a file of this layer')
        return source

    def _owner(self, path: Path, member: tarfile.TarInfo) -> None:
        if self.is_root:
            os.lchown(path, member.uid, member.gid)

    def _metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        self._owner(path, member)
        os.chmod(path, member.mode & 0o7777)  # after chown, which clears set-id bits
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr."):]
                if name.startswith(KEPT_XATTR_PREFIXES):
                    with contextlib.suppress(OSError):
                        os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        if not member.isdir():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: unpacking their entries changed them."""
        for path, mtime in reversed(self._dir_times):
            with contextlib.suppress(OSError):
                os.utime(path, (mtime, mtime), follow_symlinks=False)


def _remove_path(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------- container roots


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def flatten_layers(layer_dirs: Sequence[Path], target: Path) -> None:
    """Copy layers (overlayfs form, bottom first) into ``target``, applying their whiteouts."""
    for layer in layer_dirs:
        _apply_layer(layer, target)


def _apply_layer(source_dir: Path, target_dir: Path) -> None:
    with os.scandir(source_dir) as entries:
        for entry in entries:
            source = Path(entry.path)
            target = target_dir / entry.name
            st = os.lstat(source)
            if _is_whiteout(st):
                _remove_path(target)
                continue
            if stat.S_ISDIR(st.st_mode):
                existing = os.lstat(target) if os.path.lexists(target) else None
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    _remove_path(target)
                    existing = None
                if existing is None:
                    os.mkdir(target, 0o700)
                elif _is_opaque(source):
                    for child in list(target.iterdir()):
                        _remove_path(child)
                _apply_layer(source, target)
                _copy_metadata(source, target, st)
                continue
            _remove_path(target)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), target)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(source, target, follow_symlinks=False)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                os.mknod(target, st.st_mode, st.st_rdev)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(target, 0o600)
            else:
                continue
            _copy_metadata(source, target, st)


def _copy_metadata(source: Path, target: Path, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        os.lchown(target, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            for name in os.listxattr(source, follow_symlinks=False):
                if name.startswith(KEPT_XATTR_PREFIXES):
                    os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def mount_points() -> set[str]:
    """Every mount point of this mount namespace (``/proc/self/mountinfo``, octal escapes undone)."""
    points = set()
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split(" ")
            if len(fields) > 4:
                points.add(_unescape_mount_path(fields[4]))
    return points


def _unescape_mount_path(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _mount_overlay(layers_dir: Path, lower: Sequence[str], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay at ``target``; lower dirs are relative to ``layers_dir`` to keep the options short."""
    for path in (upper, work):
        if any(c in str(path) for c in ",:"):
            raise ImageStoreError(f"{path}: an overlay directory may not contain ',' or ':'")
    options = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(options) > MAX_MOUNT_OPTIONS:
        raise ImageStoreError(f"image has too many layers ({len(lower)}) for one overlay mount")
    mount = shutil.which("mount") or "/bin/mount"
    result = subprocess.run(
        [mount, "-t", "overlay", "overlay", "-o", options, str(target)],
        cwd=layers_dir, capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        raise ImageStoreError(f"mounting the overlay at {target}: {result.stderr.strip() or result.returncode}")


def _unmount(target: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    path = os.fsencode(str(target))
    if libc.umount2(path, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and libc.umount2(path, MNT_DETACH) == 0:
        return
    err = ctypes.get_errno() or err
    if err == errno.EINVAL and str(target) not in mount_points():
        return
    raise ImageStoreError(f"unmounting {target}: {os.strerror(err)}")


# ---------------------------------------------------------------- users


def resolve_user(user: str, rootfs: Path) -> tuple[int, int, tuple[int, ...]]:
    """uid, gid and additional gids of an image's ``User`` in a container root (containerd's rules).

    ``""`` is root; ``uid`` or ``name`` take the primary group from ``/etc/passwd``
    (gid 0 for a uid it lacks); ``user:group`` names both; the additional groups
    are the ``/etc/group`` entries listing the user. Files are read inside
    ``rootfs`` with symbolic links resolved within it. ``ValueError`` for a name
    the image does not have.
    """
    if not user:
        return 0, 0, ()
    name, _, group = user.partition(":")
    passwd = _read_entries(rootfs, "etc/passwd")
    groups = _read_entries(rootfs, "etc/group")
    entry = next((e for e in passwd if len(e) > 3 and (e[0] == name or (name.isdigit() and e[2] == name))), None)
    if name.isdigit():
        uid = int(name)
    elif entry is not None and entry[2].isdigit():
        uid = int(entry[2])
    else:
        raise ValueError(f"unable to find user {name}: no matching entries in passwd file")
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((g for g in groups if len(g) > 2 and g[0] == group and g[2].isdigit()), None)
            if found is None:
                raise ValueError(f"unable to find group {group}: no matching entries in group file")
            gid = int(found[2])
    login = entry[0] if entry is not None else None
    extra = sorted({int(g[2]) for g in groups if len(g) > 3 and g[2].isdigit() and login and login in g[3].split(",")} - {gid})
    return uid, gid, tuple(extra)


def _read_entries(rootfs: Path, relative: str) -> list[list[str]]:
    path = _resolve_in_root(rootfs, relative)
    if path is None:
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    with os.fdopen(fd, errors="replace") as handle:
        text = handle.read(4 * 1024 * 1024)
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _resolve_in_root(root: Path, relative: str, max_links: int = 40) -> Path | None:
    """``relative`` inside ``root`` with symlinks followed as the container would (never above root)."""
    pending = [p for p in relative.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > max_links:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


# ---------------------------------------------------------------- the store


class ImageStore:
    """Images of one node: pull, load, list, remove, garbage-collect, make container roots."""

    def __init__(
        self,
        root: Path,
        *,
        platform: Platform | str | None = None,
        rootfs_mode: RootfsMode = "auto",
        plain_http_hosts: Sequence[str] = (),
        max_parallel_downloads: int = 3,
    ) -> None:
        self.root = Path(root).absolute()
        self.platform = Platform.parse(platform) if isinstance(platform, str) else (platform or host_platform())
        self.rootfs_mode: RootfsMode = rootfs_mode
        self.plain_http_hosts = tuple(plain_http_hosts)
        self.max_parallel_downloads = max_parallel_downloads
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers" / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.empty_dir = self.root / "layers" / "empty"
        for directory in (self.blobs_dir, self.layers_dir, self.tmp_dir, self.empty_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._index = _Index(self.root)
        #: layers being pulled or loaded, not yet in a record: prune must leave them
        self._pending_layers: Counter[str] = Counter()
        self._layer_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------ queries

    def get(self, reference: str) -> StoredImage | None:
        """The image a reference, repo digest or ID names, if the store has it."""
        doc = self._index.read()
        image_id = find_image_id(doc, reference)
        return StoredImage.from_record(image_id, doc["images"][image_id]) if image_id else None

    def layer_path(self, diff_id: str) -> Path:
        return self.layers_dir / diff_id.removeprefix("sha256:")

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / digest.removeprefix("sha256:")

    # ------------------------------------------------------------ pull

    async def pull(self, reference: str, *, credentials: Mapping[str, tuple[str, str]] | None = None) -> StoredImage:
        """Pull ``reference`` from its registry; :class:`~podlife.kubelet.oci.registry.PullError` when it cannot."""
        ref = parse_reference(reference)
        name = str(ref)
        async with RegistryClient(credentials=credentials or {}, platform=self.platform,
                                  plain_http_hosts=self.plain_http_hosts) as client:
            resolved = await client.resolve(ref)
            config_body = await client.fetch_blob_bytes(ref, resolved.config)
            config = self._config_or_pull_error(name, config_body, len(resolved.layers))
            limit = asyncio.Semaphore(self.max_parallel_downloads)

            async def fetch(descriptor: Descriptor, diff_id: str) -> None:
                async with limit:
                    await self._ensure_layer(diff_id, lambda dest: client.fetch_blob(ref, descriptor, dest), name)

            try:
                async with asyncio.TaskGroup() as group:
                    for descriptor, diff_id in zip(resolved.layers, config.diff_ids):
                        group.create_task(fetch(descriptor, diff_id))
            except BaseExceptionGroup as failures:
                raise _first_error(failures) from None
        blobs = {resolved.config.digest: config_body, resolved.manifest_digest: resolved.manifest}
        if resolved.index is not None:
            blobs[resolved.digest] = resolved.index
        size = resolved.config.size + sum(layer.size for layer in resolved.layers)
        try:
            return await asyncio.to_thread(
                self._record, resolved.config.digest, config, blobs, [name] if ref.tag else [],
                [ref.with_digest(resolved.digest)], size, resolved.manifest_digest,
            )
        finally:
            self._pending_layers.subtract(config.diff_ids)

    def _config_or_pull_error(self, name: str, body: bytes, layer_count: int) -> ImageConfig:
        try:
            config = parse_image_config(body)
        except ValueError as exc:
            raise PullError(name, PullErrorKind.CORRUPT, f"invalid image config: {exc}") from exc
        if len(config.diff_ids) != layer_count:
            raise PullError(name, PullErrorKind.CORRUPT,
                            f"mismatched image rootfs and manifest layers: {len(config.diff_ids)} diff IDs, {layer_count} layers")
        self._pending_layers.update(config.diff_ids)
        return config

    async def _ensure_layer(self, diff_id: str, download: Callable[[Path], Any], name: str | None) -> None:
        """Make sure the layer ``diff_id`` is unpacked, downloading its blob with ``download`` if not."""
        lock = self._layer_locks.setdefault(diff_id, asyncio.Lock())
        async with lock:
            if self.layer_path(diff_id).is_dir():
                return
            work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="layer-", dir=self.tmp_dir))
            try:
                blob = work / "blob"
                await download(blob)
                await asyncio.to_thread(self._unpack_into_store, blob, diff_id, work / "tree")
            except ImageStoreError as exc:
                if name is None:
                    raise
                raise PullError(name, PullErrorKind.CORRUPT, f"failed to extract layer {diff_id}: {exc}") from exc
            finally:
                await asyncio.to_thread(shutil.rmtree, work, True)

    def _unpack_into_store(self, blob: Path, diff_id: str, tree: Path) -> None:
        unpack_layer(blob, diff_id, tree)
        try:
            os.rename(tree, self.layer_path(diff_id))
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise  # another process unpacked the same layer first: keep theirs

    def _record(
        self,
        image_id: str,
        config: ImageConfig,
        blobs: Mapping[str, bytes],
        references: Sequence[str],
        repo_digests: Sequence[str],
        size: int,
        manifest_digest: str,
    ) -> StoredImage:
        """Store the small blobs and add (or refresh) the image's record; a reference moves to it.

        Both under the index lock, so a concurrent prune never sees the blobs unreferenced.
        """

        def change(doc: dict[str, Any]) -> StoredImage:
            for digest, body in blobs.items():
                path = self.blob_path(digest)
                if not path.exists():
                    tmp = self.tmp_dir / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}"
                    tmp.write_bytes(body)
                    os.replace(tmp, path)
            images = doc["images"]
            for other_id, other in images.items():
                if other_id != image_id:
                    other["references"] = [r for r in other.get("references") or () if r not in references]
            old = images.get(image_id) or {}
            image = StoredImage(
                id=image_id,
                references=tuple(dict.fromkeys([*references, *(old.get("references") or ())])),
                repo_digests=tuple(dict.fromkeys([*repo_digests, *(old.get("repoDigests") or ())])),
                size=size,
                entrypoint=config.entrypoint,
                cmd=config.cmd,
                env=config.env,
                working_dir=config.working_dir,
                user=config.user,
                layers=config.diff_ids,
                manifest_digest=manifest_digest,
                platform=config.platform,
                stop_signal=config.stop_signal,
                created=config.created,
                last_used=time.time(),
                blobs=tuple(dict.fromkeys([*blobs, *(old.get("blobs") or ())])),
            )
            images[image_id] = image.to_record()
            return image

        return self._index.update(change)

    # ------------------------------------------------------------ load

    async def load(self, path: Path) -> list[StoredImage]:
        """Load the images of an OCI layout (a directory, or a tar of one) or a docker archive."""
        path = Path(path)
        if path.is_dir():
            return await self._load_dir(path, str(path))
        if not path.is_file():
            raise ImageStoreError(f'failed to load images from "{path}": no such file or directory')
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="load-", dir=self.tmp_dir))
        try:
            await asyncio.to_thread(_extract_archive, path, work)
            return await self._load_dir(work, str(path))
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _load_dir(self, directory: Path, source: str) -> list[StoredImage]:
        try:
            if (directory / "index.json").is_file():
                return await self._load_oci_layout(directory)
            if (directory / "manifest.json").is_file():
                return await self._load_docker_archive(directory)
        except (ValueError, OSError) as exc:
            raise ImageStoreError(f'failed to load images from "{source}": {exc}') from exc
        except ImageStoreError as exc:
            raise ImageStoreError(f'failed to load images from "{source}": {exc}') from exc
        raise ImageStoreError(f'failed to load images from "{source}": neither an OCI image layout (index.json) '
                              "nor a docker archive (manifest.json)")

    async def _load_oci_layout(self, layout: Path) -> list[StoredImage]:
        index = json.loads((layout / "index.json").read_bytes())
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list):
            raise ValueError("index.json: manifests must be a list")
        loaded = []
        for i, entry in enumerate(entries):
            top = Descriptor.from_json(entry, f"index.json manifests[{i}]")
            loaded.append(await self._load_oci_image(layout, top))
        return loaded

    async def _load_oci_image(self, layout: Path, top: Descriptor) -> StoredImage:
        blobs: dict[str, bytes] = {}
        body = await asyncio.to_thread(_read_layout_blob, layout, top)
        manifest_desc = top
        doc = json.loads(body)
        if top.media_type in INDEX_TYPES or (not top.media_type and isinstance(doc, dict) and "manifests" in doc):
            blobs[top.digest] = body
            chosen = select_platform(doc, self.platform)
            if chosen is None:
                raise ImageStoreError(f"{top.digest}: no match for platform {self.platform} in the image index")
            manifest_desc = chosen
            body = await asyncio.to_thread(_read_layout_blob, layout, manifest_desc)
        blobs[manifest_desc.digest] = body
        config_desc, layers = check_manifest(json.loads(body))
        config_body = await asyncio.to_thread(_read_layout_blob, layout, config_desc)
        blobs[config_desc.digest] = config_body
        config = parse_image_config(config_body)
        if len(config.diff_ids) != len(layers):
            raise ValueError(f"{manifest_desc.digest}: {len(config.diff_ids)} diff IDs but {len(layers)} layers")
        self._pending_layers.update(config.diff_ids)
        try:
            for descriptor, diff_id in zip(layers, config.diff_ids):
                await self._ensure_layer(diff_id, _copier(layout, descriptor), None)
            name = top.annotations.get("io.containerd.image.name") or top.annotations.get("org.opencontainers.image.ref.name")
            ref = parse_reference(name) if name else None
            size = config_desc.size + sum(layer.size for layer in layers)
            return await asyncio.to_thread(
                self._record, config_desc.digest, config, blobs, [str(ref)] if ref else [],
                [ref.with_digest(top.digest)] if ref else [], size, manifest_desc.digest,
            )
        finally:
            self._pending_layers.subtract(config.diff_ids)

    async def _load_docker_archive(self, archive: Path) -> list[StoredImage]:
        manifest = json.loads((archive / "manifest.json").read_bytes())
        if not isinstance(manifest, list):
            raise ValueError("manifest.json: must be a list")
        loaded = []
        for i, entry in enumerate(manifest):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not isinstance(entry.get("Layers"), list):
                raise ValueError(f"manifest.json[{i}]: needs Config and Layers")
            config_body = _archive_file(archive, entry["Config"]).read_bytes()
            config = parse_image_config(config_body)
            layer_files = [_archive_file(archive, str(p)) for p in entry["Layers"]]
            if len(layer_files) != len(config.diff_ids):
                raise ValueError(f"manifest.json[{i}]: {len(layer_files)} layers but {len(config.diff_ids)} diff IDs")
            image_id = sha256_digest(config_body)
            self._pending_layers.update(config.diff_ids)
            try:
                for layer_file, diff_id in zip(layer_files, config.diff_ids):
                    await self._ensure_layer(diff_id, _file_copier(layer_file), None)
                refs = [str(parse_reference(tag)) for tag in entry.get("RepoTags") or []]
                size = len(config_body) + sum(f.stat().st_size for f in layer_files)
                loaded.append(await asyncio.to_thread(
                    self._record, image_id, config, {image_id: config_body}, refs, [], size, image_id))
            finally:
                self._pending_layers.subtract(config.diff_ids)
        return loaded

    # ------------------------------------------------------------ remove and GC

    async def remove(self, reference_or_id: str) -> None:
        """Remove an image (every reference of it) and the layers and blobs nothing else needs."""
        def change(doc: dict[str, Any]) -> None:
            image_id = find_image_id(doc, reference_or_id)
            if image_id is None:
                raise ImageNotKnownError(f'no such image "{reference_or_id}"')
            del doc["images"][image_id]

        await asyncio.to_thread(self._index.update, change)
        await self.prune()

    async def prune(self) -> None:
        """Delete layers and blobs that no image record and no prepared container root refers to."""
        doomed = await asyncio.to_thread(self._index.update, self._move_unreferenced_to_trash)
        for path in doomed:
            await asyncio.to_thread(shutil.rmtree, path, True)

    def _move_unreferenced_to_trash(self, doc: dict[str, Any]) -> list[Path]:
        keep_layers = {d for d, n in self._pending_layers.items() if n > 0}
        keep_blobs: set[str] = set()
        for record in doc["images"].values():
            keep_layers.update(record.get("layers") or ())
            keep_blobs.update(record.get("blobs") or ())
        for lease in doc["rootfs"].values():
            keep_layers.update(lease.get("layers") or ())
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.tmp_dir))
        for entry in list(self.layers_dir.iterdir()):
            if f"sha256:{entry.name}" not in keep_layers:
                os.rename(entry, trash / f"layer-{entry.name}")
        for entry in list(self.blobs_dir.iterdir()):
            if f"sha256:{entry.name}" not in keep_blobs:
                os.rename(entry, trash / f"blob-{entry.name}")
        return [trash]

    def filesystem_usage(self) -> tuple[int, int]:
        """(capacity, available) bytes of the filesystem the store is on."""
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    async def garbage_collect(
        self, in_use: set[str], *, high_percent: int = 85, low_percent: int = 80, min_age_seconds: float = 0.0
    ) -> list[str]:
        """The kubelet's image GC (see the module's design); returns the IDs removed.

        ``in_use``: references or IDs of images containers use; images with a prepared
        container root count as used too. ``min_age_seconds`` spares images used more
        recently than that (the kubelet's ``imageMinimumGCAge``).
        """
        if not 0 <= low_percent <= high_percent <= 100:
            raise ValueError(f"image GC thresholds: need 0 <= low ({low_percent}) <= high ({high_percent}) <= 100")
        capacity, available = self.filesystem_usage()
        if capacity <= 0 or 100 - available * 100 // capacity < high_percent:
            return []
        to_free = capacity * (100 - low_percent) // 100 - available
        doc = self._index.read()
        used = {i for i in (find_image_id(doc, name) for name in in_use) if i}
        used.update(str(lease.get("image")) for lease in doc["rootfs"].values())
        now = time.time()
        candidates = sorted(
            (StoredImage.from_record(i, r) for i, r in doc["images"].items() if i not in used),
            key=lambda image: image.last_used,
        )
        removed: list[str] = []
        for image in candidates:
            if now - image.last_used < min_age_seconds:
                continue
            with contextlib.suppress(ImageNotKnownError):
                await self.remove(image.id)
                removed.append(image.id)
            if self.filesystem_usage()[1] - available >= to_free:
                break
        else:
            if removed or candidates:
                log.warning("image GC: removed %d images but usage is still above %d%%", len(removed), low_percent)
        return removed

    # ------------------------------------------------------------ container roots

    async def prepare_rootfs(self, image: StoredImage, target: Path) -> list[Mount]:
        """Make ``target`` the root of a container of ``image``; undo with :meth:`release_rootfs`.

        An overlay of the image's layers is mounted at ``target`` (upper and work
        directories are ``<target>.upper`` and ``<target>.work`` beside it), or the
        layers are copied into it (see ``rootfs_mode``). Returns the extra mounts the
        container needs: none for either form.
        """
        target = Path(target).absolute()
        await asyncio.to_thread(self._index.update, lambda doc: self._lease(doc, image, target))
        try:
            mode = await asyncio.to_thread(self._assemble, image, target)
        except BaseException:
            await self.release_rootfs(target)
            raise
        if mode != "overlay":
            def note(doc: dict[str, Any]) -> None:
                doc["rootfs"][str(target)]["mode"] = mode
            await asyncio.to_thread(self._index.update, note)
        return []

    def _lease(self, doc: dict[str, Any], image: StoredImage, target: Path) -> None:
        record = doc["images"].get(image.id)
        if record is None:
            raise ImageNotKnownError(f'no such image "{image.id}"')
        if str(target) in doc["rootfs"]:
            raise ImageStoreError(f"{target}: already a prepared container root")
        missing = [d for d in record.get("layers") or () if not self.layer_path(d).is_dir()]
        if missing:
            raise ImageStoreError(f"image {image.id}: layers missing from the store: {', '.join(missing)}")
        record["lastUsed"] = time.time()
        doc["rootfs"][str(target)] = {"image": image.id, "layers": list(record.get("layers") or ()), "mode": "overlay"}

    def _assemble(self, image: StoredImage, target: Path) -> str:
        target.mkdir(parents=True, exist_ok=True)
        if self.rootfs_mode != "copy":
            upper, work = _upper_work(target)
            upper.mkdir(mode=0o755, exist_ok=True)
            work.mkdir(mode=0o700, exist_ok=True)
            lower = [d.removeprefix("sha256:") for d in reversed(image.layers)] or [os.path.relpath(self.empty_dir, self.layers_dir)]
            try:
                _mount_overlay(self.layers_dir, lower, upper, work, target)
                return "overlay"
            except ImageStoreError as exc:
                if self.rootfs_mode == "overlay":
                    raise
                log.warning("%s; copying the image's layers instead", exc)
                shutil.rmtree(upper, True)
                shutil.rmtree(work, True)
        os.chmod(target, 0o755)
        flatten_layers([self.layer_path(d) for d in image.layers], target)
        return "copy"

    async def release_rootfs(self, target: Path) -> None:
        """Unmount (or delete) a container root made by :meth:`prepare_rootfs`, with its writable layer."""
        target = Path(target).absolute()
        leased = str(target) in self._index.read()["rootfs"]
        mounted = await asyncio.to_thread(lambda: str(target) in mount_points())
        if not leased and not mounted:
            return  # not a root this store made (or already released): leave it alone
        await asyncio.to_thread(self._disassemble, target)

        def forget(doc: dict[str, Any]) -> None:
            doc["rootfs"].pop(str(target), None)

        await asyncio.to_thread(self._index.update, forget)
        await self.prune()

    def _disassemble(self, target: Path) -> None:
        if str(target) in mount_points():
            _unmount(target)
        if str(target) in mount_points():
            raise ImageStoreError(f"{target} is still mounted")
        upper, work = _upper_work(target)
        shutil.rmtree(upper, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)

    def prepared_roots(self) -> dict[str, str]:
        """Container roots prepared and not yet released: target -> image ID."""
        return {target: lease.get("image", "") for target, lease in self._index.read()["rootfs"].items()}

    # last in the class: a method named ``list`` would shadow the builtin in the annotations after it
    def list(self) -> list[StoredImage]:
        """Every image of the store, by first reference (untagged ones last)."""
        doc = self._index.read()
        images = [StoredImage.from_record(i, r) for i, r in doc["images"].items()]
        return sorted(images, key=lambda im: (im.references[0] if im.references else "~", im.id))


def _upper_work(target: Path) -> tuple[Path, Path]:
    return target.with_name(f"{target.name}.upper"), target.with_name(f"{target.name}.work")


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real failure of a task group (a PullError if there is one)."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return next((e for e in leaves if isinstance(e, PullError)), leaves[0])


def _read_layout_blob(layout: Path, descriptor: Descriptor, limit: int = 16 * 1024 * 1024) -> bytes:
    """A small blob of an OCI layout, checked against its descriptor."""
    path = layout / "blobs" / "sha256" / descriptor.digest.removeprefix("sha256:")
    if descriptor.size > limit:
        raise ValueError(f"{descriptor.digest}: {descriptor.size} bytes is too large for a manifest or config")
    body = path.read_bytes()
    _check_digest(descriptor, len(body), sha256_digest(body))
    return body


def _check_digest(descriptor: Descriptor, size: int, digest: str) -> None:
    if size != descriptor.size:
        raise ImageStoreError(f"blob {descriptor.digest}: {size} bytes, the descriptor says {descriptor.size}")
    if digest != descriptor.digest:
        raise ImageStoreError(f"blob {descriptor.digest}: content has digest {digest}")


def _copier(layout: Path, descriptor: Descriptor) -> Callable[[Path], Any]:
    """A download function for :meth:`ImageStore._ensure_layer` that copies an OCI layout's blob, checked."""
    source = layout / "blobs" / "sha256" / descriptor.digest.removeprefix("sha256:")

    def copy(dest: Path) -> None:
        hasher = hashlib.sha256()
        size = 0
        with open(source, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                out.write(chunk)
        _check_digest(descriptor, size, "sha256:" + hasher.hexdigest())

    return lambda dest: asyncio.to_thread(copy, dest)


def _file_copier(source: Path) -> Callable[[Path], Any]:
    """A download function that copies a docker archive's layer tar (its diff ID is checked on unpack)."""
    return lambda dest: asyncio.to_thread(shutil.copyfile, source, dest)


def _archive_file(archive: Path, name: str) -> Path:
    parts = _member_parts(name)
    if not parts:
        raise ValueError(f"{name!r}: not a file of the archive")
    path = archive.joinpath(*parts)
    if not path.is_file() or path.is_symlink():
        raise ValueError(f"{name}: not a file of the archive")
    return path


def _extract_archive(path: Path, dest: Path) -> None:
    """Unpack an image archive (tar, optionally gzip) with tarfile's ``data`` filter: no links out, no devices."""
    try:
        with tarfile.open(path, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ImageStoreError(f'failed to load images from "{path}": {exc}') from exc
