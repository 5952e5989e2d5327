"""Tables for custom resources (``additionalPrinterColumns``) and the generic fallback.

Two behaviours of the real API server are reproduced here:

* **Custom resources** are printed from their CRD version's
  ``additionalPrinterColumns``: a NAME column followed by one column per
  printer column, each cell obtained by evaluating the column's JSONPath.
  A version without printer columns is served with a single ``Age`` column
  (``.metadata.creationTimestamp``, type ``date``).
* **Kinds without a dedicated printer** (Role, ClusterRole, LimitRange,
  CustomResourceDefinition, ...) get the generic table: ``Name`` and
  ``Created At`` (an RFC 3339 UTC timestamp that kubectl prints as is).

The JSONPath evaluator covers the subset printer columns use in practice:
``.a.b``, ``['key.with.dots']``, ``a\\.b`` escapes, ``[0]``/``[-1]``/``[1:3]``,
``[*]``/``.*``, ``..field`` recursion and ``[?(@.x=="y")]`` filters with
``== != < <= > >=`` or bare existence tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ._base import (
    JSON,
    TablePrinter,
    column,
    human_duration,
    meta,
    name_column,
    name_of,
    normalize_now,
    parse_time,
    since,
)

CrdRowFn = Callable[..., list[Any]]
GO_FLOAT_EXPONENT_THRESHOLD = 6

DEFAULT_PRINTER_COLUMNS: tuple[JSON, ...] = (
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
     "description": "Time elapsed since the object was created."},
)


# --------------------------------------------------------------------------
# Generic table (no printer registered)


def _created_at(obj: Mapping[str, Any]) -> str:
    created = parse_time(meta(obj).get("creationTimestamp"))
    if created is None:
        created = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time, as the server renders it
    utc = created.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


DEFAULT_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Created At", "date", "Time the object was created (RFC 3339, UTC)."),
    ),
    cells=lambda obj, now: [name_of(obj), _created_at(obj)],
)


# --------------------------------------------------------------------------
# Custom resource printer columns


def crd_columns(printer_columns: Sequence[Mapping[str, Any]] | None) -> tuple[list[JSON], CrdRowFn]:
    """Column definitions and a row function for a CRD version's printer columns.

    Returns ``(definitions, row_fn)`` where ``row_fn(obj, now=None)`` gives the
    cells.  An empty/None list yields the served default (NAME, AGE).  A column
    whose JSONPath cannot be parsed yields empty (null) cells.
    """
    specs = list(printer_columns or DEFAULT_PRINTER_COLUMNS)
    definitions = [name_column()] + [_definition_for(spec_) for spec_ in specs]
    paths = [_compile_or_none(str(spec_.get("jsonPath", ""))) for spec_ in specs]
    types = [str(spec_.get("type", "string")) for spec_ in specs]

    def row_fn(obj: Mapping[str, Any], now: datetime | None = None) -> list[Any]:
        moment = normalize_now(now)
        cells: list[Any] = [name_of(obj)]
        for path, type_ in zip(paths, types, strict=True):
            results = path.find(obj) if path is not None else []
            cells.append(cell_for_value(type_, results[0], moment) if results else None)
        return cells

    return definitions, row_fn


def crd_printer(printer_columns: Sequence[Mapping[str, Any]] | None) -> TablePrinter:
    definitions, row_fn = crd_columns(printer_columns)
    return TablePrinter(columns=tuple(definitions), cells=lambda obj, now: row_fn(obj, now))


def _definition_for(spec_: Mapping[str, Any]) -> JSON:
    json_path = str(spec_.get("jsonPath", ""))
    description = spec_.get("description") or f"Custom resource column (JSONPath {json_path})."
    return column(
        str(spec_.get("name", "")),
        str(spec_.get("type", "string")),
        str(description),
        priority=int(spec_.get("priority") or 0),
        format_=str(spec_.get("format") or ""),
    )


def _compile_or_none(expression: str) -> JsonPath | None:
    try:
        return JsonPath(expression)
    except JsonPathError:
        return None


def cell_for_value(type_: str, value: Any, now: datetime) -> Any:
    """Convert a JSONPath result to a cell of the column's declared type (None if it does not fit)."""
    if type_ == "string":
        return value if isinstance(value, str) else (None if value is None else go_format(value))
    if value is None:
        return None
    if type_ == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value)
    if type_ == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    if type_ == "boolean":
        return value if isinstance(value, bool) else None
    if type_ == "date":
        if not isinstance(value, str):
            return None
        moment = parse_time(value)
        return "<invalid>" if moment is None else since(moment, now)
    return None


