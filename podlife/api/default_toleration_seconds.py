"""The DefaultTolerationSeconds admission plugin: pods outlive a lost node for five minutes.

Learned from Kubernetes' ``plugin/pkg/admission/defaulttolerationseconds/admission.go``.
On a pod's create and update (not its subresources), a pod that does not already
tolerate ``node.kubernetes.io/not-ready:NoExecute`` gets
``{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
tolerationSeconds: 300}``, and likewise for ``node.kubernetes.io/unreachable``. A
toleration counts as tolerating when its key is that key or empty (every key) and its
effect is ``NoExecute`` or empty (every effect), so nothing is ever added twice. The
seconds are kube-apiserver's ``--default-not-ready-toleration-seconds`` and
``--default-unreachable-toleration-seconds`` (:class:`TolerationDefaults`, in
``ApiContext.toleration_defaults``). The node lifecycle controller's NoExecute taints
evict pods after those seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..registry.types import Obj
from .admission_plugin import AdmissionPlugin, Attributes, own_spec

if TYPE_CHECKING:
    from .rest import ResourceREST

NAME = "DefaultTolerationSeconds"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NO_EXECUTE = "NoExecute"
DEFAULT_SECONDS = 300


@dataclass(frozen=True)
class TolerationDefaults:
    """``--default-not-ready-toleration-seconds`` and ``--default-unreachable-toleration-seconds``."""

    not_ready_seconds: int = DEFAULT_SECONDS
    unreachable_seconds: int = DEFAULT_SECONDS


def tolerates(tolerations: list[Any], taint_key: str) -> bool:
    """Whether one of ``tolerations`` tolerates ``taint_key:NoExecute`` (empty key/effect: all)."""
    return any(isinstance(t, dict) and t.get("key") in (None, "", taint_key) and t.get("effect") in (None, "", NO_EXECUTE)
               for t in tolerations)


def admit(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half: add the tolerations the pod lacks."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    elif not isinstance(tolerations, list):
        return []  # validation words the mistake
    defaults: TolerationDefaults = rest.ctx.toleration_defaults
    added = [{"key": key, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": seconds}
             for key, seconds in ((NOT_READY_TAINT, defaults.not_ready_seconds),
                                  (UNREACHABLE_TAINT, defaults.unreachable_seconds))
             if not tolerates(tolerations, key)]
    if added:
        (own_spec(pod) if old is not None else spec)["tolerations"] = tolerations + added
    return []


PLUGIN = AdmissionPlugin(NAME, frozenset({("", "pods")}), mutate=admit)
