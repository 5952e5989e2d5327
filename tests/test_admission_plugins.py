"""ServiceAccount, DefaultTolerationSeconds and Priority admission, as a user meets them.

Driven with the real kubectl and raw HTTPS against ``podlife up``; what a pod reads back
is compared with what Kubernetes 1.37 writes (``plugin/pkg/admission/serviceaccount``,
``.../defaulttolerationseconds``, ``.../priority``).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

TOKEN_MOUNT = {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
TOKEN_VOLUME_SOURCE = {
    "defaultMode": 420,
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    "path": "namespace"}]}},
    ],
}
VOLUME_NAME = re.compile(r"^kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}$")
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def pod(name: str, **spec: Any) -> dict:
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def create_pod(cluster: PodlifeProcess, namespace: str, body: dict) -> tuple[int, dict]:
    return cluster.http("POST", f"/api/v1/namespaces/{namespace}/pods", body)


def created(cluster: PodlifeProcess, namespace: str, body: dict) -> dict:
    status, answer = create_pod(cluster, namespace, body)
    assert status == 201, answer
    return answer


def namespace(cluster: PodlifeProcess, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    wait_for(lambda: cluster.http("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200, 30,
             what=f"the default service account of {name}")
    return name


def test_a_pod_right_after_its_namespace_gets_the_default_account_and_its_token(cluster: PodlifeProcess) -> None:
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "adm-fresh"}},
        {**pod("web", initContainers=[{"name": "init", "image": "busybox"}],
               containers=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]),
         "metadata": {"name": "web", "namespace": "adm-fresh"}},
    ]
    # one kubectl call: the pod follows its namespace at once
    cluster.kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(d) for d in documents))
    spec = cluster.kubectl_json("get", "pod", "web", "-n", "adm-fresh")["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert VOLUME_NAME.match(volume["name"]), volume["name"]
    assert volume["projected"] == TOKEN_VOLUME_SOURCE
    for container in spec["initContainers"] + spec["containers"]:
        assert container["volumeMounts"] == [{**TOKEN_MOUNT, "name": volume["name"]}], container["name"]
    assert spec["tolerations"] == DEFAULT_TOLERATIONS
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in spec and "imagePullSecrets" not in spec


def test_what_admission_adds_belongs_to_no_field_manager(cluster: PodlifeProcess) -> None:
    """Kubernetes records a create's managed fields before mutating admission runs."""
    ns = namespace(cluster, "adm-owners")
    cluster.kubectl("run", "owned", "-n", ns, "--image=busybox", "--", "sleep", "60")
    entries = cluster.kubectl_json("get", "pod", "owned", "-n", ns, "--show-managed-fields")["metadata"]["managedFields"]
    [mine] = [e for e in entries if e["manager"] == "kubectl-run"]
    spec_fields = mine["fieldsV1"]["f:spec"]
    assert "f:containers" in spec_fields and "f:restartPolicy" in spec_fields  # the request, defaulted
    for added in ("f:volumes", "f:tolerations", "f:priority", "f:serviceAccountName"):
        assert added not in spec_fields, added
    [container] = spec_fields["f:containers"].values()
    assert "f:volumeMounts" not in container


def test_automount_false_on_the_account_or_the_pod_skips_the_token(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-automount")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
         "automountServiceAccountToken": False}))
    quiet = created(cluster, ns, pod("quiet", serviceAccountName="quiet"))["spec"]
    assert "volumes" not in quiet and "volumeMounts" not in quiet["containers"][0]
    assert quiet["serviceAccount"] == "quiet"
    insists = created(cluster, ns, pod("insists", serviceAccountName="quiet", automountServiceAccountToken=True))
    assert [v["projected"] for v in insists["spec"]["volumes"]] == [TOKEN_VOLUME_SOURCE]  # the pod's choice wins
    declines = created(cluster, ns, pod("declines", automountServiceAccountToken=False))["spec"]
    assert declines["serviceAccountName"] == "default" and "volumes" not in declines


