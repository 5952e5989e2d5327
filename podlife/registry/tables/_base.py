"""Shared building blocks for the table printers: columns, time, formatting.

Everything here is a pure function over JSON-like values so that each
per-kind printer module stays a short list of "column -> how to compute its
cell" declarations.  Formatting rules (``<none>`` placeholders, label and
selector rendering, container lists, human durations) follow what the
Kubernetes server-side printers emit, because ``kubectl get`` prints the
cells verbatim and users (and our conformance tests) compare them with a real
cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]
Cell = Any
CellsFn = Callable[[JSON, datetime], list[Cell]]
RowConditionsFn = Callable[[JSON], "list[JSON] | None"]

NONE = "<none>"
UNSET = "<unset>"
UNKNOWN = "<unknown>"


# --------------------------------------------------------------------------
# Columns and printers


def column(name: str, type_: str = "string", description: str = "", *,
           priority: int = 0, format_: str = "") -> JSON:
    """One ``meta.k8s.io/v1`` TableColumnDefinition (all five fields set)."""
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


def name_column() -> JSON:
    return column("Name", format_="name",
                  description="Unique name of the object within its namespace or cluster.")


def age_column() -> JSON:
    return column("Age", description="Time elapsed since the object was created.")


def wide(name: str, type_: str = "string", description: str = "") -> JSON:
    """A column kubectl shows only with ``-o wide`` (priority 1)."""
    return column(name, type_, description, priority=1)


def containers_column(wide_only: bool = True) -> JSON:
    return column("Containers", description="Names of the containers in the pod template.",
                  priority=1 if wide_only else 0)


def images_column(wide_only: bool = True) -> JSON:
    return column("Images", description="Images of the containers in the pod template.",
                  priority=1 if wide_only else 0)


def selector_column(description: str = "Label selector of the pods managed by this object.") -> JSON:
    return wide("Selector", description=description)


def replica_columns(selector_description: str = "Label selector of the pods managed by this object.") -> tuple[JSON, ...]:
    """The columns of ReplicaSets and ReplicationControllers (the same in Kubernetes)."""
    return (
        name_column(),
        column("Desired", "integer", "Desired number of replicas."),
        column("Current", "integer", "Number of replicas that exist."),
        column("Ready", "integer", "Number of ready replicas."),
        age_column(),
        containers_column(),
        images_column(),
        selector_column(selector_description),
    )


@dataclass(frozen=True)
class TablePrinter:
    """How one kind is rendered: its columns and a function producing the cells.

    ``cells`` always returns one value per column, wide (priority 1) columns
    included: the server always answers with every column and kubectl hides
    the priority-1 ones unless asked for ``-o wide``.
    """

    columns: tuple[JSON, ...]
    cells: CellsFn
    row_conditions: RowConditionsFn | None = field(default=None)

    def column_definitions(self) -> list[JSON]:
        return [dict(c) for c in self.columns]


# --------------------------------------------------------------------------
# Time


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp (``metav1.Time`` / ``MicroTime``); None if absent/invalid."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def normalize_now(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """Render a duration the way ``kubectl get`` renders ages.

    Roughly 2-3 significant figures: ``45s``, ``119s``, ``2m``, ``2m30s``,
    ``15m``, ``3h``, ``5h20m``, ``30h``, ``3d4h``, ``40d``, ``2y100d``,
    ``9y``.  Small negative values (clock skew under 2s) read as ``0s``;
    anything earlier reads ``<invalid>``.
    """
    whole_seconds = int(seconds)  # truncates toward zero, like a Go int conversion
    if whole_seconds < -1:
        return "<invalid>"
    if whole_seconds < 0:
        return "0s"
    if whole_seconds < 2 * 60:
        return f"{whole_seconds}s"

    minutes = whole_seconds // 60
    if minutes < 10:
        return _with_remainder(minutes, "m", whole_seconds % 60, "s")
    if minutes < 3 * 60:
        return f"{minutes}m"

    hours = whole_seconds // 3600
    if hours < 8:
        return _with_remainder(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _with_remainder(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return _with_remainder(days // 365, "y", days % 365, "d")
    return f"{hours // 24 // 365}y"


def _with_remainder(major: int, major_unit: str, minor: int, minor_unit: str) -> str:
    if minor == 0:
        return f"{major}{major_unit}"
    return f"{major}{major_unit}{minor}{minor_unit}"


def since(timestamp: Any, now: datetime) -> str:
    """Human age of a timestamp relative to ``now``; ``<unknown>`` when unset."""
    moment = parse_time(timestamp)
    if moment is None:
        return UNKNOWN
    return human_duration((now - moment).total_seconds())


def between(start: Any, end: Any) -> str:
    """Human duration from ``start`` to ``end`` (both timestamps)."""
    begin, finish = parse_time(start), parse_time(end)
    if begin is None or finish is None:
        return ""
    return human_duration((finish - begin).total_seconds())


def age(obj: Mapping[str, Any], now: datetime) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


# --------------------------------------------------------------------------
# Object access


def meta(obj: Mapping[str, Any]) -> JSON:
    return _mapping(obj.get("metadata"))


def spec(obj: Mapping[str, Any]) -> JSON:
    return _mapping(obj.get("spec"))


def status(obj: Mapping[str, Any]) -> JSON:
    return _mapping(obj.get("status"))


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def dig(value: Any, *path: str | int) -> Any:
    """Follow keys/indexes through nested dicts/lists; None when any step is missing."""
    current = value
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return None
            current = current[step]
        else:
            if not isinstance(current, Mapping):
                return None
            current = current.get(step)
        if current is None:
            return None
    return current


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def condition(conditions: Any, type_: str) -> JSON | None:
    """First condition of the given type in a conditions list."""
    for item in as_list(conditions):
        if isinstance(item, Mapping) and item.get("type") == type_:
            return dict(item)
    return None


def condition_is_true(conditions: Any, type_: str) -> bool:
    found = condition(conditions, type_)
    return found is not None and found.get("status") == "True"


# --------------------------------------------------------------------------
# Formatting


def or_placeholder(value: Any, placeholder: str = NONE) -> str:
    text = "" if value is None else str(value)
    return text if text else placeholder


def format_labels(labels: Any) -> str:
    """``k1=v1,k2=v2`` sorted by key, ``<none>`` when empty (like ``labels.FormatLabels``)."""
    if not isinstance(labels, Mapping) or not labels:
        return NONE
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def selector_string(selector: Any) -> str:
    """Render a LabelSelector as selector syntax; empty string for match-everything/nothing."""
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in _mapping(selector.get("matchLabels")).items():
        requirements.append((key, f"{key}={value}"))
    for expression in as_list(selector.get("matchExpressions")):
        if isinstance(expression, Mapping):
            requirements.append(_expression_requirement(expression))
    requirements.sort(key=lambda item: item[0])
    return ",".join(text for _, text in requirements)


def _expression_requirement(expression: Mapping[str, Any]) -> tuple[str, str]:
    key = str(expression.get("key", ""))
    operator = expression.get("operator", "")
    values = ",".join(sorted(str(v) for v in as_list(expression.get("values"))))
    rendered = {
        "In": f"{key} in ({values})",
        "NotIn": f"{key} notin ({values})",
        "Exists": key,
        "DoesNotExist": f"!{key}",
    }.get(str(operator), f"{key} {operator} ({values})")
    return key, rendered


def format_label_selector(selector: Any) -> str:
    """Like :func:`selector_string` but ``<none>`` when nothing is selected explicitly."""
    return selector_string(selector) or NONE


def container_cells(pod_spec: Any) -> tuple[str, str]:
    """Comma-joined container names and images of a pod spec."""
    containers = [c for c in as_list(_mapping(pod_spec).get("containers")) if isinstance(c, Mapping)]
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


def template_spec(obj: Mapping[str, Any]) -> JSON:
    """The pod spec of a workload's ``spec.template``."""
    return _mapping(dig(obj, "spec", "template", "spec"))


def bool_text(value: Any) -> str:
    """``True``/``False`` for a set boolean, ``<unset>`` otherwise."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return UNSET


def list_with_more(items: Sequence[str], total: int, limit: int = 3, empty: str = UNSET) -> str:
    """Join up to ``limit`` items, adding `` + N more...`` for the rest."""
    shown = ",".join(items[:limit])
    if total > limit:
        return f"{shown} + {total - limit} more..."
    return shown or empty


def join_nonempty(values: Iterable[str], sep: str = ",") -> str:
    return sep.join(v for v in values if v)
