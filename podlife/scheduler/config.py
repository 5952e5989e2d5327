"""``KubeSchedulerConfiguration`` files: read, default, validate, and turn into profiles.

Design
------
``podlife up --scheduler-config FILE`` reads kube-scheduler's own configuration
format (``apiVersion: kubescheduler.config.k8s.io/v1``, YAML or JSON), so a file
written for kube-scheduler works unchanged and a mistake is reported the way
kube-scheduler reports it. The work is done in kube's order:

1. **Strict decoding** (:func:`parse_config`): the document must be a mapping of
   the v1 kind; every field must be one the v1 types have, with the right JSON
   type (kube decodes config files strictly: an unknown or misspelt field is an
   error, not silently ignored); a YAML key given twice is refused too.
2. **Defaulting**, as ``SetDefaults_KubeSchedulerConfiguration``: one profile
   named ``default-scheduler`` when there are none (or one without a name),
   backoff 1 s / 10 s, parallelism 16, ``percentageOfNodesToScore`` 0
   (adaptive), each ``*Args`` kind's defaults; and each profile's ``plugins``
   merged into the default plugin set the way kube's ``mergePluginSet`` does
   (the defaults are all ``multiPoint``; ``disabled`` removes defaults, ``"*"``
   all of them; an ``enabled`` entry naming a default replaces it in place,
   others are appended).
3. **Validation**, as kube's ``ValidateKubeSchedulerConfiguration`` and the
   args validators (same field paths and wording: ``profiles[1].schedulerName:
   Duplicate value: "x"``), then what kube's framework refuses when it builds a
   profile (an unknown plugin, a plugin at a point it does not extend, a plugin
   named twice at one point, no or several queue sorts, no binder). Every
   problem is collected; :class:`SchedulerConfigError` carries them all.
4. **Resolution** into a plugin set per profile: the ``multiPoint`` expansion
   of kube's framework (a multiPoint plugin goes to every point its class
   extends unless disabled there; a plugin also enabled at a specific point
   keeps that entry's place and weight), score weights (the specific point's,
   else multiPoint's, 0 meaning 1), then
   :func:`~podlife.scheduler.profile.build_profile` makes the plugin instances
   (one per name, shared between points).

podlife runs PreFilter as part of a Filter plugin and PreScore as part of a
Score plugin, so the ``filter`` and ``score`` lists decide; ``preFilter`` and
``preScore`` entries are checked the same way but do not move plugins.
QueueSort and Bind are the scheduler's own (PrioritySort, DefaultBinder): they
can be configured (and must be present, as in kube) but not replaced.
VolumeBinding is built into the scheduler: its name is accepted, its
``bindTimeoutSeconds`` used, and it always runs for pods with claims.
``leaderElection`` is checked here and honoured by whoever runs the scheduler
(:func:`podlife.components_cli.scheduler_election`: the Lease it schedules under);
``clientConnection`` and the profiling switches are accepted and checked; they change
nothing.

Reads: one file. Writes: nothing. The result, :class:`SchedulerConfig`, gives
the :class:`~podlife.scheduler.scheduler.Scheduler`'s keyword arguments
(:meth:`SchedulerConfig.scheduler_options`); :func:`profiles_from_file` is the
short way for the benchmarks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .plugins import Plugin
from .profile import DEFAULT_SCHEDULER_NAME, Profile, build_profile
from .registry import BUILT_IN, DEFAULT_PLUGINS, REGISTRY, implements, new_plugin

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_PARALLELISM = 16
DEFAULT_POD_INITIAL_BACKOFF_SECONDS = 1
DEFAULT_POD_MAX_BACKOFF_SECONDS = 10
DEFAULT_BIND_TIMEOUT_SECONDS = 600
MAX_CUSTOM_PRIORITY_SCORE = 10
#: kube's MaxTotalScore (int64) and MaxNodeScore: the sum of weighted scores must fit
MAX_TOTAL_SCORE = (1 << 63) - 1
MAX_NODE_SCORE = 100
INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)

#: the extension points of ``profiles[].plugins``, in kube's order, with the Go interface names its messages use
EXTENSION_POINTS: dict[str, str] = {
    "preEnqueue": "PreEnqueuePlugin", "queueSort": "QueueSortPlugin", "preFilter": "PreFilterPlugin",
    "filter": "FilterPlugin", "postFilter": "PostFilterPlugin", "preScore": "PreScorePlugin",
    "score": "ScorePlugin", "reserve": "ReservePlugin", "permit": "PermitPlugin", "preBind": "PreBindPlugin",
    "bind": "BindPlugin", "postBind": "PostBindPlugin",
}
MULTI_POINT = "multiPoint"


class SchedulerConfigError(ValueError):
    """A scheduler configuration that cannot be used; ``errors`` holds every problem, one message each."""

    def __init__(self, errors: Sequence[str], source: str = "") -> None:
        self.errors = list(errors)
        self.source = source
        where = f" {source}" if source else ""
        super().__init__(f"invalid scheduler configuration{where}:\n" + "\n".join(f"  {e}" for e in self.errors))


# ---- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileConfig:
    """One profile after defaulting, validation and multiPoint expansion: what runs where."""

    scheduler_name: str
    #: plugin names at each podlife extension point, in order (built-ins included)
    filters: tuple[str, ...]
    scores: tuple[tuple[str, int], ...]
    post_filters: tuple[str, ...]
    #: the defaulted ``pluginConfig`` args of the plugins this profile runs, by plugin name
    args: Mapping[str, Mapping[str, Any]]
    percentage_of_nodes_to_score: int | None = None

    def build(self) -> Profile:
        """New plugin instances for this profile (each call: fresh instances, for one scheduler)."""
        return build_profile(self.scheduler_name, filters=self.filters, scores=self.scores,
                             post_filters=self.post_filters, args=self.args,
                             percentage_of_nodes_to_score=self.percentage_of_nodes_to_score)


@dataclass(frozen=True)
class SchedulerConfig:
    """A validated ``KubeSchedulerConfiguration``."""

    profiles: tuple[ProfileConfig, ...]
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: int = DEFAULT_POD_INITIAL_BACKOFF_SECONDS
    pod_max_backoff_seconds: int = DEFAULT_POD_MAX_BACKOFF_SECONDS
    parallelism: int = DEFAULT_PARALLELISM
    #: VolumeBinding's ``bindTimeoutSeconds`` (one VolumeBinding serves every profile)
    bind_timeout_seconds: int = DEFAULT_BIND_TIMEOUT_SECONDS
    source: str = ""
    #: the document as given (for logs and debugging)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def build_profiles(self) -> list[Profile]:
        return [p.build() for p in self.profiles]

    def scheduler_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~podlife.scheduler.scheduler.Scheduler` (fresh plugin instances)."""
        return {"profiles": self.build_profiles(),
                "percentage_of_nodes_to_score": self.percentage_of_nodes_to_score,
                "initial_backoff": float(self.pod_initial_backoff_seconds),
                "max_backoff": float(self.pod_max_backoff_seconds),
                "bind_timeout": float(self.bind_timeout_seconds)}


