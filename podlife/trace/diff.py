"""Field-level diffs of two versions of a Kubernetes object, with readable paths.

Reads two decoded JSON objects (the previous and the new version of one stored object) and
returns what changed as ``{op, path, old, new}`` operations (``op``: add, remove, replace),
with paths a person reads as kubectl's JSONPath-ish field names: ``spec.nodeName``,
``status.conditions[type=Ready].status``, ``status.containerStatuses[name=c].state``,
``metadata.annotations["network.podlife.io/port"]``, ``spec.tolerations[0].key``.

Why keyed lists: a status write that adds one condition shifts the indexes of the others,
so an index-based diff would report every later condition as changed. Lists are matched by
their Kubernetes merge key (``type`` for conditions, ``name`` for containers and their
statuses, ...) where there is one and it is present and unique in both versions, else by
index. ``metadata.resourceVersion`` (the store's revision, not a change) and
``metadata.managedFields`` (bookkeeping that changes with every writer; the record's
``writer`` already says who wrote) are left out. A subtree that appears or disappears is one
operation carrying the whole value, not one per leaf.

Pure functions: no I/O, no clock; run at read time only (never on the write path).
"""

from __future__ import annotations

from typing import Any

#: metadata fields that are not a change of the object
IGNORED_METADATA = frozenset({"resourceVersion", "managedFields"})

#: the merge key of a list, by the list's field name (Kubernetes' patchMergeKey); a list of
#: objects not named here is matched by ``name`` when every item has a unique one, else by index
MERGE_KEYS: dict[str, str] = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "podIPs": "ip",
    "hostIPs": "ip",
    "addresses": "type",
    "imagePullSecrets": "name",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
    "images": "",  # node images: by index (names lists are not unique keys)
}

#: how many operations one diff reports at most (a rewrite of a huge object is summarised)
MAX_OPERATIONS = 200


def diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """The operations that turn ``old`` into ``new`` (``old`` None: the object was created)."""
    ops: list[dict[str, Any]] = []
    if old is None:
        old = {}
    if new is None:
        new = {}
    _diff_object(ops, "", old, new, top=True)
    if len(ops) > MAX_OPERATIONS:
        dropped = len(ops) - MAX_OPERATIONS
        ops = ops[:MAX_OPERATIONS]
        ops.append({"op": "truncated", "path": "", "old": None, "new": f"{dropped} more changes"})
    return ops


def _join(base: str, key: str) -> str:
    if key and all(ch.isalnum() or ch in "_-" for ch in key):
        return f"{base}.{key}" if base else key
    quoted = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{base}["{quoted}"]'


def _diff_object(ops: list[dict[str, Any]], path: str, old: dict, new: dict, *, top: bool = False) -> None:
    for key in old:
        if key not in new:
            if not (path == "metadata" and key in IGNORED_METADATA):
                ops.append({"op": "remove", "path": _join(path, key), "old": old[key], "new": None})
    for key, value in new.items():
        if path == "metadata" and key in IGNORED_METADATA:
            continue
        sub = _join(path, key)
        if key not in old:
            if top and key == "metadata" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in IGNORED_METADATA}
            ops.append({"op": "add", "path": sub, "old": None, "new": value})
        else:
            _diff_value(ops, sub, key, old[key], value)


def _diff_value(ops: list[dict[str, Any]], path: str, field: str, old: Any, new: Any) -> None:
    if old is new or old == new:
        return
    if type(old) is dict and type(new) is dict:
        _diff_object(ops, path, old, new)
    elif type(old) is list and type(new) is list:
        _diff_list(ops, path, field, old, new)
    else:
        ops.append({"op": "replace", "path": path, "old": old, "new": new})


def _list_key(field: str, old: list, new: list) -> str | None:
    """The key the items of both versions are matched by, or None for by index."""
    key = MERGE_KEYS.get(field, "name")
    if not key:
        return None
    for items in (old, new):
        seen = set()
        for item in items:
            if type(item) is not dict or key not in item:
                return None
            value = item[key]
            if not isinstance(value, (str, int)) or value in seen:
                return None
            seen.add(value)
    return key


def _diff_list(ops: list[dict[str, Any]], path: str, field: str, old: list, new: list) -> None:
    key = _list_key(field, old, new)
    if key is None:
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                ops.append({"op": "remove", "path": sub, "old": old[i], "new": None})
            elif i >= len(old):
                ops.append({"op": "add", "path": sub, "old": None, "new": new[i]})
            else:
                _diff_value(ops, sub, "", old[i], new[i])
        return
    old_by = {item[key]: item for item in old}
    new_keys = set()
    for item in new:
        value = item[key]
        new_keys.add(value)
        sub = f"{path}[{key}={value}]"
        if value in old_by:
            _diff_value(ops, sub, "", old_by[value], item)
        else:
            ops.append({"op": "add", "path": sub, "old": None, "new": item})
    for value, item in old_by.items():
        if value not in new_keys:
            ops.append({"op": "remove", "path": f"{path}[{key}={value}]", "old": item, "new": None})
