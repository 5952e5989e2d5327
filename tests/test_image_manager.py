"""When the kubelet pulls (the pure half of podlife.kubelet.image_manager)."""

from __future__ import annotations

import base64
import json

import pytest

from podlife.kubelet.image_manager import PullDecision, docker_config_of, pull_decision, registry_allowed


@pytest.mark.parametrize(("policy", "stored", "in_catalog", "decision"), [
    ("IfNotPresent", False, False, PullDecision.PULL),
    ("IfNotPresent", True, False, PullDecision.USE_STORED),
    ("Always", True, False, PullDecision.PULL),
    ("Always", False, True, PullDecision.USE_CATALOG),  # nothing to ask a registry for
    ("Never", False, False, PullDecision.NEVER_PULL),
    ("Never", True, False, PullDecision.USE_STORED),
    ("Never", False, True, PullDecision.USE_CATALOG),
    ("IfNotPresent", True, True, PullDecision.USE_STORED),  # a loaded image wins over the catalog's name
])
def test_pull_decision(policy: str, stored: bool, in_catalog: bool, decision: PullDecision) -> None:
    assert pull_decision(policy, stored, in_catalog) is decision


def test_only_loopback_registries_unless_allowed() -> None:
    assert registry_allowed("127.0.0.1:5000", ())
    assert registry_allowed("localhost:5000", ())
    assert registry_allowed("[::1]:5000", ())
    assert not registry_allowed("docker.io", ())
    assert registry_allowed("quay.io", ("quay.io",))
    assert registry_allowed("registry.example:5000", ("*",))


def test_pull_secrets_of_both_types() -> None:
    auths = {"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"u:p").decode()}}}
    new = {"data": {".dockerconfigjson": base64.b64encode(json.dumps(auths).encode()).decode()}}
    old = {"data": {".dockercfg": base64.b64encode(json.dumps(auths["auths"]).encode()).decode()}}
    assert docker_config_of(new) == auths
    assert docker_config_of(old) == auths
    assert docker_config_of({"data": {"token": "eA=="}}) is None
    assert docker_config_of({"data": {".dockerconfigjson": "not base64 json"}}) is None
