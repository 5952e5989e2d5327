"""A StatefulSet pod's identity: its name and ordinal, labels, hostname, and its claims' names.

Pure functions, no I/O. Kubernetes facts followed (``pkg/controller/statefulset/stateful_set_utils.go``):

* a pod of set ``web`` is named ``web-<ordinal>``; a pod whose name ends in ``-<digits>`` has
  that ordinal and its *parent* is the rest of the name; only pods whose parent is the set
  are its members (others are neither adopted nor kept);
* the set wants ordinals ``spec.ordinals.start`` (default 0) up to ``start + replicas - 1``;
  members outside that range are *condemned* (deleted on scale down, highest first);
* each pod carries ``statefulset.kubernetes.io/pod-name`` (its name),
  ``apps.kubernetes.io/pod-index`` (its ordinal) and ``controller-revision-hash`` (the
  ControllerRevision its template came from); ``spec.hostname`` is its name and
  ``spec.subdomain`` the set's ``serviceName`` (both set only at creation: they are
  immutable);
* each ``volumeClaimTemplates`` entry ``data`` gives the pod claim ``data-<set>-<ordinal>``
  (labels: the template's plus the set selector's ``matchLabels``) and a pod volume named
  ``data`` referring to it (replacing a template volume of that name).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ...client.base import Obj
from ..history import CONTROLLER_REVISION_HASH_LABEL
from ..pod_control import controller_ref, pod_from_template

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
API_VERSION = "apps/v1"
KIND = "StatefulSet"

_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """The set a pod name belongs to and its ordinal (``("", -1)``: not a StatefulSet pod's name)."""
    match = _ORDINAL_RE.match(name or "")
    if match is None:
        return "", -1
    ordinal = int(match.group(2))
    if ordinal >= 2 ** 31:
        return match.group(1), -1
    return match.group(1), ordinal


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod["metadata"].get("name") or "")[1]


def is_member(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod["metadata"].get("name") or "")[0] == sts["metadata"]["name"]


def spec_of(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def replicas_of(sts: Obj) -> int:
    replicas = spec_of(sts).get("replicas")
    return 1 if replicas is None else int(replicas)


def start_ordinal(sts: Obj) -> int:
    return int((spec_of(sts).get("ordinals") or {}).get("start") or 0)


def end_ordinal(sts: Obj) -> int:
    """The last ordinal wanted (inclusive; below the start when there are no replicas)."""
    return start_ordinal(sts) + replicas_of(sts) - 1


def in_range(sts: Obj, ordinal: int) -> bool:
    return start_ordinal(sts) <= ordinal <= end_ordinal(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(sts: Obj, template_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts['metadata']['name']}-{ordinal}"


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in spec_of(sts).get("volumeClaimTemplates") or [] if isinstance(t, dict)]


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """The pod has its name, namespace and pod-name label as a member of the set (``identityMatches``)."""
    meta = pod["metadata"]
    parent, ordinal = parent_and_ordinal(meta.get("name") or "")
    return (ordinal >= 0 and parent == sts["metadata"]["name"] and meta.get("namespace") == sts["metadata"]["namespace"]
            and (meta.get("labels") or {}).get(POD_NAME_LABEL) == meta.get("name"))


def storage_matches(sts: Obj, pod: Obj) -> bool:
    """Every claim template has its volume in the pod, referring to the pod's claim (``storageMatches``)."""
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or [] if isinstance(v, dict)}
    for template in claim_templates(sts):
        name = (template.get("metadata") or {}).get("name") or ""
        source = (volumes.get(name) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim_name(sts, name, ordinal):
            return False
    return True


def identity_labels(sts: Obj, ordinal: int) -> dict[str, str]:
    """The labels that make a pod the set's pod of ``ordinal``."""
    return {POD_NAME_LABEL: pod_name(sts, ordinal), POD_INDEX_LABEL: str(ordinal)}


def new_claims(sts: Obj, ordinal: int) -> dict[str, Obj]:
    """The claims of the pod of ``ordinal``, by template (volume) name, as they are created."""
    selector_labels = (spec_of(sts).get("selector") or {}).get("matchLabels") or {}
    claims: dict[str, Obj] = {}
    for template in claim_templates(sts):
        tmeta = template.get("metadata") or {}
        name = tmeta.get("name") or ""
        meta: Obj = {"name": claim_name(sts, name, ordinal), "namespace": sts["metadata"]["namespace"],
                     "labels": {**(tmeta.get("labels") or {}), **selector_labels}}
        for key in ("annotations", "finalizers"):
            if tmeta.get(key):
                meta[key] = copy.deepcopy(tmeta[key])
        claims[name] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                        "spec": copy.deepcopy(template.get("spec") or {})}
    return claims


def with_storage(sts: Obj, ordinal: int, volumes: list[Any]) -> list[Obj]:
    """``volumes`` with one persistentVolumeClaim volume per claim template first (``updateStorage``)."""
    templates = [(t.get("metadata") or {}).get("name") or "" for t in claim_templates(sts)]
    claimed = [{"name": name, "persistentVolumeClaim": {"claimName": claim_name(sts, name, ordinal)}} for name in templates]
    return claimed + [v for v in volumes if isinstance(v, dict) and v.get("name") not in set(templates)]


def new_pod(sts: Obj, ordinal: int, revision: str) -> Obj:
    """The pod of ``ordinal`` made from ``sts``' template (a set at some revision), labelled with ``revision``."""
    template = spec_of(sts).get("template") or {}
    ref = controller_ref(sts, API_VERSION, KIND)
    labels = {**identity_labels(sts, ordinal), CONTROLLER_REVISION_HASH_LABEL: revision}
    pod = pod_from_template(template, sts, ref, name=pod_name(sts, ordinal), extra_labels=labels)
    spec = pod["spec"]
    spec["hostname"] = pod["metadata"]["name"]
    service = spec_of(sts).get("serviceName")
    if service:
        spec["subdomain"] = service
    if claim_templates(sts):
        spec["volumes"] = with_storage(sts, ordinal, list(spec.get("volumes") or []))
    return pod
