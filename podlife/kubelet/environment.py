"""A container's environment, as the kubelet builds it before starting the container.

Kubernetes' order (``makeEnvironmentVariables``): ``HOSTNAME`` as a container
runtime sets it, then every ``envFrom`` source (a ConfigMap's or Secret's keys,
with the source's ``prefix``), then ``env`` in order -- so a later entry wins and
a ``value`` may refer to earlier ones as ``$(VAR)``. ``valueFrom`` reads a key of
a ConfigMap or Secret (``configMapKeyRef``/``secretKeyRef``) or a ``fieldRef``
of the downward API (name, namespace, uid, node, service account, host and pod
IPs, labels and annotations). :func:`expand` is Kubernetes' ``$(VAR)``
expansion, also applied to the container's command and arguments.

Service variables (:mod:`podlife.kubelet.service_env`: ``<NAME>_SERVICE_HOST``,
``KUBERNETES_PORT_443_TCP``...) come last, for every variable the container does not
define itself; ``$(VAR)`` in a ``value`` sees them too (the container's first).

A referenced ConfigMap or Secret that is missing (and not ``optional``), a
missing key, an unsupported field path, or Services that cannot be listed raise
:class:`EnvError`: the pod worker then shows the container as
``CreateContainerConfigError`` and retries.
An :class:`EnvResolver` reads each object once per container start. The Services
are listed (the pod's namespace, and the ``kubernetes`` Service of ``default``) once
per pod start, not per container: :class:`ServiceSnapshots` keeps each pod's list for
a few seconds, so its init, sidecar and main containers share it while a container
restarted later sees the Services of then. The kubelet keeps no Service informer, so
this is a LIST per pod start (Kubernetes reads a Service informer's cache instead).
"""

from __future__ import annotations

import base64
import logging
import re
import time
import weakref
from collections import ChainMap, OrderedDict
from collections.abc import Mapping

from ..client.base import CONFIGMAPS, SECRETS, SERVICES, Client, Obj, Resource
from ..machinery.errors import ApiError
from .service_env import MASTER_SERVICE, MASTER_SERVICE_NAMESPACE, services_env

log = logging.getLogger(__name__)


class EnvError(Exception):
    """The container's environment cannot be built (``CreateContainerConfigError``)."""


_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables replaced, ``$$`` -> ``$``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(substitute, text)


def _subscript(path: str, prefix: str) -> str | None:
    """``metadata.labels['key']`` -> ``key`` for ``prefix`` ``metadata.labels``."""
    if path.startswith(prefix + "[") and path.endswith("]"):
        return path[len(prefix) + 1 : -1].strip("'\"")
    return None


