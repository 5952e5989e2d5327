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
  node affinity), NodeResourcesFit (:mod:`podlife.scheduler.node_resources`), NodePorts
  (hostPort conflicts, :mod:`podlife.scheduler.node_ports`, fed by the cache's pod listeners),
  InterPodAffinity and PodTopologySpread (:mod:`podlife.scheduler.interpod_affinity`,
  :mod:`podlife.scheduler.topology_spread`, on :mod:`podlife.scheduler.topology`); for pods with claims,
  :class:`~podlife.scheduler.volume_binding.VolumeBinding` (its own module: it
  watches claims, volumes and classes, and binds volumes before the pod);
- **PostFilter**: DefaultPreemption (:mod:`podlife.scheduler.preemption`) when a pod fits nowhere;
- **Score** plugins rank the nodes that passed: NodeResourcesFit (its
  ``strategy``: LeastAllocated by default -- emptier nodes first, which spreads pods --,
  MostAllocated or RequestedToCapacityRatio, over its weighted ``resources``),
  :class:`TaintToleration` (fewer untolerated PreferNoSchedule taints), :class:`NodeAffinity`
  (preferred terms' weights), and in their own modules BalancedAllocation and
  ImageLocality (:mod:`podlife.scheduler.node_scores`); each raw score is brought to
  0..100 by the plugin's ``normalize`` (kube's DefaultNormalizeScore where kube has one),
  then weighted. Scores that read only what nodes declare are computed once per distinct
  pod key and cache generation (:class:`DeclaredScores`), like the static filters'
  verdicts; the resource scores are arrays over the columns;
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
exactly: NodeResourcesFit does for pods with extended resources or an
invalid request (ephemeral-storage has its columns), and when a value is too large
for exact int64 arithmetic or negative. The
scheduler then uses the per-node form; plugins without an array form always get
it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..client.base import PODS, Client, Obj
from .columns import NodeColumns, Rows, row_count
from ..machinery.quantity import QuantityError, resource_value
from ..machinery.scheduling import (
    Requirement,
    node_matches_terms,
    node_selector_terms,
    required_node_affinity,
    toleration_tolerates,
)
from ..machinery.storage import pod_claim_names

if TYPE_CHECKING:
    from ..client.informer import Informer
    from .cache import SchedulerCache
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
EPHEMERAL_STORAGE = "ephemeral-storage"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
#: an empty hostIP means every address (kube's DefaultBindAllHostIP)
DEFAULT_BIND_ALL_HOST_IP = "0.0.0.0"

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
                 "cpu", "memory", "ephemeral", "scalar", "nz_cpu", "nz_memory", "tolerations", "node_selector",
                 "affinity", "preferred", "host_ports", "images", "error", "claims", "volumes", "cycle",
                 "scheduler_name")

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
        self.ephemeral: int = requests.pop(EPHEMERAL_STORAGE, 0)
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
        #: preferred node affinity: (weight, term) pairs (empty for most pods)
        self.preferred: tuple[tuple[int, tuple[Requirement, ...]], ...] = preferred_node_affinity(spec)
        #: the hostPorts it asks for, as (hostIP, protocol, port) with kube's defaults (0.0.0.0, TCP)
        self.host_ports: tuple[tuple[str, str, int], ...] = pod_host_ports(spec)
        #: its containers' images (init containers too), named as ImageLocality looks them up
        self.images: tuple[str, ...] = pod_images(spec)
        #: the claims its volumes use (empty for most pods: then no volume work at all)
        self.claims: tuple[str, ...] = tuple(pod_claim_names(obj)) if spec.get("volumes") else ()
        #: this scheduling attempt's :class:`~podlife.scheduler.volume_binding.PodVolumes` (pods with claims)
        self.volumes: Any = None
        #: what plugins computed for this scheduling attempt (kube's CycleState), by plugin name;
        #: the scheduler empties it before each attempt
        self.cycle: dict[str, Any] = {}

    def resources_key(self) -> tuple:
        return (self.cpu, self.memory, self.ephemeral, tuple(sorted(self.scalar.items())), self.nz_cpu,
                self.nz_memory, self.host_ports)


