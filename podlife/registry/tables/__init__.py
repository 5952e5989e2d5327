"""Server-side table printing: the ``meta.k8s.io/v1`` Table answers for ``kubectl get``.

Why
---
``kubectl get`` does not format objects itself.  It asks the API server for
``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints, unchanged, the
columns and cells the server sends back (hiding priority-1 columns unless
``-o wide``).  A server that cannot answer gets only NAME and AGE.  So the
familiar ``READY  STATUS  RESTARTS  AGE`` output, including the derived
STATUS of a pod (``CrashLoopBackOff``, ``Init:0/2``, ``Terminating``...), is
this module's job, and it must match a real Kubernetes 1.32 cluster cell for
cell because people and tests compare the two.

Design
------
* Pure functions over plain JSON-like dicts, exactly as objects are stored:
  no I/O, no global state beyond an immutable printer registry, and every
  time-dependent cell takes an explicit ``now`` so output is reproducible.
* One :class:`TablePrinter` per kind, keyed by ``(group, kind)``: a tuple of
  column definitions and a ``cells(obj, now)`` function.  Cells always cover
  every column, wide ones included, as the real server always renders with
  ``Wide=true`` and lets kubectl filter by priority.
* Printers live in small modules by API area (``pods``, ``core``,
  ``workloads``, ``cluster``, ``network`` for podlife's own kinds, ``crd``
  for custom resources and the generic fallback), all built from the helpers
  in ``_base``.  Adding a kind means writing one cells function and one
  column tuple, then listing it in that module's ``PRINTERS``.
* Kinds with no printer get the server's generic table (``Name``,
  ``Created At``); custom resources get their CRD's
  ``additionalPrinterColumns`` through :func:`crd_columns`.

The column set, cell formats and status rules are learned from the
Kubernetes printers and re-expressed here; nothing is generated from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import cluster, core, network, pods, workloads
from ._base import JSON, TablePrinter, human_duration, normalize_now
from .core import node_roles, node_status_text
from .crd import DEFAULT_PRINTER, JsonPath, JsonPathError, crd_columns, crd_printer
from .pods import PodSummary, pod_status_reason, restarts_text, summarize_pod

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT_CHOICES = ("Metadata", "Object", "None")

_PRINTERS: dict[tuple[str, str], TablePrinter] = {}
for _module in (pods, core, workloads, cluster, network):
    _PRINTERS.update(_module.PRINTERS)


def register_printer(group: str, kind: str, printer: TablePrinter) -> None:
    """Add or replace the printer of a kind (for kinds defined outside this package)."""
    _PRINTERS[(normalize_group(group), kind)] = printer


def normalize_group(group: str) -> str:
    """Accept a bare group, an ``apiVersion`` (``apps/v1``) or the core ``v1``."""
    group = (group or "").strip()
    if "/" in group:
        return group.split("/", 1)[0]
    if group == "v1":
        return ""
    return group


def printer_for(kind: str, group: str = "") -> TablePrinter:
    """The printer for a kind; the generic NAME / CREATED AT printer if none is registered.

    An exact ``(group, kind)`` match wins.  When the caller passes no group,
    a built-in kind is still found by kind alone if exactly one group defines
    it (so ``"Deployment"`` works without ``"apps"``).
    """
    normalized = normalize_group(group)
    printer = _PRINTERS.get((normalized, kind))
    if printer is not None:
        return printer
    if not normalized:
        matches = [p for (g, k), p in _PRINTERS.items() if k == kind]
        if len(matches) == 1:
            return matches[0]
    return DEFAULT_PRINTER


def known_kinds() -> list[tuple[str, str]]:
    """All ``(group, kind)`` pairs with a dedicated printer."""
    return sorted(_PRINTERS)


def column_definitions(kind: str, group: str = "") -> list[JSON]:
    """TableColumnDefinitions (name, type, format, description, priority) for a kind."""
    return printer_for(kind, group).column_definitions()


def row_cells(obj: Mapping[str, Any], kind: str, group: str = "", now: datetime | None = None) -> list[Any]:
    """The cells of one object, one per column of :func:`column_definitions`."""
    return printer_for(kind, group).cells(dict(obj), normalize_now(now))


def to_table(
    objects: Iterable[Mapping[str, Any]],
    kind: str,
    group: str = "",
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    now: datetime | None = None,
    *,
    printer_columns: Sequence[Mapping[str, Any]] | None = None,
    remaining_item_count: int | None = None,
    no_headers: bool = False,
) -> JSON:
    """Build a ``meta.k8s.io/v1`` Table for ``objects`` (a list result or a single object).

    ``include_object`` follows ``?includeObject=``: ``Metadata`` (default)
    embeds a PartialObjectMetadata per row, ``Object`` the full object,
    ``None`` nothing.  Pass ``printer_columns`` (a CRD version's
    ``additionalPrinterColumns``, possibly empty) to print a custom resource.
    Empty ``resourceVersion``/``continue`` are omitted, like the API server's
    ListMeta.  Objects are referenced, not copied.
    """
    mode = _include_object_mode(include_object)
    printer = crd_printer(printer_columns) if printer_columns is not None else printer_for(kind, group)
    moment = normalize_now(now)
    rows = [_row(obj, printer, mode, moment) for obj in objects]
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": _list_meta(resource_version, continue_token, remaining_item_count),
        "columnDefinitions": [] if no_headers else printer.column_definitions(),
        "rows": rows,
    }


def partial_object_metadata(obj: Mapping[str, Any]) -> JSON:
    """The ``PartialObjectMetadata`` form of an object (what ``includeObject=Metadata`` embeds)."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": obj.get("metadata") or {},
    }


def _include_object_mode(include_object: str | None) -> str:
    mode = include_object or "Metadata"
    if mode not in INCLUDE_OBJECT_CHOICES:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT_CHOICES)}, not {mode!r}")
    return mode


def _row(obj: Mapping[str, Any], printer: TablePrinter, mode: str, now: datetime) -> JSON:
    item = obj if isinstance(obj, dict) else dict(obj)
    row: JSON = {"cells": printer.cells(item, now)}
    if printer.row_conditions is not None:
        conditions = printer.row_conditions(item)
        if conditions:
            row["conditions"] = conditions
    if mode == "Metadata":
        row["object"] = partial_object_metadata(item)
    elif mode == "Object":
        row["object"] = item
    return row


def _list_meta(resource_version: str, continue_token: str, remaining_item_count: int | None) -> JSON:
    list_meta: JSON = {}
    if resource_version:
        list_meta["resourceVersion"] = str(resource_version)
    if continue_token:
        list_meta["continue"] = continue_token
    if remaining_item_count is not None:
        list_meta["remainingItemCount"] = remaining_item_count
    return list_meta


__all__ = [
    "INCLUDE_OBJECT_CHOICES",
    "TABLE_API_VERSION",
    "JsonPath",
    "JsonPathError",
    "PodSummary",
    "TablePrinter",
    "column_definitions",
    "crd_columns",
    "human_duration",
    "known_kinds",
    "node_roles",
    "node_status_text",
    "normalize_group",
    "partial_object_metadata",
    "pod_status_reason",
    "printer_for",
    "register_printer",
    "restarts_text",
    "row_cells",
    "summarize_pod",
    "to_table",
]
