"""The previous official client release (``kubernetes`` 36.x) against podlife.

Users do not upgrade their client with every server: the 36.x client must work as
37.x does (``test_e2e_python_clients.py``). It cannot share the test virtualenv with
37.x, so the suite creates one of its own, once, in ``.venv-clients/k8s36`` (reused
while its marker names the same requirement), and runs small client scripts in it as
subprocesses: watch, SharedInformer, ``create_from_yaml`` of a multi-document file,
logs that follow, interactive exec and port-forward.

Creating the virtualenv needs the package index; when that fails, the tests skip,
except under CI where it is a failure (``cluster_harness.missing``).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .client_workloads import (StreamingPod, assert_multi_doc_created, delete_streaming_pod, multi_doc,
                               start_streaming_pod)
from .cluster_harness import PodlifeProcess, missing

pytestmark = pytest.mark.e2e

REQUIREMENT = "kubernetes>=36,<37"
VENVS = Path(__file__).resolve().parent.parent / ".venv-clients"


def client_venv(name: str, requirement: str) -> Path:
    """The Python of a virtualenv holding ``requirement``, created on first use.

    A lock file serializes creation across pytest-xdist workers; the ``.ready`` marker,
    written last, makes a half-made virtualenv (an interrupted run) be made again.
    """
    VENVS.mkdir(exist_ok=True)
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == requirement and python.exists():
            return python
        steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement]]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                missing(f"creating the {name} virtualenv timed out: {' '.join(step)}")
            if done.returncode != 0:
                missing(f"cannot create the {name} virtualenv ({' '.join(step)}):\n{done.stderr[-2000:]}")
        marker.write_text(requirement)
    return python


@pytest.fixture(scope="session")
def k8s36() -> Path:
    return client_venv("k8s36", REQUIREMENT)


@pytest.fixture(scope="module")
def streaming_pod(cluster: PodlifeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamingPod]:
    pod = start_streaming_pod(cluster, tmp_path_factory.mktemp("streaming-pod"), name="streamer-36")
    yield pod
    delete_streaming_pod(cluster, pod)


SCENARIOS = textwrap.dedent('''
    """Scenarios for one official client release; each prints its findings as JSON."""
    import json, socket, sys, threading, time
    from pathlib import Path

    import kubernetes
    from kubernetes import client, config, utils, watch
    from kubernetes.stream import portforward, stream

    scenario, kubeconfig, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    core = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    api = core.api_client
    # what the scenarios create carries this label, and their watches select it: a namespace
    # also holds the kube-root-ca.crt ConfigMap that the root CA publisher adds
    MINE, SELECTOR = {"labels": {"compat": "yes"}}, "compat=yes"


    def version():
        return {"client": kubernetes.__version__, "server": client.VersionApi(api).get_code().git_version}


    def watch_changes():
        ns = args["namespace"]
        core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a", **MINE}})
        rv = core.list_namespaced_config_map(ns).metadata.resource_version
        core.create_namespaced_config_map(ns, {"metadata": {"name": "b", **MINE}})
        core.patch_namespaced_config_map("b", ns, {"data": {"k": "v"}})
        core.delete_collection_namespaced_config_map(ns, label_selector=SELECTOR)
        seen, w = [], watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5,
                           label_selector=SELECTOR):
            seen.append([ev["type"], ev["object"].metadata.name])
            if len(seen) == 4:
                w.stop()
        return {"seen": seen}


    def informer():
        from kubernetes.informer import ADDED, DELETED, SharedInformer
        ns = args["namespace"]
        core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_config_map(ns, {"metadata": {"name": "listed", **MINE}})
        seen, cond = [], threading.Condition()
        def on(kind):
            def handler(obj):
                with cond:
                    seen.append([kind, obj.metadata.name])
                    cond.notify_all()
            return handler
        inf = SharedInformer(core.list_namespaced_config_map, namespace=ns, label_selector=SELECTOR)
        inf.add_event_handler(ADDED, on("ADDED"))
        inf.add_event_handler(DELETED, on("DELETED"))
        inf.start()
        def wait(event):
            with cond:
                cond.wait_for(lambda: event in seen, timeout=20)
        try:
            wait(["ADDED", "listed"])
            core.create_namespaced_config_map(ns, {"metadata": {"name": "watched", **MINE}})
            wait(["ADDED", "watched"])
            core.delete_namespaced_config_map("listed", ns)
            wait(["DELETED", "listed"])
            return {"seen": seen, "keys": sorted(inf.cache.list_keys())}
        finally:
            inf.stop()


    def create_from_yaml():
        created = utils.create_from_yaml(api, args["file"])
        return {"kinds": [obj.kind for group in created for obj in group]}


    def logs_follow():
        resp = core.read_namespaced_pod_log(args["pod"], "default", container="log", follow=True,
                                            _preload_content=False)
        lines, buffer = [], b""
        for chunk in resp.stream(amt=None):
            buffer += chunk
            while b"\\n" in buffer:
                line, buffer = buffer.split(b"\\n", 1)
                lines.append(line.decode())
                if line == b"ready":
                    Path(args["gate"]).touch()  # the pod prints the next line only now
            if args["expected"] in lines:
                break
        resp.close()
        return {"lines": lines}


    def exec_interactive():
        ws = stream(core.connect_get_namespaced_pod_exec, args["pod"], "default", container="log", command=["/bin/sh"],
                    stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
        ws.write_stdin("echo one\\n")
        one = ws.readline_stdout(timeout=10)
        ws.write_stdin("echo two >&2\\n")
        two = ws.readline_stderr(timeout=10)
        ws.write_stdin("exit 3\\n")
        ws.run_forever(timeout=10)
        code = ws.returncode
        ws.close()
        plain = stream(core.connect_get_namespaced_pod_exec, args["pod"], "default", container="log",
                       command=["echo", "plain"], stdout=True, stderr=True, stdin=False, tty=False)
        return {"stdout": one, "stderr": two, "returncode": code, "plain": plain}


    def port_forward():
        port = args["port"]
        pf = portforward(core.connect_get_namespaced_pod_portforward, args["pod"], "default", ports=str(port))
        sock = pf.socket(port)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(b"GET /index.html HTTP/1.0\\r\\nHost: pod\\r\\n\\r\\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        pf.close()
        return {"reply": data.decode(errors="replace")}


    print(json.dumps(globals()[scenario]()))
''')


def run_scenario(python: Path, cluster: PodlifeProcess, tmp_path: Path, scenario: str, **args: Any) -> dict[str, Any]:
    script = tmp_path / "scenarios.py"
    script.write_text(SCENARIOS)
    done = subprocess.run([str(python), str(script), scenario, str(cluster.kubeconfig), json.dumps(args)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"{scenario} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_k8s36_version(k8s36: Path, cluster: PodlifeProcess, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "version")
    assert found["client"].startswith("36."), found
    assert found["server"].startswith("v1."), found


def test_k8s36_watch(k8s36: Path, cluster: PodlifeProcess, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "watch_changes", namespace="k36-watch")
    assert found["seen"] == [["ADDED", "b"], ["MODIFIED", "b"], ["DELETED", "a"], ["DELETED", "b"]]


def test_k8s36_shared_informer(k8s36: Path, cluster: PodlifeProcess, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "informer", namespace="k36-informer")
    assert found["seen"] == [["ADDED", "listed"], ["ADDED", "watched"], ["DELETED", "listed"]]
    assert found["keys"] == ["k36-informer/watched"]


def test_k8s36_create_from_yaml(k8s36: Path, cluster: PodlifeProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(multi_doc("k36-yaml"))
    found = run_scenario(k8s36, cluster, tmp_path, "create_from_yaml", file=str(manifest))
    assert found["kinds"] == ["Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service"]
    assert_multi_doc_created(cluster, "k36-yaml")


def test_k8s36_logs_follow(k8s36: Path, cluster: PodlifeProcess, streaming_pod: StreamingPod, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "logs_follow", pod=streaming_pod.name,
                         gate=str(streaming_pod.gates / "k36"), expected="gate k36")
    assert found["lines"][0] == "ready" and found["lines"][-1] == "gate k36"


def test_k8s36_interactive_exec(k8s36: Path, cluster: PodlifeProcess, streaming_pod: StreamingPod, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "exec_interactive", pod=streaming_pod.name)
    assert found == {"stdout": "one", "stderr": "two", "returncode": 3, "plain": "plain\n"}


def test_k8s36_port_forward(k8s36: Path, cluster: PodlifeProcess, streaming_pod: StreamingPod, tmp_path: Path) -> None:
    found = run_scenario(k8s36, cluster, tmp_path, "port_forward", pod=streaming_pod.name, port=streaming_pod.web_port)
    assert found["reply"].startswith("HTTP/1.0 200") and streaming_pod.served in found["reply"]
