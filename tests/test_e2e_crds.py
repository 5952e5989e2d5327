"""CustomResourceDefinitions through the real server, driven with kubectl (and kopf when installed).

One module-scoped cluster; each test uses its own CRD group so the tests do not
depend on each other's order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster_harness import PodlifeProcess, require_module, wait_for

pytestmark = pytest.mark.e2e


def crd_manifest(group: str, *, plural: str = "crontabs", kind: str = "CronTab", short: str = "ct",
                 open_status: bool = False) -> dict[str, Any]:
    """A CronTab-like CRD with printer columns, status and scale subresources and a schema."""
    status: dict[str, Any] = {"type": "object", "properties": {"replicas": {"type": "integer"}}}
    if open_status:
        status["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [short]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                         "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "description": "What the cron job should do.",
                                 "properties": {
                                     "cronSpec": {"type": "string", "description": "When to run, cron syntax."},
                                     "image": {"type": "string"},
                                     "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                                 }},
                        "status": status,
                    },
                }},
            }],
        },
    }


def cron(group: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": name, "namespace": "default"},
            "spec": {"cronSpec": "* * * * */5", "image": "busybox", **spec}}


def install_crd(cluster: PodlifeProcess, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=30s", f"crd/{manifest['metadata']['name']}")


def test_apply_crd_waits_established_and_serves_the_kind(cluster: PodlifeProcess) -> None:
    group = "stable.example.com"
    install_crd(cluster, crd_manifest(group))
    crd = cluster.kubectl_json("get", "crd", f"crontabs.{group}")
    assert crd["status"]["acceptedNames"]["kind"] == "CronTab"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "crontabs" in cluster.kubectl("get", "crds").stdout
    resources = cluster.kubectl("api-resources", "--api-group", group).stdout
    assert "crontabs" in resources and "ct" in resources and "CronTab" in resources
    status, groups = cluster.http("GET", "/apis")
    assert any(g["name"] == group for g in groups["groups"])

    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(cron(group, "my-cron", replicas=2)))
    table = cluster.kubectl("get", f"crontabs.{group}").stdout.splitlines()
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert table[1].split()[:7] == ["my-cron", "*", "*", "*", "*", "*/5", "2"]
    assert "my-cron" in cluster.kubectl("get", "ct").stdout  # the short name (no other CRD uses it yet)
    got = cluster.kubectl_json("get", f"crontabs.{group}", "my-cron")
    assert got["metadata"]["generation"] == 1 and got["spec"]["replicas"] == 2

    # kubectl waits for the CRD to go, which waits for its custom resources to go
    cluster.kubectl("delete", "crd", f"crontabs.{group}", "--timeout=30s")
    assert cluster.http("GET", f"/apis/{group}/v1/namespaces/default/crontabs/my-cron")[0] == 404
    assert cluster.kubectl("get", f"crontabs.{group}", check=False).returncode != 0


def test_strict_validation_pruning_defaulting_and_schema_errors(cluster: PodlifeProcess) -> None:
    group = "strict.example.com"
    install_crd(cluster, crd_manifest(group, short="sct"))
    bad = cron(group, "typo")
    bad["spec"]["imagee"] = "x"
    result = cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert result.returncode != 0 and 'unknown field "spec.imagee"' in result.stderr
    assert cluster.kubectl("get", "sct", "typo", check=False).returncode != 0

    # without strict validation the unknown field is pruned, and the default filled in
    status, body = cluster.http("POST", f"/apis/{group}/v1/namespaces/default/crontabs", bad)
    assert status == 201, body
    assert "imagee" not in body["spec"] and body["spec"]["replicas"] == 1

    wrong = cron(group, "wrong", replicas="three")
    result = cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(wrong), check=False)
    assert result.returncode != 0
    assert ('spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'
            in result.stderr)
    path = f"/apis/{group}/v1/namespaces/default/crontabs"
    status, body = cluster.http("POST", path, cron(group, "big", replicas=11))
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid", "field": "spec.replicas",
        "message": "Invalid value: 11: spec.replicas in body should be less than or equal to 10"}


def test_explain_uses_the_crd_schema(cluster: PodlifeProcess) -> None:
    group = "explain.example.com"
    install_crd(cluster, crd_manifest(group, plural="widgets", kind="Widget", short="wg"))
    out = cluster.kubectl("explain", "widgets.spec", "--api-version", f"{group}/v1").stdout
    assert "What the cron job should do." in out
    assert "cronSpec" in out and "When to run, cron syntax." in out and "replicas" in out


def test_patch_status_scale_and_strategic_merge(cluster: PodlifeProcess) -> None:
    group = "patch.example.com"
    install_crd(cluster, crd_manifest(group, short="pct"))
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(cron(group, "p")))
    cluster.kubectl("patch", "pct", "p", "--type", "merge", "-p", '{"spec":{"image":"nginx"}}')
    got = cluster.kubectl_json("get", "pct", "p")
    assert got["spec"]["image"] == "nginx" and got["metadata"]["generation"] == 2
    cluster.kubectl("patch", "pct", "p", "--type", "json", "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    assert cluster.kubectl_json("get", "pct", "p")["spec"]["replicas"] == 4

    path = f"/apis/{group}/v1/namespaces/default/crontabs/p"
    status, body = cluster.http("PATCH", path, {"spec": {"image": "x"}},
                                content_type="application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"

    # the main resource ignores status; /status ignores everything else and keeps the generation
    status, body = cluster.http("PATCH", path, {"status": {"replicas": 9}}, content_type="application/merge-patch+json")
    assert status == 200 and "status" not in body
    status, body = cluster.http("PATCH", path + "/status", {"status": {"replicas": 3}, "spec": {"image": "y"}},
                                content_type="application/merge-patch+json")
    assert status == 200 and body["status"] == {"replicas": 3} and body["spec"]["image"] == "nginx"
    assert body["metadata"]["generation"] == 3

    cluster.kubectl("scale", "pct", "p", "--replicas", "6")
    status, scale = cluster.http("GET", path + "/scale")
    assert status == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 6
    assert scale["status"]["replicas"] == 3
    result = cluster.kubectl("scale", "pct", "p", "--replicas", "20", check=False)
    assert result.returncode != 0 and "less than or equal to 10" in result.stderr


def test_delete_crd_removes_its_resources(cluster: PodlifeProcess) -> None:
    group = "gone.example.com"
    install_crd(cluster, crd_manifest(group, short="gct"))
    for name in ("a", "b"):
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(cron(group, name)))
    # one resource with a finalizer of its own holds the CRD until it is released
    cluster.kubectl("patch", "gct", "b", "--type", "merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    cluster.kubectl("delete", "crd", f"crontabs.{group}", "--wait=false")
    wait_for(lambda: cluster.http("GET", f"/apis/{group}/v1/namespaces/default/crontabs/a")[0] == 404,
             what="crontab a deleted")
    crd = cluster.kubectl_json("get", "crd", f"crontabs.{group}")
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    terminating = next(c for c in crd["status"]["conditions"] if c["type"] == "Terminating")
    assert terminating["status"] == "True"
    status, body = cluster.http("POST", f"/apis/{group}/v1/namespaces/default/crontabs", cron(group, "c"))
    assert status == 405, body

    cluster.kubectl("patch", "gct", "b", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: cluster.kubectl("get", "crd", f"crontabs.{group}", check=False).returncode != 0,
             what="CRD gone")
    assert cluster.http("GET", f"/apis/{group}/v1/namespaces/default/crontabs")[0] == 404
    status, groups = cluster.http("GET", "/apis")
    assert all(g["name"] != group for g in groups["groups"])


def test_invalid_crds_are_rejected(cluster: PodlifeProcess) -> None:
    manifest = crd_manifest("bad.example.com", short="bct")
    manifest["metadata"]["name"] = "wrong.bad.example.com"
    manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] = {}
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0
    assert ('metadata.name: Invalid value: "wrong.bad.example.com": must be spec.names.plural+"."+spec.group'
            in result.stderr)
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type: "
            "Required value: must not be empty for specified object fields") in result.stderr


def test_aggregated_discovery_etag_changes_with_crds(cluster: PodlifeProcess) -> None:
    accept = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"}
    etag = _discovery_etag(cluster, accept)
    assert _status(cluster, "/apis", {**accept, "If-None-Match": etag}) == 304
    install_crd(cluster, crd_manifest("etag.example.com", short="ect"))
    assert _discovery_etag(cluster, accept) != etag


def _discovery_etag(cluster: PodlifeProcess, headers: dict[str, str]) -> str:
    answer = cluster.request("GET", "/apis", headers=headers, timeout=10)
    assert answer.status == 200
    return answer.headers["ETag"]


def _status(cluster: PodlifeProcess, path: str, headers: dict[str, str]) -> int:
    return cluster.http("GET", path, headers=headers)[0]


# ---- kopf ------------------------------------------------------------------------------------

OPERATOR = textwrap.dedent('''
    import kopf

    GROUP = "kopf.example.com"

    @kopf.on.startup()
    def configure(settings, **_):
        settings.persistence.finalizer = "kopf.example.com/finalizer"
        settings.watching.server_timeout = 30

    @kopf.on.create(GROUP, "v1", "crontabs")
    def created(spec, patch, logger, **_):
        patch.status["phase"] = "Created"
        patch.status["seen"] = spec.get("image")

    @kopf.on.update(GROUP, "v1", "crontabs", field="spec.image")
    def updated(new, patch, **_):
        patch.status["phase"] = "Updated"
        patch.status["seen"] = new

    @kopf.on.delete(GROUP, "v1", "crontabs")
    def deleted(name, namespace, **_):
        with open(DELETED_LOG, "a") as f:
            f.write(f"{namespace}/{name}\\n")
''')


@pytest.fixture
def kopf_operator(cluster: PodlifeProcess, tmp_path: Path) -> Any:
    require_module("kopf")
    install_crd(cluster, crd_manifest("kopf.example.com", short="kct", open_status=True))
    deleted_log = tmp_path / "deleted.log"
    script = tmp_path / "operator.py"
    script.write_text(f"DELETED_LOG = {str(deleted_log)!r}\n" + OPERATOR)
    env = {**cluster.kubectl_env(), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "kopf.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default",
                             "--verbose", str(script)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        yield proc, deleted_log, tmp_path / "kopf.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def test_kopf_operator_handles_create_update_delete(cluster: PodlifeProcess, kopf_operator: Any) -> None:
    proc, deleted_log, log_path = kopf_operator
    group = "kopf.example.com"

    def status_of(name: str) -> dict[str, Any]:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        return cluster.kubectl_json("get", f"crontabs.{group}", name).get("status") or {}

    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(cron(group, "op")))
    wait_for(lambda: status_of("op").get("phase") == "Created", timeout=60,
             what=f"kopf create handler (log: {log_path})")
    obj = cluster.kubectl_json("get", f"crontabs.{group}", "op")
    assert "kopf.example.com/finalizer" in obj["metadata"]["finalizers"]

    cluster.kubectl("patch", f"crontabs.{group}", "op", "--type", "merge", "-p", '{"spec":{"image":"nginx"}}')
    wait_for(lambda: status_of("op").get("seen") == "nginx", timeout=60,
             what=f"kopf update handler (log: {log_path})")

    cluster.kubectl("delete", f"crontabs.{group}", "op", "--timeout=60s")
    assert deleted_log.read_text().split() == ["default/op"]
    assert cluster.kubectl("get", f"crontabs.{group}", "op", check=False).returncode != 0
