"""ValidatingAdmissionPolicy and MutatingAdmissionPolicy, evaluated in the write path.

Design. The REST layer (:mod:`podlife.api.rest`) calls :func:`mutate` just before the
mutating webhooks and :func:`validate` just before the validating webhooks, where
Kubernetes runs its MutatingAdmissionPolicy and ValidatingAdmissionPolicy plugins, with
the same exemptions as webhooks (the admission configuration kinds themselves, the
server's internal writes). Both read the policies and bindings from the API server's
watch caches, so a policy takes effect as soon as its write returns; with no binding of
the kind (the usual case, and every write of the scale benchmark) the cost is a dict
lookup and a length check. Policies were compiled when written
(:mod:`podlife.registry.admission_policies`); programs are kept by
:mod:`podlife.api.admission_cel`.

Matching (k8s.io/apiserver/pkg/admission/plugin/policy/generic and .../matching): a
policy applies when its ``matchConstraints`` match -- ``resourceRules`` (operations,
groups, versions, resources, ``resourceNames``, scope; ``matchPolicy: Equivalent`` lets a
rule match the resource through another served version), none of
``excludeResourceRules``, ``namespaceSelector``, ``objectSelector`` -- and each binding
naming it applies when its own ``matchResources`` (if any) match too. The rule and
selector code is the webhooks' (:mod:`podlife.api.webhooks`).

Params (generic.CollectParams): with ``paramKind``, the binding's ``paramRef`` names one
object (``name``) or selects several (``selector``), in ``paramRef.namespace`` or else the
request's namespace for a namespaced kind (ConfigMaps, or custom resources); every param
found is evaluated separately. None found: ``parameterNotFoundAction: Allow`` skips the
binding, ``Deny`` is a configuration error (``no params found for policy binding with
`Deny` parameterNotFoundAction``), which ``failurePolicy`` decides like every
configuration error (Fail: deny ``failed to configure binding: ...``; Ignore: skip).

Validation (validating/validator.go, dispatcher.go): ``matchConditions`` first (all
true, or the binding is skipped), ``variables`` next (each in order, usable as
``variables.<name>``), then every validation: a false result is a failure whose message is
the ``messageExpression``'s string (trimmed, one line), else ``message``, else ``failed
expression: <expression>``, with ``reason`` (default Invalid); an evaluation error is a
failure with the error as message when failurePolicy is Fail and nothing when Ignore. The
binding's ``validationActions`` say what a failure does: Deny refuses the request with
``<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding '<b>'
denied request: <message>``, code from the reason (Invalid 422, Forbidden 403,
Unauthorized 401, RequestEntityTooLarge 413) and the message as the one cause -- which
kubectl prints as ``The deployments "x" is invalid: : ValidatingAdmissionPolicy ...`` --
; Warn adds the warning ``Validation failed for ValidatingAdmissionPolicy '<p>' with
binding '<b>': <message>``; Audit is accepted (podlife records no audit annotations).
``auditAnnotations`` are compiled but not published.

Mutation (mutating/dispatcher.go): policies in name order, bindings in name order, each
mutation in order, on CREATE and UPDATE. ``patchType: JSONPatch``: the expression yields a
list of ``JSONPatch{op, path, value}``, applied as RFC 6902; ``ApplyConfiguration``: the
expression yields ``Object{...}`` (a map here, see :mod:`podlife.machinery.cel`), merged
into the object as server-side apply merges (keyed lists by key, sets by value; the
merge of :mod:`podlife.api.apply`, without field ownership). The kind's defaults are
applied after each change. ``reinvocationPolicy: IfNeeded``: a policy runs once more when
a policy after it changed the object (webhook changes do not reinvoke policies here).
Errors are denials ``MutatingAdmissionPolicy '<p>' with binding '<b>' denied request:
<why>`` (422) under failurePolicy Fail, skipped under Ignore.

Cost: each (policy, binding, param) evaluation has its own :class:`~podlife.machinery.cel.Budget`
(Kubernetes' RuntimeCELCostBudget) and wall-clock deadline, so a hostile expression ends
with ``operation cancelled: ...`` instead of holding the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..machinery import cel, errors
from ..machinery.patch import PatchError, apply_json_patch, json_equal
from ..machinery.selectors import SelectorError, label_selector_from_dict
from . import admission_cel, webhooks
from .rbac_guard import CURRENT_USER

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]
GROUP = webhooks.GROUP
VALIDATING_POLICIES, VALIDATING_BINDINGS = "validatingadmissionpolicies", "validatingadmissionpolicybindings"
MUTATING_POLICIES, MUTATING_BINDINGS = "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"
_REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413, "Invalid": 422}
_MAX_MESSAGE = 5 * 1024


class _ConfigError(Exception):
    """A policy or binding that cannot be applied (failurePolicy decides)."""


@dataclass
class _Decision:
    message: str
    reason: str = "Invalid"


@dataclass
class _Invocation:
    """One request as the policies see it; the CEL forms of its values are made once."""

    rest: ResourceREST
    attrs: Any  # webhooks._Attrs
    dry_run: bool
    _cel: dict[tuple[str, tuple[str, str, str]], Any] = field(default_factory=dict)

    @property
    def user(self) -> Any:
        return admission_cel.current_user(CURRENT_USER.get())

    def base(self, gvr: tuple[str, str, str]) -> Obj:
        """object, oldObject, request, namespaceObject, authorizer as CEL values (per matched version)."""
        key = ("base", gvr)
        if key not in self._cel:
            a = self.attrs
            self._cel[key] = webhooks.cel_activation({
                "object": webhooks.as_version(a.obj, self.rest, gvr),
                "oldObject": webhooks.as_version(a.old, self.rest, gvr),
                "request": admission_cel.request_of(self.rest, a.operation, a.subresource, a.namespace, a.name,
                                                    self.user, self.dry_run, gvr),
                "namespaceObject": admission_cel.namespace_object(self.rest, a.namespace),
            })
            self._cel[key]["authorizer"] = admission_cel.authorizer_of(self.rest, self.user)
        return dict(self._cel[key])

    def refresh(self) -> None:
        """Forget the CEL values: a mutation changed the object."""
        self._cel.clear()


# ---- reading policies and bindings ------------------------------------------------------------

def _configured(rest: ResourceREST, bindings: str) -> bool:
    configs = rest.ctx.rest_by(GROUP, "v1", bindings)
    return configs is not None and bool(configs.cache.objects)


def _by_name(rest: ResourceREST, plural: str) -> list[Obj]:
    configs = rest.ctx.rest_by(GROUP, "v1", plural)
    if configs is None or not configs.cache.objects:
        return []
    return sorted((co.obj for co in configs.cache.objects.values()), key=_name)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _spec(obj: Obj) -> Obj:
    sp = obj.get("spec")
    return sp if isinstance(sp, dict) else {}


def _pairs(rest: ResourceREST, policies: str, bindings: str) -> list[tuple[Obj, list[Obj]]]:
    """Each policy (by name) with the bindings that name it (by name)."""
    named: dict[str, list[Obj]] = {}
    for binding in _by_name(rest, bindings):
        named.setdefault(str(_spec(binding).get("policyName") or ""), []).append(binding)
    return [(policy, named[_name(policy)]) for policy in _by_name(rest, policies) if _name(policy) in named]


# ---- matching --------------------------------------------------------------------------------

def _matches(match: Any, inv: _Invocation, what: str) -> tuple[str, str, str] | None:
    """The matched (group, version, resource) of ``matchConstraints``/``matchResources``, or None."""
    if not isinstance(match, dict):
        return None
    gvr = webhooks.matched_resource(match.get("resourceRules"), inv.attrs, match.get("matchPolicy"))
    if gvr is None:
        return None
    if webhooks.matched_resource(match.get("excludeResourceRules"), inv.attrs, match.get("matchPolicy")):
        return None
    return gvr if webhooks.selectors_match(match, inv.attrs, what) else None


def _binding_matches(binding: Obj, inv: _Invocation) -> bool:
    match = _spec(binding).get("matchResources")
    if match is None:
        return True
    if not match.get("resourceRules"):  # selectors only: every resource the policy matched
        return webhooks.selectors_match(match, inv.attrs, f"binding '{_name(binding)}'")
    return _matches(match, inv, f"binding '{_name(binding)}'") is not None


# ---- params ---------------------------------------------------------------------------------------

def _params(policy: Obj, binding: Obj, inv: _Invocation) -> list[Obj | None]:
    """The param objects to evaluate with ([None] without paramKind); _ConfigError if unusable."""
    kind = _spec(policy).get("paramKind")
    if not isinstance(kind, dict):
        return [None]
    ref = _spec(binding).get("paramRef")
    if not isinstance(ref, dict):
        raise _ConfigError(f"policy '{_name(policy)}' has paramKind but binding '{_name(binding)}' has no paramRef")
    group, _, version = str(kind.get("apiVersion") or "").rpartition("/")
    rt = inv.rest.ctx.catalog.by_kind(str(kind.get("kind") or ""), group)
    prest = inv.rest.ctx.rest_by(rt.group, version, rt.plural) if rt is not None else None
    if prest is None:
        raise _ConfigError(f"failed to find resource referenced by paramKind: "
                           f"'{kind.get('apiVersion')}, Kind={kind.get('kind')}'")
    namespace = ""
    if prest.rt.namespaced:
        namespace = str(ref.get("namespace") or inv.attrs.namespace or "")
        if not namespace:
            raise _ConfigError("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
    found = _find_params(prest, namespace, ref)
    if found:
        return found
    if ref.get("parameterNotFoundAction") == "Allow":
        return []
    raise _ConfigError("no params found for policy binding with `Deny` parameterNotFoundAction")


def _find_params(prest: ResourceREST, namespace: str, ref: Obj) -> list[Obj | None]:
    if ref.get("name"):
        co = prest.cache.get(prest.rt.key(namespace or None, str(ref["name"])))
        return [co.obj] if co is not None else []
    try:
        selector = label_selector_from_dict(ref.get("selector") or {})
    except SelectorError as exc:
        raise _ConfigError(f"invalid paramRef.selector: {exc}") from None
    out: list[Obj | None] = []
    for co in prest.cache.objects.values():
        meta = co.obj.get("metadata") or {}
        if (not namespace or meta.get("namespace") == namespace) and selector.matches(meta.get("labels") or {}):
            out.append(co.obj)
    return out


# ---- evaluating ---------------------------------------------------------------------------------

def _activation(policy: Obj, inv: _Invocation, gvr: tuple[str, str, str], param: Obj | None,
                budget: cel.Budget) -> Obj:
    """The variables of one evaluation, ``variables`` computed in order (errors kept as errors)."""
    activation = inv.base(gvr)
    activation["params"] = cel.to_cel(param)
    computed = cel.celtypes.MapType()
    activation["variables"] = computed  # filled in order: a variable may use the ones before it
    for var in _spec(policy).get("variables") or []:
        if not isinstance(var, dict):
            continue
        try:
            value = admission_cel.evaluate(str(var.get("expression") or ""), activation, budget)
        except cel.CelEvalError as exc:
            value = cel.CELEvalError(str(exc))
        computed[cel.celtypes.StringType(str(var.get("name") or ""))] = value
    return activation


def _failure_message(validation: Obj, activation: Obj, budget: cel.Budget) -> str:
    expression = validation.get("messageExpression")
    if expression:
        try:
            value = admission_cel.evaluate(str(expression), activation, budget)
        except cel.CelEvalError:
            value = None
        if isinstance(value, str):
            text = value.strip()
            if text and "\n" not in text and len(text) <= _MAX_MESSAGE:
                return text
    message = validation.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    return f"failed expression: {str(validation.get('expression') or '').strip()}"


def _validations(policy: Obj, inv: _Invocation, gvr: tuple[str, str, str], param: Obj | None) -> list[_Decision]:
    """The failures of one (policy, binding, param) evaluation."""
    sp = _spec(policy)
    failure_policy = sp.get("failurePolicy")
    budget = cel.Budget()
    activation = _activation(policy, inv, gvr, param, budget)
    matches, error = admission_cel.match_conditions(sp.get("matchConditions"), activation, budget, failure_policy)
    if error is not None:
        return [_Decision(error)]
    if not matches:
        return []
    failures: list[_Decision] = []
    for validation in sp.get("validations") or []:
        if not isinstance(validation, dict):
            continue
        source = str(validation.get("expression") or "")
        try:
            value = admission_cel.evaluate(source, activation, budget)
            if not cel.is_bool(value):
                raise cel.CelEvalError(f"expression '{source}' resulted in error: no such overload: "
                                       f"must evaluate to bool, got {cel.cel_type_name(value)}")
        except cel.CelEvalError as exc:
            if failure_policy != "Ignore":
                failures.append(_Decision(str(exc)))
            continue
        if not value:
            failures.append(_Decision(_failure_message(validation, activation, budget),
                                      str(validation.get("reason") or "Invalid")))
    return failures


def _denial(inv: _Invocation, kind: str, policy: Obj, binding: Obj | None, decision: _Decision) -> errors.ApiError:
    rt = inv.rest.rt
    by = f"{kind} '{_name(policy)}'" + (f" with binding '{_name(binding)}'" if binding is not None else "")
    message = f"{by} denied request: {decision.message}"
    resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    details: Obj = {"name": inv.attrs.name, "kind": rt.plural, "causes": [{"message": message}]}
    if rt.group:
        details["group"] = rt.group
    return errors.ApiError(_REASON_CODES.get(decision.reason, 422), decision.reason,
                           f'{resource} "{inv.attrs.name}" is forbidden: {message}', details)


def _attrs_for(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str,
               subresource: str | None) -> Any:
    return webhooks._attrs(rest, obj, old, operation, subresource)


def validate(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str, *, dry_run: bool,
             subresource: str | None = None) -> list[str]:
    """Apply the matching ValidatingAdmissionPolicies: raise the first denial, return the warnings."""
    if not _configured(rest, VALIDATING_BINDINGS) or webhooks._exempt(rest):
        return []
    inv = _Invocation(rest, _attrs_for(rest, obj, old, operation, subresource), dry_run)
    warnings: list[str] = []
    denied: tuple[Obj, Obj | None, _Decision] | None = None
    for policy, bindings in _pairs(rest, VALIDATING_POLICIES, VALIDATING_BINDINGS):
        gvr = _matches(_spec(policy).get("matchConstraints"), inv, f"policy '{_name(policy)}'")
        if gvr is None:
            continue
        for binding in bindings:
            if not _binding_matches(binding, inv):
                continue
            try:
                failures = [f for param in _params(policy, binding, inv) for f in _validations(policy, inv, gvr, param)]
            except _ConfigError as exc:
                if _spec(policy).get("failurePolicy") == "Ignore":
                    continue
                failures = [_Decision(f"failed to configure binding: {exc}")]
            actions = _spec(binding).get("validationActions") or []
            for failure in failures:
                if "Deny" in actions and denied is None:
                    denied = (policy, binding, failure)
                if "Warn" in actions:
                    warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{_name(policy)}' with binding "
                                    f"'{_name(binding)}': {failure.message}")
    if denied is not None:
        raise _denial(inv, "ValidatingAdmissionPolicy", *denied)
    return warnings


# ---- mutating ---------------------------------------------------------------------------------

def _mutation_result(mutation: Obj, obj: Obj, activation: Obj, budget: cel.Budget, rest: ResourceREST) -> Obj:
    """``obj`` after one mutation (a new object); CelEvalError / _ConfigError when it cannot apply."""
    if mutation.get("patchType") == "JSONPatch":
        source = str((mutation.get("jsonPatch") or {}).get("expression") or "")
        operations = cel.from_cel(admission_cel.evaluate(source, activation, budget))
        if not isinstance(operations, list):
            raise _ConfigError(f"JSONPatch expression must evaluate to a list of JSONPatch, got {type(operations).__name__}")
        try:
            patched = apply_json_patch(obj, operations)
        except PatchError as exc:
            raise _ConfigError(f"JSON Patch: {exc}") from None
    else:
        source = str((mutation.get("applyConfiguration") or {}).get("expression") or "")
        config = cel.from_cel(admission_cel.evaluate(source, activation, budget))
        if not isinstance(config, dict):
            raise _ConfigError("ApplyConfiguration expression must evaluate to an Object")
        patched = _merged(rest, obj, config)
    if not isinstance(patched, dict):
        raise _ConfigError("the mutated object must be a JSON object")
    return patched


def _merged(rest: ResourceREST, obj: Obj, config: Obj) -> Obj:
    """Structured merge of an apply configuration, as server-side apply merges (no ownership)."""
    from .apply import _deep_copy, merge  # apply imports the HTTP handlers, which import rest
    from .managed_fields import root_shape

    merged = merge(_deep_copy(obj), config, root_shape(rest.rt, rest.ctx.catalog.schemas))
    return merged if isinstance(merged, dict) else obj


def _mutate_with(policy: Obj, binding: Obj, param: Obj | None, inv: _Invocation, gvr: tuple[str, str, str],
                 obj: Obj) -> bool:
    """Run one policy's mutations on ``obj`` (in place); whether it changed."""
    sp = _spec(policy)
    budget = cel.Budget()
    activation = _activation(policy, inv, gvr, param, budget)
    matches, error = admission_cel.match_conditions(sp.get("matchConditions"), activation, budget,
                                                    sp.get("failurePolicy"))
    if error is not None:
        raise _ConfigError(error)
    if not matches:
        return False
    changed = False
    for mutation in sp.get("mutations") or []:
        if not isinstance(mutation, dict):
            continue
        patched = _mutation_result(mutation, obj, activation, budget, inv.rest)
        patched["apiVersion"], patched["kind"] = obj.get("apiVersion"), obj.get("kind")
        inv.rest.strategy.default(patched)
        if not json_equal(patched, obj):
            obj.clear()
            obj.update(patched)
            inv.refresh()
            activation = _activation(policy, inv, gvr, param, budget)
            changed = True
    return changed


