"""Objects' fields in the order Kubernetes writes them.

Kubernetes serializes Go structs, so every object it sends starts with ``kind``,
``apiVersion``, ``metadata``, then ``spec`` and ``status`` (or the kind's own top-level
fields, such as a ConfigMap's ``data``), and ``metadata`` lists its fields in
``ObjectMeta``'s order. Clients that print, diff or compare bodies byte for byte rely on
that order, so podlife puts each object in it once, when it is written to the store,
and every response and watch event then shares that one encoding.

Python dicts keep insertion order; :func:`put_in_kubernetes_order` reorders a dict in
place only when its keys are out of order, which after the first write is rare (a patch
starts from the ordered stored version), so the check is what the write path pays.
Fields Kubernetes' structs do not name (custom resources' own fields) keep their order,
after the named ones.
"""

from __future__ import annotations

from typing import Any

#: ``ObjectMeta``'s fields, in the struct's order.
METADATA_ORDER = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
)

_TYPE_META = ("kind", "apiVersion", "metadata")

#: Top-level fields after TypeMeta and ObjectMeta, by kind, for kinds without spec/status.
_TOP_LEVEL_BY_KIND: dict[str, tuple[str, ...]] = {
    "ConfigMap": ("immutable", "data", "binaryData"),
    "Secret": ("immutable", "data", "stringData", "type"),
    "ServiceAccount": ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    "Endpoints": ("subsets",),
    "EndpointSlice": ("addressType", "endpoints", "ports"),
    "Event": ("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
              "type", "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"),
    "Role": ("rules",),
    "ClusterRole": ("rules", "aggregationRule"),
    "RoleBinding": ("subjects", "roleRef"),
    "ClusterRoleBinding": ("subjects", "roleRef"),
    "StorageClass": ("provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion",
                     "volumeBindingMode", "allowedTopologies"),
    "PriorityClass": ("value", "globalDefault", "description", "preemptionPolicy"),
    "RuntimeClass": ("handler", "overhead", "scheduling"),
    "MutatingWebhookConfiguration": ("webhooks",),
    "ValidatingWebhookConfiguration": ("webhooks",),
    "ControllerRevision": ("data", "revision"),
}

_DEFAULT_TOP_LEVEL = ("spec", "status")


def _ranks(names: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


_METADATA_RANK = _ranks(METADATA_ORDER)
_DEFAULT_RANK = _ranks(_TYPE_META + _DEFAULT_TOP_LEVEL)
_RANK_BY_KIND = {kind: _ranks(_TYPE_META + rest) for kind, rest in _TOP_LEVEL_BY_KIND.items()}


def _in_order(d: dict[str, Any], rank: dict[str, int]) -> bool:
    """Whether the named keys come first, in rank order (unnamed ones may follow)."""
    last = -1
    unnamed_seen = False
    for key in d:
        r = rank.get(key)
        if r is None:
            unnamed_seen = True
        elif unnamed_seen or r < last:
            return False
        else:
            last = r
    return True


def _reorder(d: dict[str, Any], rank: dict[str, int]) -> None:
    named = sorted((k for k in d if k in rank), key=rank.__getitem__)
    ordered = {k: d[k] for k in named}
    for k, v in d.items():
        if k not in rank:
            ordered[k] = v
    d.clear()
    d.update(ordered)


def order_metadata(meta: dict[str, Any]) -> None:
    """Put ``ObjectMeta``'s fields in the struct's order, in place."""
    if not _in_order(meta, _METADATA_RANK):
        _reorder(meta, _METADATA_RANK)


def put_in_kubernetes_order(obj: dict[str, Any]) -> None:
    """Order ``obj``'s top level and its metadata as Kubernetes serializes them, in place."""
    rank = _RANK_BY_KIND.get(obj.get("kind"), _DEFAULT_RANK)  # type: ignore[arg-type]
    if not _in_order(obj, rank):
        _reorder(obj, rank)
    meta = obj.get("metadata")
    if type(meta) is dict:
        order_metadata(meta)
