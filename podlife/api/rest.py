"""REST semantics of every resource, independent of HTTP.

:class:`ResourceREST` is podlife's generic registry store: it turns create, get, list,
update, patch, delete and watch into store transactions and watch-cache reads,
asking the kind's :class:`~podlife.registry.types.Strategy` at each step. The HTTP
handlers (:mod:`podlife.api.handlers`) only decode requests and encode answers; the
in-process client (:mod:`podlife.api.local_client`) calls these same methods. So both
transports share one set of rules: validation, defaulting, optimistic concurrency,
graceful deletion, finalizers.

Reads come from the watch cache (never stale: it is fed before writes return).
Writes read the newest value from the store, change a fresh copy, and commit with a
compare on the ``mod_revision`` they read. An update that the client pinned to a
``resourceVersion`` fails with 409 Conflict when the object moved on; internal
read-modify-write loops (patch, binding, status merges) retry instead.
"""

from __future__ import annotations

import builtins

import asyncio
import base64
import contextlib
import random
import secrets
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from ..machinery.field_order import put_in_kubernetes_order
from ..registry.types import FieldError, Obj, ResourceType
from ..machinery.timeutil import format_rfc3339
from ..machinery.timeutil import now_rfc3339 as current_rfc3339
from ..registry.object_meta import drop_empty_metadata
from ..registry.validation import validate_metadata
from ..store.base import Compare, Delete, Put, Store, TxnResult
from . import managed_fields
from ..machinery import errors
from .cache import CachedObject, Filter, ResourceCache, TooOld, Watcher, WatchEvent
from . import strategic_merge
from . import admission
# INTERNAL: the ``subresource`` of writes the server makes itself (binding): no update rules
from .admission_plugin import CREATE, DELETE, INTERNAL, UPDATE, Attributes
from .default_toleration_seconds import TolerationDefaults
from .pod_security import NamespacePolicy
from . import resource_quota
from .rbac_guard import CURRENT_USER, guard as rbac_guard
from ..machinery.patch import PatchError, apply_json_patch, apply_merge_patch
from ..machinery.selectors import SelectorError, parse_field_selector, parse_label_selector

MAX_RETRIES = 16
#: Kubernetes refuses JSON patches of more operations (413)
MAX_JSON_PATCH_OPERATIONS = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: a deletionTimestamp is at most this far ahead (a larger grace period cannot be a date)
MAX_GRACE_SECONDS = 10**10
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(now: datetime | None = None) -> str:
    return format_rfc3339(now) if now is not None else current_rfc3339()


#: generated names need not be unpredictable (Kubernetes draws them from math/rand), only
#: unlikely to repeat: one seeded generator, not a system call per character
_NAME_RANDOM = random.Random(secrets.token_bytes(16))


def generate_name(base: str) -> str:
    return base[:58] + "".join(_NAME_RANDOM.choices(_GENERATE_ALPHABET, k=5))


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions_uid: str | None = None
    preconditions_rv: str | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: dict | None, query_grace: str | None = None, dry_run: bool = False) -> DeleteOptions:
        body = body or {}
        pre = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds")
        if grace is None and query_grace not in (None, ""):
            try:
                grace = int(query_grace)
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {query_grace!r}") from None
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool) or not _INT64_MIN <= grace <= _INT64_MAX):
            raise errors.bad_request("gracePeriodSeconds must be an integer (int64)")
        if not isinstance(pre, dict) or not all(isinstance(pre.get(k), (str, type(None))) for k in ("uid", "resourceVersion")):
            raise errors.bad_request("DeleteOptions: preconditions must be an object of strings")
        if grace is not None and grace < 0:
            grace = 1  # Kubernetes' delete path treats a negative grace period as 1 second
        policy = body.get("propagationPolicy")
        if body.get("orphanDependents") is True and policy is None:
            policy = "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.ApiError(422, "Invalid", 'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                                                  f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"')
        return cls(grace, policy, pre.get("uid"), pre.get("resourceVersion"), dry_run or bool(body.get("dryRun")))


@dataclass
class ListResult:
    items: list[CachedObject]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


def too_large_rv(rv: int) -> errors.ApiError:
    exc = errors.ApiError(504, "Timeout", f"Too large resource version: {rv}, current: (newer than the server has seen)",
                          {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                           "retryAfterSeconds": 1})
    exc.retry_after = 1
    return exc


