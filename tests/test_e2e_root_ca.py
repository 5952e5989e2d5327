"""Every namespace gets the ``kube-root-ca.crt`` ConfigMap, and keeps it, as on Kubernetes."""

from __future__ import annotations

import base64
import json

import yaml

from .cluster_harness import PodlifeProcess, wait_for


def cluster_ca(cluster: PodlifeProcess) -> str:
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    return base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


def root_ca_data(cluster: PodlifeProcess, namespace: str) -> dict | None:
    status, cm = cluster.http("GET", f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt")
    return cm.get("data") if status == 200 else None


def test_new_namespaces_get_the_cluster_ca(cluster: PodlifeProcess) -> None:
    ca = cluster_ca(cluster)
    assert wait_for(lambda: root_ca_data(cluster, "default"), 30, what="kube-root-ca.crt in default") == {"ca.crt": ca}
    cluster.kubectl("create", "namespace", "ca-new")
    assert wait_for(lambda: root_ca_data(cluster, "ca-new"), 30, what="kube-root-ca.crt in ca-new") == {"ca.crt": ca}


def test_a_changed_or_deleted_bundle_is_put_back(cluster: PodlifeProcess) -> None:
    ca = cluster_ca(cluster)
    cluster.kubectl("create", "namespace", "ca-fix")
    wait_for(lambda: root_ca_data(cluster, "ca-fix"), 30, what="kube-root-ca.crt in ca-fix")
    cluster.kubectl("patch", "configmap", "kube-root-ca.crt", "-n", "ca-fix", "--type=merge",
                    "-p", json.dumps({"data": {"ca.crt": "tampered"}}))
    wait_for(lambda: root_ca_data(cluster, "ca-fix") == {"ca.crt": ca}, 30, what="the bundle restored")
    cluster.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", "ca-fix")
    wait_for(lambda: root_ca_data(cluster, "ca-fix") == {"ca.crt": ca}, 30, what="the bundle recreated")
