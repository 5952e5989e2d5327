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
  node affinity), :class:`NodeResourcesFit`, and NodePorts (hostPort conflicts,
  :mod:`podlife.scheduler.node_ports`, fed by the cache's pod listeners); for pods with claims,
  :class:`~podlife.scheduler.volume_binding.VolumeBinding` (its own module: it
  watches claims, volumes and classes, and binds volumes before the pod);
- **Score** plugins rank the nodes that passed: :class:`NodeResourcesFit` (its
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
exactly: :class:`NodeResourcesFit` does for pods with extended resources or an
invalid request (ephemeral-storage has its columns), and when a value is too large
for exact int64 arithmetic or negative. The
scheduler then uses the per-node form; plugins without an array form always get
it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..client.base import PODS, Client, Obj
from .columns import NodeColumns, Rows, within_limit
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

    def _derive(self) -> None:
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_memory = self.alloc_memory - self.req_memory
        self.free_pods = self.alloc_pods - self.req_pods
        self.free_ephemeral = self.alloc_ephemeral - self.req_ephemeral
        self.left_cpu = self.alloc_cpu - self.nz_cpu
        self.left_memory = self.alloc_memory - self.nz_memory
        if self.columns is not None:  # the single place totals change: the columns cannot drift
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
        self.req_cpu += sign * pod.cpu
        self.req_memory += sign * pod.memory
        self.req_ephemeral += sign * pod.ephemeral
        self.req_pods += sign
        self.nz_cpu += sign * pod.nz_cpu
        self.nz_memory += sign * pod.nz_memory
        for name, value in pod.scalar.items():
            self.req_scalar[name] = self.req_scalar.get(name, 0) + sign * value
        self._derive()

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


def _attached_cache(plugin: Plugin) -> SchedulerCache | None:
    return getattr(plugin, "_cache", None)


class TaintToleration(FilterPlugin, ScorePlugin):
    """Filter: a node's NoSchedule and NoExecute taints must all be tolerated (the node
    lifecycle controller's condition taints -- ``not-ready``, ``memory-pressure``, ... --
    included). Score (kube's weight 3): fewer untolerated PreferNoSchedule taints is better,
    normalized in reverse (the node with most gets 0, nodes with none 100)."""

    name = "TaintToleration"
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
            return np.zeros(_count(rows), dtype=np.int64)
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


def _count(rows: Rows) -> int:
    return len(rows) if isinstance(rows, np.ndarray) else len(range(*rows.indices(1 << 62)))


class NodeAffinity(FilterPlugin, ScorePlugin):
    """Filter: ``spec.nodeSelector`` labels, and required node affinity terms (any term, all its
    requirements). Score (kube's weight 2): the sum of the weights of the preferred terms the
    node matches, normalized so the best node gets 100; pods without preferred terms get 0
    everywhere (kube skips them)."""

    name = "NodeAffinity"
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
            return np.zeros(_count(rows), dtype=np.int64)
        cache = self._cache
        if cache is None or cache.columns is not columns:
            return None
        preferred = pod.preferred
        return self._declared.rows(cache, preferred, rows, lambda node: _preferred_weight(preferred, node))

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return default_normalize(scores)


def _preferred_weight(preferred: tuple[tuple[int, tuple[Requirement, ...]], ...], node: NodeInfo) -> int:
    return sum(weight for weight, term in preferred if node_matches_terms((term,), node.labels, node.name))


# ---- resource scores -----------------------------------------------------------------------------
#
# kube's resourceAllocationScorer: for each configured (resource, weight), the node's
# allocatable and what would be requested with the pod there; a resource the node has none
# of (allocatable 0) is left out, and so is an extended resource the pod does not request.
# The strategies (LeastAllocated, MostAllocated, RequestedToCapacityRatio, and
# BalancedAllocation's deviation) turn those pairs into a 0..100 score. Each comes twice:
# on ints per node (Go's integer arithmetic: division truncates toward zero) and on the
# columns, which hold only rows where every value is non-negative (NodeColumns marks the
# others unsafe), so numpy's floor division is the same truncation there.

#: (weight, allocatable, requested with the pod) of one resource on one node
Pair = tuple[int, int, int]
#: the same over rows: (weight, allocatable, max(allocatable, 1), requested with the pod)
ArrayPair = tuple[int, np.ndarray, np.ndarray, np.ndarray]
#: MaxNodeScore / MaxCustomPriorityScore: a shape point's 0..10 score scaled to 0..100
SHAPE_SCORE_SCALE = MAX_NODE_SCORE // 10
MAX_UTILIZATION = 100
STRATEGIES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
#: the requestedToCapacityRatio shape used when none is given (kube's default: least allocated)
DEFAULT_SHAPE: tuple[tuple[int, int], ...] = ((0, 10), (100, 0))
#: the columns of each resource the arrays know: (allocatable, divisor, free, counted left)
_ARRAY_RESOURCES = {
    "cpu": ("alloc_cpu", "divisor_cpu", "free_cpu", "left_cpu"),
    "memory": ("alloc_memory", "divisor_memory", "free_memory", "left_memory"),
    EPHEMERAL_STORAGE: ("alloc_ephemeral", "divisor_ephemeral", "free_ephemeral", "free_ephemeral"),
}


def is_scalar_resource(name: str) -> bool:
    """kube's IsScalarResourceName: extended (domain-prefixed) resources, hugepages, attachable volumes."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero), on Python ints."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class ResourceAllocation:
    """The pairs a resource score reads, per node and over the columns (kube's
    ``calculateResourceAllocatableRequest``). ``use_requested``: cpu and memory as requested
    (BalancedAllocation); otherwise with the scoring defaults for unset requests (the fit scores)."""

    def __init__(self, resources: tuple[tuple[str, int], ...], use_requested: bool) -> None:
        if not resources:
            raise ValueError("a resource score needs at least one resource")
        self.resources = tuple((str(name), int(weight)) for name, weight in resources)
        self.use_requested = use_requested

    def pod_request(self, pod: PodInfo, name: str) -> int:
        if name == "cpu":
            return pod.cpu if self.use_requested else pod.nz_cpu
        if name == "memory":
            return pod.memory if self.use_requested else pod.nz_memory
        if name == EPHEMERAL_STORAGE:
            return pod.ephemeral
        return pod.scalar.get(name, 0)

    def pod_requests(self, pod: PodInfo) -> tuple[int, ...]:
        return tuple(self.pod_request(pod, name) for name, _ in self.resources)

    def pairs(self, pod: PodInfo, node: NodeInfo) -> list[Pair]:
        """Every resource that counts on ``node``: allocatable non-zero."""
        out: list[Pair] = []
        for name, weight in self.resources:
            request = self.pod_request(pod, name)
            if request == 0 and is_scalar_resource(name):
                continue
            if name == "cpu":
                alloc, used = node.alloc_cpu, node.req_cpu if self.use_requested else node.nz_cpu
            elif name == "memory":
                alloc, used = node.alloc_memory, node.req_memory if self.use_requested else node.nz_memory
            elif name == EPHEMERAL_STORAGE:
                alloc, used = node.alloc_ephemeral, node.req_ephemeral
            elif is_scalar_resource(name) and name in node.alloc_scalar:
                alloc, used = node.alloc_scalar[name], node.req_scalar.get(name, 0)
            else:
                continue
            if alloc != 0:
                out.append((weight, alloc, used + request))
        return out

    def array_pairs(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> list[ArrayPair] | None:
        """The same over ``rows`` (allocatable may be 0 on some: the strategies mask those);
        None when the arrays cannot say (an extended resource the pod requests, unsafe values)."""
        if not columns.exact:
            return None
        out: list[ArrayPair] = []
        for name, weight in self.resources:
            request = self.pod_request(pod, name)
            fields = _ARRAY_RESOURCES.get(name)
            if fields is None:
                if request and is_scalar_resource(name):
                    return None  # an extended resource the pod requests: per node
                continue  # skipped on every node: not requested, or not a resource kube scores
            if request < 0 or not within_limit(request):
                return None  # a negative request could make a share negative: Go's division, per node
            alloc_f, divisor_f, free_f, left_f = fields
            alloc = getattr(columns, alloc_f)[rows]
            left = getattr(columns, free_f if self.use_requested else left_f)[rows]
            requested = alloc - left  # what is counted on the node: a new array
            if request:
                requested += request
            out.append((weight, alloc, getattr(columns, divisor_f)[rows], requested))
        return out

    @staticmethod
    def zero_allocatable(pairs: list[ArrayPair]) -> bool:
        """Whether some row has allocatable 0 for one of ``pairs``' resources (then it is masked)."""
        return any(not alloc.all() for _, alloc, _, _ in pairs)


# -- the strategies on one node (ints, Go's arithmetic) --


def least_allocated_score(pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        share = 0 if requested > alloc else go_div((alloc - requested) * MAX_NODE_SCORE, alloc)
        score += share * weight
        weights += weight
    return go_div(score, weights) if weights else 0


def most_allocated_score(pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        share = go_div(min(requested, alloc) * MAX_NODE_SCORE, alloc)
        score += share * weight
        weights += weight
    return go_div(score, weights) if weights else 0


def broken_linear(shape: tuple[tuple[int, int], ...], p: int) -> int:
    """kube's BuildBrokenLinearFunction over (utilization, score) points, scores already 0..100."""
    for i, (utilization, score) in enumerate(shape):
        if p <= utilization:
            if i == 0:
                return score
            u0, s0 = shape[i - 1]
            return s0 + go_div((score - s0) * (p - u0), utilization - u0)
    return shape[-1][1]


def requested_to_capacity_score(shape: tuple[tuple[int, int], ...], pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        utilization = MAX_UTILIZATION if requested > alloc else go_div(requested * MAX_UTILIZATION, alloc)
        share = broken_linear(shape, utilization)
        if share > 0:
            score += share * weight
            weights += weight
    return go_round(score, weights) if weights else 0


def go_round(a: int, b: int) -> int:
    """``int64(math.Round(float64(a) / float64(b)))`` (half away from zero)."""
    quotient = float(a) / float(b)
    return int(math.copysign(math.floor(abs(quotient) + 0.5), quotient))


def balanced_score(pairs: list[Pair]) -> int:
    """kube's balancedResourceScorer: 100 * (1 - the standard deviation of the requested
    fractions, each capped at 1); two resources: half their difference."""
    fractions = [min(float(requested) / float(alloc), 1.0) for _, alloc, requested in pairs]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        total = 0.0
        for f in fractions:
            total += f
        mean = total / len(fractions)
        squares = 0.0
        for f in fractions:
            squares = squares + (f - mean) * (f - mean)
        std = math.sqrt(squares / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


# -- the same on the columns (every value non-negative: floor division is Go's) --


def _weights(pairs: list[ArrayPair], masked: bool) -> np.ndarray | int:
    """Σ weight of the resources counted per row (a constant when no allocatable is 0)."""
    if not masked:
        return sum(weight for weight, _, _, _ in pairs)
    total = np.zeros(len(pairs[0][1]), dtype=np.int64)
    for weight, alloc, _, _ in pairs:
        total += (alloc > 0) * weight
    return total


def _weighted_quotient(score: np.ndarray, weights: np.ndarray | int) -> np.ndarray:
    if isinstance(weights, np.ndarray):
        score //= np.maximum(weights, 1)  # no weight: no resource, score 0 already
    elif weights > 1:
        score //= weights
    elif weights <= 0:
        score[:] = 0
    return score


def least_allocated_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray:
    score: np.ndarray | None = None
    for weight, alloc, divisor, requested in pairs:
        share = alloc - requested
        share *= MAX_NODE_SCORE
        share //= divisor
        np.maximum(share, 0, out=share)  # requested > allocatable: 0 (and rows without it: masked below)
        if masked:
            share *= alloc > 0
        if weight != 1:
            share *= weight
        score = share if score is None else score + share
    assert score is not None
    return _weighted_quotient(score, _weights(pairs, masked))


def most_allocated_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray:
    score: np.ndarray | None = None
    for weight, alloc, divisor, requested in pairs:
        share = np.minimum(requested, alloc)
        share *= MAX_NODE_SCORE
        share //= divisor  # allocatable 0: min(requested, 0) = 0 (requested >= 0 on safe rows)
        if weight != 1:
            share *= weight
        score = share if score is None else score + share
    assert score is not None
    return _weighted_quotient(score, _weights(pairs, masked))


def broken_linear_array(shape: tuple[tuple[int, int], ...], p: np.ndarray) -> np.ndarray:
    """:func:`broken_linear` on an array of utilizations (0..100)."""
    out = np.full(len(p), shape[-1][1], dtype=np.int64)
    for i in range(len(shape) - 1, -1, -1):  # the first point at or above p wins: assign from the last
        utilization, score = shape[i]
        below = p <= utilization
        if i == 0:
            out[below] = score
            continue
        u0, s0 = shape[i - 1]
        step = (score - s0) * (p[below] - u0)  # p > u0 there, so only the sign of the step varies
        out[below] = s0 + np.sign(step) * (np.abs(step) // (utilization - u0))
    return out


def requested_to_capacity_array(shape: tuple[tuple[int, int], ...], pairs: list[ArrayPair]) -> np.ndarray:
    score = np.zeros(len(pairs[0][1]), dtype=np.int64)
    weights = np.zeros(len(score), dtype=np.int64)
    for weight, alloc, divisor, requested in pairs:
        utilization = requested * MAX_UTILIZATION
        utilization //= divisor
        utilization[requested > alloc] = MAX_UTILIZATION
        share = broken_linear_array(shape, utilization)
        counted = (share > 0) & (alloc > 0)
        score += share * counted * weight
        weights += counted * weight
    # math.Round(score / weights), half away from zero, on non-negative values
    doubled = 2 * score + weights
    doubled //= 2 * np.maximum(weights, 1)
    return doubled


def balanced_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray | None:
    """:func:`balanced_score` over the rows; None when rows would count different numbers of
    more than two resources (the per-node path then)."""
    n = len(pairs[0][1])
    if len(pairs) < 2:
        return np.full(n, MAX_NODE_SCORE, dtype=np.int64)  # one fraction or none: deviation 0
    if masked and len(pairs) > 2:
        return None
    fractions = []
    for _, _alloc, divisor, requested in pairs:
        fraction = requested / divisor
        np.minimum(fraction, 1.0, out=fraction)
        fractions.append(fraction)
    if len(pairs) == 2:
        std = np.abs((fractions[0] - fractions[1]) / 2)
        if masked:
            std *= (pairs[0][1] > 0) & (pairs[1][1] > 0)  # fewer than two fractions: 0
    else:
        total = np.zeros(n)
        for f in fractions:
            total += f
        mean = total / len(fractions)
        squares = np.zeros(n)
        for f in fractions:
            squares = squares + (f - mean) * (f - mean)
        std = np.sqrt(squares / len(fractions))
    return ((1 - std) * MAX_NODE_SCORE).astype(np.int64)


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    """Filter: the pod's requests fit in what the node has left (cpu, memory,
    ephemeral-storage, pod count, any other requested resource). Score: the configured
    ``strategy`` over the configured ``resources`` (kube's ``scoringStrategy``):
    LeastAllocated (default: the share left after placing the pod, so emptier nodes win and
    pods spread), MostAllocated (the share used: bin packing), or RequestedToCapacityRatio
    (``shape``, (utilization 0..100, score 0..10) points, maps the share used to a score).
    Both also come as arrays over the cache's columns (:meth:`filter_mask`,
    :meth:`score_array`), with the same results, for the pods they can judge exactly;
    extended resources are judged node by node."""

    name = "NodeResourcesFit"
    _too_many = Status(UNSCHEDULABLE, ("Too many pods",), "NodeResourcesFit")

    def __init__(self, *, strategy: str = "LeastAllocated",
                 resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1)),
                 shape: tuple[tuple[int, int], ...] = ()) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"scoring strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.resources = tuple(resources)
        self.shape = tuple((int(u), int(s)) for u, s in shape)
        points = self.shape or DEFAULT_SHAPE
        #: the shape with scores scaled to 0..100, as kube builds its function
        self._shape = tuple((u, s * SHAPE_SCORE_SCALE) for u, s in points)
        self.allocation = ResourceAllocation(self.resources, use_requested=False)
        #: the default configuration: LeastAllocated on cpu and memory, weight 1 each (the fast path)
        self._default = strategy == "LeastAllocated" and self.resources == (("cpu", 1), ("memory", 1))

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if (node.free_pods > 0
                and (not pod.cpu or pod.cpu <= node.free_cpu)
                and (not pod.memory or pod.memory <= node.free_memory)
                and (not pod.ephemeral or pod.ephemeral <= node.free_ephemeral)
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
        if pod.ephemeral and pod.ephemeral > node.free_ephemeral:
            reasons.append(f"Insufficient {EPHEMERAL_STORAGE}")
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
        ephemeral = pod.ephemeral or -(1 << 62)
        for node in nodes:
            if (node.free_pods > 0 and cpu <= node.free_cpu and memory <= node.free_memory
                    and ephemeral <= node.free_ephemeral):
                yield node

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        # other resources live in per-node dicts, and a request error needs its Status
        if (pod.scalar or pod.error or not columns.exact
                or not within_limit(pod.cpu, pod.memory, pod.ephemeral)):
            return None
        mask = columns.free_pods[rows] > 0
        if pod.cpu:
            mask &= columns.free_cpu[rows] >= pod.cpu
        if pod.memory:
            mask &= columns.free_memory[rows] >= pod.memory
        if pod.ephemeral:
            mask &= columns.free_ephemeral[rows] >= pod.ephemeral
        return mask

    # -- score --

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        pairs = self.allocation.pairs(pod, node)
        if self.strategy == "LeastAllocated":
            return least_allocated_score(pairs)
        if self.strategy == "MostAllocated":
            return most_allocated_score(pairs)
        return requested_to_capacity_score(self._shape, pairs)

    def score_many(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        score = self.score
        return [score(pod, node) for node in nodes]

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        if self._default:  # the hot path: a dozen numpy calls
            if not columns.exact or min(pod.nz_cpu, pod.nz_memory) < 0 or not within_limit(pod.nz_cpu, pod.nz_memory):
                return None
            if columns.zero_allocatable("cpu") or columns.zero_allocatable("memory"):
                pairs = self.allocation.array_pairs(pod, columns, rows)
                return None if pairs is None else least_allocated_array(pairs, True)
            total = _least_allocated(columns.left_cpu[rows], columns.divisor_cpu[rows], pod.nz_cpu)
            total += _least_allocated(columns.left_memory[rows], columns.divisor_memory[rows], pod.nz_memory)
            total >>= 1  # floor division by 2: both resources count on every row
            return total
        pairs = self.allocation.array_pairs(pod, columns, rows)
        if pairs is None:
            return None
        if not pairs:
            return np.zeros(_count(rows), dtype=np.int64)
        masked = self.allocation.zero_allocatable(pairs)
        if self.strategy == "LeastAllocated":
            return least_allocated_array(pairs, masked)
        if self.strategy == "MostAllocated":
            return most_allocated_array(pairs, masked)
        return requested_to_capacity_array(self._shape, pairs)


def _least_allocated(left: np.ndarray, divisor: np.ndarray, request: int) -> np.ndarray:
    """One resource's LeastAllocated share on rows where allocatable > 0.

    ``(left - request) * 100 // allocatable``, clamped at 0 where the request does not fit
    (kube's ``requested > capacity``). Exact on the columns (see
    :mod:`podlife.scheduler.columns`): values stay far from int64's range and are
    non-negative. Works in place on fresh arrays: numpy's per-call overhead, not the
    arithmetic, is the cost here.
    """
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
