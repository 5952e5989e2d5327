"""The admission chain runs in kube-apiserver's order, as a user sees it on a real ``podlife up``.

Kubernetes runs every admission plugin's mutating half (LimitRanger's defaults among the
first), then the object's validation, then the validating halves (LimitRanger's bounds,
..., ValidatingAdmissionPolicy, ..., ResourceQuota last). So what a LimitRange fills in is
already there for a MutatingAdmissionPolicy, for the pod's own validation and for a
ValidatingAdmissionPolicy, and an invalid pod is validation's 422 even when it is also out
of its LimitRange's bounds. ``--disable-admission-plugins`` takes any plugin of the chain
by its Kubernetes name. Each test has namespaces of its own; each refusal has a twin that
is created, and a refused pod is not stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
POLICIES = "/apis/admissionregistration.k8s.io/v1"
#: the cpu request of the pod's first container, or "none" (an expression that never fails)
CPU_REQUEST_SEEN = ("has(object.spec.containers[0].resources) && has(object.spec.containers[0].resources.requests) "
                    "&& 'cpu' in object.spec.containers[0].resources.requests "
                    "? object.spec.containers[0].resources.requests['cpu'] : 'none'")
EVERY_CONTAINER_REQUESTS_CPU = ("object.spec.containers.all(c, has(c.resources) && has(c.resources.requests) "
                                "&& 'cpu' in c.resources.requests)")


def create(cluster: PodlifeProcess, path: str, body: Obj) -> Obj:
    status, answer = cluster.http("POST", path, body)
    assert status == 201, answer
    return answer


def namespace(cluster: PodlifeProcess, label: str) -> str:
    """A namespace of the test's own, labelled for its policy bindings."""
    name = f"order-{uuid.uuid4().hex[:8]}"
    create(cluster, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name, "labels": {"admission-order": label}}})
    return name


def limit_range(cluster: PodlifeProcess, ns: str, item: Obj) -> None:
    create(cluster, f"/api/v1/namespaces/{ns}/limitranges",
           {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"}, "spec": {"limits": [item]}})


def pod(name: str, restart_policy: str = "Always", **resources: Obj) -> Obj:
    container: Obj = {"name": "app", "image": "busybox", "command": ["sleep", "600"]}
    if resources:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            # bound to a node that does not exist: nothing runs it, only admission matters
            "spec": {"containers": [container], "restartPolicy": restart_policy, "nodeName": "nowhere"}}


def post_pod(cluster: PodlifeProcess, ns: str, body: Obj) -> tuple[int, Obj]:
    status, answer = cluster.http("POST", f"/api/v1/namespaces/{ns}/pods", body)
    return status, answer


def assert_not_stored(cluster: PodlifeProcess, ns: str, name: str) -> None:
    status, _ = cluster.http("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert status == 404


def requests_of(created: Obj) -> Obj:
    return created["spec"]["containers"][0].get("resources") or {}


@pytest.fixture
def policies(cluster: PodlifeProcess) -> Iterator[list[str]]:
    """Paths of the cluster-scoped policy objects a test makes, deleted after it."""
    made: list[str] = []
    yield made
    for path in reversed(made):
        cluster.http("DELETE", path)


def policy_pair(cluster: PodlifeProcess, made: list[str], kind: str, name: str, spec: Obj, binding: Obj,
                label: str) -> None:
    """A (Validating|Mutating)AdmissionPolicy and its binding to the namespaces labelled ``label``."""
    plural = kind.lower().removesuffix("y") + "ies"
    constraints = {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                      "resources": ["pods"]}]}
    create(cluster, f"{POLICIES}/{plural}", {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                             "metadata": {"name": name},
                                             "spec": {"matchConstraints": constraints, **spec}})
    made.append(f"{POLICIES}/{plural}/{name}")
    create(cluster, f"{POLICIES}/{kind.lower()}bindings",
           {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind + "Binding",
            "metadata": {"name": name + "-binding"},
            "spec": {"policyName": name, **binding,
                     "matchResources": {"namespaceSelector": {"matchLabels": {"admission-order": label}}}}})
    made.append(f"{POLICIES}/{kind.lower()}bindings/{name}-binding")


def test_a_mutating_policy_sees_what_the_limit_range_filled_in(cluster: PodlifeProcess, policies: list[str]) -> None:
    label = uuid.uuid4().hex[:8]
    ns = namespace(cluster, label)
    limit_range(cluster, ns, {"type": "Container", "defaultRequest": {"cpu": "100m"}, "default": {"cpu": "1"}})
    patch = ('[JSONPatch{op: "add", path: "/metadata/annotations", '
             f'value: {{"cpu-request-seen": string({CPU_REQUEST_SEEN})}}}}]')
    policy_pair(cluster, policies, "MutatingAdmissionPolicy", f"seen-{label}",
                {"mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": patch}}]}, {}, label)

    status, defaulted = post_pod(cluster, ns, pod("plain"))
    assert status == 201, defaulted
    assert requests_of(defaulted) == {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}
    # LimitRanger (a mutating plugin before the policies) had set the request when the policy looked
    assert defaulted["metadata"]["annotations"]["cpu-request-seen"] == "100m"

    status, own = post_pod(cluster, ns, pod("own", requests={"cpu": "250m"}))
    assert status == 201, own
    assert own["metadata"]["annotations"]["cpu-request-seen"] == "250m"


