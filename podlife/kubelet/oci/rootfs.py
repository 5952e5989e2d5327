"""The host image class: a container root made of read-only views of this machine's system dirs.

Design
------
:func:`prepare_rootfs` writes ``<bundle>/rootfs``, a small directory that holds only
what belongs to the container, and returns the mounts that complete it; runc mounts
them in the container's own mount namespace, so nothing is copied from ``/usr`` and
nothing stays mounted on the host once the container is gone.

What the container sees:

* ``/usr`` and every real directory among ``/bin``, ``/sbin``, ``/lib``,
  ``/lib32``, ``/lib64``, ``/libx32``: read-only, nosuid, nodev bind mounts of the
  host's. On a merged-/usr host (Debian 12) those are symlinks (``bin -> usr/bin``),
  and the rootfs gets the same symlinks instead of mounts.
* ``/etc``: a private, writable ``/etc`` holding an allow-list (:data:`BASE_ETC`:
  account databases without their shadow files, name-service and loader
  configuration, TLS roots, ``alternatives``, time zone, OS release) plus the image's
  extra entries. Only what is named gets in, so ``shadow``, ``gshadow``, ``sudoers``,
  ssh host keys and tools' credential files (``pip.conf``, ``npmrc``, ``gitconfig``)
  never do. ``/etc/hostname`` and ``/etc/hosts`` are written for the container; the
  kubelet bind-mounts its per-pod hosts file over the latter
  (:mod:`podlife.kubelet.oci_pods`).
* The image's own ``dirs`` (created empty, writable: ``/var/log/nginx``) and
  ``copy`` entries (host paths copied in: nginx's ``/var/www/html``).
* ``/tmp``, ``/var/tmp`` (mode 1777) and ``/run`` (755): tmpfs of its own.
* ``/proc``, ``/sys`` (read-only), ``/dev`` as runc makes it: the standard mounts of
  :mod:`podlife.kubelet.oci.bundle`.
* Empty ``/root``, ``/home``, ``/opt``, ``/srv``, ``/mnt``, ``/var/{lib,log,cache}``
  directories of its own. The host's ``/root``, ``/home``, ``/work``, ``/tmp``,
  ``/var`` and podlife's data directory are never mounted: only the paths listed
  above come from the host.
* For an image with ``applets`` (busybox): ``/opt/<name>/bin`` holds one symlink
  per applet to the multi-call binary, and the image's ``PATH`` puts it first, so
  ``sh``, ``wget`` or ``nc`` are busybox's as in the real image.

Shared layers
-------------
The ``/etc`` allow-list (~700 entries, mostly symlinks of ``/etc/ssl/certs`` and
``/etc/alternatives``) and the applet links (~400) are the same for every container
of an image, and creating them is most of what starting a container used to cost.
So, as containerd's snapshotter does with an image's layers, they are made once, in
a *layer* directory under ``<bundles dir>/../host-images`` (:func:`default_layers_dir`),
and each container gets an **overlay** of it: ``lowerdir`` the shared layer,
``upperdir``/``workdir`` in its own bundle (``etc.upper``, ``etc.work``). The container reads the shared files and
writes only to its own upper directory (the kernel copies a file up on first
write), so its ``/etc`` is still its own and writable, and no container sees
another's changes. The overlays are mounts of the container's mount namespace
(``config.json``), like the binds above. ``/etc/hostname`` and ``/etc/hosts`` are
written into the container's upper directory. Both overlays are marked
:attr:`~podlife.kubelet.oci.bundle.Mount.part_of_root`, so ``readOnlyRootFilesystem``
makes them read-only as well (:mod:`podlife.kubelet.oci.bundle`).

A layer is named after what it was made from: the allow-list, and the inode,
change time and size of each named host entry, of every directory and regular
file below them, and of the applet binary. A symlink inside a copied directory
cannot change without changing its directory, so it needs no ``stat`` of its own;
checking freshness costs some 50 ``lstat`` calls. When the host's ``/etc``
changes, the next container gets a new layer; layers of the same kind that no
bundle names any more (each bundle lists its layers in ``host-layers``) are then
removed. A layer is never changed once made (built aside, then renamed into
place), as overlayfs requires of a lower directory.

Where overlayfs cannot be used (podlife not root, the data directory on a filesystem
overlayfs cannot write to, a path with ``,`` or ``:``), found once per layers
directory by mounting a probe overlay, every container gets a private copy as
before: the allow-list copied into ``rootfs/etc``, applet links into ``rootfs/opt``.

Blocking file work (copying ``/etc``, asking busybox for its applets) is done in a
worker thread by :func:`prepare_rootfs_async`.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from podlife.kubelet.oci.bundle import Mount, bind_mount, tmpfs_mount
from podlife.kubelet.oci.images import HostImage

__all__ = [
    "BASE_ETC",
    "HOST_SYSTEM_DIRS",
    "LAYER_REFERENCES",
    "applet_names",
    "default_layers_dir",
    "host_mounts",
    "overlay_supported",
    "prepare_rootfs",
    "prepare_rootfs_async",
]

log = logging.getLogger(__name__)

#: Host directories a host-class container sees, read-only (or as symlinks on merged /usr).
HOST_SYSTEM_DIRS: tuple[str, ...] = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")

#: ``/etc`` entries every host-class container gets a private copy of.
BASE_ETC: tuple[str, ...] = (
    "passwd",
    "group",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "protocols",
    "services",
    "networks",
    "ethertypes",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "mime.types",
    "magic",
    "magic.mime",
    "locale.alias",
    "environment",
    "profile",
    "profile.d",
    "bash.bashrc",
    "inputrc",
    "terminfo",
    "login.defs",
    "shells",
)

#: Directories of the container's own, created empty in the rootfs.
OWN_DIRS: tuple[str, ...] = (
    "proc",
    "sys",
    "dev",
    "etc",
    "tmp",
    "run",
    "root",
    "home",
    "opt",
    "srv",
    "mnt",
    "media",
    "var/tmp",
    "var/lib",
    "var/log",
    "var/cache",
    "var/spool",
)

#: Never copied into a container's /etc, even when an image entry names them.
SECRET_ETC = frozenset({"shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "security/opasswd"})

#: The file of a bundle that names the shared layers its container's overlays use (one a line).
LAYER_REFERENCES = "host-layers"
#: Characters overlayfs's mount options cannot carry in a path.
_OVERLAY_UNSAFE = frozenset(",:\\\n")

#: Held while a layer is chosen or made and its use recorded, and while unused layers are removed.
_LAYERS_LOCK = threading.Lock()
#: layers directory -> whether an overlay can be mounted from it (probed once).
_OVERLAY_SUPPORT: dict[str, bool] = {}


@dataclass(frozen=True)
class _Overlay:
    """One overlay of a shared layer at ``destination`` in the container (``/etc``, ``/opt``)."""

    destination: str
    lower: Path
    upper: Path
    work: Path

    def mount(self) -> Mount:
        options = (f"lowerdir={self.lower}", f"upperdir={self.upper}", f"workdir={self.work}")
        return Mount(self.destination, "overlay", "overlay", options, part_of_root=True)


def default_layers_dir(bundle_dir: Path) -> Path:
    """``<state>/host-images`` for a bundle at ``<state>/containers/<id>``: beside the bundles, not among them."""
    return Path(bundle_dir).absolute().parent.parent / "host-images"


def prepare_rootfs(
    bundle_dir: Path,
    image: HostImage,
    *,
    hostname: str | None = None,
    host_root: Path = Path("/"),
    layers_dir: Path | None = None,
    share_layers: bool | None = None,
) -> list[Mount]:
    """Create ``bundle_dir/rootfs`` for ``image``; return the mounts that complete it (see design).

    ``layers_dir``: where shared layers are kept (default :func:`default_layers_dir`).
    ``share_layers``: overlays of shared layers (True), private copies (False), or
    overlays where this machine can mount them (None).
    """
    bundle_dir = Path(bundle_dir).absolute()
    rootfs = _own_tree(bundle_dir)
    mounts = host_mounts(rootfs, host_root)
    layers = Path(layers_dir).absolute() if layers_dir is not None else default_layers_dir(bundle_dir)
    if share_layers is None:
        share_layers = overlay_supported(layers)
    if share_layers:
        overlays = _shared_overlays(bundle_dir, image, host_root, layers)
        mounts += [o.mount() for o in overlays]
    else:
        overlays = []
        _copy_etc(host_root / "etc", rootfs / "etc", _etc_names(image))
        if image.applets:
            binary = str(host_root / image.applets.lstrip("/"))
            _link_applets(rootfs / "opt" / image.name / "bin", image.applets, applet_names(binary))
    _write_identity(_own_path(rootfs, overlays, "/etc"), hostname)
    for directory in image.dirs:
        _own_path(rootfs, overlays, directory).mkdir(parents=True, exist_ok=True)
    for path in image.copy:
        _copy_host_path(host_root / path.lstrip("/"), _own_path(rootfs, overlays, path))
    mounts += [tmpfs_mount("/tmp"), tmpfs_mount("/var/tmp"), tmpfs_mount("/run", mode="755")]
    return mounts


async def prepare_rootfs_async(
    bundle_dir: Path, image: HostImage, *, hostname: str | None = None, host_root: Path = Path("/")
) -> list[Mount]:
    """:func:`prepare_rootfs` in a worker thread."""
    return await asyncio.to_thread(prepare_rootfs, bundle_dir, image, hostname=hostname, host_root=host_root)


def _own_tree(bundle_dir: Path) -> Path:
    """The container's own part of its root: empty directories, ``/tmp`` and ``/var/tmp`` sticky, ``/root`` 700."""
    rootfs = bundle_dir / "rootfs"
    rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(rootfs, 0o755)
    for d in OWN_DIRS:
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "var/tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)
    return rootfs