class NodeInfo:
    """One node as the scheduler sees it: declared attributes plus running totals.

    ``node`` is None for a node the scheduler only knows from pods bound to it.
    ``free_*`` (allocatable minus requested) and ``left_*`` (allocatable minus the
    requests LeastAllocated counts) are kept up to date so that filters and scores
    read one attribute per resource. While the node is in the cache's node list,
    ``columns``/``row`` say where the same values live in the cache's
    :class:`~podlife.scheduler.columns.NodeColumns`, and every change is written
    there too. ``images`` (name -> size in bytes, from ``status.images``) is a
    declared attribute: ImageLocality reads it, and a change bumps the cache's
    generation like a label's.
    """

    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "ready", "images", "_raw_images",
                 "alloc_cpu", "alloc_memory", "alloc_pods", "alloc_ephemeral", "alloc_scalar",
                 "req_cpu", "req_memory", "req_pods", "req_ephemeral", "req_scalar", "nz_cpu", "nz_memory",
                 "free_cpu", "free_memory", "free_pods", "free_ephemeral", "left_cpu", "left_memory",
                 "columns", "row")

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns: NodeColumns | None = None
        self.row = -1
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.taints: tuple[Taint, ...] = ()
        self.unschedulable = False
        self.ready = False
        self.images: dict[str, int] = {}
        self._raw_images: Any = None
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = self.alloc_ephemeral = 0
        self.alloc_scalar: dict[str, int] = {}
        self.req_cpu = self.req_memory = self.req_pods = self.req_ephemeral = 0
        self.req_scalar: dict[str, int] = {}
        self.nz_cpu = self.nz_memory = 0
        self._derive()

    def _derive(self, write_row: bool = True) -> None:
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_memory = self.alloc_memory - self.req_memory
        self.free_pods = self.alloc_pods - self.req_pods
        self.free_ephemeral = self.alloc_ephemeral - self.req_ephemeral
        self.left_cpu = self.alloc_cpu - self.nz_cpu
        self.left_memory = self.alloc_memory - self.nz_memory
        if write_row and self.columns is not None:  # the single place totals change: the columns cannot drift
            self.columns.store(self.row, self)

    def static_view(self) -> tuple:
        return (self.labels, self.taints, self.unschedulable, self.ready, self.images)

    def allocatable_view(self) -> tuple:
        return (self.alloc_cpu, self.alloc_memory, self.alloc_pods, self.alloc_ephemeral, self.alloc_scalar)

    def set_node(self, node: Obj | None) -> tuple[bool, bool]:
        """Take a new version of the Node; returns (declared attributes changed, allocatable changed)."""
        before_static, before_alloc = self.static_view(), self.allocatable_view()
        self.node = node
        if node is None:
            self.labels, self.taints, self.unschedulable, self.ready = {}, (), False, False
            self.images, self._raw_images = {}, None
            self.alloc_cpu = self.alloc_memory = self.alloc_pods = self.alloc_ephemeral = 0
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
        raw_images = status.get("images")
        if raw_images != self._raw_images:  # heartbeats repeat the list: parse it only when it changes
            self._raw_images = raw_images
            self.images = node_images(raw_images)
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
        self.alloc_ephemeral = values.pop(EPHEMERAL_STORAGE, 0)
        self.alloc_scalar = values

    def add_pod(self, pod: PodInfo, sign: int = 1) -> None:
        """Count (``sign`` 1) or uncount (-1) a pod bound or assumed to this node."""
        self.add_requests(pod.cpu, pod.memory, pod.ephemeral, 1, pod.nz_cpu, pod.nz_memory, pod.scalar.items(), sign)

    def add_requests(self, cpu: int, memory: int, ephemeral: int, count: int, nz_cpu: int, nz_memory: int,
                     scalar: Iterable[tuple[str, int]], sign: int = 1, *, write_row: bool = True) -> None:
        """Count (``sign`` 1) or uncount (-1) what ``count`` pods request together. ``write_row`` False
        leaves the columns' row to the caller, who updates many rows at once
        (:meth:`~podlife.scheduler.cache.SchedulerCache.reserve_nominated`)."""
        self.req_cpu += sign * cpu
        self.req_memory += sign * memory
        self.req_ephemeral += sign * ephemeral
        self.req_pods += sign * count
        self.nz_cpu += sign * nz_cpu
        self.nz_memory += sign * nz_memory
        for name, value in scalar:
            self.req_scalar[name] = self.req_scalar.get(name, 0) + sign * value
        self._derive(write_row)

    def remove_pod(self, pod: PodInfo) -> None:
        self.add_pod(pod, -1)


