"""The web UI in a real browser: headless Debian Chromium driven by Playwright, on a real cluster.

Logged in through the URL ``podlife ui --print-url`` prints (the kubeconfig's client
certificate mints the code), the timeline shows a pod created with kubectl and follows it
through its stages live (its row's ``data-stage`` changes while the page is open), and its
page shows the field diffs of its trace (the scheduler's ``spec.nodeName``). With 2,000 pods
the page stays responsive and only the rows in view are in the DOM.

Screenshots go to ``$PODLIFE_TEST_ARTIFACTS/<test>/`` (else the test's tmp_path); the path is
printed. A missing Chromium or Playwright skips, and fails under CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, missing, require_module, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: rows the virtualised chart may have in the DOM with a 900 px high window (visible ones and a margin)
MAX_RENDERED_ROWS = 120


def artifacts_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("PODLIFE_TEST_ARTIFACTS")
    directory = Path(root) / request.node.name if root else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {directory}")
    return directory


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile directory), closed after the test."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (scripts/install-system-deps.sh installs Debian's chromium)")
    sync_api = require_module("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            ignore_https_errors=True, viewport={"width": 1400, "height": 900})
        try:
            yield context
        finally:
            context.close()


def login_url(proc: PodlifeProcess) -> str:
    return subprocess.run([sys.executable, "-m", "podlife.cli", "ui", "--print-url", "--kubeconfig", str(proc.kubeconfig)],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def open_timeline(browser: Any, proc: PodlifeProcess) -> Any:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(login_url(proc))
    page.wait_for_selector("#gantt [data-node-row]", timeout=30_000)
    page.wait_for_selector('#conn[data-state="live"]', timeout=30_000)
    page.errors = errors
    return page


def test_a_pod_moves_through_its_stages_live(request: pytest.FixtureRequest, tmp_path: Path, browser: Any) -> None:
    out = artifacts_dir(request, tmp_path)
    with running_podlife(tmp_path / "data", "--nodes", "0", "--sim-nodes", "2", kubectl=require_tool("kubectl")) as proc:
        page = open_timeline(browser, proc)
        assert page.url.endswith("/ui/")
        # a pod that waits for a node labelled for it: it shows, and stays, before it is scheduled
        proc.kubectl("run", "traced", "--image=busybox", "--overrides",
                     '{"apiVersion": "v1", "spec": {"nodeSelector": {"ui-test": "yes"}}}')
        row = '[data-pod="default/traced"]'
        page.wait_for_selector(row, timeout=30_000)
        before = page.get_attribute(row, "data-stage")
        assert before and before != "Ready"
        assert page.get_attribute(row, "data-node") == ""
        page.screenshot(path=str(out / "timeline-waiting.png"))

        proc.kubectl("label", "node", "sim-node-1", "ui-test=yes")
        page.wait_for_selector(f'{row}[data-stage="Ready"]', timeout=60_000)
        assert page.get_attribute(row, "data-node") == "sim-node-1"
        assert page.locator(f'{row} .seg').count() >= 3  # a segment per stage it went through
        ready = page.get_attribute('[data-node-row="sim-node-1"]', "data-ready")
        assert ready == "true"
        page.screenshot(path=str(out / "timeline-ready.png"))

        page.click(f"{row} a.pod-link")
        page.wait_for_url("**/ui/pods/default/traced")
        diff = page.wait_for_selector('[data-diff-path="spec.nodeName"]', timeout=30_000)
        assert "sim-node-1" in diff.inner_text()
        assert page.locator('[data-stage-name="Scheduled"]').count() >= 1
        assert "10.244." in page.inner_text("[data-network]")  # the Port's address
        page.screenshot(path=str(out / "pod-page.png"), full_page=True)
        assert page.errors == []


def test_two_thousand_pods_stay_responsive(request: pytest.FixtureRequest, tmp_path: Path, browser: Any) -> None:
    out = artifacts_dir(request, tmp_path)
    with running_podlife(tmp_path / "data", "--nodes", "0", "--sim-nodes", "25", kubectl=require_tool("kubectl")) as proc:
        page = open_timeline(browser, proc)
        proc.kubectl("create", "deployment", "load", "--image=busybox", "--replicas=2000")
        gantt = "#gantt"
        wait_for(lambda: int(page.get_attribute(gantt, "data-total-pods") or 0) >= 2000, timeout=180,
                 interval=0.5, what="2,000 pods on the timeline")
        rendered = page.evaluate("document.querySelectorAll('#gantt [data-pod], #gantt [data-node-row]').length")
        assert 0 < rendered <= MAX_RENDERED_ROWS, rendered
        page.screenshot(path=str(out / "timeline-2000.png"))

        # scrolled to the end, other rows are drawn and the count stays bounded
        first = page.get_attribute("#gantt .row", "data-pod") or page.get_attribute("#gantt .row", "data-node-row")
        page.evaluate("document.querySelector('.gantt-body').scrollTop = 1e9")
        wait_for(lambda: (page.get_attribute("#gantt .row", "data-pod") or "") not in ("", first),
                 what="the rows at the end to be drawn")
        assert page.evaluate("document.querySelectorAll('#gantt .row').length") <= MAX_RENDERED_ROWS

        # the page answers while the pods keep changing: a filter narrows the rows at once
        page.fill("#gantt input.filter", "sim-node-7")
        wait_for(lambda: page.evaluate("[...document.querySelectorAll('#gantt [data-pod]')]"
                                       ".every(r => r.dataset.node === 'sim-node-7')"), what="the filter to apply")
        took = page.evaluate("""() => new Promise(done => { const t = performance.now();
                                requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t))); })""")
        print(f"two animation frames with 2,000 pods: {took:.1f} ms")
        page.screenshot(path=str(out / "timeline-2000-filtered.png"))
        assert page.errors == []


def test_a_pods_page_shows_its_logs(request: pytest.FixtureRequest, tmp_path: Path, browser: Any) -> None:
    """On a real node the page reads the pod's log through the API's pods/log path (the node's kubelet)."""
    out = artifacts_dir(request, tmp_path)
    with running_podlife(tmp_path / "data", "--nodes", "1", kubectl=require_tool("kubectl")) as proc:
        proc.kubectl("run", "hello", "--image=busybox", "--command", "--",
                     "/bin/sh", "-c", "echo hello from the pod; trap 'exit 0' TERM; while :; do sleep 1; done")
        proc.kubectl("wait", "--for=condition=Ready", "pod/hello", "--timeout=60s")
        page = open_timeline(browser, proc)
        page.click('[data-pod="default/hello"] a.pod-link')
        page.wait_for_selector("[data-logs]:has-text('hello from the pod')", timeout=30_000)
        page.screenshot(path=str(out / "pod-logs.png"), full_page=True)
        assert page.errors == []
