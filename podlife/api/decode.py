"""Request bodies decoded the way Kubernetes decodes them, and safely.

Every JSON or YAML body the API server reads passes through :func:`decode_json` or
:func:`decode_yaml`, so the rules a hostile or broken client runs into live here:

- **Size**: the API server reads at most :data:`MAX_REQUEST_BODY_BYTES` (Kubernetes'
  ``MaxRequestBodyBytes``, 3 MiB); aiohttp enforces it while reading, and the server
  answers 413 ``RequestEntityTooLarge`` as Kubernetes does.
- **Invalid UTF-8** in a JSON body is not an error for Kubernetes: Go's JSON decoder
  replaces each invalid byte with U+FFFD. We do the same, but only after orjson has
  refused the body, so valid bodies pay nothing.
- **Nesting**: Kubernetes' decoder stops at 10,000 levels. podlife cannot go that far
  (orjson encodes at most ~250 levels and much of the server walks objects
  recursively), so bodies nested deeper than :data:`MAX_NESTING_DEPTH` are refused
  with 400 ``BadRequest`` before anything looks at them -- never a ``RecursionError``
  or a 500 when the object is stored. A JSON body with fewer brackets than the limit
  cannot be that deep, which spares the walk for every ordinary body.
- **YAML aliases** are refused when they expand a document the way go-yaml's
  "excessive aliasing" rule forbids (a billion-laughs bomb), judged on the node graph
  without expanding anything, so the answer is quick. An alias cycle is refused too.
  A document without an anchor (``&``) cannot hold an alias and skips the graph walk.
- **Integers beyond 64 bits** in YAML become floats, as go-yaml resolves them and as
  orjson reads them from JSON; the schema checks then report them exactly as
  Kubernetes does ("cannot unmarshal number 1e+20 into ... of type int32") instead of
  failing later when the object is encoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import yaml

from ..machinery import errors

MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
MAX_NESTING_DEPTH = 200

_INT64_MIN = -(2**63)
_UINT64_LIMIT = 2**64
_ALIAS_RATIO_RANGE_LOW = 400_000
_ALIAS_RATIO_RANGE_HIGH = 4_000_000

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BodyLoader(_BaseLoader):
    """The safe YAML loader, with Go's reading of integers too large for 64 bits."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    if _INT64_MIN <= value < _UINT64_LIMIT:
        return value
    try:
        return float(value)
    except OverflowError:  # go-yaml keeps a number no float can hold as a string
        return str(node.value)


BodyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def too_deep() -> errors.ApiError:
    return errors.bad_request(f"the body of the request could not be decoded: json parse error: exceeded max depth "
                              f"(objects may be nested at most {MAX_NESTING_DEPTH} levels)")


def decode_json(raw: bytes) -> Any:
    """A JSON body as Kubernetes would read it (invalid UTF-8 replaced), depth-checked."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" not in str(exc):
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None
        try:
            value = orjson.loads(go_utf8(raw))
        except orjson.JSONDecodeError as again:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {again}") from None
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING_DEPTH and nesting_depth(value) > MAX_NESTING_DEPTH:
        raise too_deep()
    return value


def go_utf8(raw: bytes) -> bytes:
    """``raw`` with every invalid UTF-8 sequence replaced by U+FFFD (as Go's JSON decoder does)."""
    try:
        raw.decode()
        return raw
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace").encode()


def nesting_depth(value: Any) -> int:
    """How many containers deep ``value`` goes (a scalar is 0, ``{}`` is 1); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if type(item) is dict:
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > MAX_NESTING_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in children if type(child) is dict or type(child) is list)
    return deepest


def decode_yaml(raw: bytes) -> Any:
    """A YAML body (one document), refused before construction when it is a bomb or too deep."""
    loader = BodyLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if b"&" not in raw:  # no anchor, so no alias: nothing is shared, and the plain walk is cheap
            value = loader.construct_document(node)
            if nesting_depth(value) > MAX_NESTING_DEPTH:
                raise too_deep()
            return value
        check_yaml_graph(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"the body of the request could not be decoded as YAML: {exc}") from None
    finally:
        loader.dispose()


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_yaml_graph(root: yaml.Node) -> None:
    """Refuse alias cycles, excessive aliasing (go-yaml's rule) and over-deep nesting.

    Aliased nodes are one shared node in the graph, so sizes and depths are computed
    once per distinct node: the expanded size of a billion-laughs document is a big
    number reached in a few steps, never a billion objects.
    """
    expanded: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _yaml_children(node)
        if finished:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in children)
            is_container = not isinstance(node, yaml.ScalarNode)
            depth[key] = (1 + max((depth[id(c)] for c in children), default=0)) if is_container else 0
            if depth[key] > MAX_NESTING_DEPTH:
                raise too_deep()
            continue
        if key in expanded:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise errors.bad_request("the body of the request could not be decoded as YAML: "
                                         "error converting YAML to JSON: yaml: an alias refers to a node that contains it")
            if id(child) not in expanded:
                stack.append((child, False))
    decoded = expanded[id(root)]
    aliased = decoded - len(expanded)
    if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
        raise errors.bad_request("the body of the request could not be decoded as YAML: "
                                 "error converting YAML to JSON: yaml: document contains excessive aliasing")


def _allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's limit: 99% of a small document may come from aliases, 10% of a huge one."""
    if decoded <= _ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = _ALIAS_RATIO_RANGE_HIGH - _ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_RANGE_LOW) / span
