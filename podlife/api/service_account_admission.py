"""The ServiceAccount admission plugin: every pod runs as an account that exists.

Learned from Kubernetes' ``plugin/pkg/admission/serviceaccount/admission.go``. On a
pod's create (never on update, nor on subresources):

1. a pod without ``spec.serviceAccountName`` gets ``default``; the deprecated
   ``spec.serviceAccount`` mirrors it (what the v1 conversion writes);
2. the account must exist, else 403 ``pods "<name>" is forbidden: error looking up
   service account <ns>/<name>: serviceaccount "<name>" not found``. ``default`` is
   made by the service-account controller right after its namespace
   (:mod:`podlife.controllers.serviceaccounts`), so for ``default`` the plugin waits for
   the watch cache to have it, at most :data:`DEFAULT_ACCOUNT_WAIT_SECONDS` (Kubernetes
   asks up to ten times, 100-200 ms apart); a pod made right after ``kubectl create ns``
   is admitted. Other names are looked up once (the watch cache is never stale);
3. unless ``automountServiceAccountToken`` says no (the pod's, else the account's;
   default yes), a projected volume ``kube-api-access-<5 random>`` -- a 3607 s
   ``serviceAccountToken`` at ``token``, ``ca.crt`` of the ``kube-root-ca.crt``
   ConfigMap, the namespace from the downward API, ``defaultMode`` 420 -- is added, and
   every init container and container that has no mount at
   ``/var/run/secrets/kubernetes.io/serviceaccount`` gets one there, read-only. An
   existing ``kube-api-access-*`` volume is reused. (Ephemeral containers cannot be set
   on create; Kubernetes' plugin does not mount into them.)
4. a pod without ``imagePullSecrets`` gets its account's.

Mirror pods (annotation ``kubernetes.io/config.mirror``) are not changed; they may not
name a service account, reference secrets or project service-account tokens. The
validating half runs again after the mutating webhooks: the account named then must be
in the cache (no waiting: the mutating half already waited).

Off when ``ServiceAccount`` is in ``ApiContext.disabled_admission_plugins``
(``--disable-admission-plugins``), as Kubernetes' integration tests run it without a
controller manager. The kubelet and the node simulator do not mount volumes yet: they
ignore the projected volume.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..registry.types import Obj
from .admission_plugin import CREATE_ONLY, AdmissionPlugin, Attributes, refuse
from .cache import CachedObject, Filter, WatchEvent
from .identity import WARN_ONLY_BOUND_TOKEN_SECONDS

if TYPE_CHECKING:
    from .rest import ResourceREST

NAME = "ServiceAccount"
DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
#: how long a pod create waits for its namespace's ``default`` account to appear
DEFAULT_ACCOUNT_WAIT_SECONDS = 3.0
#: ``corev1.ProjectedVolumeSourceDefaultMode`` (0644), set explicitly as Kubernetes does
PROJECTED_DEFAULT_MODE = 0o644


def token_volume_source() -> Obj:
    """The projected source of the token volume (Kubernetes' ``TokenVolumeSource``), in its field order."""
    return {
        "defaultMode": PROJECTED_DEFAULT_MODE,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_BOUND_TOKEN_SECONDS, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": ROOT_CA_CONFIGMAP}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace"}]}},
        ],
    }


