"""API discovery: ``/api``, ``/apis``, group-versions, and aggregated discovery.

kubectl 1.32 asks ``/api`` and ``/apis`` for the aggregated form first
(``APIGroupDiscoveryList``, which must carry its exact content type, or kubectl says
"the server doesn't have a resource type"); the Python clients use the legacy
``APIVersions``/``APIGroupList``/``APIResourceList`` documents. Both are derived from
the catalog, so every registered kind is discoverable with its verbs, short names,
categories and subresources.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..registry.catalog import Catalog
from ..registry.types import ResourceType

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "finalize": ["update"],
    "token": ["create"],
}
_SUBRESOURCE_KINDS = {"binding": "Binding", "eviction": "Eviction", "scale": "Scale", "log": "Pod",
                      "exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions",
                      "token": "TokenRequest"}
#: subresources whose kind is of another group (kubectl drain finds the Eviction's group here); Kubernetes
#: names them in the legacy list's ``group``/``version`` and the aggregated ``responseKind``
_SUBRESOURCE_GROUP_VERSIONS = {"eviction": ("policy", "v1"), "token": ("authentication.k8s.io", "v1"), "scale": ("autoscaling", "v1")}


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def _groups(catalog: Catalog) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, version in catalog.group_versions():
        if group:
            groups.setdefault(group, [])
            if version not in groups[group]:
                groups[group].append(version)
    return groups


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(catalog: Catalog) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in _groups(catalog).items()]}


def api_group(catalog: Catalog, group: str) -> dict[str, Any] | None:
    versions = _groups(catalog).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular_name, "namespaced": rt.namespaced,
                             "kind": rt.kind, "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def api_resource_list(catalog: Catalog, group: str, version: str) -> dict[str, Any] | None:
    types = list(catalog.in_group_version(group, version))
    if not types:
        return None
    resources = []
    for rt in types:
        resources.append(_resource_entry(rt))
        for sub in rt.subresources:
            entry = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced}
            if sub in _SUBRESOURCE_GROUP_VERSIONS:
                entry["group"], entry["version"] = _SUBRESOURCE_GROUP_VERSIONS[sub]
            resources.append({**entry, "kind": _SUBRESOURCE_KINDS.get(sub, rt.kind), "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.categories:
        out["categories"] = list(rt.categories)
    if rt.subresources:
        out["subresources"] = [
            {"subresource": sub,
             "responseKind": {"group": rt.group if sub in ("status", "ephemeralcontainers")
                              else _SUBRESOURCE_GROUP_VERSIONS.get(sub, ("",))[0],
                              "version": rt.version if sub in ("status", "ephemeralcontainers") else "v1",
                              "kind": _SUBRESOURCE_KINDS.get(sub, rt.kind)},
             "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])}
            for sub in rt.subresources
        ]
    return out


def aggregated(catalog: Catalog, legacy: bool, api_version: str = "apidiscovery.k8s.io/v2") -> dict[str, Any]:
    """The APIGroupDiscoveryList of ``/api`` (legacy=True) or ``/apis``."""
    groups: dict[str, dict[str, list[ResourceType]]] = {}
    for rt in catalog.types:
        if (rt.group == "") != legacy:
            continue
        groups.setdefault(rt.group, {}).setdefault(rt.version, []).append(rt)
    items = []
    for group, versions in groups.items():
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{"version": v, "resources": [_aggregated_resource(rt) for rt in rts], "freshness": "Current"}
                         for v, rts in versions.items()],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def cache_headers(body: bytes) -> dict[str, str]:
    """``ETag``/``Vary``/``Cache-Control`` of an aggregated discovery answer, as Kubernetes sends.

    The ETag is a hash of the body, so it changes exactly when the served resources do
    (a CRD established or removed): kubectl's HTTP cache revalidates with
    ``If-None-Match`` and gets the new document, or a 304 when nothing changed.
    """
    return {"ETag": f'"{hashlib.sha512(body).hexdigest().upper()}"', "Vary": "Accept", "Cache-Control": "public"}
