"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) over plain Python JSON values.

Design: documents are the values ``json.loads``/``orjson.loads`` produce
(``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``), and
patching is *persistent*: the input document is never mutated, and the result
shares every subtree that the patch did not touch with the input.  Only the
containers on the path from the root to each modified location are copied
(shallowly), so patching one label of a 50 KB pod costs a few small dict copies
rather than a deep copy of the whole object.  That matters because the API
server applies a patch on every ``kubectl label``/``annotate``/``scale`` and
every controller status update, and because the store keeps the previous
revision around for watch events.

Consequence for callers: treat both the input and the result as immutable, or
deep-copy before mutating in place.  Values that come *from the patch*
(``value`` of ``add``/``replace``, merge-patch leaves) and ``copy`` sources are
copied into the result, so the result never aliases the patch document and no
subtree appears twice in the result.

Within one :func:`apply_json_patch` call, containers this module created are
tracked and mutated in place by later operations, so a patch of N operations on
the same map copies that map once, not N times.

Errors raise :class:`PatchError` with a message suitable for a Kubernetes
``Status``; the API layer maps it to 422 Invalid (a failing ``test``
operation, a missing path) or 400 BadRequest (malformed patch).  The messages
follow the wording of the Go json-patch library the real API server uses, so
clients that print them look familiar.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "PatchError",
    "apply_merge_patch",
    "create_merge_patch",
    "apply_json_patch",
    "json_equal",
    "parse_json_pointer",
    "escape_json_pointer_token",
]


class PatchError(ValueError):
    """A patch could not be decoded or applied; ``str(err)`` is the Status message."""


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """Deep-copy a JSON value (much faster than ``copy.deepcopy`` for JSON)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` but ``true`` is not ``1`` and ``false`` is not ``0``.

    Numbers compare by value (``1 == 1.0``), as RFC 6902 ``test`` requires.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not json_equal(value, b[key]):
                return False
        return True
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    if a is None:
        return b is None
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------
# JSON Merge Patch (RFC 7386)
# ---------------------------------------------------------------------------


def apply_merge_patch(target: Any, patch: Any, *, take_patch: bool = False) -> Any:
    """Apply an RFC 7386 merge patch and return the new document.

    An object patch merges key by key (``null`` deletes a key, nested objects
    merge recursively, a non-object target is treated as ``{}``); any other
    patch value (array, scalar, ``null``) replaces the target wholesale.

    The result shares nothing with ``patch`` unless ``take_patch`` says the caller
    hands the patch over (a freshly decoded request body): its values are then used
    as they are, which saves a deep copy per write.
    """
    if not isinstance(patch, dict):
        return patch if take_patch else _clone(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = apply_merge_patch(result.get(key), value, take_patch=take_patch)
        else:
            result[key] = value if take_patch else _clone(value)
    return result


def create_merge_patch(original: Any, modified: Any) -> Any:
    """Return a merge patch that turns ``original`` into ``modified``.

    Exact for documents whose objects hold no ``null`` members (merge patch
    cannot express "set to null"); arrays are replaced wholesale.
    """
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return _clone(modified)
    patch: dict[str, Any] = {key: None for key in original if key not in modified}
    for key, new in modified.items():
        if key not in original:
            patch[key] = _clone(new)
            continue
        old = original[key]
        if json_equal(old, new):
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            patch[key] = create_merge_patch(old, new)
        else:
            patch[key] = _clone(new)
    return patch


# ---------------------------------------------------------------------------
# JSON Pointer (RFC 6901)
# ---------------------------------------------------------------------------

_BAD_ESCAPE = re.compile(r"~(?![01])")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def escape_json_pointer_token(token: str) -> str:
    """Escape one reference token: ``~`` -> ``~0`` and ``/`` -> ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def parse_json_pointer(pointer: Any) -> list[str]:
    """Split a JSON pointer into unescaped reference tokens (``""`` -> ``[]``)."""
    if not isinstance(pointer, str):
        raise PatchError(f"invalid JSON pointer {pointer!r}: must be a string")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{pointer}": must be empty or start with "/"')
    tokens = pointer[1:].split("/")
    if "~" not in pointer:
        return tokens
    if _BAD_ESCAPE.search(pointer):
        raise PatchError(
            f'invalid JSON pointer "{pointer}": "~" must be followed by "0" or "1"'
        )
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _array_index(token: str, length: int, pointer: str, *, for_insert: bool) -> int:
    """Resolve an array reference token; ``-`` (append) only when inserting."""
    if token == "-" and for_insert:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(f"value was not a proper array index: '{token}' in path \"{pointer}\"")
    index = int(token)
    if index > length or (index == length and not for_insert):
        raise PatchError(f'Unable to access invalid index: {index} in path "{pointer}"')
    return index