class ApiContext:
    """What every ResourceREST shares: the store, the caches, the catalog, admission."""

    def __init__(self, store: Store, catalog: Any, watch_cache: Any) -> None:
        self.store = store
        self.catalog = catalog
        self.watch_cache = watch_cache
        self.rest: dict[tuple[str, str, str], ResourceREST] = {}
        self.object_checkers: list[Callable[[ResourceType, Obj, str], list[str]]] = []
        #: the Pod Security levels of namespaces without labels (Kubernetes' default: privileged)
        self.pod_security_defaults = NamespacePolicy()
        #: ``--disable-admission-plugins``: plugins of :data:`~podlife.api.admission.ADMISSION_PLUGINS` not run,
        #: by their Kubernetes names
        self.disabled_admission_plugins: set[str] = set()
        #: ``--default-not-ready-toleration-seconds``/``--default-unreachable-toleration-seconds``
        self.toleration_defaults = TolerationDefaults()
        #: who may do what, for in-process callers too (set by the HTTP server when it
        #: authenticates; None: everyone may do everything, as without authentication)
        self.authorizer: Any = None
        #: the audit log in-process calls are written to as well (None: no audit)
        self.audit: Any = None
        #: what signs service-account tokens, and the options they are issued with (set by the
        #: HTTP server; in-process TokenRequests need them too)
        self.token_issuer: Any = None
        self.authentication_options: Any = None
        #: the pod traces (:class:`podlife.trace.recorder.PodTraces`; None: tracing off), fed by the
        #: store's commits and by the writers this layer names
        self.trace: Any = None
        #: what ``metrics.k8s.io`` answers from (:class:`podlife.api.resource_metrics.ResourceMetrics`;
        #: None: the API is not served)
        self.resource_metrics: Any = None

    def rest_for(self, rt: ResourceType) -> ResourceREST:
        return self.rest[(rt.group, rt.version, rt.plural)]

    def rest_by(self, group: str, version: str, plural: str) -> ResourceREST | None:
        return self.rest.get((group, version, plural))


