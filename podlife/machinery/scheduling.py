"""Kubernetes' pod-to-node matching rules, for every component that asks "may this pod be on that node?".

Kubernetes keeps them in ``k8s.io/component-helpers/scheduling/corev1``: the scheduler's
TaintToleration and NodeAffinity plugins, the DaemonSet controller's
``NodeShouldRunDaemonPod`` and the taint eviction controller all use the same code. So
does podlife: the scheduler (``scheduler/plugins.py``), the DaemonSet controller
(``controllers/daemonset/placement.py``) and the taint eviction controller call these.

* :func:`toleration_tolerates` (``Toleration.ToleratesTaint``): the toleration's effect,
  if set, is the taint's; its key, if set, is the taint's; then ``Exists`` tolerates any
  value and ``Equal`` (the default operator) the same value. :func:`tolerates` is the same
  on API dicts.
* :func:`required_node_affinity` compiles ``requiredDuringSchedulingIgnoredDuringExecution``
  into terms of :data:`Requirement` tuples (None when there is none); a node matches
  (:func:`node_matches_terms`) when one non-empty term has all its requirements hold
  (``matchExpressions`` on labels with In, NotIn, Exists, DoesNotExist, Gt, Lt;
  ``matchFields`` on ``metadata.name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: one node-affinity requirement: (on a field, key, operator, values)
Requirement = tuple[bool, str, str, tuple[str, ...]]
Terms = tuple[tuple[Requirement, ...], ...]


def toleration_tolerates(key: str, operator: str, value: str, effect: str,
                         taint_key: str, taint_value: str, taint_effect: str) -> bool:
    """``Toleration.ToleratesTaint`` on plain values (``operator`` empty means ``Equal``)."""
    if effect and effect != taint_effect:
        return False
    if key and key != taint_key:
        return False
    if operator == "Exists":
        return True
    return operator in ("Equal", "") and value == taint_value


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """:func:`toleration_tolerates` on a toleration and a taint as the API writes them."""
    return toleration_tolerates(toleration.get("key") or "", toleration.get("operator") or "Equal",
                                toleration.get("value") or "", toleration.get("effect") or "",
                                taint.get("key") or "", taint.get("value") or "", taint.get("effect") or "")


def required_node_affinity(spec: Mapping[str, Any]) -> Terms | None:
    """The pod spec's required node-affinity terms, compiled; None when it has none."""
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    return node_selector_terms(required) if isinstance(required, dict) else None


def node_selector_terms(selector: Mapping[str, Any]) -> Terms:
    """A ``NodeSelector`` (``{nodeSelectorTerms: [...]}``, as a pod's required node affinity or a
    PersistentVolume's ``spec.nodeAffinity.required``), compiled for :func:`node_matches_terms`."""
    terms: list[tuple[Requirement, ...]] = []
    for term in selector.get("nodeSelectorTerms") or []:
        if not isinstance(term, dict):
            continue
        reqs: list[Requirement] = []
        for on_field, group in ((False, "matchExpressions"), (True, "matchFields")):
            for r in term.get(group) or []:
                if isinstance(r, dict):
                    reqs.append((on_field, str(r.get("key") or ""), str(r.get("operator") or ""),
                                 tuple(str(v) for v in r.get("values") or [])))
        terms.append(tuple(reqs))
    return tuple(terms)


def requirement_matches(req: Requirement, labels: Mapping[str, str], node_name: str) -> bool:
    on_field, key, op, values = req
    if on_field:
        present, value = key == "metadata.name", node_name
    else:
        present, value = key in labels, labels.get(key, "")
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def node_matches_terms(terms: Iterable[tuple[Requirement, ...]], labels: Mapping[str, str], node_name: str) -> bool:
    """One non-empty term whose requirements all hold (an empty term matches nothing)."""
    return any(term and all(requirement_matches(r, labels, node_name) for r in term) for term in terms)
