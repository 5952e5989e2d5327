"""Managed fields: which field manager owns which field of an object (``metadata.managedFields``).

Design.  Kubernetes records, on every write over the API, a ``managedFields`` entry
per *manager* -- ``(manager, operation, apiVersion, subresource)`` -- holding the set
of fields that manager owns, in the ``FieldsV1`` encoding of structured-merge-diff
(a trie whose keys are path elements: ``f:<field>``, ``k:<json of the list-map keys>``,
``v:<json value>`` for set members, ``i:<index>``; ``.`` marks a node that is itself a
member).  Server-side apply (:mod:`podlife.api.apply`) reads those sets to find
conflicts and to remove what an applier stopped applying; plain writes (create,
update, patch) must keep them current.  This module is everything both need:

* :class:`Shape` -- what the schema says about a place in an object, reduced to what
  field management needs: a struct, a granular map, a list merged by keys, a set, or
  something atomic.  It is derived from the same compiled 1.37 schemas as validation
  and strategic merge (:mod:`podlife.registry.schemas`): ``x-kubernetes-list-type`` /
  ``list-map-keys`` / ``map-type`` first, then -- as Kubernetes' OpenAPI-to-SMD
  conversion does -- the patch strategy ``merge`` and its merge key; other lists are
  atomic.  Shapes are memoized per schema node.
* Path sets are plain Python ``set`` objects of path tuples (``("f:spec",
  "f:containers", 'k:{"name":"app"}', "f:image")``), so union, difference and
  intersection run in C; :func:`decode_fields` / :func:`encode_fields` convert from/to
  ``FieldsV1``.
* :func:`diff` is structured-merge-diff's *Compare* (added+modified, removed); for
  built-in kinds it mimics the Go typed objects Kubernetes compares, in which
  value structs (``spec``, ``metadata``, ``strategy``...) and required fields always
  exist, so they are not reported as added -- this is what makes an entry read
  ``f:spec: {f:replicas: {}}`` rather than ``f:spec: {.: {}, ...}``, as in Kubernetes.
  :func:`fieldset` is *ToFieldSet* (what an applied configuration claims).
* :func:`track_update` is the field manager of a non-apply write: the fields the
  write changed move to the writer's ``Update`` entry and leave everyone else's.

Cost.  In-process writes from podlife's own components (the in-process client, which
passes no manager: ``manager=None`` in :mod:`podlife.api.rest`) skip tracking
entirely, and keep the entries they read unchanged.  Kubernetes would record them as
``Update`` entries of the kubelet, the scheduler...; in podlife the fields they write
are simply unowned, so an apply over them takes them without a conflict.  The
price is small next to the gain: the scale benchmark's ~90,000 internal writes stay
exactly as cheap as before.  For HTTP writes the cost is kept low by doing the least
work: an update diffs only the subtrees that changed (``==`` on untouched subtrees is
one C call), tests ownership with trie look-ups and edits the ``FieldsV1`` tries
copy-on-write (:func:`trie_with` / :func:`trie_without`) instead of decoding and
re-encoding entries, and reuses untouched entries as they are; only a create walks
the whole object, once, building the trie directly -- and not even that for what it
shares with recent creates: the tries of repeated top-level fields (a pod's ``spec``
and labels, when pods come from one template) are memoized by their exact JSON and
shared between the objects (:class:`_TrieMemo`).  About 7 us per pod create, 15-20
per update, on this machine, plus the bigger JSON.  Tries of stored objects are
shared (between objects, and between the versions of one): never edit one in place.

Deliberate simplifications (documented, rarely visible): field sets are not
converted between API versions (podlife serves each kind at one version); the reset
fields of a strategy are approximated as ``status`` for the main resource (kinds with
a status subresource) and everything but ``status`` for ``/status``; writes through
``/scale`` and internal writes are not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from ..machinery.query import InvalidBool, query_bool
from ..registry.schemas import tree
from ..registry.schemas.custom import CustomSchemas
from ..registry.schemas.loader import definitions
from ..registry.schemas.tree import PatchMeta, SchemaNode
from ..registry.object_meta import drop_empty_metadata
from ..registry.types import ResourceType
from ..machinery.timeutil import now_rfc3339
from ..machinery import errors

Obj = dict[str, Any]
Path = tuple[str, ...]
ManagerKey = tuple[str, str, str, str]  # manager, operation, apiVersion ("" for Apply), subresource

APPLY = "Apply"
UPDATE = "Update"
FIELDS_TYPE = "FieldsV1"
MAX_MANAGER_LENGTH = 128
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"
_MISSING: Any = object()
_NO_META = PatchMeta()

# ---------------------------------------------------------------------------
# Shapes: the schema, as field management sees it
# ---------------------------------------------------------------------------

SCALAR, STRUCT, MAP, ATOMIC, KEYED, SET, UNTYPED = range(7)
_CONTAINERS = frozenset({STRUCT, MAP, KEYED, SET})
#: Go value structs (never nil in a typed object) are named like this in Kubernetes.
_VALUE_STRUCT_SUFFIXES = ("Spec", "Status", "Meta", "Strategy", "Requirements", "State")
#: Defaults of list-map key fields that the OpenAPI declares (``+default``) but
#: the JSON-schema copy podlife ships lost.
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


class Shape:
    """What field management needs to know about one place in an object."""

    __slots__ = ("kind", "node", "keys", "value_struct", "typed", "_children", "_elem")

    def __init__(self, kind: int, node: SchemaNode | None = None, keys: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.node = node
        self.keys = keys
        typed = node is not None and not node.crd
        self.typed = typed  # a built-in Go type: value structs and required fields always exist
        self.value_struct = typed and kind == STRUCT and node is not None and node.name.endswith(_VALUE_STRUCT_SUFFIXES)
        self._children: dict[str, tuple[Shape, bool]] = {}
        self._elem: Shape | None = None

    def child(self, key: str) -> tuple[Shape, bool]:
        """The shape of field/entry ``key`` and whether a typed object always has it."""
        if self.kind == MAP:
            return self.elem(), False
        if self.kind != STRUCT:
            return UNTYPED_SHAPE, False
        got = self._children.get(key)
        if got is not None:
            return got
        node = self.node
        assert node is not None
        sub = node.props.get(key)
        if sub is None:
            return UNTYPED_SHAPE, False  # unknown field: deduced from the value, never cached
        shape = shape_of(sub, node.metas.get(key, _NO_META))
        implicit = self.typed and shape.kind in _CONTAINERS and (key in node.required or shape.value_struct)
        got = self._children[key] = (shape, implicit)
        return got

    def elem(self) -> Shape:
        """Shape of a map's values or a list's elements."""
        if self._elem is None:
            node = self.node
            sub = None
            if node is not None:
                sub = node.value if self.kind == MAP else node.item
            self._elem = shape_of(sub, _NO_META) if sub is not None else UNTYPED_SHAPE
        return self._elem

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        name = self.node.name if self.node is not None else ""
        return f"Shape({self.kind}, {name!r}, keys={self.keys})"


UNTYPED_SHAPE = Shape(UNTYPED)
_SHAPES: dict[tuple[int, PatchMeta], Shape] = {}
_atomic_struct_names: tuple[str, ...] | None = None


def _atomic_structs() -> set[int]:
    """Identities of the compiled definitions marked ``x-kubernetes-map-type: atomic``."""
    global _atomic_struct_names
    if _atomic_struct_names is None:
        _atomic_struct_names = tuple(name for name, d in definitions().items()
                                     if d.get("x-kubernetes-map-type") == "atomic")
    return {id(tree.node_for_definition(name)) for name in _atomic_struct_names}


def shape_of(node: SchemaNode | None, meta: PatchMeta = _NO_META) -> Shape:
    """The (memoized) shape of a compiled schema node reached through a field with ``meta``."""
    if node is None:
        return UNTYPED_SHAPE
    key = (id(node), meta)
    shape = _SHAPES.get(key)
    if shape is None or shape.node is not node:
        shape = _SHAPES[key] = _make_shape(node, meta)
    return shape


def _make_shape(node: SchemaNode, meta: PatchMeta) -> Shape:
    code = node.code
    if code == tree.OBJECT:
        if not node.props and node.open:
            return UNTYPED_SHAPE  # free-form JSON (RawExtension, FieldsV1)
        atomic = meta.map_type == "atomic" or (not node.crd and id(node) in _atomic_structs())
        return Shape(ATOMIC if atomic else STRUCT, node)
    if code == tree.MAP:
        return Shape(ATOMIC if meta.map_type == "atomic" else MAP, node)
    if code == tree.ARRAY:
        return _list_shape(node, meta)
    if code == tree.ANY:
        return UNTYPED_SHAPE
    return Shape(SCALAR, node)


def _list_shape(node: SchemaNode, meta: PatchMeta) -> Shape:
    item = node.item
    item_is_object = item is not None and item.code == tree.OBJECT
    list_type = meta.list_type
    if list_type is None and meta.strategy == "merge":
        list_type = "map" if meta.merge_key else "set"
        keys: tuple[str, ...] = (meta.merge_key,) if meta.merge_key else ()
    else:
        keys = meta.list_map_keys
    if list_type == "map" and keys and item_is_object:
        return Shape(KEYED, node, tuple(sorted(keys)))
    if list_type == "set" and not item_is_object:
        return Shape(SET, node)
    return Shape(ATOMIC, node)


_ROOTS: dict[int, tuple[ResourceType, SchemaNode | None, Shape]] = {}


def root_shape(rt: ResourceType, schemas: CustomSchemas | None = None) -> Shape:
    """The shape of a whole object of ``rt`` (untyped when the kind has no schema).

    ``schemas`` are the custom kinds of the API server at hand; without them only
    built-in kinds are typed.
    """
    node = (schemas.compiled if schemas is not None else tree.compiled)(rt.group, rt.version, rt.kind)
    cached = _ROOTS.get(id(rt))
    if cached is not None and cached[0] is rt and cached[1] is node:
        return cached[2]
    shape = shape_of(node, _NO_META)
    _ROOTS[id(rt)] = (rt, node, shape)
    return shape


def effective_kind(shape: Shape, value: Any) -> int:
    """The kind of ``shape`` for ``value``: untyped values are deduced, mismatches are atomic."""
    kind = shape.kind
    t = type(value)
    if kind == UNTYPED:
        return MAP if t is dict else (ATOMIC if t is list else SCALAR)
    if kind in (STRUCT, MAP):
        return kind if t is dict else ATOMIC
    if kind in (KEYED, SET):
        return kind if t is list else ATOMIC
    return kind


# ---------------------------------------------------------------------------
# Path elements and path sets
# ---------------------------------------------------------------------------


def value_element(value: Any) -> str:
    return "v:" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def key_element(shape: Shape, item: Any) -> str | None:
    """``k:{...}`` of a keyed-list item, or None when a key is missing (and has no default)."""
    if type(item) is not dict:
        return None
    keys = shape.keys
    if len(keys) == 1:
        k = keys[0]
        v = item.get(k, _MISSING)
        if v is _MISSING or v is None:
            v = _KEY_DEFAULTS.get(k, _MISSING)
            if v is _MISSING:
                return None
        return "k:" + orjson.dumps({k: v}).decode()
    pairs: dict[str, Any] = {}
    for k in keys:  # sorted: the encoding lists key fields by name
        v = item.get(k, _MISSING)
        if v is _MISSING or v is None:
            v = _KEY_DEFAULTS.get(k, _MISSING)
            if v is _MISSING:
                return None
        pairs[k] = v
    return "k:" + orjson.dumps(pairs).decode()


def missing_key(shape: Shape, item: Any) -> str:
    """The first key field ``item`` lacks (for error messages)."""
    for k in shape.keys:
        if type(item) is not dict or item.get(k) is None and k not in _KEY_DEFAULTS:
            return k
    return shape.keys[0] if shape.keys else ""


def element_string(el: str) -> str:
    """One path element as Kubernetes prints paths: ``.name``, ``[name="x"]``, ``[="v"]``, ``[0]``."""
    tag, body = el[:2], el[2:]
    if tag == "f:":
        return "." + body
    if tag == "k:":
        try:
            keys = orjson.loads(body)
            return "[" + ",".join(f"{k}={_value_string(v)}" for k, v in sorted(keys.items())) + "]"
        except (orjson.JSONDecodeError, AttributeError):
            return "[" + body + "]"
    if tag == "v:":
        try:
            return "[=" + _value_string(orjson.loads(body)) + "]"
        except orjson.JSONDecodeError:
            return "[=" + body + "]"
    return "[" + body + "]"


def _value_string(v: Any) -> str:
    return orjson.dumps(v).decode()


def path_string(path: Path) -> str:
    """``.spec.containers[name="app"].image``: how Kubernetes prints a field path."""
    return "".join(element_string(el) for el in path)


def decode_fields(tree: Any) -> set[Path]:
    """The set of paths a ``FieldsV1`` trie holds as members (raises ValueError if malformed)."""
    out: set[Path] = set()
    if tree is None:
        return out
    if type(tree) is not dict:
        raise ValueError("fieldsV1 must be an object")
    stack: list[tuple[Path, dict]] = [((), tree)]
    while stack:
        prefix, node = stack.pop()
        for key, child in node.items():
            if key == ".":
                continue
            if type(child) is not dict or key[:2] not in ("f:", "k:", "v:", "i:"):
                raise ValueError(f"invalid path element {key!r}")
            path = prefix + (key,)
            if not child or "." in child:
                out.add(path)
            if child:
                stack.append((path, child))
    return out


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """The ``FieldsV1`` trie of a path set: ``.`` first, then elements in sorted order."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        last = len(path) - 1
        for i, el in enumerate(path):
            child = node.get(el)
            if child is None:
                child = node[el] = {}
            elif i < last and not child:
                child["."] = {}  # a member leaf that now gets children
            node = child
    return root


