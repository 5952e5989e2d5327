"""NodeRestriction admission: a node writes only its own Node, its own Lease and its own pods.

The Node authorizer lets a node identity (``system:node:<name>``) write Nodes, Leases,
pod statuses and (podlife's) port statuses at all; this plugin narrows each write to what belongs to the node, with
Kubernetes' messages -- so a compromised kubelet on one host cannot mark another node
NotReady, renew another node's Lease, or rewrite the status of pods elsewhere.

As an admission plugin (:data:`PLUGIN`, ``NodeRestriction`` in kube-apiserver's order) it
is a validating one: it looks at the final object of every write to Nodes, Leases and
pods -- creates, updates and patches of the object and of its subresources (a pod's
``status``), and deletes -- when the requesting user
(:data:`~podlife.api.rbac_guard.CURRENT_USER`) is a node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..machinery import errors
from .admission_plugin import ALL_OPERATIONS, OBJECT, SERVER_WRITE, SUBRESOURCE, AdmissionPlugin, Attributes
from .authz.node import NODE_PREFIX, NODES_GROUP
from .rbac_guard import CURRENT_USER

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]
NAME = "NodeRestriction"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PORTS_GROUP = "network.podlife.io"


def _requesting_node() -> str | None:
    user = CURRENT_USER.get()
    if user is None or NODES_GROUP not in user.groups or not user.username.startswith(NODE_PREFIX):
        return None
    return user.username[len(NODE_PREFIX):]


def _forbidden(rest: ResourceREST, name: str, why: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'{rest.rt.group_resource} "{name}" is forbidden: {why}',
                           {"name": name, "kind": rest.rt.plural, **({"group": rest.rt.group} if rest.rt.group else {})})


def restrict(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """Refuse (403) a node's write to what is not its own."""
    node = _requesting_node()
    if node is None:
        return []
    rt = rest.rt
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    if rt.group == "" and rt.plural == "nodes":
        if name != node:
            raise _forbidden(rest, name, f'node "{node}" is not allowed to modify node "{name}"')
    elif rt.group == "coordination.k8s.io" and rt.plural == "leases":
        if meta.get("namespace") == "kube-node-lease" and name != node:
            raise _forbidden(rest, name, "can only access node lease with the same name as the requesting node")
    elif rt.group == "" and rt.plural == "pods":
        bound = ((old or obj).get("spec") or {}).get("nodeName")
        if old is None:
            if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
                raise _forbidden(rest, name, f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can '
                                             "only create mirror pods")
            if bound != node:
                raise _forbidden(rest, name, f'node "{node}" can only create pods with spec.nodeName set to itself')
        elif bound != node:
            what = "update pod status" if attrs.subresource == "status" else "update pods"
            raise _forbidden(rest, name, f'node "{node}" can only {what} for pods with spec.nodeName set to itself')
    elif rt.group == PORTS_GROUP and rt.plural == "ports":  # podlife's: the node's CNI plugin marks its ports ACTIVE
        if ((old or obj).get("spec") or {}).get("nodeName") != node:
            raise _forbidden(rest, name, f'node "{node}" can only update ports with spec.nodeName set to itself')
    return []


def restrict_delete(rest: ResourceREST, obj: Obj, attrs: Attributes) -> list[str]:
    """A node deletes only pods bound to it (and its own Node)."""
    node = _requesting_node()
    if node is None:
        return []
    name = str((obj.get("metadata") or {}).get("name") or "")
    if rest.rt.group == "" and rest.rt.plural == "pods" and (obj.get("spec") or {}).get("nodeName") != node:
        raise _forbidden(rest, name, f'node "{node}" can only delete pods with spec.nodeName set to itself')
    if rest.rt.group == "" and rest.rt.plural == "nodes" and name != node:
        raise _forbidden(rest, name, f'node "{node}" is not allowed to modify node "{name}"')
    return []


#: the API server's own writes (a binding) are seen too, as they always were here
PLUGIN = AdmissionPlugin(NAME, frozenset({("", "nodes"), ("coordination.k8s.io", "leases"), ("", "pods"),
                                          (PORTS_GROUP, "ports")}),
                         ALL_OPERATIONS, frozenset({OBJECT, SUBRESOURCE, SERVER_WRITE}),
                         validate=restrict, validate_delete=restrict_delete)

__all__ = ["PLUGIN", "restrict", "restrict_delete"]