def _own_path(rootfs: Path, overlays: Sequence[_Overlay], path: str) -> Path:
    """Where the container's own ``path`` is made on the host: its overlay's upper dir, else the rootfs."""
    inside = "/" + path.strip("/")
    for overlay in overlays:
        if inside == overlay.destination or inside.startswith(overlay.destination + "/"):
            return overlay.upper / inside[len(overlay.destination):].lstrip("/")
    return rootfs / inside.lstrip("/")


def host_mounts(rootfs: Path, host_root: Path = Path("/")) -> list[Mount]:
    """Read-only bind mounts of the host's system directories; symlinked ones become symlinks in ``rootfs``."""
    mounts: list[Mount] = []
    for name in HOST_SYSTEM_DIRS:
        host = host_root / name
        inside = rootfs / name
        if host.is_symlink():
            target = os.readlink(host)
            if inside.is_symlink() or inside.exists():
                if inside.is_symlink() and os.readlink(inside) == target:
                    continue
                _remove(inside)
            os.symlink(target, inside)
        elif host.is_dir():
            inside.mkdir(exist_ok=True)
            mounts.append(bind_mount(str(host), f"/{name}", readonly=True))
    return mounts


# ---------------------------------------------------------------- shared layers


def _shared_overlays(bundle_dir: Path, image: HostImage, host_root: Path, layers: Path) -> list[_Overlay]:
    """The container's overlays of the image's shared layers, made (once) if need be, their use recorded."""
    names = _etc_names(image)
    host_etc = host_root / "etc"
    etc_key = _digest("etc", str(host_etc), *names, *_etc_signature(host_etc, names))
    wanted: list[tuple[str, str, Path, Callable[[Path], None]]] = [
        ("/etc", "etc-", layers / f"etc-{etc_key}", functools.partial(_copy_etc, host_etc, names=names)),
    ]
    if image.applets:
        binary = str(host_root / image.applets.lstrip("/"))
        applets = applet_names(binary)
        opt_key = _digest("opt", image.name, image.applets, *applets, *_stat_signature(Path(binary)))
        prefix = f"opt-{image.name}-"
        wanted.append(("/opt", prefix, layers / f"{prefix}{opt_key}",
                       functools.partial(_applet_layer, image.name, image.applets, applets)))
    overlays = []
    with _LAYERS_LOCK:
        for destination, prefix, layer, fill in wanted:
            if not layer.is_dir():
                _make_layer(layer, fill)
                _remove_unused_layers(layers, prefix, keep=layer, bundles=bundle_dir.parent)
            name = destination.strip("/")
            overlays.append(_Overlay(destination, layer, bundle_dir / f"{name}.upper", bundle_dir / f"{name}.work"))
        (bundle_dir / LAYER_REFERENCES).write_text("".join(f"{o.lower.name}\n" for o in overlays))
    for overlay in overlays:
        overlay.upper.mkdir(mode=0o755, exist_ok=True)
        os.chmod(overlay.upper, 0o755)  # the merged directory's own mode is the upper dir's
        overlay.work.mkdir(mode=0o700, exist_ok=True)
    return overlays


