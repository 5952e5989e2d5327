"""Workload kinds (apps/v1, batch/v1): defaults, validation, generation and scale.

podlife stores and serves these kinds the way Kubernetes does -- the same defaults
(:mod:`podlife.registry.defaults`), the same required fields (apps/v1 needs a
selector; a ReplicationController's comes from its template), status objects that
carry their zero-valued counters from creation on, ``metadata.generation`` bumped on
spec changes, the ``status`` and ``scale`` subresources -- so tools that create and
read them (kubectl create deployment, rollout status, scale, client libraries) work.
Controllers that act on them come in a later issue. What makes each kind valid --
Kubernetes' rules and messages -- is :mod:`podlife.registry.workload_validation`.
"""

from __future__ import annotations

import uuid

from .defaults import DEFAULTERS, STATUS_DEFAULTS, default_cronjob, default_job, with_status_defaults
from .types import FieldError, Obj, Strategy
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
    """Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "StatefulSet":
            self.name_rule = "label"  # ValidateStatefulSetName: its pods' hostnames
        key = (_GROUP_OF[kind], kind)
        self._defaulter = DEFAULTERS[key]
        self.status_defaults = STATUS_DEFAULTS[key]

    def default(self, obj: Obj) -> None:
        self._defaulter(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return _VALIDATORS[self.kind](obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if self.kind == "StatefulSet":
            errs += validate_stateful_set_update(new, old)
        elif self.kind != "ReplicationController":
            errs += validate_selector_unchanged(new, old)
        return errs


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
