"""Kubernetes' validation of the kinds that hold records and templates.

What it checks: ServiceAccount, Event (``v1`` and ``events.k8s.io/v1``), PodTemplate and
ControllerRevision, as ``pkg/apis/core/validation`` (``validation.go``, ``events.go``) and
``pkg/apis/apps/validation`` do. Why: nothing schema-invalid is stored, and each refusal is
the field error Kubernetes writes.

Kubernetes facts followed (release 1.37):

* ServiceAccount: only its metadata is validated (``ValidateServiceAccount``); the names in
  ``secrets`` and ``imagePullSecrets`` are not checked, so neither are they here;
* Event: every Event passes the legacy rules (``legacyValidateEvent``): without an
  ``eventTime`` the involved object's namespace is the Event's (an unset one only in
  ``default``); with one, a cluster-scoped involved object's Event lives in ``default`` or
  ``kube-system``, ``reportingController`` is a qualified name, ``reportingInstance``,
  ``action`` and ``reason`` are set and at most 128 bytes, the message at most 1024 bytes.
  ``events.k8s.io/v1`` creates are strict (``ValidateEventCreate``): ``eventTime`` is
  required, ``type`` is Normal or Warning, a ``series`` counts at least 2 and has a
  ``lastObservedTime``, and the deprecated fields stay unset. Paths name the internal
  fields, as Kubernetes' do: ``regarding`` is ``involvedObject``, ``note`` is ``message``,
  ``deprecatedSource``/``deprecatedFirstTimestamp``/``deprecatedLastTimestamp``/
  ``deprecatedCount`` are ``source``/``firstTimestamp``/``lastTimestamp``/``count``, and
  v1's ``reportingComponent`` is ``reportingController``;
* PodTemplate: ``template`` is validated as a pod template spec
  (``ValidatePodTemplateSpec``), which may hold no ephemeral containers;
* ControllerRevision: ``data`` is required and ``revision`` non-negative; on update the
  data may not change (the revision may). The changed data is shown as Go's ``%#v`` of the
  ``runtime.Unknown`` Kubernetes decodes it to, its raw bytes being the JSON as sent (here:
  compact, in the order it was sent).
"""

from __future__ import annotations

import json
from typing import Any

from ..machinery.names import byte_len, qualified_name_errors
from .field_rules import FIELD_IMMUTABLE, non_negative
from .rbac import GoValue
from .types import FieldError, Obj, forbidden, invalid, required
from .workload_validation import validate_pod_template as validate_pod_template_spec

# --------------------------------------------------------------------------- ServiceAccount


def validate_service_account(obj: Obj) -> list[FieldError]:
    """Nothing beyond the metadata (checked for every kind): Kubernetes checks no other field."""
    return []


# --------------------------------------------------------------------------- Event

REPORTING_INSTANCE_LIMIT = 128
ACTION_LIMIT = 128
REASON_LIMIT = 128
NOTE_LIMIT = 1024
EVENT_TYPES = ("Normal", "Warning")
#: namespaces an Event about a cluster-scoped object may live in (``eventTime`` set / unset)
_CLUSTER_EVENT_NAMESPACES = ("default", "kube-system")
_LEGACY_CLUSTER_EVENT_NAMESPACES = ("", "default")


def validate_event(obj: Obj) -> list[FieldError]:
    """A core ``v1`` Event: the legacy rules only (Kubernetes adds nothing for v1, for compatibility)."""
    return _legacy_event_rules(_core_event_fields(obj))


def validate_events_event(obj: Obj) -> list[FieldError]:
    """An ``events.k8s.io/v1`` Event: the legacy rules, then the strict ones of a create."""
    event = _events_api_fields(obj)
    return _legacy_event_rules(event) + _strict_event_rules(event)


def _core_event_fields(obj: Obj) -> Obj:
    """A v1 Event's fields under their internal names."""
    return {**obj, "reportingController": obj.get("reportingComponent")}


def _events_api_fields(obj: Obj) -> Obj:
    """An events.k8s.io Event's fields under their internal (core) names."""
    renamed = {"regarding": "involvedObject", "note": "message", "deprecatedSource": "source",
               "deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
               "deprecatedCount": "count"}
    return {renamed.get(key, key): value for key, value in obj.items() if key not in renamed.values()}