def _trie_member(tree: Mapping[str, Any] | None, path: Path) -> bool:
    node = tree
    for el in path:
        if node is None:
            return False
        node = node.get(el)
    return node is not None and (not node or "." in node)


def trie_without(tree: dict[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """A copy of ``tree`` in which ``paths`` are no longer members (copy-on-write).

    Only the nodes along the paths are copied; emptied nodes go, and a node left with
    just its ``.`` mark becomes a plain leaf, so the result is canonical ``FieldsV1``.
    """
    root = dict(tree)
    copies: dict[int, dict[str, Any]] = {id(root): root}
    for path in paths:
        trail = _copy_trail(root, path, copies)
        if trail is None:
            continue
        node = trail[-1]
        if "." in node:
            del node["."]
            if node:
                continue
        elif node:
            continue  # not a member: only a parent of members
        _drop_upwards(trail, path)
    return root


def _copy_trail(root: dict[str, Any], path: Path, copies: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The nodes from ``root`` down to ``path``, each a private copy (None if absent)."""
    trail = [root]
    node = root
    for el in path:
        child = node.get(el)
        if child is None:
            return None
        if id(child) not in copies:
            child = node[el] = dict(child)
            copies[id(child)] = child
        node = child
        trail.append(node)
    return trail


def _drop_upwards(trail: list[dict[str, Any]], path: Path) -> None:
    """Remove the last node of ``trail`` and every ancestor that is left meaningless."""
    for depth in range(len(path), 0, -1):
        parent = trail[depth - 1]
        del parent[path[depth - 1]]
        if parent or depth == 1:
            if len(parent) == 1 and "." in parent:
                parent.clear()  # a member that lost its last child: a leaf again
            return


def trie_with(tree: dict[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """A copy of ``tree`` in which ``paths`` are members (copy-on-write along the paths)."""
    root = dict(tree)
    copies: dict[int, dict[str, Any]] = {id(root): root}
    fresh: set[int] = set()  # nodes made by this call that are not members (yet)
    for path in paths:
        node = root
        last = len(path) - 1
        for i, el in enumerate(path):
            child = node.get(el)
            if child is None:
                child = node[el] = {}
                copies[id(child)] = child
                fresh.add(id(child))
            elif id(child) not in copies:
                child = node[el] = dict(child)
                copies[id(child)] = child
            node = child
            if i < last and not node and id(node) not in fresh:
                node["."] = {}  # a member leaf that now gets children
        if id(node) in fresh and not node:
            fresh.discard(id(node))  # a new leaf member
        elif node and "." not in node:
            items = list(node.items())  # becomes a member: "." goes first
            node.clear()
            node["."] = {}
            node.update(items)
            fresh.discard(id(node))
    return root


# ---------------------------------------------------------------------------
# Compare and ToFieldSet
# ---------------------------------------------------------------------------


def diff(old: Any, new: Any, shape: Shape) -> tuple[set[Path], set[Path]]:
    """Paths added or modified, and paths removed, going from ``old`` to ``new``."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    if old is None:
        old = _MISSING
    if new is None:
        new = _MISSING
    if old is not _MISSING and new is not _MISSING:
        if old != new:
            _diff_present(old, new, shape, (), changed, removed)
    elif new is not _MISSING:
        _subtree(new, shape, (), changed)
    elif old is not _MISSING:
        _subtree(old, shape, (), removed)
    return changed, removed


def _diff_value(o: Any, n: Any, shape: Shape, path: Path, changed: set[Path], removed: set[Path]) -> None:
    """Compare one place; ``o`` or ``n`` may be _MISSING (not both); they are known unequal."""
    if o is _MISSING:
        changed.add(path)
        _subtree(n, shape, path, changed)
    elif n is _MISSING:
        removed.add(path)
        _subtree(o, shape, path, removed)
    else:
        _diff_present(o, n, shape, path, changed, removed)


def _diff_present(o: Any, n: Any, shape: Shape, path: Path, changed: set[Path], removed: set[Path]) -> None:
    kind = effective_kind(shape, n)
    if kind != effective_kind(shape, o) or kind in (SCALAR, ATOMIC):
        changed.add(path)
        return
    if kind == STRUCT or kind == MAP:
        _diff_map(o, n, shape, path, changed, removed)
    elif kind == KEYED:
        _diff_keyed(o, n, shape, path, changed, removed)
    else:
        _diff_set(o, n, path, changed, removed)


def _diff_map(o: dict, n: dict, shape: Shape, path: Path, changed: set[Path], removed: set[Path]) -> None:
    for k, nv in n.items():
        ov = o.get(k)
        if ov == nv:
            continue
        p = path + ("f:" + k,)
        tn, to = type(nv), type(ov)
        if tn is not dict and tn is not list and to is not dict and to is not list:
            (removed if nv is None else changed).add(p)  # scalars: no schema needed
            continue
        child, implicit = shape.child(k)
        if ov is None:
            if implicit and type(nv) in (dict, list):
                _diff_present(type(nv)(), nv, child, p, changed, removed)
            else:
                changed.add(p)
                _subtree(nv, child, p, changed)
        elif nv is None:
            _removed_field(ov, child, implicit, p, changed, removed)
        else:
            _diff_present(ov, nv, child, p, changed, removed)
    for k, ov in o.items():
        if ov is None or n.get(k) is not None:
            continue
        if type(ov) is not dict and type(ov) is not list:
            removed.add(path + ("f:" + k,))
            continue
        child, implicit = shape.child(k)
        _removed_field(ov, child, implicit, path + ("f:" + k,), changed, removed)


def _removed_field(ov: Any, child: Shape, implicit: bool, p: Path, changed: set[Path], removed: set[Path]) -> None:
    if implicit and type(ov) in (dict, list):
        _diff_present(ov, type(ov)(), child, p, changed, removed)
    else:
        removed.add(p)
        _subtree(ov, child, p, removed)


def _index(items: list, shape: Shape) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for item in items:
        el = key_element(shape, item)
        if el is None:
            return None
        out.setdefault(el, item)
    return out


def _diff_keyed(o: list, n: list, shape: Shape, path: Path, changed: set[Path], removed: set[Path]) -> None:
    oi, ni = _index(o, shape), _index(n, shape)
    if oi is None or ni is None:
        changed.add(path)  # items without keys: compared as a whole
        return
    elem = shape.elem()
    for el, item in ni.items():
        old_item = oi.get(el, _MISSING)
        if old_item is _MISSING:
            changed.add(path + (el,))
            _subtree(item, elem, path + (el,), changed)
        elif old_item != item:
            _diff_present(old_item, item, elem, path + (el,), changed, removed)
    for el, item in oi.items():
        if el not in ni:
            removed.add(path + (el,))
            _subtree(item, elem, path + (el,), removed)


def _diff_set(o: list, n: list, path: Path, changed: set[Path], removed: set[Path]) -> None:
    olds = {value_element(v) for v in o}
    news = {value_element(v) for v in n}
    changed.update(path + (el,) for el in news - olds)
    removed.update(path + (el,) for el in olds - news)


def _subtree(value: Any, shape: Shape, path: Path, out: set[Path]) -> None:
    """Add every path below ``path`` (not ``path`` itself) that ``value`` has."""
    kind = effective_kind(shape, value)
    if kind == STRUCT or kind == MAP:
        child = shape.child
        for k, v in value.items():
            if v is None:
                continue
            p = path + ("f:" + k,)
            out.add(p)
            if type(v) is dict or type(v) is list:
                _subtree(v, child(k)[0], p, out)
    elif kind == KEYED:
        elem = shape.elem()
        index = _index(value, shape)
        if index is None:
            return
        for el, item in index.items():
            p = path + (el,)
            out.add(p)
            _subtree(item, elem, p, out)
    elif kind == SET:
        out.update(path + (value_element(v),) for v in value)


def fieldset(value: Any, shape: Shape, path: Path = ()) -> set[Path]:
    """The fields an applied configuration sets (structured-merge-diff's ToFieldSet).

    Leaves, atomic values, list items, map entries, empty or null fields are members;
    a struct field holding a non-empty object is only the parent of its members.
    Raises ValueError, worded as structured-merge-diff words it, for a keyed-list item
    without its keys and for duplicate items.
    """
    out: set[Path] = set()
    _fieldset(value, shape, path, out)
    return out


def _fieldset(value: Any, shape: Shape, path: Path, out: set[Path]) -> None:
    kind = effective_kind(shape, value) if value is not None else SCALAR
    if kind == STRUCT or kind == MAP:
        declared = shape.node.props if kind == STRUCT and shape.node is not None else {}
        for k, v in value.items():
            p = path + ("f:" + k,)
            if k not in declared or v is None or (type(v) is dict and not v):
                out.add(p)
            if v is not None:
                _fieldset(v, shape.child(k)[0], p, out)
    elif kind == KEYED:
        elem = shape.elem()
        seen: set[str] = set()
        for i, item in enumerate(value):
            el = key_element(shape, item)
            if el is None:
                raise ValueError(f"{path_string(path)}: element {i}: associative list with keys has an element that "
                                 f"omits key field {orjson.dumps(missing_key(shape, item)).decode()} "
                                 "(and doesn't have default value)")
            _check_unique(el, seen, path)
            out.add(path + (el,))
            _fieldset(item, elem, path + (el,), out)
    elif kind == SET:
        seen = set()
        for v in value:
            el = value_element(v)
            _check_unique(el, seen, path)
            out.add(path + (el,))
    elif path:
        out.add(path)


def _check_unique(el: str, seen: set[str], path: Path) -> None:
    if el in seen:
        raise ValueError(f"{path_string(path)}: duplicate entries for key {element_string(el)}")
    seen.add(el)


def ensure_named_fields(paths: set[Path], root: Shape) -> set[Path]:
    """``paths`` plus every declared struct field that is an ancestor of one of them.

    Structured-merge-diff counts a struct field as owned when something below it is,
    so pruning can remove a whole struct (``spec.strategy``) that nobody owns any more.
    """
    out = set(paths)
    seen: set[Path] = set()
    for path in paths:
        shape = root
        for i in range(len(path) - 1):
            el = path[i]
            if el[:2] == "f:":
                name = el[2:]
                if shape.kind == STRUCT and shape.node is not None and name in shape.node.props:
                    prefix = path[:i + 1]
                    if prefix not in seen:
                        seen.add(prefix)
                        out.add(prefix)
                shape = shape.child(name)[0]
            elif shape.kind in (KEYED, SET):
                shape = shape.elem()
            else:
                shape = UNTYPED_SHAPE
    return out


# ---------------------------------------------------------------------------
# Which paths a write may own: stripped metadata and reset fields
# ---------------------------------------------------------------------------

_STRIPPED: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *((("f:metadata", "f:" + f)) for f in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                            "clusterName", "generation", "managedFields", "resourceVersion")),
})


