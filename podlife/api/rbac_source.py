"""The RBAC objects the authorizer reads, straight from the API server's watch caches.

Why the caches: authorization runs on every request, and the four RBAC kinds are in
memory already, current to the last commit (the cache is fed before a write returns),
so a RoleBinding works for the very next request -- as in Kubernetes, where the
authorizer reads informer caches. Nothing is copied: the objects handed out are the
cached, read-only ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rest import ApiContext, ResourceREST

Obj = dict[str, Any]
GROUP, VERSION = "rbac.authorization.k8s.io", "v1"


class CacheRBACSource:
    """``RBACSource`` over one API server's caches of Roles, ClusterRoles and their bindings."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def _rest(self, plural: str) -> ResourceREST | None:
        return self._ctx.rest_by(GROUP, VERSION, plural)

    def _get(self, plural: str, namespace: str | None, name: str) -> Obj | None:
        rest = self._rest(plural)
        if rest is None:
            return None
        co = rest.cache.get(rest.rt.key(namespace, name))
        return co.obj if co is not None else None

    def _all(self, plural: str, namespace: str | None = None) -> Iterator[Obj]:
        rest = self._rest(plural)
        if rest is None:
            return
        for co in rest.cache.in_namespace(namespace):
            yield co.obj

    def cluster_role(self, name: str) -> Obj | None:
        return self._get("clusterroles", None, name)

    def role(self, namespace: str, name: str) -> Obj | None:
        return self._get("roles", namespace, name)

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._all("clusterrolebindings")

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        if not namespace:
            return ()
        return self._all("rolebindings", namespace)

    def bindings_version(self) -> tuple[int, int, int, int]:
        """Changes whenever a binding does: the revision of each binding cache's newest event, and its size.

        (A cache's ``revision`` moves with every commit of any kind, which would make the
        authorizer re-index on every request.)
        """
        out: list[int] = []
        for plural in ("clusterrolebindings", "rolebindings"):
            rest = self._rest(plural)
            if rest is None:
                out += [0, 0]
                continue
            window = rest.cache.window
            out += [window[-1][0] if window else 0, len(rest.cache.objects)]
        return out[0], out[1], out[2], out[3]

    def policy_version(self) -> tuple[int, ...]:
        """Changes whenever any role or binding does (the same measure over all four RBAC caches)."""
        out: list[int] = list(self.bindings_version())
        for plural in ("clusterroles", "roles"):
            rest = self._rest(plural)
            window = rest.cache.window if rest is not None else None
            out += [window[-1][0] if window else 0, len(rest.cache.objects) if rest is not None else 0]
        return tuple(out)




class CachePodSource:
    """The pods and claims of one API server's cache (the Node authorizer's graph)."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def pods(self, namespace: str | None) -> Iterator[Obj]:
        return self._objects("pods", namespace)

    def claims(self, namespace: str) -> Iterator[Obj]:
        return self._objects("persistentvolumeclaims", namespace)

    def _objects(self, plural: str, namespace: str | None) -> Iterator[Obj]:
        rest = self._ctx.rest_by("", "v1", plural)
        if rest is None:
            return
        for co in rest.cache.in_namespace(namespace):
            yield co.obj


__all__ = ["CachePodSource", "CacheRBACSource"]