def _legacy_event_rules(event: Obj) -> list[FieldError]:
    """``legacyValidateEvent``: namespaces agree; a new-style Event names its reporter and action."""
    namespace = _text((event.get("metadata") or {}).get("namespace"))
    involved = _text(_dict(event.get("involvedObject")).get("namespace"))
    mismatch = invalid("involvedObject.namespace", involved, "does not match event.namespace")
    if not event.get("eventTime"):
        if involved and namespace != involved or not involved and namespace not in _LEGACY_CLUSTER_EVENT_NAMESPACES:
            return [mismatch]
        return []
    errs: list[FieldError] = []
    if not involved and namespace not in _CLUSTER_EVENT_NAMESPACES:
        errs.append(mismatch)
    controller = _text(event.get("reportingController"))
    if not controller:
        errs.append(required("reportingController"))
    errs += [invalid("reportingController", controller, m) for m in qualified_name_errors(controller)]
    errs += _required_within("reportingInstance", _text(event.get("reportingInstance")), REPORTING_INSTANCE_LIMIT)
    errs += _required_within("action", _text(event.get("action")), ACTION_LIMIT)
    errs += _required_within("reason", _text(event.get("reason")), REASON_LIMIT)
    if byte_len(_text(event.get("message"))) > NOTE_LIMIT:
        errs.append(_too_many_characters("message", NOTE_LIMIT))
    return errs


def _required_within(path: str, value: str, limit: int) -> list[FieldError]:
    if not value:
        return [required(path)]
    if byte_len(value) > limit:
        return [_too_many_characters(path, limit)]
    return []


def _too_many_characters(path: str, limit: int) -> FieldError:
    """Kubernetes' Event limits are Invalid errors that show an empty value."""
    return invalid(path, "", f"can have at most {limit} characters")


def _strict_event_rules(event: Obj) -> list[FieldError]:
    """``ValidateEventCreate`` for events.k8s.io/v1: series, eventTime, type, no deprecated fields."""
    errs: list[FieldError] = []
    series = event.get("series")
    if isinstance(series, dict):
        count = series.get("count")
        if not isinstance(count, int) or count < 2:
            errs.append(invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            errs.append(required("series.lastObservedTime"))
    if not event.get("eventTime"):
        errs.append(required("eventTime"))
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        errs.append(invalid("type", "", f"has invalid value: {_text(kind)}"))
    for key in ("firstTimestamp", "lastTimestamp"):
        if event.get(key):
            errs.append(invalid(key, "", "needs to be unset"))
    if event.get("count") not in (None, 0):
        errs.append(invalid("count", "", "needs to be unset"))
    source = _dict(event.get("source"))
    if source.get("component") or source.get("host"):
        errs.append(invalid("source", "", "needs to be unset"))
    return errs


# --------------------------------------------------------------------------- PodTemplate


def validate_pod_template(obj: Obj) -> list[FieldError]:
    """``ValidatePodTemplate``: ``template`` is a pod template spec, as a workload's is."""
    template = obj.get("template")
    errs = validate_pod_template_spec(template, "template")
    spec = _dict(template).get("spec")
    if isinstance(spec, dict) and spec.get("ephemeralContainers"):
        errs.append(forbidden("template.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return errs


# --------------------------------------------------------------------------- ControllerRevision


def validate_controller_revision(obj: Obj) -> list[FieldError]:
    """``ValidateControllerRevision``: some data, a non-negative revision (unset is 0)."""
    errs: list[FieldError] = []
    if obj.get("data") is None:
        errs.append(required("data", "data is mandatory"))
    revision = obj.get("revision")
    errs += non_negative(revision if revision is not None else 0, "revision")
    return errs


def validate_controller_revision_update(new: Obj, old: Obj) -> list[FieldError]:
    """``ValidateControllerRevisionUpdate``: the data is fixed for good; the revision number is not."""
    if new.get("data") == old.get("data"):
        return []
    return [invalid("data", _go_raw_object(new.get("data")), FIELD_IMMUTABLE)]


def _go_raw_object(data: Any) -> Any:
    """The decoded ``runtime.Object`` of a RawExtension as ``%#v`` shows it (``null`` when there is none)."""
    if data is None:
        return None
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    shown = ", ".join(f"0x{b:x}" for b in raw)
    return GoValue('runtime.Unknown{TypeMeta:runtime.TypeMeta{APIVersion:"", Kind:""}, '
                   f'Raw:[]byte{{{shown}}}, ContentEncoding:"", ContentType:"application/json"}}')


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}
