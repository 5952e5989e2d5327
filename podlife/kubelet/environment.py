"""A container's environment, as the kubelet builds it before starting the container.

Kubernetes' order (``makeEnvironmentVariables``): ``HOSTNAME`` as a container
runtime sets it, then every ``envFrom`` source (a ConfigMap's or Secret's keys,
with the source's ``prefix``), then ``env`` in order -- so a later entry wins and
a ``value`` may refer to earlier ones as ``$(VAR)``. ``valueFrom`` reads a key of
a ConfigMap or Secret (``configMapKeyRef``/``secretKeyRef``) or a ``fieldRef``
of the downward API (name, namespace, uid, node, service account, host and pod
IPs, labels and annotations). :func:`expand` is Kubernetes' ``$(VAR)``
expansion, also applied to the container's command and arguments.

A referenced ConfigMap or Secret that is missing (and not ``optional``), a
missing key, or an unsupported field path raises :class:`EnvError`: the pod
worker then shows the container as ``CreateContainerConfigError`` and retries.
An :class:`EnvResolver` reads each object once per container start.
"""

from __future__ import annotations

import base64
import logging
import re

from ..client.base import CONFIGMAPS, SECRETS, Client, Obj, Resource
from ..machinery.errors import ApiError

log = logging.getLogger(__name__)


class EnvError(Exception):
    """The container's environment cannot be built (``CreateContainerConfigError``)."""


_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
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


class EnvResolver:
    """Builds a container's environment, reading ConfigMaps and Secrets once per start."""

    def __init__(self, client: Client, pod: Obj, *, host_ip: str, pod_ips: tuple[str, ...]) -> None:
        self.client = client
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

    async def resolve(self, container: Obj) -> dict[str, str]:
        """``envFrom`` first, then ``env`` in order (later entries see earlier ones)."""
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
                env[name] = expand(str(item.get("value") or ""), env)
        return env