def _child(node: Any, token: str, pointer: str) -> Any:
    """Read one step down; raises when the member or element does not exist."""
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f'doc is missing path: "{pointer}": missing value')
        return node[token]
    if isinstance(node, list):
        return node[_array_index(token, len(node), pointer, for_insert=False)]
    raise PatchError(f'doc is missing path: "{pointer}": cannot index a scalar value')


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens:
        node = _child(node, token, pointer)
    return node


# ---------------------------------------------------------------------------
# JSON Patch (RFC 6902)
# ---------------------------------------------------------------------------


class _Patcher:
    """Applies operations to one document, copying containers along each path.

    ``_owned`` maps ``id()`` to every container this patcher created; those are
    reachable only from the result, so later operations may mutate them in
    place.  Holding them in the dict keeps them alive, so an ``id`` can never be
    recycled for some other object during the call.
    """

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self._owned: dict[int, Any] = {}

    def _own(self, node: Any) -> Any:
        if id(node) in self._owned:
            return node
        copy: Any = dict(node) if isinstance(node, dict) else list(node)
        self._owned[id(copy)] = copy
        return copy

    def _writable_parent(self, tokens: list[str], pointer: str, op: str) -> Any:
        """Return an owned copy of the container holding ``tokens[-1]``, linked into ``doc``."""
        if not isinstance(self.doc, (dict, list)):
            raise PatchError(f'{op} operation does not apply: doc is missing path: "{pointer}"')
        node = self.doc = self._own(self.doc)
        for token in tokens[:-1]:
            try:
                child = _child(node, token, pointer)
            except PatchError as err:
                raise PatchError(f"{op} operation does not apply: {err}") from None
            if not isinstance(child, (dict, list)):
                raise PatchError(f'{op} operation does not apply: doc is missing path: "{pointer}"')
            owned = self._own(child)
            if owned is not child:
                node[token if isinstance(node, dict) else int(token)] = owned
            node = owned
        return node

    def get(self, pointer: str, op: str) -> Any:
        try:
            return _resolve(self.doc, parse_json_pointer(pointer), pointer)
        except PatchError as err:
            raise PatchError(f"{op} operation does not apply: {err}") from None

    def add(self, pointer: str, value: Any, op: str = "add") -> None:
        tokens = parse_json_pointer(pointer)
        if not tokens:
            self.doc = value
            return
        parent = self._writable_parent(tokens, pointer, op)
        key = tokens[-1]
        if isinstance(parent, dict):
            parent[key] = value
        else:
            parent.insert(_array_index(key, len(parent), pointer, for_insert=True), value)

    def remove(self, pointer: str, op: str = "remove") -> Any:
        tokens = parse_json_pointer(pointer)
        if not tokens:
            raise PatchError(f"{op} operation does not apply: cannot remove the document root")
        parent = self._writable_parent(tokens, pointer, op)
        key = tokens[-1]
        if isinstance(parent, dict):
            if key not in parent:
                raise PatchError(
                    f"{op} operation does not apply: Unable to remove nonexistent key: "
                    f'{key}: missing value (path "{pointer}")'
                )
            return parent.pop(key)
        return parent.pop(_array_index(key, len(parent), pointer, for_insert=False))

    def replace(self, pointer: str, value: Any) -> None:
        tokens = parse_json_pointer(pointer)
        if not tokens:
            self.doc = value
            return
        parent = self._writable_parent(tokens, pointer, "replace")
        key = tokens[-1]
        if isinstance(parent, dict):
            if key not in parent:
                raise PatchError(
                    f"replace operation does not apply: doc is missing key: {pointer}: missing value"
                )
            parent[key] = value
        else:
            parent[_array_index(key, len(parent), pointer, for_insert=False)] = value

    def move(self, source: str, pointer: str) -> None:
        from_tokens = parse_json_pointer(source)
        to_tokens = parse_json_pointer(pointer)
        if len(to_tokens) > len(from_tokens) and to_tokens[: len(from_tokens)] == from_tokens:
            raise PatchError(
                f'move operation does not apply: "from" {source} is a proper prefix of "path" {pointer}'
            )
        value = self.get(source, "move")
        if from_tokens == to_tokens:
            return
        self.remove(source, "move")
        self.add(pointer, value, "move")

    def copy(self, source: str, pointer: str) -> None:
        self.add(pointer, _clone(self.get(source, "copy")), "copy")

    def test(self, pointer: str, value: Any) -> None:
        actual = self.get(pointer, "test")
        if not json_equal(actual, value):
            raise PatchError(f"testing value {pointer} failed: test failed")


