"""Bad HTTP requests get Kubernetes' answer, store nothing, and never hurt the server.

One table drives a real ``podlife up`` over HTTPS with requests a broken or hostile
client could send: bodies over the 3 MiB limit, nesting bombs, YAML alias bombs,
invalid UTF-8 and NUL bytes, numbers beyond int64, names Kubernetes refuses, URL/body
mismatches, wrong patch media types, malformed selectors and query parameters. For
each the answer must be the ``Status`` Kubernetes sends (code, reason, a message that
names the problem), it must come quickly (a bomb is refused, not expanded), nothing
may be stored or changed, and the server's log must not show a traceback.

The expectations come from Kubernetes' apiserver: ``limitedReadBody`` (413
``RequestEntityTooLarge``, "limit is 3145728"), ``transformDecodeError`` (400 for
bodies that cannot be decoded), the key functions' ``IsValidPathSegmentName`` (400
"Name parameter invalid"), the update handler's name check, the patch handler's media
types (415), ``Validate{Create,Update,Patch,Delete}Options`` (422 on
``<Kind>Options.meta.k8s.io``), and the label/field selector parsers (400).

Boolean query parameters are read as Go's ``strconv.ParseBool`` (issue 8): every
spelling it accepts works (the official Python client sends ``watch=True``) and any
other value is a 400 that names the parameter.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_module, wait_for

pytestmark = pytest.mark.e2e

CM = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
EXISTING = "existing"
LIMIT = 3 * 1024 * 1024
JSON = "application/json"
YAML = "application/yaml"
PATCH_TYPES = ("application/json-patch+json, application/merge-patch+json, "
               "application/strategic-merge-patch+json, application/apply-patch+yaml")
#: a bad request must be answered at once; a bomb that were expanded would take minutes
QUICK_SECONDS = 5.0


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _configmap(name: str, **fields: Any) -> bytes:
    return _json({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields})


def _nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _nested_yaml_blocks(depth: int) -> bytes:
    """``depth`` levels of block mappings (indentation only: no brackets to count)."""
    return b"".join(b"  " * i + b"a:\n" for i in range(depth)) + b"  " * depth + b"b: 1\n"


def _billion_laughs() -> bytes:
    """Nine levels of nine aliases each: 387 million strings when expanded."""
    lines = [b'  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = b",".join(b"*l%d" % (i - 1) for _ in range(9))
        lines.append(b"  l%d: &l%d [%s]" % (i, i, refs))
    return b"metadata: {name: laughs}\nx:\n" + b"\n".join(lines) + b"\n"


def _deployment(name: str, replicas: str) -> bytes:
    return (f'{{"metadata":{{"name":"{name}"}},"spec":{{"replicas":{replicas},'
            '"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},'
            '"spec":{"containers":[{"name":"c","image":"i"}]}}}}').encode()


PODTEMPLATES = "/api/v1/namespaces/default/podtemplates"


@dataclass(frozen=True)
class Bad:
    """One bad request and Kubernetes' answer to it."""

    id: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str = JSON
    code: int = 400
    reason: str = "BadRequest"
    message: str = ""  # a part the Status message must contain
    absent: str | None = None  # an object path that must not exist afterwards


