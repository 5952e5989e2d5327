"""The in-process client: the API server's REST layer, called without HTTP.

Same rules as over HTTP (it calls :class:`podlife.api.rest.ResourceREST`), so a
component cannot tell which transport it runs on. ``get`` and ``list`` return fresh
copies; watch events carry the watch cache's shared objects (read-only).

What a write returns is a fresh copy too, unless the client is made with
``shared_results=True``: then it is the watch cache's object itself, which the caller
must only read. The cluster's own components use that (they read what their writes
return -- a resourceVersion, a port's address -- and never change it, just as they never
change the objects their informers hand them), which spares a decode of the whole
object for every write; code that edits what it gets back keeps the default.
Request bodies are always copied, so callers may keep and reuse theirs.

Who is calling: each client acts as one user (:mod:`podlife.api.identity` names the
components'), and every call is authorized as an HTTP request with the same verb,
resource, subresource, namespace and name would be -- by the API server's authorizer
(Node, then RBAC) once the HTTP server is up and authenticates -- and refused with the
same 403. ``reads_as`` is a second identity a component reads with (gets, lists and
watches): kube-controller-manager's shared informers and listers read as
``system:kube-controller-manager`` while each controller writes as its service account, so
a controller's read is allowed when either identity may make it. The caller is also the admission chain's requesting user
(:data:`~podlife.api.rbac_guard.CURRENT_USER`: RBAC's escalation checks, NodeRestriction,
webhooks) and is written to the audit log when there is one. With no authorizer (a bare
API for tests, or a server without authentication) every call is allowed.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson

from ..machinery import errors
from ..machinery.selectors import SelectorError, parse_field_selector
from ..client.base import Client, Obj, Resource, WatchEvent
from .authz.attributes import Attributes
from .authz.rbac import forbidden_error
from .cache import CachedObject
from .identity import APISERVER_USER, UserInfo
from .rbac_guard import CURRENT_USER
from .rest import ApiContext, DeleteOptions, ResourceREST

T = TypeVar("T")
_READS = frozenset({"get", "list", "watch"})
log = logging.getLogger(__name__)


def _own(value: CachedObject | Obj) -> Obj:
    if isinstance(value, CachedObject):
        return value.copy()
    return orjson.loads(orjson.dumps(value))


class LocalClient(Client):
    def __init__(self, ctx: ApiContext, *, user: UserInfo = APISERVER_USER, reads_as: UserInfo | None = None,
                 user_agent: str = "podlife", shared_results: bool = False) -> None:
        self.ctx = ctx
        self.user = user
        self.reads_as = reads_as or user
        self.user_agent = user_agent
        self.shared_results = shared_results

    def as_user(self, user: UserInfo, *, reads_as: UserInfo | None = None, user_agent: str | None = None) -> LocalClient:
        """A client of the same API acting as ``user`` (its reads as ``reads_as``, default ``user``)."""
        return LocalClient(self.ctx, user=user, reads_as=reads_as, user_agent=user_agent or self.user_agent,
                           shared_results=self.shared_results)

    def _decide(self, user: UserInfo, verb: str, res: Resource, namespace: str | None, name: str = "",
                subresource: str = "") -> tuple[Attributes, Any]:
        """The call's attributes and the authorizer's decision (None: there is no authorizer)."""
        attrs = Attributes(user, verb, True, res.group, res.version, res.plural, subresource,
                           (namespace or "") if res.namespaced else "", name)
        authorizer = self.ctx.authorizer
        return attrs, (authorizer.authorize(attrs) if authorizer is not None else None)

    def _authorize(self, user: UserInfo, verb: str, res: Resource, namespace: str | None, name: str = "",
                   subresource: str = "") -> None:
        """Refuse (403) what ``user`` may not do."""
        attrs, decision = self._decide(user, verb, res, namespace, name, subresource)
        if decision is not None and not decision.allowed:
            raise self._refusal(attrs, decision)

    @staticmethod
    def _refusal(attrs: Attributes, decision: Any) -> errors.ApiError:
        log.warning("%s may not %s %s%s: %s", attrs.user.username, attrs.verb, attrs.resource,
                    f"/{attrs.subresource}" if attrs.subresource else "", decision.reason or "no rule allows it")
        return forbidden_error(attrs, decision.reason)

    def _reader(self, verb: str, res: Resource, namespace: str | None, name: str) -> UserInfo:
        """Who makes a read: this client's user, or ``reads_as`` when only that one may."""
        if self.reads_as is self.user or self.ctx.authorizer is None:
            return self.user
        attrs = Attributes(self.user, verb, True, res.group, res.version, res.plural, "",
                           (namespace or "") if res.namespaced else "", name)
        return self.user if self.ctx.authorizer.authorize(attrs).allowed else self.reads_as

    async def _call(self, verb: str, res: Resource, namespace: str | None, call: Callable[[], Awaitable[T]], *,
                    name: str = "", subresource: str = "", body: Any = None) -> T:
        """Authorize, then run ``call`` as this client's user (audited when there is an audit log)."""
        user = self._reader(verb, res, namespace, name) if verb in _READS else self.user
        attrs, decision = self._decide(user, verb, res, namespace, name, subresource)
        allowed = decision is None or decision.allowed
        audit = self.ctx.audit
        if audit is None and not allowed:
            raise self._refusal(attrs, decision)
        token = CURRENT_USER.set(user)
        try:
            if audit is None:
                return await call()

            async def authorized_call() -> T:
                if not allowed:
                    raise self._refusal(attrs, decision)
                return await call()

            uri = res.path(namespace, name, subresource)
            return await audit.record_call(attrs, uri, self.user_agent, authorized_call, body, decision)
        finally:
            CURRENT_USER.reset(token)

    def _result(self, value: CachedObject | Obj) -> Obj:
        """What a write returns: the cache's object when results are shared, else a copy."""
        if self.shared_results:
            return value.obj if isinstance(value, CachedObject) else value
        return _own(value)

    def _rest(self, res: Resource) -> ResourceREST:
        rest = self.ctx.rest_by(res.group, res.version, res.plural)
        if rest is None:
            raise errors.path_not_found(res.path())
        return rest

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        rest = self._rest(res)

        async def call() -> Obj:
            return rest.get(namespace, name).copy()

        return await self._call("get", res, namespace, call, name=name)

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        rest = self._rest(res)

        async def call() -> Obj:
            result = rest.list(namespace, label_selector=label_selector, field_selector=field_selector,
                               limit=limit, continue_token=continue_token)
            meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
            if result.continue_token:
                meta["continue"] = result.continue_token
            return {"kind": rest.rt.list_kind, "apiVersion": rest.rt.api_version, "metadata": meta,
                    "items": [co.copy() for co in result.items]}

        return await self._call("list", res, namespace, call, name=_selected_name(field_selector))

    async def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        import asyncio

        rest = self._rest(res)
        name = _selected_name(field_selector)
        self._authorize(self._reader("watch", res, namespace, name), "watch", res, namespace, name)
        watcher = rest.watch(namespace, label_selector=label_selector, field_selector=field_selector,
                             resource_version=resource_version)
        deadline = asyncio.get_running_loop().time() + timeout_seconds if timeout_seconds else None
        try:
            while True:
                if deadline is None:
                    ev = await watcher.queue.get()
                else:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        return
                    try:
                        ev = await asyncio.wait_for(watcher.queue.get(), remaining)
                    except TimeoutError:
                        return
                if ev is None:
                    return
                yield WatchEvent(ev.type, ev.object.obj)
        finally:
            watcher.stop()

    def subscribe(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                  field_selector: str | None = None,
                  on_event: Callable[[str, Obj], None]) -> Callable[[], None] | None:
        """A watch whose events are handed to ``on_event`` as the store publishes them.

        No queue, no task and no async generator per event: for the informers of the
        cluster's own components this is most of what a watch event costs.
        """
        rest = self._rest(res)
        name = _selected_name(field_selector)
        self._authorize(self._reader("watch", res, namespace, name), "watch", res, namespace, name)
        watcher = rest.watch(namespace, label_selector=label_selector, field_selector=field_selector,
                             sink=lambda ev: on_event(ev.type, ev.object.obj))
        return watcher.stop

    async def discover(self) -> builtins.list[Resource]:
        return [Resource(t.group, t.version, t.plural, t.kind, t.namespaced) for t in self.ctx.catalog.types
                if "list" in t.verbs and "watch" in t.verbs and "delete" in t.verbs]

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        rest, body = self._rest(res), _own(obj)
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")

        async def call() -> Obj:
            if not rest.rt.strategy.stored:  # a review: answered, not stored (as POST answers it)
                return self._access_review(rest, body, namespace)
            created, _ = await rest.create(body, namespace, field_validation=None)
            return self._result(created)

        return await self._call("create", res, namespace, call, body=obj)

    def _access_review(self, rest: ResourceREST, body: Obj, namespace: str | None) -> Obj:
        """A (Local)SubjectAccessReview answered in process by the API server's authorizer."""
        from .access_reviews import subject_access_review

        kind = rest.rt.kind
        if kind not in ("SubjectAccessReview", "LocalSubjectAccessReview") or self.ctx.authorizer is None:
            raise errors.method_not_allowed(f"{kind} is not answered in process")
        body = {**body, "kind": kind, "apiVersion": rest.rt.api_version}
        body.setdefault("metadata", {})
        local = (namespace or "") if kind == "LocalSubjectAccessReview" else None
        return subject_access_review(body, self.ctx.authorizer, namespace=local)

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        from ..api.subresources import create_subresource

        rest = self._rest(res)

        async def call() -> Obj:
            if (rest.rt.group, rest.rt.plural, subresource) == ("", "serviceaccounts", "token"):
                return self._token_request(rest, namespace, name, _own(obj))
            return await create_subresource(self.ctx, rest, namespace, name, subresource, _own(obj))

        return await self._call("create", res, namespace, call, name=name, subresource=subresource, body=obj)

    def _token_request(self, rest: ResourceREST, namespace: str | None, name: str, body: Obj) -> Obj:
        """A TokenRequest answered in process, as ``POST serviceaccounts/<name>/token`` answers it."""
        from .authn import AuthenticationOptions
        from .handlers import Target
        from .reviews import issue_token

        if self.ctx.token_issuer is None:
            raise errors.ApiError(503, "ServiceUnavailable", "service account tokens cannot be issued: no signing key")
        options = self.ctx.authentication_options or AuthenticationOptions()
        answer, _ = issue_token(Target(rest, namespace, name, "token"), body, self.ctx.token_issuer, options)
        return answer

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        rest, body, namespace, name = self._rest(res), _own(obj), meta.get("namespace"), meta.get("name", "")

        async def call() -> Obj:
            updated, _ = await rest.update(namespace, name, body, subresource=subresource, field_validation=None)
            return self._result(updated)

        return await self._call("update", res, namespace, call, name=name, subresource=subresource or "", body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        rest, body = self._rest(res), _own(patch)

        async def call() -> Obj:
            patched, _ = await rest.patch(namespace, name, patch_type, body, subresource=subresource,
                                          field_validation=None)
            return self._result(patched)

        return await self._call("patch", res, namespace, call, name=name, subresource=subresource or "", body=patch)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> Obj:
        pre = preconditions or {}
        opts = DeleteOptions(grace_period_seconds, propagation_policy, pre.get("uid"), pre.get("resourceVersion"))
        rest = self._rest(res)

        async def call() -> Obj:
            return self._result(await rest.delete(namespace, name, opts))

        return await self._call("delete", res, namespace, call, name=name)


def _selected_name(field_selector: str | None) -> str:
    """The name a list or watch pins with ``metadata.name=`` (authorized as that object's), else ""."""
    if not field_selector or "metadata.name" not in field_selector:
        return ""
    try:
        return parse_field_selector(field_selector).exact("metadata.name") or ""
    except SelectorError:
        return ""
