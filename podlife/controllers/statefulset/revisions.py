"""A StatefulSet's ControllerRevisions: what they hold, and which are current and update.

Pure functions (the controller writes what they decide). Kubernetes facts followed
(``stateful_set_utils.go`` ``getPatch``/``newRevision``/``ApplyRevision``,
``stateful_set_control.go`` ``getStatefulSetRevisions``/``truncateHistory``):

* a revision's ``data`` is a strategic merge patch restoring the template,
  ``{"spec": {"template": {..., "$patch": "replace"}}}`` -- what ``kubectl rollout undo``
  applies to the set; its labels are the template's (plus ``controller-revision-hash``),
  its annotations the set's (so ``kubectl rollout history`` shows ``kubernetes.io/change-cause``);
  it is named ``<set>-<hash>`` (:func:`podlife.controllers.history.template_hash`, with
  ``status.collisionCount``);
* the *update revision* is the set's template now: the newest revision if it holds it;
  an older one holding it is renumbered to the next revision (a rollback); else a new
  revision with the next number; the *current revision* is the one
  ``status.currentRevision`` names (none: the update revision);
* old revisions beyond ``revisionHistoryLimit`` that no pod uses and that are neither
  current nor update are deleted, oldest first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ...client.base import Obj
from ..history import controller_revision, find_equal, next_revision, revisions_to_prune, sorted_revisions
from ..pod_control import controller_ref
from .identity import API_VERSION, KIND, revision_of


def revision_data(sts: Obj) -> Obj:
    """The patch that restores the set's template (``getPatch``)."""
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def new_revision(sts: Obj, number: int, collision_count: int | None) -> Obj:
    """A ControllerRevision of the set's template now (``newRevision``)."""
    template_labels = ((sts.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    revision = controller_revision(sts, controller_ref(sts, API_VERSION, KIND), revision_data(sts), number,
                                   collision_count, labels=dict(template_labels))
    annotations = sts["metadata"].get("annotations") or {}
    if annotations:
        revision["metadata"]["annotations"] = dict(annotations)
    return revision


def apply_revision(sts: Obj, revision: Obj) -> Obj:
    """The set with the template ``revision`` holds (``ApplyRevision``)."""
    restored = copy.deepcopy(sts)
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    restored.setdefault("spec", {})["template"] = template
    return restored


@dataclass(frozen=True)
class RevisionPlan:
    """What :func:`plan_revisions` found: the update revision as it should be stored, and how."""

    #: ``create`` (new), ``renumber`` (an older equal one gets ``number``) or ``keep`` (the newest holds it)
    action: str
    revision: Obj
    number: int


def plan_revisions(sts: Obj, revisions: list[Obj]) -> RevisionPlan:
    """How to get the update revision from the set's revisions (``getStatefulSetRevisions``)."""
    ordered = sorted_revisions(revisions)
    number = next_revision(ordered)
    collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
    wanted = new_revision(sts, number, collision_count)
    equal = find_equal(ordered, wanted["data"])
    if equal and ordered and equal[-1]["metadata"]["name"] == ordered[-1]["metadata"]["name"]:
        return RevisionPlan("keep", ordered[-1], int(ordered[-1].get("revision") or 0))
    if equal:
        return RevisionPlan("renumber", equal[-1], number)
    return RevisionPlan("create", wanted, number)


def current_revision(sts: Obj, revisions: list[Obj], update: Obj) -> Obj:
    """The revision ``status.currentRevision`` names, else the update revision."""
    name = (sts.get("status") or {}).get("currentRevision")
    for revision in revisions:
        if revision["metadata"]["name"] == name:
            return revision
    return update


def history_to_prune(sts: Obj, revisions: list[Obj], pods: list[Obj], current: str, update: str) -> list[Obj]:
    """The revisions ``revisionHistoryLimit`` lets go (``truncateHistory``)."""
    live = {revision_of(p) for p in pods} | {current, update}
    limit: Any = (sts.get("spec") or {}).get("revisionHistoryLimit")
    return revisions_to_prune(revisions, None if limit is None else int(limit), live)
