"""Stages: what simulated pods and nodes do, and when -- as data, not code.

Design
------
A stage file (YAML, one or more documents) lists *stages* in the spirit of KWOK's
Stage objects. Each stage says which objects it applies to (``selector``), how long
to wait (``delay``) and what happens then (``next``)::

    apiVersion: sim.podlife.io/v1alpha1
    kind: Stage
    metadata: {name: crash-loop}
    spec:
      resourceRef: {kind: Pod}
      selector:
        matchLabels: {app: crashy}
        matchExpressions:
        - {key: .spec.restartPolicy, operator: In, values: [Always]}
        - {key: '.status.containerStatuses[name=app].restartCount', operator: Lt, values: [5]}
      delay: {duration: 5s, jitter: 7s}
      next:
        action: crash
        exitCode: 1
        backoff: 10s
        event: {type: Warning, reason: SimulatedCrash, message: "the stage file says so"}

Unlike KWOK, ``next`` does not carry a status template. It names an *action*: the
lifecycle fact the stage injects into the node's pod-lifecycle state machine
(:mod:`podlife.node.machine`), which then writes every status with the kubelet's own
pure functions (:mod:`podlife.node.status`). A simulated pod therefore never shows a
status a real node would not write, and 10,000 pods cost no template rendering.

======================  ====================================================================
action                  the fact it injects
======================  ====================================================================
``create``              the node admits the pod (ContainerCreating)
``run``                 the containers started
``crash``               ContainerExited(exitCode, reason): non-zero, default 1 and ``Error``
``oom``                 ContainerExited(137, ``OOMKilled``)
``complete``            ContainerExited(0, ``Completed``)
``unready``             a readiness probe result False
``image-pull-error``    the image pull failed (then back-off, retry, ... for ever)
``delete``              the containers stopped, after the delay; the pod is then removed
``patch``               a status patch (``next.statusPatch``) and its event, if any
``evict``               PodEvicted(message, gracePeriod): the node evicts the pod (Failed, Evicted)
``init-complete``       ContainerExited(0, ``Completed``) of the init container that runs
``init-fail``           ContainerExited(exitCode, reason) of it: non-zero, default 1 and ``Error``
``heartbeat-stop``      (Node) the node stops renewing its Lease and writing its status
``usage``               no fact: what the selected containers use (``next.usage: {cpu, memory}``),
                        read when ``kubectl top`` asks (:func:`declared_usage`)
======================  ====================================================================

Besides its fact, a stage may declare an effect of its own: ``next.event`` (every Pod
action) is an Event the simulator records for the pod when the stage fires, and
``next.statusPatch`` (the ``patch`` action only, where it is required) is merged into
the pod's status (:func:`apply_status_patch`): conditions such as a readiness gate's,
or fields like ``reason``/``message``. The state machine's own fields (phase,
container statuses, IPs, the kubelet's conditions) are refused, so a patch can never
contradict the facts.

The moment each action's stages are looked at:

============================  ====================================================
moment                        actions (the first matching stage of each applies)
============================  ====================================================
pod bound to a sim node       ``create``
sandbox has its IP            ``image-pull-error`` (never runs) or else ``run``
each time containers start    ``crash``, ``oom``, ``complete`` (first to fire wins),
                              ``unready``, ``patch``, ``evict``
each time an init container   ``init-complete``, ``init-fail`` (first to fire wins;
starts (not a sidecar)        neither matching: it completes at once)
pod being deleted             ``delete``
node registered               ``heartbeat-stop``
============================  ====================================================

A lifecycle action (``create``, ``run``, ``delete``, ``init-complete``) with no
matching stage happens at once (``init-complete``: unless an ``init-fail`` stage
matches); a fault action, ``complete`` or ``patch`` with no matching stage does not
happen. Each action is looked at on its own: a ``crash`` stage and a ``complete``
stage that both select a run are both armed and the first to fire ends it, so
alternatives between actions are made by selectors that exclude each other.

Selection (:class:`Selector`) is matchLabels, matchAnnotations and matchExpressions.
An expression key that starts with ``.`` is a path into the object as the API shows
it at that moment (``.spec.restartPolicy``,
``.metadata.annotations["podlife.io/sim-duration"]``, ``.spec.containers[0].image``,
``.status.containerStatuses[0].lastState.terminated.exitCode``); ``[name=app]``
picks the list element whose ``name`` is ``app`` (any field works:
``.status.conditions[type=Ready].status``). Any other key is a label key, as in
Kubernetes. Operators are ``In``/``NotIn`` (values compare as text), ``Exists``/
``DoesNotExist``, and ``Gt``/``Lt`` as in Kubernetes' node selectors: exactly one
integer value, compared with the object's value read as an integer; a missing or
non-integer value matches neither, so ``Gt``/``Lt`` on a restart count or an exit
code selects a pod by its history.

Delays (:class:`Delay`) are ``duration``, or a uniform random time between
``duration`` and ``jitter`` when ``jitter`` is larger (the jitter is an upper bound,
as in KWOK), or read from an annotation with ``durationFrom: {annotation: KEY}``.
Durations are Go-style (``500ms``, ``2s``, ``1m30s``) or plain numbers of seconds.

When several stages of one action select an object, the first one in file order
applies, unless some of them have a ``weight``: then one of those with a weight is
drawn at random in proportion to it (KWOK's rule for stages that match together), so
a stage file can say "a third of these pods crash with 2, the rest with 1".

Delayed actions are kept in one :class:`Timers` heap with a single event-loop timer
armed for the earliest deadline, so 10,000 pods waiting for something cost 10,000
heap entries, not 10,000 sleeping tasks.

Errors in a stage file raise :class:`StageError` naming the file, the document, the
stage and the field, e.g. ``crash.yaml: document 1 (stage "crash-loop"):
spec.delay.duration: invalid duration "5 seconds" (examples: 500ms, 2s, 1m30s)``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import yaml

from ..machinery.patch import apply_merge_patch
from ..machinery.resources import parse
from ..machinery.timeutil import go_duration_seconds
from ..node.status import KUBELET_CONDITIONS

log = logging.getLogger(__name__)

API_VERSION = "sim.podlife.io/v1alpha1"
DEFAULT_STAGES_RESOURCE = "default-stages.yaml"

# Pod actions.
CREATE, RUN, COMPLETE, DELETE = "create", "run", "complete", "delete"
CRASH, OOM, IMAGE_PULL_ERROR, UNREADY = "crash", "oom", "image-pull-error", "unready"
PATCH, EVICT = "patch", "evict"
#: not a fact: a declaration of what containers use, for metrics.k8s.io (``kubectl top``)
USAGE = "usage"
#: the resources a ``usage`` stage may declare
USAGE_RESOURCES = ("cpu", "memory")
INIT_COMPLETE, INIT_FAIL = "init-complete", "init-fail"
# Node actions.
HEARTBEAT_STOP, NODE_PRESSURE = "heartbeat-stop", "node-pressure"
#: what a ``node-pressure`` stage may turn True
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")

POD, NODE = "Pod", "Node"
ACTIONS: dict[str, str] = {
    CREATE: POD, RUN: POD, COMPLETE: POD, DELETE: POD,
    CRASH: POD, OOM: POD, IMAGE_PULL_ERROR: POD, UNREADY: POD, PATCH: POD, EVICT: POD,
    INIT_COMPLETE: POD, INIT_FAIL: POD, USAGE: POD,
    HEARTBEAT_STOP: NODE, NODE_PRESSURE: NODE,
}
_BACKOFF = ("backoff", "maxBackoff")
#: The ``next`` fields each action accepts besides ``action``.
ACTION_PARAMS: dict[str, tuple[str, ...]] = {
    CREATE: (), RUN: (),
    COMPLETE: _BACKOFF,
    CRASH: ("exitCode", "reason", "message", "container", *_BACKOFF),
    OOM: ("container", *_BACKOFF),
    IMAGE_PULL_ERROR: ("container", "message", "pullDuration", *_BACKOFF),
    UNREADY: ("container",),
    PATCH: ("statusPatch",),
    EVICT: ("message", "gracePeriod"),
    INIT_COMPLETE: ("container",),
    INIT_FAIL: ("exitCode", "reason", "message", "container", *_BACKOFF),
    DELETE: ("exitCode",),
    USAGE: ("container", "usage"),
    HEARTBEAT_STOP: (),
    NODE_PRESSURE: ("condition",),
}
#: The ``next`` fields every Pod action accepts besides its own (:data:`ACTION_PARAMS`):
#: effects declared next to the fact, not parameters of it.
POD_EFFECT_PARAMS: tuple[str, ...] = ("event",)
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
#: Operators that compare integers (Kubernetes' node-selector ``Gt``/``Lt``).
INTEGER_OPERATORS = ("Gt", "Lt")
EVENT_TYPES = ("Normal", "Warning")
#: Top-level status fields the pod-lifecycle state machine derives from its facts; a
#: ``statusPatch`` that set them would be overwritten by the next write, or contradict it.
MACHINE_STATUS_FIELDS = ("phase", "containerStatuses", "initContainerStatuses",
                         "ephemeralContainerStatuses", "hostIP", "hostIPs", "podIP", "podIPs", "startTime")
CONDITION_STATUSES = ("True", "False", "Unknown")


class StageError(ValueError):
    """A stage file that cannot be used; the message says where and why."""


# --------------------------------------------------------------------------- durations

def parse_duration(value: Any) -> float:
    """Seconds from ``500ms``, ``2s``, ``1m30s``, ``1.5h`` or a plain number of seconds.

    Raises ValueError for anything else, including negative durations.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return float(text)
    seconds = go_duration_seconds(text)
    if seconds is None:
        raise ValueError(f"invalid duration {value!r} (examples: 500ms, 2s, 1m30s)")
    return seconds


