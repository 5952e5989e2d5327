"""Validation of the workload kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet,
ReplicationController, Job and CronJob -- Kubernetes' rules, paths and messages.

What it reads: a workload after defaulting (:mod:`podlife.registry.defaults`), and on
update the stored one. What it writes: :class:`~podlife.registry.types.FieldError`
lists the strategies in :mod:`podlife.registry.workloads` return, which the REST layer
turns into the 422 ``<Kind> "<name>" is invalid: ...`` Kubernetes answers. Why: a
controller acts on what is stored; a Deployment whose selector does not select its own
pods, a Job that restarts its pods ``Always`` or a CronJob whose schedule cannot be
parsed would be stored and then misbehave far from the user.

The pod template is a pod spec: it is checked by the same rules as a Pod
(:class:`~podlife.registry.pods.PodStrategy`, which runs
:func:`~podlife.registry.pod_validation.validate_pod_spec`), with its paths moved under
``spec.template`` (``spec.jobTemplate.spec.template`` for a CronJob), plus the kind's
restart-policy rule.

Kubernetes facts followed, from ``pkg/apis/apps/validation/validation.go``
(``ValidateDeploymentSpec``, ``ValidateDeploymentStrategy``, ``ValidateRollingUpdateDeployment``,
``ValidateReplicaSetSpec``, ``ValidatePodTemplateSpecForReplicaSet``, ``ValidateStatefulSetSpec``,
``ValidateStatefulSetUpdate``, ``ValidateDaemonSetSpec``, ``ValidateRollingUpdateDaemonSet``),
``pkg/apis/core/validation/validation.go`` (``ValidateReplicationControllerSpec``,
``ValidatePodTemplateSpecForRC``), ``pkg/apis/batch/validation/validation.go``
(``validateJobSpec``, ``ValidateJobSpecUpdate``, ``validateCronJobSpec``,
``validateScheduleFormat``, ``validateTimeZone``, ``ValidateJobTemplateSpec``) and the
apps/v1 registry strategies (``spec.selector`` immutable on update):

* selector required, a valid ``metav1.LabelSelector``, not empty (the message names
  "deployment" for ReplicaSets too, as Kubernetes' does), and matching the template's
  labels -- a missing selector also reports the mismatch, as Kubernetes does;
* ``restartPolicy`` ``Always`` for the replicated kinds, ``OnFailure``/``Never`` for Jobs
  (``Always`` is "Required value: valid values"), no ``activeDeadlineSeconds`` in a
  template of a replicated kind;
* counters non-negative; int-or-percent rolling parameters, not both 0 (Deployment), exactly one
  non-zero (DaemonSet), ``maxUnavailable`` not 0 (StatefulSet), no percent over 100%;
* ``progressDeadlineSeconds`` greater than ``minReadySeconds``;
* Jobs: ``completionMode`` ``NonIndexed``/``Indexed`` (``Indexed`` needs ``completions``),
  per-index backoff only when indexed, ``podReplacementPolicy`` and ``podFailurePolicy``
  rules; on update the selector, template (except the scheduling directives of a
  suspended Job that never started), completions, completionMode, podFailurePolicy
  and backoffLimitPerIndex are immutable;
* CronJobs: the schedule parsed by robfig/cron's rules (:mod:`podlife.machinery.cron`),
  no ``TZ=`` in it, a real IANA ``timeZone``, ``concurrencyPolicy`` Allow/Forbid/Replace,
  the job template validated as a Job's spec without a selector, name at most 52 characters.
"""

from __future__ import annotations

import copy
from typing import Any

from ..machinery import cron
from ..machinery.names import dns1123_label_errors
from ..machinery.selectors import SelectorError, label_selector_from_dict, label_selector_from_set
from .defaults import default_pod_spec
from .field_rules import (
    FIELD_IMMUTABLE,
    GoValue,
    go_bool,
    go_int_or_string,
    go_label_selector,
    go_string_map,
    go_struct,
    int_or_percent_errors,
    int_or_percent_value,
    is_int,
    non_negative,
    percent_over_100,
    retarget,
)
from .field_rules import go_pointer
from .pods import PodStrategy
from .rbac import validate_label_selector
from .types import FieldError, Obj, forbidden, invalid, not_supported, required
from .validation import validate_annotation_map, validate_label_map

