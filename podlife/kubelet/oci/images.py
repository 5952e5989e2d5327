"""The node image catalog of the host image class, and Kubernetes' command/args rule.

Design
------
No registry is reachable from this machine, so images of the *host image class* are
names in a catalog (``images.yaml`` beside this module, or a file the node is given)
rather than layers: each :class:`HostImage` carries the image config's defaults
(Entrypoint, Cmd, Env, WorkingDir), the host files it needs and the Debian packages
that provide them, and extra ``/etc`` entries to copy. :mod:`podlife.kubelet.oci.rootfs`
turns one into a container root.

:func:`normalize_image_name` reduces a reference to a catalog key: the last path
component without tag or digest (``docker.io/library/busybox:1.36`` → ``busybox``,
``registry.k8s.io/pause:3.9`` → ``pause``). :meth:`ImageCatalog.resolve` raises
:class:`ImageNotFoundError` for a name that is not in the catalog or whose host files
are missing; its message says how to provide it (Kubernetes shows such a failure as
``ErrImagePull`` with the runtime's message).

:func:`container_argv` is Kubernetes' rule for combining a container's ``command``
and ``args`` with the image (documented in "Define a Command and Arguments for a
Container"; containerd and CRI-O apply it when they build the process):

* neither set: Entrypoint + Cmd;
* ``command`` set: ``command`` + ``args`` (the image's Entrypoint and Cmd are ignored);
* only ``args`` set: Entrypoint + ``args``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = [
    "HostImage",
    "ImageCatalog",
    "ImageNotFoundError",
    "container_argv",
    "default_catalog",
    "normalize_image_name",
]

_DIGEST_RE = re.compile(r"@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,}$")


class ImageNotFoundError(Exception):
    """The image is not in the node's catalog, or the host lacks what it needs."""

    reason = "ErrImagePull"

    def __init__(self, image: str, message: str) -> None:
        super().__init__(message)
        self.image = image
        self.message = message


@dataclass(frozen=True)
class HostImage:
    """One catalog entry: an image of the host image class."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    requires: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    applets: str | None = None
    etc: tuple[str, ...] = ()
    #: directories of its own the image has (``/var/log/nginx``): created empty and writable
    dirs: tuple[str, ...] = ()
    #: host paths outside the system directories copied into the container (``/var/www/html``)
    copy: tuple[str, ...] = ()

    def missing_files(self, host_root: Path = Path("/")) -> list[str]:
        """Required host files that do not exist (relative to ``host_root``)."""
        return [p for p in self.requires if not (host_root / p.lstrip("/")).exists()]


def normalize_image_name(image: str) -> str:
    """The catalog key of an image reference (see the module's design)."""
    ref = _DIGEST_RE.sub("", image.strip())
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


class ImageDefaults(Protocol):
    """What an image's config says about its process (a catalog entry or a pulled image)."""

    @property
    def entrypoint(self) -> Sequence[str]: ...

    @property
    def cmd(self) -> Sequence[str]: ...


def container_argv(image: ImageDefaults, command: Sequence[str], args: Sequence[str]) -> list[str]:
    """The process's argv from the container's ``command``/``args`` and the image's defaults."""
    if command:
        return [*command, *args]
    if args:
        return [*image.entrypoint, *args]
    return [*image.entrypoint, *image.cmd]


class ImageCatalog:
    """The images a node can run without pulling, by catalog key."""

    def __init__(self, images: Mapping[str, HostImage], *, host_root: Path = Path("/")) -> None:
        self.images = dict(images)
        self.host_root = host_root

    @classmethod
    def from_yaml(cls, text: str, *, host_root: Path = Path("/")) -> ImageCatalog:
        """Parse a catalog document (the format of ``images.yaml``); ``ValueError`` names a bad field."""
        doc = yaml.safe_load(text) or {}
        entries = doc.get("images") if isinstance(doc, dict) else None
        if not isinstance(entries, dict):
            raise ValueError("images: must be a mapping of image name to entry")
        return cls({name: _parse_entry(str(name), body) for name, body in entries.items()}, host_root=host_root)

    @classmethod
    def from_file(cls, path: Path, *, host_root: Path = Path("/")) -> ImageCatalog:
        return cls.from_yaml(path.read_text(), host_root=host_root)

    def resolve(self, image: str) -> HostImage:
        """The entry for ``image``; :class:`ImageNotFoundError` says why it cannot run here."""
        key = normalize_image_name(image)
        entry = self.images.get(key)
        if entry is None:
            known = ", ".join(sorted(self.images))
            raise ImageNotFoundError(
                image,
                f'image "{image}" is not available on this node: no registry is reachable and it is not in the '
                f"node image catalog (host image class: {known}); add an entry to the catalog to provide it",
            )
        missing = entry.missing_files(self.host_root)
        if missing:
            how = f"install the Debian package(s) {', '.join(entry.packages)}" if entry.packages else "install them"
            raise ImageNotFoundError(
                image, f'image "{image}" needs {", ".join(missing)} on the host, which is missing: {how}'
            )
        return entry


def _parse_entry(name: str, body: Any) -> HostImage:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValueError(f"images.{name}: must be a mapping")
    known = {"entrypoint", "cmd", "env", "working_dir", "requires", "packages", "applets", "etc", "dirs", "copy"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"images.{name}: unknown field(s) {', '.join(unknown)}")
    env = body.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError(f"images.{name}.env: must be a mapping")
    working_dir = str(body.get("working_dir") or "/")
    if not working_dir.startswith("/"):
        raise ValueError(f"images.{name}.working_dir: must be an absolute path")
    return HostImage(
        name=name,
        entrypoint=_strings(name, "entrypoint", body),
        cmd=_strings(name, "cmd", body),
        env={str(k): str(v) for k, v in env.items()},
        working_dir=working_dir,
        requires=_strings(name, "requires", body),
        packages=_strings(name, "packages", body),
        applets=str(body["applets"]) if body.get("applets") else None,
        etc=_strings(name, "etc", body),
        dirs=_absolute_paths(name, "dirs", body),
        copy=_absolute_paths(name, "copy", body),
    )


def _absolute_paths(name: str, key: str, body: Mapping[str, Any]) -> tuple[str, ...]:
    paths = _strings(name, key, body)
    for path in paths:
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"images.{name}.{key}: {path!r} must be an absolute path without '..'")
    return paths


def _strings(name: str, key: str, body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ValueError(f"images.{name}.{key}: must be a list of strings")
    return tuple(str(v) for v in value)


def default_catalog() -> ImageCatalog:
    """The catalog shipped with podlife (``images.yaml`` beside this module)."""
    text = resources.files("podlife.kubelet.oci").joinpath("images.yaml").read_text()
    return ImageCatalog.from_yaml(text)