def node_images(raw: Any) -> dict[str, int]:
    """``status.images`` as name -> size: every name of an image (tags and digests) maps to its size,
    as kube's NodeInfo.ImageStates keys them."""
    images: dict[str, int] = {}
    for image in raw if isinstance(raw, list) else ():
        if not isinstance(image, dict):
            continue
        size = image.get("sizeBytes")
        size = size if isinstance(size, int) and not isinstance(size, bool) else 0
        for name in image.get("names") or ():
            if isinstance(name, str):
                images[name] = size
    return images


# ---- what a pod asks of a node besides resources --------------------------------------


def normalized_image_name(name: str) -> str:
    """kube's ImageLocality name: ``:latest`` added when the name has no tag (or digest)."""
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


def pod_images(spec: Obj) -> tuple[str, ...]:
    """The images of the init containers then the containers, normalized (ImageLocality's list)."""
    return tuple(normalized_image_name(str(c.get("image") or ""))
                 for key in ("initContainers", "containers") for c in spec.get(key) or () if isinstance(c, dict))


def pod_host_ports(spec: Obj) -> tuple[tuple[str, str, int], ...]:
    """The pod's hostPorts (kube's GetHostPorts: containers and sidecar init containers), as
    (hostIP, protocol, port) with the empty IP and protocol defaulted as HostPortInfo does."""
    ports: list[tuple[str, str, int]] = []
    groups = ([c for c in spec.get("initContainers") or () if isinstance(c, dict) and c.get("restartPolicy") == "Always"],
              spec.get("containers") or ())
    for containers in groups:
        for c in containers:
            for p in (c.get("ports") or ()) if isinstance(c, dict) else ():
                port = p.get("hostPort") if isinstance(p, dict) else None
                if isinstance(port, int) and not isinstance(port, bool) and port > 0:
                    ports.append((str(p.get("hostIP") or DEFAULT_BIND_ALL_HOST_IP), str(p.get("protocol") or "TCP"), port))
    return tuple(ports)


def preferred_node_affinity(spec: Obj) -> tuple[tuple[int, tuple[Requirement, ...]], ...]:
    """``preferredDuringSchedulingIgnoredDuringExecution`` compiled: (weight, term) pairs; terms of
    weight 0 are dropped (they add nothing), empty terms kept (they match no node)."""
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") if isinstance(node_affinity, dict) else None
    out: list[tuple[int, tuple[Requirement, ...]]] = []
    for item in preferred if isinstance(preferred, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("preference"), dict):
            continue
        weight = item.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight == 0:
            continue
        terms = node_selector_terms({"nodeSelectorTerms": [item["preference"]]})
        out.append((weight, terms[0] if terms else ()))
    return tuple(out)


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
    """A container's requests with the scoring defaults for cpu and memory it does not set
    (kube's NonMissingContainerRequests: missing, not zero -- an explicit 0 stays 0)."""
    out = dict(req)
    out.setdefault("cpu", DEFAULT_MILLI_CPU_REQUEST)
    out.setdefault("memory", DEFAULT_MEMORY_REQUEST)
    return out


def _pod_level_requests(spec: Obj) -> dict[str, int]:
    """``spec.resources.requests`` of the kinds a pod may set for itself (cpu, memory, hugepages)."""
    resources = spec.get("resources")
    requests = resources.get("requests") if isinstance(resources, dict) else None
    if not isinstance(requests, dict):
        return {}
    return {name: resource_value(name, q) for name, q in requests.items()
            if name in ("cpu", "memory") or str(name).startswith("hugepages-")}


