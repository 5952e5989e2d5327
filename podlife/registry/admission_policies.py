"""ValidatingAdmissionPolicy, MutatingAdmissionPolicy and their bindings (admissionregistration.k8s.io/v1).

What it is. The four kinds' strategies: Kubernetes' defaults (from
pkg/apis/admissionregistration/v1/defaults.go: ``failurePolicy: Fail``, ``matchPolicy:
Equivalent``, empty ``namespaceSelector``/``objectSelector``, rule ``scope: "*"``,
``reinvocationPolicy: Never``, ``paramRef.parameterNotFoundAction: Deny``) and validation
(pkg/apis/admissionregistration/validation/validation.go): required fields, supported
values, unique names, and every CEL expression compiled by :mod:`podlife.machinery.cel`
when the object is written, so a bad one is a 422 naming the field --
``spec.validations[0].expression: Invalid value: "...": compilation failed: ERROR: ...``.
The policies' status (``typeChecking``) is kept as the client left it; podlife does not
type-check against schemas. Evaluation lives in :mod:`podlife.api.admission_policy`.
The tables are kubectl's (pkg/printers/internalversion/printers.go): NAME, VALIDATIONS
(or MUTATIONS), PARAMKIND, AGE for policies; NAME, POLICYNAME, PARAMREF, AGE for bindings.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..machinery import cel
from .defaults import DefaultedStrategy
from .field_rules import unique_supported
from .tables import register_printer
from .tables._base import TablePrinter, age, age_column, as_list, column, name_column, name_of, spec
from .types import FieldError, Obj, Strategy, forbidden, invalid, not_supported, required

GROUP = "admissionregistration.k8s.io"
_FAILURE_POLICIES = ["Fail", "Ignore"]
_MATCH_POLICIES = ["Exact", "Equivalent"]
_REASONS = ["Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge"]
_ACTIONS = ["Deny", "Warn", "Audit"]
_PATCH_TYPES = ["ApplyConfiguration", "JSONPatch"]
_REINVOCATION = ["Never", "IfNeeded"]
_NOT_FOUND_ACTIONS = ["Allow", "Deny"]
_CEL_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")


# ---- defaults ------------------------------------------------------------------------------

def _default_match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    match.setdefault("matchPolicy", "Equivalent")
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in as_list(match.get(key)):
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def default_policy(obj: Obj, *, mutating: bool) -> None:
    sp = obj.get("spec")
    if not isinstance(sp, dict):
        return
    sp.setdefault("failurePolicy", "Fail")
    if mutating:
        sp.setdefault("reinvocationPolicy", "Never")
    _default_match_resources(sp.get("matchConstraints"))


def default_binding(obj: Obj) -> None:
    sp = obj.get("spec")
    if not isinstance(sp, dict):
        return
    _default_match_resources(sp.get("matchResources"))
    ref = sp.get("paramRef")
    if isinstance(ref, dict):
        ref.setdefault("parameterNotFoundAction", "Deny")


# ---- validation ----------------------------------------------------------------------------

def _shown(expression: Any) -> Any:
    """The value as Go's %q shows it inside the quotes FieldError adds."""
    return orjson.dumps(expression).decode()[1:-1] if isinstance(expression, str) else expression


def _expression(errs: list[FieldError], path: str, value: Any, variables: frozenset[str]) -> None:
    if not value:
        errs.append(required(path))
        return
    try:
        cel.compile_expression(value, variables)
    except cel.CelCompileError as exc:
        errs.append(invalid(path, _shown(value), f"compilation failed: {exc}"))


def _supported(errs: list[FieldError], path: str, value: Any, allowed: list[str], *, needed: bool = False) -> None:
    if value is None:
        if needed:
            errs.append(required(path))
    elif value not in allowed:
        errs.append(not_supported(path, value, allowed))


def _items(errs: list[FieldError], sp: Obj, key: str, path: str) -> list[tuple[str, Obj]]:
    value = sp.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errs.append(invalid(path, value, "must be a list"))
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            out.append((f"{path}[{i}]", item))
        else:
            errs.append(invalid(f"{path}[{i}]", item, "must be an object"))
    return out


def _rules(errs: list[FieldError], match: Obj, key: str, path: str, *, needed: bool) -> None:
    rules = _items(errs, match, key, path)
    if needed and not rules:
        errs.append(required(path))
    for rpath, rule in rules:
        for field in ("operations", "apiGroups", "apiVersions", "resources"):
            values = rule.get(field)
            if not isinstance(values, list) or not values:
                errs.append(required(f"{rpath}.{field}"))
            elif "*" in values and len(values) > 1:
                errs.append(invalid(f"{rpath}.{field}", values, "if '*' is present, must not specify other values"))
        for op in rule.get("operations") or []:
            if op not in ("*", "CREATE", "UPDATE", "DELETE", "CONNECT"):
                errs.append(not_supported(f"{rpath}.operations", op, ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]))
        if rule.get("scope") not in (None, "*", "Cluster", "Namespaced"):
            errs.append(not_supported(f"{rpath}.scope", rule.get("scope"), ["*", "Cluster", "Namespaced"]))


