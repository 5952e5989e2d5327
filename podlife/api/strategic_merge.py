"""Strategic merge patch (``application/strategic-merge-patch+json``) for built-in kinds.

Design.  A strategic merge patch is a JSON merge patch whose list handling is
driven by the *schema*: a list whose field carries ``x-kubernetes-patch-strategy:
merge`` is merged element by element (maps matched by the field's
``x-kubernetes-patch-merge-key``, e.g. containers by ``name``, ports by
``containerPort``; primitives as a set, e.g. ``finalizers``) instead of being
replaced.  kubectl's client-side ``apply``, ``patch`` (its default type),
``set image``, ``rollout restart`` and the Python clients' dict patches all send
it, so the server must apply it exactly as Kubernetes does.  The schema comes from
:mod:`podlife.registry.schemas.tree` (the same 1.37 definitions that serve OpenAPI and
validation), through the small :class:`PatchSchema` protocol, so any source of
patch metadata can be plugged in (tests use a path → :class:`PatchMeta` callable).

Semantics (server side, as ``StrategicMergeMapPatch`` in apimachinery):

* ``null`` deletes a key; a key missing from the original takes the patch value
  with directives and nulls removed.
* Maps merge recursively; ``$patch: replace`` replaces a map with the patch's
  content, ``$patch: delete`` empties it; ``$retainKeys: [..]`` first drops every
  key of the original map not listed (``PodSpec.volumes`` uses ``merge,retainKeys``
  so a volume can switch source type).
* Lists with strategy ``merge``: maps are matched by merge key and merged, new ones
  appended; ``{"name": x, "$patch": "delete"}`` removes every element with that key;
  an element ``{"$patch": "replace"}`` makes the list exactly the patch's other
  elements.  Primitive lists take the union (deduplicated);
  ``$deleteFromPrimitiveList/<field>: [..]`` removes values.  Other lists are
  replaced wholesale.
* Order: ``$setElementOrder/<field>`` (sent by kubectl apply) fixes the relative
  order of the elements it names and is checked against the patch list; elements
  only on the server keep their relative position among them.  Without it the
  patch's order wins for the elements it mentions.

The function is pure: inputs are never mutated, the result shares untouched
subtrees with ``original`` and copies everything taken from ``patch``.  Two lenient
deviations from Go, both for input Go would reject or mangle: ``$patch: merge`` is
accepted (as a no-op) on maps and list elements, and a ``$patch: replace`` map that
lands on a field absent from the original keeps its content (Go drops it).

Errors raise :class:`StrategicMergeError` (a ``ValueError``) whose message the API
layer returns in a 422/400 Status.  Custom resources are not strategic-merge-able;
:func:`supports_strategic_merge` says which kinds are, and the API layer answers
415 for the others, as Kubernetes does.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

from podlife.registry.schemas.loader import supports_strategic_merge
from podlife.registry.schemas.tree import PatchMeta, SchemaNode, compiled, node_for_definition

__all__ = [
    "PatchSchema",
    "StrategicMergeError",
    "apply_strategic_merge_patch",
    "apply_strategic_merge_patch_for",
    "create_two_way_merge_patch",
    "supports_strategic_merge",
]

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_NO_META = PatchMeta()
_MISSING: Any = object()


class StrategicMergeError(ValueError):
    """The patch cannot be applied; ``str(err)`` is the message for the Status."""


class PatchSchema(Protocol):
    """What the merge needs to know about a place in the object."""

    def field(self, key: str) -> tuple["PatchSchema | None", PatchMeta]:
        """Schema and patch metadata of field ``key`` of this object (or map value)."""

    def items(self) -> "PatchSchema | None":
        """Schema of the elements when this is a list."""


class _NoSchema:
    """Schema of an unknown place: maps merge, lists replace."""

    __slots__ = ()

    def field(self, key: str) -> tuple["_NoSchema", PatchMeta]:
        return self, _NO_META

    def items(self) -> "_NoSchema":
        return self


_NO_SCHEMA = _NoSchema()


class _PathSchema:
    """Adapts a ``path -> PatchMeta`` callable (list levels implicit) to PatchSchema."""

    __slots__ = ("_fn", "_path")

    def __init__(self, fn: Callable[[tuple[str, ...]], PatchMeta], path: tuple[str, ...] = ()) -> None:
        self._fn = fn
        self._path = path

    def field(self, key: str) -> tuple["_PathSchema", PatchMeta]:
        path = self._path + (key,)
        return _PathSchema(self._fn, path), self._fn(path) or _NO_META

    def items(self) -> "_PathSchema":
        return self


SchemaLookup = PatchSchema | SchemaNode | str | Callable[[tuple[str, ...]], PatchMeta] | None


def _as_schema(lookup: SchemaLookup) -> Any:
    if lookup is None:
        return _NO_SCHEMA
    if isinstance(lookup, str):
        return node_for_definition(lookup)
    if hasattr(lookup, "field") and hasattr(lookup, "items"):
        return lookup
    if callable(lookup):
        return _PathSchema(lookup)
    raise TypeError(f"unsupported schema lookup: {lookup!r}")


def _field(schema: Any, key: str) -> tuple[Any, PatchMeta]:
    sub, meta = schema.field(key)
    return (sub if sub is not None else _NO_SCHEMA), meta


def _items(schema: Any) -> Any:
    sub = schema.items()
    return sub if sub is not None else _NO_SCHEMA


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def apply_strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any],
                                schema_lookup: SchemaLookup) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` and return the result (inputs untouched).

    ``schema_lookup`` is a definition name (``"io.k8s.api.core.v1.Pod"``), a
    compiled :class:`~podlife.registry.schemas.tree.SchemaNode`, any :class:`PatchSchema`,
    or a callable mapping a field path (``("spec", "containers")``) to its
    :class:`PatchMeta`.
    """
    if not isinstance(patch, dict):
        raise StrategicMergeError("strategic merge patch must be a JSON object")
    if not isinstance(original, dict):
        raise StrategicMergeError("the object to patch must be a JSON object")
    result = _merge_map(original, patch, _as_schema(schema_lookup))
    return result