def go_format(value: Any) -> str:
    """Render a JSON value the way Go's ``fmt`` prints decoded JSON (``[a b]``, ``map[k:v]``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if value is None:
        return "<nil>"
    return str(value)


def _go_float(number: float) -> str:
    """Go's ``%v`` for a float64: shortest digits, exponent form when it is < -4 or >= 6."""
    if number == 0:
        return "0"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point within ``text``
    magnitude = point - 1
    prefix = "-" if sign else ""
    if magnitude < -4 or magnitude >= GO_FLOAT_EXPONENT_THRESHOLD:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if magnitude < 0 else '+'}{abs(magnitude):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


# --------------------------------------------------------------------------
# JSONPath


class JsonPathError(ValueError):
    """The expression is outside the supported JSONPath subset."""


Step = Callable[[list[Any]], list[Any]]

_FIELD_CHAR = re.compile(r"[^.\[\]\s()]")
_COMPARISON = re.compile(r"^\s*(@[^=!<>\s]*)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d+))?$")


class JsonPath:
    """A compiled JSONPath expression (``{.a.b}`` or ``.a.b``)."""

    def __init__(self, expression: str) -> None:
        text = expression.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1].strip()
        if text.startswith("$"):
            text = text[1:]
        self.expression = expression
        self.steps = _parse_steps(text)

    def find(self, data: Any) -> list[Any]:
        """All values the path selects (missing keys simply select nothing)."""
        values = [data]
        for step in self.steps:
            values = step(values)
            if not values:
                break
        return values


def _parse_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    position = 0
    while position < len(text):
        char = text[position]
        if text.startswith("..", position):
            name, position = _read_field(text, position + 2)
            steps.append(_recursive_step(name))
        elif char == ".":
            name, position = _read_field(text, position + 1)
            if name:
                steps.append(_wildcard_step() if name == "*" else _field_step(name))
        elif char == "[":
            end = _matching_bracket(text, position)
            steps.append(_bracket_step(text[position + 1:end].strip()))
            position = end + 1
        elif char.isspace():
            position += 1
        else:
            name, position = _read_field(text, position)
            if not name:
                raise JsonPathError(f"unexpected {char!r} in {text!r}")
            steps.append(_field_step(name))
    return steps


def _read_field(text: str, position: int) -> tuple[str, int]:
    chars: list[str] = []
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
        elif _FIELD_CHAR.match(char):
            chars.append(char)
            position += 1
        else:
            break
    return "".join(chars), position


def _matching_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
    raise JsonPathError(f"unbalanced brackets in {text!r}")


def _field_step(name: str) -> Step:
    def step(values: list[Any]) -> list[Any]:
        return [v[name] for v in values if isinstance(v, dict) and name in v]
    return step


def _wildcard_step() -> Step:
    def step(values: list[Any]) -> list[Any]:
        selected: list[Any] = []
        for value in values:
            if isinstance(value, dict):
                selected.extend(value[k] for k in sorted(value))
            elif isinstance(value, list):
                selected.extend(value)
        return selected
    return step


