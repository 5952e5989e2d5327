"""Assembling the API: store + watch cache + one ResourceREST per served kind.

:func:`build_api` is all a process needs to serve the API in memory; the HTTP server
(:mod:`podlife.api.server`) and the in-process client both sit on what it returns.
It also creates the namespaces every cluster has (default, kube-system, kube-public,
kube-node-lease).
"""

from __future__ import annotations

from ..registry.catalog import Catalog
from ..store.base import Store
from ..registry.core import KUBERNETES_SERVICE_IP
from .cache import WatchCache
from .crds import install as install_crds
from .fieldvalidation import SchemaChecker
from .rest import ApiContext, ResourceREST

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def build_api(store: Store, catalog: Catalog | None = None) -> ApiContext:
    catalog = catalog or Catalog()
    watch_cache = WatchCache(store)
    ctx = ApiContext(store, catalog, watch_cache)
    ctx.object_checkers.append(SchemaChecker(catalog.schemas))
    for rt in catalog.types:
        await add_resource(ctx, rt)
    await install_crds(ctx)  # serves the custom resources of stored CRDs, then follows CRDs
    await ensure_namespaces(ctx)
    await ensure_kubernetes_service(ctx)
    return ctx


async def add_resource(ctx: ApiContext, rt) -> ResourceREST:
    cache = await ctx.watch_cache.add(rt)
    rest = ResourceREST(rt, ctx, cache)
    ctx.rest[(rt.group, rt.version, rt.plural)] = rest
    return rest


async def ensure_kubernetes_service(ctx: ApiContext) -> None:
    """The ``kubernetes`` Service every cluster has, on the first address of the range."""
    rest = ctx.rest_by("", "v1", "services")
    if rest is None or rest.cache.get(rest.rt.key("default", "kubernetes")) is not None:
        return
    await rest.create({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                       "spec": {"clusterIP": KUBERNETES_SERVICE_IP, "type": "ClusterIP",
                                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}})


#: the cluster DNS Service as kubeadm creates it (no selector here: podlife's DNS is a node-local
#: component that answers on the Service's address inside each node namespace, not pods)
DNS_SERVICE_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}


async def ensure_dns_service(ctx: ApiContext, cluster_ip: str) -> None:
    """``kube-system/kube-dns`` on ``cluster_ip`` (the first ``--cluster-dns`` address), if missing."""
    rest = ctx.rest_by("", "v1", "services")
    if rest is None or rest.cache.get(rest.rt.key("kube-system", "kube-dns")) is not None:
        return
    await rest.create({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": dict(DNS_SERVICE_LABELS),
                                    "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
                       "spec": {"clusterIP": cluster_ip, "type": "ClusterIP",
                                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                          {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}})


async def ensure_namespaces(ctx: ApiContext) -> None:
    ns_rest = ctx.rest_by("", "v1", "namespaces")
    if ns_rest is None:
        return
    for name in SYSTEM_NAMESPACES:
        if ns_rest.cache.get(ns_rest.rt.key(None, name)) is None:
            await ns_rest.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