def apply_strategic_merge_patch_for(group: str, version: str, kind: str,
                                    original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of a built-in kind."""
    node = compiled(group, version, kind) if supports_strategic_merge(group, version, kind) else None
    if node is None:
        api_version = f"{group}/{version}" if group else version
        raise StrategicMergeError(
            f"strategic merge patch is not supported for {kind} in {api_version}")
    return apply_strategic_merge_patch(original, patch, node)


# ---------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------


def _key(value: Any) -> Any:
    """Equality key matching Go's interface comparison (1 != 1.0 != True)."""
    if isinstance(value, (dict, list)):
        raise StrategicMergeError(f"merge key value must be a scalar, got {_show(value)}")
    return (type(value), value)


def _show(value: Any) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _is_directive_key(key: str) -> bool:
    return key == PATCH or key == RETAIN_KEYS or key.startswith(SET_ORDER) or key.startswith(DELETE_PRIMITIVE)


def _clean(value: Any) -> Any:
    """Deep copy of a patch value with nulls and directives removed."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not _is_directive_key(k)}
    if isinstance(value, list):
        return [_clean(v) for v in value if not (isinstance(v, dict) and PATCH in v)]
    return value


def _as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise StrategicMergeError(f"{what} must be a list, got {_show(value)}")
    return value


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


def _map_directive(patch: dict[str, Any]) -> dict[str, Any] | None:
    """Handle ``$patch`` on a map: the replacement map, or ``None`` to merge normally."""
    directive = patch[PATCH]
    if directive == "replace":
        return _clean(patch)
    if directive == "delete":
        return {}
    if directive == "merge":
        return None
    raise StrategicMergeError(f"unknown patch type {_show(directive)} in map {_show(patch)}")


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Any) -> dict[str, Any]:
    if PATCH in patch:
        replaced = _map_directive(patch)
        if replaced is not None:
            return replaced
    result = dict(original)
    if RETAIN_KEYS in patch:
        result = _retain_keys(result, patch)
    handled = _apply_element_orders(result, patch, schema)
    deletions: list[tuple[str, Any]] = []
    for key, pv in patch.items():
        if key in handled or key == PATCH or key == RETAIN_KEYS or key.startswith(SET_ORDER):
            continue
        if key.startswith(DELETE_PRIMITIVE):
            deletions.append((key, pv))
            continue
        if pv is None:
            result.pop(key, None)
            continue
        ov = result.get(key, _MISSING)
        sub, meta = _field(schema, key)
        merged = _merge_value(ov, pv, sub, meta)
        if merged is _MISSING:
            result.pop(key, None)
        else:
            result[key] = merged
    for key, pv in deletions:
        _delete_from_primitive_list(result, key, pv)
    return result


def _merge_value(ov: Any, pv: Any, schema: Any, meta: PatchMeta) -> Any:
    """Merge one non-null patch value into the original value (``_MISSING`` if absent)."""
    if type(ov) is dict and type(pv) is dict:
        if meta.strategy == "replace":
            return _clean({k: v for k, v in pv.items() if k != PATCH})
        return _merge_map(ov, pv, schema)
    if type(ov) is list and type(pv) is list:
        return _merge_list(ov, pv, schema, meta)
    return _new_value(pv, schema, meta)


def _new_value(pv: Any, schema: Any, meta: PatchMeta) -> Any:
    """A patch value for a key the original lacks (or has with another type)."""
    if isinstance(pv, dict):
        if PATCH in pv:
            directive = pv[PATCH]
            if directive == "delete":
                return _MISSING
            if directive not in ("replace", "merge"):
                raise StrategicMergeError(f"unknown patch type {_show(directive)} in map {_show(pv)}")
            pv = {k: v for k, v in pv.items() if k != PATCH}
        if meta.strategy == "replace":
            return _clean(pv)
        return _merge_map({}, pv, schema)
    if isinstance(pv, list):
        return _merge_list([], pv, schema, meta)
    return pv


def _retain_keys(result: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    keys = patch[RETAIN_KEYS]
    if not isinstance(keys, list):
        raise StrategicMergeError(f"$retainKeys must be a list of field names, got {_show(keys)}")
    keep = {k for k in keys if isinstance(k, str)}
    for k, v in patch.items():
        if v is None or _is_directive_key(k):
            continue
        if k not in keep:
            raise StrategicMergeError(
                f"invalid $retainKeys directive: field {k!r} is in the patch but not in {_show(keys)}")
    return {k: v for k, v in result.items() if k in keep}


def _delete_from_primitive_list(result: dict[str, Any], key: str, values: Any) -> None:
    field = key[len(DELETE_PRIMITIVE):]
    if not field:
        raise StrategicMergeError(f"invalid directive {key!r}: missing field name")
    values = _as_list(values, key)
    current = result.get(field)
    if not isinstance(current, list):
        return
    drop = {_key(v) for v in values if not isinstance(v, (dict, list))}
    result[field] = [v for v in current if isinstance(v, (dict, list)) or _key(v) not in drop]


# ---------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------


def _element_kind(*lists: list[Any]) -> str:
    """``"map"``, ``"scalar"`` or ``""`` (no elements); errors on mixed lists."""
    kind = ""
    for lst in lists:
        for v in lst:
            if isinstance(v, list):
                raise StrategicMergeError("lists of lists are not supported by strategic merge patch")
            k = "map" if isinstance(v, dict) else "scalar"
            if kind and k != kind:
                raise StrategicMergeError(f"list element types are not identical: {_show(lists)}")
            kind = k
    return kind


def _merge_list(original: list[Any], patch: list[Any], schema: Any, meta: PatchMeta) -> list[Any]:
    if meta.strategy != "merge":
        return _clean(patch)
    if not original and not patch:
        return []
    kind = _element_kind(original, patch)
    if kind == "map":
        return _merge_map_list(original, patch, _items(schema), meta.merge_key)
    return _merge_scalar_list(original, patch)


def _merge_scalar_list(original: list[Any], patch: list[Any]) -> list[Any]:
    merged: list[Any] = []
    seen: set[Any] = set()
    for v in (*original, *patch):
        k = _key(v)
        if k not in seen:
            seen.add(k)
            merged.append(v)
    in_patch = {_key(v) for v in patch}
    patch_items = [v for v in merged if _key(v) in in_patch]
    server_only = [v for v in merged if _key(v) not in in_patch]
    return _order(patch_items, server_only, patch, original, _key)


def _merge_map_list(original: list[Any], patch: list[Any], item_schema: Any,
                    merge_key: str | None) -> list[Any]:
    if not merge_key:
        raise StrategicMergeError("cannot merge lists of maps without a merge key")
    original, patch = _apply_list_directives(original, patch, merge_key)
    result = list(original)
    index = _first_index_by_key(result, merge_key)
    for item in patch:
        if merge_key not in item:
            raise StrategicMergeError(
                f"map {_show(item)} does not contain declared merge key {merge_key!r}")
        k = _key(item[merge_key])
        pos = index.get(k)
        if pos is None:
            index[k] = len(result)
            result.append(_merge_map({}, item, item_schema))
        else:
            result[pos] = _merge_map(result[pos], item, item_schema)

    def key_of(v: Any) -> Any:
        return _key(v.get(merge_key)) if isinstance(v, dict) else None

    in_patch = {_key(p[merge_key]) for p in patch}
    patch_items = [v for v in result if key_of(v) in in_patch]
    server_only = [v for v in result if key_of(v) not in in_patch]
    return _order(patch_items, server_only, patch, original, key_of)


def _first_index_by_key(items: list[Any], merge_key: str) -> dict[Any, int]:
    index: dict[Any, int] = {}
    for i, v in enumerate(items):
        if isinstance(v, dict) and merge_key in v:
            index.setdefault(_key(v[merge_key]), i)
    return index


def _apply_list_directives(original: list[Any], patch: list[Any],
                           merge_key: str) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` elements: returns (new original, patch without directives)."""
    rest: list[Any] = []
    replace = False
    for item in patch:
        if PATCH not in item:
            rest.append(item)
            continue
        directive = item[PATCH]
        if directive == "delete":
            if merge_key not in item:
                raise StrategicMergeError(
                    f"map {_show(item)} does not contain declared merge key {merge_key!r}")
            gone = _key(item[merge_key])
            original = [v for v in original
                        if not (isinstance(v, dict) and merge_key in v and _key(v[merge_key]) == gone)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            rest.append({k: v for k, v in item.items() if k != PATCH})
        else:
            raise StrategicMergeError(f"unknown patch type {_show(directive)} in list element {_show(item)}")
    if replace:
        return [_clean(v) for v in rest], []
    return original, rest


def _order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
           server_order: list[Any], key_of: Callable[[Any], Any]) -> list[Any]:
    """Order merged elements: patch items by ``patch_order``, server-only ones by
    ``server_order``, interleaved so each keeps its place relative to the server list."""
    patch_pos = _positions(patch_order, key_of)
    server_pos = _positions(server_order, key_of)
    patch_items = _sorted_by(patch_items, patch_pos, key_of)
    server_only = _sorted_by(server_only, server_pos, key_of)
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) and j < len(patch_items):
        li = server_pos.get(key_of(server_only[i]), -1)
        ri = server_pos.get(key_of(patch_items[j]), -1)
        if li >= 0 and ri >= 0 and li < ri:
            out.append(server_only[i])
            i += 1
        else:
            out.append(patch_items[j])
            j += 1
    out.extend(server_only[i:])
    out.extend(patch_items[j:])
    return out


