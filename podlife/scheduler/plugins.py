"""The scheduler's plugins, and the small records they read.

Design
------
As in the Kubernetes scheduling framework, each rule is a small plugin at a named
extension point:

- **QueueSort** orders the active queue (:class:`PrioritySort`: higher
  ``spec.priority`` first, then first come, first served);
- **Filter** plugins say whether a pod may go to a node, and if not, why (the
  reason strings are Kubernetes', so ``kubectl describe`` reads the same):
  :class:`NodeReady`, :class:`NodeUnschedulable`, :class:`NodeName`,
  :class:`TaintToleration`, :class:`NodeAffinity` (``nodeSelector`` and required
  node affinity) and :class:`NodeResourcesFit`; for pods with claims,
  :class:`~podlife.scheduler.volume_binding.VolumeBinding` (its own module: it
  watches claims, volumes and classes, and binds volumes before the pod);
- **Score** plugins rank the nodes that passed (:class:`NodeResourcesFit` with
  the LeastAllocated strategy: emptier nodes first, which spreads pods);
- **Bind** writes the decision (:class:`DefaultBinder`: ``POST pods/binding``).

Plugins never see API objects in the hot path. The scheduler turns each pod into a
:class:`PodInfo` once (requests already summed and parsed, tolerations and
selectors as tuples) and keeps one :class:`NodeInfo` per node (allocatable parsed
once, running totals of what bound and assumed pods request). A filter is then a
few integer comparisons, which is what lets one Python process schedule hundreds
of pods per second across a thousand nodes.

Filters are *static* or *dynamic*. A static filter reads only what a node
declares (labels, taints, conditions, ``spec.unschedulable``) and the pod fields
named by its :meth:`FilterPlugin.pod_key`. Its verdicts are cached per distinct
pod key until a node changes, so pods stamped from one template are matched
against the node list once, not once each. A dynamic filter (resources) reads
the running totals and runs for every pod.

Dynamic filters and scores come in two forms with the same verdicts. The
per-node form (:meth:`FilterPlugin.filter`/``filter_many``,
:meth:`ScorePlugin.score`/``score_many``) works on :class:`NodeInfo` records and
on any pod. The array form (:meth:`FilterPlugin.filter_mask`,
:meth:`ScorePlugin.score_array`) works on the
:class:`~podlife.scheduler.columns.NodeColumns` -- the same running totals, one
int64 array per quantity, a row per node -- and judges every candidate with a
few numpy calls instead of a Python loop, which is where the scheduler spent most
of its time. It may decline (return None) for a pod or a cluster it cannot judge
exactly: :class:`NodeResourcesFit` does for pods with extended resources or an
invalid request, and when a value is too large for exact int64 arithmetic. The
scheduler then uses the per-node form; plugins without an array form always get
it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..client.base import PODS, Client, Obj
from .columns import NodeColumns, Rows, within_limit
from ..machinery.quantity import QuantityError, resource_value
from ..machinery.scheduling import node_matches_terms, required_node_affinity, toleration_tolerates
from ..machinery.storage import pod_claim_names

if TYPE_CHECKING:
    from .scheduler import Scheduler

#: the taints Kubernetes' node lifecycle controller puts on such nodes; tolerating
#: them (as DaemonSet pods do) lets a pod through :class:`NodeReady` and
#: :class:`NodeUnschedulable`
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
#: what LeastAllocated counts for containers that request nothing (as Kubernetes)
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
MAX_NODE_SCORE = 100

UNSCHEDULABLE = "Unschedulable"
#: no change to the node's usage (such as preemption) would help
UNRESOLVABLE = "UnschedulableAndUnresolvable"


# ---- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    """Why a filter rejected a node."""

    code: str
    reasons: tuple[str, ...]
    plugin: str = ""

    @property
    def unresolvable(self) -> bool:
        return self.code == UNRESOLVABLE


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str

    @classmethod
    def from_obj(cls, t: Any) -> Taint | None:
        if not isinstance(t, dict) or not t.get("key"):
            return None
        return cls(str(t["key"]), str(t.get("value") or ""), str(t.get("effect") or ""))


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str
    value: str
    effect: str

    @classmethod
    def from_obj(cls, t: Any) -> Toleration | None:
        if not isinstance(t, dict):
            return None
        return cls(str(t.get("key") or ""), str(t.get("operator") or "Equal"), str(t.get("value") or ""),
                   str(t.get("effect") or ""))

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' rule (:func:`~podlife.machinery.scheduling.toleration_tolerates`)."""
        return toleration_tolerates(self.key, self.operator, self.value, self.effect, taint.key, taint.value, taint.effect)