class ResourceREST:
    def __init__(self, rt: ResourceType, ctx: ApiContext, cache: ResourceCache) -> None:
        self.rt = rt
        self.ctx = ctx
        self.cache = cache
        self.strategy = rt.strategy
        self._allocation_lock: asyncio.Lock | None = None

    @property
    def store(self) -> Store:
        return self.ctx.store

    # ---- reads ----------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> CachedObject:
        co = self.cache.get(self.rt.key(namespace, name))
        if co is None:
            raise errors.not_found(self.rt, name)
        return co

    def make_filter(self, namespace: str | None, label_selector: str | None, field_selector: str | None) -> Filter:
        return selector_filter(self.rt, namespace, label_selector, field_selector)

    def list(self, namespace: str | None, *, label_selector: str | None = None, field_selector: str | None = None,
             limit: int = 0, continue_token: str | None = None, resource_version: str | None = None,
             resource_version_match: str | None = None) -> ListResult:
        """A list, paged by ``limit``/``continue``; every page is of one snapshot.

        ``resourceVersion`` semantics follow Kubernetes: unset is the newest state,
        "0" any state (the newest here), N with ``NotOlderThan`` (the default) a state
        at least as new as N, N with ``Exact`` the state at exactly N (rebuilt from
        the watch window; 410 when the window no longer reaches it). A continue token
        carries the revision of its first page, so later pages come from the same
        snapshot.
        """
        flt = self.make_filter(namespace, label_selector, field_selector)
        if continue_token and resource_version_match:
            raise errors.invalid_list_options([FieldError("FieldValueForbidden", "resourceVersionMatch",
                                                          "resourceVersionMatch is forbidden when continue is provided")])
        start_after, at = "", self._list_revision(resource_version, resource_version_match)
        if continue_token:
            if resource_version not in (None, "", "0"):
                raise errors.bad_request("specifying resource version is not allowed when using continue")
            start_after, at = self._decode_continue(continue_token)
        if at is None or at >= self.cache.revision:
            items, last_key = self.cache.list(flt, start_after, limit)
            at = self.cache.revision
        else:
            try:
                items, last_key = self.cache.list_at(at, flt, start_after, limit)
            except TooOld as exc:
                raise errors.gone(str(exc) if not continue_token else CONTINUE_EXPIRED) from None
        token = ""
        if last_key is not None:
            token = base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", "rv": at, "start": last_key})).decode()
        return ListResult(items, at, token)

    def _list_revision(self, rv: str | None, match: str | None) -> int | None:
        """The exact revision a list must show, or None for "the newest"."""
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise errors.invalid_list_options([FieldError("FieldValueNotSupported", "resourceVersionMatch",
                                                          'supported values: "Exact", "NotOlderThan", ""', match)])
        if rv in (None, ""):
            if match:
                raise errors.invalid_list_options([FieldError("FieldValueForbidden", "resourceVersionMatch",
                                                              "resourceVersionMatch is forbidden unless resourceVersion is provided")])
            return None
        wanted = self.parse_rv(rv)
        if match == "Exact":
            if wanted == 0:
                raise errors.invalid_list_options([FieldError("FieldValueForbidden", "resourceVersionMatch",
                                                              'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')])
            if wanted > self.cache.revision:
                raise too_large_rv(wanted)
            return wanted
        if wanted > self.cache.revision:
            raise too_large_rv(wanted)
        return None

    def _decode_continue(self, token: str) -> tuple[str, int]:
        try:
            data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(data["rv"]), str(data["start"])
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise errors.bad_request("invalid continue token") from None
        if rv < self.cache.floor:
            raise errors.gone(CONTINUE_EXPIRED)
        if not start.startswith(self.rt.key_prefix()):
            raise errors.bad_request("invalid continue token")
        return start, rv

    def watch(self, namespace: str | None, *, label_selector: str | None = None, field_selector: str | None = None,
              resource_version: str | None = None, sink: Callable[[WatchEvent], None] | None = None) -> Watcher:
        flt = self.make_filter(namespace, label_selector, field_selector)
        since: int | None = None
        if resource_version not in (None, "", "0"):
            since = self.parse_rv(resource_version)
        try:
            return self.cache.watch(flt, since, sink)
        except TooOld as exc:
            raise errors.gone(str(exc)) from None

    @staticmethod
    def parse_rv(rv: str) -> int:
        try:
            value = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{rv}"') from None
        if value < 0:
            raise errors.bad_request(f'invalid resource version "{rv}"')
        return value

    # ---- create ---------------------------------------------------------------------

    def _check_kind(self, obj: Any) -> Obj:
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the body of the request must be a {self.rt.kind} object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        for field_name, value in (("apiVersion", api_version), ("kind", kind)):
            if value is not None and not isinstance(value, str):  # what Go's TypeMeta cannot hold
                raise errors.bad_request(f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                                         f"{_json_type(value)} into Go struct field .{field_name} of type string")
        if kind and kind != self.rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({self.rt.kind})")
        if api_version and api_version != self.rt.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API version "
                                     f"({self.rt.api_version})")
        obj["kind"] = self.rt.kind
        obj["apiVersion"] = self.rt.api_version
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        return meta

    def _set_namespace(self, meta: Obj, namespace: str | None) -> None:
        if not self.rt.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if namespace:
            meta["namespace"] = namespace

    def _validate(self, obj: Obj, errs: builtins.list[FieldError]) -> None:
        if errs:
            raise errors.invalid(self.rt, (obj.get("metadata") or {}).get("name") or "", errs)

    def _allocate(self, obj: Obj) -> None:
        """What the kind's registry allocates for a new object before it is stored (a
        Service's ClusterIP: ``ServiceStrategy.allocate``), from what the watch cache holds."""
        allocate = getattr(self.strategy, "allocate", None)
        if allocate is not None:
            self._validate(obj, allocate(obj, (co.obj for co in self.cache.objects.values())))

    def _allocate_update(self, new: Obj, old: Obj) -> None:
        """What an update of the object needs allocated (a Service's new node ports:
        ``ServiceStrategy.allocate_update``), from what the watch cache holds."""
        allocate = getattr(self.strategy, "allocate_update", None)
        if allocate is not None:
            self._validate(new, allocate(new, old, (co.obj for co in self.cache.objects.values())))

    def run_checkers(self, obj: Obj, mode: str | None) -> builtins.list[str]:
        """Schema checks (unknown fields etc.); raises for Strict, returns warnings for Warn."""
        warnings: list[str] = []
        if mode is None:  # an in-process write: nothing was decoded, so nothing to check
            return warnings
        for check in self.ctx.object_checkers:
            warnings += check(self.rt, obj, mode)
        return warnings

    def _allocation_guard(self, allocator: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """For kinds whose registry allocates (a Service's ClusterIP and node ports), one write at a
        time from allocation to commit: the used values are read from the watch cache, which
        has a write only once it committed, so two concurrent writes could pick the same one."""
        if getattr(self.strategy, allocator, None) is None:
            return contextlib.nullcontext()
        if self._allocation_lock is None:
            self._allocation_lock = asyncio.Lock()
        return self._allocation_lock

    async def create(self, obj: Any, namespace: str | None = None, *, dry_run: bool = False,
                     field_validation: str | None = "Ignore", now: datetime | None = None,
                     manager: str | None = None) -> tuple[CachedObject | Obj, builtins.list[str]]:
        async with self._allocation_guard("allocate"):
            return await self._create(obj, namespace, dry_run=dry_run, field_validation=field_validation, now=now,
                                      manager=manager)

    async def _create(self, obj: Any, namespace: str | None, *, dry_run: bool, field_validation: str | None,
                      now: datetime | None, manager: str | None) -> tuple[CachedObject | Obj, builtins.list[str]]:
        meta = self._check_kind(obj)
        self._set_namespace(meta, namespace)
        warnings = self.run_checkers(obj, field_validation)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(str(meta["generateName"]))
        stamp = now_rfc3339(now)
        for drop in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(drop, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = stamp
        if self.strategy.tracks_generation:
            meta["generation"] = 1
        self.strategy.prepare_for_create(obj)
        self.strategy.default(obj)
        if manager is not None:  # an HTTP write: in-process writes pass no manager and are not tracked
            # before mutating admission, as Kubernetes' create handler updates the managed
            # fields: what admission adds (a token volume, tolerations) is nobody's
            managed_fields.track_create(self.rt, obj, manager, schemas=self.ctx.catalog.schemas)
        # admission (podlife.api.admission): the mutating halves, validation, the validating halves
        attrs = Attributes(CREATE, None, dry_run)
        plugins = admission.chain(self, attrs)
        warnings += await plugins.mutate(self, obj, None, attrs)
        meta = self._check_kind(obj)  # a webhook's patch may have replaced it
        errs = validate_metadata(meta, namespaced=self.rt.namespaced, name_rule=self.strategy.name_rule)
        errs += self.strategy.validate(obj)
        self._validate(obj, errs)
        self._allocate(obj)
        rbac_guard(self, obj)
        key = self.rt.key(meta.get("namespace"), meta["name"])
        warnings += await plugins.validate(self, obj, None, attrs)  # ResourceQuota last: charged until released
        drop_empty_metadata(meta)  # what Kubernetes' omitempty leaves out of the stored object
        try:
            if dry_run:
                if self.cache.get(key) is not None:
                    raise errors.already_exists(self.rt, meta["name"])
                return obj, warnings
            kv = await self.store.create(key, encode_for_storage(obj), obj)
            if kv is None:
                raise errors.already_exists(self.rt, meta["name"])
            trace_write(self.ctx, key, kv.mod_revision, manager)
            return self._cached(key, kv.mod_revision, obj), warnings
        finally:
            if self.rt.namespaced:
                resource_quota.release(self, key)  # committed: the cache counts it; else nothing is charged

    def _cached(self, key: str, rv: int, obj: Obj) -> CachedObject:
        co = self.cache.get(key)
        if co is not None and co.rv == rv:
            return co
        obj["metadata"]["resourceVersion"] = str(rv)
        return CachedObject(key, obj, rv)

    # ---- update and patch -----------------------------------------------------------

    async def _read_for_update(self, key: str, name: str, *, shallow: bool = False) -> tuple[Obj, Obj, int]:
        """A copy of the newest object to change, the unchanged one, and its revision.

        The unchanged one is the watch cache's shared object when the cache is at the
        store's revision of the key (the usual case): it is only read, never changed.
        The copy is a private decode of the stored object, or with ``shallow`` (for
        changes that rebuild what they touch, as a merge patch does) a copy of the cached
        object's top level and metadata only, whose deeper parts stay shared and must not
        be changed in place -- which spares decoding the whole object on every write.
        """
        kv = await self.store.get(key)
        if kv is None:
            raise errors.not_found(self.rt, name)
        cached = self.cache.get(key)
        if cached is not None and cached.rv == kv.mod_revision:
            if shallow and self._serves_stored_form:
                obj = cached.obj
                current = dict(obj)
                current["metadata"] = dict(obj.get("metadata") or {})
                return current, obj, kv.mod_revision
            return self.from_storage(orjson.loads(kv.value), kv.mod_revision), cached.obj, kv.mod_revision
        current = self.from_storage(orjson.loads(kv.value), kv.mod_revision)
        return current, self.from_storage(orjson.loads(kv.value), kv.mod_revision), kv.mod_revision

    @property
    def _serves_stored_form(self) -> bool:
        """Whether objects are served as stored (no per-version conversion in from_storage)."""
        return type(self).from_storage is ResourceREST.from_storage

    def from_storage(self, obj: Obj, mod_revision: int) -> Obj:
        """A decoded stored object as this resource serves it (versioned kinds convert here)."""
        obj.setdefault("metadata", {})["resourceVersion"] = str(mod_revision)
        return obj

    async def _read_latest(self, key: str, name: str) -> tuple[Obj, int]:
        """A private copy of the newest stored object, and its mod_revision."""
        kv = await self.store.get(key)
        if kv is None:
            raise errors.not_found(self.rt, name)
        return self.from_storage(orjson.loads(kv.value), kv.mod_revision), kv.mod_revision

    async def update(self, namespace: str | None, name: str, obj: Any, *, subresource: str | None = None,
                     dry_run: bool = False, field_validation: str | None = "Ignore",
                     manager: str | None = None) -> tuple[CachedObject | Obj, builtins.list[str]]:
        meta = self._check_kind(obj)
        self._set_namespace(meta, namespace)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta["name"], name))
        meta["name"] = name
        warnings = self.run_checkers(obj, field_validation)
        wanted_rv = meta.get("resourceVersion") or None
        if wanted_rv is not None:
            self.parse_rv(wanted_rv)

        def replace(current: Obj) -> Obj:
            if wanted_rv is not None and current["metadata"].get("resourceVersion") != wanted_rv:
                raise errors.conflict(self.rt, name, errors.STALE_OBJECT)
            return obj

        result = await self.guaranteed_update(namespace, name, replace, subresource=subresource, dry_run=dry_run,
                                              retry=wanted_rv is None, manager=manager, warnings=warnings)
        return result, warnings

    async def patch(self, namespace: str | None, name: str, patch_type: str, body: Any, *,
                    subresource: str | None = None, dry_run: bool = False, field_validation: str | None = "Ignore",
                    manager: str | None = None) -> tuple[CachedObject | Obj, builtins.list[str]]:
        """``patch_type``: json (RFC 6902), merge (RFC 7386) or strategic (built-in kinds only: 415 otherwise)."""
        warnings: list[str] = []
        rt = self.rt
        if patch_type == "strategic" and not strategic_merge.supports_strategic_merge(rt.group, rt.version, rt.kind):
            raise errors.unsupported_media_type("application/strategic-merge-patch+json")

        # The body is the request's own (decoded for this request, or handed over by the
        # in-process client), so a merge patch may use its values without copying them.
        # A retry after a conflict starts again from a pristine copy: the first attempt's
        # object, which shares those values, may have been changed by the strategy.
        if patch_type == "json" and isinstance(body, list) and len(body) > MAX_JSON_PATCH_OPERATIONS:
            raise errors.request_entity_too_large(f"The allowed maximum operations in a JSON patch is "
                                                  f"{MAX_JSON_PATCH_OPERATIONS}, got {len(body)}")
        pristine = orjson.dumps(body) if patch_type == "merge" else b""
        attempts = 0

        def apply(current: Obj) -> Obj:
            nonlocal attempts
            attempts += 1
            try:
                if patch_type == "json":
                    if not isinstance(body, list):
                        raise errors.bad_request("json patch must be a list of operations")
                    patched = apply_json_patch(current, body)
                elif patch_type == "merge":
                    patched = apply_merge_patch(current, body if attempts == 1 else orjson.loads(pristine),
                                                take_patch=True)
                elif patch_type == "strategic":
                    patched = strategic_merge.apply_strategic_merge_patch_for(rt.group, rt.version, rt.kind, current, body)
                else:
                    raise errors.unsupported_media_type(patch_type)
            except PatchError as exc:
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            except ValueError as exc:  # strategic merge errors
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object must be a JSON object")
            pmeta = patched.get("metadata") or {}
            if not isinstance(pmeta, dict):
                raise undecodable_patch_result(self.rt, patched, "metadata", pmeta, "v1.ObjectMeta")
            if pmeta.get("resourceVersion") not in (None, current["metadata"].get("resourceVersion")):
                raise errors.conflict(self.rt, name, errors.STALE_OBJECT)
            warnings.extend(self.run_checkers(patched, field_validation))
            return patched

        # A merge patch rebuilds every dict on its paths and never changes the object it
        # patches, so it can start from a shallow copy (see _read_for_update).
        result = await self.guaranteed_update(namespace, name, apply, subresource=subresource, dry_run=dry_run,
                                              manager=manager, shallow_read=patch_type == "merge", warnings=warnings)
        return result, warnings

    async def guaranteed_update(self, namespace: str | None, name: str, mutate: Callable[[Obj], Obj], *,
                                subresource: str | None = None, dry_run: bool = False, retry: bool = True,
                                manager: str | None = None, shallow_read: bool = False,
                                warnings: builtins.list[str] | None = None) -> CachedObject | Obj:
        """:meth:`_guaranteed_update`, one at a time for kinds that allocate on update (see :meth:`_allocation_guard`)."""
        async with self._allocation_guard("allocate_update"):
            return await self._guaranteed_update(namespace, name, mutate, subresource=subresource, dry_run=dry_run,
                                                 retry=retry, manager=manager, shallow_read=shallow_read,
                                                 warnings=warnings)

    async def _guaranteed_update(self, namespace: str | None, name: str, mutate: Callable[[Obj], Obj], *,
                                 subresource: str | None = None, dry_run: bool = False, retry: bool = True,
                                 manager: str | None = None, shallow_read: bool = False,
                                 warnings: builtins.list[str] | None = None) -> CachedObject | Obj:
        """Read the newest object, ``mutate`` a copy, validate and commit; retry on races.

        ``shallow_read``: ``mutate`` changes nothing below the top level and metadata of
        the object it is given in place (see :meth:`_read_for_update`). Every attempt is
        admitted (:mod:`podlife.api.admission`: the mutating halves before the update's
        validation, the validating halves after it) by the plugins that see this kind of
        request -- the object itself, a subresource, or a server-internal write (binding,
        scale), which only NodeRestriction sees; the warnings of the attempt that succeeds
        go to ``warnings``.
        """
        key = self.rt.key(namespace, name)
        attrs = Attributes(UPDATE, subresource, dry_run)
        plugins = admission.chain(self, attrs)  # which plugins see it depends on the subresource
        base = len(warnings) if warnings is not None else 0
        for _ in range(MAX_RETRIES):
            if warnings is not None:
                del warnings[base:]  # only the attempt that ends the loop speaks to the client
            current, old, mod_rev = await self._read_for_update(key, name, shallow=shallow_read)
            new = mutate(current)
            hook_warnings: builtins.list[str] = []
            if isinstance(new, dict):
                hook_warnings += await plugins.mutate(self, new, old, attrs)
            new = self._prepare_update(new, old, subresource)
            hook_warnings += await plugins.validate(self, new, old, attrs)
            if warnings is not None:
                warnings += hook_warnings
            if manager is not None:  # an HTTP write (see create)
                managed_fields.track_update(self.rt, old, new, manager, subresource, schemas=self.ctx.catalog.schemas)
            drop_empty_metadata(new["metadata"])  # after the field manager, which reads the request's own managedFields
            if _same(new, old):
                return self.cache.get(key) or self._cached(key, mod_rev, old)
            if dry_run:
                return new
            share_unchanged(new, old)
            if self._finalized(new):
                res = await self.store.txn([Compare(key, mod_rev)], [Delete(key)])
            else:
                res = await self.store.txn([Compare(key, mod_rev)], [Put(key, encode_for_storage(new), new)])
            if res.succeeded:
                trace_write(self.ctx, key, res.revision, manager, subresource)
                return self._after_write(key, res, new)
            if not retry:
                raise errors.conflict(self.rt, name, errors.STALE_OBJECT)
        raise errors.conflict(self.rt, name, "too many concurrent updates, please retry")

    def _after_write(self, key: str, res: TxnResult, new: Obj) -> CachedObject:
        if res.results and res.results[0] is not None and res.results[0].mod_revision != res.revision:
            # deleted: answer with the last state at the deletion revision
            new["metadata"]["resourceVersion"] = str(res.revision)
            return CachedObject(key, new, res.revision)
        return self._cached(key, res.revision, new)

    def _prepare_update(self, new: Any, old: Obj, subresource: str | None) -> Obj:
        if not isinstance(new, dict):
            raise errors.bad_request("the object must be a JSON object")
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            new["metadata"] = meta = {}
        new["kind"], new["apiVersion"] = self.rt.kind, self.rt.api_version
        old_meta = old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise errors.conflict(self.rt, old_meta["name"], f"Precondition failed: UID in precondition: {meta['uid']}, UID "
                                                             f"in object meta: {old_meta.get('uid')}")
        for fixed in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        meta.pop("resourceVersion", None)
        if subresource == "status":
            new = self.strategy.prepare_for_status_update(new, old)
            errs = self.strategy.validate_status_update(new, old)
        elif subresource in (None, ""):
            self.strategy.prepare_for_update(new, old)
            self.strategy.default_update(new, old)
            errs = validate_metadata(new["metadata"], namespaced=self.rt.namespaced, name_rule=self.strategy.name_rule)
            errs += self.strategy.validate_update(new, old)
        elif subresource == "finalize":
            new = self._finalize_update(new, old)
            errs = []
        elif subresource == INTERNAL:
            errs = []  # a change the server makes itself (binding, finalization)
        elif subresource in self.strategy.update_subresources:  # the kind's own (a CSR's approval)
            new = self.strategy.prepare_for_subresource_update(subresource, new, old)
            errs = self.strategy.validate_subresource_update(subresource, new, old)
        else:
            raise errors.path_not_found(subresource)
        self._validate(new, errs)
        if subresource in (None, ""):
            self._allocate_update(new, old)
        if subresource != "status" and self.strategy.tracks_generation and self.strategy.spec_changed(new, old):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        # a fresh metadata dict: strategies may have shared old's, which must stay untouched
        new["metadata"] = {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
        if subresource is None:
            rbac_guard(self, new, old)
        return new

    @staticmethod
    def _finalize_update(new: Obj, old: Obj) -> Obj:
        """``namespaces/finalize``: only ``spec.finalizers`` changes."""
        finalizers = (new.get("spec") or {}).get("finalizers") or []
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise errors.bad_request("spec.finalizers must be a list of strings")
        merged = dict(old)
        merged["spec"] = {**(old.get("spec") or {}), "finalizers": finalizers}
        return merged

    def _finalized(self, obj: Obj) -> bool:
        """A deleted object whose last finalizer just went, and whose grace has run out."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or self.strategy_pending_finalizers(obj):
            return False
        return not meta.get("deletionGracePeriodSeconds")

    def strategy_pending_finalizers(self, obj: Obj) -> builtins.list[str]:
        pending = list(obj["metadata"].get("finalizers") or [])
        if self.rt.kind == "Namespace" and not self.rt.group:
            pending += (obj.get("spec") or {}).get("finalizers") or []
        return pending

    # ---- delete ---------------------------------------------------------------------

    async def delete(self, namespace: str | None, name: str, options: DeleteOptions | None = None,
                     now: datetime | None = None) -> CachedObject | Obj:
        options = options or DeleteOptions()
        key = self.rt.key(namespace, name)
        attrs = Attributes(DELETE, None, options.dry_run)
        plugins = admission.chain(self, attrs)
        for _ in range(MAX_RETRIES):
            current, mod_rev = await self._read_latest(key, name)
            self._check_preconditions(current, options, name)
            await plugins.validate_delete(self, current, attrs)  # a delete's warnings are not answered
            updated = self._mark_deleted(current, options, now)
            if options.dry_run:
                return updated or current
            if updated is None:
                res = await self.store.txn([Compare(key, mod_rev)], [Delete(key)])
                if res.succeeded:
                    trace_write(self.ctx, key, res.revision, None)
                    current["metadata"]["resourceVersion"] = str(res.revision)
                    return CachedObject(key, current, res.revision)
            else:
                if _same(updated, current):
                    return self.cache.get(key) or self._cached(key, mod_rev, current)
                updated["metadata"].pop("resourceVersion", None)
                res = await self.store.txn([Compare(key, mod_rev)], [Put(key, encode_for_storage(updated), updated)])
                if res.succeeded:
                    trace_write(self.ctx, key, res.revision, None)
                    return self._cached(key, res.revision, updated)
        raise errors.conflict(self.rt, name, "too many concurrent updates, please retry")

    def _check_preconditions(self, current: Obj, options: DeleteOptions, name: str) -> None:
        meta = current["metadata"]
        if options.preconditions_uid and options.preconditions_uid != meta.get("uid"):
            raise errors.conflict(self.rt, name, f"Precondition failed: UID in precondition: {options.preconditions_uid}, UID "
                                                 f"in object meta: {meta.get('uid')}")
        if options.preconditions_rv and options.preconditions_rv != meta.get("resourceVersion"):
            raise errors.conflict(self.rt, name, "Precondition failed: ResourceVersion in precondition: "
                                                 f"{options.preconditions_rv}, ResourceVersion in object meta: "
                                                 f"{meta.get('resourceVersion')}")

    def _mark_deleted(self, current: Obj, options: DeleteOptions, now: datetime | None) -> Obj | None:
        """The object as it stays after the delete request, or None to remove it now."""
        if not current["metadata"].get("deletionTimestamp"):
            self.strategy.prepare_for_delete(current, now_rfc3339(now))
        meta = current["metadata"]
        grace = self.strategy.grace_period(current, options.grace_period_seconds)
        finalizers = list(meta.get("finalizers") or [])
        if options.propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("foregroundDeletion")
        elif options.propagation_policy == "Orphan" and "orphan" not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append("orphan")
        pending = finalizers or self.strategy_pending_finalizers(current)
        if meta.get("deletionTimestamp"):
            old_grace = meta.get("deletionGracePeriodSeconds") or 0
            if grace == 0 and not pending:
                return None
            if grace >= old_grace:
                return current  # nothing to shorten
        elif grace == 0 and not pending:
            return None
        updated = orjson.loads(orjson.dumps(current))
        umeta = updated["metadata"]
        moment = now or datetime.now(timezone.utc)
        umeta["deletionTimestamp"] = now_rfc3339(moment + timedelta(seconds=min(grace, MAX_GRACE_SECONDS)))
        umeta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            umeta["finalizers"] = finalizers
        if self.rt.kind == "Namespace" and not self.rt.group:
            updated.setdefault("status", {})["phase"] = "Terminating"
        return updated


def selector_filter(rt: ResourceType, namespace: str | None, label_selector: str | None,
                    field_selector: str | None) -> Filter:
    """The watch cache's Filter for a request's selectors (400 for a malformed or unsupported one)."""
    try:
        labels = parse_label_selector(label_selector) if label_selector else None
        fields = parse_field_selector(field_selector) if field_selector else None
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None
    if fields is not None:
        for req in fields.requirements:
            name = req[0] if isinstance(req, tuple) else getattr(req, "field", None)
            if name not in rt.field_getters:
                raise errors.bad_request(f"field label not supported: {name}")
    return Filter(rt, namespace if rt.namespaced else None, labels, fields)


def trace_write(ctx: ApiContext, key: str, revision: int, manager: str | None, subresource: str | None = None) -> None:
    """Name the writer of a committed write to the pod traces (:meth:`podlife.trace.recorder.PodTraces.wrote`):
    the request's field manager and user. After the commit, which the traces' store listener has seen."""
    trace = ctx.trace
    if trace is not None:
        user = CURRENT_USER.get()
        trace.wrote(key, revision, manager, user.username if user is not None else None, subresource)


def undecodable_patch_result(rt: ResourceType, patched: Obj, field: str, value: Any, go_type: str) -> errors.ApiError:
    """422 for a patch whose result Kubernetes could not decode into the kind's Go type."""
    shown = {str: "string", bool: "bool", int: "number", float: "number", list: "array"}.get(type(value), "value")
    reason = f"json: cannot unmarshal {shown} into Go struct field {rt.kind}.{field} of type {go_type}"
    rendered = orjson.dumps(orjson.dumps(patched).decode()).decode()
    return errors.ApiError(422, "Invalid", f' "" is invalid: patch: Invalid value: {rendered}: {reason}',
                           {"causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {rendered}: {reason}",
                                        "field": "patch"}]})


