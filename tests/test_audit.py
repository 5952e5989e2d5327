"""The audit log: the policy's rules and levels, and the events a real server writes.

The policy parser and matcher are checked on their own; then ``podlife up
--audit-log-path --audit-policy-file`` is driven with kubectl and a service-account token,
and the log must hold ``audit.k8s.io/v1`` events naming who did what, the answer, the
authorization decision, and the bodies the level asks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.api.audit import PolicyError, matching, parse_policy
from podlife.api.authz.attributes import Attributes
from podlife.api.identity import UserInfo

from .cluster_harness import PodlifeProcess, require_tool, wait_for

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Metadata
"""
ALICE = UserInfo("alice", groups=("dev", "system:authenticated"))


def attrs(verb: str, resource: str = "", path: str = "", namespace: str = "default") -> Attributes:
    if path:
        return Attributes(ALICE, verb, False, path=path)
    return Attributes(ALICE, verb, True, api_version="v1", resource=resource, namespace=namespace)


def test_the_first_matching_rule_gives_the_level() -> None:
    policy = parse_policy(POLICY)
    assert policy.level_for(attrs("get", path="/healthz/ping"))[0] == "None"
    assert policy.level_for(attrs("create", "configmaps")) == ("RequestResponse", ("RequestReceived",))
    assert policy.level_for(attrs("list", "secrets"))[0] == "Metadata"
    narrow = parse_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n  users: [bob]\n")
    assert narrow.level_for(attrs("list", "pods"))[0] == "None"  # no rule: not logged


@pytest.mark.parametrize("text, message", [
    ("kind: Config\n", "not an audit.k8s.io/v1 Policy"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n", 'rules[0].level: "Loud" is not one of'),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, omitStages: [Later]}]\n", 'unknown stage "Later"'),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, users: bob}]\n", "users: must be a list"),
])
def test_bad_policies_say_where(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    assert message in str(caught.value) and str(caught.value).startswith("policy.yaml")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PodlifeProcess, Path]]:
    base = tmp_path_factory.mktemp("audit")
    (base / "policy.yaml").write_text(POLICY)
    log = base / "audit.log"
    proc = PodlifeProcess(base / "data", "--nodes", "0", "--audit-log-path", str(log),
                          "--audit-policy-file", str(base / "policy.yaml"), kubectl=require_tool("kubectl")).start()
    try:
        yield proc, log
    finally:
        proc.stop()


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.e2e
def test_the_log_names_who_did_what_and_what_they_got(audited: tuple[PodlifeProcess, Path]) -> None:
    cluster, log = audited
    cluster.kubectl("create", "configmap", "audited", "--from-literal=k=v")
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30,
             what="the default service account")
    token = cluster.kubectl("create", "token", "default").stdout.strip()
    assert cluster.kubectl(f"--token={token}", "get", "secrets", check=False).returncode != 0

    def created() -> list:
        return [e for e in matching(events(log), verb="create", stage="ResponseComplete")
                if e.get("objectRef", {}).get("resource") == "configmaps" and e["user"]["username"] == "podlife-admin"]

    wait_for(lambda: created() or None, 10, what="the create's event")
    event = created()[0]
    assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1" and event["level"] == "RequestResponse"
    assert event["user"]["username"] == "podlife-admin" and event["objectRef"]["namespace"] == "default"
    assert event["responseStatus"]["code"] == 201 and event["requestObject"]["data"] == {"k": "v"}
    assert event["responseObject"]["metadata"]["name"] == "audited"
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert event["requestReceivedTimestamp"] <= event["stageTimestamp"]
    forbidden = [e for e in matching(events(log), verb="list", stage="ResponseComplete")
                 if e.get("objectRef", {}).get("resource") == "secrets"]
    assert forbidden and forbidden[-1]["level"] == "Metadata" and "requestObject" not in forbidden[-1]
    assert forbidden[-1]["user"]["username"] == "system:serviceaccount:default:default"
    assert forbidden[-1]["responseStatus"]["code"] == 403
    assert forbidden[-1]["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert not matching(events(log), stage="RequestReceived")  # omitted by the policy
    assert not [e for e in events(log) if e["requestURI"].startswith(("/healthz", "/version"))]