def tolerated(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


class PodInfo:
    """What scheduling needs from a pod, computed once per pod version."""

    __slots__ = ("key", "namespace", "name", "uid", "obj", "labels", "priority", "node_name", "deleting",
                 "cpu", "memory", "scalar", "nz_cpu", "nz_memory", "tolerations", "node_selector",
                 "affinity", "error", "claims", "volumes", "cycle", "scheduler_name")

    def __init__(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        self.obj = obj
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or ""
        labels = meta.get("labels")
        self.labels: dict[str, str] = labels if isinstance(labels, dict) else {}
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.node_name: str = spec.get("nodeName") or ""
        self.scheduler_name: str = spec.get("schedulerName") or "default-scheduler"
        priority = spec.get("priority")
        self.priority: int = priority if isinstance(priority, int) else 0
        self.error = ""
        try:
            requests, nonzero = pod_requests(spec)
        except QuantityError as exc:  # unschedulable until fixed, never a crash
            requests, nonzero, self.error = {}, {}, f"invalid resource request: {exc}"
        self.cpu: int = requests.pop("cpu", 0)
        self.memory: int = requests.pop("memory", 0)
        requests.pop("pods", None)
        self.scalar: dict[str, int] = {k: v for k, v in requests.items() if v > 0}
        self.nz_cpu: int = nonzero.get("cpu", 0)
        self.nz_memory: int = nonzero.get("memory", 0)
        self.tolerations: tuple[Toleration, ...] = tuple(
            t for t in (Toleration.from_obj(x) for x in spec.get("tolerations") or []) if t is not None)
        selector = spec.get("nodeSelector")
        self.node_selector: tuple[tuple[str, str], ...] = (
            tuple(sorted((str(k), str(v)) for k, v in selector.items())) if isinstance(selector, dict) else ())
        self.affinity = required_node_affinity(spec)
        #: the claims its volumes use (empty for most pods: then no volume work at all)
        self.claims: tuple[str, ...] = tuple(pod_claim_names(obj)) if spec.get("volumes") else ()
        #: this scheduling attempt's :class:`~podlife.scheduler.volume_binding.PodVolumes` (pods with claims)
        self.volumes: Any = None
        #: what plugins computed for this scheduling attempt (kube's CycleState), by plugin name;
        #: the scheduler empties it before each attempt
        self.cycle: dict[str, Any] = {}

    def resources_key(self) -> tuple:
        return self.cpu, self.memory, tuple(sorted(self.scalar.items())), self.nz_cpu, self.nz_memory


class NodeInfo:
    """One node as the scheduler sees it: declared attributes plus running totals.

    ``node`` is None for a node the scheduler only knows from pods bound to it.
    ``free_*`` (allocatable minus requested) and ``left_*`` (allocatable minus the
    requests LeastAllocated counts) are kept up to date so that filters and scores
    read one attribute per resource. While the node is in the cache's node list,
    ``columns``/``row`` say where the same values live in the cache's
    :class:`~podlife.scheduler.columns.NodeColumns`, and every change is written
    there too.
    """

    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "ready",
                 "alloc_cpu", "alloc_memory", "alloc_pods", "alloc_scalar",
                 "req_cpu", "req_memory", "req_pods", "req_scalar", "nz_cpu", "nz_memory",
                 "free_cpu", "free_memory", "free_pods", "left_cpu", "left_memory", "columns", "row")

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns: NodeColumns | None = None
        self.row = -1
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.taints: tuple[Taint, ...] = ()
        self.unschedulable = False
        self.ready = False
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
        self.alloc_scalar: dict[str, int] = {}
        self.req_cpu = self.req_memory = self.req_pods = 0
        self.req_scalar: dict[str, int] = {}
        self.nz_cpu = self.nz_memory = 0
        self._derive()

    def _derive(self) -> None:
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_memory = self.alloc_memory - self.req_memory
        self.free_pods = self.alloc_pods - self.req_pods
        self.left_cpu = self.alloc_cpu - self.nz_cpu
        self.left_memory = self.alloc_memory - self.nz_memory
        if self.columns is not None:  # the single place totals change: the columns cannot drift
            self.columns.store(self.row, self)

    def static_view(self) -> tuple:
        return (self.labels, self.taints, self.unschedulable, self.ready)

    def allocatable_view(self) -> tuple:
        return (self.alloc_cpu, self.alloc_memory, self.alloc_pods, self.alloc_scalar)

    def set_node(self, node: Obj | None) -> tuple[bool, bool]:
        """Take a new version of the Node; returns (declared attributes changed, allocatable changed)."""
        before_static, before_alloc = self.static_view(), self.allocatable_view()
        self.node = node
        if node is None:
            self.labels, self.taints, self.unschedulable, self.ready = {}, (), False, False
            self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
            self.alloc_scalar = {}
        else:
            self._read(node)
        self._derive()
        return before_static != self.static_view(), before_alloc != self.allocatable_view()

    def _read(self, node: Obj) -> None:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        self.labels = dict(meta.get("labels") or {})
        self.taints = tuple(t for t in (Taint.from_obj(x) for x in spec.get("taints") or []) if t is not None)
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready = any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
                         for c in status.get("conditions") or [])
        alloc = status.get("allocatable") or status.get("capacity") or {}
        values: dict[str, int] = {}
        for name, q in alloc.items() if isinstance(alloc, dict) else ():
            try:
                values[name] = resource_value(name, q)
            except QuantityError:
                continue
        self.alloc_cpu = values.pop("cpu", 0)
        self.alloc_memory = values.pop("memory", 0)
        self.alloc_pods = values.pop("pods", 0)
        self.alloc_scalar = values

    def add_pod(self, pod: PodInfo, sign: int = 1) -> None:
        """Count (``sign`` 1) or uncount (-1) a pod bound or assumed to this node."""
        self.req_cpu += sign * pod.cpu
        self.req_memory += sign * pod.memory
        self.req_pods += sign
        self.nz_cpu += sign * pod.nz_cpu
        self.nz_memory += sign * pod.nz_memory
        for name, value in pod.scalar.items():
            self.req_scalar[name] = self.req_scalar.get(name, 0) + sign * value
        self._derive()

    def remove_pod(self, pod: PodInfo) -> None:
        self.add_pod(pod, -1)