def test_a_container_with_its_own_mount_there_keeps_it(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-mounts")
    own = {"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    spec = created(cluster, ns, pod("own", volumes=[{"name": "mine", "emptyDir": {}}], containers=[
        {"name": "a", "image": "busybox", "volumeMounts": [own]}, {"name": "b", "image": "busybox"}]))["spec"]
    token_volume = spec["volumes"][1]["name"]
    assert [v["name"] for v in spec["volumes"]] == ["mine", token_volume] and VOLUME_NAME.match(token_volume)
    assert spec["containers"][0]["volumeMounts"] == [own]
    assert spec["containers"][1]["volumeMounts"] == [{**TOKEN_MOUNT, "name": token_volume}]


def test_the_accounts_image_pull_secrets_are_copied_unless_the_pod_has_some(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-pull")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller"},
         "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}]}))
    copied = created(cluster, ns, pod("copied", serviceAccountName="puller"))["spec"]
    assert copied["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    kept = created(cluster, ns, pod("kept", serviceAccountName="puller", imagePullSecrets=[{"name": "own"}]))["spec"]
    assert kept["imagePullSecrets"] == [{"name": "own"}]


def test_a_missing_account_is_refused_with_kubernetes_message(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-missing")
    result = cluster.kubectl("create", "-n", ns, "-f", "-", check=False,
                             input=json.dumps(pod("lost", serviceAccountName="ghost")))
    assert result.returncode != 0
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "lost" is forbidden: error looking up '
            f'service account {ns}/ghost: serviceaccount "ghost" not found') in result.stderr
    status, body = create_pod(cluster, ns, pod("lost", serviceAccountName="ghost"))
    assert status == 403 and body["reason"] == "Forbidden" and body["details"] == {"name": "lost", "kind": "pods"}
    assert cluster.http("GET", f"/api/v1/namespaces/{ns}/pods/lost")[0] == 404


def test_the_default_account_is_waited_for_a_little(tmp_path: Path) -> None:
    """Without the ServiceAccount controller (``--controllers '*,-serviceaccount-controller'``) nothing makes
    ``default``: a pod naming it is refused once the admission's bounded wait is over, and a pod created while
    someone makes the account is admitted with it."""
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--controllers", "*,-serviceaccount-controller",
                          kubectl=require_tool("kubectl"))
    try:
        proc.start()
        proc.kubectl("create", "namespace", "adm-wait")
        status, body = create_pod(proc, "adm-wait", pod("early"))
        assert status == 403 and body["message"] == ('pods "early" is forbidden: error looking up service account '
                                                     'adm-wait/default: serviceaccount "default" not found')
        answers: list[tuple[int, dict]] = []
        creator = threading.Thread(target=lambda: answers.append(create_pod(proc, "adm-wait", pod("patient"))))
        creator.start()
        proc.kubectl("create", "serviceaccount", "default", "-n", "adm-wait")
        creator.join(30)
        [(status, body)] = answers
        assert status == 201, body
        assert body["spec"]["serviceAccountName"] == "default"
    finally:
        proc.stop()


def test_a_deleted_default_account_is_made_again(cluster: PodlifeProcess) -> None:
    """The ServiceAccount controller remakes ``default`` when it is deleted, so pods keep being admitted."""
    ns = namespace(cluster, "adm-remade")
    uid = cluster.kubectl_json("get", "serviceaccount", "default", "-n", ns)["metadata"]["uid"]
    cluster.kubectl("delete", "serviceaccount", "default", "-n", ns)
    wait_for(lambda: cluster.kubectl_json("get", "serviceaccount", "default", "-n", ns)["metadata"]["uid"] != uid,
             what="a new default ServiceAccount")
    assert created(cluster, ns, pod("after"))["spec"]["serviceAccountName"] == "default"