# ---- kube's field errors ------------------------------------------------------------------------


def _value(v: Any) -> str:
    """A bad value as kube's field errors print it: strings quoted, numbers and booleans bare."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(v, sort_keys=True, default=str)


def invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_value(value)}: {detail}"


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value: {_value(value)}"


def forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


def not_supported(path: str, value: Any, supported: Sequence[str]) -> str:
    return f"{path}: Unsupported value: {_value(value)}: supported values: " + ", ".join(json.dumps(s) for s in supported)


# ---- strict decoding ------------------------------------------------------------------------------

# A schema is a type name ("string", "int32", "int64", "bool", "number", "duration", "any"), a dict
# (an object: field -> schema), or a one-element list (a list of that schema).

_RESOURCE_SPEC = {"name": "string", "weight": "int64"}
_SHAPE = [{"utilization": "int32", "score": "int32"}]
_LABEL_SELECTOR = {"matchLabels": "any", "matchExpressions": [{"key": "string", "operator": "string",
                                                               "values": ["string"]}]}
_NODE_SELECTOR_TERM = {"matchExpressions": [{"key": "string", "operator": "string", "values": ["string"]}],
                       "matchFields": [{"key": "string", "operator": "string", "values": ["string"]}]}
_TOPOLOGY_SPREAD_CONSTRAINT = {"maxSkew": "int32", "topologyKey": "string", "whenUnsatisfiable": "string",
                               "labelSelector": _LABEL_SELECTOR, "minDomains": "int32",
                               "nodeAffinityPolicy": "string", "nodeTaintsPolicy": "string",
                               "matchLabelKeys": ["string"]}
_TYPE_META = {"apiVersion": "string", "kind": "string"}

ARGS_SCHEMAS: dict[str, dict[str, Any]] = {
    "DefaultPreemption": {**_TYPE_META, "minCandidateNodesPercentage": "int32", "minCandidateNodesAbsolute": "int32"},
    "InterPodAffinity": {**_TYPE_META, "hardPodAffinityWeight": "int32", "ignorePreferredTermsOfExistingPods": "bool"},
    "NodeResourcesFit": {**_TYPE_META, "ignoredResources": ["string"], "ignoredResourceGroups": ["string"],
                         "scoringStrategy": {"type": "string", "resources": [_RESOURCE_SPEC],
                                             "requestedToCapacityRatio": {"shape": _SHAPE}}},
    "PodTopologySpread": {**_TYPE_META, "defaultConstraints": [_TOPOLOGY_SPREAD_CONSTRAINT], "defaultingType": "string"},
    "NodeResourcesBalancedAllocation": {**_TYPE_META, "resources": [_RESOURCE_SPEC]},
    "VolumeBinding": {**_TYPE_META, "bindTimeoutSeconds": "int64", "shape": _SHAPE},
    "NodeAffinity": {**_TYPE_META, "addedAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [_NODE_SELECTOR_TERM]},
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": "int32", "preference": _NODE_SELECTOR_TERM}]}},
}

_PLUGIN = {"name": "string", "weight": "int32"}
_PLUGIN_SET = {"enabled": [_PLUGIN], "disabled": [_PLUGIN]}
_PROFILE = {"schedulerName": "string", "percentageOfNodesToScore": "int32",
            "plugins": {name: _PLUGIN_SET for name in [*EXTENSION_POINTS, MULTI_POINT]},
            "pluginConfig": [{"name": "string", "args": "any"}]}
_LEADER_ELECTION = {"leaderElect": "bool", "leaseDuration": "duration", "renewDeadline": "duration",
                    "retryPeriod": "duration", "resourceLock": "string", "resourceName": "string",
                    "resourceNamespace": "string"}
_CLIENT_CONNECTION = {"kubeconfig": "string", "acceptContentTypes": "string", "contentType": "string",
                      "qps": "number", "burst": "int32"}
_EXTENDER = {"urlPrefix": "string", "filterVerb": "string", "preemptVerb": "string", "prioritizeVerb": "string",
             "weight": "int64", "bindVerb": "string", "enableHTTPS": "bool", "tlsConfig": "any",
             "httpTimeout": "duration", "nodeCacheCapable": "bool", "managedResources": "any", "ignorable": "bool"}
CONFIG_SCHEMA: dict[str, Any] = {
    **_TYPE_META, "parallelism": "int32", "leaderElection": _LEADER_ELECTION, "clientConnection": _CLIENT_CONNECTION,
    "enableProfiling": "bool", "enableContentionProfiling": "bool", "percentageOfNodesToScore": "int32",
    "podInitialBackoffSeconds": "int64", "podMaxBackoffSeconds": "int64", "profiles": [_PROFILE],
    "extenders": [_EXTENDER], "delayCacheUntilActive": "bool",
}

_GO_TYPES = {"string": "string", "int32": "int32", "int64": "int64", "bool": "bool", "number": "float64",
             "duration": "duration"}


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _decode(value: Any, schema: Any, path: str, unknown: list[str], errors: list[str]) -> None:
    """Check ``value`` against ``schema`` as Go's strict JSON decoding would: unknown fields into
    ``unknown`` (reported together, as kube's strict decoding error), type mismatches into ``errors``."""
    if value is None or schema == "any":
        return  # null: unset, as a Go pointer or empty field
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            errors.append(invalid(path or "<root>", value, f"cannot unmarshal {_json_type(value)} into an object"))
            return
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in schema:
                unknown.append(sub)
            else:
                _decode(item, schema[key], sub, unknown, errors)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            errors.append(invalid(path, value, f"cannot unmarshal {_json_type(value)} into an array"))
            return
        for i, item in enumerate(value):
            _decode(item, schema[0], f"{path}[{i}]", unknown, errors)
        return
    want = _GO_TYPES[schema]
    if schema == "string" and not isinstance(value, str):
        errors.append(invalid(path, value, f"cannot unmarshal {_json_type(value)} into a {want}"))
    elif schema == "bool" and not isinstance(value, bool):
        errors.append(invalid(path, value, f"cannot unmarshal {_json_type(value)} into a {want}"))
    elif schema in ("int32", "int64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            errors.append(invalid(path, value, f"cannot unmarshal {_json_type(value)} into an {want}"))
        else:
            low, high = INT32 if schema == "int32" else INT64
            if not low <= int(value) <= high:
                errors.append(invalid(path, value, f"does not fit in an {want}"))
    elif schema == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        errors.append(invalid(path, value, f"cannot unmarshal {_json_type(value)} into a {want}"))
    elif schema == "duration" and (not isinstance(value, str) or parse_duration(value) is None):
        errors.append(invalid(path, value, 'a duration such as "15s", "1m30s"'))


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """A Go duration string (``1m30s``, ``-2s``, ``0``) in seconds; None when it is not one."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total if s else None


# ---- reading --------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml's strict mode reads it: a key given twice in one mapping is an error."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f'key "{key}" already set in map', key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path: str | Path) -> SchedulerConfig:
    """Read, default and validate the file (SchedulerConfigError: every problem it has)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SchedulerConfigError([f"failed to read config file: {exc.strerror or exc}"], source) from exc
    except UnicodeDecodeError as exc:
        raise SchedulerConfigError([f"failed to read config file: not UTF-8 text ({exc.reason})"], source) from exc
    return parse_config(text, source)


def profiles_from_file(path: str | Path) -> list[Profile]:
    """The profiles a configuration file describes, as new plugin instances (for benchmarks and tests)."""
    return load_config(path).build_profiles()


def parse_config(document: str | Mapping[str, Any], source: str = "") -> SchedulerConfig:
    """A ``KubeSchedulerConfiguration`` from YAML/JSON text or an already-parsed mapping."""
    if isinstance(document, str):
        try:
            docs = [d for d in yaml.load_all(document, Loader=_StrictLoader) if d is not None]
        except yaml.YAMLError as exc:
            raise SchedulerConfigError([f"failed to decode config file: {_yaml_problem(exc)}"], source) from exc
        if len(docs) != 1:
            raise SchedulerConfigError(
                [f"failed to decode config file: expected one document, found {len(docs)}"], source)
        data = docs[0]
    else:
        data = document
    if not isinstance(data, Mapping):
        raise SchedulerConfigError([f"failed to decode config file: expected a mapping, found {_json_type(data)}"],
                                   source)
    return _Reader(dict(data), source).read()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})" if exc.problem_mark else ""
        return f"{exc.problem}{where}"
    return str(exc)


