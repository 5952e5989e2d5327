"""Workload kinds (apps/v1, batch/v1): defaults, validation, generation and scale.

podlife stores and serves these kinds the way Kubernetes does -- the same defaults,
the same required fields, ``metadata.generation`` bumped on spec changes, the
``status`` and ``scale`` subresources -- so tools that create and read them (kubectl
create deployment, rollout status, scale, client libraries) work. Controllers that act
on them come in a later issue.
"""

from __future__ import annotations

import uuid
from typing import Any

from .pods import PodStrategy
from .types import FieldError, Obj, Strategy, invalid, required

_POD_DEFAULTS = PodStrategy()


def default_pod_template(template: Any) -> None:
    if not isinstance(template, dict):
        return
    template.setdefault("metadata", {})
    spec = template.get("spec")
    if isinstance(spec, dict):
        _POD_DEFAULTS.default({"spec": spec})


def validate_selector_matches_template(spec: Obj) -> list[FieldError]:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [required("spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return [invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")]
    return []


def validate_template(spec: Obj) -> list[FieldError]:
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required("spec.template")]
    errs = _POD_DEFAULTS.validate({"spec": template.get("spec")})
    return [FieldError(e.type, "spec.template." + e.field, e.detail, e.value) for e in errs]


def _default_fields(parent: Obj, key: str, defaults: Obj) -> Obj | None:
    """Fill missing fields of ``parent[key]`` (created when absent; clients often send ``{}``)."""
    value = parent.setdefault(key, {})
    if not isinstance(value, dict):
        return None
    for k, v in defaults.items():
        if value.get(k) in (None, ""):
            value[k] = v
    return value


def _default_rolling(spec: Obj, key: str, rolling: Obj) -> None:
    """An update strategy: type RollingUpdate unless set, and the rolling parameters' defaults."""
    strategy = _default_fields(spec, key, {"type": "RollingUpdate"})
    if strategy is not None and strategy["type"] == "RollingUpdate":
        _default_fields(strategy, "rollingUpdate", rolling)


class ReplicatedStrategy(Strategy):
    """Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers."""

    has_status = True
    tracks_generation = True

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if self.kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if self.kind == "Deployment":
            _default_rolling(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
            spec.setdefault("progressDeadlineSeconds", 600)
        elif self.kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            _default_rolling(spec, "updateStrategy", {"partition": 0})
            _default_fields(spec, "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        elif self.kind == "DaemonSet":
            _default_rolling(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = validate_selector_matches_template(spec) + validate_template(spec)
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            errs.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
        return errs


class JobStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("manualSelector"):
            return
        uid = obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        name = obj["metadata"].get("name") or ""
        selector_labels = {"batch.kubernetes.io/controller-uid": uid}
        spec["selector"] = {"matchLabels": selector_labels}
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        default_pod_template(spec.get("template"))

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


class CronJobStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job_spec, dict):
            default_pod_template(job_spec.get("template"))

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
