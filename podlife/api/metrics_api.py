"""``metrics.k8s.io/v1beta1`` ``nodes`` and ``pods``: the resource metrics API, read from ``ctx.resource_metrics``.

Design
------
On Kubernetes this API is metrics-server's, behind an APIService; ``kubectl top`` and the
HorizontalPodAutoscaler read it. Here the API server answers it itself, as two
:class:`~podlife.api.virtual.VirtualType`\\ s over the :class:`podlife.api.resource_metrics.ResourceMetrics`
provider (which measures real nodes and derives simulated ones), with metrics-server's
behaviour:

- ``nodes`` (NodeMetrics, cluster-scoped) and ``pods`` (PodMetrics, namespaced) serve
  ``get`` and ``list`` only: a watch is 405 (``watch is not supported on resources of
  kind "nodes.metrics.k8s.io"``) and so is every write;
- a list is sorted by name, filtered by label selector (the node's or pod's labels,
  which the objects carry) and by ``metadata.name``/``metadata.namespace``; its items
  carry no kind or apiVersion and it has no resourceVersion, as metrics-server's;
- an object without a sample is metrics-server's 404: ``nodemetrics.metrics.k8s.io "x"
  not found``, ``podmetrics.metrics.k8s.io "default/x" not found``;
- the Table (``kubectl get nodes.metrics.k8s.io``) has metrics-server's columns: Name,
  one per resource (``cpu``, ``memory``; a pod's containers summed) and Window.

Numbers and windows are the provider's; this module only shapes answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..machinery.resources import ResourceList, add_into, resource_list
from ..registry import tables
from ..registry.tables._base import JSON, TablePrinter, column, name_column
from .virtual import GET_LIST, Obj, Provider, VirtualType

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
#: the resources metrics-server reports, in its (sorted) column order
RESOURCES = ("cpu", "memory")


def _named(items: list[Obj], name: str) -> Obj | None:
    return next((o for o in items if (o.get("metadata") or {}).get("name") == name), None)


def _with_kind(obj: Obj, kind: str) -> Obj:
    """A single object as metrics-server answers a get: with its kind and apiVersion first."""
    return {"kind": kind, "apiVersion": API_VERSION, **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}


class NodeMetricsProvider:
    """NodeMetrics of every node with a sample."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics

    async def objects(self, namespace: str | None) -> list[Obj]:
        items: list[Obj] = await self.metrics.node_metrics()
        return items

    async def get(self, namespace: str | None, name: str) -> Obj | None:
        found = _named(await self.objects(None), name)
        return _with_kind(found, "NodeMetrics") if found is not None else None

    @property
    def revision(self) -> int | None:
        return None

    def snapshot(self, namespace: str | None) -> list[Obj]:
        raise NotImplementedError("metrics.k8s.io is not watchable")

    def subscribe(self, fn: Callable[[str, Obj], None]) -> Callable[[], None]:
        raise NotImplementedError("metrics.k8s.io is not watchable")


class PodMetricsProvider(NodeMetricsProvider):
    """PodMetrics of every pod with a sample (of one namespace, or all)."""

    async def objects(self, namespace: str | None) -> list[Obj]:
        items: list[Obj] = await self.metrics.pod_metrics(namespace)
        return items

    async def get(self, namespace: str | None, name: str) -> Obj | None:
        found = _named(await self.objects(namespace), name)
        return _with_kind(found, "PodMetrics") if found is not None else None


def _nodes(metrics: Any) -> Provider:
    return NodeMetricsProvider(metrics)


def _pods(metrics: Any) -> Provider:
    return PodMetricsProvider(metrics)


# ---- tables ----------------------------------------------------------------------------


def _usage_cells(usage: ResourceList) -> list[str]:
    return [str(usage[r]) if r in usage else "0" for r in RESOURCES]


def _node_cells(obj: JSON, now: datetime) -> list[Any]:
    return [(obj.get("metadata") or {}).get("name", ""), *_usage_cells(resource_list(obj.get("usage"))),
            obj.get("window") or ""]


def _pod_cells(obj: JSON, now: datetime) -> list[Any]:
    total: ResourceList = {}
    for container in obj.get("containers") or ():
        if isinstance(container, dict):
            add_into(total, resource_list(container.get("usage")))
    return [(obj.get("metadata") or {}).get("name", ""), *_usage_cells(total), obj.get("window") or ""]


def _columns() -> tuple[JSON, ...]:
    return (name_column(), *(column(r, format_="quantity") for r in RESOURCES), column("Window", format_="duration"))


tables.register_printer(GROUP, "NodeMetrics", TablePrinter(columns=_columns(), cells=_node_cells))
tables.register_printer(GROUP, "PodMetrics", TablePrinter(columns=_columns(), cells=_pod_cells))


# ---- schemas (OpenAPI v3) -----------------------------------------------------------------

_QUANTITY_REF = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}
_TIME_REF = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}


def _usage(description: str) -> JSON:
    return {"type": "object", "description": description, "additionalProperties": {"allOf": [_QUANTITY_REF]}}


_WINDOW = {"type": "string", "description": "The length of the interval the usage was measured over, ending at "
                                            "timestamp (a Go duration such as 10s)."}
_TIMESTAMP = {"description": "When the usage was measured (the end of the window).", "allOf": [_TIME_REF]}

NODE_SCHEMA: JSON = {
    "type": "object",
    "description": "NodeMetrics is the resource usage of one node over a recent window.",
    "required": ["timestamp", "window", "usage"],
    "properties": {
        "timestamp": _TIMESTAMP,
        "window": _WINDOW,
        "usage": _usage("What the node used: cpu in cores (as a quantity) and memory as its working set in bytes."),
    },
}
POD_SCHEMA: JSON = {
    "type": "object",
    "description": "PodMetrics is the resource usage of one pod's containers over a recent window.",
    "required": ["timestamp", "window", "containers"],
    "properties": {
        "timestamp": _TIMESTAMP,
        "window": _WINDOW,
        "containers": {
            "type": "array",
            "description": "The usage of each running container of the pod.",
            "items": {
                "type": "object",
                "description": "ContainerMetrics is the resource usage of one container.",
                "required": ["name", "usage"],
                "properties": {
                    "name": {"type": "string", "description": "The container's name in the pod's spec."},
                    "usage": _usage("What the container used: cpu in cores and memory as its working set."),
                },
            },
        },
    },
}


def resource_types() -> list[VirtualType]:
    """``nodes`` and ``pods`` of metrics.k8s.io/v1beta1, served while ``ctx.resource_metrics`` is set."""
    return [
        VirtualType(GROUP, VERSION, "NodeMetrics", "nodes", False, verbs=GET_LIST, schema=NODE_SCHEMA,
                    source="resource_metrics", provider=_nodes, missing_resource="nodemetrics"),
        VirtualType(GROUP, VERSION, "PodMetrics", "pods", True, verbs=GET_LIST, schema=POD_SCHEMA,
                    source="resource_metrics", provider=_pods, missing_resource="podmetrics",
                    missing_with_namespace=True),
    ]