def pod_requests(spec: Obj) -> tuple[dict[str, int], dict[str, int]]:
    """A pod's effective requests, and the same with the scoring defaults for unset cpu/memory.

    As Kubernetes computes them (``resourcehelper.PodRequests``): the app containers and
    restartable (sidecar) init containers run together and add up; each ordinary init
    container runs alone next to the sidecars started before it; the pod needs the larger
    of the two phases; pod-level requests (``spec.resources``) replace the containers' sum
    for the kinds they name; then ``spec.overhead`` is added.
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
    pod_level = _pod_level_requests(spec)
    total.update(pod_level)
    total_nz.update(pod_level)
    overhead = spec.get("overhead")
    if isinstance(overhead, dict):
        extra = {name: resource_value(name, q) for name, q in overhead.items()}
        _add(total, extra)
        _add(total_nz, extra)
    return total, total_nz


# ---- extension points --------------------------------------------------------------------


class Plugin:
    name: ClassVar[str] = ""
    #: True when the plugin judges a node by that node's own record alone (no index of the pods
    #: around it fed by the cache's listeners): pods charged only for a moment (nominated pods held
    #: during a search, a preemption dry run) need not be told to the listeners for it
    node_local: ClassVar[bool] = False

    def attach(self, scheduler: Scheduler) -> None:
        """Called once by the scheduler that runs this plugin, before it runs. A plugin that
        reads more than one node at a time (pods per topology domain, ports in use) keeps
        ``scheduler.cache`` and may add itself to its ``pod_listeners``; one that writes
        (preemption) keeps ``scheduler.client``. The default keeps nothing."""

    def informers(self) -> list[Informer]:
        """What this plugin watches besides pods and nodes (created in :meth:`attach`); the
        scheduler runs them and waits for them to sync before it schedules. Default: none."""
        return []

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

    def running_preemption(self, pod: PodInfo) -> bool:
        """Whether ``pod`` should wait, unscheduled, because room this plugin is making for it is
        not there yet (a PreEnqueue gate); the default: never."""
        return False


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
    node first), honours a toleration of that taint the same way, and reports the
    node as TaintToleration would report the taint, so the message reads as
    Kubernetes' whether or not the node lifecycle controller has tainted it yet.
    """

    name = "NodeReady"
    node_local = True
    static = True
    _not_ready = _unresolvable("NodeReady", f"node(s) had untolerated taint {{{NOT_READY_TAINT}: }}")
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
    node_local = True
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
    node_local = True
    static = True
    _other = _unresolvable("NodeName", "node(s) didn't match the requested node name")

    def pod_key(self, pod: PodInfo) -> Hashable:
        return pod.node_name

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.node_name or pod.node_name == node.name:
            return None
        return self._other


# ---- scores read from what nodes declare -----------------------------------------------------


class DeclaredScores:
    """Raw scores that read only what nodes declare (labels, taints, images) and a few pod
    fields: one int64 array over every row of the cache's node list per distinct pod key,
    kept for one cache generation (the static filters' cache, for scores). Pods stamped from
    one template then cost one lookup and one gather, not a loop over the nodes."""

    #: distinct pod keys kept per generation; beyond it the cache starts over (bounded memory)
    MAX_KEYS = 256

    def __init__(self) -> None:
        self._generation = -1
        self._arrays: dict[Hashable, np.ndarray] = {}

    def rows(self, cache: SchedulerCache, key: Hashable, rows: Rows,
             compute: Callable[[NodeInfo], int]) -> np.ndarray:
        """``compute(node)`` for the nodes at ``rows``, from the array cached for ``key``."""
        if self._generation != cache.generation:
            self._arrays.clear()
            self._generation = cache.generation
        full = self._arrays.get(key)
        if full is None:
            if len(self._arrays) >= self.MAX_KEYS:
                self._arrays.clear()
            nodes = cache.node_list
            full = self._arrays[key] = np.fromiter((compute(n) for n in nodes), dtype=np.int64, count=len(nodes))
        return full[rows]


