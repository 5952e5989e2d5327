"""The Priority admission plugin: a pod's priority comes from its PriorityClass.

Learned from Kubernetes' ``plugin/pkg/admission/priority/admission.go`` (1.37):

- on a pod's create, ``spec.priorityClassName`` names a PriorityClass whose ``value``
  becomes ``spec.priority`` and whose ``preemptionPolicy`` becomes the pod's; a name no
  class has is 403 ``no PriorityClass with name <x> was found``. Without a name, the
  global default class (``globalDefault: true``; the lowest value if a race made two)
  gives its name, value and policy; without one, priority 0 and
  ``PreemptLowerPriority``. A pod that sets ``priority`` (or ``preemptionPolicy``) to
  anything else is refused: ``the integer value of priority (5) must not be provided
  in pod spec; priority admission controller computed 0 from the given PriorityClass
  name``. ``system-node-critical`` and ``system-cluster-critical`` may be used in any
  namespace: Kubernetes 1.17 dropped the kube-system-only rule (kubernetes#76310) and
  leaves limiting them to ResourceQuota's ``limitedResources``;
- on a pod's update, a body without ``priority``/``preemptionPolicy`` keeps the stored
  ones (validation then forbids changing them);
- on a PriorityClass create or update, a second ``globalDefault`` class is 403
  ``PriorityClass <y> is already marked as default. Only one default can exist``.

Classes are read from the watch cache. :func:`ensure_system_priority_classes` creates the
built-in classes at start (kube-apiserver's ``scheduling/bootstrap-system-priority-classes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..client.base import Client, Resource
from ..machinery.errors import ApiError
from ..registry.priorityclasses import GROUP, SYSTEM_PRIORITY_CLASSES, system_priority_class
from ..registry.types import Obj
from .admission_plugin import AdmissionPlugin, Attributes, own_spec, refuse

if TYPE_CHECKING:
    from .rest import ResourceREST

NAME = "Priority"
PRIORITY_CLASSES = Resource(GROUP, "v1", "priorityclasses", "PriorityClass", namespaced=False)
#: ``scheduling.DefaultPriorityWhenNoDefaultClassExists``
DEFAULT_PRIORITY = 0
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"


def _classes(rest: ResourceREST) -> list[Obj]:
    classes = rest.ctx.rest_by(GROUP, "v1", "priorityclasses")
    return [co.obj for co in classes.cache.in_namespace(None)] if classes is not None else []


def _priority_class(rest: ResourceREST, name: str) -> Obj | None:
    classes = rest.ctx.rest_by(GROUP, "v1", "priorityclasses")
    found = classes.cache.get(classes.rt.key(None, name)) if classes is not None else None
    return found.obj if found is not None else None


def default_priority_class(rest: ResourceREST) -> Obj | None:
    """The ``globalDefault`` class; of several (a race), the one with the lowest value."""
    defaults = [pc for pc in _classes(rest) if pc.get("globalDefault") is True]
    return min(defaults, key=lambda pc: int(pc.get("value") or 0)) if defaults else None


def _resolve(rest: ResourceREST, pod: Obj, spec: Obj) -> tuple[str, int, Any]:
    """(class name, priority, preemption policy) for the pod's ``priorityClassName``."""
    name = spec.get("priorityClassName")
    if not name:
        default = default_priority_class(rest)
        if default is None:
            return "", DEFAULT_PRIORITY, DEFAULT_PREEMPTION_POLICY
        return str(default["metadata"]["name"]), int(default.get("value") or 0), default.get("preemptionPolicy")
    found = _priority_class(rest, str(name))
    if found is None:
        raise refuse(rest, pod, f"no PriorityClass with name {name} was found")
    return str(name), int(found.get("value") or 0), found.get("preemptionPolicy")


def admit_pod(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half on pods: resolve the class on create; keep the stored priority on update."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    if old is not None:
        old_spec = old.get("spec") or {}
        lost = [kept for kept in ("priority", "preemptionPolicy")
                if spec.get(kept) is None and old_spec.get(kept) is not None]
        if lost:
            spec = own_spec(pod)
            for kept in lost:
                spec[kept] = old_spec[kept]
        return []
    class_name, priority, policy = _resolve(rest, pod, spec)
    if class_name:
        spec["priorityClassName"] = class_name
    asked = spec.get("priority")
    if asked is not None and asked != priority:
        raise refuse(rest, pod, f"the integer value of priority ({asked}) must not be provided in pod spec; priority "
                                f"admission controller computed {priority} from the given PriorityClass name")
    spec["priority"] = priority
    if policy is not None:
        asked = spec.get("preemptionPolicy")
        if asked is not None and asked != policy:
            raise refuse(rest, pod, f"the string value of PreemptionPolicy ({asked}) must not be provided in pod spec; "
                                    f"priority admission controller computed {policy} from the given PriorityClass name")
        spec["preemptionPolicy"] = policy
    return []


def validate_priority_class(rest: ResourceREST, pc: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """Only one class may be the global default."""
    if pc.get("globalDefault") is not True:
        return []
    default = default_priority_class(rest)
    if default is None:
        return []
    name = (pc.get("metadata") or {}).get("name")
    if old is None or default["metadata"]["name"] != name:
        raise refuse(rest, pc, f"PriorityClass {default['metadata']['name']} is already marked as default. "
                               "Only one default can exist")
    return []


async def ensure_system_priority_classes(client: Client) -> list[str]:
    """Create the built-in classes that are missing; returns the names created.

    An existing one is left as it is (Kubernetes' hook only creates). AlreadyExists is
    another writer's win.
    """
    created = []
    for name in SYSTEM_PRIORITY_CLASSES:
        try:
            await client.get(PRIORITY_CLASSES, name)
            continue
        except ApiError as exc:
            if exc.code != 404:
                raise
        try:
            await client.create(PRIORITY_CLASSES, system_priority_class(name))
        except ApiError as exc:
            if exc.code != 409:
                raise
            continue
        created.append(name)
    return created


POD_PLUGIN = AdmissionPlugin(NAME, frozenset({("", "pods")}), mutate=admit_pod)
PRIORITY_CLASS_PLUGIN = AdmissionPlugin(NAME, frozenset({(GROUP, "priorityclasses")}),
                                        validate=validate_priority_class)
