"""The kubelet's volume manager: the host side of a pod's volumes.

Design
------
Before a pod's containers start, every volume of ``spec.volumes`` gets a place on the
host, which the runtime then bind-mounts into the containers
(:func:`container_mounts` resolves each ``volumeMounts`` entry to a host path). The
layout is the kubelet's: ``<root>/pods/<uid>/volumes/<kubernetes.io~plugin>/<name>``.

What each kind reads and writes (learned from Kubernetes' ``pkg/volume``):

``emptyDir``
    a directory (mode 0777). ``medium: Memory`` is a tmpfs mounted there (``size`` from
    ``sizeLimit``, else the pod's memory limit when every container has one), unmounted
    by :meth:`VolumeManager.tear_down`.
``hostPath``
    the host's own path; nothing is written, but ``type`` is checked (``DirectoryOrCreate``
    makes a 0755 directory, ``FileOrCreate`` a 0644 file) with the kubelet's messages.
``configMap`` / ``secret`` / ``downwardAPI`` / ``projected``
    files made from API objects (ConfigMaps and Secrets of the pod's namespace, the pod
    itself, its node's allocatable resources, TokenRequests of its service account),
    with ``items`` (key, path, mode), ``defaultMode`` and ``optional``. Secrets and
    projected volumes live on a tmpfs, as the kubelet's do, so their content never
    reaches a disk.

The files of the last four are published the way ``atomic_writer.go`` does it: each
version goes into a fresh hidden directory ``..<UTC timestamp>.<random>``; a symlink
``..data_tmp`` to it is renamed over ``..data`` (a rename is atomic), and each
top-level name is a symlink ``name -> ..data/name``. A reader resolving ``..data`` sees
the old version or the new one, never half of one, and a program watching the
directory sees one event per update. :meth:`VolumeManager.refresh` re-reads the sources
(the kubelet's periodic remount) and swaps only when a file's content changed;
serviceAccountToken projections are renewed once ``token_refresh_fraction`` of their
lifetime has passed or they are 24 hours old (Kubernetes' token manager), and a failed
renewal keeps the old token until it expires.

``persistentVolumeClaim`` / ``ephemeral``
    the bound PV's own path, used in place (the runtime bind-mounts it into the
    containers): a ``hostPath`` PV's (its ``type`` checked), a ``local`` PV's (it must
    exist), or the directory a ``csi`` PV of podlife's node-local driver
    (``local-path.podlife.io``) names in ``volumeAttributes`` (it must exist: the
    provisioner made it; else the driver's ``NotFound``). Only a Bound claim is used.
    An ``ephemeral`` volume's claim is ``<pod>-<volume>``, made by the
    ephemeral-volume controller; it must be controlled by this pod (``VolumeIsForPod``:
    'PVC <ns>/<claim> was not created for pod <ns>/<pod> (pod is not owner)'). Binding
    and provisioning are the storage controllers' job. ``readOnly`` (of the pod's volume,
    or of the PV's csi source) makes every mount of it read-only.

A volume that cannot be set up yet (a missing ConfigMap or Secret that is not
``optional``, a missing key, a hostPath of the wrong type, an unbound or missing claim,
a kind not supported here) raises :class:`VolumeError`, whose ``message`` is the
``FailedMount`` event text the kubelet writes; the pod worker retries.

``spec.securityContext.fsGroup`` is applied as ``SetVolumeOwnership`` does it (group
ownership, ``g+rw`` -- ``g+r`` for the read-only kinds -- and setgid directories; a
projected token is written 0600 and so ends up 0640), when the kubelet runs as root.
On claims it follows the volume's plugin, as in Kubernetes: ``local`` PVs and CSI
volumes whose CSIDriver's ``fsGroupPolicy`` allows it (``File``; podlife's driver
declares File, and is taken to when its CSIDriver object is missing;
``ReadWriteOnceWithFSType`` needs an ``fsType`` and ``ReadWriteOnce``) get it at every
mount unless mounted read-only; ``hostPath`` PVs never do. There
``spec.securityContext.fsGroupChangePolicy`` counts: ``Always`` (the default) walks the
whole volume each time, ``OnRootMismatch`` skips the walk when the volume's root already
has the group, the setgid bit and the permissions the walk would give it.
Without root, tmpfs mounts fall back to plain directories (logged once) and ownership
is left alone.

Node expansion: when a claim set up for a pod waits for it
(:func:`podlife.node.volume_expansion.needs_node_expansion`: the PV grew past the claim's
``status.capacity``, resize status ``NodeResizePending``), it is finished right after
the mount and at each :meth:`VolumeManager.refresh` (the kubelet's in-use expansion) --
there is nothing to grow in a directory, so it is the claim's status written as after a
successful ``NodeExpandVolume`` and a Normal ``FileSystemResizeSuccessful`` event on the
pod and the claim ('MountVolume.NodeExpandVolume succeeded for volume "<pv>" <node>'); a
read-only mount gets ``FileSystemResizeFailed`` instead, once.

All blocking filesystem work runs in ``asyncio.to_thread``; one lock per pod keeps
``set_up``, ``refresh`` and ``tear_down`` of a pod from overlapping (the atomic writer
must not run twice at once on a directory). :func:`container_mounts` is synchronous by
design: it only stats and creates subPath directories.

Left out: network volume kinds and other CSI drivers (also behind a PVC), inline
``csi`` volumes, block-mode claims, the ``image`` kind, ``clusterTrustBundle`` and
``podCertificate`` projections (an error unless ``optional``), emptyDir ``HugePages``
media, ``fsGroupChangePolicy`` for emptyDir (its ownership is set once, when it is
made), SELinux relabelling and token ``fsUser``. FailedMount messages name the pod's
volume where Kubernetes names a PV-backed volume by its PV. A disk-backed
emptyDir's ``sizeLimit`` is not a mount limit: the eviction manager
(:mod:`podlife.kubelet.eviction`) evicts a pod whose emptyDir grows past it, as Kubernetes does.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import errno
import logging
import math
import os
import random
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..client.base import (
    CONFIGMAPS, CSI_DRIVERS, NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, SECRETS, Client, Obj, Resource,
)
from ..client.events import EventRecorder
from ..machinery.errors import ApiError
from ..machinery.quantity import QuantityError, int_value, milli_value, parse_quantity
from ..machinery.storage import LOCAL_PATH_DRIVER, PATH_ATTRIBUTE, ephemeral_claim_name
from ..node.claim_mounts import claim_problem, volume_problem
from ..node.volume_expansion import (
    FILE_SYSTEM_RESIZE_FAILED, FILE_SYSTEM_RESIZE_SUCCESSFUL, expansion_read_only_message, expansion_succeeded_message,
    finish_node_expansion, needs_node_expansion,
)
from .environment import EnvError, field_ref_value

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")

#: the plugin directory of each kind the manager writes under the pod's volumes directory
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
#: the kinds whose files come from API objects (read-only, refreshed, atomically written)
FILE_KINDS = ("configMap", "secret", "downwardAPI", "projected")
#: A PersistentVolume's spec fields that are not its volume source.
PV_SPEC_FIELDS = frozenset({"accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity",
                            "persistentVolumeReclaimPolicy", "storageClassName", "volumeMode",
                            "volumeAttributesClassName"})
#: the kinds the kubelet keeps on a tmpfs (it wraps them in an emptyDir of medium Memory)
MEMORY_KINDS = ("secret", "projected")
#: the kinds whose volume is a claim's PersistentVolume (mounted from the PV's own path, so no plugin directory)
CLAIM_KINDS = ("persistentVolumeClaim", "ephemeral")
#: ``spec.securityContext.fsGroupChangePolicy`` values (``Always`` is the default)
FS_GROUP_ALWAYS = "Always"
FS_GROUP_ON_ROOT_MISMATCH = "OnRootMismatch"
#: CSIDriver ``fsGroupPolicy`` values; podlife's own driver declares File
CSI_FS_GROUP_FILE = "File"
CSI_FS_GROUP_NONE = "None"
CSI_FS_GROUP_DEFAULT = "ReadWriteOnceWithFSType"
#: how often a conflicting claim status write is tried again within one pass
_EXPANSION_ATTEMPTS = 3

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"
DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
#: a token older than this is renewed whatever its lifetime (Kubernetes' token manager ``maxTTL``)
MAX_TOKEN_AGE = 24 * 3600
_MAX_FILE_NAME = 255
_MAX_PATH = 4096
_MNT_DETACH = 2


class VolumeError(Exception):
    """A volume cannot be set up yet; ``message`` is the FailedMount event's text as the kubelet
    writes it, e.g. 'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found'."""

    def __init__(self, volume: str, reason: str) -> None:
        self.volume = volume
        self.reason = reason
        self.message = f'MountVolume.SetUp failed for volume "{volume}" : {reason}'
        super().__init__(self.message)


class _Failure(Exception):
    """Why one volume failed, before the volume's name is put in front (see VolumeError)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HostVolume:
    name: str          # the pod's volume name
    path: Path         # host directory (or file, for a hostPath File) to bind-mount
    read_only: bool    # configMap/secret/downwardAPI/projected are always read-only
    kind: str          # "emptyDir", "configMap", ...