def default_normalize(scores: np.ndarray, reverse: bool = False) -> np.ndarray:
    """kube's DefaultNormalizeScore: scaled so the best is 100 (``100 * s / max``, raw scores
    being non-negative); all-zero scores stay 0, or all become 100 when ``reverse``."""
    top = int(scores.max()) if len(scores) else 0
    if top <= 0:
        return np.full(len(scores), MAX_NODE_SCORE, dtype=np.int64) if reverse else scores
    normalized = scores * MAX_NODE_SCORE
    normalized //= top
    if reverse:
        np.subtract(MAX_NODE_SCORE, normalized, out=normalized)
    return normalized


class TaintToleration(FilterPlugin, ScorePlugin):
    """Filter: a node's NoSchedule and NoExecute taints must all be tolerated (the node
    lifecycle controller's condition taints -- ``not-ready``, ``memory-pressure``, ... --
    included). Score (kube's weight 3): fewer untolerated PreferNoSchedule taints is better,
    normalized in reverse (the node with most gets 0, nodes with none 100)."""

    name = "TaintToleration"
    node_local = True
    static = True
    weight = 3

    def __init__(self) -> None:
        self._cache: SchedulerCache | None = None
        self._declared = DeclaredScores()
        self._prefer_generation = -1
        self._any_prefer = True

    def attach(self, scheduler: Scheduler) -> None:
        self._cache = scheduler.cache

    def pod_key(self, pod: PodInfo) -> Hashable:
        return pod.tolerations

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.taints:
            if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(pod.tolerations, taint):
                return _unresolvable(self.name, f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")
        return None

    @staticmethod
    def prefer_tolerations(pod: PodInfo) -> tuple[Toleration, ...]:
        """The tolerations that can tolerate a PreferNoSchedule taint (effect empty or PreferNoSchedule)."""
        return tuple(t for t in pod.tolerations if t.effect in ("", PREFER_NO_SCHEDULE))

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return _count_intolerable(self.prefer_tolerations(pod), node)

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        cache = self._cache
        if cache is None or cache.columns is not columns:
            return None
        if not self._cluster_has_prefer_taints(cache):  # every count is 0 (the common case)
            return np.zeros(row_count(rows), dtype=np.int64)
        tolerations = self.prefer_tolerations(pod)
        return self._declared.rows(cache, tolerations, rows, lambda node: _count_intolerable(tolerations, node))

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return default_normalize(scores, reverse=True)

    def _cluster_has_prefer_taints(self, cache: SchedulerCache) -> bool:
        if self._prefer_generation != cache.generation:
            self._prefer_generation = cache.generation
            self._any_prefer = any(t.effect == PREFER_NO_SCHEDULE for n in cache.node_list for t in n.taints)
        return self._any_prefer


def _count_intolerable(tolerations: tuple[Toleration, ...], node: NodeInfo) -> int:
    return sum(1 for t in node.taints if t.effect == PREFER_NO_SCHEDULE and not tolerated(tolerations, t))


class NodeAffinity(FilterPlugin, ScorePlugin):
    """Filter: ``spec.nodeSelector`` labels, and required node affinity terms (any term, all its
    requirements). Score (kube's weight 2): the sum of the weights of the preferred terms the
    node matches, normalized so the best node gets 100; pods without preferred terms get 0
    everywhere (kube skips them)."""

    name = "NodeAffinity"
    node_local = True
    static = True
    weight = 2
    _mismatch = _unresolvable("NodeAffinity", "node(s) didn't match Pod's node affinity/selector")

    def __init__(self) -> None:
        self._cache: SchedulerCache | None = None
        self._declared = DeclaredScores()

    def attach(self, scheduler: Scheduler) -> None:
        self._cache = scheduler.cache

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

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return _preferred_weight(pod.preferred, node)

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        if not pod.preferred:
            return np.zeros(row_count(rows), dtype=np.int64)
        cache = self._cache
        if cache is None or cache.columns is not columns:
            return None
        preferred = pod.preferred
        return self._declared.rows(cache, preferred, rows, lambda node: _preferred_weight(preferred, node))

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return default_normalize(scores)


def _preferred_weight(preferred: tuple[tuple[int, tuple[Requirement, ...]], ...], node: NodeInfo) -> int:
    return sum(weight for weight, term in preferred if node_matches_terms((term,), node.labels, node.name))
