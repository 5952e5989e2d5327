"""Where a DaemonSet's pods belong, and what each of them looks like (pure functions).

Kubernetes facts followed (``pkg/controller/daemon``, ``NodeShouldRunDaemonPod``):

* A node *should run* a daemon pod when the pod the template makes -- with the
  DaemonSet's automatic tolerations added (:data:`DAEMON_TOLERATIONS`) -- fits it: the
  template's ``nodeName`` (if any) is the node, its ``nodeSelector`` and *required* node
  affinity match the node (terms ORed, requirements of a term ANDed, ``matchFields``
  only on ``metadata.name``), and every ``NoSchedule``/``NoExecute`` taint of the node
  is tolerated. Node conditions and ``spec.unschedulable`` play no part: Kubernetes
  expresses them as taints, which the automatic tolerations cover.
* A pod already there *should continue running* when the node fits but for taints, as
  long as every ``NoExecute`` taint is tolerated (a ``NoSchedule`` taint only keeps new
  pods off).
* Each pod is pinned to its node with required node affinity: the node selector terms
  are replaced by one term ``matchFields: metadata.name In [<node>]``, which the default
  scheduler honours; the pod's target node is read back from ``spec.nodeName`` or that
  term (``GetTargetNodeName``).
* Pods carry the template labels plus ``controller-revision-hash`` and the deprecated
  ``pod-template-generation``, and ``generateName`` ``<daemonset>-``.

:class:`TemplateFit` compiles a template once per sync, so judging a thousand nodes is
a thousand small dictionary walks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...machinery.scheduling import node_matches_terms, required_node_affinity, tolerates
from ...client.base import Obj
from ..history import CONTROLLER_REVISION_HASH_LABEL
from ..pod_control import pod_from_template

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
#: the annotation apps/v1 keeps the template generation in (``spec.templateGeneration`` of old APIs)
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

#: the tolerations every daemon pod gets (``AddOrUpdateDaemonPodTolerations``): (key, effect)
DAEMON_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


# --------------------------------------------------------------------------- tolerations and taints


def _same_toleration(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """``Toleration.MatchToleration``: same key, operator, value and effect."""
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def with_daemon_tolerations(spec: Obj) -> list[Obj]:
    """The spec's tolerations plus the automatic ones it lacks (network-unavailable for hostNetwork pods)."""
    tolerations = [dict(t) for t in spec.get("tolerations") or () if isinstance(t, dict)]
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append((NETWORK_UNAVAILABLE, "NoSchedule"))
    for key, effect in wanted:
        toleration = {"key": key, "operator": "Exists", "effect": effect}
        if not any(_same_toleration(t, toleration) for t in tolerations):
            tolerations.append(toleration)
    return tolerations


def untolerated(taints: Iterable[Mapping[str, Any]], tolerations: list[Obj], effects: tuple[str, ...]) -> bool:
    """Whether some taint with one of ``effects`` is tolerated by none of ``tolerations``."""
    return any(t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)
               for t in taints if isinstance(t, dict))


# --------------------------------------------------------------------------- node affinity


@dataclass(frozen=True)
class Fit:
    """Whether a node should run a daemon pod, and whether one there may stay."""

    should_run: bool
    should_continue: bool


NO_FIT = Fit(False, False)
FITS = Fit(True, True)


class TemplateFit:
    """A DaemonSet template compiled for judging nodes (``NodeShouldRunDaemonPod``)."""

    def __init__(self, template_spec: Obj) -> None:
        self.node_name: str = template_spec.get("nodeName") or ""
        selector = template_spec.get("nodeSelector")
        self.node_selector: dict[str, str] = dict(selector) if isinstance(selector, dict) else {}
        self.terms = required_node_affinity(template_spec)
        self.tolerations = with_daemon_tolerations(template_spec)

    def fits_affinity(self, node: Obj) -> bool:
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = meta.get("name") or ""
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return self.terms is None or node_matches_terms(self.terms, labels, name)

    def judge(self, node: Obj) -> Fit:
        name = (node.get("metadata") or {}).get("name") or ""
        if self.node_name and self.node_name != name:
            return NO_FIT
        if not self.fits_affinity(node):
            return NO_FIT
        taints = (node.get("spec") or {}).get("taints") or ()
        if untolerated(taints, self.tolerations, ("NoSchedule", "NoExecute")):
            return Fit(False, not untolerated(taints, self.tolerations, ("NoExecute",)))
        return FITS


# --------------------------------------------------------------------------- pods


def node_name_affinity(affinity: Obj | None, node: str) -> Obj:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: required node affinity for exactly ``node``."""
    result = copy.deepcopy(affinity) if isinstance(affinity, dict) else {}
    node_affinity = result.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        node_affinity = result["nodeAffinity"] = {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, dict):
        required = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {}
    required["nodeSelectorTerms"] = [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
    return result


def target_node(pod: Obj) -> str | None:
    """``GetTargetNodeName``: the pod's node, or the one its ``metadata.name`` node affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    for term in required_node_affinity(spec) or ():
        for on_field, key, operator, values in term:
            if on_field and key == "metadata.name" and operator == "In":
                return values[0] if len(values) == 1 else None
    return None


def template_generation(ds: Obj) -> str | None:
    """The template generation pods are labelled with.

    Kubernetes keeps it in :data:`TEMPLATE_GENERATION_ANNOTATION`; where that is absent
    ``metadata.generation`` stands in (it only grows, and grows with every template change).
    """
    meta = ds.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if value:
        return str(value)
    generation = meta.get("generation")
    return str(generation) if generation is not None else None


def is_updated(pod: Obj, hash_: str, generation: str | None) -> bool:
    """``IsPodUpdated``: the pod carries the current revision's hash, or the current template generation."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if hash_ and labels.get(CONTROLLER_REVISION_HASH_LABEL) == hash_:
        return True
    return generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation


def daemon_pod(ds: Obj, ref: Obj, node: str, hash_: str, generation: str | None) -> Obj:
    """The pod the DaemonSet runs on ``node``."""
    template = (ds.get("spec") or {}).get("template") or {}
    extra = {CONTROLLER_REVISION_HASH_LABEL: hash_} if hash_ else {}
    if generation is not None:
        extra[TEMPLATE_GENERATION_LABEL] = generation
    pod = pod_from_template(template, ds, ref, extra_labels=extra)
    spec = pod["spec"]
    spec["tolerations"] = with_daemon_tolerations(spec)
    spec["affinity"] = node_name_affinity(spec.get("affinity"), node)
    return pod