def _field(operation: dict[str, Any], name: str, kind: str) -> Any:
    if name not in operation:
        raise PatchError(f"{kind} operation is missing the '{name}' field: missing value")
    return operation[name]


def _pointer_field(operation: dict[str, Any], name: str, kind: str) -> str:
    value = _field(operation, name, kind)
    if not isinstance(value, str):
        raise PatchError(f"{kind} operation failed to decode {name}: expected a string")
    return value


def _do_add(p: _Patcher, o: dict[str, Any]) -> None:
    p.add(_pointer_field(o, "path", "add"), _clone(_field(o, "value", "add")))


def _do_remove(p: _Patcher, o: dict[str, Any]) -> None:
    p.remove(_pointer_field(o, "path", "remove"))


def _do_replace(p: _Patcher, o: dict[str, Any]) -> None:
    p.replace(_pointer_field(o, "path", "replace"), _clone(_field(o, "value", "replace")))


def _do_move(p: _Patcher, o: dict[str, Any]) -> None:
    p.move(_pointer_field(o, "from", "move"), _pointer_field(o, "path", "move"))


def _do_copy(p: _Patcher, o: dict[str, Any]) -> None:
    p.copy(_pointer_field(o, "from", "copy"), _pointer_field(o, "path", "copy"))


def _do_test(p: _Patcher, o: dict[str, Any]) -> None:
    p.test(_pointer_field(o, "path", "test"), _field(o, "value", "test"))


_OPERATIONS: dict[str, Callable[[_Patcher, dict[str, Any]], None]] = {
    "add": _do_add,
    "remove": _do_remove,
    "replace": _do_replace,
    "move": _do_move,
    "copy": _do_copy,
    "test": _do_test,
}


def apply_json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    """Apply an RFC 6902 patch (a list of operations) and return the new document.

    Supports ``add``, ``remove``, ``replace``, ``move``, ``copy`` and ``test``
    with RFC 6901 pointers (``~0``/``~1`` escapes, ``-`` for the array end on
    insert).  The patch is atomic: on any error :class:`PatchError` is raised
    and nothing is returned; ``target`` is never modified.
    """
    if not isinstance(operations, list):
        raise PatchError("invalid JSON patch: expected a list of operations")
    patcher = _Patcher(target)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError("invalid JSON patch: each operation must be an object")
        kind = operation.get("op")
        handler = _OPERATIONS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        handler(patcher, operation)
    return patcher.doc
