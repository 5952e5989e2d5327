"""Watch semantics clients build on, checked on the wire against a real server.

Informers (client-go's reflector, the official Python client's ``SharedInformer``,
kopf, kr8s and lightkube watch loops) rely on three things beyond plain events:

- **bookmarks** (``allowWatchBookmarks=true``): BOOKMARK events that carry only the
  kind, apiVersion and ``metadata.resourceVersion``, so a client resumes from a fresh
  version even when nothing it watches changed;
- **``sendInitialEvents=true``** (the WatchList "streaming list"): the current state as
  ADDED events, then a bookmark annotated ``k8s.io/initial-events-end: "true"`` -- for
  an empty replay too, or the client would wait forever for its cache to sync;
- **410 Expired** on a watch from a version the server no longer has: an ERROR event
  in a 200 stream, after which the client lists again and watches from the new list.

podlife keeps watch history in memory, as the API server's watch cache does, so a
restart makes every older resourceVersion too old: that is how these tests get a
compacted revision without a special flag (the cluster is restarted on the same port,
so a running client reconnects to it as it would to a restarted API server).
"""

from __future__ import annotations

import functools
import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from .client_workloads import KopfOperator, free_port
from .cluster_harness import PodlifeProcess, require_module, wait_for

pytestmark = pytest.mark.e2e

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
#: every ConfigMap a test makes carries this label, and its watches select it: a namespace
#: also holds the ``kube-root-ca.crt`` ConfigMap that the root CA publisher adds
OURS = "watch-test=yes"
STREAMING_LIST = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true"}