def _match_resources(errs: list[FieldError], match: Any, path: str, *, needed: bool) -> None:
    if match is None:
        if needed:
            errs.append(required(path))
        return
    if not isinstance(match, dict):
        errs.append(invalid(path, match, "must be an object"))
        return
    _supported(errs, f"{path}.matchPolicy", match.get("matchPolicy"), _MATCH_POLICIES)
    _rules(errs, match, "resourceRules", f"{path}.resourceRules", needed=needed)
    _rules(errs, match, "excludeResourceRules", f"{path}.excludeResourceRules", needed=False)


def _named(errs: list[FieldError], items: list[tuple[str, Obj]], *, identifier: bool) -> None:
    seen: set[str] = set()
    for path, item in items:
        name = item.get("name")
        if not name:
            errs.append(required(f"{path}.name"))
        elif identifier and (not isinstance(name, str) or not _CEL_IDENTIFIER.match(name)):
            errs.append(invalid(f"{path}.name", name, "name is not a valid CEL identifier"))
        elif name in seen:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.name", "", name))
        else:
            seen.add(str(name))


def _common_spec(errs: list[FieldError], sp: Obj) -> frozenset[str]:
    """failurePolicy, paramKind, matchConstraints, matchConditions, variables; the variable names."""
    _supported(errs, "spec.failurePolicy", sp.get("failurePolicy"), _FAILURE_POLICIES)
    kind = sp.get("paramKind")
    if kind is not None:
        if not isinstance(kind, dict) or not kind.get("apiVersion"):
            errs.append(required("spec.paramKind.apiVersion"))
        if not isinstance(kind, dict) or not kind.get("kind"):
            errs.append(required("spec.paramKind.kind"))
    _match_resources(errs, sp.get("matchConstraints"), "spec.matchConstraints", needed=True)
    base = cel.ADMISSION_VARIABLES
    conditions = _items(errs, sp, "matchConditions", "spec.matchConditions")
    _named(errs, conditions, identifier=False)
    for path, cond in conditions:
        _expression(errs, f"{path}.expression", cond.get("expression"), base)
    variables = _items(errs, sp, "variables", "spec.variables")
    _named(errs, variables, identifier=True)
    for path, var in variables:
        _expression(errs, f"{path}.expression", var.get("expression"), base)
    return base


