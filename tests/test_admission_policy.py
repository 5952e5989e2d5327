"""Admission policies and webhook matchConditions, as a user meets them: real server, real kubectl.

Each test works in a namespace of its own, labelled for it, and its bindings select that
label, so the policies of one test never reach another's writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster_harness import PodlifeProcess, wait_for


@pytest.fixture
def ns(cluster: PodlifeProcess) -> Iterator[str]:
    name = f"pol-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"policy-test={name}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployment(name: str, replicas: int, ns: str, labels: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  {('labels: {' + labels + '}') if labels else ''}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: nginx
"""


def max_replicas_policy(name: str, ns: str, actions: str = "[Deny]", extra_validation: str = "") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= 5"
  {extra_validation}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}-binding
spec:
  policyName: {name}
  validationActions: {actions}
  matchResources:
    namespaceSelector:
      matchLabels: {{policy-test: {ns}}}
"""


def cleanup(cluster: PodlifeProcess, *objects: str) -> None:
    for obj in objects:
        cluster.kubectl("delete", obj, "--ignore-not-found", check=False)


def test_a_violating_create_is_refused_with_kubernetes_message(cluster: PodlifeProcess, ns: str) -> None:
    applied = cluster.kubectl("apply", "-f", "-", input=max_replicas_policy("max-replicas", ns))
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/max-replicas created" in applied.stdout
    assert "validatingadmissionpolicybinding.admissionregistration.k8s.io/max-replicas-binding created" in applied.stdout
    try:
        refused = cluster.kubectl("apply", "-f", "-", input=deployment("big", 6, ns), check=False)
        assert refused.returncode != 0
        assert ('The deployments "big" is invalid: : ValidatingAdmissionPolicy \'max-replicas\' with binding '
                "'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5") in refused.stderr
        assert cluster.kubectl("get", "deployment", "big", "-n", ns, check=False).returncode != 0
        cluster.kubectl("apply", "-f", "-", input=deployment("small", 2, ns))
        updated = cluster.kubectl("apply", "-f", "-", input=deployment("small", 9, ns), check=False)
        assert updated.returncode != 0 and 'The deployments "small" is invalid' in updated.stderr  # an UPDATE
        assert cluster.kubectl_json("get", "deployment", "small", "-n", ns)["spec"]["replicas"] == 2
        table = cluster.kubectl("get", "validatingadmissionpolicies", "max-replicas").stdout
        assert table.split("\n")[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
        assert table.split("\n")[1].split()[:3] == ["max-replicas", "1", "<unset>"]
        binding = cluster.kubectl("get", "validatingadmissionpolicybinding", "max-replicas-binding").stdout
        assert binding.split("\n")[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
        policy = cluster.kubectl_json("get", "validatingadmissionpolicy", "max-replicas")
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert policy["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    finally:
        cleanup(cluster, "validatingadmissionpolicybinding/max-replicas-binding", "validatingadmissionpolicy/max-replicas")


def test_a_namespace_selector_limits_the_binding(cluster: PodlifeProcess, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=max_replicas_policy("limited", ns))
    other = f"free-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("apply", "-f", "-", input=deployment("big", 6, other))  # not selected: allowed
        refused = cluster.kubectl("apply", "-f", "-", input=deployment("big", 6, ns), check=False)
        assert refused.returncode != 0 and "ValidatingAdmissionPolicy 'limited'" in refused.stderr
    finally:
        cleanup(cluster, "validatingadmissionpolicybinding/limited-binding", "validatingadmissionpolicy/limited")
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_warn_gives_a_kubectl_warning_and_admits(cluster: PodlifeProcess, ns: str) -> None:
    message = 'messageExpression: "\'replicas is \' + string(object.spec.replicas)"'
    policy = max_replicas_policy("warned", ns, actions="[Warn]").replace(
        '- expression: "object.spec.replicas <= 5"', '- expression: "object.spec.replicas <= 5"\n    ' + message)
    cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        created = cluster.kubectl("apply", "-f", "-", input=deployment("big", 7, ns))
        assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'warned' with binding 'warned-binding': "
                "replicas is 7") in created.stderr
        assert cluster.kubectl_json("get", "deployment", "big", "-n", ns)["spec"]["replicas"] == 7
    finally:
        cleanup(cluster, "validatingadmissionpolicybinding/warned-binding", "validatingadmissionpolicy/warned")


def test_params_come_from_a_configmap(cluster: PodlifeProcess, ns: str) -> None:
    policy = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: param-limit}}
spec:
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules:
    - {{apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}}
  variables:
  - name: limit
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be at most ' + params.data.maxReplicas"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: param-limit-binding}}
spec:
  policyName: param-limit
  validationActions: [Deny]
  paramRef: {{name: limits, namespace: {ns}, parameterNotFoundAction: Deny}}
  matchResources:
    namespaceSelector: {{matchLabels: {{policy-test: {ns}}}}}
"""
    cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        missing = cluster.kubectl("apply", "-f", "-", input=deployment("a", 1, ns), check=False)
        assert ("failed to configure binding: no params found for policy binding with `Deny` "
                "parameterNotFoundAction") in missing.stderr
        cluster.kubectl("create", "configmap", "limits", "-n", ns, "--from-literal=maxReplicas=3")
        cluster.kubectl("apply", "-f", "-", input=deployment("a", 3, ns))
        refused = cluster.kubectl("apply", "-f", "-", input=deployment("b", 4, ns), check=False)
        assert ('deployments.apps "b" is forbidden: ValidatingAdmissionPolicy \'param-limit\' with binding '
                "'param-limit-binding' denied request: replicas must be at most 3") in refused.stderr
        assert "(Forbidden)" in refused.stderr
    finally:
        cleanup(cluster, "validatingadmissionpolicybinding/param-limit-binding", "validatingadmissionpolicy/param-limit")