def _int(v: Any, default: int) -> int:
    return default if v is None else int(v)


class _Reader:
    """One pass over one document: decode, default, validate, resolve; errors collected in ``errors``."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source
        self.errors: list[str] = []

    def fail(self) -> SchedulerConfigError:
        return SchedulerConfigError(self.errors, self.source)

    def read(self) -> SchedulerConfig:
        data = self.data
        api_version, kind = data.get("apiVersion"), data.get("kind")
        if not api_version:
            raise SchedulerConfigError(["Object 'apiVersion' is missing"], self.source)
        if not kind:
            raise SchedulerConfigError(["Object 'Kind' is missing"], self.source)
        if api_version != API_VERSION or kind != KIND:
            raise SchedulerConfigError(
                [f'no kind "{kind}" is registered for version "{api_version}" (podlife reads "{KIND}" of "{API_VERSION}")'],
                self.source)
        unknown: list[str] = []
        _decode(data, CONFIG_SCHEMA, "", unknown, self.errors)
        if unknown:
            self.errors.insert(0, "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        if self.errors:  # later checks assume the types are right
            raise self.fail()

        parallelism = _int(data.get("parallelism"), DEFAULT_PARALLELISM)
        initial = _int(data.get("podInitialBackoffSeconds"), DEFAULT_POD_INITIAL_BACKOFF_SECONDS)
        maximum = _int(data.get("podMaxBackoffSeconds"), DEFAULT_POD_MAX_BACKOFF_SECONDS)
        percentage = data.get("percentageOfNodesToScore")
        self._leader_election(data.get("leaderElection") or {})
        self._client_connection(data.get("clientConnection") or {})
        if parallelism <= 0:
            self.errors.append(invalid("parallelism", parallelism, "should be an integer value greater than zero"))
        raw_profiles = list(data.get("profiles") or [])
        if not raw_profiles:
            raw_profiles = [{}]
        if len(raw_profiles) == 1 and raw_profiles[0].get("schedulerName") is None:
            raw_profiles[0] = {**raw_profiles[0], "schedulerName": DEFAULT_SCHEDULER_NAME}
        profiles: list[ProfileConfig] = []
        seen_names: dict[str, int] = {}
        for i, raw in enumerate(raw_profiles):
            path = f"profiles[{i}]"
            profile = _ProfileReader(self, raw, path).read()
            name = str(raw.get("schedulerName") or "")
            if name in seen_names:
                self.errors.append(duplicate(f"{path}.schedulerName", name))
            seen_names.setdefault(name, i)
            if profile is not None:
                profiles.append(profile)
        self._common_queue_sort(raw_profiles)
        self._percentage("percentageOfNodesToScore", percentage)
        if initial <= 0:
            self.errors.append(invalid("podInitialBackoffSeconds", initial, "must be greater than 0"))
        if maximum < initial:
            self.errors.append(invalid("podMaxBackoffSeconds", maximum,
                                       "must be greater than or equal to PodInitialBackoffSeconds"))
        if data.get("extenders"):
            self.errors.append(forbidden("extenders", "scheduler extenders are not supported by podlife"))
        bind_timeout = self._bind_timeout(raw_profiles)
        if self.errors:
            raise self.fail()
        return SchedulerConfig(tuple(profiles), _int(percentage, 0), initial, maximum, parallelism,
                               bind_timeout, self.source, data)

    def _percentage(self, path: str, value: Any) -> None:
        if value is not None and not 0 <= int(value) <= 100:
            self.errors.append(invalid(path, value, "not in valid range [0-100]"))

    def _leader_election(self, le: Mapping[str, Any]) -> None:
        """component-base's leader election checks, on kube-scheduler's defaults (the settings are used by
        :func:`podlife.components_cli.scheduler_election`)."""
        path = "leaderElection"
        if le.get("leaderElect") is False:
            return
        lease = parse_duration(le.get("leaseDuration") or "15s") or 0.0
        renew = parse_duration(le.get("renewDeadline") or "10s") or 0.0
        retry = parse_duration(le.get("retryPeriod") or "2s") or 0.0
        for name, seconds in (("leaseDuration", lease), ("renewDeadline", renew), ("retryPeriod", retry)):
            if seconds <= 0:
                self.errors.append(invalid(f"{path}.{name}", le.get(name), "must be greater than zero"))
        if lease <= renew:
            self.errors.append(invalid(f"{path}.leaseDuration", le.get("leaseDuration") or "15s",
                                       "LeaseDuration must be greater than RenewDeadline"))
        lock = le.get("resourceLock") or "leases"
        if lock != "leases":
            self.errors.append(invalid(f"{path}.resourceLock", lock, 'resourceLock value must be "leases"'))

    def _client_connection(self, cc: Mapping[str, Any]) -> None:
        burst = cc.get("burst")
        if burst is not None and int(burst) < 0:
            self.errors.append(invalid("clientConnection.burst", burst, "must be non-negative"))
        qps = cc.get("qps")
        if qps is not None and not math.isfinite(float(qps)):
            self.errors.append(invalid("clientConnection.qps", qps, "must be a finite number"))

    def _common_queue_sort(self, profiles: list[Mapping[str, Any]]) -> None:
        """kube's validateCommonQueueSort: one queue sort, the same in every profile."""
        def queue_sort(p: Mapping[str, Any]) -> Any:
            plugins = p.get("plugins") or {}
            qs = plugins.get("queueSort") or {}
            return ([(e.get("name"), e.get("weight")) for e in qs.get("enabled") or []],
                    sorted(str(d.get("name")) for d in qs.get("disabled") or []))

        canon = queue_sort(profiles[0])
        if len(canon[0]) > 1:
            self.errors.append(invalid("profiles[0].plugins.queueSort.Enabled", len(canon[0]),
                                       "only one queue sort plugin can be enabled"))
        for i in range(1, len(profiles)):
            current = queue_sort(profiles[i])
            if current != canon:
                self.errors.append(invalid(f"profiles[{i}].plugins.queueSort",
                                           (profiles[i].get("plugins") or {}).get("queueSort") or {},
                                           "must be the same for all profiles"))

    def _bind_timeout(self, profiles: list[Mapping[str, Any]]) -> int:
        """VolumeBinding's bindTimeoutSeconds: podlife has one VolumeBinding for all profiles."""
        values: set[int] = set()
        for p in profiles:
            for entry in p.get("pluginConfig") or []:
                if entry.get("name") == "VolumeBinding":
                    values.add(_int((entry.get("args") or {}).get("bindTimeoutSeconds"), DEFAULT_BIND_TIMEOUT_SECONDS))
        if len(values) > 1:
            self.errors.append(invalid("profiles", sorted(values), "VolumeBinding bindTimeoutSeconds must be the same "
                                       "in every profile (podlife's VolumeBinding serves them all)"))
        return values.pop() if len(values) == 1 else DEFAULT_BIND_TIMEOUT_SECONDS


