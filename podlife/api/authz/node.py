"""The Node authorizer: a node reads only what its own pods need.

What: a request by a node identity -- user ``system:node:<name>`` in group
``system:nodes``, e.g. a kubelet on another host with a client certificate -- is judged
here, before RBAC (Kubernetes' ``--authorization-mode=Node,RBAC``):

* Secrets, ConfigMaps, PersistentVolumeClaims and service-account tokens are readable
  (``get``) only when a pod bound to that node uses them (volumes -- an ``ephemeral`` one's
  claim ``<pod>-<volume>`` too --, ``env``/``envFrom`` references, image pull secrets, its
  service account) -- the node's *graph*; a PersistentVolume only when one of those claims
  is bound to it; a claim's ``status`` may be updated or patched
  (``update``/``patch``: finishing an expansion) on the same terms; anything
  else is denied with Kubernetes' reason ``no relationship found between node '<n>' and
  this object``;
* every other request is allowed when the ``system:node`` rules (the bootstrap policy's
  :func:`~podlife.api.authz.bootstrap.node_rules`) allow it; what a node may *write*
  among those is narrowed further by NodeRestriction admission
  (:mod:`podlife.api.node_restriction`): only its own Node and Lease, only its pods.

Requests by anyone else get no opinion (allowed False, no reason), so RBAC decides them.
The graph is read from the API server's pod cache on each request: the pods of the
object's namespace are scanned for the node's (the cost of a Secret read by a node, not of
every request; Kubernetes keeps a graph instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from ...machinery.storage import pod_claim_names
from ..identity import NODE_PREFIX, NODES_GROUP
from .attributes import Attributes
from .bootstrap import node_rules
from .rbac import Decision, rule_allows

Obj = dict[str, Any]
#: the kinds a node may read only through its pods
GRAPH_RESOURCES = frozenset({"secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"})


class PodSource(Protocol):
    def pods(self, namespace: str | None) -> Iterable[Obj]:
        """The pods of one namespace (None: of every namespace)."""
        ...

    def claims(self, namespace: str) -> Iterable[Obj]:
        """The PersistentVolumeClaims of one namespace."""
        ...


def node_name(attrs: Attributes) -> str | None:
    """The node a request's user is, or None (not a node identity)."""
    user = attrs.user
    if NODES_GROUP not in user.groups or not user.username.startswith(NODE_PREFIX):
        return None
    return user.username[len(NODE_PREFIX):] or None


def _pod_references(pod: Obj) -> Iterator[tuple[str, str]]:
    """(resource, name) of what a pod uses from its namespace."""
    spec = pod.get("spec") or {}
    yield "serviceaccounts", str(spec.get("serviceAccountName") or "default")
    for secret in spec.get("imagePullSecrets") or []:
        yield "secrets", str((secret or {}).get("name") or "")
    for volume in spec.get("volumes") or []:
        volume = volume or {}
        if (secret := volume.get("secret")) is not None:
            yield "secrets", str(secret.get("secretName") or "")
        if (config := volume.get("configMap")) is not None:
            yield "configmaps", str(config.get("name") or "")
        for source in ((volume.get("projected") or {}).get("sources") or []):
            if (secret := (source or {}).get("secret")) is not None:
                yield "secrets", str(secret.get("name") or "")
            if (config := (source or {}).get("configMap")) is not None:
                yield "configmaps", str(config.get("name") or "")
    for claim in pod_claim_names(pod):  # persistentVolumeClaim volumes, and an ephemeral one's <pod>-<volume>
        yield "persistentvolumeclaims", claim
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for var in (c or {}).get("env") or []:
                source = (var or {}).get("valueFrom") or {}
                if (ref := source.get("secretKeyRef")) is not None:
                    yield "secrets", str(ref.get("name") or "")
                if (ref := source.get("configMapKeyRef")) is not None:
                    yield "configmaps", str(ref.get("name") or "")
            for source in (c or {}).get("envFrom") or []:
                if (ref := (source or {}).get("secretRef")) is not None:
                    yield "secrets", str(ref.get("name") or "")
                if (ref := (source or {}).get("configMapRef")) is not None:
                    yield "configmaps", str(ref.get("name") or "")


class NodeAuthorizer:
    """Kubernetes' Node authorizer over the pods a source lists (see the module docstring)."""

    def __init__(self, pods: PodSource) -> None:
        self._pods = pods
        self._rules = node_rules()

    def authorize(self, attrs: Attributes) -> Decision:
        node = node_name(attrs)
        if node is None:
            return Decision(False)
        if attrs.resource_request and attrs.resource == "persistentvolumes":
            if attrs.verb != "get" or not attrs.name or attrs.subresource:
                return Decision(False, "can only get individual resources of this type")
            if self._volume_related(node, attrs.name):
                return Decision(True)
            return Decision(False, f"no relationship found between node '{node}' and this object")
        if attrs.resource_request and attrs.resource in GRAPH_RESOURCES and (
                attrs.resource != "serviceaccounts" or attrs.subresource == "token"):
            if attrs.resource == "persistentvolumeclaims" and attrs.subresource == "status":
                if attrs.verb not in ("update", "patch") or not attrs.name:  # the kubelet finishing an expansion
                    return Decision(False, "can only get/update/patch this type")
            elif attrs.verb not in ("get", "create") or not attrs.name:
                return Decision(False, "can only get individual resources of this type")
            if self._related(node, attrs):
                return Decision(True)
            return Decision(False, f"no relationship found between node '{node}' and this object")
        for rule in self._rules:
            if rule_allows(attrs, rule):
                return Decision(True)
        return Decision(False)

    def _volume_related(self, node: str, volume: str) -> bool:
        """A pod of the node uses a claim bound to the volume (pod -> claim -> volume in Kubernetes' graph).
        Every pod is scanned: a kubelet reads a volume once per mount, not per request it serves."""
        for pod in self._pods.pods(None):
            if (pod.get("spec") or {}).get("nodeName") != node or not (names := set(pod_claim_names(pod))):
                continue
            namespace = str((pod.get("metadata") or {}).get("namespace") or "")
            if any((claim.get("metadata") or {}).get("name") in names
                   and (claim.get("spec") or {}).get("volumeName") == volume for claim in self._pods.claims(namespace)):
                return True
        return False

    def _related(self, node: str, attrs: Attributes) -> bool:
        for pod in self._pods.pods(attrs.namespace):
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            if (attrs.resource, attrs.name) in set(_pod_references(pod)):
                return True
        return False


__all__ = ["NODES_GROUP", "NODE_PREFIX", "NodeAuthorizer", "node_name"]