def _recursive_step(name: str) -> Step:
    def walk(value: Any, found: list[Any]) -> None:
        if isinstance(value, dict):
            if name in ("", "*"):
                found.extend(value.values())
            elif name in value:
                found.append(value[name])
            for child in value.values():
                walk(child, found)
        elif isinstance(value, list):
            for child in value:
                walk(child, found)

    def step(values: list[Any]) -> list[Any]:
        found: list[Any] = []
        for value in values:
            walk(value, found)
        return found
    return step


def _bracket_step(inner: str) -> Step:
    if inner == "*":
        return _wildcard_step()
    if inner.startswith("?"):
        return _filter_step(inner[1:].strip())
    if inner[:1] in "'\"":
        keys = [_unquote(part.strip()) for part in _split_union(inner)]
        return _keys_step(keys)
    slice_match = _SLICE.match(inner)
    if slice_match:
        return _slice_step(*(int(g) if g not in (None, "") else None for g in slice_match.groups()))
    try:
        indexes = [int(part) for part in inner.split(",")]
    except ValueError as exc:
        raise JsonPathError(f"unsupported subscript [{inner}]") from exc
    return _index_step(indexes)


def _split_union(inner: str) -> list[str]:
    parts, current, quote = [], "", ""
    for char in inner:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    raise JsonPathError(f"expected a quoted key, got {text!r}")


def _keys_step(keys: list[str]) -> Step:
    def step(values: list[Any]) -> list[Any]:
        return [v[k] for v in values if isinstance(v, dict) for k in keys if k in v]
    return step


def _index_step(indexes: list[int]) -> Step:
    def step(values: list[Any]) -> list[Any]:
        return [v[i] for v in values if isinstance(v, list) for i in indexes if -len(v) <= i < len(v)]
    return step


def _slice_step(start: int | None, stop: int | None, stride: int | None) -> Step:
    def step(values: list[Any]) -> list[Any]:
        return [item for v in values if isinstance(v, list) for item in v[start:stop:stride]]
    return step


def _filter_step(expression: str) -> Step:
    if not (expression.startswith("(") and expression.endswith(")")):
        raise JsonPathError(f"filter must be parenthesised: {expression!r}")
    body = expression[1:-1].strip()
    predicate = _compile_predicate(body)

    def step(values: list[Any]) -> list[Any]:
        selected: list[Any] = []
        for value in values:
            candidates = value if isinstance(value, list) else (list(value.values()) if isinstance(value, dict) else [])
            selected.extend(item for item in candidates if predicate(item))
        return selected
    return step


def _compile_predicate(body: str) -> Callable[[Any], bool]:
    comparison = _COMPARISON.match(body)
    if comparison is None:
        if not body.startswith("@"):
            raise JsonPathError(f"unsupported filter {body!r}")
        subject = JsonPath(body[1:])
        return lambda item: bool(subject.find(item))
    left_text, operator, right_text = comparison.groups()
    left = JsonPath(left_text[1:])
    right_path = JsonPath(right_text[1:]) if right_text.startswith("@") else None
    literal = None if right_path is not None else _literal(right_text)

    def predicate(item: Any) -> bool:
        lefts = left.find(item)
        rights = right_path.find(item) if right_path is not None else [literal]
        return bool(lefts) and bool(rights) and _compare(lefts[0], operator, rights[0])
    return predicate


def _literal(text: str) -> Any:
    if text[:1] in "'\"":
        return _unquote(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError as exc:
            raise JsonPathError(f"unsupported literal {text!r}") from exc


def _compare(left: Any, operator: str, right: Any) -> bool:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if operator in ("==", "!="):
        equal = left == right if numeric or type(left) is type(right) else go_format(left) == go_format(right)
        return equal if operator == "==" else not equal
    both_strings = isinstance(left, str) and isinstance(right, str)
    if not (numeric or both_strings):
        return False
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)


__all__ = [
    "DEFAULT_PRINTER",
    "JsonPath",
    "JsonPathError",
    "cell_for_value",
    "crd_columns",
    "crd_printer",
    "go_format",
    "human_duration",
]