# --------------------------------------------------------------------------- field paths

@dataclass(frozen=True)
class ListKey:
    """A path step that picks a list element by a field: ``[name=app]`` is ``ListKey("name", "app")``.

    Containers and conditions are lists keyed by ``name`` and ``type`` (Kubernetes'
    list-map keys), and their order is not something a stage should depend on: with
    several containers, ``.status.containerStatuses[name=app]`` says which one.
    """

    key: str
    value: str

    def __str__(self) -> str:
        return f"[{self.key}={self.value}]"


PathPart: TypeAlias = str | int | ListKey

_PATH_TOKEN = re.compile(r"""\.([A-Za-z0-9_$-]+)|\[\s*"((?:[^"\\]|\\.)*)"\s*\]|\[\s*'([^']*)'\s*\]|\[\s*(\d+)\s*\]"""
                         r"""|\[\s*([A-Za-z0-9_$-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\]\s"']+))\s*\]""")


def parse_path(path: str) -> tuple[PathPart, ...]:
    """``.metadata.annotations["a/b"]`` -> ``("metadata", "annotations", "a/b")``.

    ``[3]`` is a list index and ``[name=app]`` (or ``[name="app"]``) a :class:`ListKey`.
    """
    parts: list[PathPart] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f'invalid path {path!r} at {path[pos:]!r} (examples: .spec.restartPolicy, '
                             f'.metadata.annotations["example.com/key"], .spec.containers[0].image, '
                             f'.status.containerStatuses[name=app].restartCount)')
        name, dq, sq, index, list_key, key_dq, key_bare = m.groups()
        if index is not None:
            parts.append(int(index))
        elif list_key is not None:
            parts.append(ListKey(list_key, key_dq.replace('\\"', '"') if key_dq is not None else key_bare))
        else:
            parts.append(name if name is not None else (dq.replace('\\"', '"') if dq is not None else sq))
        pos = m.end()
    if not parts:
        raise ValueError(f"invalid path {path!r}")
    return tuple(parts)


