"""The README's first command takes options: ``make up ARGS="..."`` reaches ``podlife up``."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import yaml

from .cluster_harness import PodlifeProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_make_up_passes_args_to_podlife_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = open(tmp_path / "make-up.log", "wb")
    proc = subprocess.Popen(["make", "-s", "up", f"ARGS=--port 0 --nodes 0 --data-dir {data}"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        cluster = PodlifeProcess(data)  # only used to talk to the server make started
        wait_for(lambda: cluster.kubeconfig.exists() and cluster.http("GET", "/readyz", auth=False)[0] == 200, 90,
                 what=f"make up to serve (log: {tmp_path / 'make-up.log'})")
        server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        assert server.startswith("https://127.0.0.1:") and not server.endswith(":6443")  # --port 0 was used
        status, nodes = cluster.http("GET", "/api/v1/nodes")
        assert status == 200 and nodes["items"] == []  # --nodes 0 was used
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the podlife it started: our own process group
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