def _annotations(pod: Obj) -> dict[str, Any]:
    annotations = (pod.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _namespace(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "")


def _dicts(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


async def admit(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half (``Admit``): default the account, check it, mount its token."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    if MIRROR_ANNOTATION in _annotations(pod):
        _check_mirror_pod(rest, pod, spec)
        return []
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
    spec["serviceAccount"] = spec["serviceAccountName"]
    account = await _find_account(rest, pod, str(spec["serviceAccountName"]), wait=True)
    if _should_automount(account, spec):
        mount_service_account_token(spec)
    if not spec.get("imagePullSecrets"):
        pulls = [{"name": str(s.get("name") or "")} for s in _dicts(account.get("imagePullSecrets"))]
        if pulls:
            spec["imagePullSecrets"] = pulls
    return []


def validate(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The validating half (``Validate``): after the webhooks, the account named must exist."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    if MIRROR_ANNOTATION in _annotations(pod):
        _check_mirror_pod(rest, pod, spec)
        return []
    name = str(spec.get("serviceAccountName") or "")
    if _cached_account(rest, _namespace(pod), name) is None:
        raise _not_found(rest, pod, name)
    return []


def _should_automount(account: Obj, spec: Obj) -> bool:
    """The pod's ``automountServiceAccountToken``, else the account's, else yes."""
    for choice in (spec.get("automountServiceAccountToken"), account.get("automountServiceAccountToken")):
        if isinstance(choice, bool):
            return choice
    return True


def mount_service_account_token(spec: Obj) -> None:
    """Add the token volume (or reuse a ``kube-api-access-*`` one) and mount it where it is missing."""
    from .rest import generate_name

    volumes = spec.get("volumes")
    existing = next((str(v.get("name")) for v in _dicts(volumes)
                     if str(v.get("name") or "").startswith(TOKEN_VOLUME_PREFIX)), None)
    volume_name = existing or generate_name(TOKEN_VOLUME_PREFIX)
    mounted = False
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            mounts = container.get("volumeMounts")
            if not isinstance(mounts, list):
                mounts = container["volumeMounts"] = []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            mounts.append({"mountPath": TOKEN_MOUNT_PATH, "name": volume_name, "readOnly": True})
            mounted = True
    if mounted and existing is None:
        if not isinstance(volumes, list):
            volumes = spec["volumes"] = []
        volumes.append({"name": volume_name, "projected": token_volume_source()})


def _cached_account(rest: ResourceREST, namespace: str, name: str) -> CachedObject | None:
    accounts = rest.ctx.rest_by("", "v1", "serviceaccounts")
    if accounts is None or not name:
        return None
    return accounts.cache.get(accounts.rt.key(namespace, name))


async def _find_account(rest: ResourceREST, pod: Obj, name: str, *, wait: bool) -> Obj:
    """The pod's service account; for ``default``, waits a little for the controller to make it."""
    namespace = _namespace(pod)
    found = _cached_account(rest, namespace, name)
    if found is None and wait and name == DEFAULT_SERVICE_ACCOUNT:
        found = await _wait_for_account(rest, namespace, name, DEFAULT_ACCOUNT_WAIT_SECONDS)
    if found is None:
        raise _not_found(rest, pod, name)
    return found.obj


async def _wait_for_account(rest: ResourceREST, namespace: str, name: str, seconds: float) -> CachedObject | None:
    """Watch the namespace's accounts until ``name`` is added, at most ``seconds``."""
    accounts = rest.ctx.rest_by("", "v1", "serviceaccounts")
    if accounts is None:
        return None
    key = accounts.rt.key(namespace, name)
    arrived = asyncio.Event()

    def on_event(event: WatchEvent) -> None:
        if event.type != "DELETED" and event.object.key == key:
            arrived.set()

    watcher = accounts.cache.watch(Filter(accounts.rt, namespace), None, on_event)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), seconds)
    finally:
        watcher.stop()
    return accounts.cache.get(key)


def _not_found(rest: ResourceREST, pod: Obj, name: str) -> Exception:
    return refuse(rest, pod, f"error looking up service account {_namespace(pod)}/{name}: "
                             f'serviceaccount "{name}" not found')


def _check_mirror_pod(rest: ResourceREST, pod: Obj, spec: Obj) -> None:
    """What a mirror pod may not reference (Kubernetes' mirror-pod rules of this plugin)."""
    if spec.get("serviceAccountName"):
        raise refuse(rest, pod, "a mirror pod may not reference service accounts")
    if next(pod_secret_names(spec), None) is not None:
        raise refuse(rest, pod, "a mirror pod may not reference secrets")
    for volume in _dicts(spec.get("volumes")):
        if any("serviceAccountToken" in source for source in _dicts((volume.get("projected") or {}).get("sources"))):
            raise refuse(rest, pod, "a mirror pod may not use ServiceAccountToken volume projections")


#: volume sources that name a secret in a ``secretRef`` (or, for CSI, ``nodePublishSecretRef``)
_SECRET_REF_SOURCES = {"cephfs": "secretRef", "flexVolume": "secretRef", "rbd": "secretRef", "iscsi": "secretRef",
                       "scaleIO": "secretRef", "storageos": "secretRef", "csi": "nodePublishSecretRef"}


def pod_secret_names(spec: Obj) -> Iterator[str]:
    """Every secret a pod spec names (Kubernetes' ``VisitPodSecretNames``, all containers)."""
    for pull in _dicts(spec.get("imagePullSecrets")):
        yield str(pull.get("name") or "")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(key)):
            for source in _dicts(container.get("envFrom")):
                if isinstance(source.get("secretRef"), dict):
                    yield str(source["secretRef"].get("name") or "")
            for var in _dicts(container.get("env")):
                value_from = var.get("valueFrom")
                ref = value_from.get("secretKeyRef") if isinstance(value_from, dict) else None
                if isinstance(ref, dict):
                    yield str(ref.get("name") or "")
    for volume in _dicts(spec.get("volumes")):
        yield from _volume_secret_names(volume)


def _volume_secret_names(volume: Obj) -> Iterator[str]:
    if isinstance(volume.get("secret"), dict):
        yield str(volume["secret"].get("secretName") or "")
    if isinstance(volume.get("azureFile"), dict):
        yield str(volume["azureFile"].get("secretName") or "")
    for kind, field in _SECRET_REF_SOURCES.items():
        source = volume.get(kind)
        if isinstance(source, dict) and isinstance(source.get(field), dict):
            yield str(source[field].get("name") or "")
    for projection in _dicts((volume.get("projected") or {}).get("sources")
                             if isinstance(volume.get("projected"), dict) else None):
        if isinstance(projection.get("secret"), dict):
            yield str(projection["secret"].get("name") or "")


PLUGIN = AdmissionPlugin(NAME, frozenset({("", "pods")}), CREATE_ONLY, mutate=admit, validate=validate)