def mutate(rest: ResourceREST, obj: Obj, old: Obj | None, operation: str, *, dry_run: bool,
           subresource: str | None = None) -> None:
    """Apply the matching MutatingAdmissionPolicies to ``obj`` in place (CREATE/UPDATE)."""
    if not _configured(rest, MUTATING_BINDINGS) or webhooks._exempt(rest):
        return
    inv = _Invocation(rest, _attrs_for(rest, obj, old, operation, subresource), dry_run)
    runs: list[tuple[Obj, Obj, tuple[str, str, str], int]] = []  # (policy, binding, gvr, changes seen)
    changes = 0
    for policy, bindings in _pairs(rest, MUTATING_POLICIES, MUTATING_BINDINGS):
        gvr = _matches(_spec(policy).get("matchConstraints"), inv, f"policy '{_name(policy)}'")
        if gvr is None:
            continue
        for binding in bindings:
            if _binding_matches(binding, inv):
                changes += _run_mutating(policy, binding, inv, gvr, obj)
                runs.append((policy, binding, gvr, changes))
    for policy, binding, gvr, seen in runs:
        if _spec(policy).get("reinvocationPolicy") == "IfNeeded" and seen < changes:
            _run_mutating(policy, binding, inv, gvr, obj)


def _run_mutating(policy: Obj, binding: Obj, inv: _Invocation, gvr: tuple[str, str, str], obj: Obj) -> int:
    try:
        return sum(_mutate_with(policy, binding, param, inv, gvr, obj) for param in _params(policy, binding, inv))
    except (_ConfigError, cel.CelEvalError) as exc:
        if _spec(policy).get("failurePolicy") == "Ignore":
            return 0
        raise _denial(inv, "MutatingAdmissionPolicy", policy, binding, _Decision(str(exc))) from None
