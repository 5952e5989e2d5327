"""The kubelet's image manager: which image a container runs, pulled as ``imagePullPolicy`` says.

Design
------
Kubernetes' ``pkg/kubelet/images`` decides, before each container start, whether to
pull; podlife's does the same over two sources of images:

* the node's **image store** (:class:`~podlife.kubelet.oci.image_store.ImageStore`):
  images pulled from a registry over the distribution API or loaded with ``podlife
  images load``;
* the **host image class** (the node's catalog, ``images.yaml``): names that run on
  read-only views of the host's system directories. They are always "present on
  the machine", so no policy pulls them.

The decision (:func:`pull_decision`, pure): an image the store has is used unless the
policy is ``Always``; one it lacks is pulled unless the policy is ``Never``
(``ErrImageNeverPull``) or the catalog provides it. A reference that does not parse
is ``InvalidImageName``. ``Always`` still uses the catalog for its names (there is no
registry to ask for them).

Network: podlife pulls only from registries on loopback (``127.0.0.1``,
``localhost``, ``[::1]``) unless the node is given others (``allowed_registries``,
``*`` for any): nothing leaves this machine by default. A refused registry is an
``ErrImagePull`` whose message says how to provide the image.

Credentials for a pull are the pod's ``imagePullSecrets`` (``kubernetes.io/dockerconfigjson``
and ``kubernetes.io/dockercfg`` Secrets), read through the API as the kubelet does.
Messages and events follow the kubelet's wording: ``Pulling image "x"``, ``Successfully
pulled image "x" in 1.2s (1.2s including waiting). Image size: N bytes.``
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..client.base import SECRETS, Client, Obj
from ..machinery.errors import ApiError
from ..node.lifecycle import go_duration
from .oci.image_store import ImageStore, StoredImage
from .oci.images import ImageCatalog, ImageNotFoundError
from .oci.registry import InvalidReferenceError, PullError, credentials_from_docker_config, parse_reference
from .runtime import ImageRef, ImageUnavailableError

log = logging.getLogger(__name__)

__all__ = ["ImageManager", "PullDecision", "pull_decision"]

LOOPBACK_REGISTRIES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class PullDecision(enum.Enum):
    USE_STORED = "stored"
    USE_CATALOG = "catalog"
    PULL = "pull"
    NEVER_PULL = "never"


def pull_decision(policy: str, stored: bool, in_catalog: bool) -> PullDecision:
    """Kubernetes' pull rule over the store and the catalog (see the design)."""
    if in_catalog and not stored:
        return PullDecision.USE_CATALOG
    if stored and policy != "Always":
        return PullDecision.USE_STORED
    if policy == "Never":
        return PullDecision.NEVER_PULL
    return PullDecision.PULL


def registry_allowed(domain: str, allowed: Sequence[str]) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain.split("]")[0] + "]"
    return host in LOOPBACK_REGISTRIES or "*" in allowed or domain in allowed or host in allowed


def docker_config_of(secret: Obj) -> Mapping[str, object] | None:
    """The registry credentials document of an image pull Secret, if it is one."""
    data = secret.get("data") or {}
    for key, wrap in ((".dockerconfigjson", False), (".dockercfg", True)):
        if key in data:
            try:
                doc = json.loads(base64.b64decode(data[key]))
            except (ValueError, TypeError):
                return None
            if not isinstance(doc, dict):
                return None
            return {"auths": doc} if wrap else doc
    return None


class ImageManager:
    """Decides and pulls the images of one node's containers."""

    def __init__(self, store: ImageStore, catalog: ImageCatalog, client: Client, *,
                 allowed_registries: Sequence[str] = ()) -> None:
        self.store = store
        self.catalog = catalog
        self.client = client
        self.allowed_registries = tuple(allowed_registries)
        self._pulls: dict[str, asyncio.Future[StoredImage]] = {}  # one pull per reference at a time

    def in_catalog(self, image: str) -> bool:
        try:
            self.catalog.resolve(image)
        except ImageNotFoundError:
            return False
        return True

    async def ensure(self, image: str, policy: str, pod: Obj,
                     on_pulling: Callable[[str], None] | None = None) -> ImageRef:
        """The image to run for ``image`` under ``policy``; :class:`ImageUnavailableError` otherwise."""
        try:
            ref = parse_reference(image)
        except InvalidReferenceError as exc:
            raise ImageUnavailableError(f'Failed to apply default image tag "{image}": {exc}',
                                        reason="InvalidImageName") from None
        stored = self.store.get(image)
        decision = pull_decision(policy or "IfNotPresent", stored is not None, self.in_catalog(image))
        present = f'Container image "{image}" already present on machine'
        if decision is PullDecision.USE_CATALOG:
            return ImageRef("", present)
        if decision is PullDecision.USE_STORED:
            assert stored is not None
            return ImageRef(stored.repo_digest or stored.id, present, stored)
        if decision is PullDecision.NEVER_PULL:
            raise ImageUnavailableError(f'Container image "{image}" is not present with pull policy of Never',
                                        reason="ErrImageNeverPull")
        if not registry_allowed(ref.domain, self.allowed_registries):
            raise ImageUnavailableError((
                f'failed to pull and unpack image "{ref}": pulling from {ref.domain} is not allowed on this node '
                f"(podlife pulls only from registries on loopback); load the image with `podlife images load`, "
                f"push it to a registry on 127.0.0.1, or use a name of the node image catalog "
                f"({', '.join(sorted(self.catalog.images))})"))
        if on_pulling is not None:
            on_pulling(f'Pulling image "{image}"')
        started = time.monotonic()
        pulled = await self._pull(image, await self._credentials(pod))
        took = go_duration(round(time.monotonic() - started, 3))
        message = (f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                   f"Image size: {pulled.size} bytes.")
        return ImageRef(pulled.repo_digest or pulled.id, message, pulled)

    async def _pull(self, image: str, credentials: Mapping[str, tuple[str, str]]) -> StoredImage:
        running = self._pulls.get(image)
        if running is None:
            running = asyncio.ensure_future(self.store.pull(image, credentials=credentials))
            self._pulls[image] = running
            running.add_done_callback(lambda _f: self._pulls.pop(image, None))
        try:
            return await asyncio.shield(running)
        except PullError as exc:
            raise ImageUnavailableError(str(exc)) from None

    async def _credentials(self, pod: Obj) -> dict[str, tuple[str, str]]:
        """Registry credentials from the pod's ``imagePullSecrets`` (a missing one is skipped, as the kubelet does)."""
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        credentials: dict[str, tuple[str, str]] = {}
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name") if isinstance(ref, dict) else None
            if not name:
                continue
            try:
                secret = await self.client.get(SECRETS, name, namespace)
            except ApiError as exc:
                log.info("pod %s: image pull secret %s: %s", (pod.get("metadata") or {}).get("name"), name, exc)
                continue
            doc = docker_config_of(secret)
            if doc is not None:
                credentials.update(credentials_from_docker_config(doc))
        return credentials

    async def collect_garbage(self, in_use: Iterable[str]) -> list[str]:
        """The kubelet's image GC over the store (85% high, 80% low, as Kubernetes' defaults)."""
        return await self.store.garbage_collect(set(in_use))