def _applet_layer(image: str, binary: str, applets: Iterable[str], layer: Path) -> None:
    """The ``/opt`` layer of an image with applets: ``<image>/bin/<applet>`` -> the multi-call binary."""
    _link_applets(layer / image / "bin", binary, applets)


def _make_layer(layer: Path, fill: Callable[[Path], None]) -> None:
    """Build ``layer`` aside and rename it into place: a layer is complete or absent, never changed."""
    layer.parent.mkdir(parents=True, exist_ok=True)
    staging = layer.with_name(f".{layer.name}.{secrets.token_hex(4)}")
    staging.mkdir(mode=0o755)
    try:
        os.chmod(staging, 0o755)
        fill(staging)
        try:
            os.rename(staging, layer)
        except OSError as exc:  # made meanwhile by another process: use that one
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not layer.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _remove_unused_layers(layers: Path, prefix: str, *, keep: Path, bundles: Path) -> None:
    """Remove the layers of one kind (``prefix``) that no bundle in ``bundles`` names, except ``keep``."""
    used = {keep.name, *_layers_in_use(bundles)}
    for entry in layers.iterdir():
        if entry.name.startswith(f".{prefix}"):  # half-made by an agent that was killed
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(prefix) and entry.name not in used:
            log.info("removing shared layer %s: no container uses it any more", entry.name)
            shutil.rmtree(entry, ignore_errors=True)