def _positions(items: Iterable[Any], key_of: Callable[[Any], Any]) -> dict[Any, int]:
    pos: dict[Any, int] = {}
    for i, v in enumerate(items):
        if isinstance(v, dict) and PATCH in v:
            continue
        try:
            pos.setdefault(key_of(v), i)
        except StrategicMergeError:
            continue
    return pos


def _sorted_by(items: list[Any], pos: dict[Any, int], key_of: Callable[[Any], Any]) -> list[Any]:
    end = len(pos) + len(items)
    return sorted(items, key=lambda v: pos.get(key_of(v), end))


# ---------------------------------------------------------------------------
# $setElementOrder
# ---------------------------------------------------------------------------


def _apply_element_orders(result: dict[str, Any], patch: dict[str, Any], schema: Any) -> set[str]:
    """Process every ``$setElementOrder/<field>`` with its list; returns handled fields."""
    handled: set[str] = set()
    for key in patch:
        if not key.startswith(SET_ORDER):
            continue
        field = key[len(SET_ORDER):]
        if not field:
            raise StrategicMergeError(f"invalid directive {key!r}: missing field name")
        order = _as_list(patch[key], key)
        sub, meta = _field(schema, field)
        has_orig = isinstance(result.get(field), list)
        has_patch = field in patch and patch[field] is not None
        if field in result and result[field] is not None and not has_orig:
            raise StrategicMergeError(f"field {field!r} must be a list to use {key}")
        patch_list = _as_list(patch[field], field) if has_patch else []
        merge_key = meta.merge_key or ""
        _validate_order(patch_list, order, merge_key)
        if has_patch:
            handled.add(field)
            merged = _merge_list(result[field] if has_orig else [], patch_list, sub, meta)
        elif has_orig:
            merged = result[field]
        else:
            continue
        result[field] = _reorder(merged, order, (result.get(field) or []) if has_orig else [], merge_key)
    return handled