# ---- pod requests ---------------------------------------------------------------------


def _container_requests(c: Any) -> dict[str, int]:
    if not isinstance(c, dict):
        return {}
    requests = (c.get("resources") or {}).get("requests") or {}
    return {name: resource_value(name, q) for name, q in requests.items()} if isinstance(requests, dict) else {}


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def _nonzero(req: dict[str, int]) -> dict[str, int]:
    out = dict(req)
    out["cpu"] = req.get("cpu") or DEFAULT_MILLI_CPU_REQUEST
    out["memory"] = req.get("memory") or DEFAULT_MEMORY_REQUEST
    return out


def pod_requests(spec: Obj) -> tuple[dict[str, int], dict[str, int]]:
    """A pod's effective requests, and the same with LeastAllocated's defaults for unset cpu/memory.

    As Kubernetes computes them: the app containers and restartable (sidecar) init
    containers run together and add up; each ordinary init container runs alone
    next to the sidecars started before it; the pod needs the larger of the two
    phases, plus ``spec.overhead``.
    """
    total: dict[str, int] = {}
    total_nz: dict[str, int] = {}
    for c in spec.get("containers") or []:
        req = _container_requests(c)
        _add(total, req)
        _add(total_nz, _nonzero(req))
    sidecars: dict[str, int] = {}
    sidecars_nz: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    init_peak_nz: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        req = _container_requests(c)
        if isinstance(c, dict) and c.get("restartPolicy") == "Always":
            _add(sidecars, req)
            _add(sidecars_nz, _nonzero(req))
            _max(init_peak, sidecars)
            _max(init_peak_nz, sidecars_nz)
        else:
            phase, phase_nz = dict(sidecars), dict(sidecars_nz)
            _add(phase, req)
            _add(phase_nz, _nonzero(req))
            _max(init_peak, phase)
            _max(init_peak_nz, phase_nz)
    _add(total, sidecars)
    _add(total_nz, sidecars_nz)
    _max(total, init_peak)
    _max(total_nz, init_peak_nz)
    overhead = spec.get("overhead")
    if isinstance(overhead, dict):
        extra = {name: resource_value(name, q) for name, q in overhead.items()}
        _add(total, extra)
        _add(total_nz, extra)
    return total, total_nz


