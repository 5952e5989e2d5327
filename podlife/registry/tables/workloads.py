"""Tables for workload controllers: ``apps``, ``batch``, ``autoscaling`` and ``policy`` kinds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._base import (
    JSON,
    NONE,
    UNKNOWN,
    age,
    age_column,
    as_int,
    as_list,
    between,
    bool_text,
    column,
    condition,
    container_cells,
    containers_column,
    dig,
    format_label_selector,
    format_labels,
    images_column,
    meta,
    name_column,
    name_of,
    replica_columns,
    selector_column,
    selector_string,
    since,
    spec,
    status,
    TablePrinter,
    template_spec,
)


def _desired_replicas(obj: Mapping[str, Any]) -> int:
    """``spec.replicas``, which the API defaults to 1 when omitted."""
    return as_int(spec(obj).get("replicas"), 1)


# --------------------------------------------------------------------------
# apps


def _deployment_cells(obj: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(template_spec(obj))
    obj_status = status(obj)
    return [
        name_of(obj),
        f"{as_int(obj_status.get('readyReplicas'))}/{_desired_replicas(obj)}",
        as_int(obj_status.get("updatedReplicas")),
        as_int(obj_status.get("availableReplicas")),
        age(obj, now),
        names,
        images,
        selector_string(spec(obj).get("selector")),
    ]


def _replica_set_cells(obj: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(template_spec(obj))
    obj_status = status(obj)
    return [
        name_of(obj),
        _desired_replicas(obj),
        as_int(obj_status.get("replicas")),
        as_int(obj_status.get("readyReplicas")),
        age(obj, now),
        names,
        images,
        format_label_selector(spec(obj).get("selector")),
    ]


def _daemon_set_cells(obj: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(template_spec(obj))
    obj_status = status(obj)
    return [
        name_of(obj),
        as_int(obj_status.get("desiredNumberScheduled")),
        as_int(obj_status.get("currentNumberScheduled")),
        as_int(obj_status.get("numberReady")),
        as_int(obj_status.get("updatedNumberScheduled")),
        as_int(obj_status.get("numberAvailable")),
        format_labels(template_spec(obj).get("nodeSelector")),
        age(obj, now),
        names,
        images,
        format_label_selector(spec(obj).get("selector")),
    ]


def _stateful_set_cells(obj: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(template_spec(obj))
    return [
        name_of(obj),
        f"{as_int(status(obj).get('readyReplicas'))}/{_desired_replicas(obj)}",
        age(obj, now),
        names,
        images,
    ]


def _controller_reference(obj: Mapping[str, Any]) -> str:
    """``kind.group/name`` (lower-cased kind.group) of the controlling owner, or ``<none>``."""
    for ref in as_list(meta(obj).get("ownerReferences")):
        if isinstance(ref, dict) and ref.get("controller") is True:
            api_version = str(ref.get("apiVersion", ""))
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = str(ref.get("kind", ""))
            qualified = f"{kind}.{group}" if group else kind
            return f"{qualified.lower()}/{ref.get('name', '')}" if qualified else str(ref.get("name", ""))
    return NONE


DEPLOYMENT_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Ready", description="Ready replicas out of desired replicas."),
        column("Up-to-date", description="Replicas running the latest pod template."),
        column("Available", description="Replicas available for at least minReadySeconds."),
        age_column(),
        containers_column(),
        images_column(),
        selector_column(),
    ),
    cells=_deployment_cells,
)

REPLICA_SET_PRINTER = TablePrinter(columns=replica_columns(), cells=_replica_set_cells)

DAEMON_SET_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Desired", "integer", "Nodes that should run the daemon pod."),
        column("Current", "integer", "Nodes running at least one daemon pod."),
        column("Ready", "integer", "Nodes with a ready daemon pod."),
        column("Up-to-date", "integer", "Nodes running the latest daemon pod template."),
        column("Available", "integer", "Nodes with an available daemon pod."),
        column("Node Selector", description="Node selector of the pod template."),
        age_column(),
        containers_column(),
        images_column(),
        selector_column(),
    ),
    cells=_daemon_set_cells,
)

STATEFUL_SET_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Ready", description="Ready replicas out of desired replicas."),
        age_column(),
        containers_column(),
        images_column(),
    ),
    cells=_stateful_set_cells,
)

CONTROLLER_REVISION_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Controller", description="Controller owning this revision."),
        column("Revision", description="Revision number."),
        age_column(),
    ),
    cells=lambda obj, now: [name_of(obj), _controller_reference(obj), as_int(obj.get("revision")), age(obj, now)],
)

# --------------------------------------------------------------------------
# batch


def job_completions(job: Mapping[str, Any]) -> str:
    succeeded = as_int(status(job).get("succeeded"))
    completions = spec(job).get("completions")
    if completions is not None:
        return f"{succeeded}/{as_int(completions)}"
    parallelism = as_int(spec(job).get("parallelism"))
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: Mapping[str, Any], now: datetime) -> str:
    start = status(job).get("startTime")
    if not start:
        return ""
    completion = status(job).get("completionTime")
    if not completion:
        return since(start, now)
    return between(start, completion)


def job_status(job: Mapping[str, Any]) -> str:
    """Complete, Failed, Terminating, Suspended, FailureTarget or Running (first that applies)."""
    conditions = status(job).get("conditions")

    def has(type_: str) -> bool:
        found = condition(conditions, type_)
        return found is not None and found.get("status") == "True"

    if has("Complete"):
        return "Complete"
    if has("Failed"):
        return "Failed"
    if meta(job).get("deletionTimestamp"):
        return "Terminating"
    if has("Suspended"):
        return "Suspended"
    if has("FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_cells(job: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(template_spec(job))
    return [
        name_of(job),
        job_status(job),
        job_completions(job),
        job_duration(job, now),
        age(job, now),
        names,
        images,
        format_label_selector(spec(job).get("selector")),
    ]


def _cron_job_cells(cron_job: JSON, now: datetime) -> list[Any]:
    cron_spec = spec(cron_job)
    job_template_spec = dig(cron_spec, "jobTemplate", "spec") or {}
    names, images = container_cells(dig(job_template_spec, "template", "spec"))
    last_schedule = status(cron_job).get("lastScheduleTime")
    return [
        name_of(cron_job),
        cron_spec.get("schedule", ""),
        cron_spec.get("timeZone") or NONE,
        bool_text(cron_spec.get("suspend")),
        len(as_list(status(cron_job).get("active"))),
        since(last_schedule, now) if last_schedule else NONE,
        age(cron_job, now),
        names,
        images,
        format_label_selector(job_template_spec.get("selector")),
    ]


JOB_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Status", description="Overall state of the job."),
        column("Completions", description="Succeeded pods out of required completions."),
        column("Duration", description="Time the job took (or has taken so far)."),
        age_column(),
        containers_column(),
        images_column(),
        selector_column(),
    ),
    cells=_job_cells,
)

CRON_JOB_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Schedule", description="Cron schedule."),
        column("Timezone", description="Time zone of the schedule."),
        column("Suspend", "boolean", "Whether new runs are suspended."),
        column("Active", "integer", "Number of running jobs."),
        column("Last Schedule", description="Time since the last scheduled run."),
        age_column(),
        containers_column(),
        images_column(),
        selector_column(),
    ),
    cells=_cron_job_cells,
)

# --------------------------------------------------------------------------
# autoscaling and policy

HPA_SHOWN_METRICS = 2
DEFAULT_CPU_UTILIZATION = 80
DEFAULT_MIN_REPLICAS = 1


def _quantity(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def _percent(value: Any) -> str | None:
    return None if value is None else f"{as_int(value)}%"


def _hpa_metric_text(metric: JSON, current: JSON) -> str:
    """One ``current/target`` entry of the HPA TARGETS cell (autoscaling/v2 shape)."""
    kind = metric.get("type")
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source, now_value = metric.get(key) or {}, (current.get(key) or {}).get("current") or {}
        target = source.get("target") or {}
        if target.get("averageValue") is not None:
            return f"{source.get('name', '')}: {_quantity(now_value.get('averageValue'))}/{target['averageValue']}"
        shown = _percent(now_value.get("averageUtilization")) or UNKNOWN
        wanted = _percent(target.get("averageUtilization")) or "<auto>"
        return f"{source.get('name', '')}: {shown}/{wanted}"
    if kind == "Pods":
        target = dig(metric, "pods", "target") or {}
        return f"{_quantity(dig(current, 'pods', 'current', 'averageValue'))}/{target.get('averageValue')}"
    if kind in ("Object", "External"):
        key = "object" if kind == "Object" else "external"
        target = dig(metric, key, "target") or {}
        now_value = dig(current, key, "current") or {}
        if target.get("averageValue") is not None:
            return f"{_quantity(now_value.get('averageValue'))}/{target['averageValue']} (avg)"
        return f"{_quantity(now_value.get('value'))}/{target.get('value')}"
    return "<unknown type>"


def hpa_targets(hpa: Mapping[str, Any]) -> str:
    hpa_spec, hpa_status = spec(hpa), status(hpa)
    metrics = [m for m in as_list(hpa_spec.get("metrics")) if isinstance(m, dict)]
    if not metrics:
        # autoscaling/v1 shape, or v2 without metrics: the API defaults both to
        # a single 80% CPU utilisation target.
        target = as_int(hpa_spec.get("targetCPUUtilizationPercentage"), DEFAULT_CPU_UTILIZATION)
        current = _percent(hpa_status.get("currentCPUUtilizationPercentage")) or UNKNOWN
        return f"cpu: {current}/{target}%"
    statuses = as_list(hpa_status.get("currentMetrics"))
    texts = [
        _hpa_metric_text(metric, statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {})
        for i, metric in enumerate(metrics)
    ]
    shown = ", ".join(texts[:HPA_SHOWN_METRICS])
    if len(texts) > HPA_SHOWN_METRICS:
        return f"{shown} + {len(texts) - HPA_SHOWN_METRICS} more..."
    return shown


def _hpa_cells(hpa: JSON, now: datetime) -> list[Any]:
    hpa_spec = spec(hpa)
    ref = hpa_spec.get("scaleTargetRef") or {}
    return [
        name_of(hpa),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        hpa_targets(hpa),
        str(as_int(hpa_spec.get("minReplicas"), DEFAULT_MIN_REPLICAS)),
        as_int(hpa_spec.get("maxReplicas")),
        as_int(status(hpa).get("currentReplicas")),
        age(hpa, now),
    ]


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else str(value)


HPA_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Reference", description="Kind/name of the scaled object."),
        column("Targets", description="Current and target metric values."),
        column("MinPods", description="Lower replica limit."),
        column("MaxPods", description="Upper replica limit."),
        column("Replicas", description="Current number of replicas."),
        age_column(),
    ),
    cells=_hpa_cells,
)

PDB_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Min Available", description="Pods that must stay available."),
        column("Max Unavailable", description="Pods that may be unavailable."),
        column("Allowed Disruptions", "integer", "Disruptions currently allowed."),
        age_column(),
    ),
    cells=lambda obj, now: [
        name_of(obj),
        _int_or_string(spec(obj).get("minAvailable")),
        _int_or_string(spec(obj).get("maxUnavailable")),
        as_int(status(obj).get("disruptionsAllowed")),
        age(obj, now),
    ],
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("apps", "Deployment"): DEPLOYMENT_PRINTER,
    ("apps", "ReplicaSet"): REPLICA_SET_PRINTER,
    ("apps", "DaemonSet"): DAEMON_SET_PRINTER,
    ("apps", "StatefulSet"): STATEFUL_SET_PRINTER,
    ("apps", "ControllerRevision"): CONTROLLER_REVISION_PRINTER,
    ("batch", "Job"): JOB_PRINTER,
    ("batch", "CronJob"): CRON_JOB_PRINTER,
    ("autoscaling", "HorizontalPodAutoscaler"): HPA_PRINTER,
    ("policy", "PodDisruptionBudget"): PDB_PRINTER,
}