def reset_filter(rt: ResourceType, subresource: str) -> Callable[[Path], bool] | None:
    """Paths the strategy resets for a write through ``subresource`` (never owned).

    The main resource of a kind with a ``status`` subresource resets ``status``; the
    ``status`` subresource keeps only ``status``.
    """
    if subresource == "status":
        return lambda p: p[0] != "f:status"
    if not subresource and "status" in rt.subresources:
        return lambda p: p[0] == "f:status"
    return None


def owned_paths(paths: set[Path], ignore: Callable[[Path], bool] | None) -> set[Path]:
    """``paths`` without stripped metadata and reset fields."""
    paths = paths - _STRIPPED
    if ignore is not None:
        paths = {p for p in paths if not ignore(p)}
    return paths


# ---------------------------------------------------------------------------
# managedFields entries
# ---------------------------------------------------------------------------


class Entry:
    """One ``managedFields`` entry; the decoded path set is built only when needed."""

    __slots__ = ("manager", "operation", "api_version", "subresource", "time", "raw", "_fields", "_paths")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str = "", time: str | None = None,
                 *, raw: dict | None = None, fields: dict | None = None, paths: set[Path] | None = None) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.time = time
        self.raw = raw          # the stored entry, reused as is while nothing changes
        self._fields = fields   # the FieldsV1 trie, when known
        self._paths = paths     # the decoded path set, when known

    @property
    def key(self) -> ManagerKey:
        return manager_key(self.manager, self.operation, self.api_version, self.subresource)

    @property
    def paths(self) -> set[Path]:
        if self._paths is None:
            self._paths = decode_fields(self._fields)
        return self._paths

    def set_paths(self, paths: set[Path]) -> None:
        self._paths, self._fields, self.raw = paths, None, None

    def remove(self, paths: Iterable[Path]) -> None:
        """Stop owning ``paths`` (on the trie itself when it was never decoded)."""
        if self._paths is not None:
            self._paths = self._paths.difference(paths)
        else:
            self._fields = trie_without(self._fields or {}, paths)
        self.raw = None

    def add(self, paths: Iterable[Path]) -> None:
        """Own ``paths`` too."""
        if self._paths is not None:
            self._paths = self._paths.union(paths)
        else:
            self._fields = trie_with(self._fields or {}, paths)
        self.raw = None

    def set_time(self, time: str) -> None:
        if time != self.time:
            self.time, self.raw = time, None

    def member(self, path: Path) -> bool:
        if self._paths is not None:
            return path in self._paths
        return _trie_member(self._fields, path)

    def touches(self, paths: Iterable[Path]) -> bool:
        return any(self.member(p) for p in paths)

    def empty(self) -> bool:
        return not self._paths if self._paths is not None else not self._fields

    def encode(self) -> dict[str, Any]:
        if self.raw is not None:
            return self.raw
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_TYPE
        out["fieldsV1"] = self._fields if self._paths is None else encode_fields(self._paths)
        if self.subresource:
            out["subresource"] = self.subresource
        self.raw = out
        return out