def lookup(obj: Any, path: tuple[PathPart, ...]) -> Any:
    """The value at ``path``, or None when any step is missing."""
    cur = obj
    for part in path:
        if isinstance(part, str):
            # ``type() is dict`` first: objects are plain dicts, and an ABC isinstance
            # check per path step shows in profiles of 10,000 pods.
            if type(cur) is not dict and not isinstance(cur, Mapping):
                return None
            cur = cur.get(part)
        elif isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return None
            cur = cur[part]
        else:
            cur = _keyed_item(cur, part)
        if cur is None:
            return None
    return cur


def _keyed_item(items: Any, key: ListKey) -> Any:
    """The first element of the list ``items`` whose ``key.key`` field reads as ``key.value``; None if none."""
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, Mapping):
            value = item.get(key.key)
            if value is not None and _as_text(value) == key.value:
                return item
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


def as_integer(value: Any) -> int | None:
    """``value`` as an integer for ``Gt``/``Lt``: an int, or text that is one (``"3"``, ``"-1"``); else None.

    As strict as Kubernetes' ParseInt for node-selector values: no floats, booleans,
    spaces or ``1_000``, so a value that is not clearly a number never matches.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value):
        return int(value)
    return None


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry: a label key or a ``.path``, an operator and values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    path: tuple[PathPart, ...] = ()
    #: the integer of ``Gt``/``Lt`` (``values[0]``), parsed once
    bound: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.operator in INTEGER_OPERATORS:
            bound = as_integer(self.values[0]) if len(self.values) == 1 else None
            if bound is None:
                raise ValueError(f"operator {self.operator} takes exactly one integer value, not {list(self.values)}")
            object.__setattr__(self, "bound", bound)

    def value_of(self, obj: Mapping[str, Any]) -> Any:
        if self.path:
            return lookup(obj, self.path)
        return ((obj.get("metadata") or {}).get("labels") or {}).get(self.key)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        value = self.value_of(obj)
        op = self.operator
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op == "Gt" or op == "Lt":
            have = as_integer(value)
            if have is None or self.bound is None:
                return False
            return have > self.bound if op == "Gt" else have < self.bound
        found = value is not None and _as_text(value) in self.values
        return found if op == "In" else not found


@dataclass(frozen=True)
class Selector:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_annotations: Mapping[str, str] = field(default_factory=dict)
    expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the selector selects everything (no criteria at all)."""
        return not (self.match_labels or self.match_annotations or self.expressions)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        # Plain loops, not any()/all() over generators: this runs several times per
        # simulated pod.
        meta = obj.get("metadata") or {}
        if self.match_labels:
            labels = meta.get("labels") or {}
            for k, v in self.match_labels.items():
                if labels.get(k) != v:
                    return False
        if self.match_annotations:
            annotations = meta.get("annotations") or {}
            for k, v in self.match_annotations.items():
                if annotations.get(k) != v:
                    return False
        for req in self.expressions:
            if not req.matches(obj):
                return False
        return True


# --------------------------------------------------------------------------- delays


