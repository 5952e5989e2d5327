"""Pods: defaulting, validation, status and deletion rules.

Follows Kubernetes' pod strategy:

- on create the server fills Kubernetes' pod defaults
  (:func:`podlife.registry.defaults.default_pod`: restartPolicy, dnsPolicy,
  terminationGracePeriodSeconds, imagePullPolicy, volume modes, probe timings, ...),
  mirrors ``serviceAccountName`` and its deprecated alias ``serviceAccount`` (the v1
  conversion), and sets ``status`` to ``Pending`` with the pod's QoS class; what
  Kubernetes' admission plugins add (service account and its token volume, priority,
  the not-ready/unreachable tolerations) is theirs (:mod:`podlife.api.admission`);
- a pod created with ``spec.schedulingGates`` starts with ``PodScheduled=False``,
  reason ``SchedulingGated`` (the scheduler leaves it alone until its gates are gone);
- a pod's spec is immutable after create except container images, tolerations
  (additions), activeDeadlineSeconds and scheduling gates (removals only), so updates
  that change anything else fail;
- the ``status`` subresource is the only way to write status (the kubelet's path);
- deletion is graceful: the grace period is the request's or the pod's
  ``terminationGracePeriodSeconds``, except for pods that never reached a node or have
  finished, which go at once (there is no kubelet to wait for).
"""

from __future__ import annotations

import re

from ..machinery.timeutil import now_rfc3339
from .defaults import default_pod
from .pod_validation import validate_pod_spec
from .types import FieldError, Obj, Strategy, forbidden, invalid, not_supported, required

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
DEFAULT_GRACE_SECONDS = 30
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SCHEDULING_GATED = "SchedulingGated"
SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


def scheduling_gates(spec: object) -> list[str]:
    """The names of a pod spec's scheduling gates."""
    gates = spec.get("schedulingGates") if isinstance(spec, dict) else None
    return [str(g.get("name")) for g in gates if isinstance(g, dict)] if isinstance(gates, list) else []


def qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if requests or limits:
            any_set = True
        for r in ("cpu", "memory"):
            lim = limits.get(r)
            req = requests.get(r, lim)
            if lim is None or str(req) != str(lim):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class PodStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        spec = obj.get("spec")
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec) if isinstance(spec, dict) else "BestEffort"}
        if scheduling_gates(spec):
            obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                            "lastTransitionTime": now_rfc3339(), "reason": SCHEDULING_GATED,
                                            "message": SCHEDULING_GATED_MESSAGE}]

    def default(self, obj: Obj) -> None:
        """Kubernetes' pod defaults; ``serviceAccount`` mirrors ``serviceAccountName`` (the v1 conversion)."""
        default_pod(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
            spec["serviceAccountName"] = spec["serviceAccount"]
        if spec.get("serviceAccountName"):
            spec["serviceAccount"] = spec["serviceAccountName"]

    def default_update(self, new: Obj, old: Obj) -> None:
        """Pod defaults touch only the spec: a spec equal to the stored one is defaulted already.

        Why: most updates of a pod (annotations, labels, finalizers, owners) leave its spec
        alone, and defaulting and validating a spec with volumes costs tens of
        microseconds a write; comparing two dicts is a few.
        """
        if new.get("spec") != old.get("spec"):
            self.default(new)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        containers = spec.get("containers")
        if not containers:
            errs.append(required("spec.containers"))
        elif not isinstance(containers, list):
            errs.append(invalid("spec.containers", containers, "must be a list"))
        else:
            errs += validate_pod_spec(spec)
        rp = spec.get("restartPolicy")
        if rp not in RESTART_POLICIES:
            errs.append(not_supported("spec.restartPolicy", rp, RESTART_POLICIES))
        dp = spec.get("dnsPolicy")
        if dp not in DNS_POLICIES:
            errs.append(not_supported("spec.dnsPolicy", dp, DNS_POLICIES))
        grace = spec.get("terminationGracePeriodSeconds")
        if not isinstance(grace, int) or grace < 0:
            errs.append(invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
        node = spec.get("nodeName")
        if node is not None and not isinstance(node, str):
            errs.append(invalid("spec.nodeName", node, "must be a string"))
        elif node and scheduling_gates(spec):
            errs.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
        return errs

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if new.get("spec") == old.get("spec"):
            return []  # the stored spec was valid, and pod validation reads nothing but the spec
        errs = self.validate(new)
        if errs:
            return errs
        old_gates = set(scheduling_gates(old.get("spec")))
        added = [g for g in scheduling_gates(new.get("spec")) if g not in old_gates]
        if added:
            return [forbidden("spec.schedulingGates", f"only deletion is allowed, but found new scheduling gate '{added[0]}'")]
        if _mutable_view(new.get("spec", {})) != _mutable_view(old.get("spec", {})):
            return [
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, "
                    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                    "`spec.tolerations` (only additions to existing tolerations), "
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                )
            ]
        return []

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = dict(old)
        merged["status"] = new.get("status") or {}
        return merged

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return False  # pods do not bump generation in a way clients rely on

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(int(requested), 0)
        return int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


def _mutable_view(spec: Obj) -> Obj:
    """The spec with the fields that may change on update blanked out."""
    view = dict(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        view.pop(key, None)
    for key in ("containers", "initContainers"):
        if isinstance(view.get(key), list):
            view[key] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c for c in view[key]]
    return view


def bind_pod(pod: Obj, node_name: str, now: str) -> list[FieldError] | None:
    """Apply a Binding to ``pod``; returns an error list if the pod is already bound."""
    spec = pod.setdefault("spec", {})
    if spec.get("nodeName"):
        return [forbidden("spec.nodeName", f"pod {pod['metadata']['name']} is already assigned to node \"{spec['nodeName']}\"")]
    spec["nodeName"] = node_name
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now})
    status["conditions"] = conditions
    return None
