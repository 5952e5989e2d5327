"""Discovery names the group of subresources whose kind is of another group, as Kubernetes does.

``serviceaccounts/token`` answers an ``authentication.k8s.io/v1`` TokenRequest and
``pods/eviction`` takes a ``policy/v1`` Eviction: the legacy ``APIResourceList`` carries
``group``/``version`` on those entries (and on no same-group one such as
``pods/binding``), the aggregated document the same in the subresource's
``responseKind``. ``kubectl create token`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from podlife.api import discovery
from podlife.registry.catalog import Catalog

from .cluster_harness import PodlifeProcess, require_tool

CORE = "/api/v1"
AGGREGATED = {"Accept": discovery.AGGREGATED_CONTENT_TYPE}


def legacy_entries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in doc["resources"]}


def aggregated_subresources(doc: dict[str, Any], resource: str) -> dict[str, dict[str, Any]]:
    for group in doc["items"]:
        for version in group["versions"]:
            for r in version["resources"]:
                if r["resource"] == resource:
                    return {s["subresource"]: s for s in r.get("subresources", [])}
    raise AssertionError(f"{resource} not in the aggregated document")


def test_legacy_list_names_the_token_request_group() -> None:
    doc = discovery.api_resource_list(Catalog(), "", "v1")
    assert doc is not None
    entries = legacy_entries(doc)
    assert entries["serviceaccounts/token"] == {"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
                                                "group": "authentication.k8s.io", "version": "v1",
                                                "kind": "TokenRequest", "verbs": ["create"]}
    assert (entries["pods/eviction"]["group"], entries["pods/eviction"]["version"]) == ("policy", "v1")
    assert "group" not in entries["pods/binding"] and "version" not in entries["pods/binding"]


def test_aggregated_document_names_the_token_request_group() -> None:
    doc = discovery.aggregated(Catalog(), legacy=True)
    token = aggregated_subresources(doc, "serviceaccounts")["token"]
    assert token == {"subresource": "token", "verbs": ["create"],
                     "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}}
    eviction = aggregated_subresources(doc, "pods")["eviction"]
    assert eviction["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("discovery") / "data", "--nodes", "0",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.e2e
def test_served_discovery_and_kubectl_create_token(api: PodlifeProcess) -> None:
    status, doc = api.http("GET", CORE)
    assert status == 200
    token = legacy_entries(doc)["serviceaccounts/token"]
    assert (token["group"], token["version"], token["kind"]) == ("authentication.k8s.io", "v1", "TokenRequest")
    status, agg = api.http("GET", "/api", headers=AGGREGATED)
    assert status == 200 and agg["kind"] == "APIGroupDiscoveryList"
    assert aggregated_subresources(agg, "serviceaccounts")["token"]["responseKind"]["group"] == "authentication.k8s.io"
    jwt = api.kubectl("create", "token", "default").stdout.strip()
    assert jwt.count(".") == 2
    status, review = api.http("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": jwt}})
    assert status == 201 and review["status"]["authenticated"] is True, review
    assert review["status"]["user"]["username"] == "system:serviceaccount:default:default"
