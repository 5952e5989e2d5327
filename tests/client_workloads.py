"""Workloads the client-library tests share: a streaming pod and a multi-document manifest.

The streaming pod serves every library's logs-follow, exec and port-forward tests: its
``log`` container prints ``gate <name>`` for each file a test drops into its gate
folder (so a test knows the line was written *after* its log stream opened), and its
``web`` container serves HTTP on loopback for port-forwarding. Pods run as host
processes, so the test and the pod share the folders.

The manifest holds the kinds people put in one file (Namespace, ServiceAccount,
ConfigMap, Secret, Deployment, Service; an APIService on request), for each library's
"create from YAML".

:class:`KopfOperator` runs a real ``kopf run`` for labelled ConfigMaps of one
namespace; its handlers leave their mark in an annotation (create, update) or a file
(delete), so a test sees what kopf saw.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cluster_harness import PodlifeProcess, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StreamingPod:
    """The shared pod: ``gate(name)`` makes its ``log`` container print ``gate <name>``."""

    name: str
    namespace: str
    gates: Path
    web_port: int
    served: str  # the body of GET / through the web container

    def gate(self, name: str) -> str:
        (self.gates / name).touch()
        return f"gate {name}"


def streaming_pod_spec(name: str, gates: Path, www: Path, web_port: int) -> dict[str, Any]:
    log_loop = (f"trap 'exit 0' TERM; echo ready; while :; do for f in {gates}/*; do "
                f"[ -e \"$f\" ] && echo \"gate $(basename \"$f\")\" && rm -f \"$f\"; done; sleep 0.05; done")
    return {"metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "log", "image": "busybox", "command": ["/bin/sh", "-c", log_loop]},
                {"name": "web", "image": "python", "ports": [{"containerPort": web_port}],
                 "command": [sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                             "--directory", str(www)]}]}}


def start_streaming_pod(cluster: PodlifeProcess, root: Path, name: str = "streamer") -> StreamingPod:
    """Create the streaming pod in ``default`` and wait until both containers serve."""
    gates, www = root / "gates", root / "www"
    gates.mkdir()
    www.mkdir()
    (www / "index.html").write_text("served through port-forward\n")
    port = free_port()
    status, body = cluster.http("POST", "/api/v1/namespaces/default/pods", streaming_pod_spec(name, gates, www, port))
    assert status == 201, body

    def running() -> bool:
        _, pod = cluster.http("GET", f"/api/v1/namespaces/default/pods/{name}")
        return pod["status"].get("phase") == "Running"

    wait_for(running, 60, what="the streaming pod to run")
    wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200, 30,
             what="the web container to listen")
    return StreamingPod(name, "default", gates, port, (www / "index.html").read_text())


def delete_streaming_pod(cluster: PodlifeProcess, pod: StreamingPod) -> None:
    cluster.http("DELETE", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}?gracePeriodSeconds=0")


def http_get_over(sock: socket.socket) -> bytes:
    """``GET /`` over a connected socket (HTTP/1.0: the server closes when done)."""
    sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


MULTI_DOC = """\
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: builder, namespace: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}, labels: {{from: yaml}}}}
data: {{mode: fast}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: {ns}}}
stringData: {{token: s3cret}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      serviceAccountName: builder
      containers: [{{name: c, image: nginx}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""

API_SERVICE = """\
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.{group}}}
spec:
  group: {group}
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {{name: web, namespace: {ns}, port: 443}}
"""


def multi_doc(ns: str, *, api_service: bool = False) -> str:
    text = MULTI_DOC.format(ns=ns)
    return text + (API_SERVICE.format(ns=ns, group=f"{ns}.example.com") if api_service else "")


def assert_multi_doc_created(cluster: PodlifeProcess, ns: str) -> None:
    for path in (f"/api/v1/namespaces/{ns}/serviceaccounts/builder", f"/api/v1/namespaces/{ns}/configmaps/settings",
                 f"/api/v1/namespaces/{ns}/secrets/token", f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                 f"/api/v1/namespaces/{ns}/services/web"):
        status, body = cluster.http("GET", path)
        assert status == 200, (path, body)
    _, svc = cluster.http("GET", f"/api/v1/namespaces/{ns}/services/web")
    assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["targetPort"] == 8080


KOPF_FINALIZER = "podlife.test/kopf"
KOPF_HANDLERS = textwrap.dedent('''
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.persistence.finalizer = FINALIZER
        settings.watching.server_timeout = SERVER_TIMEOUT
        settings.watching.initial_streaming = INITIAL_STREAMING  # sendInitialEvents instead of a list

    @kopf.on.create("v1", "configmaps", labels={"kopf": "watched"})
    def created(body, patch, **_):
        patch.metadata.annotations["kopf-seen"] = "create"

    @kopf.on.update("v1", "configmaps", labels={"kopf": "watched"}, field="data")
    def updated(new, patch, **_):
        patch.metadata.annotations["kopf-seen"] = "update:" + ",".join(sorted(new or {}))

    @kopf.on.delete("v1", "configmaps", labels={"kopf": "watched"})
    def deleted(name, **_):
        with open(DELETED_LOG, "a") as f:
            f.write(name + "\\n")
''')


@dataclass
class KopfOperator:
    """A ``kopf run --standalone`` process for one namespace (stopped by its pid)."""

    proc: subprocess.Popen
    namespace: str
    log_path: Path
    deleted_log: Path

    @classmethod
    def start(cls, cluster: PodlifeProcess, workdir: Path, namespace: str, *, initial_streaming: bool = False,
              server_timeout: int = 3) -> KopfOperator:
        script, deleted_log, log_path = workdir / "operator.py", workdir / "deleted.log", workdir / "kopf.log"
        script.write_text(f"FINALIZER = {KOPF_FINALIZER!r}\nDELETED_LOG = {str(deleted_log)!r}\n"
                          f"INITIAL_STREAMING = {initial_streaming!r}\nSERVER_TIMEOUT = {server_timeout!r}\n"
                          + KOPF_HANDLERS)
        env = {**cluster.kubectl_env(), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace,
                                     "--verbose", str(script)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        return cls(proc, namespace, log_path, deleted_log)

    def seen(self, cluster: PodlifeProcess, name: str) -> str | None:
        """What kopf's handlers wrote on ConfigMap ``name`` (failing if kopf died)."""
        assert self.proc.poll() is None, self.log()[-3000:]
        _, body = cluster.http("GET", f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
        return (body.get("metadata", {}).get("annotations") or {}).get("kopf-seen")

    def deleted(self) -> list[str]:
        return self.deleted_log.read_text().split() if self.deleted_log.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