def _layers_in_use(bundles: Path) -> set[str]:
    used: set[str] = set()
    with os.scandir(bundles) as entries:
        for entry in entries:
            try:
                used.update(Path(entry.path, LAYER_REFERENCES).read_text().split())
            except OSError:
                continue
    return used


def _etc_names(image: HostImage) -> tuple[str, ...]:
    """The ``/etc`` entries a container of ``image`` gets: the allow-list and the image's, minus secrets."""
    return tuple(
        name
        for name in dict.fromkeys([*BASE_ETC, *image.etc])
        if name not in SECRET_ETC and not name.startswith(("/", "..")) and "/../" not in f"/{name}/"
    )


def _etc_signature(host_etc: Path, names: Iterable[str]) -> list[str]:
    """What a copy of ``names`` depends on: each named entry, and every directory and file below them.

    Symlinks below a named directory are left out: one cannot change without its
    directory's change time changing.
    """
    out: list[str] = []
    for name in names:
        path = host_etc / name
        out.extend(_stat_signature(path))
        if path.is_dir() and not path.is_symlink():
            _tree_signature(str(path), out)
    return out


def _tree_signature(directory: str, out: list[str]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_symlink():
            continue
        out.extend(_stat_signature(Path(entry.path)))
        if entry.is_dir(follow_symlinks=False):
            _tree_signature(entry.path, out)


def _stat_signature(path: Path) -> list[str]:
    try:
        st = path.lstat()
    except OSError:
        return [f"{path}:-"]
    return [f"{path}:{st.st_ino}:{st.st_ctime_ns}:{st.st_mtime_ns}:{st.st_size}:{st.st_mode}"]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


# ---------------------------------------------------------------- can overlays be mounted here?

_MNT_DETACH = 2


def overlay_supported(layers: Path) -> bool:
    """Whether containers can get overlays of layers kept in ``layers`` (probed once per directory)."""
    key = str(layers)
    with _LAYERS_LOCK:
        if key not in _OVERLAY_SUPPORT:
            _OVERLAY_SUPPORT[key] = _probe_overlay(layers)
        return _OVERLAY_SUPPORT[key]


def _probe_overlay(layers: Path) -> bool:
    """Mount (and at once unmount) an overlay with its upper and lower dirs in ``layers``."""
    if _OVERLAY_UNSAFE & set(str(layers)) or os.geteuid() != 0:
        return False
    probe = layers / ".probe"
    libc = ctypes.CDLL(None, use_errno=True)
    merged = probe / "merged"
    libc.umount2(bytes(merged), _MNT_DETACH)  # a probe left by an agent killed in the middle
    shutil.rmtree(probe, ignore_errors=True)
    try:
        for d in ("lower", "upper", "work", "merged"):
            (probe / d).mkdir(parents=True)
        options = f"lowerdir={probe / 'lower'},upperdir={probe / 'upper'},workdir={probe / 'work'}"
        if libc.mount(b"overlay", bytes(merged), b"overlay", 0, options.encode()) != 0:
            err = ctypes.get_errno()
            log.warning("overlayfs unusable in %s (%s): containers get private copies of /etc", layers, os.strerror(err))
            return False
        if libc.umount2(bytes(merged), 0) != 0:
            libc.umount2(bytes(merged), _MNT_DETACH)
        return True
    except OSError as exc:
        log.warning("cannot probe overlayfs in %s (%s): containers get private copies of /etc", layers, exc)
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# ---------------------------------------------------------------- copies


def _copy_etc(host_etc: Path, etc: Path, names: Iterable[str]) -> None:
    for name in dict.fromkeys(names):
        if name in SECRET_ETC or name.startswith(("/", "..")) or "/../" in f"/{name}/":
            continue
        source = host_etc / name
        target = etc / name
        if not (source.exists() or source.is_symlink()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            if target.is_symlink() or target.exists():
                _remove(target)
            os.symlink(os.readlink(source), target)
        elif source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=_unreadable)
        else:
            shutil.copy2(source, target, follow_symlinks=False)


def _copy_host_path(source: Path, target: Path) -> None:
    """Copy an image's extra host file or tree (missing ones are skipped: ``requires`` guards what matters)."""
    if not (source.exists() or source.is_symlink()):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=_unreadable)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def _unreadable(directory: str, names: list[str]) -> set[str]:
    """Skip entries that are neither files, dirs nor links (sockets, fifos) when copying a tree."""
    skip: set[str] = set()
    for name in names:
        path = os.path.join(directory, name)
        if not (os.path.islink(path) or os.path.isfile(path) or os.path.isdir(path)):
            skip.add(name)
    return skip


def _write_identity(etc: Path, hostname: str | None) -> None:
    name = hostname or "localhost"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hostname").write_text(f"{name}\n")
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if hostname:
        hosts += f"127.0.1.1\t{hostname}\n"
    hosts_path = etc / "hosts"
    if hosts_path.is_symlink():
        hosts_path.unlink()
    hosts_path.write_text(hosts)


@functools.cache
def applet_names(binary: str) -> tuple[str, ...]:
    """The applets a busybox-style multi-call binary provides (``--list``), asked once per binary."""
    out = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True, timeout=30).stdout
    return tuple(sorted({line.strip() for line in out.splitlines() if line.strip() and "/" not in line}))


def _link_applets(directory: Path, binary: str, names: Iterable[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = directory / name
        if not link.is_symlink():
            os.symlink(binary, link)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