def _same(a: Obj, b: Obj) -> bool:
    """Equal ignoring resourceVersion (a no-op write is not stored)."""
    am, bm = a.get("metadata") or {}, b.get("metadata") or {}
    if {k: v for k, v in am.items() if k != "resourceVersion"} != {k: v for k, v in bm.items() if k != "resourceVersion"}:
        return False
    return {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}


def share_unchanged(new: Obj, old: Obj) -> None:
    """Point the parts of ``new`` that equal ``old``'s at ``old``'s own.

    ``old`` is the cached version (or a private decode of it), which nobody changes,
    and ``new`` is about to be stored and cached, never to be changed either -- so the
    versions of an object in the watch cache can share whatever a write left alone.
    A status write then adds the changed part of the status, not a whole new object:
    the decoded duplicates die at once, which keeps memory down and spares Python's
    cyclic garbage collector from examining a full object tree per write (at scale, a
    tenth of the server's CPU). ``new`` itself and its metadata dict stay its own: the
    resourceVersion is set on them after the write.
    """
    for key, value in new.items():
        if key == "metadata":
            old_meta = old.get("metadata")
            if type(value) is dict and type(old_meta) is dict:
                _share_into(value, old_meta, 1)
        else:
            _share_value(new, key, value, old.get(key), 1)