def manager_key(manager: str, operation: str, api_version: str, subresource: str = "") -> ManagerKey:
    """How Kubernetes tells managers apart: appliers regardless of the version they used."""
    return (manager, operation, "" if operation == APPLY else api_version, subresource)


Managers = dict[ManagerKey, Entry]


def decode_entries(value: Any) -> Managers:
    """The entries of a ``managedFields`` list (ValueError when malformed or duplicated)."""
    out: Managers = {}
    if value is None:
        return out
    if type(value) is not list:
        raise ValueError("managedFields must be a list")
    for raw in value:
        if type(raw) is not dict:
            raise ValueError("managedFields entries must be objects")
        operation = raw.get("operation")
        fields = raw.get("fieldsV1")
        if operation not in (APPLY, UPDATE) or raw.get("fieldsType", FIELDS_TYPE) != FIELDS_TYPE:
            raise ValueError("invalid managedFields entry")
        if fields is not None and type(fields) is not dict:
            raise ValueError("fieldsV1 must be an object")
        entry = Entry(str(raw.get("manager") or ""), operation, str(raw.get("apiVersion") or ""),
                      str(raw.get("subresource") or ""), raw.get("time"), raw=raw, fields=fields or {})
        if entry.key in out:
            raise ValueError(f"found duplicate manager: {entry.manager}")
        out[entry.key] = entry
    return out