@dataclass(frozen=True)
class Delay:
    duration: float = 0.0
    jitter: float = 0.0
    duration_from: str | None = None  # an annotation key

    @property
    def zero(self) -> bool:
        return self.duration == 0 and self.jitter == 0 and self.duration_from is None

    @property
    def fixed(self) -> bool:
        """True when every object gets the same delay (no jitter above it, nothing read from the object)."""
        return self.jitter <= self.duration and self.duration_from is None

    def seconds(self, obj: Mapping[str, Any], rng: random.Random) -> float | None:
        """The delay for ``obj``; None when ``durationFrom`` names an unusable value."""
        base = self.duration
        if self.duration_from is not None:
            raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(self.duration_from)
            if raw is not None:
                try:
                    base = parse_duration(raw)
                except ValueError:
                    return None
        if self.jitter > base:  # the jitter is the upper bound of the delay
            base = rng.uniform(base, self.jitter)
        return base


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class StageEvent:
    """``next.event``: an Event to record for the pod when its stage fires (type Normal or Warning)."""

    type: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Next:
    """What a stage does: an action and its parameters (see :data:`ACTION_PARAMS`), and its declared effects.

    ``event`` (any Pod action) is recorded when the stage fires. ``status_patch`` (the
    ``patch`` action, where it is set) is read-only: mappings are ``MappingProxyType``
    and lists tuples, so one parsed stage can be shared by 10,000 pods without one of
    them changing it for the others; :func:`apply_status_patch` applies it and
    :func:`thaw` makes a plain JSON copy. It takes no part in hashing.
    """

    action: str
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    container: str | None = None
    backoff: float | None = None
    max_backoff: float | None = None
    pull_duration: float | None = None
    event: StageEvent | None = None
    status_patch: Mapping[str, Any] | None = field(default=None, hash=False)
    #: ``evict``: the seconds the containers get to stop (None: the pod's own grace period)
    grace_period: float | None = None
    #: ``node-pressure``: the condition that turns True (MemoryPressure, DiskPressure, PIDPressure)
    condition: str | None = None
    #: ``usage``: what each selected container uses, ``{"cpu": "250m", "memory": "64Mi"}`` (read-only)
    usage: Mapping[str, str] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Stage:
    name: str
    resource: str
    selector: Selector
    delay: Delay
    next: Next
    #: relative chance among the weighted stages of one action that select an object (0: not drawn)
    weight: int = 0

    @property
    def action(self) -> str:
        return self.next.action


@dataclass(frozen=True)
class Match:
    """A stage chosen for one object, with the delay drawn for it."""

    stage: Stage
    delay: float


@dataclass(frozen=True)
class _Candidate:
    """A stage prepared for :meth:`StageSet.first`: what can be decided once is decided once.

    ``selector`` is None when the stage selects everything; ``required`` lists the
    labels and annotations (``("labels" | "annotations", key)``) it cannot select an
    object without, checked before the selector itself; ``fixed`` is the stage's
    :class:`Match` when its delay is the same for every object. The simulator asks
    for seven actions per pod, 10,000 pods at a time, and most stages are opt-in by
    an annotation (see ``default-stages.yaml``): most answers then cost a dict lookup.
    """

    stage: Stage
    selector: Selector | None
    required: tuple[tuple[str, str], ...]
    fixed: Match | None


class StageSet:
    """Stages indexed by action, in file order."""

    def __init__(self, stages: Iterable[Stage] = (), *, source: str = "", seed: int | None = None) -> None:
        self.stages = list(stages)
        self.source = source
        self.rng = random.Random(seed)
        self._by_action: dict[str, list[Stage]] = {}
        for stage in self.stages:
            self._by_action.setdefault(stage.action, []).append(stage)
        self._candidates: dict[str, tuple[_Candidate, ...]] = {
            action: tuple(_candidate(s) for s in stages) for action, stages in self._by_action.items()}
        self._weighted = {action for action, stages in self._by_action.items() if any(s.weight for s in stages)}

    def __len__(self) -> int:
        return len(self.stages)

    def has(self, action: str) -> bool:
        return action in self._by_action

    def first(self, action: str, obj: Mapping[str, Any], container: str | None = None) -> Match | None:
        """The stage of ``action`` that applies to ``obj`` (with its delay), if any.

        The first selecting stage, or, when some selecting stages are weighted, one of
        those drawn by weight. ``container``: only stages that name no container or
        this one (an init container's stages, looked up for the one that started).
        """
        if action in self._weighted:
            return self._drawn(action, obj, container)
        for candidate in self._candidates.get(action, ()):
            if container is not None and candidate.stage.next.container not in (None, container):
                continue
            match = self._match(candidate, obj)
            if match is not None:
                return match
        return None

    def _drawn(self, action: str, obj: Mapping[str, Any], container: str | None = None) -> Match | None:
        candidates = [c for c in self._candidates[action]
                      if container is None or c.stage.next.container in (None, container)]
        matches = [m for m in (self._match(c, obj) for c in candidates) if m is not None]
        weighted = [m for m in matches if m.stage.weight]
        if not weighted:
            return matches[0] if matches else None
        return self.rng.choices(weighted, weights=[m.stage.weight for m in weighted])[0]

    def _match(self, candidate: _Candidate, obj: Mapping[str, Any]) -> Match | None:
        """``candidate``'s match for ``obj``, or None when it does not select it (or its delay is unusable)."""
        if candidate.selector is not None:
            if candidate.required and _lacks(obj, candidate.required):
                return None
            if not candidate.selector.matches(obj):
                return None
        if candidate.fixed is not None:
            return candidate.fixed
        stage = candidate.stage
        delay = stage.delay.seconds(obj, self.rng)
        if delay is None:
            meta = obj.get("metadata") or {}
            log.warning("stage %s: %s/%s has an invalid %s annotation; stage skipped", stage.name,
                        meta.get("namespace", ""), meta.get("name"), stage.delay.duration_from)
        return None if delay is None else Match(stage, delay)