def field_ref_value(pod: Obj, path: str, *, host_ip: str, pod_ips: tuple[str, ...]) -> str:
    """The downward API value of ``fieldRef.fieldPath``."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ips[0] if pod_ips else "",
        "status.podIPs": ",".join(pod_ips),
    }
    if path in simple:
        return str(simple[path])
    for prefix in ("metadata.labels", "metadata.annotations"):
        values = meta.get(prefix.split(".")[1]) or {}
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        if (key := _subscript(path, prefix)) is not None:
            return str(values.get(key, ""))
    raise EnvError(f"unsupported fieldPath: {path}")


class ServiceSnapshots:
    """The Services each pod's containers see, listed at most once per pod start.

    Kept per client (weakly: a kubelet gone takes its entries along) and per pod UID,
    for :attr:`ttl` seconds and at most :attr:`capacity` pods -- just long enough for a
    pod's containers, started one after another, to share one list.
    """

    ttl = 10.0
    capacity = 256

    def __init__(self) -> None:
        self._by_client: weakref.WeakKeyDictionary[Client, OrderedDict[str, tuple[float, list[Obj]]]] = (
            weakref.WeakKeyDictionary())

    async def services(self, client: Client, pod: Obj) -> list[Obj]:
        """The Services the pod may get variables for (its namespace's, if linked, and ``kubernetes``)."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        pods = self._by_client.setdefault(client, OrderedDict())
        now = time.monotonic()
        if uid and (entry := pods.get(uid)) is not None and now - entry[0] < self.ttl:
            return entry[1]
        items = await _list_services(client, pod)
        if uid:
            pods[uid] = (now, items)
            pods.move_to_end(uid)
            while len(pods) > self.capacity:
                pods.popitem(last=False)
        return items


async def _list_services(client: Client, pod: Obj) -> list[Obj]:
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    items: list[Obj] = []
    try:
        if links:
            items += _in_namespace((await client.list(SERVICES, namespace)).get("items") or [], namespace)
        if not links or namespace != MASTER_SERVICE_NAMESPACE:
            master = await client.list(SERVICES, MASTER_SERVICE_NAMESPACE,
                                       field_selector=f"metadata.name={MASTER_SERVICE}")
            items += _in_namespace(master.get("items") or [], MASTER_SERVICE_NAMESPACE)
    except ApiError as exc:
        raise EnvError(f"services cannot be listed, cannot construct envvars: {exc}") from None
    return items


def _in_namespace(items: list[Obj], namespace: str) -> list[Obj]:
    """List items with their namespace set (copied where it is not: the items may be a cache's own)."""
    return [item if (item.get("metadata") or {}).get("namespace") else
            {**item, "metadata": {**(item.get("metadata") or {}), "namespace": namespace}} for item in items]


#: the kubelet's one record of Services per pod start
SERVICE_SNAPSHOTS = ServiceSnapshots()


class EnvResolver:
    """Builds a container's environment, reading ConfigMaps and Secrets once per start."""

    def __init__(self, client: Client, pod: Obj, *, host_ip: str, pod_ips: tuple[str, ...],
                 services: ServiceSnapshots = SERVICE_SNAPSHOTS) -> None:
        self.client = client
        self.services = services
        self.pod = pod
        self.namespace = (pod.get("metadata") or {}).get("namespace", "default")
        self.host_ip = host_ip
        self.pod_ips = pod_ips
        self._cache: dict[tuple[str, str], Obj | None] = {}

    async def _source(self, res: Resource, name: str) -> Obj | None:
        key = (res.plural, name)
        if key not in self._cache:
            try:
                self._cache[key] = await self.client.get(res, name, self.namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise EnvError(f"{res.kind.lower()} {name!r}: {exc}") from None
                self._cache[key] = None
        return self._cache[key]

    async def _data(self, res: Resource, name: str, optional: bool) -> dict[str, str] | None:
        obj = await self._source(res, name)
        if obj is None:
            if optional:
                return None
            raise EnvError(f'{res.kind.lower()} "{name}" not found')
        if res is SECRETS:
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    async def _key_ref(self, res: Resource, ref: Obj) -> str | None:
        optional = bool(ref.get("optional"))
        data = await self._data(res, str(ref.get("name", "")), optional)
        if data is None:
            return None
        key = str(ref.get("key", ""))
        if key not in data:
            if optional:
                return None
            raise EnvError(f"couldn't find key {key} in {res.kind} {self.namespace}/{ref.get('name')}")
        return data[key]

    async def _value_from(self, source: Obj) -> str | None:
        if ref := source.get("fieldRef"):
            return field_ref_value(self.pod, str(ref.get("fieldPath", "")), host_ip=self.host_ip, pod_ips=self.pod_ips)
        if ref := source.get("configMapKeyRef"):
            return await self._key_ref(CONFIGMAPS, ref)
        if ref := source.get("secretKeyRef"):
            return await self._key_ref(SECRETS, ref)
        log.debug("env source %s not supported; variable left empty", sorted(source))
        return ""

    async def service_env(self) -> dict[str, str]:
        """The pod's service variables (:mod:`podlife.kubelet.service_env`)."""
        links = (self.pod.get("spec") or {}).get("enableServiceLinks") is not False
        return services_env(self.namespace, await self.services.services(self.client, self.pod), links)

    async def resolve(self, container: Obj) -> dict[str, str]:
        """``envFrom`` first, then ``env`` in order (later entries see earlier ones), then service variables."""
        service_env = await self.service_env()
        hostname = (self.pod.get("spec") or {}).get("hostname") or (self.pod.get("metadata") or {}).get("name", "")
        env: dict[str, str] = {"HOSTNAME": str(hostname)}  # what a container runtime sets
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix") or "")
            for res, key in ((CONFIGMAPS, "configMapRef"), (SECRETS, "secretRef")):
                if ref := source.get(key):
                    data = await self._data(res, str(ref.get("name", "")), bool(ref.get("optional")))
                    env.update({prefix + k: v for k, v in (data or {}).items()})
        for item in container.get("env") or []:
            name = str(item.get("name", ""))
            if "valueFrom" in item and item["valueFrom"]:
                value = await self._value_from(item["valueFrom"])
                if value is not None:
                    env[name] = value
            else:
                env[name] = expand(str(item.get("value") or ""), ChainMap(env, service_env))
        for name, value in service_env.items():  # the container's own variables win
            env.setdefault(name, value)
        return env