def test_a_bad_expression_is_refused_at_creation_naming_the_field(cluster: PodlifeProcess) -> None:
    policy = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: broken}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}
  validations:
  - expression: "object.spec.replicas <= "
  - expression: "nosuchvar.spec.replicas < 3"
"""
    refused = cluster.kubectl("apply", "-f", "-", input=policy, check=False)
    assert refused.returncode != 0
    assert ('spec.validations[0].expression: Invalid value: "object.spec.replicas <= ": compilation failed: '
            "ERROR: <input>:1:") in refused.stderr
    assert "spec.validations[1].expression" in refused.stderr
    assert "undeclared reference to 'nosuchvar'" in refused.stderr
    assert cluster.kubectl("get", "validatingadmissionpolicy", "broken", check=False).returncode != 0


def test_a_hostile_expression_is_bounded(cluster: PodlifeProcess, ns: str) -> None:
    items = "[" + ",".join(str(i) for i in range(40)) + "]"
    nested = f"{items}.all(a, {items}.all(b, {items}.all(c, {items}.all(d, a + b + c + d >= 0))))"
    policy = max_replicas_policy("hostile", ns, extra_validation=f"- expression: '{nested}'")
    cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        started = time.monotonic()
        refused = cluster.kubectl("apply", "-f", "-", input=deployment("small", 1, ns), check=False)
        elapsed = time.monotonic() - started
        assert refused.returncode != 0
        assert "operation cancelled" in refused.stderr and "resulted in error" in refused.stderr
        assert elapsed < 10  # 2.56 million iterations would take far longer unbounded
        cluster.kubectl("get", "namespace", ns)  # and the server still answers
    finally:
        cleanup(cluster, "validatingadmissionpolicybinding/hostile-binding", "validatingadmissionpolicy/hostile")


def test_a_mutating_policy_sets_a_label_and_adds_a_container_env(cluster: PodlifeProcess, ns: str) -> None:
    policy = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {{name: add-defaults}}
spec:
  matchConstraints:
    resourceRules:
    - {{apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{{metadata: Object.metadata{{labels: {{"team": "platform"}}}},
          spec: Object.spec{{template: Object.spec.template{{spec: Object.spec.template.spec{{
            containers: [Object.spec.template.spec.containers{{name: "app",
              env: [Object.spec.template.spec.containers.env{{name: "MODE", value: "prod"}}]}}]}}}}}}}}
  - patchType: JSONPatch
    jsonPatch:
      expression: >
        [JSONPatch{{op: "add", path: "/metadata/annotations",
                    value: {{"replicas-seen": string(object.spec.replicas)}}}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {{name: add-defaults-binding}}
spec:
  policyName: add-defaults
  matchResources:
    namespaceSelector: {{matchLabels: {{policy-test: {ns}}}}}
"""
    cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        cluster.kubectl("apply", "-f", "-", input=deployment("web", 2, ns))
        got = cluster.kubectl_json("get", "deployment", "web", "-n", ns)
        assert got["metadata"]["labels"]["team"] == "platform"
        assert got["metadata"]["annotations"]["replicas-seen"] == "2"
        containers = got["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["app"] and containers[0]["image"] == "nginx"  # merged by name
        assert containers[0]["env"] == [{"name": "MODE", "value": "prod"}]
        table = cluster.kubectl("get", "mutatingadmissionpolicies", "add-defaults").stdout
        assert table.split("\n")[1].split()[:3] == ["add-defaults", "2", "<unset>"]
    finally:
        cleanup(cluster, "mutatingadmissionpolicybinding/add-defaults-binding", "mutatingadmissionpolicy/add-defaults")


def _unreachable_webhook(name: str, ns: str, match_conditions: str, rule: str, match_policy: str = "Equivalent") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: {name}.example.com
  clientConfig: {{url: "https://127.0.0.1:1/refuse"}}
  rules: [{rule}]
  matchPolicy: {match_policy}
  namespaceSelector: {{matchLabels: {{policy-test: {ns}}}}}
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Fail
  {match_conditions}
"""


def test_webhook_match_conditions_skip_it(cluster: PodlifeProcess, ns: str) -> None:
    conditions = 'matchConditions: [{name: not-skipped, expression: "object.metadata.name != \'skip-me\'"}]'
    rule = '{apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"]}'
    cluster.kubectl("apply", "-f", "-", input=_unreachable_webhook("conditional", ns, conditions, rule))
    try:
        cluster.kubectl("create", "configmap", "skip-me", "-n", ns)  # the condition is false: not called
        called = cluster.kubectl("create", "configmap", "called", "-n", ns, check=False)
        assert called.returncode != 0
        assert 'failed calling webhook "conditional.example.com"' in called.stderr
        bad = 'matchConditions: [{name: broken, expression: "object.nosuch == 1"}]'
        cluster.kubectl("apply", "-f", "-", input=_unreachable_webhook("conditional", ns, bad, rule))
        errored = cluster.kubectl("create", "configmap", "errored", "-n", ns, check=False)
        assert "failed to evaluate match conditions: expression 'object.nosuch == 1' resulted in error: " \
               "no such key: nosuch" in errored.stderr
        refused = cluster.kubectl("apply", "-f", "-", check=False, input=_unreachable_webhook(
            "conditional", ns, 'matchConditions: [{name: x, expression: "object.metadata.name =="}]', rule))
        assert refused.returncode != 0
        assert 'webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name ==": ' \
               "compilation failed: ERROR: <input>:1:" in refused.stderr
    finally:
        cleanup(cluster, "validatingwebhookconfiguration/conditional")


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.policy.example.com}
spec:
  group: policy.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v2
    served: true
    storage: false
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def widget(name: str, ns: str, version: str) -> str:
    return f"{{\"apiVersion\": \"policy.example.com/{version}\", \"kind\": \"Widget\", " \
           f"\"metadata\": {{\"name\": \"{name}\", \"namespace\": \"{ns}\"}}, \"spec\": {{\"size\": 1}}}}"


def test_equivalent_match_policy_reaches_another_served_version(cluster: PodlifeProcess, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.policy.example.com", "--timeout=30s")
    wait_for(lambda: cluster.kubectl("get", "widgets.v2.policy.example.com", "-n", ns, check=False).returncode == 0,
             what="widgets served at v2")
    rule = '{apiGroups: ["policy.example.com"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["widgets"]}'
    policy = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: widget-versions}}
spec:
  matchConstraints:
    resourceRules: [{rule}]
  validations:
  - expression: "false"
    messageExpression: "'matched ' + request.kind.version + ' object ' + object.apiVersion + ' for request ' + request.requestKind.version"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: widget-versions-binding}}
spec:
  policyName: widget-versions
  validationActions: [Warn]
  matchResources:
    namespaceSelector: {{matchLabels: {{policy-test: {ns}}}}}
"""
    cluster.kubectl("apply", "-f", "-", input=policy)
    try:
        created = cluster.kubectl("create", "-f", "-", input=widget("w2", ns, "v2"))
        assert "matched v1 object policy.example.com/v1 for request v2" in created.stderr
        cluster.kubectl("apply", "-f", "-", input=_unreachable_webhook("exact-only", ns, "", rule, "Exact"))
        cluster.kubectl("create", "-f", "-", input=widget("w3", ns, "v2"))  # Exact: the v1 rule does not match v2
        cluster.kubectl("apply", "-f", "-", input=_unreachable_webhook("exact-only", ns, "", rule, "Equivalent"))
        called = cluster.kubectl("create", "-f", "-", input=widget("w4", ns, "v2"), check=False)
        assert 'failed calling webhook "exact-only.example.com"' in called.stderr
    finally:
        cleanup(cluster, "validatingwebhookconfiguration/exact-only",
                "validatingadmissionpolicybinding/widget-versions-binding", "validatingadmissionpolicy/widget-versions")
        cluster.kubectl("delete", "crd", "widgets.policy.example.com", "--wait=false", check=False)
