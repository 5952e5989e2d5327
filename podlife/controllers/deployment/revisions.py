"""Revisions: the annotations a Deployment writes on its ReplicaSets, the new ReplicaSet, history cleanup.

Pure (Kubernetes' ``deployment/util/deployment_util.go`` and ``sync.go``):

* Each ReplicaSet carries ``deployment.kubernetes.io/revision``: the new one gets one more
  than the highest of the old ones. When an old ReplicaSet becomes new again (a rollback,
  ``kubectl rollout undo``) it gets the next number and its former numbers are kept in
  ``deployment.kubernetes.io/revision-history`` (comma separated, at most
  :data:`MAX_REVISION_HISTORY_CHARS` characters, the oldest dropped first).
  The Deployment's own ``deployment.kubernetes.io/revision`` follows its new ReplicaSet's.
* The Deployment's annotations (``kubernetes.io/change-cause`` among them) are copied to
  its new ReplicaSet -- except ``kubectl.kubernetes.io/last-applied-configuration`` and
  the deployment-owned ones (revision, revision-history, desired-replicas,
  max-replicas, the deprecated rollback-to) -- so ``kubectl rollout history`` can show
  why each revision was made.
* ``deployment.kubernetes.io/desired-replicas`` and ``max-replicas`` record the
  Deployment's ``replicas`` and ``replicas + maxSurge`` when the ReplicaSet was last
  scaled: proportional scaling reads them to know the size it scaled from.
* The new ReplicaSet (:func:`new_replica_set`) is named ``<deployment>-<hash>``; its
  labels, selector and template labels gain ``pod-template-hash``; the Deployment is its
  controller; it starts at the size the strategy allows.
* History (:func:`to_clean_up`): beyond ``revisionHistoryLimit`` old ReplicaSets, the
  lowest revisions go -- only those with no pods asked for or present, whose status has
  caught up with their spec, and not being deleted already.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from ...client.base import Obj
from ..history import POD_TEMPLATE_HASH_LABEL
from ..pod_control import controller_ref
from .replicasets import REVISION_ANNOTATION, actual_replicas, by_revision, spec_replicas

REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
#: the deployment controller's ``maxRevHistoryLengthInChars``
MAX_REVISION_HISTORY_CHARS = 2000
DEFAULT_REVISION_HISTORY_LIMIT = 10

SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
                                 DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION})


def _annotations(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    annotations: dict[str, str] = meta["annotations"]
    return annotations


def copy_deployment_annotations(deployment: Obj, rs: Obj) -> bool:
    """Copy the Deployment's annotations (but :data:`SKIPPED_ANNOTATIONS`) onto ``rs``; whether any changed."""
    target = _annotations(rs)
    changed = False
    for key, value in ((deployment.get("metadata") or {}).get("annotations") or {}).items():
        if key in SKIPPED_ANNOTATIONS or target.get(key) == value:
            continue
        target[key] = value
        changed = True
    return changed


def _history_with(history: str, old: str, limit: int) -> str | None:
    """``history`` with ``old`` appended, oldest dropped to fit ``limit`` characters (None: it cannot fit)."""
    revisions = history.split(",")
    if not revisions[0]:
        return old
    total = len(history) + len(old) + 1
    start = 0
    while total > limit and start < len(revisions):
        total -= len(revisions[start]) + 1
        start += 1
    if total > limit:
        return None
    return ",".join([*revisions[start:], old])


def set_replicas_annotations(rs: Obj, desired: int, most: int) -> bool:
    """Record ``desired-replicas`` and ``max-replicas`` on ``rs``; whether either changed."""
    annotations = _annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(most))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, most: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or annotations.get(MAX_REPLICAS_ANNOTATION) != str(most)


def desired_replicas_annotation(rs: Obj) -> int | None:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS_ANNOTATION)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def max_replicas_annotation(rs: Obj) -> int | None:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS_ANNOTATION)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def set_new_rs_annotations(deployment: Obj, rs: Obj, new_revision: int, exists: bool, desired: int, most: int,
                           history_limit: int = MAX_REVISION_HISTORY_CHARS) -> bool:
    """``SetNewReplicaSetAnnotations`` on ``rs`` (changed in place); whether anything changed.

    ``desired``/``most``: the Deployment's replicas and replicas + maxSurge, recorded on a ReplicaSet about to be created.
    """
    changed = copy_deployment_annotations(deployment, rs)
    annotations = _annotations(rs)
    old_text = annotations.get(REVISION_ANNOTATION)
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        old = 0  # Kubernetes logs and leaves it; a number replaces it here
    if old < new_revision:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
    if old_text is not None and old < new_revision:
        history = _history_with(annotations.get(REVISION_HISTORY_ANNOTATION, ""), old_text, history_limit)
        if history is not None:
            annotations[REVISION_HISTORY_ANNOTATION] = history
    if not exists and set_replicas_annotations(rs, desired, most):
        changed = True
    return changed


def set_deployment_revision(deployment: Obj, revision: str) -> bool:
    """The Deployment's own revision annotation follows its new ReplicaSet's; whether it changed."""
    annotations = _annotations(deployment)
    if annotations.get(REVISION_ANNOTATION) == revision:
        return False
    annotations[REVISION_ANNOTATION] = revision
    return True


def selector_with_hash(selector: Obj | None, hash_: str) -> Obj:
    """``CloneSelectorAndAddLabel``: the selector also requiring ``pod-template-hash``."""
    out = copy.deepcopy(selector or {})
    out["matchLabels"] = {**(out.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: hash_}
    return out


def new_replica_set(deployment: Obj, hash_: str) -> Obj:
    """The Deployment's new ReplicaSet, size 0 (the caller sizes and annotates it)."""
    meta, spec = deployment["metadata"], deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        tmeta = template["metadata"] = {}
    labels = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: hash_}
    tmeta["labels"] = labels
    rs_spec: Obj = {"replicas": 0, "selector": selector_with_hash(spec.get("selector"), hash_), "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta.get("namespace"),
                         "labels": dict(labels),
                         "ownerReferences": [controller_ref(deployment, "apps/v1", "Deployment")]},
            "spec": rs_spec}


def history_limit(deployment: Obj) -> int | None:
    value = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    return int(value) if value is not None else None


def to_clean_up(deployment: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """``cleanupDeployment``: the old ReplicaSets beyond ``revisionHistoryLimit`` to delete, lowest revision first."""
    limit = history_limit(deployment)
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - limit
    if excess <= 0:
        return []
    out = []
    for rs in by_revision(alive)[:excess]:
        meta, status = rs["metadata"], rs.get("status") or {}
        if actual_replicas(rs) or spec_replicas(rs) or int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
            continue
        out.append(rs)
    return out