def encode_entries(managers: Managers) -> list[dict[str, Any]]:
    """The ``managedFields`` list: appliers first, then by time, manager, version, subresource."""
    entries = [e for e in managers.values() if not e.empty()]
    entries.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in entries]


def is_reset(value: Any) -> bool:
    """``[{}]`` asks to drop every entry (an empty list does not: clients unaware of the
    field must not wipe it by accident, as the Kubernetes docs say)."""
    return type(value) is list and len(value) == 1 and value[0] == {}


def cap_update_managers(managers: Managers) -> None:
    """Keep at most 10 ``Update`` entries: the oldest merge into ``ancient-changes``."""
    updaters = [e for e in managers.values() if e.operation == UPDATE]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda e: (e.time or "", e.key))
    first_by_version: dict[str, Entry] = {}
    excess = len(updaters) - MAX_UPDATE_MANAGERS
    for entry in updaters:
        if excess <= 0:
            break
        bucket_key = manager_key(ANCIENT_CHANGES, UPDATE, entry.api_version)
        first = first_by_version.get(entry.api_version)
        if first is None:
            first_by_version[entry.api_version] = entry
            continue
        bucket = managers.get(bucket_key)
        if bucket is None:
            managers.pop(first.key, None)
            bucket = Entry(ANCIENT_CHANGES, UPDATE, entry.api_version, "", first.time, paths=set(first.paths))
            managers[bucket_key] = bucket
        bucket.set_paths(bucket.paths | entry.paths)
        bucket.set_time(entry.time or "")
        managers.pop(entry.key, None)
        excess -= 1


