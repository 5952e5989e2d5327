"""Workload kinds (apps/v1, batch/v1): defaults, validation, generation and scale.

podlife stores and serves these kinds the way Kubernetes does -- the same defaults
(:mod:`podlife.registry.defaults`), the same required fields (apps/v1 needs a
selector; a ReplicationController's comes from its template), status objects that
carry their zero-valued counters from creation on, ``metadata.generation`` bumped on
spec changes, the ``status`` and ``scale`` subresources -- so tools that create and
read them (kubectl create deployment, rollout status, scale, client libraries) work.
Controllers that act on them come in a later issue.
"""

from __future__ import annotations

import uuid

from .defaults import DEFAULTERS, STATUS_DEFAULTS, default_cronjob, default_job, with_status_defaults
from .pods import PodStrategy
from .types import FieldError, Obj, Strategy, invalid, required

_POD_RULES = PodStrategy()


def validate_selector_matches_template(spec: Obj) -> list[FieldError]:
    """apps/v1: a LabelSelector is required, and the template's labels must match it."""
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [required("spec.selector")]
    return _template_labels_match(spec, selector.get("matchLabels") or {})


def validate_map_selector(spec: Obj) -> list[FieldError]:
    """core/v1 ReplicationController: a plain label map (defaulted from the template)."""
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        return [required("spec.selector")]
    return _template_labels_match(spec, selector)


def _template_labels_match(spec: Obj, match_labels: Obj) -> list[FieldError]:
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return [invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")]
    return []


def validate_template(spec: Obj) -> list[FieldError]:
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required("spec.template")]
    errs = _POD_RULES.validate({"spec": template.get("spec")})
    return [FieldError(e.type, "spec.template." + e.field, e.detail, e.value) for e in errs]


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
    """Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        key = (_GROUP_OF[kind], kind)
        self._defaulter = DEFAULTERS[key]
        self.status_defaults = STATUS_DEFAULTS[key]

    def default(self, obj: Obj) -> None:
        self._defaulter(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        if self.kind == "ReplicationController":
            errs = validate_map_selector(spec)
        else:
            errs = validate_selector_matches_template(spec)
        errs += validate_template(spec)
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            errs.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
        return errs


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
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = validate_template(spec)
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            errs.append(FieldError("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                                   'supported values: "OnFailure", "Never"', policy))
        return errs


class CronJobStrategy(WorkloadStrategy):
    status_defaults = STATUS_DEFAULTS[("batch", "CronJob")]

    def default(self, obj: Obj) -> None:
        default_cronjob(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        if not spec.get("schedule"):
            return [required("spec.schedule")]
        return []


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
