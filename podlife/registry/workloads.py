"""Workload kinds (apps/v1, batch/v1): defaults, validation, generation and scale.

podlife stores and serves these kinds the way Kubernetes does -- the same defaults
(:mod:`podlife.registry.defaults`), the same required fields (apps/v1 needs a
selector; a ReplicationController's comes from its template), status objects that
carry their zero-valued counters from creation on, ``metadata.generation`` bumped on
spec changes (and a DaemonSet's template generation in its
``deprecated.daemonset.template.generation`` annotation, which only template changes
advance), the ``status`` and ``scale`` subresources -- so tools that create and
read them (kubectl create deployment, rollout status, scale, client libraries) work.
Controllers that act on them come in a later issue. What makes each kind valid --
Kubernetes' rules and messages -- is :mod:`podlife.registry.workload_validation`.
"""

from __future__ import annotations

import uuid

from .defaults import DEFAULTERS, STATUS_DEFAULTS, default_cronjob, default_job, with_status_defaults
from .types import FieldError, Obj, Strategy, invalid
from .workload_validation import (
    validate_cron_job,
    validate_daemon_set,
    validate_deployment,
    validate_job,
    validate_job_update,
    validate_replica_set,
    validate_replication_controller,
    validate_selector_unchanged,
    validate_stateful_set,
    validate_stateful_set_update,
)

class WorkloadStrategy(Strategy):
    """What every workload kind shares: status subresource, generation, status zero values."""

    has_status = True
    tracks_generation = True
    #: the kind's entry of :data:`~podlife.registry.defaults.STATUS_DEFAULTS`
    status_defaults: Obj = {}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = with_status_defaults(None, self.status_defaults)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)  # the stored status (older stores may lack the zeros)
        new["status"] = with_status_defaults(new.get("status"), self.status_defaults)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged["status"] = with_status_defaults(merged.get("status"), self.status_defaults)
        return merged


_GROUP_OF = {"Deployment": "apps", "ReplicaSet": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
             "ReplicationController": ""}


class ReplicatedStrategy(WorkloadStrategy):
    """Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers.

    A DaemonSet's template generation (see :func:`daemon_set_template_generation`) is
    kept in its annotation: set on create, carried over from the stored object on
    every write, one more when a write of the main resource changes ``spec.template``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "StatefulSet":
            self.name_rule = "label"  # ValidateStatefulSetName: its pods' hostnames
        key = (_GROUP_OF[kind], kind)
        self._defaulter = DEFAULTERS[key]
        self.status_defaults = STATUS_DEFAULTS[key]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if self.kind == "DaemonSet":
            generation = _parse_int64(_annotations(obj).get(TEMPLATE_GENERATION_ANNOTATION))
            if generation is not None or TEMPLATE_GENERATION_ANNOTATION not in _annotations(obj):
                _set_template_generation(obj, max(generation or 1, 1))  # an unparseable value is left to validate

    def default(self, obj: Obj) -> None:
        self._defaulter(obj)

    def default_update(self, new: Obj, old: Obj) -> None:
        super().default_update(new, old)
        if self.kind == "DaemonSet":  # after defaulting: an undefaulted PUT of the same template changes nothing
            generation = daemon_set_template_generation(old)
            if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
                generation += 1
            _set_template_generation(new, generation)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        if self.kind == "DaemonSet":
            if merged.get("metadata") is old.get("metadata"):
                return merged
            merged["metadata"] = dict(merged.get("metadata") or {})
            _set_template_generation(merged, daemon_set_template_generation(old))
        return merged

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = _VALIDATORS[self.kind](obj)
        if self.kind == "DaemonSet":
            value = _annotations(obj).get(TEMPLATE_GENERATION_ANNOTATION)
            if value is not None and _parse_int64(value) is None:
                errs.append(invalid(f"metadata.annotations[{TEMPLATE_GENERATION_ANNOTATION}]", value,
                                    "must be an integer (the DaemonSet's template generation)"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if self.kind == "StatefulSet":
            errs += validate_stateful_set_update(new, old)
        elif self.kind != "ReplicationController":
            errs += validate_selector_unchanged(new, old)
        return errs


#: where apps/v1 keeps a DaemonSet's template generation (the older APIs' ``spec.templateGeneration``;
#: Kubernetes' ``DeprecatedTemplateGeneration``), a decimal string
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def daemon_set_template_generation(ds: Obj) -> int:
    """The template generation of a stored DaemonSet.

    Kubernetes' DaemonSet strategy sets it to 1 on create (or keeps a larger one the
    creator gave) and adds one on every update that changes ``spec.template`` -- unlike
    ``metadata.generation``, which grows with any change of the spec. A DaemonSet stored
    without the annotation (by an older podlife) counts its ``metadata.generation``, the
    number its controller labelled pods with then.
    """
    value = _parse_int64(_annotations(ds).get(TEMPLATE_GENERATION_ANNOTATION))
    if value is not None:
        return value
    generation = (ds.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) and not isinstance(generation, bool) else 0


def _parse_int64(value: object) -> int | None:
    """Go's ``strconv.ParseInt(value, 10, 64)``: an optional sign and decimal digits, in range."""
    if not isinstance(value, str):
        return None
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    number = int(value)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _annotations(obj: Obj) -> dict:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _set_template_generation(obj: Obj, generation: int) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    annotations = meta.get("annotations")
    if annotations is None:
        annotations = {}
    elif not isinstance(annotations, dict):
        return  # validation names the field
    meta["annotations"] = {**annotations, TEMPLATE_GENERATION_ANNOTATION: str(generation)}


_VALIDATORS = {"Deployment": validate_deployment, "ReplicaSet": validate_replica_set,
               "StatefulSet": validate_stateful_set, "DaemonSet": validate_daemon_set,
               "ReplicationController": validate_replication_controller}


class JobStrategy(WorkloadStrategy):
    status_defaults = STATUS_DEFAULTS[("batch", "Job")]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("manualSelector"):
            return
        uid = obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        name = obj["metadata"].get("name") or ""
        selector_labels = {"batch.kubernetes.io/controller-uid": uid}
        spec["selector"] = {"matchLabels": selector_labels}
        template = spec.setdefault("template", {})
        if not isinstance(template, dict):
            return  # validation names the field
        if not isinstance(template.get("metadata"), dict):
            template["metadata"] = {}
        if not isinstance(template["metadata"].get("labels"), dict):
            template["metadata"]["labels"] = {}
        labels = template["metadata"]["labels"]
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})

    def default(self, obj: Obj) -> None:
        default_job(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_job(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_job(new) + validate_job_update(new, old)


class CronJobStrategy(WorkloadStrategy):
    status_defaults = STATUS_DEFAULTS[("batch", "CronJob")]

    def default(self, obj: Obj) -> None:
        default_cronjob(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_cron_job(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_cron_job(new, old)


def scale_of(obj: Obj) -> Obj:
    """The ``autoscaling/v1`` Scale view of a replicated object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = spec.get("selector") or {}
    if isinstance(selector, dict) and "matchLabels" in selector:
        selector_text = ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    else:
        selector_text = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) if isinstance(selector, dict) else ""
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector_text},
    }