def test_mirror_pods_are_left_alone_and_may_not_name_accounts(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-mirror")
    mirror = pod("static-web")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    spec = created(cluster, ns, mirror)["spec"]
    assert "serviceAccountName" not in spec and "volumes" not in spec
    mirror["metadata"]["name"] = "static-sa"
    mirror["spec"]["serviceAccountName"] = "default"
    status, body = create_pod(cluster, ns, mirror)
    assert status == 403 and body["message"] == 'pods "static-sa" is forbidden: a mirror pod may not reference service accounts'
    mirror["metadata"]["name"] = "static-secret"
    del mirror["spec"]["serviceAccountName"]
    mirror["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "creds"}}]
    status, body = create_pod(cluster, ns, mirror)
    assert status == 403 and body["message"] == 'pods "static-secret" is forbidden: a mirror pod may not reference secrets'


def test_default_tolerations_are_added_once(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-tolerate")
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
    spec = created(cluster, ns, pod("own", tolerations=[own]))["spec"]
    assert spec["tolerations"] == [own, DEFAULT_TOLERATIONS[1]]
    everything = created(cluster, ns, pod("everything", tolerations=[{"operator": "Exists"}]))["spec"]
    assert everything["tolerations"] == [{"operator": "Exists"}]
    any_effect = {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}
    spec = created(cluster, ns, pod("any-effect", tolerations=[any_effect]))["spec"]
    assert spec["tolerations"] == [any_effect, DEFAULT_TOLERATIONS[0]]
    cluster.kubectl("label", "pod", "own", "-n", ns, "changed=yes")  # an update adds nothing again
    cluster.kubectl("annotate", "pod", "everything", "-n", ns, "note=x")
    assert cluster.kubectl_json("get", "pod", "own", "-n", ns)["spec"]["tolerations"] == [own, DEFAULT_TOLERATIONS[1]]
    assert cluster.kubectl_json("get", "pod", "everything", "-n", ns)["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_the_built_in_priority_classes_exist(cluster: PodlifeProcess) -> None:
    classes = {pc["metadata"]["name"]: pc for pc in cluster.kubectl_json("get", "priorityclasses")["items"]}
    node, cluster_critical = classes["system-node-critical"], classes["system-cluster-critical"]
    assert (node["value"], cluster_critical["value"]) == (2000001000, 2000000000)
    assert node["description"] == "Used for system critical pods that must not be moved from their current node."
    assert cluster_critical["preemptionPolicy"] == "PreemptLowerPriority" and not cluster_critical.get("globalDefault")
    table = cluster.kubectl("get", "pc", "system-node-critical").stdout.split()
    assert table[:4] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"] and table[5:7] == ["system-node-critical", "2000001000"]


def apply_class(cluster: PodlifeProcess, name: str, value: int, **fields: Any) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value,
         **fields}))


def test_priority_class_names_resolve_to_priorities(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-priority")
    apply_class(cluster, "adm-high", 1000)
    apply_class(cluster, "adm-polite", 500, preemptionPolicy="Never")
    high = created(cluster, ns, pod("high", priorityClassName="adm-high"))["spec"]
    assert (high["priority"], high["preemptionPolicy"]) == (1000, "PreemptLowerPriority")
    polite = created(cluster, ns, pod("polite", priorityClassName="adm-polite"))["spec"]
    assert (polite["priority"], polite["preemptionPolicy"]) == (500, "Never")
    agrees = created(cluster, ns, pod("agrees", priorityClassName="adm-high", priority=1000))["spec"]
    assert agrees["priority"] == 1000
    critical = created(cluster, ns, pod("critical", priorityClassName="system-cluster-critical"))["spec"]
    assert critical["priority"] == 2000000000  # any namespace, since Kubernetes 1.17
    result = cluster.kubectl("create", "-n", ns, "-f", "-", check=False,
                             input=json.dumps(pod("unknown", priorityClassName="nope")))
    assert 'pods "unknown" is forbidden: no PriorityClass with name nope was found' in result.stderr
    status, body = create_pod(cluster, ns, pod("sets-priority", priority=5))
    assert status == 403 and body["message"] == (
        'pods "sets-priority" is forbidden: the integer value of priority (5) must not be provided in pod spec; '
        "priority admission controller computed 0 from the given PriorityClass name")
    status, body = create_pod(cluster, ns, pod("sets-policy", priorityClassName="adm-polite",
                                               preemptionPolicy="PreemptLowerPriority"))
    assert status == 403 and body["message"] == (
        'pods "sets-policy" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be '
        "provided in pod spec; priority admission controller computed Never from the given PriorityClass name")
    cluster.kubectl("label", "pod", "high", "-n", ns, "kept=yes")
    assert cluster.kubectl_json("get", "pod", "high", "-n", ns)["spec"]["priority"] == 1000


def test_the_global_default_class_applies_and_is_unique(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "adm-default")
    apply_class(cluster, "adm-everyday", 7, globalDefault=True, preemptionPolicy="Never")
    try:
        spec = created(cluster, ns, pod("plain"))["spec"]
        assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == ("adm-everyday", 7, "Never")
        status, body = cluster.http("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", {
            "metadata": {"name": "adm-second"}, "value": 8, "globalDefault": True})
        assert status == 403 and body["message"] == (
            'priorityclasses.scheduling.k8s.io "adm-second" is forbidden: PriorityClass adm-everyday is already '
            "marked as default. Only one default can exist")
        apply_class(cluster, "adm-everyday", 7, globalDefault=True, preemptionPolicy="Never", description="still")
    finally:
        cluster.kubectl("delete", "priorityclass", "adm-everyday")
    assert created(cluster, ns, pod("after"))["spec"]["priority"] == 0


@pytest.mark.parametrize(("body", "message"), [
    ({"metadata": {"name": "too-high"}, "value": 1000000001},
     'PriorityClass.scheduling.k8s.io "too-high" is invalid: value: Forbidden: maximum allowed value of a user '
     "defined priority is 1000000000"),
    ({"metadata": {"name": "system-mine"}, "value": 10},
     'PriorityClass.scheduling.k8s.io "system-mine" is invalid: metadata.name: Forbidden: priority class names with '
     "'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"),
    ({"metadata": {"name": "bad-policy"}, "value": 1, "preemptionPolicy": "Sometimes"},
     'PriorityClass.scheduling.k8s.io "bad-policy" is invalid: preemptionPolicy: Unsupported value: "Sometimes": '
     'supported values: "PreemptLowerPriority", "Never"'),
])
def test_priority_classes_are_validated(cluster: PodlifeProcess, body: dict, message: str) -> None:
    status, answer = cluster.http("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", body)
    assert (status, answer["reason"], answer["message"]) == (422, "Invalid", message)


def test_a_priority_class_keeps_its_value_and_policy(cluster: PodlifeProcess) -> None:
    apply_class(cluster, "adm-fixed", 100)
    status, body = cluster.http("PATCH", "/apis/scheduling.k8s.io/v1/priorityclasses/adm-fixed",
                                {"value": 101, "preemptionPolicy": "Never"},
                                content_type="application/merge-patch+json")
    assert status == 422 and body["message"] == (
        'PriorityClass.scheduling.k8s.io "adm-fixed" is invalid: [value: Forbidden: may not be changed in an update., '
        'preemptionPolicy: Invalid value: "Never": field is immutable]')
    status, body = cluster.http("PATCH", "/apis/scheduling.k8s.io/v1/priorityclasses/adm-fixed",
                                {"description": "fine"}, content_type="application/merge-patch+json")
    assert status == 200 and body["description"] == "fine"


def test_the_flags_set_the_seconds_and_turn_plugins_off(tmp_path: Path) -> None:
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--default-not-ready-toleration-seconds", "60",
                          "--default-unreachable-toleration-seconds", "90", "--disable-admission-plugins",
                          "ServiceAccount")
    try:
        proc.start()
        spec = created(proc, "default", pod("flags"))["spec"]
        assert [t["tolerationSeconds"] for t in spec["tolerations"]] == [60, 90]
        assert "serviceAccountName" not in spec and "volumes" not in spec  # ServiceAccount is off
        assert spec["priority"] == 0  # Priority is not
    finally:
        proc.stop()