# ---- extension points --------------------------------------------------------------------


class Plugin:
    name: ClassVar[str] = ""

    def attach(self, scheduler: Scheduler) -> None:
        """Called once by the scheduler that runs this plugin, before it runs. A plugin that
        reads more than one node at a time (pods per topology domain, ports in use) keeps
        ``scheduler.cache`` and may add itself to its ``pod_listeners``; one that writes
        (preemption) keeps ``scheduler.client``. The default keeps nothing."""

    def applies(self, pod: PodInfo) -> bool:
        """Whether this plugin has anything to say about ``pod``; when False the scheduler
        skips it for this attempt (most pods have no affinity, spread or host ports, and
        then pay one call per such plugin). The default: every pod."""
        return True


class FilterPlugin(Plugin):
    #: True when the verdict depends only on the node's declared attributes and on
    #: :meth:`pod_key`; such verdicts are cached (see the module docstring)
    static: ClassVar[bool] = False

    def pod_key(self, pod: PodInfo) -> Hashable:
        """The pod fields this filter reads (static filters only)."""
        return None

    def pre_filter(self, pod: PodInfo) -> Status | None:
        """Once per attempt before any node is filtered (dynamic filters that apply only):
        compute what :meth:`filter` and :meth:`filter_mask` read, into
        ``pod.cycle[self.name]``. A Status rejects the pod on every node with its reason
        (Kubernetes' PreFilter). The default does nothing."""
        return None

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when ``pod`` may go to ``node``, else why not."""
        raise NotImplementedError

    def filter_many(self, pod: PodInfo, nodes: Iterable[NodeInfo]) -> Iterator[NodeInfo]:
        """The nodes that pass, lazily (the scheduler stops once it has enough).

        The same verdicts as :meth:`filter`; a plugin overrides it with a tighter loop.
        """
        check = self.filter
        return (node for node in nodes if check(pod, node) is None)

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        """The verdicts of :meth:`filter` for the nodes at ``rows`` at once, as a boolean
        array (True: passes); None when this plugin, or this pod, needs the per-node path.

        Only dynamic filters are asked (static verdicts are cached anyway); the default
        is None, so a plugin without an array version keeps working, just slower.
        """
        return None


class ScorePlugin(Plugin):
    #: the profile's weight for this plugin (Kubernetes' defaults; a config file may change it)
    weight: int = 1

    def pre_score(self, pod: PodInfo, rows: np.ndarray) -> None:
        """Once per attempt, before scoring the feasible nodes at ``rows`` (their places in
        the cache's ``node_list``): compute what the score reads into ``pod.cycle``. The
        default does nothing."""

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        """The raw scores of the feasible nodes brought to 0..100 (Kubernetes' NormalizeScore);
        the default keeps them (plugins whose raw scores already are 0..100)."""
        return scores

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        """0..100, higher is better."""
        raise NotImplementedError

    def score_many(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """:meth:`score` for each node, in order (overridden with a tighter loop)."""
        score = self.score
        return [score(pod, node) for node in nodes]

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        """:meth:`score` for the nodes at ``rows`` as an int64 array, in order; None
        when this plugin, or this pod, needs the per-node path (the default)."""
        return None


class PostFilterPlugin(Plugin):
    """PostFilter: runs when a pod fits on no node (Kubernetes' DefaultPreemption)."""

    def post_filter(self, pod: PodInfo, error: Any) -> Any:
        """Try to make room for ``pod``, which ``error`` (a
        :class:`~podlife.scheduler.scheduler.FitError`) says fits nowhere; the plugin
        defines what it returns and the scheduler acts on it."""
        raise NotImplementedError


class PrioritySort(Plugin):
    """QueueSort: higher ``spec.priority`` first, then in arrival order."""

    name = "PrioritySort"

    def sort_key(self, pod: PodInfo, arrival: int) -> tuple[int, int]:
        return -pod.priority, arrival


class DefaultBinder(Plugin):
    """Bind: ``POST pods/<name>/binding``; the API server sets ``spec.nodeName``."""

    name = "DefaultBinder"

    async def bind(self, client: Client, pod: PodInfo, node_name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        await client.create_subresource(PODS, pod.name, "binding", body, pod.namespace)


# ---- filters ---------------------------------------------------------------------------------


def _unresolvable(plugin: str, reason: str) -> Status:
    return Status(UNRESOLVABLE, (reason,), plugin)


class NodeReady(FilterPlugin):
    """Nodes whose ``Ready`` condition is not ``True`` take no new pods.

    Kubernetes expresses this as the ``node.kubernetes.io/not-ready`` NoSchedule
    taint; podlife checks the condition itself (no controller needs to taint the
    node first) and honours a toleration of that taint the same way.
    """

    name = "NodeReady"
    static = True
    _not_ready = _unresolvable("NodeReady", "node(s) were not ready")
    _taint = Taint(NOT_READY_TAINT, "", "NoSchedule")

    def pod_key(self, pod: PodInfo) -> Hashable:
        return tolerated(pod.tolerations, self._taint)

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.ready or tolerated(pod.tolerations, self._taint):
            return None
        return self._not_ready


class NodeUnschedulable(FilterPlugin):
    """Cordoned nodes (``spec.unschedulable``) take no new pods, unless tolerated."""

    name = "NodeUnschedulable"
    static = True
    _cordoned = _unresolvable("NodeUnschedulable", "node(s) were unschedulable")
    _taint = Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")

    def pod_key(self, pod: PodInfo) -> Hashable:
        return tolerated(pod.tolerations, self._taint)

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable or tolerated(pod.tolerations, self._taint):
            return None
        return self._cordoned


class NodeName(FilterPlugin):
    """A pod that names its node fits only there (the queue never admits such pods:
    they are bound already)."""

    name = "NodeName"
    static = True
    _other = _unresolvable("NodeName", "node(s) didn't match the requested node name")

    def pod_key(self, pod: PodInfo) -> Hashable:
        return pod.node_name

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.node_name or pod.node_name == node.name:
            return None
        return self._other


class TaintToleration(FilterPlugin):
    """A node's NoSchedule and NoExecute taints must all be tolerated."""

    name = "TaintToleration"
    static = True

    def pod_key(self, pod: PodInfo) -> Hashable:
        return pod.tolerations

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.taints:
            if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(pod.tolerations, taint):
                return _unresolvable(self.name, f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")
        return None


class NodeAffinity(FilterPlugin):
    """``spec.nodeSelector`` labels, and required node affinity terms (any term, all its requirements)."""

    name = "NodeAffinity"
    static = True
    _mismatch = _unresolvable("NodeAffinity", "node(s) didn't match Pod's node affinity/selector")

    def pod_key(self, pod: PodInfo) -> Hashable:
        return pod.node_selector, pod.affinity

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        labels = node.labels
        for key, value in pod.node_selector:
            if labels.get(key) != value:
                return self._mismatch
        terms = pod.affinity
        if terms is not None and not node_matches_terms(terms, labels, node.name):
            return self._mismatch
        return None


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    """Filter: the pod's requests fit in what the node has left (cpu, memory, pod
    count, any other requested resource). Score: LeastAllocated -- the share of
    cpu and memory left after placing the pod, averaged, so emptier nodes win and
    pods spread. Both also come as arrays over the cache's columns (:meth:`filter_mask`,
    :meth:`score_array`), with the same results, for the pods they can judge exactly."""

    name = "NodeResourcesFit"
    _too_many = Status(UNSCHEDULABLE, ("Too many pods",), "NodeResourcesFit")

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if (node.free_pods > 0
                and (not pod.cpu or pod.cpu <= node.free_cpu)
                and (not pod.memory or pod.memory <= node.free_memory)
                and not pod.scalar and not pod.error):
            return None
        return self._insufficient(pod, node)

    def _insufficient(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.error:
            return Status(UNRESOLVABLE, (pod.error,), self.name)
        reasons: list[str] = []
        if node.free_pods <= 0:
            reasons.append("Too many pods")
        if pod.cpu and pod.cpu > node.free_cpu:
            reasons.append("Insufficient cpu")
        if pod.memory and pod.memory > node.free_memory:
            reasons.append("Insufficient memory")
        for name, value in pod.scalar.items():
            if value > node.alloc_scalar.get(name, 0) - node.req_scalar.get(name, 0):
                reasons.append(f"Insufficient {name}")
        return Status(UNSCHEDULABLE, tuple(reasons), self.name) if reasons else None

    def filter_many(self, pod: PodInfo, nodes: Iterable[NodeInfo]) -> Iterator[NodeInfo]:
        if pod.scalar or pod.error:
            yield from super().filter_many(pod, nodes)
            return
        # a resource the pod does not request never rejects a node, even an overcommitted one
        cpu = pod.cpu or -(1 << 62)
        memory = pod.memory or -(1 << 62)
        for node in nodes:
            if node.free_pods > 0 and cpu <= node.free_cpu and memory <= node.free_memory:
                yield node

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        # other resources live in per-node dicts, and a request error needs its Status
        if pod.scalar or pod.error or not columns.exact or not within_limit(pod.cpu, pod.memory):
            return None
        mask = columns.free_pods[rows] > 0
        if pod.cpu:
            mask &= columns.free_cpu[rows] >= pod.cpu
        if pod.memory:
            mask &= columns.free_memory[rows] >= pod.memory
        return mask

    # LeastAllocated: (allocatable - requested) * 100 / allocatable per resource, with
    # requested including this pod and defaults for unset requests; cpu and memory
    # weigh the same. ``left_*`` is allocatable minus the node's counted requests;
    # the pod's counted requests are never 0, so left >= pod implies allocatable > 0.

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return self.score_many(pod, [node])[0]

    def score_many(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.nz_cpu, pod.nz_memory
        top = MAX_NODE_SCORE
        return [
            (((n.left_cpu - pc) * top // n.alloc_cpu if n.left_cpu >= pc > 0 else 0)
             + ((n.left_memory - pm) * top // n.alloc_memory if n.left_memory >= pm > 0 else 0)) // 2
            for n in nodes
        ]

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        if not columns.exact or not within_limit(pod.nz_cpu, pod.nz_memory):
            return None
        total = _least_allocated(columns.left_cpu[rows], columns.divisor_cpu[rows], pod.nz_cpu)
        total += _least_allocated(columns.left_memory[rows], columns.divisor_memory[rows], pod.nz_memory)
        total >>= 1  # floor division by 2, as score_many
        return total


def _least_allocated(left: np.ndarray, divisor: np.ndarray, request: int) -> np.ndarray:
    """One resource's LeastAllocated share, ``score_many``'s expression on arrays.

    Exact on the columns (see :mod:`podlife.scheduler.columns`): values stay far
    from int64's range, and counted requests are never negative, so ``left <=
    allocatable`` and a node where the pod fits (``left >= request > 0``) has
    ``divisor == allocatable > 0``. Where it does not fit, the quotient is negative
    (``divisor >= 1``) and clamped to score_many's 0. Works in place on fresh
    arrays: numpy's per-call overhead, not the arithmetic, is the cost here.
    """
    if request <= 0:
        return np.zeros(len(left), dtype=np.int64)
    share = left - request  # a new array even when ``left`` is a view
    share *= MAX_NODE_SCORE
    share //= divisor
    np.maximum(share, 0, out=share)
    return share


def default_filters() -> list[FilterPlugin]:
    """The filter chain in Kubernetes' order (NodeReady where kube's not-ready taint would be
    checked); a node's reported reason is its first failing filter's."""
    return [NodeUnschedulable(), NodeName(), NodeReady(), TaintToleration(), NodeAffinity(), NodeResourcesFit()]


def default_scores(filters: list[FilterPlugin]) -> list[ScorePlugin]:
    """LeastAllocated, sharing the NodeResourcesFit instance when there is one."""
    for f in filters:
        if isinstance(f, NodeResourcesFit):
            return [f]
    return [NodeResourcesFit()]