class WatchStream:
    """One open watch request, read event by event (with a per-read timeout)."""

    def __init__(self, cluster: PodlifeProcess, path: str, query: dict[str, str]) -> None:
        server, token, ctx = cluster._config()
        url = urlsplit(server)
        self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=15)
        self.conn.request("GET", f"{path}?{urlencode({'watch': 'true', 'labelSelector': OURS} | query)}",
                          headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream."""
        line = self.response.readline()
        return json.loads(line) if line.strip() else None

    def until_end(self) -> list[dict[str, Any]]:
        events = []
        while (ev := self.next()) is not None:
            events.append(ev)
        return events

    def close(self) -> None:
        self.conn.close()


@contextmanager
def watching(cluster: PodlifeProcess, path: str, **query: str) -> Iterator[WatchStream]:
    stream = WatchStream(cluster, path, query)
    try:
        yield stream
    finally:
        stream.close()


def _namespace(cluster: PodlifeProcess, name: str) -> str:
    status, body = cluster.http("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    return f"/api/v1/namespaces/{name}/configmaps"


def _create_cm(cluster: PodlifeProcess, path: str, name: str, labels: dict[str, str] | None = None) -> dict:
    status, body = cluster.http("POST", path, {"metadata": {"name": name, "labels": {"watch-test": "yes", **(labels or {})}}})
    assert status == 201, body
    return body


def _list_rv(cluster: PodlifeProcess, path: str) -> str:
    status, body = cluster.http("GET", path)
    assert status == 200, body
    return body["metadata"]["resourceVersion"]


def _rv(ev: dict[str, Any]) -> int:
    return int(ev["object"]["metadata"]["resourceVersion"])


def _is_bare_bookmark(ev: dict[str, Any], kind: str = "ConfigMap", api_version: str = "v1") -> bool:
    obj = ev["object"]
    return (ev["type"] == "BOOKMARK" and obj["kind"] == kind and obj["apiVersion"] == api_version
            and set(obj) == {"kind", "apiVersion", "metadata"} and set(obj["metadata"]) == {"resourceVersion"})


# ---- bookmarks ----------------------------------------------------------------------------


def test_bookmark_before_the_deadline_carries_only_a_fresh_resource_version(cluster: PodlifeProcess) -> None:
    path = _namespace(cluster, "bookmarks")
    rv = _list_rv(cluster, path)
    with watching(cluster, path, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="3") as stream:
        assert stream.status == 200
        _create_cm(cluster, path, "seen")
        assert stream.next()["type"] == "ADDED"
        # a write this watch does not see: the bookmark must still move past it
        status, other = cluster.http("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"generateName": "bm-"}})
        assert status == 201, other
        started = time.monotonic()
        bookmark = stream.next()
        waited = time.monotonic() - started
        rest = stream.until_end()
    assert _is_bare_bookmark(bookmark), bookmark
    assert _rv(bookmark) >= int(other["metadata"]["resourceVersion"])
    # Kubernetes sends it 2 s before the deadline, not as the stream closes
    assert waited < 2.5 and rest == [], (waited, rest)
    # and a watch resumed from it starts cleanly
    with watching(cluster, path, resourceVersion=str(_rv(bookmark)), timeoutSeconds="1") as resumed:
        assert resumed.until_end() == []


@pytest.mark.parametrize(("now", "deadline", "due"), [
    (0.0, 3600.0, 60.0),    # every minute on a long watch
    (100.0, 130.0, 128.0),  # and 2 s before the deadline when that comes first
    (0.0, 2.0, None),       # a watch ending within 2 s gets none
    (10.0, 11.5, None),
])
def test_when_bookmarks_are_due(now: float, deadline: float, due: float | None) -> None:
    from podlife.api.watch_stream import next_bookmark_at

    assert next_bookmark_at(now, deadline) == due


def test_no_bookmarks_unless_asked(cluster: PodlifeProcess) -> None:
    path = _namespace(cluster, "no-bookmarks")
    _create_cm(cluster, path, "one")
    events = cluster.watch_events(f"{path}?watch=true&timeoutSeconds=3&labelSelector={OURS}")
    assert [e["type"] for e in events] == ["ADDED"]


def test_stream_resource_versions_never_go_back(cluster: PodlifeProcess) -> None:
    """A bookmark never precedes an event older than it (a client resumes from either)."""
    path = _namespace(cluster, "monotonic")
    rv = _list_rv(cluster, path)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            cluster.http("POST", path, {"metadata": {"name": f"cm-{i}", "labels": {"watch-test": "yes"}}})
            i += 1

    thread = threading.Thread(target=writer)
    with watching(cluster, path, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="3") as stream:
        thread.start()
        try:
            events = stream.until_end()
        finally:
            stop.set()
            thread.join()
    versions = [_rv(e) for e in events]
    assert any(e["type"] == "BOOKMARK" for e in events) and len(events) > 5
    assert versions == sorted(versions)


# ---- sendInitialEvents ----------------------------------------------------------------------


def test_initial_events_then_end_bookmark_then_live_events(cluster: PodlifeProcess) -> None:
    path = _namespace(cluster, "initial-events")
    created = [_create_cm(cluster, path, name) for name in ("c", "a", "b")]
    with watching(cluster, path, **STREAMING_LIST) as stream:
        assert stream.status == 200
        initial = [stream.next() for _ in range(3)]
        end = stream.next()
        _create_cm(cluster, path, "live")
        live = stream.next()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
    assert _rv(end) >= max(int(c["metadata"]["resourceVersion"]) for c in created)
    assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "live")
    assert _rv(live) > _rv(end)


def test_empty_initial_replay_still_ends_with_the_bookmark(cluster: PodlifeProcess) -> None:
    path = _namespace(cluster, "initial-empty")
    with watching(cluster, path, **STREAMING_LIST, timeoutSeconds="5") as stream:
        started = time.monotonic()
        first = stream.next()
        assert time.monotonic() - started < 2, "the end bookmark must not wait for an event"
    assert first["type"] == "BOOKMARK"
    assert first["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
    assert first["object"]["kind"] == "ConfigMap" and first["object"]["apiVersion"] == "v1"


def test_initial_events_of_a_cluster_scoped_kind_and_a_label_selector(cluster: PodlifeProcess) -> None:
    for name in ("ie-x", "ie-y"):
        status, body = cluster.http("POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": {"ie": "yes"}}})
        assert status == 201, body
    events = cluster.watch_events("/api/v1/namespaces?watch=true&timeoutSeconds=1&labelSelector=ie%3Dyes&"
                                  + urlencode(STREAMING_LIST))
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events[:3]] == [
        ("ADDED", "ie-x"), ("ADDED", "ie-y"), ("BOOKMARK", None)]
    assert events[2]["object"]["kind"] == "Namespace"


def test_a_watch_from_no_version_defaults_to_initial_events(cluster: PodlifeProcess) -> None:
    """With WatchList on, Kubernetes defaults such a watch to ``sendInitialEvents=true``."""
    path = _namespace(cluster, "initial-default")
    _create_cm(cluster, path, "existing")
    for rv in ("", "0"):
        with watching(cluster, path, resourceVersion=rv, allowWatchBookmarks="true") as stream:
            added, end = stream.next(), stream.next()
        assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "existing")
        assert end["type"] == "BOOKMARK" and end["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
    # from a version, no replay and no end marker
    with watching(cluster, path, resourceVersion=_list_rv(cluster, path), allowWatchBookmarks="true",
                  timeoutSeconds="1") as stream:
        assert stream.until_end() == []


def test_initial_events_without_bookmarks_have_no_end_marker(cluster: PodlifeProcess) -> None:
    """Kubernetes only sends the end bookmark to watchers that allow bookmarks."""
    path = _namespace(cluster, "initial-no-bookmark")
    _create_cm(cluster, path, "only")
    events = cluster.watch_events(f"{path}?watch=true&timeoutSeconds=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                  f"&labelSelector={OURS}")
    assert [e["type"] for e in events] == ["ADDED"]


def test_send_initial_events_false_starts_from_now(cluster: PodlifeProcess) -> None:
    path = _namespace(cluster, "initial-false")
    _create_cm(cluster, path, "before")
    with watching(cluster, path, sendInitialEvents="false", resourceVersionMatch="NotOlderThan",
                  timeoutSeconds="5") as stream:
        _create_cm(cluster, path, "after")
        ev = stream.next()
    assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "after")


SIE_REQUIRES_NOT_OLDER_THAN = "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
MATCH_REQUIRES_SIE = "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"


@pytest.mark.parametrize(("query", "code", "reason", "messages"), [
    ("sendInitialEvents=true", 422, "Invalid", [SIE_REQUIRES_NOT_OLDER_THAN]),
    ("sendInitialEvents=false", 422, "Invalid", [SIE_REQUIRES_NOT_OLDER_THAN]),
    ("resourceVersionMatch=NotOlderThan", 422, "Invalid", [MATCH_REQUIRES_SIE]),
    ("sendInitialEvents=true&resourceVersionMatch=Exact&resourceVersion=1", 422, "Invalid",
     [SIE_REQUIRES_NOT_OLDER_THAN, 'resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"']),
    ("sendInitialEvents=maybe&resourceVersionMatch=NotOlderThan", 400, "BadRequest", ["sendInitialEvents"]),
    ("allowWatchBookmarks=yes", 400, "BadRequest", ["allowWatchBookmarks"]),
])
def test_watch_option_rules(cluster: PodlifeProcess, query: str, code: int, reason: str, messages: list[str]) -> None:
    status, body = cluster.http("GET", f"/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&{query}")
    assert (status, body["kind"], body["reason"], body["code"]) == (code, "Status", reason, code), body
    for message in messages:
        assert message in body["message"], body
    if code == 422:
        assert body["message"].startswith('ListOptions.meta.k8s.io "" is invalid: ')
        assert body["details"]["kind"] == "ListOptions" and body["details"]["group"] == "meta.k8s.io"
        assert [c["field"] for c in body["details"]["causes"]] == ["resourceVersionMatch"] * len(messages)


@pytest.mark.parametrize("value", ["True", "1", "t", "TRUE"])
def test_boolean_spellings_of_watch_options(cluster: PodlifeProcess, value: str) -> None:
    """``strconv.ParseBool`` spellings (the official client sends ``True``)."""
    path = _namespace(cluster, f"initial-spelling-{value.encode().hex()}")
    with watching(cluster, path, watch=value, sendInitialEvents=value, allowWatchBookmarks=value,
                  resourceVersionMatch="NotOlderThan") as stream:
        assert stream.status == 200
        first = stream.next()
    assert first["type"] == "BOOKMARK"
    assert first["object"]["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}


# ---- 410 Expired and relisting --------------------------------------------------------------


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[PodlifeProcess]:
    """A cluster of the test's own on a fixed port, so clients reconnect after a restart."""
    proc = PodlifeProcess(tmp_path / "data", "--port", str(free_port()))
    try:
        yield proc.start()
    finally:
        proc.stop()


def test_watch_from_a_compacted_version_gets_expired_then_a_relist_resumes(restartable: PodlifeProcess) -> None:
    cluster = restartable
    path = "/api/v1/namespaces/default/configmaps"
    _create_cm(cluster, path, "kept")
    _create_cm(cluster, path, "removed")
    old_rv = _list_rv(cluster, path)
    cluster.http("DELETE", f"{path}/removed")
    _create_cm(cluster, path, "added")
    cluster.stop()
    cluster.start()

    with watching(cluster, path, resourceVersion=old_rv, allowWatchBookmarks="true") as stream:
        assert stream.status == 200
        events = stream.until_end()  # the server ends the stream after the error
    assert len(events) == 1 and events[0]["type"] == "ERROR", events
    status = events[0]["object"]
    assert (status["kind"], status["status"], status["code"], status["reason"]) == ("Status", "Failure", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {old_rv} (")
    # a streaming list "not older than" that version is fine: it replays the current state
    with watching(cluster, path, resourceVersion=old_rv, **STREAMING_LIST) as stream:
        replay = [stream.next() for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in replay] == [
        ("ADDED", "added"), ("ADDED", "kept"), ("BOOKMARK", None)]
    # a list at that exact version is gone too; a fresh list has what was missed
    code, body = cluster.http("GET", f"{path}?resourceVersion={old_rv}&resourceVersionMatch=Exact")
    assert (code, body["reason"]) == (410, "Expired")
    code, listed = cluster.http("GET", path)
    names = sorted(i["metadata"]["name"] for i in listed["items"])
    assert "removed" not in names and {"kept", "added"} <= set(names)
    with watching(cluster, path, resourceVersion=listed["metadata"]["resourceVersion"], timeoutSeconds="5") as stream:
        _create_cm(cluster, path, "after-relist")
        ev = stream.next()
    assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "after-relist")


def test_lightkube_watch_loop_starts_over_after_410(restartable: PodlifeProcess) -> None:
    """lightkube's watch, told to retry, drops its version on 410 and replays the current state."""
    require_module("lightkube")
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import ConfigMap
    from lightkube.types import on_error_retry

    cluster = restartable
    path = "/api/v1/namespaces/default/configmaps"
    _create_cm(cluster, path, "gone")
    old_rv = _list_rv(cluster, path)
    cluster.http("DELETE", f"{path}/gone")
    _create_cm(cluster, path, "present")
    cluster.stop()
    cluster.start()
    lk = Client(KubeConfig.from_file(str(cluster.kubeconfig)))
    errors: list[int] = []

    def on_error(exc: Exception, count: int):
        errors.append(getattr(getattr(exc, "status", None), "code", 0))
        return on_error_retry(exc, count)

    seen = []
    for op, obj in lk.watch(ConfigMap, namespace="default", labels={"watch-test": "yes"}, resource_version=old_rv,
                            on_error=on_error):
        seen.append((op, obj.metadata.name))
        if ("ADDED", "present") in seen:
            break
    assert errors == [410]
    assert seen == [("ADDED", "present")]


def test_official_shared_informer_relists_after_410(restartable: PodlifeProcess) -> None:
    kubernetes = require_module("kubernetes")
    from kubernetes.client.exceptions import ApiException
    from kubernetes.informer import ADDED, DELETED, ERROR, SharedInformer

    cluster = restartable
    path = "/api/v1/namespaces/default/configmaps"
    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
    lists: list[str] = []

    @functools.wraps(core.list_namespaced_config_map)
    def list_config_maps(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("watch"):
            lists.append(kwargs.get("resource_version") or "")
        return core.list_namespaced_config_map(*args, **kwargs)

    seen: list[tuple[str, str]] = []
    expired: list[ApiException] = []
    informer = SharedInformer(list_config_maps, namespace="default", label_selector="informer=yes")
    informer.add_event_handler(ADDED, lambda obj: seen.append(("ADDED", obj.metadata.name)))
    informer.add_event_handler(DELETED, lambda obj: seen.append(("DELETED", obj.metadata.name)))
    informer.add_event_handler(
        ERROR, lambda exc: expired.append(exc) if isinstance(exc, ApiException) and exc.status == 410 else None)
    _create_cm(cluster, path, "first", {"informer": "yes"})
    informer.start()
    try:
        wait_for(lambda: ("ADDED", "first") in seen, 30, what="the informer's initial list")
        _create_cm(cluster, path, "watched", {"informer": "yes"})
        wait_for(lambda: ("ADDED", "watched") in seen, 30, what="the informer's watch")
        assert len(lists) == 1
        _create_cm(cluster, path, "unwatched", {"informer": "no"})  # moves the revision past the informer's
        cluster.stop()
        cluster.start()  # same port, same credentials; the informer's version is now too old
        wait_for(lambda: expired, 60, what="the informer to get 410 Expired")
        wait_for(lambda: len(lists) >= 2, 30, what="the informer to list again")
        _create_cm(cluster, path, "after", {"informer": "yes"})
        wait_for(lambda: ("ADDED", "after") in seen, 30, what="the informer to resume watching")
        assert len(lists) == 2, "after the relist the informer watches; it does not list again"
        assert sorted(informer.cache.list_keys()) == ["default/after", "default/first", "default/watched"]
    finally:
        informer.stop()


def test_kopf_relists_after_410(restartable: PodlifeProcess, tmp_path: Path) -> None:
    """kopf, resuming from a version the restarted server no longer has, lists again and carries on.

    Its server timeout is long, so no bookmark refreshes its version before the restart:
    the write to another namespace leaves kopf's version behind, deterministically.
    """
    require_module("kopf")
    cluster = restartable
    path = "/api/v1/namespaces/kopf-relist/configmaps"
    _namespace(cluster, "kopf-relist")
    operator = KopfOperator.start(cluster, tmp_path, "kopf-relist", server_timeout=60)
    try:
        _create_cm(cluster, path, "before", {"kopf": "watched"})
        wait_for(lambda: operator.seen(cluster, "before") == "create", 60, what=f"kopf's create (log: {operator.log_path})")
        watches = cluster.watches_served()
        wait_for(lambda: cluster.watches_served() > watches or "Starting the watch-stream" in operator.log(), 30,
                 what="kopf's watch")
        cluster.http("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"generateName": "elsewhere-"}})
        cluster.stop()
        cluster.start()
        wait_for(lambda: "Restarting the watch-stream for configmaps.v1" in operator.log(), 60,
                 what=f"kopf to get 410 and restart its watch (log: {operator.log_path})")
        _create_cm(cluster, path, "after", {"kopf": "watched"})
        wait_for(lambda: operator.seen(cluster, "after") == "create", 60, what="kopf's create after the relist")
        cluster.http("PATCH", f"{path}/before", {"data": {"x": "1"}}, content_type="application/merge-patch+json")
        wait_for(lambda: operator.seen(cluster, "before") == "update:x", 60, what="kopf's update after the relist")
        assert "Error in the watch-stream" not in operator.log()
    finally:
        operator.stop()