@dataclass(frozen=True)
class VolumeMount:     # one container mount, resolved
    source: Path       # host path (subPath applied)
    destination: str   # mountPath
    read_only: bool
    propagation: str | None  # mountPropagation: None/"HostToContainer"/"Bidirectional"


@dataclass(frozen=True)
class FileProjection:
    """One file of a volume's payload: its bytes and its mode."""

    data: bytes
    mode: int


Payload = dict[str, FileProjection]


def _aggregate(reasons: list[str]) -> str:
    """Several failures of one volume, worded as Go's ``utilerrors.NewAggregate`` does."""
    unique = list(dict.fromkeys(reasons))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _go_os_error(op: str, path: str | Path, exc: OSError) -> str:
    """An OSError as Go's ``*PathError`` prints it (``mkdir /x: permission denied``)."""
    text = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"{op} {path}: {text}"


# ---------------------------------------------------------------------- atomic writer


def _payload_path_problem(path: str) -> str | None:
    """Why a payload path is refused (``atomic_writer.go`` ``validatePath``), or None."""
    if not path:
        return f'invalid path: must not be empty: "{path}"'
    if path.startswith("/"):
        return f"invalid path: must be relative path: {path}"
    if len(path) > _MAX_PATH:
        return f"invalid path: must be less than or equal to {_MAX_PATH} characters"
    parts = path.split("/")
    for part in parts:
        if part == "..":
            return f"invalid path: must not contain '..': {path}"
        if len(part) > _MAX_FILE_NAME:
            return f"invalid path: filenames must be less than or equal to {_MAX_FILE_NAME} characters"
    if parts[0].startswith("..") and len(parts[0]) > 2:
        return f"invalid path: must not start with '..': {path}"
    return None


def _clean_payload(payload: Payload) -> Payload:
    clean: Payload = {}
    for path, projection in payload.items():
        if (problem := _payload_path_problem(path)) is not None:
            raise _Failure(problem)
        clean[os.path.normpath(path)] = projection
    return clean