_POD_RULES = PodStrategy()
ALWAYS = ["Always"]
MAX_PARALLELISM_INDEXED = 100000


def _spec(obj: Obj) -> Obj | None:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else None


# --------------------------------------------------------------------------- templates


def validate_pod_template(template: Any, path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpec``: the template's labels and annotations and its pod spec."""
    if not isinstance(template, dict):
        template = {}
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    errs = retarget(validate_label_map(meta.get("labels")), "metadata", f"{path}.metadata")
    errs += retarget(validate_annotation_map(meta.get("annotations")), "metadata", f"{path}.metadata")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        spec = {}
        default_pod_spec(spec)  # Kubernetes defaults the zero-valued template it decoded
    errs += retarget(_POD_RULES.validate({"spec": spec}), "spec", f"{path}.spec")
    return errs


def _template_spec(template: Any) -> Obj:
    spec = template.get("spec") if isinstance(template, dict) else None
    return spec if isinstance(spec, dict) else {}


def _template_labels(template: Any) -> Any:
    meta = template.get("metadata") if isinstance(template, dict) else None
    return meta.get("labels") if isinstance(meta, dict) else None


def _always_restart(template: Any, path: str, kind: str) -> list[FieldError]:
    """The replicated kinds: ``restartPolicy: Always``, no ``activeDeadlineSeconds``."""
    spec = _template_spec(template)
    errs: list[FieldError] = []
    policy = spec.get("restartPolicy")
    if policy != "Always":
        errs.append(not_supported(f"{path}.spec.restartPolicy", policy if policy is not None else "", ALWAYS))
    if spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _labels_mismatch(template: Any, path: str) -> FieldError:
    return invalid(f"{path}.metadata.labels", go_string_map(_template_labels(template)),
                   "`selector` does not match template `labels`")


# --------------------------------------------------------------------------- selectors


def validate_label_selector_field(spec: Obj, path: str, empty_word: str | None) -> list[FieldError]:
    """``spec.selector``: required, valid, and (``empty_word``) not empty."""
    selector = spec.get("selector")
    if selector is None:
        return [required(path)]
    errs = validate_label_selector(selector, path)
    if empty_word and isinstance(selector, dict) and not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(invalid(path, go_label_selector(selector), f"empty selector is invalid for {empty_word}"))
    return errs


def _selector_matches_template(spec: Obj, template_path: str, *, skip_empty: bool) -> list[FieldError]:
    """The template's labels are selected by ``spec.selector`` (a nil selector selects nothing)."""
    try:
        selector = label_selector_from_dict(spec.get("selector"))
    except SelectorError:
        return [invalid("spec.selector", go_label_selector(spec.get("selector")), "invalid label selector")]
    if skip_empty and selector.empty:
        return []
    template = spec.get("template")
    labels = _template_labels(template)
    if not selector.matches(labels if isinstance(labels, dict) else {}):
        return [_labels_mismatch(template, template_path)]
    return []


# --------------------------------------------------------------------------- Deployment / ReplicaSet


def validate_deployment(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    errs = non_negative(spec.get("replicas"), "spec.replicas")
    errs += validate_label_selector_field(spec, "spec.selector", "deployment")
    errs += _replica_set_template(spec)
    errs += _deployment_strategy(spec.get("strategy"), "spec.strategy")
    errs += non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += non_negative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errs += non_negative(deadline, "spec.progressDeadlineSeconds")
        min_ready = spec.get("minReadySeconds") or 0
        if is_int(deadline) and is_int(min_ready) and deadline <= min_ready:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return errs


def validate_replica_set(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    errs = non_negative(spec.get("replicas"), "spec.replicas")
    errs += non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += validate_label_selector_field(spec, "spec.selector", "deployment")  # sic: Kubernetes' wording
    errs += _replica_set_template(spec)
    return errs


def _replica_set_template(spec: Obj) -> list[FieldError]:
    """``ValidatePodTemplateSpecForReplicaSet`` (also a Deployment's)."""
    errs = _selector_matches_template(spec, "spec.template", skip_empty=True)
    if errs and errs[0].field == "spec.selector":
        return errs
    template = spec.get("template")
    errs += validate_pod_template(template, "spec.template")
    errs += _always_restart(template, "spec.template", "ReplicaSet")
    return errs


def _deployment_strategy(strategy: Any, path: str) -> list[FieldError]:
    strategy = strategy if isinstance(strategy, dict) else {}
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden(f"{path}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
        return _rolling_update_deployment(rolling, f"{path}.rollingUpdate")
    shown = go_struct("apps.DeploymentStrategy", [("Type", _quote(kind)),
                                                  ("RollingUpdate", go_pointer("apps.RollingUpdateDeployment", rolling))])
    return [not_supported(path, shown, ["Recreate", "RollingUpdate"])]


def _rolling_update_deployment(rolling: Obj, path: str) -> list[FieldError]:
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = int_or_percent_errors(unavailable, f"{path}.maxUnavailable")
    errs += int_or_percent_errors(surge, f"{path}.maxSurge")
    if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", go_int_or_string(unavailable), "may not be 0 when `maxSurge` is 0"))
    errs += percent_over_100(unavailable, f"{path}.maxUnavailable")
    return errs


def validate_selector_unchanged(new: Obj, old: Obj) -> list[FieldError]:
    """apps/v1: ``spec.selector`` cannot change once created."""
    new_sel = (_spec(new) or {}).get("selector")
    old_sel = (_spec(old) or {}).get("selector")
    if _normal_selector(new_sel) == _normal_selector(old_sel):
        return []
    return [invalid("spec.selector", go_label_selector(new_sel), FIELD_IMMUTABLE)]


def _normal_selector(selector: Any) -> Any:
    """A selector with empty lists and maps dropped (they decode to the same Go value)."""
    if not isinstance(selector, dict):
        return selector
    return {k: v for k, v in selector.items() if v not in (None, {}, [])}


# --------------------------------------------------------------------------- ReplicationController


def validate_replication_controller(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    errs = non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        errs.append(required("spec.selector"))
        selector = {}
    else:
        errs += retarget(validate_label_map(selector), "metadata.labels", "spec.selector")
    errs += non_negative(spec.get("replicas"), "spec.replicas")
    template = spec.get("template")
    if template is None:
        return errs + [required("spec.template")]
    if selector and all(isinstance(v, str) for v in selector.values()):
        labels = _template_labels(template)
        if not label_selector_from_set(selector).matches(labels if isinstance(labels, dict) else {}):
            errs.append(_labels_mismatch(template, "spec.template"))
    errs += validate_pod_template(template, "spec.template")
    errs += _always_restart(template, "spec.template", "ReplicationController")
    return errs


# --------------------------------------------------------------------------- StatefulSet


def validate_stateful_set(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    errs: list[FieldError] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    errs += _stateful_set_strategy(spec.get("updateStrategy"), "spec.updateStrategy")
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):
        for key in ("whenDeleted", "whenScaled"):
            if retention.get(key) not in ("Retain", "Delete"):
                errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key) or "",
                                          ["Retain", "Delete"]))
    errs += non_negative(spec.get("replicas"), "spec.replicas")
    errs += non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        errs += non_negative(ordinals.get("start"), "spec.ordinals.start")
    errs += validate_label_selector_field(spec, "spec.selector", "statefulset")
    template = spec.get("template")
    if spec.get("selector") is not None:
        errs += _selector_matches_template(spec, "spec.template", skip_empty=True)
    errs += retarget(validate_label_map(_template_labels(template)), "metadata", "spec.template")
    errs += _always_restart(template, "spec.template", "StatefulSet")
    errs += _stateful_set_pod_spec(spec)
    service = spec.get("serviceName")
    if service:
        errs += [invalid("spec.serviceName", service, m) for m in dns1123_label_errors(str(service))]
    return errs


def _stateful_set_pod_spec(spec: Obj) -> list[FieldError]:
    """The template's pod spec, its claim templates counting as volumes (as the controller mounts them)."""
    template = spec.get("template")
    claims = [c for c in spec.get("volumeClaimTemplates") or [] if isinstance(c, dict)]
    names = [((c.get("metadata") or {}).get("name")) for c in claims]
    pod_spec = copy.deepcopy(_template_spec(template)) if isinstance(template, dict) else {}
    if not pod_spec:
        default_pod_spec(pod_spec)
    volumes: list[Any] = pod_spec["volumes"] if isinstance(pod_spec.get("volumes"), list) else []
    pod_spec["volumes"] = volumes + [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names
                                     if isinstance(n, str) and n and all((v or {}).get("name") != n for v in volumes)]
    meta = template.get("metadata") if isinstance(template, dict) else None
    errs = validate_pod_template({"metadata": meta or {}, "spec": pod_spec}, "spec.template")
    return [e for e in errs if not e.field.startswith("spec.template.metadata.labels")]  # reported above


def _stateful_set_strategy(strategy: Any, path: str) -> list[FieldError]:
    strategy = strategy if isinstance(strategy, dict) else {}
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if not kind:
        return [required(path)]
    if kind == "OnDelete":
        if rolling is not None:
            return [invalid(f"{path}.rollingUpdate", _go_sts_rolling(rolling), "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            return []
        errs = non_negative(rolling.get("partition", 0), f"{path}.rollingUpdate.partition")
        unavailable = rolling.get("maxUnavailable")
        if unavailable is not None:
            errs += int_or_percent_errors(unavailable, f"{path}.rollingUpdate.maxUnavailable")
            if int_or_percent_value(unavailable) == 0:
                errs.append(invalid(f"{path}.rollingUpdate.maxUnavailable", go_int_or_string(unavailable), "cannot be 0"))
            errs += percent_over_100(unavailable, f"{path}.rollingUpdate.maxUnavailable")
        return errs
    shown = go_struct("apps.StatefulSetUpdateStrategy",
                      [("Type", _quote(kind)), ("RollingUpdate", go_pointer("apps.RollingUpdateStatefulSetStrategy", rolling))])
    return [invalid(path, shown, "must be 'RollingUpdate' or 'OnDelete'")]


def _go_sts_rolling(rolling: Any) -> GoValue:
    rolling = rolling if isinstance(rolling, dict) else {}
    partition = rolling.get("partition") or 0
    return go_struct("apps.RollingUpdateStatefulSetStrategy",
                     [("Partition", str(partition)),
                      ("MaxUnavailable", go_pointer("intstr.IntOrString", rolling.get("maxUnavailable")))])


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def validate_stateful_set_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = _spec(new) or {}, _spec(old) or {}
    fixed_new = {k: v for k, v in new_spec.items() if k not in _STS_MUTABLE}
    fixed_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
    if _without_defaults(fixed_new) != _without_defaults(fixed_old):
        return [forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                                  "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")]
    return []


def _without_defaults(spec: Obj) -> Obj:
    """Drop what the server fills into claim templates (status zero values) before comparing."""
    out = dict(spec)
    claims = out.get("volumeClaimTemplates")
    if isinstance(claims, list):
        out["volumeClaimTemplates"] = [{k: v for k, v in c.items() if k != "status"} if isinstance(c, dict) else c
                                       for c in claims]
    return out


# --------------------------------------------------------------------------- DaemonSet


def validate_daemon_set(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    selector = spec.get("selector")
    errs = validate_label_selector_field(spec, "spec.selector", None) if selector is not None else [required("spec.selector")]
    errs += _selector_matches_template(spec, "spec.template", skip_empty=False)
    if isinstance(selector, dict) and not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(invalid("spec.selector", go_label_selector(selector), "empty selector is invalid for daemonset"))
    template = spec.get("template")
    errs += validate_pod_template(template, "spec.template")
    errs += _always_restart(template, "spec.template", "DaemonSet")
    errs += non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += non_negative(spec.get("templateGeneration"), "spec.templateGeneration")
    errs += _daemon_set_strategy(spec.get("updateStrategy"), "spec.updateStrategy")
    errs += non_negative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return errs


def _daemon_set_strategy(strategy: Any, path: str) -> list[FieldError]:
    strategy = strategy if isinstance(strategy, dict) else {}
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "OnDelete":
        return []
    if kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            return [required(f"{path}.rollingUpdate")]
        rpath = f"{path}.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs = int_or_percent_errors(unavailable, f"{rpath}.maxUnavailable")
        errs += int_or_percent_errors(surge, f"{rpath}.maxSurge")
        errs += percent_over_100(unavailable, f"{rpath}.maxUnavailable")
        errs += percent_over_100(surge, f"{rpath}.maxSurge")
        has_unavailable, has_surge = int_or_percent_value(unavailable) != 0, int_or_percent_value(surge) != 0
        if has_unavailable and has_surge:
            errs.append(invalid(f"{rpath}.maxSurge", go_int_or_string(surge), "may not be set when maxUnavailable is non-zero"))
        elif not has_unavailable and not has_surge:
            errs.append(required(f"{rpath}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
        return errs
    shown = go_struct("apps.DaemonSetUpdateStrategy",
                      [("Type", _quote(kind)), ("RollingUpdate", go_pointer("apps.RollingUpdateDaemonSet", rolling))])
    return [not_supported(path, shown, ["RollingUpdate", "OnDelete"])]


# --------------------------------------------------------------------------- Job


def validate_job(obj: Obj) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    errs = _job_spec(spec, "spec")
    errs += validate_label_selector_field(spec, "spec.selector", None)
    if spec.get("selector") is not None:
        errs += _selector_matches_template(spec, "spec.template", skip_empty=False)
    name = (obj.get("metadata") or {}).get("name") or ""
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and is_int(completions) and completions > 0:
        hostname = f"{name}-{completions - 1}"
        if dns1123_label_errors(hostname):
            errs.append(invalid("metadata.name", name, f"will not able to create pod with invalid DNS label: {hostname}"))
    return errs


def _job_spec(spec: Obj, path: str) -> list[FieldError]:
    """``validateJobSpec``: counters, completion mode, policies, the template and its restart policy."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += non_negative(spec.get(key), f"{path}.{key}")
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    errs += _completion_mode(spec, path)
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        errs += _pod_failure_policy(policy, spec, f"{path}.podFailurePolicy")
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        allowed = ["Failed"] if policy is not None else ["Failed", "TerminatingOrFailed"]
        if replacement not in allowed:
            errs.append(not_supported(f"{path}.podReplacementPolicy", replacement, allowed))
    template = spec.get("template")
    errs += validate_pod_template(template, f"{path}.template")
    restart = _template_spec(template).get("restartPolicy")
    restart_path = f"{path}.template.spec.restartPolicy"
    if restart in (None, "", "Always"):
        errs.append(required(restart_path, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(not_supported(restart_path, restart, ["OnFailure", "Never"]))
    elif policy is not None and restart != "Never":
        errs.append(invalid(restart_path, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return errs


def _completion_mode(spec: Obj, path: str) -> list[FieldError]:
    mode = spec.get("completionMode")
    errs: list[FieldError] = []
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        errs.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed":
        completions, parallelism, max_failed = spec.get("completions"), spec.get("parallelism"), spec.get("maxFailedIndexes")
        if completions is None:
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
        if is_int(parallelism) and parallelism > MAX_PARALLELISM_INDEXED:
            errs.append(invalid(f"{path}.parallelism", parallelism,
                                f"must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"))
        if is_int(completions) and is_int(max_failed) and max_failed > completions:
            errs.append(invalid(f"{path}.maxFailedIndexes", max_failed, "must be less than or equal to completions"))
    else:
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                errs.append(invalid(f"{path}.{key}", spec[key], "requires indexed completion mode"))
    return errs


_FAILURE_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
_EXIT_OPERATORS = ["In", "NotIn"]
_CONDITION_STATUSES = ["False", "True", "Unknown"]


def _pod_failure_policy(policy: Any, spec: Obj, path: str) -> list[FieldError]:
    if not isinstance(policy, dict):
        return [invalid(path, policy, "must be an object")]
    errs: list[FieldError] = []
    rules = policy.get("rules") or []
    if len(rules) > 20:
        errs.append(FieldError("FieldValueTooMany", f"{path}.rules", "must have at most 20 items", len(rules)))
    tspec = _template_spec(spec.get("template"))
    names = {c.get("name") for key in ("containers", "initContainers") for c in tspec.get(key) or [] if isinstance(c, dict)}
    for i, rule in enumerate(rules):
        errs += _pod_failure_rule(rule if isinstance(rule, dict) else {}, spec, f"{path}.rules[{i}]", names)
    return errs


def _go_string_list(values: list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _pod_failure_rule(rule: Obj, spec: Obj, path: str, names: set[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    action = rule.get("action")
    if not action:
        errs.append(required(f"{path}.action", f"valid values: {_go_string_list(_FAILURE_ACTIONS)}"))
    elif action == "FailIndex":
        if spec.get("backoffLimitPerIndex") is None:
            errs.append(invalid(f"{path}.action", action, "requires the backoffLimitPerIndex to be set"))
    elif action not in _FAILURE_ACTIONS:
        errs.append(not_supported(f"{path}.action", action, _FAILURE_ACTIONS))
    codes, conditions = rule.get("onExitCodes"), rule.get("onPodConditions") or []
    if isinstance(codes, dict):
        errs += _on_exit_codes(codes, f"{path}.onExitCodes", names)
    for j, pattern in enumerate(conditions):
        pattern = pattern if isinstance(pattern, dict) else {}
        status = pattern.get("status")
        if not status:
            errs.append(required(f"{path}.onPodConditions[{j}].status", f"valid values: {_go_string_list(_CONDITION_STATUSES)}"))
        elif status not in _CONDITION_STATUSES:
            errs.append(not_supported(f"{path}.onPodConditions[{j}].status", status, _CONDITION_STATUSES))
    if codes is not None and conditions:
        errs.append(FieldError("FieldValueInvalid", path, "specifying both OnExitCodes and OnPodConditions is not supported",
                               GoValue("field.OmitValueType{}")))
    if codes is None and not conditions:
        errs.append(FieldError("FieldValueInvalid", path, "specifying one of OnExitCodes and OnPodConditions is required",
                               GoValue("field.OmitValueType{}")))
    return errs


def _on_exit_codes(codes: Obj, path: str, names: set[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    operator = codes.get("operator")
    if not operator:
        errs.append(required(f"{path}.operator", f"valid values: {_go_string_list(_EXIT_OPERATORS)}"))
    elif operator not in _EXIT_OPERATORS:
        errs.append(not_supported(f"{path}.operator", operator, _EXIT_OPERATORS))
    container = codes.get("containerName")
    if container is not None and container not in names:
        errs.append(invalid(f"{path}.containerName", container,
                            "must be one of the container or initContainer names in the pod template"))
    values = codes.get("values") or []
    if not values:
        errs.append(invalid(f"{path}.values", GoValue("[]int32(nil)"), "at least one value is required"))
    seen: set[Any] = set()
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            errs.append(invalid(f"{path}.values[{j}]", value, "must not be 0 for the In operator"))
        if value in seen:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.values[{j}]", "", value))
        seen.add(value)
    if any(is_int(a) and is_int(b) and a > b for a, b in zip(values, values[1:])):
        errs.append(invalid(f"{path}.values", GoValue("[]int32{" + ", ".join(str(v) for v in values) + "}"), "must be ordered"))
    return errs


_SCHEDULING_DIRECTIVES = ("nodeSelector", "tolerations", "schedulingGates")


def validate_job_update(new: Obj, old: Obj) -> list[FieldError]:
    """``ValidateJobSpecUpdate``: what a running Job may not change."""
    new_spec, old_spec = _spec(new) or {}, _spec(old) or {}
    errs: list[FieldError] = []
    if new_spec.get("completions") != old_spec.get("completions"):
        indexed = new_spec.get("completionMode") == "Indexed"
        if not indexed:
            errs.append(invalid("spec.completions", new_spec.get("completions"), FIELD_IMMUTABLE))
        elif new_spec.get("completions") is not None and new_spec.get("completions") != new_spec.get("parallelism"):
            errs.append(invalid("spec.completions", new_spec.get("completions"),
                                "can only be modified in tandem with spec.parallelism"))
    if _normal_selector(new_spec.get("selector")) != _normal_selector(old_spec.get("selector")):
        errs.append(invalid("spec.selector", go_label_selector(new_spec.get("selector")), FIELD_IMMUTABLE))
    if _template_fixed_part(new, new_spec.get("template"), old) != _template_fixed_part(new, old_spec.get("template"), old):
        errs.append(invalid("spec.template", GoValue("core.PodTemplateSpec{...}"), FIELD_IMMUTABLE))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
        if new_spec.get(key) != old_spec.get(key):
            errs.append(invalid(f"spec.{key}", _shown(new_spec.get(key)), FIELD_IMMUTABLE))
    return errs


def _shown(value: Any) -> Any:
    if isinstance(value, bool):
        return go_bool(value)
    if isinstance(value, dict | list):
        return GoValue("{...}")
    return value


def _template_fixed_part(new_job: Obj, template: Any, old_job: Obj) -> Any:
    """The template without what a suspended, never-started Job may change (its scheduling directives)."""
    if not isinstance(template, dict):
        return template
    suspended = bool((_spec(new_job) or {}).get("suspend")) and not (old_job.get("status") or {}).get("startTime")
    if not suspended:
        return template
    out = copy.deepcopy(template)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("labels", None)
        meta.pop("annotations", None)
    spec = out.get("spec")
    if isinstance(spec, dict):
        for key in _SCHEDULING_DIRECTIVES:
            spec.pop(key, None)
        affinity = spec.get("affinity")
        if isinstance(affinity, dict):
            affinity.pop("nodeAffinity", None)
            if not affinity:
                spec.pop("affinity")
    return out


# --------------------------------------------------------------------------- CronJob

_CONCURRENCY = ["Allow", "Forbid", "Replace"]
_CRONJOB_NAME_MAX = 52
#: IANA's naming rules for one component of a zone name (validateTimeZone)
_TZ_PART_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-_0123456789+")


def validate_cron_job(obj: Obj, old: Obj | None = None) -> list[FieldError]:
    spec = _spec(obj)
    if spec is None:
        return [required("spec")]
    old_spec = _spec(old) if old is not None else None
    errs = _schedule(spec, old_spec)
    errs += non_negative(spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds")
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errs += _time_zone(spec.get("timeZone"), "spec.timeZone")
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(required("spec.concurrencyPolicy"))
    elif policy not in _CONCURRENCY:
        errs.append(not_supported("spec.concurrencyPolicy", policy, _CONCURRENCY))
    errs += _job_template(spec.get("jobTemplate"), "spec.jobTemplate")
    errs += non_negative(spec.get("successfulJobsHistoryLimit"), "spec.successfulJobsHistoryLimit")
    errs += non_negative(spec.get("failedJobsHistoryLimit"), "spec.failedJobsHistoryLimit")
    name = (obj.get("metadata") or {}).get("name")
    if old is None and isinstance(name, str) and len(name) > _CRONJOB_NAME_MAX:
        errs.append(invalid("metadata.name", name, f"must be no more than {_CRONJOB_NAME_MAX} characters"))
    return errs


def _schedule(spec: Obj, old_spec: Obj | None) -> list[FieldError]:
    schedule = spec.get("schedule")
    if not schedule:
        return [required("spec.schedule")]
    if not isinstance(schedule, str):
        return [invalid("spec.schedule", schedule, "must be a string")]
    errs: list[FieldError] = []
    problem = cron.schedule_error(schedule)
    if problem is not None:
        errs.append(invalid("spec.schedule", schedule, problem))
    allow_tz = old_spec is not None and "TZ" in str(old_spec.get("schedule") or "")
    if allow_tz and "TZ" in schedule and spec.get("timeZone") is not None:
        errs.append(invalid("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errs.append(invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _time_zone(zone: Any, path: str) -> list[FieldError]:
    if zone is None:
        return []
    if not isinstance(zone, str) or zone == "":
        return [invalid(path, zone if isinstance(zone, str) else str(zone), "timeZone must be nil or non-empty string")]
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not 1 <= len(part) <= 14 or not set(part) <= _TZ_PART_OK:
            return [invalid(path, zone, f"unknown time zone {zone}")]
    errs = []
    if zone.lower() == "local":
        errs.append(invalid(path, zone, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
    problem = cron.time_zone_error(zone)
    if problem is not None:
        errs.append(invalid(path, zone, problem))
    return errs


def _job_template(template: Any, path: str) -> list[FieldError]:
    """``ValidateJobTemplateSpec``: a Job's spec whose selector the Job controller generates."""
    template = template if isinstance(template, dict) else {}
    job_spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    errs = _job_spec(job_spec, f"{path}.spec")
    if job_spec.get("selector") is not None:
        errs.append(invalid(f"{path}.spec.selector", go_label_selector(job_spec["selector"]), "`selector` will be auto-generated"))
    if job_spec.get("manualSelector") is True:
        errs.append(not_supported(f"{path}.spec.manualSelector", go_bool(True), ["nil", "false"]))
    return errs


def _quote(value: Any) -> str:
    return '"' + str(value if value is not None else "").replace("\\", "\\\\").replace('"', '\\"') + '"'