# ---------------------------------------------------------------------------
# Non-apply writes
# ---------------------------------------------------------------------------


def track_create(rt: ResourceType, obj: Obj, manager: str, subresource: str | None = None, *,
                 schemas: CustomSchemas | None = None) -> None:
    """Record a create by ``manager`` in ``obj["metadata"]["managedFields"]``."""
    track_update(rt, None, obj, manager, subresource, schemas=schemas)


def track_update(rt: ResourceType, old: Obj | None, new: Obj, manager: str, subresource: str | None = None, *,
                 schemas: CustomSchemas | None = None) -> None:
    """Record, in ``new``'s metadata, the write of ``new`` over ``old`` (None: a create).

    ``new`` is the object about to be stored (after the strategy ran); ``old`` is only
    read.  The fields the write added or changed become the manager's (``Update``
    operation) and leave every other manager; removed fields leave everyone.
    ``schemas``: the API server's custom kinds (see :func:`root_shape`).
    """
    meta = new["metadata"]
    sub = subresource or ""
    old_meta = old.get("metadata") or {} if old is not None else {}
    managers = _decode_live_or_new(old_meta.get("managedFields"), meta.get("managedFields"), ignore_new=bool(sub))
    if old is not None and not managers:
        meta.pop("managedFields", None)  # never tracked (or reset): Kubernetes waits for an apply
        return
    root = root_shape(rt, schemas)
    key = manager_key(manager, UPDATE, rt.api_version, sub)
    if old is None and not managers:  # a plain create: the whole object, in one pass
        fields = _create_trie(new, rt, sub, root)
        if fields:  # the only entry: what encode_entries would make of it, without sorting
            meta["managedFields"] = [Entry(manager, UPDATE, rt.api_version, sub, now_rfc3339(), fields=fields).encode()]
        else:
            meta.pop("managedFields", None)
        return
    changed, removed = diff(_as_stored(old) if old is not None else {}, _as_stored(new), root)
    ignore = reset_filter(rt, sub)
    changed, removed = owned_paths(changed, ignore), owned_paths(removed, ignore)
    if changed or removed:
        record_changes(managers, key, changed, removed, now_rfc3339())
        cap_update_managers(managers)
    encoded = encode_entries(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def record_changes(managers: Managers, key: ManagerKey, changed: set[Path], removed: set[Path], now: str) -> None:
    """Give ``changed`` to the manager ``key`` and take ``changed | removed`` from the others."""
    touched = changed | removed
    for other_key, entry in list(managers.items()):
        if other_key == key:
            continue
        lost = [p for p in touched if entry.member(p)]
        if lost:
            entry.remove(lost)
            if entry.empty():
                del managers[other_key]
    mine = managers.get(key)
    if mine is None:
        if changed:
            managers[key] = Entry(key[0], key[1], key[2], key[3], now, fields=encode_fields(changed))
        return
    gone = [p for p in removed if mine.member(p)]
    if gone:
        mine.remove(gone)
    new = [p for p in changed if not mine.member(p)]
    if new:
        mine.add(new)
    if changed:
        mine.set_time(now)
    if mine.empty():
        del managers[key]


# ---------------------------------------------------------------------------
# The field set of a create
# ---------------------------------------------------------------------------

#: Top-level fields no write owns (``metadata`` is stripped field by field).
_TYPE_FIELDS = frozenset({"apiVersion", "kind"})
_TYPE_AND_STATUS_FIELDS = _TYPE_FIELDS | {"status"}
#: Metadata fields no write owns (structured-merge-diff strips them from every set).
_STRIPPED_METADATA = frozenset({"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                                "generation", "managedFields", "resourceVersion"})


def _create_trie(obj: Obj, rt: ResourceType, subresource: str, root: Shape) -> dict[str, Any]:
    """The ``FieldsV1`` trie a create owns: all of ``obj`` less stripped metadata and reset fields.

    What the entry would not keep (a pod's ``status``, its ``uid``...) is never walked,
    and the other top-level fields go through :data:`_TRIE_MEMO`, so that objects made
    from one template (the pods of a benchmark, of a Job) share the walk of ``spec``.
    """
    out: dict[str, Any] = {}
    for k in _owned_top_fields(obj, rt, subresource):
        v = obj[k]
        if v is None:
            continue
        sub: dict[str, Any] | None
        if k == "metadata":
            sub = _metadata_trie(v, root)
        elif type(v) is dict or type(v) is list:
            child, implicit = root.child(k)
            sub = _TRIE_MEMO.trie(_field_trie, v, child, implicit)
        else:
            sub = {}  # a scalar: a leaf member, no schema needed
        if sub is not None:
            out["f:" + k] = sub
    return out


def _owned_top_fields(obj: Obj, rt: ResourceType, subresource: str) -> list[str]:
    """The top-level fields of ``obj`` a write through ``subresource`` may own, sorted.

    As :func:`reset_filter`: ``/status`` owns only ``status``; the main resource of a
    kind with a status subresource never owns ``status``.
    """
    if subresource == "status":
        return ["status"] if "status" in obj else []
    unowned = _TYPE_AND_STATUS_FIELDS if not subresource and "status" in rt.subresources else _TYPE_FIELDS
    return sorted(obj.keys() - unowned)


def _metadata_trie(meta: Any, root: Shape) -> dict[str, Any] | None:
    """``f:metadata`` of a create: the metadata fields a write may own (None: none)."""
    if type(meta) is not dict:
        return None
    owned = {k: v for k, v in meta.items() if k not in _STRIPPED_METADATA}
    child, implicit = root.child("metadata")
    return _TRIE_MEMO.trie(_metadata_node, owned, child, implicit)


def _metadata_node(owned: dict[str, Any], shape: Shape, implicit: bool) -> dict[str, Any] | None:
    """The node of ``metadata`` holding ``owned``: never a member itself (a builder of the memo)."""
    sub = _field_trie(owned, shape, implicit)
    if sub:
        sub.pop(".", None)
    return sub or None


def _field_trie(value: Any, shape: Shape, implicit: bool) -> dict[str, Any] | None:
    """The trie node of a field holding ``value`` (a dict or list) in a created object.

    A field a typed object always has (``implicit``: required, or a value struct) is
    not added by the create, only what is below it: no ``.``, and None (no node at
    all) when nothing below is.
    """
    if not implicit:
        return _full_trie(value, shape)
    if type(value) is dict and shape.kind in (STRUCT, MAP, UNTYPED):
        sub = _present_trie(value, shape)
    else:
        sub = _full_trie(value, shape)
        sub.pop(".", None)
    return sub or None


def _present_trie(obj: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """The FieldsV1 trie of everything ``obj`` adds to an (implicitly) existing empty object."""
    out: dict[str, Any] = {}
    known = shape._children  # Shape.child's cache, read inline: this loop is hot
    for k in sorted(obj):
        v = obj[k]
        if v is None:
            continue
        if type(v) is dict or type(v) is list:
            child, implicit = known.get(k) or shape.child(k)
            sub = _field_trie(v, child, implicit)
            if sub is not None:
                out["f:" + k] = sub
        else:
            out["f:" + k] = {}  # a scalar: a leaf member, no schema needed
    return out


def _full_trie(value: Any, shape: Shape) -> dict[str, Any]:
    """The trie node of an added ``value``: a member, with everything below it.

    Dispatches on (type of ``value``, kind of ``shape``) as :func:`effective_kind`
    does; a mismatch, a scalar or an atomic value is a plain leaf.
    """
    t = type(value)
    kind = shape.kind
    if t is dict:
        if kind == STRUCT:
            return _struct_trie(value, shape)
        if kind == MAP or kind == UNTYPED:
            return _map_trie(value, shape.elem())
    elif t is list:
        if kind == KEYED:
            return _keyed_trie(value, shape)
        if kind == SET:
            return _set_trie(value)
    return {}


def _struct_trie(value: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """The node of a struct: a member, then its non-null fields by name.

    ``.`` goes in first so that no second dict is built to put it before the fields.
    """
    out: dict[str, Any] = {".": {}}
    known = shape._children  # Shape.child's cache, read inline: this loop is hot
    for k in sorted(value):
        v = value[k]
        if v is None:
            continue
        if type(v) is dict or type(v) is list:
            out["f:" + k] = _full_trie(v, (known.get(k) or shape.child(k))[0])
        else:
            out["f:" + k] = {}
    return out if len(out) > 1 else {}


def _map_trie(value: dict[str, Any], elem: Shape) -> dict[str, Any]:
    """The node of a map whose values have shape ``elem`` (as :func:`_struct_trie`)."""
    out: dict[str, Any] = {".": {}}
    for k in sorted(value):
        v = value[k]
        if v is None:
            continue
        out["f:" + k] = _full_trie(v, elem) if type(v) is dict or type(v) is list else {}
    return out if len(out) > 1 else {}


def _keyed_trie(items: list[Any], shape: Shape) -> dict[str, Any]:
    """The node of a list merged by keys (a leaf when an item lacks its keys)."""
    index = _index(items, shape)
    if not index:
        return {}
    elem = shape.elem()
    out: dict[str, Any] = {".": {}}
    for el in sorted(index):
        out[el] = _full_trie(index[el], elem)
    return out


def _set_trie(items: list[Any]) -> dict[str, Any]:
    """The node of a set: one leaf per distinct member."""
    out: dict[str, Any] = {".": {}}
    for el in sorted({value_element(v) for v in items}):
        out[el] = {}
    return out if len(out) > 1 else {}


#: orjson options of a memo key: subclasses and dataclasses raise instead of passing
#: for a plain dict or list (the trie treats a dict subclass as a scalar).
_EXACT_JSON = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
TrieBuilder = Callable[[Any, Shape, bool], dict[str, Any] | None]
MemoKey = tuple[TrieBuilder, Shape, bool, bytes]


class _TrieMemo:
    """Tries of recently created field values, keyed by shape and exact JSON.

    Objects created from one template repeat whole subtrees (every pod of a Job has
    the same ``spec`` and labels), and walking them in Python is most of the cost of
    a create.  The key is ``(builder, shape, implicit, JSON of the value)``.  The JSON
    keeps dict order, so for plain JSON data it fixes all a trie depends on: field
    names, list-map keys (an object-valued key encodes in its order), set members,
    null, ``1`` vs ``1.0``.  Data JSON cannot tell from plain data (a tuple for a list,
    a ``datetime`` for a string) fails the ``==`` against the stored plain copy, and
    what orjson refuses is never memoized: both are built directly.

    A hit returns the stored trie itself, shared by every object created from the
    template: tries of stored objects are never edited in place (entries are edited
    copy-on-write by :func:`trie_with` / :func:`trie_without`, and untouched entries
    are already shared between an object's versions), and sharing spares the garbage
    collector one set of dicts per create.

    A value is stored the second time it is seen (only the hash of its key is kept the
    first time): one-off values (a ConfigMap's data, an object's unique annotations)
    then cost one ``orjson.dumps`` more than a direct walk, not a copy kept alive.
    Least recently used entries go first; at most ``max_entries`` values of at most
    ``max_value_bytes`` of JSON each are kept (a few MB at worst).  Not thread-safe:
    writes are tracked on the API's event loop.
    """

    def __init__(self, max_entries: int = 128, max_value_bytes: int = 16 * 1024) -> None:
        self.max_entries = max_entries
        self.max_value_bytes = max_value_bytes  # big values are rarely repeated: not worth the memory
        self._entries: dict[MemoKey, tuple[Any, dict[str, Any] | None]] = {}
        self._seen: dict[int, None] = {}  # hashes of keys seen once, oldest first

    def trie(self, build: TrieBuilder, value: Any, shape: Shape, implicit: bool) -> dict[str, Any] | None:
        """``build(value, shape, implicit)``, from the memo when ``value`` was seen lately."""
        try:
            encoded = orjson.dumps(value, option=_EXACT_JSON)
        except TypeError:  # orjson.JSONEncodeError: not plain JSON data
            return build(value, shape, implicit)
        key = (build, shape, implicit, encoded)
        entries = self._entries
        hit = entries.pop(key, None)
        if hit is not None:
            entries[key] = hit  # now the most recently used
            if hit[0] == value:
                return hit[1]
        trie = build(value, shape, implicit)
        if len(encoded) <= self.max_value_bytes and self._seen_before(hash(key)):
            plain = orjson.loads(encoded)
            if plain == value:
                self._store(key, plain, trie)
        return trie

    def _seen_before(self, key_hash: int) -> bool:
        """Whether a key with this hash was seen since it was last stored (and note it as seen)."""
        seen = self._seen
        if seen.pop(key_hash, _MISSING) is not _MISSING:
            return True
        while seen and len(seen) >= 4 * self.max_entries:
            del seen[next(iter(seen))]
        seen[key_hash] = None
        return False

    def _store(self, key: MemoKey, plain: Any, trie: dict[str, Any] | None) -> None:
        entries = self._entries
        while entries and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # the least recently used
        if self.max_entries > 0:
            entries[key] = (plain, trie)

    def clear(self) -> None:
        self._entries.clear()
        self._seen.clear()


_TRIE_MEMO = _TrieMemo()


def _decode_live_or_new(live: Any, new: Any, ignore_new: bool) -> Managers:
    """The entries a write starts from: the request's own when it set valid ones, else the live ones."""
    if not ignore_new:
        if is_reset(new):
            return {}
        try:
            managers = decode_entries(new)
        except ValueError:
            managers = {}
        if managers:
            return managers
    try:
        return decode_entries(live)
    except ValueError:
        return {}


def _without_managed(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if type(meta) is not dict or "managedFields" not in meta:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _as_stored(obj: Obj) -> Obj:
    """``obj`` without managedFields and without the empty metadata the store drops (omitempty).

    An update that sends ``finalizers: []`` over an object without finalizers changes nothing
    once stored; compared before that, the manager would get a new timestamp and a no-op
    update would write.
    """
    out = _without_managed(obj)
    meta = out.get("metadata")
    if type(meta) is dict:
        out = dict(out) if out is obj else out
        out["metadata"] = dict(meta)
        drop_empty_metadata(out["metadata"])
    return out


# ---------------------------------------------------------------------------
# The manager of a request
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOptions:
    """The ``fieldManager`` and ``force`` of a write, validated as Kubernetes does."""

    manager: str
    force: bool = False


def request_options(query: Mapping[str, str], user_agent: str, options_kind: str, *, apply: bool = False) -> RequestOptions:
    """Validate ``fieldManager``/``force`` of a request; the manager falls back to the User-Agent.

    ``options_kind`` is ``CreateOptions``, ``UpdateOptions`` or ``PatchOptions`` (named
    in the 422 answer).  Apply requires a manager; ``force`` is only for apply.
    """
    manager = query.get("fieldManager") or ""
    causes: list[dict[str, str]] = []
    if options_kind == "PatchOptions":
        if apply and not manager:
            causes.append({"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                           "field": "fieldManager"})
        if not apply and "force" in query:
            causes.append({"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
                           "field": "force"})
    causes += _manager_causes(manager)
    if causes:
        shown = [f"{c['field']}: {c['message']}" for c in causes]
        text = shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
        raise errors.ApiError(422, "Invalid", f'{options_kind}.meta.k8s.io "" is invalid: {text}',
                              {"group": "meta.k8s.io", "kind": options_kind, "causes": causes})
    try:
        force = query_bool(query, "force")
    except InvalidBool as exc:
        raise errors.bad_request(str(exc)) from None
    return RequestOptions(manager or manager_from_user_agent(user_agent), force)


def _manager_causes(manager: str) -> list[dict[str, str]]:
    causes = []
    if len(manager.encode()) > MAX_MANAGER_LENGTH:
        causes.append({"reason": "FieldValueTooLong", "message": f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes",
                       "field": "fieldManager"})
    for i, ch in enumerate(manager):
        if not ch.isprintable():
            causes.append({"reason": "FieldValueInvalid", "field": "fieldManager",
                           "message": f"Invalid value: {orjson.dumps(manager).decode()}: invalid character U+{ord(ch):04X} "
                                      f"(at position {i})"})
    return causes


def manager_from_user_agent(user_agent: str) -> str:
    """The part of the User-Agent before the first ``/``, printable, at most 128 bytes."""
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not ch.isprintable():
            continue
        n = len(ch.encode())
        if size + n > MAX_MANAGER_LENGTH:
            break
        out.append(ch)
        size += n
    return "".join(out)