def _all_prefixes(paths: list[str]) -> set[str]:
    """Every path of the payload and every directory above it (``a/b/c`` -> a, a/b, a/b/c)."""
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def _paths_in(directory: Path) -> set[str]:
    """Every file and directory below ``directory``, relative to it."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(directory):
        rel = os.path.relpath(dirpath, directory)
        for entry in dirnames + filenames:
            found.add(entry if rel == "." else f"{rel}/{entry}")
    return found


def _content_changed(payload: Payload, old_dir: Path) -> bool:
    """Whether any file's content differs from the published version (modes are not compared:
    fsGroup ownership changes them after the write, as in Kubernetes)."""
    for path, projection in payload.items():
        try:
            if (old_dir / path).read_bytes() != projection.data:
                return True
        except FileNotFoundError:
            return True
    return False


def _new_timestamp_dir(target: Path) -> Path:
    """``..2026_12_02_15_04_05.<random>``, mode 0755 whatever the umask (Go's ``MkdirTemp`` name)."""
    stamp = datetime.now(timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
    while True:
        candidate = target / f"{stamp}{random.getrandbits(32)}"
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(candidate, 0o755)
        return candidate


def _write_payload(payload: Payload, directory: Path) -> None:
    for path, projection in payload.items():
        full = directory / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(projection.data)
        os.chmod(full, projection.mode)  # the umask must not change the mode asked for


def _publish(target: Path, ts_dir: Path) -> None:
    """Point ``..data`` at ``ts_dir`` in one rename."""
    tmp_link = target / DATA_DIR_TMP
    try:
        tmp_link.unlink()
    except FileNotFoundError:
        pass
    os.symlink(ts_dir.name, tmp_link)
    os.replace(tmp_link, target / DATA_DIR)


def _create_user_visible_links(target: Path, payload: Payload) -> None:
    """``name -> ..data/name`` for each top-level name of the payload that has no link yet."""
    for top in {path.split("/")[0] for path in payload}:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"{DATA_DIR}/{top}", link)


def _remove_user_visible_links(target: Path, stale: set[str]) -> None:
    for path in stale:
        if "/" not in path:
            try:
                (target / path).unlink()
            except FileNotFoundError:
                pass


def atomic_write(target: Path, payload: Payload, *, before_publish: Callable[[Path], None] | None = None) -> bool:
    """Project ``payload`` into ``target`` as Kubernetes' AtomicWriter does; True if a new version was published.

    ``before_publish`` runs on the new timestamped directory before ``..data`` points at
    it (ownership changes), so readers never see a version without them.
    """
    clean = _clean_payload(payload)
    old_name = os.readlink(target / DATA_DIR) if (target / DATA_DIR).is_symlink() else ""
    old_dir = target / old_name if old_name else None
    stale: set[str] = set()
    if old_dir is not None:
        stale = _paths_in(old_dir) - _all_prefixes(list(clean)) if old_dir.is_dir() else set()
        if not stale and old_dir.is_dir() and not _content_changed(clean, old_dir):
            _create_user_visible_links(target, clean)  # up to date; the links may still be missing
            return False
    ts_dir = _new_timestamp_dir(target)
    try:
        _write_payload(clean, ts_dir)
        if before_publish is not None:
            before_publish(ts_dir)
        _publish(target, ts_dir)
    except BaseException:
        shutil.rmtree(ts_dir, ignore_errors=True)
        raise
    _create_user_visible_links(target, clean)
    _remove_user_visible_links(target, stale)
    if old_dir is not None and old_dir.name != ts_dir.name:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


# ---------------------------------------------------------------------- mounts and ownership


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def mount_tmpfs(path: Path, size: int | None) -> None:
    """``mount -t tmpfs [-o size=<bytes>] tmpfs <path>`` through mount(2)."""
    options = f"size={size}".encode() if size else None
    if _libc().mount(b"tmpfs", os.fsencode(path), b"tmpfs", 0, options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def unmount(path: Path) -> None:
    """umount(2) ``path``; lazily when it is busy; nothing when it is not mounted (any more)."""
    libc = _libc()
    for flags in (0, _MNT_DETACH):
        if libc.umount2(os.fsencode(path), flags) == 0:
            return
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOENT):
            return
        if code != errno.EBUSY:
            raise OSError(code, os.strerror(code), str(path))
    raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))


def _unescape_mount_path(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\040``-style octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mounts_under(root: Path) -> list[Path]:
    """The mount points at or below ``root`` (deepest first; a point mounted twice is listed twice)."""
    base = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as mountinfo:
        for line in mountinfo:
            point = _unescape_mount_path(line.split()[4])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


_RW_MASK, _RO_MASK, _EXEC_MASK = 0o660, 0o440, 0o110


def apply_fs_group(root: Path, gid: int, *, read_only: bool) -> None:
    """``SetVolumeOwnership``: group ``gid``, ``g+r`` (read-only kinds) or ``g+rw``, directories setgid and ``g+x``.

    Symlinks are re-owned but not chmod-ed: chmod would reach their targets.
    """
    mask = _RO_MASK if read_only else _RW_MASK
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, name) for name in dirnames + filenames]:
            info = os.lstat(path)
            os.lchown(path, -1, gid)
            if stat.S_ISLNK(info.st_mode):
                continue
            extra = mask | stat.S_ISGID | 0o110 if stat.S_ISDIR(info.st_mode) else mask
            os.chmod(path, stat.S_IMODE(info.st_mode) | extra)


def root_needs_fs_group(root: Path, gid: int, *, read_only: bool) -> bool:
    """``requiresPermissionChange``: the volume's root is not (or not yet) what :func:`apply_fs_group`
    makes it -- group ``gid``, a directory, setgid, and at least ``rw``/``r`` plus ``x`` for user and group."""
    try:
        info = os.stat(root)
    except OSError:
        return True
    if info.st_gid != gid or not stat.S_ISDIR(info.st_mode):
        return True
    wanted = (_RO_MASK if read_only else _RW_MASK) | _EXEC_MASK
    return stat.S_IMODE(info.st_mode) & wanted != wanted or not info.st_mode & stat.S_ISGID


def set_volume_ownership(root: Path, gid: int, policy: str, *, read_only: bool) -> bool:
    """``SetVolumeOwnership`` with ``fsGroupChangePolicy``: ``OnRootMismatch`` leaves a volume whose
    root already looks right alone (no walk of a big volume at every mount); ``Always`` (or unset)
    walks it every time. True when the walk ran."""
    if policy == FS_GROUP_ON_ROOT_MISMATCH and not root_needs_fs_group(root, gid, read_only=read_only):
        log.debug("skipping permission and ownership change for volume %s", root)
        return False
    apply_fs_group(root, gid, read_only=read_only)
    return True


def csi_applies_fs_group(policy: str, pv: Obj) -> bool:
    """Whether the kubelet gives a CSI volume the pod's fsGroup (``csiMountMgr.supportsFSGroup``, the
    volume not read-only): ``File`` always, ``None`` never, ``ReadWriteOnceWithFSType`` (the default)
    when the PV names an ``fsType`` and offers ``ReadWriteOnce``."""
    if policy == CSI_FS_GROUP_FILE:
        return True
    if policy == CSI_FS_GROUP_NONE:
        return False
    spec = pv.get("spec") or {}
    modes = spec.get("accessModes") or []
    return bool((spec.get("csi") or {}).get("fsType")) and ("ReadWriteOnce" in modes or "ReadWriteOncePod" in modes)


# ---------------------------------------------------------------------- hostPath

_HOST_PATH_KINDS = {  # type -> (file type it must be, how the kubelet names it)
    "Directory": ("Directory", "directory"),
    "File": ("File", "file"),
    "Socket": ("Socket", "socket file"),
    "CharDevice": ("CharDevice", "character device"),
    "BlockDevice": ("BlockDevice", "block device"),
}


def _file_type(path: str) -> str:
    """hostutil ``GetFileType``: what ``path`` is, following symlinks."""
    mode = os.stat(path).st_mode
    for test, name in ((stat.S_ISDIR, "Directory"), (stat.S_ISREG, "File"), (stat.S_ISSOCK, "Socket"),
                       (stat.S_ISCHR, "CharDevice"), (stat.S_ISBLK, "BlockDevice")):
        if test(mode):
            return name
    raise _Failure("only recognise file, directory, socket, block device and character device")


def _type_matches(path: str, expected: str) -> None:
    want, description = _HOST_PATH_KINDS[expected]
    if not os.path.exists(path):
        raise _Failure(f"hostPath {path} doesn't exist")
    try:
        actual = _file_type(path)
    except (_Failure, OSError) as exc:
        raise _Failure(f"hostPath type check failed, {path} is not a {description}, unable to determine its type: "
                       f"{exc}") from None
    if actual != want:
        raise _Failure(f"hostPath type check failed: {path} is not a {description}, it's a {actual}")


