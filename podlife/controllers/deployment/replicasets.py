"""Facts about a Deployment's ReplicaSets: counts, orders, and which one is the new one.

Pure functions over plain objects (Kubernetes' ``deployment/util/deployment_util.go`` and
the ReplicaSet orders of ``controller_utils.go``):

* counts: a ReplicaSet's ``spec.replicas`` (what it is asked for), ``status.replicas``
  (what it has: *actual*), ``readyReplicas``, ``availableReplicas``; sums over lists
  (a missing ReplicaSet -- no new one yet -- counts nothing);
* *active* ReplicaSets are those asked for at least one pod;
* orders: by creation (then name), by revision (then creation), by size with the newer
  (scaling up) or the older (scaling down) first among equals;
* the *new* ReplicaSet is the oldest whose pod template equals the Deployment's, the
  ``pod-template-hash`` label aside (``EqualIgnoreHash``); every other one is *old*.
  Templates are compared as the API serves them: absent, null and empty values are the
  same (Go's ``omitempty`` drops them on the wire).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from ...client.base import Obj
from ..history import POD_TEMPLATE_HASH_LABEL

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def spec_replicas(rs: Obj | None) -> int:
    if rs is None:
        return 0
    value = (rs.get("spec") or {}).get("replicas")
    return int(value) if value is not None else 1


def _status_count(rs: Obj | None, field: str) -> int:
    if rs is None:
        return 0
    return int((rs.get("status") or {}).get(field) or 0)


def actual_replicas(rs: Obj | None) -> int:
    return _status_count(rs, "replicas")


def ready_replicas(rs: Obj | None) -> int:
    return _status_count(rs, "readyReplicas")


def available_replicas(rs: Obj | None) -> int:
    return _status_count(rs, "availableReplicas")


def total_spec(rss: Iterable[Obj | None]) -> int:
    """``GetReplicaCountForReplicaSets``: pods asked for."""
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def total_actual(rss: Iterable[Obj | None]) -> int:
    return sum(actual_replicas(rs) for rs in rss if rs is not None)


def total_ready(rss: Iterable[Obj | None]) -> int:
    return sum(ready_replicas(rs) for rs in rss if rs is not None)


def total_available(rss: Iterable[Obj | None]) -> int:
    return sum(available_replicas(rs) for rs in rss if rs is not None)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """``FilterActiveReplicaSets``: those asked for at least one pod."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def revision(rs: Obj) -> int:
    """The ReplicaSet's ``deployment.kubernetes.io/revision`` (0: none, or not a number)."""
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def _created(rs: Obj) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first (``ReplicaSetsByCreationTimestamp``; the name breaks ties)."""
    return sorted(rss, key=_created)


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first, then oldest (``ReplicaSetsByRevision``)."""
    return sorted(rss, key=lambda rs: (revision(rs), *_created(rs)))


def by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals the newer first (``ReplicaSetsBySizeNewer``: who scales up first)."""
    return sorted(sorted(rss, key=_created, reverse=True), key=lambda rs: -spec_replicas(rs))


def by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; among equals the older first (``ReplicaSetsBySizeOlder``: who scales down first)."""
    return sorted(by_creation(rss), key=lambda rs: -spec_replicas(rs))


def _normalized(value: Any) -> Any:
    """``value`` without null, empty-object and empty-list members (what Go's omitempty leaves out)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _normalized(item)
            if item is None or item == {} or item == []:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def template_without_hash(template: Obj | None) -> Obj:
    """The pod template, normalized, without the ``pod-template-hash`` label (nor a null creationTimestamp)."""
    out = copy.deepcopy(template or {})
    meta = out.get("metadata")
    if isinstance(meta, dict):
        labels = meta.get("labels")
        if isinstance(labels, dict):
            labels.pop(POD_TEMPLATE_HASH_LABEL, None)
        meta.pop("creationTimestamp", None)
    return _normalized(out)


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """``EqualIgnoreHash``: the two pod templates are the same but for ``pod-template-hash``."""
    return template_without_hash(a) == template_without_hash(b)


def find_new(deployment: Obj, rss: Sequence[Obj]) -> Obj | None:
    """``FindNewReplicaSet``: the oldest ReplicaSet whose template is the Deployment's (None: none yet)."""
    template = template_without_hash((deployment.get("spec") or {}).get("template"))
    for rs in by_creation(rss):
        if template_without_hash((rs.get("spec") or {}).get("template")) == template:
            return rs
    return None


def find_old(deployment: Obj, rss: Sequence[Obj]) -> tuple[Obj | None, list[Obj]]:
    """The new ReplicaSet and all the others (``FindOldReplicaSets``' ``allOldRSs``)."""
    new = find_new(deployment, rss)
    return new, [rs for rs in rss if rs is not new]