# ---- one profile ------------------------------------------------------------------------------------


@dataclass
class _PluginSet:
    enabled: list[tuple[str, int | None]]
    disabled: list[str]


def _plugin_set(raw: Any) -> _PluginSet:
    raw = raw or {}
    return _PluginSet([(str(e.get("name") or ""), None if e.get("weight") is None else int(e["weight"]))
                       for e in raw.get("enabled") or []],
                      [str(d.get("name") or "") for d in raw.get("disabled") or []])


def merge_plugin_set(default: _PluginSet, custom: _PluginSet) -> _PluginSet:
    """kube's mergePluginSet: the defaults minus the disabled ones (all, for "*"), each default the
    custom set re-enables replaced in place (its weight wins), then the other custom ones."""
    disabled = set(custom.disabled) | set(default.disabled)
    custom_index = {name: i for i, (name, _) in reversed(list(enumerate(custom.enabled)))}
    replaced: set[int] = set()
    enabled: list[tuple[str, int | None]] = []
    if "*" not in disabled:
        for name, weight in default.enabled:
            if name in disabled:
                continue
            if name in custom_index:
                replaced.add(custom_index[name])
                enabled.append(custom.enabled[custom_index[name]])
            else:
                enabled.append((name, weight))
    enabled += [entry for i, entry in enumerate(custom.enabled) if i not in replaced]
    return _PluginSet(enabled, [*custom.disabled, *default.disabled])