def _create_host_path(path: str, kind: str) -> None:
    """``DirectoryOrCreate`` (0755, with parents) or ``FileOrCreate`` (0644, parent must exist)."""
    try:
        if kind == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o644))
    except OSError as exc:
        raise _Failure(_go_os_error("mkdir" if kind == "DirectoryOrCreate" else "open", path, exc)) from None


def check_host_path(path: str, kind: str) -> None:
    """The hostPath ``SetUp``: no ``..`` in the path, then the ``type`` check (creating what ``*OrCreate`` asks)."""
    if ".." in path.split("/"):
        raise _Failure(f"invalid HostPath `{path}`: must not contain '..'")
    if not kind:
        return
    if kind in ("DirectoryOrCreate", "FileOrCreate"):
        if not os.path.exists(path):
            _create_host_path(path, kind)
            return
        kind = kind.removesuffix("OrCreate")
    if kind not in _HOST_PATH_KINDS:
        raise _Failure(f"{kind} is an invalid volume type")
    _type_matches(path, kind)


# ---------------------------------------------------------------------- payloads


def _mode(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def key_values(res: Resource, obj: Obj | None) -> dict[str, bytes]:
    """A ConfigMap's ``binaryData`` and ``data`` (``data`` first when both name a key), or a Secret's decoded ``data``."""
    if obj is None:
        return {}
    if res is SECRETS:
        return {k: base64.b64decode(v or "") for k, v in (obj.get("data") or {}).items()}
    values = {k: base64.b64decode(v or "") for k, v in (obj.get("binaryData") or {}).items()}
    values.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
    return values


def _missing_key(res: Resource, key: str) -> str:
    if res is SECRETS:
        return f"references non-existent secret key: {key}"
    return f"configmap references non-existent config key: {key}"


def key_payload(res: Resource, values: dict[str, bytes], items: list[Obj], default_mode: int,
                optional: bool) -> Payload:
    """``MakePayload`` of the configMap and secret plugins: every key, or the ``items`` asked for."""
    if not items:
        return {key: FileProjection(data, default_mode) for key, data in values.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in values:
            if optional:
                continue
            raise _Failure(_missing_key(res, key))
        payload[str(item.get("path") or key)] = FileProjection(values[key], _mode(item.get("mode"), default_mode))
    return payload


def _find_container(pod: Obj, name: str) -> Obj:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == name:
            return container
    raise _Failure(f"container {name} not found")


_LIMIT_DEFAULTS = ("cpu", "memory", "ephemeral-storage")  # what node allocatable stands in for (not hugepages)


def _quantity(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise _Failure(str(exc)) from None


def resource_field_value(pod: Obj, ref: Obj, allocatable: dict[str, Any]) -> str:
    """``resourceFieldRef`` as the kubelet computes it: unset (or zero) limits are the node's
    allocatable; CPU ``ceil(milli/milli(divisor))``, others ``ceil(value/divisor)``."""
    container = _find_container(pod, str(ref.get("containerName") or ""))
    resource = str(ref.get("resource") or "")
    section, _, name = resource.partition(".")
    if section not in ("limits", "requests") or not (name in _LIMIT_DEFAULTS or name.startswith("hugepages-")):
        raise _Failure(f"unsupported container resource : {resource}")
    values = dict(((container.get("resources") or {}).get(section)) or {})
    if section == "limits" and name in _LIMIT_DEFAULTS and not _quantity(values.get(name, 0)):
        if name in allocatable:
            values[name] = allocatable[name]
    divisor = ref.get("divisor")
    if divisor is None or _quantity(divisor) == 0:
        divisor = "1"
    amount = values.get(name, 0)
    if name == "cpu":
        return str(math.ceil(Fraction(milli_value(amount), milli_value(divisor))))
    return str(math.ceil(Fraction(int_value(amount), int_value(divisor))))


def _needs_allocatable(pod: Obj, items: list[Obj]) -> bool:
    """Whether a ``limits.*`` resourceFieldRef may have to fall back to the node's allocatable."""
    return any(str((item.get("resourceFieldRef") or {}).get("resource") or "").startswith("limits.") for item in items)


def _pod_ips(pod: Obj) -> tuple[str, ...]:
    status = pod.get("status") or {}
    ips = tuple(str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip"))
    return ips or ((str(status["podIP"]),) if status.get("podIP") else ())


def downward_payload(pod: Obj, items: list[Obj], default_mode: int, allocatable: dict[str, Any]) -> Payload:
    """The downwardAPI files: ``fieldRef`` values (shared with the environment) and ``resourceFieldRef`` values."""
    payload: Payload = {}
    problems: list[str] = []
    host_ip = str((pod.get("status") or {}).get("hostIP") or "")
    for item in items:
        try:
            if ref := item.get("fieldRef"):
                value = field_ref_value(pod, str(ref.get("fieldPath") or ""), host_ip=host_ip, pod_ips=_pod_ips(pod))
            elif ref := item.get("resourceFieldRef"):
                value = resource_field_value(pod, ref, allocatable)
            else:
                continue
        except EnvError as exc:
            problems.append(str(exc))
            continue
        except _Failure as exc:
            problems.append(exc.reason)
            continue
        payload[str(item.get("path") or "")] = FileProjection(value.encode(), _mode(item.get("mode"), default_mode))
    if problems:
        raise _Failure(_aggregate(problems))
    return payload


# ---------------------------------------------------------------------- reading the API


class _Sources:
    """The API reads of one pass (a set_up or a refresh): each object is read at most once."""

    def __init__(self, client: Client, namespace: str, node_name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.node_name = node_name
        self._objects: dict[tuple[str, str], Obj | None] = {}
        self._allocatable: dict[str, Any] | None = None

    async def read(self, res: Resource, name: str, optional: bool, *, namespaced: bool = True) -> Obj | None:
        """The object, or None when it is missing and ``optional``; a missing one that is not is a failure."""
        key = (res.plural, name)
        if key not in self._objects:
            try:
                self._objects[key] = await self.client.get(res, name, self.namespace if namespaced else None)
            except ApiError as exc:
                if exc.code != 404:
                    raise _Failure(exc.message) from None
                self._objects[key] = None
        obj = self._objects[key]
        if obj is None and not optional:
            raise _Failure(f'{res.kind.lower()} "{name}" not found')
        return obj

    async def allocatable(self) -> dict[str, Any]:
        """The node's ``status.allocatable`` (empty when the Node cannot be read)."""
        if self._allocatable is None:
            try:
                node = await self.client.get(NODES, self.node_name)
                self._allocatable = dict((node.get("status") or {}).get("allocatable") or {})
            except (ApiError, OSError) as exc:
                log.debug("node %s: allocatable unknown (%s); unset limits count as 0", self.node_name, exc)
                self._allocatable = {}
        return self._allocatable


@dataclass
class _Token:
    """A TokenRequest's answer, kept to renew it in time."""

    token: str
    expires: float
    lifetime: int

    @property
    def issued(self) -> float:
        return self.expires - self.lifetime


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fs_group(pod: Obj) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fs_group_change_policy(pod: Obj) -> str:
    return str(((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroupChangePolicy") or FS_GROUP_ALWAYS)


@dataclass(frozen=True)
class _MountedClaim:
    """A claim volume set up for a pod: what :meth:`VolumeManager.refresh` looks at for node expansion."""

    claim_name: str
    read_only: bool


def volume_kind(volume: Obj) -> str:
    """The source a volume names (``emptyDir`` when it names none, as defaulting makes it)."""
    for key, value in volume.items():
        if key != "name" and isinstance(value, dict):
            return key
    return "emptyDir"


def _memory_limit(pod: Obj) -> int | None:
    """The pod's memory limit, when every container has one (the biggest init container's
    counts if it is bigger than the sum), as the pod cgroup gets it."""
    spec = pod.get("spec") or {}

    def limit(container: Obj) -> int | None:
        value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        return int_value(value) if value is not None else None

    regular = [limit(c) for c in spec.get("containers") or []]
    init = [limit(c) for c in spec.get("initContainers") or []]
    if not regular or any(v is None for v in regular + init):
        return None
    return max([sum(v for v in regular if v is not None)] + [v for v in init if v is not None])


class VolumeManager:
    """The host side of the pods' volumes on one node (see the module docstring)."""

    def __init__(self, client: Client, root_dir: Path, *, node_name: str,
                 token_refresh_fraction: float = 0.8, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.root_dir = Path(root_dir)
        self.node_name = node_name
        self.token_refresh_fraction = token_refresh_fraction
        #: the kubelet's events about volumes (node expansion); its own recorder unless given one
        self.recorder = recorder or EventRecorder(client, "kubelet", node_name)
        self._tokens: dict[tuple[str, ...], _Token] = {}
        #: pod uid -> the claim volumes set up for it (pod volume name -> claim), for node expansion
        self._claims: dict[str, dict[str, _MountedClaim]] = {}
        #: (pod uid, PV name) of read-only volumes already told they cannot be expanded
        self._said_read_only: set[tuple[str, str]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._said_unprivileged = False

    # ------------------------------------------------------------------ paths and privileges

    def pod_volumes_dir(self, pod_uid: str) -> Path:
        return self.root_dir / "pods" / pod_uid / "volumes"

    def volume_dir(self, pod_uid: str, kind: str, name: str) -> Path:
        return self.pod_volumes_dir(pod_uid) / PLUGIN_DIRS[kind] / name

    def _privileged(self, what: str) -> bool:
        """Whether mounts and chown are possible (root); says once when they are not."""
        if os.geteuid() == 0:
            return True
        if not self._said_unprivileged:
            self._said_unprivileged = True
            log.warning("not running as root: memory-backed volumes (the first: %s) are plain directories "
                        "and fsGroup ownership is not applied", what)
        return False

    def _lock(self, pod_uid: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_uid, asyncio.Lock())

    # ------------------------------------------------------------------ the interface

    async def set_up(self, pod: Obj) -> dict[str, HostVolume]:
        """Materialize every volume of the pod under
        root_dir/pods/<uid>/volumes/<kubernetes.io~plugin>/<name> (the kubelet's layout);
        raises VolumeError for the first volume that can't be set up yet. Idempotent:
        a second call for the same pod reuses/updates what exists."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        sources = _Sources(self.client, str(meta.get("namespace") or "default"), self.node_name)
        volumes: dict[str, HostVolume] = {}
        async with self._lock(uid):
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                name = str(volume.get("name") or "")
                try:
                    volumes[name] = await self._set_up_volume(pod, volume, sources)
                except _Failure as exc:
                    raise VolumeError(name, exc.reason) from None
                except OSError as exc:
                    raise VolumeError(name, str(exc)) from None
        return volumes

    async def refresh(self, pod: Obj) -> bool:
        """Re-read configMap/secret/downwardAPI/projected sources and update the files in place
        atomically; renew projected serviceAccountTokens that are due. True if anything changed.
        Claims set up for the pod are looked at again: one that needs node expansion gets it
        (the kubelet's in-use expansion; it changes no file, so it is not "changed").

        Volumes not set up yet are skipped. A volume whose source fails now keeps its files
        (as the kubelet's remount does); the others are still refreshed, then the first
        failure is raised as a VolumeError.
        """
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        sources = _Sources(self.client, str(meta.get("namespace") or "default"), self.node_name)
        changed = False
        first_failure: VolumeError | None = None
        async with self._lock(uid):
            for name, mounted in list(self._claims.get(uid, {}).items()):
                await self._refresh_claim(pod, name, mounted, sources)
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                kind, name = volume_kind(volume), str(volume.get("name") or "")
                path = self.volume_dir(uid, kind, name) if kind in FILE_KINDS else None
                if path is None or not await asyncio.to_thread((path / DATA_DIR).is_symlink):
                    continue
                try:
                    payload = await self._payload(pod, volume, kind, sources)
                    changed |= await asyncio.to_thread(self._write_files, path, payload, _fs_group(pod))
                except (_Failure, OSError) as exc:
                    reason = exc.reason if isinstance(exc, _Failure) else str(exc)
                    first_failure = first_failure or VolumeError(name, reason)
        if first_failure is not None:
            raise first_failure
        return changed

    def pods_with_volumes(self) -> list[str]:
        """The uids of the pods whose volumes are (still) set up under the root dir."""
        pods = self.root_dir / "pods"
        return sorted(d.name for d in pods.iterdir() if (d / "volumes").is_dir()) if pods.is_dir() else []

    async def tear_down(self, pod_uid: str) -> None:
        """Unmount what set_up mounted (tmpfs for emptyDir medium Memory, secrets, projected
        volumes), remove the pod's volume dirs. Never fails on what is already gone."""
        async with self._lock(pod_uid):
            await asyncio.to_thread(self._remove_volumes, self.pod_volumes_dir(pod_uid))
            for key in [k for k in self._tokens if k[0] == pod_uid]:
                del self._tokens[key]
            self._claims.pop(pod_uid, None)
            self._said_read_only = {k for k in self._said_read_only if k[0] != pod_uid}
        self._locks.pop(pod_uid, None)

    # ------------------------------------------------------------------ one volume

    async def _set_up_volume(self, pod: Obj, volume: Obj, sources: _Sources) -> HostVolume:
        kind, name = volume_kind(volume), str(volume.get("name") or "")
        source = volume.get(kind) or {}
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if kind == "hostPath":
            path = str(source.get("path") or "")
            await asyncio.to_thread(check_host_path, path, str(source.get("type") or ""))
            return HostVolume(name, Path(path), False, kind)
        if kind == "emptyDir":
            target = self.volume_dir(uid, kind, name)
            await asyncio.to_thread(self._prepare_empty_dir, target, source, pod)
            return HostVolume(name, target, False, kind)
        if kind in FILE_KINDS:
            payload = await self._payload(pod, volume, kind, sources)  # first: a missing source creates nothing
            target = self.volume_dir(uid, kind, name)
            await asyncio.to_thread(self._materialize_files, target, payload, kind, _fs_group(pod))
            return HostVolume(name, target, True, kind)
        if kind == "persistentVolumeClaim":
            return await self._claimed_volume(pod, name, kind, str(source.get("claimName") or ""),
                                              bool(source.get("readOnly")), sources)
        if kind == "ephemeral":
            pod_name = str((pod.get("metadata") or {}).get("name") or "")
            return await self._claimed_volume(pod, name, kind, ephemeral_claim_name(pod_name, name), False, sources)
        raise _Failure(f"{kind} volumes are not supported yet")

    async def _claimed_volume(self, pod: Obj, name: str, kind: str, claim_name: str, read_only: bool,
                              sources: _Sources) -> HostVolume:
        """A claim's bound PV, mounted from its own path: ``hostPath``, ``local`` or a ``csi`` volume
        of :data:`~podlife.machinery.storage.LOCAL_PATH_DRIVER` (the directory its
        ``volumeAttributes`` name).

        As the kubelet's volume manager, only a Bound claim is used (a Pending one keeps the
        pod in ContainerCreating, retried); an ``ephemeral`` volume's claim must also be
        controlled by this pod (``VolumeIsForPod``). ``readOnly`` of the pod's volume (or of
        the PV's csi source) makes every mount of it read-only. Then the pod's fsGroup, as
        the volume's plugin applies it, and a node expansion the claim waits for.
        """
        claim = await sources.read(PERSISTENT_VOLUME_CLAIMS, claim_name, False)
        assert claim is not None
        if (problem := claim_problem(pod, kind == "ephemeral", claim, claim_name)) is not None:
            raise _Failure(problem)
        pv = await sources.read(PERSISTENT_VOLUMES, str(claim["spec"]["volumeName"]), False, namespaced=False)
        assert pv is not None
        if (problem := volume_problem(claim, pv)) is not None:
            raise _Failure(problem)
        spec = pv.get("spec") or {}
        path, owned = await self._pv_path(pv, sources)
        read_only = read_only or bool((spec.get("csi") or {}).get("readOnly"))
        gid = _fs_group(pod)
        if owned and gid is not None and not read_only and self._privileged(path):
            await asyncio.to_thread(set_volume_ownership, Path(path), gid, _fs_group_change_policy(pod), read_only=False)
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        self._claims.setdefault(uid, {})[name] = _MountedClaim(claim_name, read_only)
        await self._expand(pod, claim, pv, read_only)
        return HostVolume(name, Path(path), read_only, kind)

    async def _pv_path(self, pv: Obj, sources: _Sources) -> tuple[str, bool]:
        """The host path of a PV and whether its plugin applies the pod's fsGroup to it (``local``
        and CSI do, by the driver's ``fsGroupPolicy``; ``hostPath`` never does)."""
        spec = pv.get("spec") or {}
        volume_name = str((pv.get("metadata") or {}).get("name") or "")
        if (host_path := spec.get("hostPath")) is not None:
            path = str(host_path.get("path") or "")
            await asyncio.to_thread(check_host_path, path, str(host_path.get("type") or ""))
            return path, False
        if (local := spec.get("local")) is not None:
            path = str(local.get("path") or "")
            if not await asyncio.to_thread(os.path.exists, path):
                raise _Failure(f"path {path} does not exist")
            return path, True
        if (csi := spec.get("csi")) is not None and csi.get("driver") == LOCAL_PATH_DRIVER:
            return await self._local_path_volume(csi, sources), csi_applies_fs_group(
                await self._csi_fs_group_policy(LOCAL_PATH_DRIVER, sources), pv)
        if csi is not None:
            raise _Failure(f"persistentVolume {volume_name}: CSI driver {csi.get('driver')} is not supported yet")
        kinds = sorted(k for k in spec if k not in PV_SPEC_FIELDS)
        raise _Failure(f"persistentVolume {volume_name}: {', '.join(kinds) or 'its'} volumes are not supported yet")

    @staticmethod
    async def _local_path_volume(csi: Obj, sources: _Sources) -> str:
        """``NodePublishVolume`` of podlife's node-local driver: the directory must be there (the
        provisioner made it); the driver's refusal reads as a CSI driver's gRPC status."""
        handle = str(csi.get("volumeHandle") or "")
        path = str((csi.get("volumeAttributes") or {}).get(PATH_ATTRIBUTE) or "")
        if not path:
            raise _Failure(f"rpc error: code = InvalidArgument desc = volume {handle}: "
                           f"volume attribute {PATH_ATTRIBUTE} is missing")
        if not await asyncio.to_thread(os.path.isdir, path):
            raise _Failure(f"rpc error: code = NotFound desc = volume {handle}: directory {path} does not exist")
        return path

    @staticmethod
    async def _csi_fs_group_policy(driver: str, sources: _Sources) -> str:
        """The CSIDriver's ``spec.fsGroupPolicy``; without a CSIDriver object, what podlife's own
        driver declares (File) for it and Kubernetes' default for any other."""
        found = await sources.read(CSI_DRIVERS, driver, True, namespaced=False)
        if found is None:
            return CSI_FS_GROUP_FILE if driver == LOCAL_PATH_DRIVER else CSI_FS_GROUP_DEFAULT
        return str((found.get("spec") or {}).get("fsGroupPolicy") or CSI_FS_GROUP_DEFAULT)

    # ------------------------------------------------------------------ node expansion

    async def _refresh_claim(self, pod: Obj, name: str, mounted: _MountedClaim, sources: _Sources) -> None:
        """A mounted claim read again: finish a node expansion it waits for (failures are logged;
        the next refresh tries again)."""
        try:
            claim = await sources.read(PERSISTENT_VOLUME_CLAIMS, mounted.claim_name, True)
            volume_name = str(((claim or {}).get("spec") or {}).get("volumeName") or "")
            pv = await sources.read(PERSISTENT_VOLUMES, volume_name, True, namespaced=False) if volume_name else None
            if claim is not None and pv is not None:
                await self._expand(pod, claim, pv, mounted.read_only)
        except _Failure as exc:
            log.debug("volume %s of pod %s: claim %s not looked at: %s", name,
                      (pod.get("metadata") or {}).get("name"), mounted.claim_name, exc.reason)

    async def _expand(self, pod: Obj, claim: Obj, pv: Obj, read_only: bool) -> None:
        """The kubelet's node expansion of a mounted claim, when :func:`needs_node_expansion` says
        so: nothing to grow in a directory, so the claim's status is written as after a successful
        ``NodeExpandVolume`` and ``FileSystemResizeSuccessful`` recorded on the pod and the claim. A
        read-only mount is not expanded (a ``FileSystemResizeFailed`` Warning, once per pod). A
        conflicting write is tried again on the claim read anew; other failures are logged and
        left to the next refresh (the volume stays mounted)."""
        pv_name = str((pv.get("metadata") or {}).get("name") or "")
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        for _ in range(_EXPANSION_ATTEMPTS):
            if not needs_node_expansion(claim, pv):
                return
            if read_only:
                if (uid, pv_name) not in self._said_read_only:
                    self._said_read_only.add((uid, pv_name))
                    self._record_both(pod, claim, "Warning", FILE_SYSTEM_RESIZE_FAILED,
                                      expansion_read_only_message(pv_name))
                return
            meta = claim.get("metadata") or {}
            try:
                if await finish_node_expansion(self.client, claim, pv):
                    self._record_both(pod, claim, "Normal", FILE_SYSTEM_RESIZE_SUCCESSFUL,
                                      expansion_succeeded_message(pv_name, self.node_name))
                    return
                claim = await self.client.get(PERSISTENT_VOLUME_CLAIMS, str(meta.get("name") or ""),
                                              str(meta.get("namespace") or "default"))
            except (ApiError, OSError) as exc:
                log.warning("node expansion of volume %s for claim %s/%s failed: %s", pv_name,
                            meta.get("namespace"), meta.get("name"), exc)
                return

    def _record_both(self, pod: Obj, claim: Obj, type_: str, reason: str, message: str) -> None:
        """An event on the pod and on the claim, as the kubelet's node expander records them."""
        for kind, obj in (("Pod", pod), ("PersistentVolumeClaim", claim)):
            self.recorder.event({"kind": kind, "apiVersion": "v1", "metadata": obj.get("metadata") or {}},
                                type_, reason, message)

    def _prepare_empty_dir(self, target: Path, source: Obj, pod: Obj) -> None:
        medium = str(source.get("medium") or "")
        if medium.startswith("HugePages"):
            raise _Failure(f"emptyDir medium {medium} is not supported yet")
        fresh = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        if fresh:
            os.chmod(target, 0o777)
        if medium == "Memory":
            limit = source.get("sizeLimit")
            size = int_value(limit) if limit is not None and _quantity(limit) > 0 else _memory_limit(pod)
            self._ensure_tmpfs(target, size)
        gid = _fs_group(pod)
        if fresh and gid is not None and self._privileged(str(target)):
            apply_fs_group(target, gid, read_only=False)

    def _ensure_tmpfs(self, target: Path, size: int | None) -> None:
        if os.path.ismount(target) or not self._privileged(str(target)):
            return
        mount_tmpfs(target, size)

    def _materialize_files(self, target: Path, payload: Payload, kind: str, fs_group: int | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if kind in MEMORY_KINDS:
            self._ensure_tmpfs(target, None)
        self._write_files(target, payload, fs_group)

    def _write_files(self, target: Path, payload: Payload, fs_group: int | None) -> bool:
        return atomic_write(target, payload, before_publish=self._ownership(target, fs_group))

    def _ownership(self, target: Path, fs_group: int | None) -> Callable[[Path], None] | None:
        """What gives a new version of a read-only volume the pod's fsGroup (None: nothing to do)."""
        if fs_group is None or not self._privileged(str(target)):
            return None
        gid = fs_group

        def own(ts_dir: Path) -> None:
            apply_fs_group(ts_dir, gid, read_only=True)
            os.lchown(target, -1, gid)

        return own

    @staticmethod
    def _remove_volumes(volumes_dir: Path) -> None:
        for point in mounts_under(volumes_dir):
            unmount(point)
        if left := mounts_under(volumes_dir):  # never delete through a mount point
            raise OSError(errno.EBUSY, f"still mounted: {', '.join(map(str, left))}")
        shutil.rmtree(volumes_dir, ignore_errors=True)
        if volumes_dir.exists():
            shutil.rmtree(volumes_dir)  # say why it could not be removed
        try:
            volumes_dir.parent.rmdir()  # the pod's directory, if nothing else lives there
        except OSError:
            pass

    # ------------------------------------------------------------------ payloads from the API

    async def _payload(self, pod: Obj, volume: Obj, kind: str, sources: _Sources) -> Payload:
        source = volume.get(kind) or {}
        default_mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
        optional = bool(source.get("optional"))
        if kind == "configMap":
            obj = await sources.read(CONFIGMAPS, str(source.get("name") or ""), optional)
            return key_payload(CONFIGMAPS, key_values(CONFIGMAPS, obj), source.get("items") or [], default_mode, optional)
        if kind == "secret":
            obj = await sources.read(SECRETS, str(source.get("secretName") or ""), optional)
            return key_payload(SECRETS, key_values(SECRETS, obj), source.get("items") or [], default_mode, optional)
        if kind == "downwardAPI":
            return await self._downward(pod, source.get("items") or [], default_mode, sources)
        return await self._projected(pod, source, default_mode, sources)

    async def _downward(self, pod: Obj, items: list[Obj], default_mode: int, sources: _Sources) -> Payload:
        allocatable = await sources.allocatable() if _needs_allocatable(pod, items) else {}
        return downward_payload(pod, items, default_mode, allocatable)

    async def _projected(self, pod: Obj, source: Obj, default_mode: int, sources: _Sources) -> Payload:
        """Every projection into one payload; failures of several sources are reported together."""
        payload: Payload = {}
        problems: list[str] = []
        for projection in source.get("sources") or []:
            try:
                payload.update(await self._projection(pod, projection, default_mode, sources))
            except _Failure as exc:
                problems.append(exc.reason)
        if problems:
            raise _Failure(_aggregate(problems))
        return payload

    async def _projection(self, pod: Obj, projection: Obj, default_mode: int, sources: _Sources) -> Payload:
        for res, key in ((CONFIGMAPS, "configMap"), (SECRETS, "secret")):
            if (ref := projection.get(key)) is not None:
                optional = bool(ref.get("optional"))
                obj = await sources.read(res, str(ref.get("name") or ""), optional)
                return key_payload(res, key_values(res, obj), ref.get("items") or [], default_mode, optional)
        if (ref := projection.get("downwardAPI")) is not None:
            return await self._downward(pod, ref.get("items") or [], default_mode, sources)
        if (ref := projection.get("serviceAccountToken")) is not None:
            mode = 0o600 if _fs_group(pod) is not None else default_mode  # fsGroup ownership then adds g+r
            return {str(ref.get("path") or "token"): FileProjection((await self._token(pod, ref)).encode(), mode)}
        for kind, ref in projection.items():
            if isinstance(ref, dict) and not ref.get("optional"):
                raise _Failure(f"{kind} projections are not supported yet")
        return {}

    # ------------------------------------------------------------------ service account tokens

    def _token_due(self, token: _Token, now: float) -> bool:
        return now >= token.issued + MAX_TOKEN_AGE or now >= token.issued + token.lifetime * self.token_refresh_fraction

    async def _token(self, pod: Obj, ref: Obj) -> str:
        """The projected token: the cached one until it is due, then a new TokenRequest bound to the pod."""
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        namespace, account = str(meta.get("namespace") or "default"), str(spec.get("serviceAccountName") or "default")
        audience = str(ref.get("audience") or "")
        seconds = _mode(ref.get("expirationSeconds"), DEFAULT_TOKEN_SECONDS)
        key = (str(meta.get("uid") or ""), namespace, account, audience, str(seconds))
        cached, now = self._tokens.get(key), time.time()
        if cached is not None and not self._token_due(cached, now):
            return cached.token
        body = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [audience] if audience else [], "expirationSeconds": seconds,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""),
                                        "uid": meta.get("uid", "")}},
        }
        try:
            answer = await self.client.create_subresource(SERVICE_ACCOUNTS, account, "token", body, namespace)
        except (ApiError, OSError) as exc:
            return self._keep_token(cached, now, f'"{account}"/"{namespace}"/{audience or "[]"}/{seconds}', exc)
        status = answer.get("status") or {}
        lifetime = _mode((answer.get("spec") or {}).get("expirationSeconds"), seconds)
        expires = _parse_time(str(status.get("expirationTimestamp"))) if status.get("expirationTimestamp") else now + lifetime
        self._tokens[key] = _Token(str(status.get("token") or ""), expires, lifetime)
        return self._tokens[key].token

    @staticmethod
    def _keep_token(cached: _Token | None, now: float, key: str, exc: Exception) -> str:
        """A failed renewal: the old token while it lasts (the token manager's rule), else a failure."""
        if cached is None:
            raise _Failure(f"failed to fetch token: {exc}")
        if now >= cached.expires:
            raise _Failure(f"token {key} expired and refresh failed: {exc}")
        log.warning("couldn't update token %s: %s", key, exc)
        return cached.token


# ---------------------------------------------------------------------- container mounts

_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand_sub_path_expr(expr: str, env: dict[str, str]) -> str:
    """``subPathExpr`` expanded with the container's environment; a missing or empty variable is an error."""
    missing: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = env.get(match.group(1), "")
        if not value:
            missing.add(match.group(1))
        return value

    expanded = _REFERENCE.sub(substitute, expr)
    if missing:
        raise ValueError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _make_sub_path_dirs(base: Path, sub_path: str, mode: int, what: str) -> None:
    """Create the missing directories of ``sub_path`` in the volume (with the volume's mode),
    never following a symlink out of it."""
    real_base = os.path.realpath(base)
    current = base
    for part in [p for p in sub_path.split("/") if p and p != "."]:
        current = current / part
        if os.path.lexists(current):
            if not _within(os.path.realpath(current), real_base):
                raise ValueError(f"subpath {str(current)!r} not within volume path {real_base!r}")
            continue
        try:
            current.mkdir()
            os.chmod(current, mode)
        except OSError:
            log.warning("cannot create subPath directory %s", current, exc_info=True)
            raise ValueError(f"failed to create subPath directory for {what}") from None


def resolve_sub_path(volume_path: Path, sub_path: str, mount_name: str, container_name: str) -> Path:
    """The host path of ``volume_path/sub_path``, as the kubelet's ``makeMounts`` prepares it:
    no absolute path, no ``..``, created as a directory if missing, resolved, and inside the volume."""
    if sub_path.startswith("/"):
        raise ValueError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise ValueError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")
    target = volume_path / sub_path
    if not os.path.exists(target):
        mode = stat.S_IMODE(os.stat(volume_path).st_mode)
        _make_sub_path_dirs(volume_path, sub_path, mode,
                            f'volumeMount "{mount_name}" of container "{container_name}"')
    real, real_base = os.path.realpath(target), os.path.realpath(volume_path)
    if not _within(real, real_base):
        raise ValueError(f"subpath {real!r} not within volume path {real_base!r}")
    return Path(real)


def container_mounts(container: Obj, volumes: dict[str, HostVolume], *,
                     env: dict[str, str] | None = None) -> list[VolumeMount]:
    """The container's volumeMounts resolved against the pod's host volumes.

    ``subPath`` is created as a directory in the volume if missing (as the kubelet does)
    and resolved, so a configMap key's subPath is the file itself (and, as in Kubernetes,
    does not see later updates); an absolute or ``..`` subPath is a ValueError. ``readOnly``
    is the mount's or the volume's. ``subPathExpr`` is expanded with ``env`` (the
    container's environment); without ``env`` it is refused.
    """
    container_name = str(container.get("name") or "")
    mounts: list[VolumeMount] = []
    for mount in container.get("volumeMounts") or []:
        name = str(mount.get("name") or "")
        volume = volumes.get(name)
        if volume is None:
            raise ValueError(f'cannot find volume "{name}" to mount into container "{container_name}"')
        sub_path = str(mount.get("subPath") or "")
        if expr := mount.get("subPathExpr"):
            if env is None:
                raise ValueError("subPathExpr needs the container's environment")
            sub_path = expand_sub_path_expr(str(expr), env)
        source = resolve_sub_path(volume.path, sub_path, name, container_name) if sub_path else volume.path
        propagation = mount.get("mountPropagation")
        mounts.append(VolumeMount(
            source=source,
            destination=str(mount.get("mountPath") or ""),
            read_only=bool(mount.get("readOnly")) or volume.read_only,
            propagation=None if propagation in (None, "", "None") else str(propagation),
        ))
    return mounts