def _candidate(stage: Stage) -> _Candidate:
    selector = stage.selector
    return _Candidate(stage, None if selector.empty else selector, _required_keys(selector),
                      Match(stage, stage.delay.duration) if stage.delay.fixed else None)


def _required_keys(selector: Selector) -> tuple[tuple[str, str], ...]:
    """The labels and annotations ``selector`` matches nothing without (``In``, ``Exists``, ``Gt``/``Lt``, match maps)."""
    keys = [("labels", k) for k in selector.match_labels]
    keys += [("annotations", k) for k in selector.match_annotations]
    for req in selector.expressions:
        if req.operator not in ("In", "Exists", "Gt", "Lt"):  # those that a missing value never satisfies
            continue
        if not req.path:
            keys.append(("labels", req.key))
        elif (len(req.path) == 3 and req.path[0] == "metadata" and req.path[1] in ("labels", "annotations")
              and isinstance(req.path[2], str)):
            keys.append((str(req.path[1]), req.path[2]))
    return tuple(keys)


def _lacks(obj: Mapping[str, Any], required: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``obj`` lacks one of the ``required`` labels or annotations."""
    meta = obj.get("metadata")
    if type(meta) is not dict and not isinstance(meta, Mapping):  # type() first: an ABC check is slow
        return True
    for where, key in required:
        values = meta.get(where)
        if (type(values) is not dict and not isinstance(values, Mapping)) or values.get(key) is None:
            return True
    return False


# --------------------------------------------------------------------------- status patches


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON value: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain (dict/list) deep copy of a value :func:`freeze` made, ready for JSON or for changing."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def apply_status_patch(status: Mapping[str, Any], patch: Mapping[str, Any], now: str) -> dict[str, Any]:
    """``status`` with ``patch`` (a ``next.statusPatch``) merged in; neither argument is changed.

    The patch is a JSON merge patch (RFC 7386: mappings merge, ``null`` removes a
    field, other values replace), except ``conditions``, which merge by ``type`` as a
    strategic merge patch does for pod conditions: a listed condition replaces the one
    of its type, or is added after the others, and the other conditions stay. A
    condition without ``lastTransitionTime`` keeps the old one when its status did not
    change and gets ``now`` otherwise, as a condition's times work everywhere else.
    """
    rest = {k: thaw(v) for k, v in patch.items() if k != "conditions"}
    out: dict[str, Any] = apply_merge_patch(dict(status), rest, take_patch=True)  # copies what it changes
    if "conditions" in patch:
        out["conditions"] = _merged_conditions(status.get("conditions") or [], patch["conditions"] or (), now)
    return out


def _merged_conditions(conditions: Iterable[Mapping[str, Any]], patch: Iterable[Mapping[str, Any]],
                       now: str) -> list[dict[str, Any]]:
    out = [dict(c) for c in conditions]
    index = {c.get("type"): i for i, c in enumerate(out)}
    for cond in patch:
        new = thaw(cond)
        i = index.get(new["type"])
        old = out[i] if i is not None else None
        if "lastTransitionTime" not in new:
            keep = old is not None and old.get("status") == new.get("status") and old.get("lastTransitionTime")
            new["lastTransitionTime"] = keep or now
        if i is None:
            index[new["type"]] = len(out)
            out.append(new)
        else:
            out[i] = new
    return out


# --------------------------------------------------------------------------- parsing


class _Where:
    """Error context: file, document, stage name."""

    def __init__(self, source: str, doc: int, item: int | None = None) -> None:
        self.source = source
        self.doc = doc
        self.item = item
        self.stage = ""

    def error(self, path: str, problem: str) -> StageError:
        what = f"document {self.doc}" + (f", items[{self.item}]" if self.item is not None else "")
        what += f' (stage "{self.stage}")' if self.stage else ""
        return StageError(f"{self.source}: {what}: {path}: {problem}" if path else f"{self.source}: {what}: {problem}")


def _mapping(value: Any, where: _Where, path: str, known: Iterable[str], *,
             also: Iterable[str] = (), also_note: str = "") -> dict[str, Any]:
    """``value`` as a mapping whose keys are all ``known`` or ``also``.

    ``also`` are fields a whole family shares (``event`` on every Pod action); an error
    lists them apart, after ``also_note``, so the fields of the one action stay readable.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(path, f"must be a mapping, not {type(value).__name__}")
    allowed, common = list(known), list(also)
    for key in value:
        if key not in allowed and key not in common:
            more = f"; {also_note} {', '.join(common)}" if common else ""
            raise where.error(path, f'unknown field "{key}" (known: {", ".join(allowed) or "none"}){more}')
    return value


def _string_map(value: Any, where: _Where, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(path, "must be a mapping of strings to strings")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
            raise where.error(f"{path}.{k}", "keys and values must be strings")
        out[k] = _as_text(v)
    return out


def _duration(value: Any, where: _Where, path: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise where.error(path, str(exc)) from None


def _requirement(raw: Any, where: _Where, path: str) -> Requirement:
    raw = _mapping(raw, where, path, ("key", "operator", "values"))
    key, op = raw.get("key"), raw.get("operator")
    if not isinstance(key, str) or not key:
        raise where.error(f"{path}.key", "required (a label key or a .path such as .spec.restartPolicy)")
    if op not in OPERATORS:
        raise where.error(f"{path}.operator", f"must be one of {', '.join(OPERATORS)}, not {op!r}")
    values = raw.get("values") or []
    if not isinstance(values, list):
        raise where.error(f"{path}.values", "must be a list")
    if op in ("In", "NotIn") and not values:
        raise where.error(f"{path}.values", f"required for operator {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise where.error(f"{path}.values", f"must be empty for operator {op}")
    if op in INTEGER_OPERATORS:
        _integer_values(values, op, where, f"{path}.values")
    parsed: tuple[PathPart, ...] = ()
    if key.startswith("."):
        try:
            parsed = parse_path(key)
        except ValueError as exc:
            raise where.error(f"{path}.key", str(exc)) from None
    return Requirement(key, op, tuple(_as_text(v) for v in values), parsed)


def _integer_values(values: list[Any], op: str, where: _Where, path: str) -> None:
    """``Gt``/``Lt`` take one integer, as Kubernetes' node selectors do: a list of them would mean nothing."""
    if len(values) != 1:
        raise where.error(path, f"operator {op} takes exactly one value, an integer (e.g. [1]), not {values!r}")
    if as_integer(values[0]) is None:
        raise where.error(f"{path}[0]", f"operator {op} compares integers: must be an integer, not {values[0]!r}")


def _selector(raw: Any, where: _Where) -> Selector:
    raw = _mapping(raw, where, "spec.selector", ("matchLabels", "matchAnnotations", "matchExpressions"))
    exprs = raw.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise where.error("spec.selector.matchExpressions", "must be a list")
    return Selector(
        _string_map(raw.get("matchLabels"), where, "spec.selector.matchLabels"),
        _string_map(raw.get("matchAnnotations"), where, "spec.selector.matchAnnotations"),
        tuple(_requirement(e, where, f"spec.selector.matchExpressions[{i}]") for i, e in enumerate(exprs)),
    )


def _delay(raw: Any, where: _Where) -> Delay:
    raw = _mapping(raw, where, "spec.delay", ("duration", "jitter", "durationFrom"))
    duration = _duration(raw.get("duration", 0), where, "spec.delay.duration")
    jitter = _duration(raw.get("jitter", 0), where, "spec.delay.jitter")
    source = None
    if "durationFrom" in raw:
        frm = _mapping(raw["durationFrom"], where, "spec.delay.durationFrom", ("annotation",))
        source = frm.get("annotation")
        if not isinstance(source, str) or not source:
            raise where.error("spec.delay.durationFrom.annotation", "required: the annotation holding the duration")
    return Delay(duration, jitter, source)


_EVENT_REASON = re.compile(r"\S{1,128}")


def _event(raw: Any, where: _Where) -> StageEvent:
    path = "spec.next.event"
    raw = _mapping(raw, where, path, ("type", "reason", "message"))
    type_, reason, message = raw.get("type"), raw.get("reason"), raw.get("message", "")
    if type_ not in EVENT_TYPES:
        raise where.error(f"{path}.type", f"must be one of {', '.join(EVENT_TYPES)}, not {type_!r}")
    if not isinstance(reason, str) or not reason:
        raise where.error(f"{path}.reason", "required: a short UpperCamelCase word such as SimulatedFault")
    if not _EVENT_REASON.fullmatch(reason):
        raise where.error(f"{path}.reason", f"must be one word of at most 128 characters, not {reason!r}")
    if not isinstance(message, str):
        raise where.error(f"{path}.message", "must be a string")
    return StageEvent(type_, reason, message)


def _json_value(value: Any, where: _Where, path: str) -> None:
    """Refuse what a status cannot hold: mappings with non-text keys, YAML dates and other non-JSON values."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise where.error(path, f"keys must be strings, not {k!r}")
            _json_value(v, where, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _json_value(v, where, f"{path}[{i}]")
    elif value is not None and not isinstance(value, (str, int, float)):  # bool is an int
        raise where.error(path, f"must be a JSON value (quote it), not {type(value).__name__} {value!r}")


_CONDITION_FIELDS = ("type", "status", "reason", "message", "lastProbeTime", "lastTransitionTime", "observedGeneration")


def _condition(raw: Any, where: _Where, path: str) -> None:
    cond = _mapping(raw, where, path, _CONDITION_FIELDS)
    type_, status = cond.get("type"), cond.get("status")
    if not isinstance(type_, str) or not type_:
        raise where.error(f"{path}.type", "required: the condition type, e.g. example.com/gate")
    if type_ in KUBELET_CONDITIONS:
        raise where.error(f"{path}.type", f"{type_} is the node's own condition, computed from the containers "
                                          f"(Ready also from spec.readinessGates); patch a gate's condition instead")
    if status not in CONDITION_STATUSES:
        hint = " (quote it: YAML reads True and False as booleans)" if isinstance(status, bool) else ""
        raise where.error(f"{path}.status", f'must be "True", "False" or "Unknown", not {status!r}{hint}')
    for text_field in ("reason", "message", "lastProbeTime", "lastTransitionTime"):
        if cond.get(text_field) is not None and not isinstance(cond[text_field], str):
            raise where.error(f"{path}.{text_field}", "must be a string")


def _status_patch(raw: Any, where: _Where) -> Mapping[str, Any]:
    """``next.statusPatch``, checked and frozen: a merge patch of status that leaves the state machine's fields alone."""
    path = "spec.next.statusPatch"
    if not isinstance(raw, dict) or not raw:
        raise where.error(path, "must be a non-empty mapping: a merge patch of the pod's status, "
                                "e.g. {conditions: [{type: example.com/gate, status: \"True\"}]}")
    _json_value(raw, where, path)
    for key in raw:
        if key in MACHINE_STATUS_FIELDS:
            raise where.error(f"{path}.{key}", f"{key} is written by the node from its lifecycle facts; "
                                               f"a status patch may set conditions and other fields")
    conditions = raw.get("conditions")
    if conditions is not None:
        if not isinstance(conditions, list):
            raise where.error(f"{path}.conditions", "must be a list of conditions")
        seen: set[str] = set()
        for i, cond in enumerate(conditions):
            _condition(cond, where, f"{path}.conditions[{i}]")
            if cond["type"] in seen:
                raise where.error(f"{path}.conditions[{i}].type", f"condition {cond['type']} is listed twice")
            seen.add(cond["type"])
    frozen: Mapping[str, Any] = freeze(raw)
    return frozen


def _next(raw: Any, where: _Where, resource: str) -> Next:
    if not isinstance(raw, dict) or "action" not in raw:
        raise where.error("spec.next.action", f"required; one of {', '.join(ACTIONS)}")
    action = raw["action"]
    if action not in ACTIONS:
        raise where.error("spec.next.action", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if ACTIONS[action] != resource:
        raise where.error("spec.next.action", f"action {action!r} applies to {ACTIONS[action]}s, "
                                              f"but spec.resourceRef.kind is {resource}")
    if "usage" in raw and action != USAGE:
        raise where.error("spec.next.usage", f"only action {USAGE} declares usage, not {action}")
    if action == USAGE and "event" in raw:
        raise where.error("spec.next.event", f"action {USAGE} is a declaration, not an event: it records none")
    if "statusPatch" in raw and action != PATCH:
        raise where.error("spec.next.statusPatch", f"only action {PATCH} takes a status patch, not {action}")
    if "event" in raw and resource != POD:
        raise where.error("spec.next.event", f"only Pod actions record events; {action} is a {resource} action")
    raw = _mapping(raw, where, "spec.next", ("action", *ACTION_PARAMS[action]),
                   also=POD_EFFECT_PARAMS if resource == POD else (), also_note="every Pod action also takes")
    if action == PATCH and "statusPatch" not in raw:
        raise where.error("spec.next.statusPatch", f"required for action {PATCH}: the merge patch of the pod's "
                                                   f"status to apply")
    exit_code = raw.get("exitCode")
    if exit_code is not None and (not isinstance(exit_code, int) or isinstance(exit_code, bool)
                                  or not 0 <= exit_code <= 255):
        raise where.error("spec.next.exitCode", f"must be an integer from 0 to 255, not {exit_code!r}")
    if action == CRASH and exit_code == 0:
        raise where.error("spec.next.exitCode", "a crash exits non-zero (use action: complete for exit code 0)")
    if action == INIT_FAIL and exit_code == 0:
        raise where.error("spec.next.exitCode", "a failed init container exits non-zero "
                                                "(use action: init-complete for exit code 0)")
    for text_field in ("reason", "message", "container"):
        if text_field in raw and not isinstance(raw[text_field], str):
            raise where.error(f"spec.next.{text_field}", "must be a string")

    def opt_duration(name: str) -> float | None:
        return _duration(raw[name], where, f"spec.next.{name}") if name in raw else None

    if action == NODE_PRESSURE and raw.get("condition") not in PRESSURE_CONDITIONS:
        raise where.error("spec.next.condition", f"required for action {NODE_PRESSURE}: one of "
                                                 f"{', '.join(PRESSURE_CONDITIONS)}, not {raw.get('condition')!r}")

    nxt = Next(action, exit_code, raw.get("reason"), raw.get("message"), raw.get("container"),
               opt_duration("backoff"), opt_duration("maxBackoff"), opt_duration("pullDuration"),
               _event(raw["event"], where) if "event" in raw else None,
               _status_patch(raw["statusPatch"], where) if "statusPatch" in raw else None,
               opt_duration("gracePeriod"), raw.get("condition"),
               _usage(raw.get("usage"), where) if action == USAGE else None)
    if nxt.backoff is not None and nxt.max_backoff is not None and nxt.max_backoff < nxt.backoff:
        raise where.error("spec.next.maxBackoff", "must not be less than spec.next.backoff")
    return nxt


def _usage(raw: Any, where: _Where) -> Mapping[str, str]:
    """``next.usage`` of a ``usage`` stage: cpu and/or memory, each a Kubernetes quantity (kept as written)."""
    path = "spec.next.usage"
    if not isinstance(raw, dict) or not raw:
        raise where.error(path, f"required for action {USAGE}: what each container uses, e.g. {{cpu: 250m, memory: 64Mi}}")
    raw = _mapping(raw, where, path, USAGE_RESOURCES)
    for name, value in raw.items():
        quantity = parse(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
        if quantity is None or quantity.value < 0:
            raise where.error(f"{path}.{name}", f"must be a quantity such as 250m, 1 or 64Mi, not {value!r}")
    frozen: Mapping[str, str] = MappingProxyType({k: _as_text(v) for k, v in raw.items()})
    return frozen


def declared_usage(stages: StageSet, pod: Mapping[str, Any], container: str) -> Mapping[str, str] | None:
    """What the first ``usage`` stage selecting ``pod`` (and naming ``container`` or no container) declares."""
    match = stages.first(USAGE, pod, container)
    return None if match is None else match.stage.next.usage


def _stage(doc: dict[str, Any], where: _Where) -> Stage:
    doc = _mapping(doc, where, "", ("apiVersion", "kind", "metadata", "spec"))
    api_version = doc.get("apiVersion", API_VERSION)
    if isinstance(api_version, str) and api_version.startswith("kwok.x-k8s.io"):
        raise where.error("apiVersion", f"KWOK stages ({api_version}) are not supported: podlife stages name "
                                        f"an action in spec.next.action instead of a status template")
    if api_version != API_VERSION:
        raise where.error("apiVersion", f"must be {API_VERSION}, not {api_version!r}")
    meta = _mapping(doc.get("metadata"), where, "metadata", ("name", "labels", "annotations"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise where.error("metadata.name", "required")
    where.stage = name
    spec = _mapping(doc.get("spec"), where, "spec", ("resourceRef", "selector", "delay", "next", "weight"))
    ref = _mapping(spec.get("resourceRef"), where, "spec.resourceRef", ("apiGroup", "kind"))
    resource = ref.get("kind", POD)
    if resource not in (POD, NODE):
        raise where.error("spec.resourceRef.kind", f"must be Pod or Node, not {resource!r}")
    weight = spec.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        raise where.error("spec.weight", f"must be a whole number, 0 or more, not {weight!r}")
    if (spec.get("next") or {}).get("action") == USAGE:
        for key in ("delay", "weight"):  # a level read at any moment: a drawn delay or stage would make it flap
            if key in spec:
                raise where.error(f"spec.{key}", f"a {USAGE} stage declares what containers use at every moment; "
                                                 f"it takes no {key}")
    return Stage(name, resource, _selector(spec.get("selector"), where), _delay(spec.get("delay"), where),
                 _next(spec.get("next"), where, resource), weight)


def parse_stages(text: str, source: str = "<stages>", *, seed: int | None = None) -> StageSet:
    """Stages from YAML text: Stage documents, or ``kind: StageList`` with ``items``."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise StageError(f"{source}: not valid YAML: {exc}") from None
    stages: list[Stage] = []
    names: set[str] = set()
    for n, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = _Where(source, n)
        if not isinstance(doc, dict):
            raise where.error("", f"a stage must be a mapping, not {type(doc).__name__}")
        kind = doc.get("kind")
        if kind == "StageList":
            items = doc.get("items")
            if not isinstance(items, list):
                raise where.error("items", "must be a list of Stage objects")
            found = [_item(item, where, i) for i, item in enumerate(items)]
        elif kind == "Stage":
            found = [_stage(doc, where)]
        else:
            raise where.error("kind", f"must be Stage or StageList, not {kind!r}")
        for stage in found:
            if stage.name in names:
                raise StageError(f'{source}: document {n}: duplicate stage name "{stage.name}"')
            names.add(stage.name)
        stages += found
    return StageSet(stages, source=source, seed=seed)


def _item(item: Any, parent: _Where, index: int) -> Stage:
    where = _Where(parent.source, parent.doc, index)
    if not isinstance(item, dict) or item.get("kind", "Stage") != "Stage":
        raise where.error("", "must be a Stage")
    return _stage({"apiVersion": API_VERSION, "kind": "Stage", **item}, where)


def load_stages(path: Path | str | None = None, *, seed: int | None = None) -> StageSet:
    """The stages of ``path``, or the built-in defaults (``default-stages.yaml``) when None."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_STAGES_RESOURCE).read_text()
        return parse_stages(text, DEFAULT_STAGES_RESOURCE, seed=seed)
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise StageError(f"{p}: cannot read the stage file: {exc.strerror or exc}") from None
    return parse_stages(text, str(p), seed=seed)


# --------------------------------------------------------------------------- timers


class Timers:
    """Delayed callbacks in one heap, with one event-loop timer armed for the earliest.

    Callbacks run on the loop and must be cheap (enqueue work). There is no
    cancellation: callers pass a token (a generation number) and ignore stale calls.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, fn, args))
        if self._armed_at is None or when < self._armed_at:
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_at = None
        if self._heap and not self._closed:
            self._armed_at = self._heap[0][0]
            self._handle = loop.call_at(self._armed_at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = None
        loop = asyncio.get_running_loop()
        now = loop.time() + 1e-3  # what is due within a millisecond runs now
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, fn, args = heapq.heappop(heap)
            try:
                fn(*args)
            except Exception:
                log.exception("timer callback failed")
        self._arm(loop)

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._heap.clear()