DEFAULT_MULTI_POINT = _PluginSet([(spec.name, spec.weight or None) for spec in DEFAULT_PLUGINS], [])


class _ProfileReader:
    def __init__(self, config: _Reader, raw: Mapping[str, Any], path: str) -> None:
        self.config = config
        self.raw = raw
        self.path = path
        self.errors = config.errors
        self.start = len(self.errors)

    def read(self) -> ProfileConfig | None:
        raw, path = self.raw, self.path
        name = raw.get("schedulerName")
        if not name:
            self.errors.append(required(f"{path}.schedulerName"))
        percentage = raw.get("percentageOfNodesToScore")
        self.config._percentage(f"{path}.percentageOfNodesToScore", percentage)
        args = self._plugin_config(raw.get("pluginConfig") or [])
        plugins = raw.get("plugins") or {}
        sets = {point: _plugin_set(plugins.get(point)) for point in EXTENSION_POINTS}
        custom_multi = _plugin_set(plugins.get(MULTI_POINT))
        multi = merge_plugin_set(DEFAULT_MULTI_POINT, custom_multi)
        instances = self._instances({**sets, MULTI_POINT: custom_multi, "": multi}, args)
        if instances is None:
            return None
        resolved = {point: self._expand(point, sets[point], multi, instances) for point in EXTENSION_POINTS}
        if len(self.errors) > self.start:
            return None
        label = f'{path}: profile with scheduler name "{name}"'
        if len(resolved["queueSort"]) != 1:
            self.errors.append(f"{label}: only one queue sort plugin required, but got {len(resolved['queueSort'])}")
        if not resolved["bind"]:
            self.errors.append(f"{label}: at least one bind plugin is needed")
        scores = self._weights(resolved["score"], sets["score"], multi)
        if len(self.errors) > self.start:
            return None
        used = {n for names in resolved.values() for n in names}
        return ProfileConfig(str(name), tuple(resolved["filter"]), tuple(scores), tuple(resolved["postFilter"]),
                             {n: a for n, a in args.items() if n in used},
                             None if percentage is None else int(percentage))

    # -- pluginConfig --

    def _plugin_config(self, entries: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each entry's args decoded strictly, defaulted and validated; by plugin name."""
        out: dict[str, dict[str, Any]] = {}
        for j, entry in enumerate(entries):
            path = f"{self.path}.pluginConfig[{j}]"
            name = str(entry.get("name") or "")
            if name in out:
                self.errors.append(duplicate(path, name))
                continue
            if name not in REGISTRY:
                self.errors.append(invalid(f"{path}.name", name, f'plugin "{name}" does not exist'))
                continue
            args = entry.get("args")
            args = {} if args is None else args
            if not isinstance(args, dict):
                self.errors.append(invalid(f"{path}.args", args, "has to match plugin args"))
                continue
            out[name] = self._args(name, dict(args), f"{path}.args", f"decoding .{path}")
        return out

    def _args(self, name: str, args: dict[str, Any], path: str, decoding: str) -> dict[str, Any]:
        schema = ARGS_SCHEMAS.get(name)
        kind = args.get("kind")
        if schema is None:
            if args:
                self.errors.append(invalid(path, args, f'plugin "{name}" takes no args'))
            return {}
        if (kind is not None and kind != f"{name}Args") or (
                args.get("apiVersion") is not None and args.get("apiVersion") != API_VERSION):
            self.errors.append(invalid(path, args, "has to match plugin args"))
            return {}
        unknown: list[str] = []
        before = len(self.errors)
        _decode(args, schema, path, unknown, self.errors)
        if unknown:
            self.errors.append(f"{decoding}: strict decoding error: "
                               + ", ".join(f'unknown field "{u[len(path) + 1:]}"' for u in unknown))
        if len(self.errors) > before:
            return {}
        args.pop("apiVersion", None)
        args.pop("kind", None)
        defaulted = ARGS_DEFAULTS[name](args)
        self.errors.extend(ARGS_VALIDATORS[name](path, defaulted))
        return defaulted

    # -- plugins --

    def _instances(self, sets: dict[str, _PluginSet],
                   args: Mapping[str, Mapping[str, Any]]) -> dict[str, Plugin | None] | None:
        """One instance per plugin a point names (None for built-ins), to ask what it extends;
        unknown names are reported with kube's framework message, at the index the file gives
        (``sets`` holds the file's multiPoint, and under "" the merged one, all known names)."""
        instances: dict[str, Plugin | None] = {}
        for point, ps in sets.items():
            for k, (name, _) in enumerate(ps.enabled):
                if name in instances:
                    continue
                if name not in REGISTRY:
                    kind = EXTENSION_POINTS.get(point, "plugin")
                    self.errors.append(invalid(f"{self.path}.plugins.{point}.enabled[{k}].name", name,
                                               f'{kind} "{name}" does not exist' if point != MULTI_POINT
                                               else f'plugin "{name}" does not exist'))
                    continue
                if name in BUILT_IN:
                    instances[name] = None
                    continue
                try:
                    instances[name] = new_plugin(name, args.get(name))
                except (TypeError, ValueError) as exc:
                    self.errors.append(f'{self.path}: initializing plugin "{name}": {exc}')
        return None if len(self.errors) > self.start else instances

    def _expand(self, point: str, ps: _PluginSet, multi: _PluginSet, instances: Mapping[str, Plugin | None]) -> list[str]:
        """The plugins at ``point``: its own enabled list (each must extend the point, once), then
        kube's multiPoint expansion and reordering."""
        kind = EXTENSION_POINTS[point]
        explicit: list[str] = []
        for k, (name, _) in enumerate(ps.enabled):
            where = f"{self.path}.plugins.{point}.enabled[{k}]"
            if not implements(name, instances[name], point):
                self.errors.append(f'{where}: plugin "{name}" does not extend {kind} plugin')
            elif name in explicit:
                self.errors.append(f'{where}: plugin "{name}" already registered as "{kind}"')
            else:
                explicit.append(name)
        disabled = set(ps.disabled)
        if "*" in disabled:
            return explicit
        overrides: list[str] = []
        from_multi: list[str] = []
        for name, _ in multi.enabled:
            if not implements(name, instances[name], point) or name in disabled:
                continue
            if name in explicit:
                overrides.append(name)
            elif name in from_multi:
                self.errors.append(f'{self.path}.plugins.multiPoint: plugin "{name}" already registered as "{kind}"')
            else:
                from_multi.append(name)
        first = [n for n in explicit if n in overrides]
        return [*first, *from_multi, *(n for n in explicit if n not in overrides)]

    def _weights(self, names: list[str], score: _PluginSet, multi: _PluginSet) -> list[tuple[str, int]]:
        """kube's getScoreWeights: the score point's weight, else multiPoint's; 0 or unset is 1."""
        weights: dict[str, int] = {}
        for name, weight in [*score.enabled, *multi.enabled]:
            if name not in weights:
                weights[name] = weight or 1
        total = 0
        out: list[tuple[str, int]] = []
        for name in names:
            w = weights.get(name, 1)
            if w * MAX_NODE_SCORE > MAX_TOTAL_SCORE - total:
                self.errors.append(f"{self.path}: total score of Score plugins could overflow")
                break
            total += w * MAX_NODE_SCORE
            out.append((name, w))
        return out


# ---- plugin args: defaults and validation (kube's SetDefaults_* and Validate*Args) --------------------------

_DEFAULT_RESOURCES = [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]


def _default_resources(resources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if not resources:
        return [dict(r) for r in _DEFAULT_RESOURCES]
    return [{**r, "weight": r.get("weight") or 1} for r in resources]


def _defaults_fit(args: dict[str, Any]) -> dict[str, Any]:
    strategy = dict(args.get("scoringStrategy") or {"type": "LeastAllocated"})
    strategy["resources"] = _default_resources(strategy.get("resources"))
    return {**args, "scoringStrategy": strategy}


def _defaults_balanced(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "resources": _default_resources(args.get("resources"))}


def _defaults_preemption(args: dict[str, Any]) -> dict[str, Any]:
    return {"minCandidateNodesPercentage": 10, "minCandidateNodesAbsolute": 100,
            **{k: v for k, v in args.items() if v is not None}}


def _defaults_interpod(args: dict[str, Any]) -> dict[str, Any]:
    return {"hardPodAffinityWeight": 1, "ignorePreferredTermsOfExistingPods": False,
            **{k: v for k, v in args.items() if v is not None}}


def _defaults_spread(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "defaultingType": args.get("defaultingType") or "System"}


def _defaults_volume_binding(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "bindTimeoutSeconds": _int(args.get("bindTimeoutSeconds"), DEFAULT_BIND_TIMEOUT_SECONDS)}


ARGS_DEFAULTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "NodeResourcesFit": _defaults_fit,
    "NodeResourcesBalancedAllocation": _defaults_balanced,
    "DefaultPreemption": _defaults_preemption,
    "InterPodAffinity": _defaults_interpod,
    "PodTopologySpread": _defaults_spread,
    "VolumeBinding": _defaults_volume_binding,
    "NodeAffinity": dict,
}

SCORING_STRATEGIES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_name_errors(path: str, value: str) -> list[str]:
    """metav1validation.ValidateLabelName: an optional DNS-subdomain prefix and a name of at most 63."""
    prefix, _, name = value.rpartition("/")
    problems: list[str] = []
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problems.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                        "characters, '-' or '.', and must start and end with an alphanumeric character")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        problems.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                        "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return [invalid(path, value, p) for p in problems]