CASES = [
    # ---- size and shape of the body -------------------------------------------------------
    Bad("json-over-3MiB", "POST", CM, _configmap("too-big", data={"a": "x" * LIMIT}), code=413,
        reason="RequestEntityTooLarge", message=f"Request entity too large: limit is {LIMIT}", absent=f"{CM}/too-big"),
    Bad("yaml-over-3MiB", "POST", CM, b"metadata: {name: too-big-yaml}\ndata: {a: " + b"x" * LIMIT + b"}\n", YAML,
        code=413, reason="RequestEntityTooLarge", message="limit is 3145728", absent=f"{CM}/too-big-yaml"),
    Bad("put-over-3MiB", "PUT", f"{CM}/{EXISTING}", _configmap(EXISTING, data={"a": "x" * LIMIT}), code=413,
        reason="RequestEntityTooLarge"),
    # a kind without a size rule of its own (a ConfigMap over 1 MiB is already a 422 of its validation)
    Bad("stored-object-over-1.5MiB", "POST", PODTEMPLATES, _json({
        "apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "too-big-stored"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i", "args": ["x" * (2 * 1024 * 1024)]}]}}}),
        code=413, reason="RequestEntityTooLarge", message="etcdserver: request is too large",
        absent=f"{PODTEMPLATES}/too-big-stored"),
    Bad("api-version-not-a-string", "POST", CM, _json({"apiVersion": False, "kind": "ConfigMap",
                                                      "metadata": {"name": "typed-meta"}}),
        message="cannot unmarshal bool into Go struct field .apiVersion of type string", absent=f"{CM}/typed-meta"),
    Bad("kind-not-a-string", "POST", CM, _json({"kind": ["ConfigMap"], "metadata": {"name": "typed-kind"}}),
        message="cannot unmarshal array into Go struct field .kind of type string", absent=f"{CM}/typed-kind"),
    Bad("json-nested-300-objects", "POST", CM, b'{"metadata":{"name":"deep"},"x":' + _nested_json(300) + b"}",
        message="exceeded max depth", absent=f"{CM}/deep"),
    Bad("json-nested-10000-arrays", "POST", CM, b'{"metadata":{"name":"deep-arrays"},"x":' + b"[" * 10000
        + b"]" * 10000 + b"}", message="could not be decoded", absent=f"{CM}/deep-arrays"),
    Bad("yaml-nested-300-blocks", "POST", CM, b"metadata: {name: deep-yaml}\nx:\n" + b"".join(
        b"  " + line + b"\n" for line in _nested_yaml_blocks(300).splitlines()), YAML,
        message="exceeded max depth", absent=f"{CM}/deep-yaml"),
    Bad("yaml-nested-5000-flow", "POST", CM, b"metadata: {name: deep-flow}\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        YAML, message="could not be decoded as YAML", absent=f"{CM}/deep-flow"),
    Bad("yaml-billion-laughs", "POST", CM, _billion_laughs(), YAML, message="excessive aliasing",
        absent=f"{CM}/laughs"),
    Bad("yaml-billion-laughs-apply", "PATCH", f"{CM}/laughs?fieldManager=t", _billion_laughs(),
        "application/apply-patch+yaml", message="excessive aliasing", absent=f"{CM}/laughs"),
    Bad("yaml-alias-cycle", "POST", CM, b"metadata: {name: cycle}\nx: &a [*a]\n", YAML, message="alias",
        absent=f"{CM}/cycle"),
    Bad("empty-body", "POST", CM, b"", message="empty"),
    Bad("not-json", "POST", CM, b"{nope", message="could not be decoded as JSON"),
    Bad("body-is-a-list", "POST", CM, b"[]", message="ConfigMap"),
    Bad("body-is-a-string", "POST", CM, b'"x"', message="ConfigMap"),
    Bad("body-is-null", "POST", CM, b"null", message="ConfigMap"),
    Bad("metadata-is-a-list", "POST", CM, b'{"metadata":[]}', message="metadata"),
    Bad("unknown-media-type", "POST", CM, b"<configmap/>", "application/xml", code=415, reason="UnsupportedMediaType"),
    # ---- bytes Kubernetes refuses -----------------------------------------------------------
    Bad("raw-nul-in-json-string", "POST", CM, b'{"metadata":{"name":"nul-raw"},"data":{"a":"\x00"}}',
        message="control character", absent=f"{CM}/nul-raw"),
    Bad("escaped-nul-in-name", "POST", CM, b'{"metadata":{"name":"nul\\u0000name"}}', code=422, reason="Invalid",
        message="metadata.name: Invalid value"),
    Bad("invalid-utf8-in-name", "POST", CM, b'{"metadata":{"name":"bad\xffname"}}', code=422, reason="Invalid",
        message="metadata.name: Invalid value"),
    Bad("nul-in-yaml", "POST", CM, b"metadata: {name: nul-yaml}\ndata: {a: \x00}\n", YAML,
        message="could not be decoded as YAML", absent=f"{CM}/nul-yaml"),
    Bad("invalid-utf8-in-yaml", "POST", CM, b"metadata: {name: utf8-yaml}\ndata: {a: \xff}\n", YAML,
        message="could not be decoded as YAML", absent=f"{CM}/utf8-yaml"),
    # ---- numbers ----------------------------------------------------------------------------
    Bad("replicas-beyond-int64-json", "POST", DEPLOYMENTS, _deployment("huge", "99999999999999999999"),
        message="spec.replicas", absent=f"{DEPLOYMENTS}/huge"),
    Bad("replicas-beyond-int64-yaml", "POST", DEPLOYMENTS,
        b"metadata: {name: huge-yaml}\nspec: {replicas: 99999999999999999999, selector: {matchLabels: {a: b}}, "
        b"template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n", YAML,
        message="spec.replicas", absent=f"{DEPLOYMENTS}/huge-yaml"),
    Bad("replicas-beyond-int32", "POST", DEPLOYMENTS, _deployment("big", "3000000000"), message="int32",
        absent=f"{DEPLOYMENTS}/big"),
    Bad("number-beyond-float64", "POST", DEPLOYMENTS, _deployment("inf", "1e400"), absent=f"{DEPLOYMENTS}/inf"),
    # ---- names ------------------------------------------------------------------------------
    Bad("name-254-characters", "POST", CM, _configmap("a" * 254), code=422, reason="Invalid",
        message="must be no more than 253 characters", absent=f"{CM}/{'a' * 254}"),
    Bad("name-dot-dot-in-body", "POST", CM, _configmap(".."), code=422, reason="Invalid", message="metadata.name"),
    Bad("name-dot-dot-in-url", "GET", f"{CM}/..", message="Name parameter invalid: \"..\": may not be '..'"),
    Bad("name-dot-dot-in-url-put", "PUT", f"{CM}/..", _configmap(".."), message="Name parameter invalid"),
    Bad("name-percent-in-url", "DELETE", f"{CM}/a%25b", message="may not contain '%'"),
    Bad("name-slash-in-url", "GET", f"{CM}/a%2Fb", code=404, reason="NotFound"),
    Bad("put-name-mismatch", "PUT", f"{CM}/{EXISTING}", _configmap("other"),
        message=f"the name of the object (other) does not match the name on the URL ({EXISTING})", absent=f"{CM}/other"),
    Bad("put-namespace-mismatch", "PUT", f"{CM}/{EXISTING}",
        _json({"metadata": {"name": EXISTING, "namespace": "kube-system"}}),
        message="the namespace of the provided object does not match the namespace sent on the request"),
    Bad("post-namespace-mismatch", "POST", CM, _json({"metadata": {"name": "elsewhere", "namespace": "kube-system"}}),
        message="does not match the namespace sent on the request", absent=f"{CM}/elsewhere"),
    Bad("kind-mismatch", "POST", CM, _json({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "k"}}),
        message="Secret", absent=f"{CM}/k"),
    Bad("api-version-mismatch", "POST", CM, _json({"kind": "ConfigMap", "apiVersion": "apps/v1", "metadata": {"name": "k"}}),
        message="the API version in the data (apps/v1) does not match the expected API version (v1)", absent=f"{CM}/k"),
    # ---- patches ----------------------------------------------------------------------------
    Bad("patch-as-plain-json", "PATCH", f"{CM}/{EXISTING}", _json({"data": {"a": "2"}}), JSON, code=415,
        reason="UnsupportedMediaType", message=f"accepted media types include: {PATCH_TYPES}"),
    Bad("patch-as-text", "PATCH", f"{CM}/{EXISTING}", b"data: {a: '2'}", "text/plain", code=415,
        reason="UnsupportedMediaType", message=PATCH_TYPES),
    Bad("json-patch-over-10000-operations", "PATCH", f"{CM}/{EXISTING}",
        _json([{"op": "test", "path": "/data/a", "value": "1"}] * 10001), "application/json-patch+json", code=413,
        reason="RequestEntityTooLarge", message="The allowed maximum operations in a JSON patch is 10000, got 10001"),
    Bad("merge-patch-metadata-to-a-string", "PATCH", f"{CM}/{EXISTING}", _json({"metadata": "x"}),
        "application/merge-patch+json", code=422, reason="Invalid", message="patch: Invalid value"),
    Bad("json-patch-metadata-to-a-string", "PATCH", f"{CM}/{EXISTING}",
        _json([{"op": "replace", "path": "/metadata", "value": "x"}]), "application/json-patch+json", code=422,
        reason="Invalid", message="cannot unmarshal string into Go struct field ConfigMap.metadata"),
    Bad("json-patch-not-a-list", "PATCH", f"{CM}/{EXISTING}", _json({"op": "add"}), "application/json-patch+json"),
    Bad("force-on-merge-patch", "PATCH", f"{CM}/{EXISTING}?force=true", _json({"data": {"a": "2"}}),
        "application/merge-patch+json", code=422, reason="Invalid", message="force: Forbidden"),
    Bad("force-not-a-boolean", "PATCH", f"{CM}/{EXISTING}?fieldManager=t&force=yes", b"data: {a: '2'}",
        "application/apply-patch+yaml", message='invalid value for force: "yes"'),
    # ---- query parameters -------------------------------------------------------------------
    Bad("watch-maybe", "GET", f"{CM}?watch=maybe", message='invalid value for watch: "maybe"'),
    Bad("watch-empty", "GET", f"{CM}?watch=", message="invalid value for watch"),
    Bad("watch-maybe-on-an-object", "GET", f"{CM}/{EXISTING}?watch=maybe", message="watch"),
    Bad("bookmarks-maybe", "GET", f"{CM}?watch=1&allowWatchBookmarks=yes", message="allowWatchBookmarks"),
    Bad("send-initial-events-maybe", "GET", f"{CM}?watch=1&sendInitialEvents=2", message="sendInitialEvents"),
    Bad("follow-maybe", "GET", "/api/v1/namespaces/default/pods/nobody/log?follow=on", message="follow"),
    Bad("label-selector-open-set", "GET", f"{CM}?labelSelector=a+in+(b", message="unable to parse requirement"),
    Bad("label-selector-empty-notin", "GET", f"{CM}?labelSelector=a+notin+()", message="values set can't be empty"),
    Bad("label-selector-no-key", "GET", f"{CM}?labelSelector==x", message="found '='"),
    Bad("label-selector-bad-key", "GET", f"{CM}?labelSelector=-a=b", message="Invalid value"),
    Bad("field-selector-unknown-field", "GET", f"{CM}?fieldSelector=spec.nothing=x",
        message="field label not supported: spec.nothing"),
    Bad("field-selector-no-operator", "GET", f"{CM}?fieldSelector=metadata.name", message="invalid selector"),
    Bad("limit-not-a-number", "GET", f"{CM}?limit=abc", message='invalid value for limit: "abc"'),
    Bad("limit-beyond-int64", "GET", f"{CM}?limit=99999999999999999999", message="value out of range"),
    Bad("limit-with-underscore", "GET", f"{CM}?limit=5_0", message="invalid syntax"),
    Bad("label-selector-100k", "GET", f"{CM}?labelSelector={'a' * 100_000}", message="must be no more than 63"),
    Bad("timeout-not-a-number", "GET", f"{CM}?watch=true&timeoutSeconds=soon", message="timeoutSeconds"),
    Bad("resource-version-not-a-number", "GET", f"{CM}?resourceVersion=abc", message="abc"),
    Bad("resource-version-match-unknown", "GET", f"{CM}?resourceVersion=1&resourceVersionMatch=Newest", code=422,
        reason="Invalid", message='resourceVersionMatch: Unsupported value: "Newest"'),
    Bad("resource-version-match-without-version", "GET", f"{CM}?resourceVersionMatch=Exact", code=422,
        reason="Invalid", message="resourceVersionMatch is forbidden unless resourceVersion is provided"),
    Bad("resource-version-match-exact-zero", "GET", f"{CM}?resourceVersion=0&resourceVersionMatch=Exact", code=422,
        reason="Invalid", message='resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    Bad("resource-version-match-with-continue", "GET", f"{CM}?limit=1&continue=abc&resourceVersionMatch=NotOlderThan",
        code=422, reason="Invalid", message="resourceVersionMatch is forbidden when continue is provided"),
    Bad("send-initial-events-on-a-list", "GET", f"{CM}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        code=422, reason="Invalid", message="sendInitialEvents is forbidden for list"),
    Bad("grace-period-beyond-int64", "DELETE", f"{CM}/{EXISTING}?gracePeriodSeconds=99999999999999999999",
        message="gracePeriodSeconds"),
    Bad("grace-period-beyond-int64-in-body", "DELETE", f"{CM}/{EXISTING}", _json({"gracePeriodSeconds": 2**64 - 1}),
        message="gracePeriodSeconds"),
    Bad("preconditions-not-an-object", "DELETE", f"{CM}/{EXISTING}", _json({"preconditions": "x"}),
        message="preconditions"),
    Bad("grace-period-not-a-number", "DELETE", f"{CM}/{EXISTING}?gracePeriodSeconds=soon", message="gracePeriodSeconds"),
    Bad("delete-options-not-json", "DELETE", f"{CM}/{EXISTING}", b"{nope"),
    Bad("propagation-policy-unknown", "DELETE", f"{CM}/{EXISTING}?propagationPolicy=Sideways", code=422,
        reason="Invalid", message="propagationPolicy"),
    Bad("field-validation-unknown", "POST", f"{CM}?fieldValidation=Lenient", _configmap("fv"), code=422,
        reason="Invalid", message='CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Lenient"',
        absent=f"{CM}/fv"),
    Bad("field-validation-unknown-on-update", "PUT", f"{CM}/{EXISTING}?fieldValidation=Lenient", _configmap(EXISTING),
        code=422, reason="Invalid", message="UpdateOptions.meta.k8s.io"),
    Bad("dry-run-unknown", "POST", f"{CM}?dryRun=Some", _configmap("dr"), code=422, reason="Invalid",
        message='dryRun: Unsupported value: []string{"Some"}: supported values: "All"', absent=f"{CM}/dr"),
    Bad("field-manager-too-long", "POST", f"{CM}?fieldManager={'m' * 129}", _configmap("fm"), code=422,
        reason="Invalid", message="fieldManager", absent=f"{CM}/fm"),
    # ---- paths and methods ------------------------------------------------------------------
    Bad("unknown-subresource", "POST", f"{CM}/{EXISTING}/launch", _json({}), code=404, reason="NotFound"),
    Bad("unknown-resource", "GET", "/api/v1/namespaces/default/gadgets", code=404, reason="NotFound"),
    Bad("post-to-an-object", "POST", f"{CM}/{EXISTING}", _configmap(EXISTING), code=405, reason="MethodNotAllowed"),
    Bad("put-to-a-collection", "PUT", CM, _configmap("c"), code=405, reason="MethodNotAllowed", absent=f"{CM}/c"),
    Bad("patch-a-collection", "PATCH", CM, _json({}), "application/merge-patch+json", code=405,
        reason="MethodNotAllowed"),
    Bad("post-to-status-subresource", "POST", "/api/v1/namespaces/default/pods/nobody/status", _json({}), code=405,
        reason="MethodNotAllowed"),
    # ---- nulls where objects belong -----------------------------------------------------------
    Bad("job-template-null", "POST", "/apis/batch/v1/namespaces/default/jobs",
        _json({"metadata": {"name": "null-template"}, "spec": {"template": None}}), code=422, reason="Invalid",
        message="spec.template", absent="/apis/batch/v1/namespaces/default/jobs/null-template"),
    Bad("job-template-metadata-null", "POST", "/apis/batch/v1/namespaces/default/jobs",
        _json({"metadata": {"name": "null-meta"}, "spec": {"template": {"metadata": None, "spec": None}}}), code=422,
        reason="Invalid", message="spec.template", absent="/apis/batch/v1/namespaces/default/jobs/null-meta"),
    Bad("deployment-template-null", "POST", DEPLOYMENTS,
        _json({"metadata": {"name": "null-template"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": None}}),
        code=422, reason="Invalid", message="spec.template", absent=f"{DEPLOYMENTS}/null-template"),
    Bad("scale-patch-as-plain-json", "PATCH", f"{DEPLOYMENTS}/nobody/scale", _json({"spec": {"replicas": 2}}), JSON,
        code=415, reason="UnsupportedMediaType", message="accepted media types include: application/json-patch+json"),
]


@pytest.fixture(scope="module")
def existing(cluster: PodlifeProcess) -> dict[str, Any]:
    """A ConfigMap the bad requests aim at; it must come out of them unchanged."""
    status, body = cluster.http("POST", CM, {"metadata": {"name": EXISTING}, "data": {"a": "1"}})
    assert status == 201, body
    return body


def _log_size(cluster: PodlifeProcess) -> int:
    return cluster.log_path.stat().st_size


def _log_since(cluster: PodlifeProcess, offset: int) -> str:
    with open(cluster.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request(cluster: PodlifeProcess, existing: dict[str, Any], case: Bad) -> None:
    log_offset = _log_size(cluster)
    started = time.monotonic()
    status, body = cluster.http(case.method, case.path, raw=case.body, content_type=case.content_type)
    elapsed = time.monotonic() - started
    assert (status, _field(body, "reason")) == (case.code, case.reason), body
    assert isinstance(body, dict) and body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure" and body["code"] == case.code, body
    assert case.message in body["message"], body["message"]
    assert elapsed < QUICK_SECONDS, f"answered after {elapsed:.1f}s"
    if case.absent:
        gone, missing = cluster.http("GET", case.absent)
        assert gone == 404, missing
    now, current = cluster.http("GET", f"{CM}/{EXISTING}")
    assert now == 200 and current["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"], current
    assert current["data"] == {"a": "1"}
    logged = _log_since(cluster, log_offset)
    assert "Traceback" not in logged and "internal error" not in logged, logged[-3000:]


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else body


# ---- booleans as strconv.ParseBool -----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["1", "t", "T", "TRUE", "true", "True"])
def test_every_true_spelling_starts_a_watch(cluster: PodlifeProcess, existing: dict[str, Any], spelling: str) -> None:
    events = cluster.watch_events(f"{CM}?watch={spelling}&timeoutSeconds=1&fieldSelector=metadata.name={EXISTING}")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", EXISTING)]


@pytest.mark.parametrize("spelling", ["0", "f", "F", "FALSE", "false", "False"])
def test_every_false_spelling_lists(cluster: PodlifeProcess, existing: dict[str, Any], spelling: str) -> None:
    status, body = cluster.http("GET", f"{CM}?watch={spelling}&allowWatchBookmarks={spelling}")
    assert status == 200 and body["kind"] == "ConfigMapList", body


def test_watch_true_counts_as_a_watch_in_metrics(cluster: PodlifeProcess, existing: dict[str, Any]) -> None:
    before = cluster.watches_served()
    cluster.watch_events(f"{CM}?watch=True&timeoutSeconds=1")
    assert cluster.watches_served() == before + 1


def test_official_client_watch_sees_added_modified_deleted(cluster: PodlifeProcess) -> None:
    """``watch.Watch().stream`` sends ``watch=True``; it must see every event of a ConfigMap's life."""
    kubernetes = require_module("kubernetes")
    api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []
    before = cluster.watches_served()

    def watch() -> None:
        for event in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                                     timeout_seconds=5):
            if event["object"].metadata.name == "py-watched":
                seen.append((event["type"], event["object"].metadata.name))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    wait_for(lambda: cluster.watches_served() > before, 10, what="the client's watch to start")
    core.create_namespaced_config_map("default", {"metadata": {"name": "py-watched"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("py-watched", "default", {"data": {"a": "2"}})
    core.delete_namespaced_config_map("py-watched", "default")
    wait_for(lambda: len(seen) >= 3, 10, what="three events")
    watcher.join(10)
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]


def test_kubelet_reads_flags_as_parse_bool() -> None:
    from podlife.kubelet.server import _flag
    from podlife.kubelet.streams import RequestRefused

    assert _flag({"follow": "True"}, "follow") is True
    assert _flag({"follow": "F"}, "follow") is False
    assert _flag({}, "follow") is False
    with pytest.raises(RequestRefused):
        _flag({"follow": "yes"}, "follow")


# ---- what Kubernetes accepts although it looks odd -------------------------------------------


def test_invalid_utf8_in_a_json_value_is_replaced_as_go_does(cluster: PodlifeProcess) -> None:
    """Go's JSON decoder turns each invalid UTF-8 byte into U+FFFD; Kubernetes stores that."""
    status, body = cluster.http("POST", CM, raw=b'{"metadata":{"name":"utf8-value"},"data":{"a":"x\xffy"}}')
    assert status == 201, body
    assert cluster.http("GET", f"{CM}/utf8-value")[1]["data"] == {"a": "x\ufffdy"}


def test_long_label_selectors_are_read(cluster: PodlifeProcess, existing: dict[str, Any]) -> None:
    """Go reads 1 MiB of request line; a selector of 20,000 values is a valid request."""
    values = ",".join(str(i) for i in range(20_000))
    status, body = cluster.http("GET", f"{CM}?labelSelector=a+in+({values})")
    assert status == 200 and body["items"] == [], body


@pytest.mark.parametrize(("query", "agent", "indented"), [
    ("?pretty=true", "python", True), ("?pretty=1", "python", True), ("?pretty=maybe", "python", False),
    ("", "curl/8.5.0", True), ("?pretty=false", "curl/8.5.0", False), ("", "kubectl/v1.37.0", False),
])
def test_pretty_output_as_kubernetes_chooses_it(cluster: PodlifeProcess, existing: dict[str, Any], query: str,
                                                agent: str, indented: bool) -> None:
    for path, code in ((f"{CM}/{EXISTING}", 200), (f"{CM}/missing", 404)):
        answer = cluster.request("GET", path + query, headers={"User-Agent": agent})
        status, raw = answer.status, answer.body
        assert status == code
        assert raw.startswith(b'{\n  "kind": ') is indented, raw[:40]
        assert raw.endswith(b"}\n") and json.loads(raw)["kind"] in ("ConfigMap", "Status")


def test_negative_limit_lists_everything(cluster: PodlifeProcess, existing: dict[str, Any]) -> None:
    status, body = cluster.http("GET", f"{CM}?limit=-1")
    assert status == 200 and EXISTING in [i["metadata"]["name"] for i in body["items"]], body
    assert "continue" not in body["metadata"]


def test_negative_grace_period_means_one_second(cluster: PodlifeProcess) -> None:
    """Kubernetes' delete path turns a negative ``gracePeriodSeconds`` into 1 s."""
    pod = {"metadata": {"name": "graceful"}, "spec": {"nodeName": "no-such-node",
                                                       "containers": [{"name": "c", "image": "busybox"}]}}
    status, body = cluster.http("POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 201, body
    status, body = cluster.http("DELETE", "/api/v1/namespaces/default/pods/graceful?gracePeriodSeconds=-1")
    assert status == 200, body
    assert body["metadata"].get("deletionGracePeriodSeconds") == 1, body["metadata"]
    cluster.http("DELETE", "/api/v1/namespaces/default/pods/graceful?gracePeriodSeconds=0")


def test_yaml_anchors_of_ordinary_manifests_still_work(cluster: PodlifeProcess) -> None:
    manifest = (b"metadata: {name: anchored, labels: &labels {app: web}, annotations: *labels}\n"
                b"data: {a: '1'}\n")
    status, body = cluster.http("POST", CM, raw=manifest, content_type=YAML)
    assert status == 201, body
    assert body["metadata"]["annotations"] == {"app": "web"}


def test_nesting_below_the_limit_is_answered(cluster: PodlifeProcess) -> None:
    """Nesting the limit allows is decoded, stored and served (Ignore lets an unknown field in)."""
    body = b'{"metadata":{"name":"fairly-deep"},"x":' + _nested_json(150) + b"}"
    status, created = cluster.http("POST", CM, raw=body)
    assert status == 201, created
    status, got = cluster.http("GET", f"{CM}/fairly-deep")
    assert status == 200, got


# ---- the decoding rules themselves (no server needed) ----------------------------------------


def test_moderate_yaml_aliasing_is_accepted() -> None:
    """go-yaml's rule lets up to 99% of a small document come from aliases: 50 uses of a block pass."""
    from podlife.api.decode import decode_yaml

    block = b"base: &base {" + b", ".join(b"k%d: v" % i for i in range(10)) + b"}\n"
    uses = b"uses: [" + b", ".join(b"*base" for _ in range(50)) + b"]\n"
    decoded = decode_yaml(block + uses)
    assert len(decoded["uses"]) == 50 and decoded["uses"][0] == decoded["base"]


def test_alias_bomb_is_judged_without_expanding() -> None:
    from podlife.machinery import errors
    from podlife.api.decode import decode_yaml

    started = time.monotonic()
    with pytest.raises(errors.ApiError) as refused:
        decode_yaml(_billion_laughs())
    assert refused.value.code == 400 and "excessive aliasing" in refused.value.message
    assert time.monotonic() - started < 1.0


def test_nesting_limit_is_exact() -> None:
    from podlife.machinery import errors
    from podlife.api.decode import MAX_NESTING_DEPTH, decode_json, decode_yaml

    assert decode_json(_nested_json(MAX_NESTING_DEPTH)) is not None
    with pytest.raises(errors.ApiError):
        decode_json(_nested_json(MAX_NESTING_DEPTH + 1))
    assert decode_yaml(_nested_yaml_blocks(MAX_NESTING_DEPTH - 1)) is not None  # its innermost "b: 1" is a level more
    with pytest.raises(errors.ApiError):
        decode_yaml(_nested_yaml_blocks(MAX_NESTING_DEPTH))


def test_yaml_integers_beyond_64_bits_read_as_go_reads_them() -> None:
    from podlife.api.decode import decode_yaml

    assert decode_yaml(b"a: 9223372036854775807\nb: 18446744073709551615\nc: 99999999999999999999\n") == {
        "a": 2**63 - 1, "b": 2**64 - 1, "c": 1e20}
