"""Node identities: a node reads only what its pods use and writes only what is its own.

A client certificate for ``system:node:<name>`` (group ``system:nodes``), as a kubelet on
another host would hold, is used against the real server over HTTPS: the Node authorizer
grants the Secret its pod uses and refuses another, NodeRestriction refuses writes to
another node, another node's Lease and pods bound elsewhere, with Kubernetes' messages.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from podlife.api.pki import PKI

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def node_call(cluster: PodlifeProcess, tls: ssl.SSLContext, method: str, path: str, body: Any = None,
              content_type: str = "application/merge-patch+json") -> tuple[int, Any]:
    server = cluster._config()[0]  # noqa: SLF001 -- the harness's server URL
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method,
                                 headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(req, context=tls, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def node_identity(cluster: PodlifeProcess, tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """The cluster's node and a TLS context holding a client certificate for it, as a kubelet's."""
    node = wait_for(lambda: (cluster.kubectl_json("get", "nodes")["items"] or [None])[0], 30, what="a node")
    assert node is not None
    name = node["metadata"]["name"]
    pki = PKI(cluster.data_dir / "pki")
    made = pki.client_certificate(f"system:node:{name}", ["system:nodes"])
    (tmp_path / "node.crt").write_bytes(made.certificate)
    (tmp_path / "node.key").write_bytes(made.key)
    tls = ssl.create_default_context(cafile=str(pki.ca_cert))
    tls.load_cert_chain(tmp_path / "node.crt", tmp_path / "node.key")
    return name, tls


def test_a_node_reaches_only_what_is_its_own(cluster: PodlifeProcess, tmp_path: Path) -> None:
    name, tls = node_identity(cluster, tmp_path)

    for secret in ("used", "unused"):
        cluster.kubectl("create", "secret", "generic", f"node-{secret}", "--from-literal=k=v")
    cluster.kubectl("create", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: node-graph}}
spec:
  nodeName: {name}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env: [{{name: S, valueFrom: {{secretKeyRef: {{name: node-used, key: k}}}}}}]
""")
    cluster.kubectl("create", "-f", "-", input="""
apiVersion: v1
kind: Node
metadata: {name: someone-else}
""")
    status, _ = node_call(cluster, tls, "GET", "/api/v1/namespaces/default/secrets/node-used")
    assert status == 200
    status, body = node_call(cluster, tls, "GET", "/api/v1/namespaces/default/secrets/node-unused")
    assert status == 403 and f"no relationship found between node '{name}' and this object" in body["message"]
    assert node_call(cluster, tls, "GET", f"/api/v1/nodes/{name}")[0] == 200
    status, _ = node_call(cluster, tls, "PATCH", f"/api/v1/nodes/{name}/status",
                          {"metadata": {"labels": {}}})
    assert status == 200
    status, body = node_call(cluster, tls, "PATCH", "/api/v1/nodes/someone-else", {"metadata": {"labels": {"x": "y"}}})
    assert status == 403 and body["message"] == (
        f'nodes "someone-else" is forbidden: node "{name}" is not allowed to modify node "someone-else"')
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "someone-else", "namespace": "kube-node-lease"}, "spec": {}}
    status, body = node_call(cluster, tls, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                             lease, content_type="application/json")
    assert status == 403 and "can only access node lease with the same name as the requesting node" in body["message"]
    status, body = node_call(cluster, tls, "GET", "/api/v1/namespaces/kube-system/secrets")
    assert status == 403  # a list of secrets is never a node's


def test_a_node_reads_only_the_volumes_its_pods_claims_are_bound_to(cluster: PodlifeProcess, tmp_path: Path) -> None:
    name, tls = node_identity(cluster, tmp_path)
    for volume in ("graph-used", "graph-other"):
        cluster.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "hostPath": {"path": str(tmp_path / volume)}}}))
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "graph-claim"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeName": "graph-used"}}))
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graph-claimer"},
        "spec": {"nodeName": "someone-absent", "containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "graph-claim"}}]}}))
    try:
        # the claim's pod is on another node: nothing links this node to the volume yet
        status, body = node_call(cluster, tls, "GET", "/api/v1/persistentvolumes/graph-used")
        assert status == 403 and f"no relationship found between node '{name}' and this object" in body["message"]
        cluster.kubectl("delete", "pod", "graph-claimer", "--grace-period=0", "--force", check=False)
        wait_for(lambda: cluster.kubectl("get", "pod", "graph-claimer", check=False).returncode != 0, 30,
                 what="the other node's pod gone")
        cluster.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graph-claimer"},
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "graph-claim"}}]}}))
        assert node_call(cluster, tls, "GET", "/api/v1/persistentvolumes/graph-used")[0] == 200
        status, body = node_call(cluster, tls, "GET", "/api/v1/persistentvolumes/graph-other")
        assert status == 403 and "no relationship found" in body["message"]
        status, body = node_call(cluster, tls, "GET", "/api/v1/persistentvolumes")
        assert status == 403 and "can only get individual resources of this type" in body["message"]
    finally:
        cluster.kubectl("delete", "pod", "graph-claimer", "--grace-period=0", "--force", check=False)
        cluster.kubectl("delete", "pvc", "graph-claim", "--wait=false", check=False)
        cluster.kubectl("delete", "pv", "graph-used", "graph-other", "--wait=false", check=False)