def _shape_errors(shape: list[dict[str, Any]] | None, path: str) -> list[str]:
    if not shape:
        return [required(path, "at least one point must be specified")]
    errors: list[str] = []
    for i in range(1, len(shape)):
        if int(shape[i - 1].get("utilization") or 0) >= int(shape[i].get("utilization") or 0):
            errors.append(invalid(f"{path}[{i}].utilization", shape[i].get("utilization") or 0,
                                  "values must be sorted in increasing order"))
            break
    for i, point in enumerate(shape):
        u, s = int(point.get("utilization") or 0), int(point.get("score") or 0)
        if not 0 <= u <= 100:
            errors.append(invalid(f"{path}[{i}].utilization", u, "not in valid range [0, 100]"))
        if not 0 <= s <= MAX_CUSTOM_PRIORITY_SCORE:
            errors.append(invalid(f"{path}[{i}].score", s, f"not in valid range [0, {MAX_CUSTOM_PRIORITY_SCORE}]"))
    return errors


def _validate_fit(path: str, args: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    for i, res in enumerate(args.get("ignoredResources") or []):
        errors += label_name_errors(f"{path}.ignoredResources[{i}]", res)
    for i, group in enumerate(args.get("ignoredResourceGroups") or []):
        if "/" in group:
            errors.append(invalid(f"{path}.ignoredResourceGroups[{i}]", group, "resource group name can't contain '/'"))
        errors += label_name_errors(f"{path}.ignoredResourceGroups[{i}]", group)
    strategy = args.get("scoringStrategy") or {}
    spath = f"{path}.scoringStrategy"
    kind = strategy.get("type") or ""
    if kind not in SCORING_STRATEGIES:
        errors.append(not_supported(f"{spath}.type", kind, SCORING_STRATEGIES))
    for i, res in enumerate(strategy.get("resources") or []):
        weight = int(res.get("weight") or 0)
        if not 0 < weight <= 100:
            errors.append(invalid(f"{spath}.resources[{i}].weight", weight,
                                  f"resource weight of {res.get('name')} not in valid range (0, 100]"))
    ratio = strategy.get("requestedToCapacityRatio")
    if kind == "RequestedToCapacityRatio":
        if ratio is None:
            errors.append(required(f"{spath}.requestedToCapacityRatio",
                                   "must be specified when type is RequestedToCapacityRatio"))
        else:
            errors += _shape_errors(ratio.get("shape"), f"{spath}.requestedToCapacityRatio.shape")
    elif ratio is not None:
        errors.append(forbidden(f"{spath}.requestedToCapacityRatio", "must be nil when type is not RequestedToCapacityRatio"))
    return errors


def _validate_balanced(path: str, args: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for i, res in enumerate(args.get("resources") or []):
        name = str(res.get("name") or "")
        if name in seen:
            errors.append(duplicate(f"{path}.resources[{i}].name", name))
        seen.add(name)
        if int(res.get("weight") or 0) != 1:
            errors.append(invalid(f"{path}.resources[{i}].weight", res.get("weight"), "must be 1"))
    return errors


def _validate_preemption(path: str, args: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    pct, absolute = int(args["minCandidateNodesPercentage"]), int(args["minCandidateNodesAbsolute"])
    if not 0 <= pct <= 100:
        errors.append(invalid(f"{path}.minCandidateNodesPercentage", pct, "not in valid range [0, 100]"))
    if absolute < 0:
        errors.append(invalid(f"{path}.minCandidateNodesAbsolute", absolute, "not in valid range [0, inf)"))
    if pct == 0 and absolute == 0:
        errors.append(invalid(f"{path}.minCandidateNodesPercentage", pct,
                              "cannot be zero at the same time as minCandidateNodesAbsolute"))
        errors.append(invalid(f"{path}.minCandidateNodesAbsolute", absolute,
                              "cannot be zero at the same time as minCandidateNodesPercentage"))
    return errors


def _validate_interpod(path: str, args: Mapping[str, Any]) -> list[str]:
    w = int(args["hardPodAffinityWeight"])
    return [] if 0 <= w <= 100 else [invalid(f"{path}.hardPodAffinityWeight", w, "not in valid range [0, 100]")]


def _validate_spread(path: str, args: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    defaulting = args.get("defaultingType")
    constraints = args.get("defaultConstraints") or []
    if defaulting not in ("System", "List"):
        errors.append(not_supported(f"{path}.defaultingType", defaulting, ("System", "List")))
    elif defaulting == "System" and constraints:
        errors.append(invalid(f"{path}.defaultingType", defaulting, "when .defaultConstraints are not empty"))
    cpath = f"{path}.defaultConstraints"
    for i, c in enumerate(constraints):
        p = f"{cpath}[{i}]"
        skew = int(c.get("maxSkew") or 0)
        if skew <= 0:
            errors.append(invalid(f"{p}.maxSkew", skew, "not in valid range (0, inf)"))
        key = c.get("topologyKey") or ""
        errors += [required(f"{p}.topologyKey", "can not be empty")] if not key else label_name_errors(f"{p}.topologyKey", key)
        action = c.get("whenUnsatisfiable") or ""
        if not action:
            errors.append(required(f"{p}.whenUnsatisfiable", "can not be empty"))
        elif action not in ("DoNotSchedule", "ScheduleAnyway"):
            errors.append(not_supported(f"{p}.whenUnsatisfiable", action, ("DoNotSchedule", "ScheduleAnyway")))
        if c.get("labelSelector") is not None:
            errors.append(forbidden(f"{p}.labelSelector", "constraint must not define a selector, as they deduced for each pod"))
        for other in constraints[:i]:
            if other.get("topologyKey") == key and other.get("whenUnsatisfiable") == action:
                errors.append(duplicate(p, f"{{{key}, {action}}}"))
                break
    return errors


def _validate_volume_binding(path: str, args: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if int(args["bindTimeoutSeconds"]) < 0:
        errors.append(invalid(f"{path}.bindTimeoutSeconds", args["bindTimeoutSeconds"],
                              "invalid BindTimeoutSeconds, should not be a negative value"))
    if args.get("shape") is not None:
        errors.append(invalid(f"{path}.shape", args["shape"], "unexpected field `shape`, remove it or turn on the "
                              "feature gate StorageCapacityScoring"))
    return errors


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def _term_errors(term: Mapping[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    for i, r in enumerate(term.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op, values = r.get("operator") or "", r.get("values") or []
        errors += label_name_errors(f"{p}.key", r.get("key") or "")
        if op not in _OPERATORS:
            errors.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        elif op in ("In", "NotIn") and not values:
            errors.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errors.append(forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif op in ("Gt", "Lt") and (len(values) != 1 or not str(values[0]).lstrip("-").isdigit()):
            errors.append(invalid(f"{p}.values", values, "must be specified single value when `operator` is 'Lt' or 'Gt'"))
    return errors


def _validate_node_affinity(path: str, args: Mapping[str, Any]) -> list[str]:
    added = args.get("addedAffinity")
    if not added:
        return []
    errors: list[str] = []
    req = added.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is not None:
        rpath = f"{path}.addedAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(req.get("nodeSelectorTerms") or []):
            errors += _term_errors(term or {}, f"{rpath}.nodeSelectorTerms[{i}]")
    for i, pref in enumerate(added.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        ppath = f"{path}.addedAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        errors += _term_errors(pref.get("preference") or {}, f"{ppath}.preference")
    if not errors:  # podlife's NodeAffinity has no addedAffinity (yet): refuse rather than ignore it
        errors.append(forbidden(f"{path}.addedAffinity", "not supported by podlife's NodeAffinity plugin"))
    return errors


ARGS_VALIDATORS: dict[str, Callable[[str, Mapping[str, Any]], list[str]]] = {
    "NodeResourcesFit": _validate_fit,
    "NodeResourcesBalancedAllocation": _validate_balanced,
    "DefaultPreemption": _validate_preemption,
    "InterPodAffinity": _validate_interpod,
    "PodTopologySpread": _validate_spread,
    "VolumeBinding": _validate_volume_binding,
    "NodeAffinity": _validate_node_affinity,
}

__all__ = [
    "API_VERSION",
    "KIND",
    "ProfileConfig",
    "SchedulerConfig",
    "SchedulerConfigError",
    "load_config",
    "parse_config",
    "profiles_from_file",
]