def validate_validating_policy(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    sp = obj.get("spec")
    if not isinstance(sp, dict):
        return [required("spec")]
    variables = _common_spec(errs, sp)
    validations = _items(errs, sp, "validations", "spec.validations")
    audits = _items(errs, sp, "auditAnnotations", "spec.auditAnnotations")
    if not validations and not audits:
        errs.append(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
    for path, v in validations:
        _expression(errs, f"{path}.expression", v.get("expression"), variables)
        if v.get("messageExpression"):
            _expression(errs, f"{path}.messageExpression", v.get("messageExpression"), variables)
        msg = v.get("message")
        if isinstance(msg, str) and "\n" in msg:
            errs.append(invalid(f"{path}.message", msg, "message must not contain line breaks"))
        _supported(errs, f"{path}.reason", v.get("reason"), _REASONS)
    for path, a in audits:
        if not a.get("key"):
            errs.append(required(f"{path}.key"))
        _expression(errs, f"{path}.valueExpression", a.get("valueExpression"), variables)
    return errs


def validate_mutating_policy(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    sp = obj.get("spec")
    if not isinstance(sp, dict):
        return [required("spec")]
    variables = _common_spec(errs, sp)
    _supported(errs, "spec.reinvocationPolicy", sp.get("reinvocationPolicy"), _REINVOCATION)
    mutations = _items(errs, sp, "mutations", "spec.mutations")
    if not mutations:
        errs.append(required("spec.mutations", "mutations must contain at least one item"))
    for path, m in mutations:
        patch_type = m.get("patchType")
        _supported(errs, f"{path}.patchType", patch_type, _PATCH_TYPES, needed=True)
        apply_config, json_patch = m.get("applyConfiguration"), m.get("jsonPatch")
        if patch_type == "ApplyConfiguration":
            if json_patch is not None:
                errs.append(forbidden(f"{path}.jsonPatch", "must not be specified when patchType is ApplyConfiguration"))
            if not isinstance(apply_config, dict):
                errs.append(required(f"{path}.applyConfiguration",
                                     "applyConfiguration.expression is required when patchType is ApplyConfiguration"))
            else:
                _expression(errs, f"{path}.applyConfiguration.expression", apply_config.get("expression"), variables)
        elif patch_type == "JSONPatch":
            if apply_config is not None:
                errs.append(forbidden(f"{path}.applyConfiguration", "must not be specified when patchType is JSONPatch"))
            if not isinstance(json_patch, dict):
                errs.append(required(f"{path}.jsonPatch", "jsonPatch.expression is required when patchType is JSONPatch"))
            else:
                _expression(errs, f"{path}.jsonPatch.expression", json_patch.get("expression"), variables)
    return errs


def _param_ref(errs: list[FieldError], ref: Any) -> None:
    if ref is None:
        return
    if not isinstance(ref, dict):
        errs.append(invalid("spec.paramRef", ref, "must be an object"))
        return
    if ref.get("name") and ref.get("selector") is not None:
        errs.append(forbidden("spec.paramRef.name", "name and selector are mutually exclusive"))
    if not ref.get("name") and ref.get("selector") is None:
        errs.append(required("spec.paramRef", "one of name or selector must be specified"))
    _supported(errs, "spec.paramRef.parameterNotFoundAction", ref.get("parameterNotFoundAction"), _NOT_FOUND_ACTIONS,
               needed=True)


def validate_binding(obj: Obj, *, mutating: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    sp = obj.get("spec")
    if not isinstance(sp, dict):
        return [required("spec")]
    if not sp.get("policyName"):
        errs.append(required("spec.policyName"))
    _param_ref(errs, sp.get("paramRef"))
    _match_resources(errs, sp.get("matchResources"), "spec.matchResources", needed=False)
    if not mutating:
        actions = sp.get("validationActions")
        if not isinstance(actions, list) or not actions:
            errs.append(required("spec.validationActions"))
        else:
            action_errors, seen = unique_supported(actions, _ACTIONS, "spec.validationActions")
            errs += action_errors
            if {"Deny", "Warn"} <= seen:
                errs.append(invalid("spec.validationActions", actions,
                                    "must not contain both Deny and Warn (repeating the same validation failure "
                                    "information in the API response and headers serves no purpose)"))
    return errs


# ---- strategies ---------------------------------------------------------------------------

class PolicyStrategy(Strategy):
    """ValidatingAdmissionPolicy / MutatingAdmissionPolicy: spec, generation, status."""

    tracks_generation = True

    def __init__(self, mutating: bool) -> None:
        self.mutating = mutating
        self.has_status = not mutating  # ValidatingAdmissionPolicy has a status subresource

    def default(self, obj: Obj) -> None:
        default_policy(obj, mutating=self.mutating)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_mutating_policy(obj) if self.mutating else validate_validating_policy(obj)


class BindingStrategy(Strategy):
    def __init__(self, mutating: bool) -> None:
        self.mutating = mutating

    def default(self, obj: Obj) -> None:
        default_binding(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_binding(obj, mutating=self.mutating)


#: the variables of a webhook's matchConditions (Kubernetes' webhook CEL environment)
WEBHOOK_VARIABLES = frozenset({"object", "oldObject", "request", "authorizer"})


def validate_webhook_match_conditions(obj: Obj) -> list[FieldError]:
    """The webhooks' ``matchConditions``: named, unique, compiling (the rest is not checked here)."""
    errs: list[FieldError] = []
    for hpath, hook in _items(errs, obj, "webhooks", "webhooks"):
        conditions = _items(errs, hook, "matchConditions", f"{hpath}.matchConditions")
        _named(errs, conditions, identifier=False)
        for path, cond in conditions:
            _expression(errs, f"{path}.expression", cond.get("expression"), WEBHOOK_VARIABLES)
    return errs


class WebhookConfigurationStrategy(DefaultedStrategy):
    """Mutating/ValidatingWebhookConfiguration: Kubernetes' defaults, and matchConditions compiled."""

    def __init__(self, kind: str) -> None:
        super().__init__(GROUP, kind)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_webhook_match_conditions(obj)


# ---- tables -------------------------------------------------------------------------------

def _param_kind(obj: Obj) -> str:
    kind = spec(obj).get("paramKind")
    if not isinstance(kind, dict):
        return "<unset>"
    return f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}"


def _param_ref_text(obj: Obj) -> str:
    ref = spec(obj).get("paramRef")
    if not isinstance(ref, dict):
        return "<unset>"
    if ref.get("name"):
        return f"{ref.get('namespace')}/{ref['name']}" if ref.get("namespace") else str(ref["name"])
    return "*" if ref.get("selector") is not None else "<unset>"


def _policy_printer(count_field: str, title: str) -> TablePrinter:
    return TablePrinter(
        columns=(name_column(), column(title, "integer", f"Number of {count_field} in the policy."),
                 column("ParamKind", description="The kind of the parameters."), age_column()),
        cells=lambda obj, now: [name_of(obj), len(as_list(spec(obj).get(count_field))), _param_kind(obj), age(obj, now)],
    )


BINDING_PRINTER = TablePrinter(
    columns=(name_column(), column("PolicyName", description="The policy bound."),
             column("ParamRef", description="The parameter resource."), age_column()),
    cells=lambda obj, now: [name_of(obj), spec(obj).get("policyName", ""), _param_ref_text(obj), age(obj, now)],
)

register_printer(GROUP, "ValidatingAdmissionPolicy", _policy_printer("validations", "Validations"))
register_printer(GROUP, "MutatingAdmissionPolicy", _policy_printer("mutations", "Mutations"))
register_printer(GROUP, "ValidatingAdmissionPolicyBinding", BINDING_PRINTER)
register_printer(GROUP, "MutatingAdmissionPolicyBinding", BINDING_PRINTER)
