"""Revisions of a workload's pod template: the hash that names them, and ControllerRevisions.

Deployments, DaemonSets and StatefulSets all roll pods from one template to the next, and
all name a template version by a hash of it:

* a Deployment's ReplicaSets carry ``pod-template-hash`` (label of the ReplicaSet, its
  selector and its pods) and are named ``<deployment>-<hash>``;
* DaemonSets and StatefulSets keep each version in a ``ControllerRevision`` named
  ``<owner>-<hash>`` whose ``data`` is the template (as a patch of the owner's spec), with
  a ``revision`` number counted up from 1; their pods carry ``controller-revision-hash``.

:func:`template_hash` is the hash: FNV-1a (32 bit) of the object's canonical JSON, then
the collision count (``status.collisionCount``, bumped when another object already took
the name), rendered in Kubernetes' safe alphabet (``rand.SafeEncodeString``: no vowels,
no characters that look alike), so names look as they do on Kubernetes. (Kubernetes
hashes Go's printed form of the struct, which cannot be reproduced outside Go; the
value differs, the properties -- stable, short, collision-counted -- are the same.)

The rest are pure helpers over a list of ControllerRevisions: build one
(:func:`controller_revision`), the next revision number, the revision equal to a given
template (:func:`find_equal`), and which old ones ``revisionHistoryLimit`` lets go
(:func:`revisions_to_prune`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..client.base import Obj

#: ``k8s.io/apimachinery/pkg/util/rand``'s alphabet for names: no vowels, no 0/1/3, no l
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _fnv32a(data: bytes, start: int = _FNV_OFFSET) -> int:
    h = start
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character mapped into the safe alphabet."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def template_hash(obj: Any, collision_count: int | None = None) -> str:
    """The hash naming a template version (``pod-template-hash``, ``controller-revision-hash`` suffix)."""
    h = _fnv32a(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    if collision_count:
        h = _fnv32a(collision_count.to_bytes(4, "little"), h)
    return safe_encode(str(h))


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def next_revision(revisions: Iterable[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def sorted_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first (by revision number, then creation, then name)."""
    return sorted(revisions, key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"]["name"]))


def find_equal(revisions: Iterable[Obj], data: Any) -> list[Obj]:
    """The revisions whose ``data`` equals ``data``, oldest first."""
    return sorted_revisions(r for r in revisions if r.get("data") == data)


def controller_revision(owner: Obj, ref: Obj, data: Any, revision: int, collision_count: int | None,
                        labels: dict[str, str] | None = None) -> Obj:
    """A ControllerRevision of ``owner`` holding ``data`` (named ``<owner>-<hash>``, labelled with the hash)."""
    hash_ = template_hash(data, collision_count)
    meta = owner["metadata"]
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"],
                         "labels": {**(labels or {}), CONTROLLER_REVISION_HASH_LABEL: hash_},
                         "ownerReferences": [dict(ref)]},
            "data": data, "revision": revision}


def revisions_to_prune(revisions: Sequence[Obj], limit: int | None, in_use: set[str]) -> list[Obj]:
    """The oldest revisions beyond ``limit`` (``revisionHistoryLimit``, default 10) that no pod uses."""
    keep = 10 if limit is None else max(0, limit)
    candidates = [r for r in sorted_revisions(revisions) if r["metadata"]["name"] not in in_use]
    excess = len(candidates) - keep
    return candidates[:excess] if excess > 0 else []