def _reorder(merged: list[Any], order: list[Any], server: list[Any], merge_key: str) -> list[Any]:
    key_of: Callable[[Any], Any]
    if merge_key:
        def key_of(v: Any) -> Any:
            return _key(v.get(merge_key)) if isinstance(v, dict) else None
    else:
        if any(isinstance(v, (dict, list)) for v in merged):
            return merged
        key_of = _key
    wanted = _positions(order, key_of)
    patch_items = [v for v in merged if key_of(v) in wanted]
    server_only = [v for v in merged if key_of(v) not in wanted]
    return _order(patch_items, server_only, order, server, key_of)


def _validate_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list must follow the ``$setElementOrder`` list (deletions aside)."""
    if not order or not patch_list:
        return
    items = [v for v in patch_list
             if not (merge_key and isinstance(v, dict) and v.get(PATCH) == "delete")]
    pi = si = 0
    while pi < len(items) and si < len(order):
        item = items[pi]
        if isinstance(item, dict) and PATCH in item:
            pi += 1
            continue
        if _order_key(item, merge_key) == _order_key(order[si], merge_key):
            pi += 1
        si += 1
    if pi < len(items):
        raise StrategicMergeError(
            f"the order in patch list {_show(patch_list)} doesn't match "
            f"$setElementOrder list {_show(order)}")


def _order_key(item: Any, merge_key: str) -> Any:
    if not merge_key:
        return _key(item)
    if not isinstance(item, dict) or merge_key not in item:
        raise StrategicMergeError(f"map {_show(item)} does not contain declared merge key {merge_key!r}")
    return _key(item[merge_key])


# ---------------------------------------------------------------------------
# Creating patches (two-way diff), as kubectl does from last-applied to new config
# ---------------------------------------------------------------------------


def create_two_way_merge_patch(original: dict[str, Any], modified: dict[str, Any],
                               schema_lookup: SchemaLookup) -> dict[str, Any]:
    """A strategic merge patch turning ``original`` into ``modified``.

    Emits what kubectl emits: changed and added fields, ``null`` for removed keys,
    ``$patch: delete`` elements and ``$setElementOrder`` for merged lists of maps,
    ``$deleteFromPrimitiveList`` and ``$setElementOrder`` for merged primitive lists,
    and ``$retainKeys`` for fields whose strategy includes ``retainKeys``.
    """
    return _diff_maps(original, modified, _as_schema(schema_lookup), retain_keys=False)


def _diff_maps(original: dict[str, Any], modified: dict[str, Any], schema: Any,
               retain_keys: bool) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, mv in modified.items():
        ov = original.get(key, _MISSING)
        if ov is _MISSING:
            patch[key] = mv
            continue
        if type(ov) is not type(mv):
            patch[key] = mv
            continue
        sub, meta = _field(schema, key)
        if type(mv) is dict:
            if meta.strategy == "replace":
                if ov != mv:
                    patch[key] = mv
                continue
            diff = _diff_maps(ov, mv, sub, retain_keys=meta.retain_keys)
            if diff:
                patch[key] = diff
        elif type(mv) is list:
            _diff_list_field(key, ov, mv, sub, meta, patch)
        elif ov != mv:
            patch[key] = mv
    for key in original:
        if key not in modified:
            patch[key] = None
    if retain_keys and (patch or any(k not in modified for k in original)):
        patch[RETAIN_KEYS] = sorted(k for k, v in modified.items() if v is not None)
    return patch


def _diff_list_field(key: str, ov: list[Any], mv: list[Any], schema: Any, meta: PatchMeta,
                     patch: dict[str, Any]) -> None:
    if meta.strategy != "merge":
        if ov != mv:
            patch[key] = mv
        return
    if not ov:
        if mv:
            patch[key] = mv
        return
    kind = _element_kind(ov, mv)
    if kind == "map":
        _diff_map_list(key, ov, mv, _items(schema), meta, patch)
    else:
        _diff_scalar_list(key, ov, mv, patch)


def _diff_map_list(key: str, ov: list[Any], mv: list[Any], item_schema: Any, meta: PatchMeta,
                   patch: dict[str, Any]) -> None:
    mk = meta.merge_key
    if not mk:
        raise StrategicMergeError(f"cannot diff list {key!r} of maps without a merge key")
    for item in (*ov, *mv):
        if mk not in item:
            raise StrategicMergeError(f"map {_show(item)} does not contain declared merge key {mk!r}")
    orig_by_key = {_key(v[mk]): v for v in ov}
    mod_keys = {_key(v[mk]) for v in mv}
    changes: list[Any] = []
    for item in mv:
        before = orig_by_key.get(_key(item[mk]))
        if before is None:
            changes.append(item)
            continue
        diff = _diff_maps(before, item, item_schema, retain_keys=meta.retain_keys)
        if diff:
            diff[mk] = item[mk]
            changes.append(diff)
    deletions = [{mk: v[mk], PATCH: "delete"} for v in ov if _key(v[mk]) not in mod_keys]
    same_order = [_key(v[mk]) for v in ov] == [_key(v[mk]) for v in mv]
    if changes or deletions:
        patch[key] = changes + deletions
    if changes or deletions or not same_order:
        patch[SET_ORDER + key] = [{mk: v[mk]} for v in mv]


def _diff_scalar_list(key: str, ov: list[Any], mv: list[Any], patch: dict[str, Any]) -> None:
    okeys = {_key(v) for v in ov}
    mkeys = {_key(v) for v in mv}
    added = [v for v in mv if _key(v) not in okeys]
    removed: list[Any] = []
    seen: set[Any] = set()
    for v in ov:
        k = _key(v)
        if k not in mkeys and k not in seen:
            seen.add(k)
            removed.append(v)
    if added:
        patch[key] = added
    if removed:
        patch[DELETE_PRIMITIVE + key] = removed
    if removed or ov != mv:
        patch[SET_ORDER + key] = list(mv)
