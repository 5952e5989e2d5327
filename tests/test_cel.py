"""The CEL evaluator (:mod:`podlife.machinery.cel`): compile-time checks, Kubernetes' libraries, cost bounds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from podlife.machinery import cel

OBJ = {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"replicas": 3, "template": {"spec": {"containers": [
           {"name": "app", "image": "nginx:1.25", "resources": {"limits": {"memory": "256Mi"}}},
           {"name": "side", "image": "busybox"}]}}}}


def run(source: str, obj: Any = OBJ, **extra: Any) -> Any:
    program = cel.compile_expression(source, cel.ADMISSION_VARIABLES)
    activation = {"object": cel.to_cel(obj), "oldObject": None, "params": cel.to_cel(extra.pop("params", None)),
                  **{k: cel.to_cel(v) for k, v in extra.items()}}
    return cel.from_cel(program.evaluate(activation, cel.Budget()))


@pytest.mark.parametrize(("source", "expected"), [
    ("object.spec.replicas <= 5", True),
    ("object.spec.template.spec.containers.all(c, c.image.contains(':'))", False),
    ("object.spec.template.spec.containers.exists(c, c.name == 'side')", True),
    ("object.spec.template.spec.containers.map(c, c.name)", ["app", "side"]),
    ("object.spec.template.spec.containers.filter(c, c.image.startsWith('nginx')).size()", 1),
    ("has(object.metadata.labels) && object.metadata.labels['app'] == 'web'", True),
    ("has(object.metadata.annotations)", False),
    ("'Hello World'.lowerAscii().split(' ').join('-')", "hello-world"),
    ("'abc'.indexOf('c') + 'abcabc'.lastIndexOf('a')", 5),
    ("' x '.trim() + 'y'.upperAscii() + 'abcd'.substring(1, 3) + 'a.b'.replace('.', '/')", "xYbca/b"),
    ("'nginx:1.25'.find('[0-9.]+$')", "1.25"),
    ("'a1b22c333'.findAll('[0-9]+')", ["1", "22", "333"]),
    ("'web-1'.matches('^[a-z]+-[0-9]$')", True),
    ("[3, 1, 2].sort() == [1, 2, 3] && [1, 2, 3].isSorted() && [1, 2, 2].distinct() == [1, 2]", True),
    ("[1, 2, 3].sum() + [4, 9].max() + [[1], [2, 3]].flatten().size() + [1, 2, 3, 4].slice(1, 3)[0]", 20),
    ("quantity(object.spec.template.spec.containers[0].resources.limits.memory).isLessThan(quantity('1Gi'))", True),
    ("quantity('1500m').compareTo(quantity('1')) + quantity('2').add(quantity('3')).asInteger()", 6),
    ("isQuantity('1Gi') && !isQuantity('one')", True),
    ("url('https://example.com:8443/a/b?x=1').getHostname() + url('https://example.com:8443/').getPort()",
     "example.com8443"),
    ("cidr('10.0.0.0/8').containsIP(ip('10.2.3.4')) && ip('::1').isLoopback() && ip('10.0.0.1').family() == 4", True),
    ("Object{spec: Object.spec{replicas: 1}}", {"spec": {"replicas": 1}}),
    ("[JSONPatch{op: 'replace', path: '/spec/replicas', value: object.spec.replicas + 1}]",
     [{"op": "replace", "path": "/spec/replicas", "value": 4}]),
    ("true || 1 / 0 == 1", True),
])
def test_expressions_evaluate_as_kubernetes_does(source: str, expected: Any) -> None:
    assert run(source) == expected


def test_params_and_variables_are_variables() -> None:
    assert run("object.spec.replicas <= int(params.data.max)", params={"data": {"max": "2"}}) is False
    assert run("variables.limit * 2", variables={"limit": 21}) == 42


@pytest.mark.parametrize(("source", "wanted"), [
    ("object.spec.replicas <=", "ERROR: <input>:1:24: Syntax error: mismatched input '<EOF>'"),
    ("bogus.spec", "ERROR: <input>:1:1: undeclared reference to 'bogus' (in container '')"),
    ("object.metadata.name.frobnicate()", "ERROR: <input>:1:22: undeclared reference to 'frobnicate'"),
    ("nosuchfn(object)", "undeclared reference to 'nosuchfn'"),
    ("[1].all(x, y > 0)", "undeclared reference to 'y'"),
    ("Pod{spec: 1}", "undeclared reference to 'Pod'"),
    ("object.?spec", "unsupported syntax '.?'"),
    ("(" * 150 + "1" + ")" * 150, "recursion limit exceeded"),
])
def test_bad_expressions_fail_to_compile_with_cel_go_wording(source: str, wanted: str) -> None:
    with pytest.raises(cel.CelCompileError) as caught:
        cel.compile_expression(source, cel.ADMISSION_VARIABLES)
    assert wanted in str(caught.value)


def test_a_compile_error_shows_the_line_and_a_caret() -> None:
    with pytest.raises(cel.CelCompileError) as caught:
        cel.compile_expression("object.x + nope", cel.ADMISSION_VARIABLES)
    assert str(caught.value) == ("ERROR: <input>:1:12: undeclared reference to 'nope' (in container '')\n"
                                 " | object.x + nope\n | ...........^")


@pytest.mark.parametrize(("source", "wanted"), [
    ("object.spec.nosuch", "no such key: nosuch"),
    ("object.metadata.labels['missing']", "no such key: missing"),
    ("object.spec.replicas / 0", "division by zero"),
    ("object.metadata.name + 1", "no such overload"),
    ("quantity('lots')", "quantities must match"),
])
def test_evaluation_errors_are_worded_as_in_cel_go(source: str, wanted: str) -> None:
    with pytest.raises(cel.CelEvalError) as caught:
        run(source)
    assert wanted in str(caught.value)


def test_a_hostile_expression_is_stopped_by_the_cost_limit_or_deadline() -> None:
    items = "[" + ",".join(str(i) for i in range(60)) + "]"
    source = f"{items}.all(a, {items}.all(b, {items}.all(c, {items}.all(d, a + b + c + d >= 0))))"
    program = cel.compile_expression(source, cel.ADMISSION_VARIABLES)
    started = time.monotonic()
    with pytest.raises(cel.CelEvalError) as caught:
        program.evaluate({}, cel.Budget())
    assert str(caught.value).startswith("operation cancelled: ")
    assert time.monotonic() - started < cel.DEADLINE_SECONDS + 1.5


def test_the_per_request_budget_is_shared_by_expressions() -> None:
    program = cel.compile_expression("[1, 2, 3].all(x, x > 0)", cel.ADMISSION_VARIABLES)
    budget = cel.Budget(remaining=200)  # one evaluation costs about 90 units
    program.evaluate({}, budget)  # spends some of it
    with pytest.raises(cel.CelEvalError):
        for _ in range(10):
            program.evaluate({}, budget)
    assert budget.remaining <= 0


def test_the_authorizer_asks_the_callback_with_the_gathered_attributes() -> None:
    asked: list[dict[str, str]] = []

    def authorize(attrs: Any) -> tuple[str, str, str]:
        asked.append(dict(attrs))
        return ("allow" if attrs.get("resource") == "pods" else "deny"), "because", ""

    program = cel.compile_expression(
        "authorizer.group('').resource('pods').namespace('ns').check('create').allowed() && "
        "!authorizer.group('apps').resource('deployments').check('delete').allowed() && "
        "authorizer.group('').resource('pods').check('get').reason() == 'because'", cel.ADMISSION_VARIABLES)
    assert cel.from_cel(program.evaluate({"authorizer": cel.AuthzRequest(authorize)}, cel.Budget())) is True
    assert asked[0] == {"group": "", "resource": "pods", "namespace": "ns", "verb": "create"}
    assert asked[1] == {"group": "apps", "resource": "deployments", "verb": "delete"}