def test_a_validating_policy_judges_the_defaulted_pod(cluster: PodlifeProcess, policies: list[str]) -> None:
    label = uuid.uuid4().hex[:8]
    limited, bare = namespace(cluster, label), namespace(cluster, label)
    limit_range(cluster, limited, {"type": "Container", "defaultRequest": {"cpu": "100m"}})
    name = f"needs-cpu-{label}"
    policy_pair(cluster, policies, "ValidatingAdmissionPolicy", name,
                {"validations": [{"expression": EVERY_CONTAINER_REQUESTS_CPU}]}, {"validationActions": ["Deny"]},
                label)

    status, refused = post_pod(cluster, bare, pod("asks-nothing"))  # no LimitRange there: no request
    assert status == 422, refused
    assert refused["reason"] == "Invalid"
    assert refused["message"] == (f"pods \"asks-nothing\" is forbidden: ValidatingAdmissionPolicy '{name}' with binding "
                                  f"'{name}-binding' denied request: failed expression: {EVERY_CONTAINER_REQUESTS_CPU}")
    assert_not_stored(cluster, bare, "asks-nothing")

    status, created = post_pod(cluster, limited, pod("asks-nothing"))  # the LimitRange's default satisfies it
    assert status == 201, created
    assert requests_of(created)["requests"] == {"cpu": "100m"}


def test_a_default_limit_below_the_request_is_validations_422(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "none")
    limit_range(cluster, ns, {"type": "Container", "default": {"cpu": "100m"}, "defaultRequest": {"cpu": "100m"}})

    status, refused = post_pod(cluster, ns, pod("greedy", requests={"cpu": "500m"}))  # its default limit is 100m
    assert status == 422, refused
    assert refused["reason"] == "Invalid"
    assert refused["message"] == ('Pod "greedy" is invalid: spec.containers[0].resources.requests: Invalid value: '
                                  '"500m": must be less than or equal to cpu limit of 100m')
    assert refused["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.containers[0].resources.requests",
                                             "message": 'Invalid value: "500m": must be less than or equal to cpu limit '
                                                        "of 100m"}]
    assert_not_stored(cluster, ns, "greedy")

    status, modest = post_pod(cluster, ns, pod("modest", requests={"cpu": "50m"}))
    assert status == 201, modest
    assert requests_of(modest) == {"limits": {"cpu": "100m"}, "requests": {"cpu": "50m"}}


def test_validation_comes_before_the_limit_range_bounds(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "none")
    limit_range(cluster, ns, {"type": "Container", "max": {"cpu": "1"}})

    # out of bounds *and* invalid: validation speaks first (LimitRanger bounds pods in its validating half)
    status, invalid = post_pod(cluster, ns, pod("both", restart_policy="Sometimes", limits={"cpu": "2"}))
    assert status == 422, invalid
    assert invalid["message"] == ('Pod "both" is invalid: spec.restartPolicy: Unsupported value: "Sometimes": '
                                  'supported values: "Always", "OnFailure", "Never"')
    assert_not_stored(cluster, ns, "both")

    status, forbidden = post_pod(cluster, ns, pod("big", limits={"cpu": "2"}))  # valid, out of bounds
    assert status == 403, forbidden
    assert forbidden["message"] == 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    assert_not_stored(cluster, ns, "big")

    status, fits = post_pod(cluster, ns, pod("fits", limits={"cpu": "1"}))
    assert status == 201, fits


@pytest.fixture(scope="module")
def without_some_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("disabled") / "data",
                          "--disable-admission-plugins", "LimitRanger,ValidatingAdmissionPolicy,ResourceQuota",
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


def test_disabled_plugins_are_skipped_by_their_kubernetes_names(without_some_plugins: PodlifeProcess) -> None:
    cluster = without_some_plugins
    label = uuid.uuid4().hex[:8]
    ns = namespace(cluster, label)
    limit_range(cluster, ns, {"type": "Container", "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}})
    create(cluster, f"/api/v1/namespaces/{ns}/resourcequotas",
           {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})
    policy_pair(cluster, [], "ValidatingAdmissionPolicy", f"deny-all-{label}",
                {"validations": [{"expression": "false"}]}, {"validationActions": ["Deny"]}, label)

    status, created = post_pod(cluster, ns, pod("unbounded", limits={"cpu": "2"}))
    assert status == 201, created
    # no LimitRange default (the request is the pod's own defaulting: its limit), no bound
    assert requests_of(created) == {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}
    assert "kubernetes.io/limit-ranger" not in (created["metadata"].get("annotations") or {})
    # the plugins not named still run: DefaultTolerationSeconds, ServiceAccount
    assert {t["key"] for t in created["spec"]["tolerations"]} == {"node.kubernetes.io/not-ready",
                                                                  "node.kubernetes.io/unreachable"}
    assert created["spec"]["serviceAccountName"] == "default"
