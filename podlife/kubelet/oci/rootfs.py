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
* ``/etc``: a private copy of an allow-list (:data:`BASE_ETC`: account databases
  without their shadow files, name-service and loader configuration, TLS roots,
  ``alternatives``, time zone, OS release) plus the image's extra entries. Only
  what is named is copied, so ``shadow``, ``gshadow``, ``sudoers``, ssh host keys
  and tools' credential files (``pip.conf``, ``npmrc``, ``gitconfig``) never get
  in. ``/etc/hostname`` and ``/etc/hosts`` are written for the container; the
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

Blocking file work (copying ``/etc``, asking busybox for its applets) is done in a
worker thread by :func:`prepare_rootfs_async`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from podlife.kubelet.oci.bundle import Mount, bind_mount, tmpfs_mount
from podlife.kubelet.oci.images import HostImage

__all__ = [
    "BASE_ETC",
    "HOST_SYSTEM_DIRS",
    "applet_names",
    "host_mounts",
    "prepare_rootfs",
    "prepare_rootfs_async",
]

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


def prepare_rootfs(
    bundle_dir: Path, image: HostImage, *, hostname: str | None = None, host_root: Path = Path("/")
) -> list[Mount]:
    """Create ``bundle_dir/rootfs`` for ``image``; return the mounts that complete it (see design)."""
    rootfs = bundle_dir / "rootfs"
    rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(rootfs, 0o755)
    for d in OWN_DIRS:
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "var/tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)
    mounts = host_mounts(rootfs, host_root)
    _copy_etc(host_root / "etc", rootfs / "etc", [*BASE_ETC, *image.etc])
    _write_identity(rootfs / "etc", hostname)
    for directory in image.dirs:
        (rootfs / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in image.copy:
        _copy_host_path(host_root / path.lstrip("/"), rootfs / path.lstrip("/"))
    if image.applets:
        _link_applets(rootfs / "opt" / image.name / "bin", image.applets, applet_names(str(host_root / image.applets.lstrip("/"))))
    mounts += [tmpfs_mount("/tmp"), tmpfs_mount("/var/tmp"), tmpfs_mount("/run", mode="755")]
    return mounts


async def prepare_rootfs_async(
    bundle_dir: Path, image: HostImage, *, hostname: str | None = None, host_root: Path = Path("/")
) -> list[Mount]:
    """:func:`prepare_rootfs` in a worker thread."""
    return await asyncio.to_thread(prepare_rootfs, bundle_dir, image, hostname=hostname, host_root=host_root)


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
