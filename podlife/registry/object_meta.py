"""Object metadata as Kubernetes stores it: ``omitempty`` fields left out when empty.

Kubernetes decodes every written object into its Go type and encodes it again for
storage, and the fields of ``ObjectMeta`` (``k8s.io/apimachinery/pkg/apis/meta/v1``
``types.go``) are all tagged ``omitempty``: an empty or null ``labels``,
``annotations``, ``ownerReferences``, ``finalizers`` or ``managedFields`` is not
stored, nor served, nor sent in watch events -- neither is an empty ``generateName``
or ``selfLink``, nor a null ``deletionTimestamp`` / ``deletionGracePeriodSeconds``
(pointers: a zero grace period is kept). Custom resources get the same treatment
(their metadata is coerced through ``ObjectMeta`` too). So a strategic merge patch
whose ``$deleteFromPrimitiveList/finalizers`` removes the last finalizer, a merge
patch setting ``finalizers: []``, a JSON patch removing the last element or a PUT
with ``labels: {}`` all leave an object without the field.

:func:`drop_empty_metadata` is that rule, applied by the generic store
(:mod:`podlife.api.rest`) to every object it is about to store (created, updated,
patched), before the no-op check, so a write that only empties an absent list changes
nothing -- and after the field manager, which reads the request's ``managedFields`` as
sent (an empty list keeps the live entries, ``[{}]`` resets them). Values of the wrong
type are left alone: validation rejects them before this runs.
"""

from __future__ import annotations

from typing import Any

#: ``ObjectMeta`` maps and lists: left out when null or empty
_COLLECTIONS: tuple[tuple[str, type], ...] = (
    ("labels", dict), ("annotations", dict), ("ownerReferences", list), ("finalizers", list), ("managedFields", list),
)
#: ``ObjectMeta`` strings: left out when null or ""
_STRINGS = ("generateName", "selfLink")
#: ``ObjectMeta`` pointers: left out when null
_POINTERS = ("deletionTimestamp", "deletionGracePeriodSeconds")


def drop_empty_metadata(meta: dict[str, Any]) -> None:
    """Remove, in place, the ``omitempty`` fields of ``meta`` Kubernetes would not store."""
    for name, kind in _COLLECTIONS:
        if name in meta:
            value = meta[name]
            if value is None or (type(value) is kind and not value):
                del meta[name]
    for name in _STRINGS:
        if name in meta and meta[name] in (None, ""):
            del meta[name]
    for name in _POINTERS:
        if name in meta and meta[name] is None:
            del meta[name]