def _share_into(new: dict[str, Any], old: dict[str, Any], depth: int) -> None:
    for key, value in new.items():
        _share_value(new, key, value, old.get(key), depth)


def _share_value(parent: dict[str, Any], key: str, value: Any, old: Any, depth: int) -> None:
    t = type(value)
    if (t is not dict and t is not list) or type(old) is not t:
        return
    if value == old:
        parent[key] = old
    elif depth < 3:
        if isinstance(value, dict) and isinstance(old, dict):
            _share_into(value, old, depth + 1)
        elif len(value) == len(old):  # a list of records (conditions, container statuses)
            for i, (item, old_item) in enumerate(zip(value, old)):
                if type(item) is dict and item == old_item:
                    value[i] = old_item


_UID_BATCH = 256  # uids' worth of random bytes read per os.urandom call
_uid_pool: list[bytes] = []


def new_uid() -> str:
    """A random (version 4) UUID in its canonical text, as ``str(uuid.uuid4())`` but without
    building a ``UUID`` object, and from the same kernel randomness read 4 KiB at a time: one
    ``getrandom`` system call per 256 created objects instead of one each."""
    if not _uid_pool:
        raw = os.urandom(16 * _UID_BATCH)
        _uid_pool.extend(raw[i:i + 16] for i in range(0, len(raw), 16))
    b = bytearray(_uid_pool.pop())
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_for_storage(obj: Obj) -> bytes:
    """The stored form: Kubernetes' field order, resourceVersion empty (the store's revision is it).

    The empty resourceVersion keeps the field's place in metadata (Kubernetes' etcd
    storage likewise clears it), so the revision set after the write lands where
    Kubernetes puts it rather than after managedFields.
    """
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta["resourceVersion"] = ""
    put_in_kubernetes_order(obj)
    data = orjson.dumps(obj)
    if len(data) > MAX_STORED_OBJECT_BYTES:  # what etcd refuses (--max-request-bytes), refused before the store
        raise errors.ApiError(413, "RequestEntityTooLarge", "etcdserver: request is too large")
    return data


#: etcd's default request limit (1.5 MiB): no stored object may be larger, as on Kubernetes
MAX_STORED_OBJECT_BYTES = int(1.5 * 1024 * 1024)


def _json_type(value: Any) -> str:
    """The JSON type name Go's decoder uses in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"
