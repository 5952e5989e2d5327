"""Bad input can never hurt the server: random mutations of real manifests, sent as a client would.

Hypothesis takes manifests of the kinds users write most (Pod, ConfigMap, Service,
Deployment), changes them at random -- a field set to a value of the wrong type, an
absurd number, a string with control characters, a nested list or map, a key removed,
an unknown key added -- and sends them over HTTPS with random ``fieldValidation`` and
``dryRun``, as creates, updates and patches. Whatever is sent:

* the answer is never a 5xx, and an error is always a Kubernetes ``Status``;
* an object the server stored is valid: sent back unchanged as an update (dry run) it
  is accepted, so nothing was stored that the server itself would refuse.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .cluster_harness import PodlifeProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "default"

BASES: dict[str, Obj] = {
    "/api/v1/namespaces/default/pods": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fuzz", "labels": {"app": "f"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                 "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}],
                                 "resources": {"limits": {"cpu": "1"}},
                                 "readinessProbe": {"httpGet": {"port": 80}}}],
                 "restartPolicy": "Always", "nodeName": "nowhere"}},
    "/api/v1/namespaces/default/configmaps": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fuzz", "annotations": {"a": "b"}},
        "data": {"k": "v"}},
    "/api/v1/namespaces/default/services": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "fuzz"},
        "spec": {"selector": {"app": "f"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    "/apis/apps/v1/namespaces/default/deployments": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fuzz"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "f"}},
                 "template": {"metadata": {"labels": {"app": "f"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
}

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["", "\x00", "a\r\nb", "💥", "-1", "1e309", "0x10", "ALL", "None", " "]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``obj`` (map keys and list indexes), the object itself excluded."""
    out: list[tuple[Any, ...]] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out += paths(value, (*prefix, key))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Obj]:
    collection = draw(st.sampled_from(sorted(BASES)))
    obj = copy.deepcopy(BASES[collection])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = [p for p in paths(obj) if p[:2] != ("metadata", "name")]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = obj
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["set", "delete", "add"]))
        last = path[-1]
        if action == "delete" and isinstance(parent, dict):
            parent.pop(last, None)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(VALUES)
        else:
            parent[last] = draw(VALUES)
    return collection, obj


QUERIES = st.sampled_from(["", "?fieldValidation=Strict", "?fieldValidation=Warn", "?fieldValidation=Ignore",
                           "?dryRun=All", "?fieldValidation=bogus", "?dryRun=Nope", "?pretty=maybe"])


def assert_clean(status: int, body: Any, what: str) -> None:
    assert status < 500, f"{what}: {status} {body}"
    if status >= 400:
        assert isinstance(body, dict) and body.get("kind") == "Status", f"{what}: {status} {body}"


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=mutated(), query=QUERIES, verb=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_random_bad_input_never_breaks_the_server(cluster: PodlifeProcess, case: tuple[str, Obj], query: str,
                                                  verb: str) -> None:
    collection, obj = case
    item = f"{collection}/fuzz"
    if verb == "POST":
        status, body = cluster.http("POST", collection + query, obj)
    elif verb == "PUT":
        status, body = cluster.http("PUT", item + query, obj)
    else:
        status, body = cluster.http("PATCH", item + query, obj, content_type="application/merge-patch+json")
    assert_clean(status, body, f"{verb} {collection}{query} {json.dumps(obj, default=str)[:400]}")
    got, stored = cluster.http("GET", item)
    if got == 200:
        again, answer = put_back(cluster, item, stored)
        assert again == 200, f"stored but not valid: {json.dumps(stored)[:600]} -> {answer}"
        cluster.http("DELETE", item + "?gracePeriodSeconds=0")


def put_back(cluster: PodlifeProcess, item: str, stored: Obj) -> tuple[int, Any]:
    """PUT what was stored (dry run): a valid object must be accepted back. Unconditional, since controllers
    may have written meanwhile -- and when one did (the scheduler binding a fuzzed pod: its spec is then
    not the one read), what is stored now is put back instead."""
    for _ in range(3):
        version = stored["metadata"].pop("resourceVersion", None)
        again, answer = cluster.http("PUT", item + "?dryRun=All", stored)
        if again == 200:
            break
        got, now = cluster.http("GET", item)
        if got != 200 or now["metadata"].get("resourceVersion") == version:
            break  # nothing changed in between: the refusal is the answer
        stored = now
    return again, answer
