"""Admission webhooks, called as kube-apiserver calls them.

Design. Every create, update (patch and apply end in one) and delete that the REST layer
(:mod:`podlife.api.rest`) performs asks this module twice: :func:`mutate` after the
strategy's defaulting and before validation, :func:`validate` after the built-in
admission steps (and, for a delete, with the stored object as ``oldObject``). Both read
the ``admissionregistration.k8s.io/v1`` MutatingWebhookConfiguration and
ValidatingWebhookConfiguration objects from the API server's own watch caches, so a
configuration takes effect as soon as its write returns. When there is none (the usual
case, and every write of the large benchmarks) the only cost is two dict length checks.

Which webhooks are called (Kubernetes' rules): each ``rules`` entry matches on
``operations`` (CREATE/UPDATE/DELETE/CONNECT/``*``), ``apiGroups``, ``apiVersions``,
``resources`` (``pods``, ``*`` -- every resource but no subresource --, ``*/*``,
``pods/status``, ``pods/*``, ``*/status``) and ``scope`` (Cluster, Namespaced, ``*``;
a Namespace object is cluster-scoped); ``namespaceSelector`` is matched against the
labels of the object's namespace (a Namespace's own labels; cluster-scoped objects always
match); ``objectSelector`` against the labels of the object or of the old object.
``matchPolicy`` is accepted but only the exact group/version/resource of the request is
matched (podlife serves each resource in one version, so Equivalent adds nothing but
cross-group aliases). ``matchConditions`` are CEL, which podlife does not evaluate: a
webhook with matchConditions is treated as matching. The webhook configurations (and the
admission policy kinds) themselves are never sent to webhooks, as Kubernetes exempts them,
so a broken webhook can always be removed.

How they are called: a POST of an ``admission.k8s.io/v1`` AdmissionReview (uid, kind,
resource, subResource, requestKind, requestResource, name, namespace, operation, userInfo
-- the HTTP caller from :data:`~podlife.api.rbac_guard.CURRENT_USER`, or the API server's
loopback identity ``system:apiserver`` in ``system:masters`` for in-process writes --,
object, oldObject, dryRun, options) to ``clientConfig.url`` with ``?timeout=<n>s``, over
HTTPS verified with ``clientConfig.caBundle`` (the system roots without one), within
``timeoutSeconds`` (default 10, at most 30). ``admissionReviewVersions`` must list v1.

Network safety: podlife never sends a packet to a non-loopback address. A URL whose host
is not a loopback IP literal or ``localhost`` (dialled as 127.0.0.1) is refused when the
webhook would be called, before any connection; a ``clientConfig.service`` reference is
refused too (resolving it would mean dialling a Service's cluster IP, which is not
loopback). Both are call failures, so ``failurePolicy`` decides what they do.

Outcomes, with Kubernetes' wording and codes:

* a dry-run request reaching a webhook whose ``sideEffects`` is not None/NoneOnDryRun:
  400 ``admission webhook "<name>" does not support dry run``;
* ``allowed: false``: ``admission webhook "<name>" denied the request: <message>`` (the
  response status' message, else its reason, else ``denied the request without
  explanation``), with the status' code, raised to 400 when it is below 400;
* a call failure (refused URL, connection error, timeout, bad HTTP status, malformed
  review): with ``failurePolicy: Fail`` (the default) 500 ``Internal error occurred:
  failed calling webhook "<name>": <why>``; with ``Ignore`` the webhook is skipped.
  The project answers bad *input* with 4xx, never 500; a webhook that is down is not the
  client's input but a server-side dependency failing, which Kubernetes reports as an
  internal error, and so does podlife;
* ``response.warnings`` are returned so the handlers send them as ``Warning`` headers.

Mutating webhooks run first, in order (configuration name, then webhook order); each may
answer ``patchType: JSONPatch`` with a base64 ``patch`` applied to the object (a patch
that does not apply is a 500). With ``reinvocationPolicy: IfNeeded`` a webhook is called
once more if a webhook after it changed the object. Validating webhooks run after,
sequentially (Kubernetes runs them concurrently; the outcome is the same but for which of
several denials is reported).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import ssl
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from ..machinery import errors
from ..machinery.patch import PatchError, apply_json_patch, json_equal
from ..machinery.selectors import SelectorError, label_selector_from_dict
from .identity import MASTERS, UserInfo
from .rbac_guard import CURRENT_USER

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]

GROUP = "admissionregistration.k8s.io"
MUTATING = "mutatingwebhookconfigurations"
VALIDATING = "validatingwebhookconfigurations"
#: never sent to webhooks (Kubernetes' IsExemptAdmissionConfigurationResource)
EXEMPT = frozenset({MUTATING, VALIDATING, "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"})
#: the API server's own identity for writes no HTTP caller made
LOOPBACK_USER = UserInfo("system:apiserver", uid=str(uuid.uuid4()), groups=(MASTERS,))
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10, 30
_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
_MAX_RESPONSE = 3 * 1024 * 1024


class CallError(Exception):
    """Calling a webhook failed (not a denial): failurePolicy decides."""


@dataclass
class _Attrs:
    rest: ResourceREST
    operation: str
    subresource: str
    namespace: str
    name: str
    obj: Obj | None
    old: Obj | None


def _configurations(rest: ResourceREST, plural: str) -> list[Obj]:
    configs = rest.ctx.rest_by(GROUP, "v1", plural)
    if configs is None or not configs.cache.objects:
        return []
    return sorted((co.obj for co in configs.cache.objects.values()),
                  key=lambda o: str((o.get("metadata") or {}).get("name") or ""))


def _exempt(rest: ResourceREST) -> bool:
    return rest.rt.group == GROUP and rest.rt.plural in EXEMPT


def _any_configured(rest: ResourceREST, plural: str) -> bool:
    configs = rest.ctx.rest_by(GROUP, "v1", plural)
    return configs is not None and bool(configs.cache.objects)


# ---- matching --------------------------------------------------------------------------

def _listed(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_matches(patterns: Any, resource: str, subresource: str) -> bool:
    """``*/*`` everything, ``pods/*`` pods and its subresources, ``*/status``, ``*`` (no subresource)."""
    if not isinstance(patterns, list):
        return False
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        res, _, sub = pattern.partition("/")
        if (sub == "*" and res in ("*", resource)) or (res in ("*", resource) and sub == subresource):
            return True
    return False


def _rule_matches(rule: Any, attrs: _Attrs) -> bool:
    if not isinstance(rule, dict):
        return False
    rt = attrs.rest.rt
    if not (_listed(rule.get("operations"), attrs.operation) and _listed(rule.get("apiGroups"), rt.group)
            and _listed(rule.get("apiVersions"), rt.version)
            and _resource_matches(rule.get("resources"), rt.plural, attrs.subresource)):
        return False
    scope = rule.get("scope") or "*"
    is_namespace = rt.group == "" and rt.plural == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and rt.namespaced
    if scope == "Cluster":
        return is_namespace or not rt.namespaced
    return True


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _selector(hook: Obj, field: str) -> Any:
    try:
        return label_selector_from_dict(hook.get(field) if hook.get(field) is not None else {})
    except SelectorError as exc:
        raise errors.internal(f'webhook "{hook.get("name")}": invalid {field}: {exc}') from None


def _namespace_labels(attrs: _Attrs) -> dict[str, str] | None:
    """The labels namespaceSelector sees; None: cluster-scoped, always matches."""
    rt = attrs.rest.rt
    if rt.group == "" and rt.plural == "namespaces":
        return _labels(attrs.obj if attrs.obj is not None else attrs.old)
    if not rt.namespaced:
        return None
    ns_rest = attrs.rest.ctx.rest_by("", "v1", "namespaces")
    co = ns_rest.cache.get(ns_rest.rt.key(None, attrs.namespace)) if ns_rest is not None else None
    return _labels(co.obj) if co is not None else {}


def _hook_matches(hook: Obj, attrs: _Attrs) -> bool:
    if not any(_rule_matches(rule, attrs) for rule in hook.get("rules") or []):
        return False
    ns_labels = _namespace_labels(attrs)
    if ns_labels is not None and not _selector(hook, "namespaceSelector").matches(ns_labels):
        return False
    selector = _selector(hook, "objectSelector")
    if not any(selector.matches(_labels(o)) for o in (attrs.obj, attrs.old) if o is not None):
        return False
    return True  # matchConditions (CEL) are not evaluated: treated as matching


def _matching(rest: ResourceREST, plural: str, attrs: _Attrs) -> list[Obj]:
    return [hook for config in _configurations(rest, plural) for hook in config.get("webhooks") or []
            if isinstance(hook, dict) and _hook_matches(hook, attrs)]


# ---- calling ---------------------------------------------------------------------------

def _review(attrs: _Attrs, dry_run: bool) -> Obj:
    rt = attrs.rest.rt
    user = CURRENT_USER.get() or LOOPBACK_USER
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    request: Obj = {"uid": str(uuid.uuid4()), "kind": kind, "resource": resource}
    if attrs.subresource:
        request["subResource"] = attrs.subresource
    request.update({"requestKind": kind, "requestResource": resource})
    if attrs.subresource:
        request["requestSubResource"] = attrs.subresource
    if attrs.name:
        request["name"] = attrs.name
    if attrs.namespace:
        request["namespace"] = attrs.namespace
    request.update({"operation": attrs.operation, "userInfo": user.as_dict(), "object": attrs.obj,
                    "oldObject": attrs.old, "dryRun": dry_run})
    options: Obj = {"kind": _OPTIONS_KIND[attrs.operation], "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    request["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def _target(hook: Obj) -> tuple[str, str | None]:
    """The URL to dial and the TLS server name, or CallError: loopback URLs only."""
    config = hook.get("clientConfig") or {}
    if config.get("service"):
        raise CallError("clientConfig.service is not supported: podlife calls only loopback URLs "
                        "(clientConfig.url), never a Service's cluster IP")
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise CallError("clientConfig.url is required")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise CallError(f'webhook URL "{url}" must use the https scheme')
    host = parts.hostname or ""
    if host == "localhost":
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc)), "localhost"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CallError(f'refusing to call webhook URL "{url}": only loopback addresses may be dialled '
                        f"(podlife sends no packet off this host)")
    return url, None


def _ssl_context(hook: Obj) -> ssl.SSLContext:
    bundle = (hook.get("clientConfig") or {}).get("caBundle")
    if not bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=base64.b64decode(bundle, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise CallError(f"invalid clientConfig.caBundle: {exc}") from None


async def _post(hook: Obj, review: Obj) -> Obj:
    """The webhook's AdmissionResponse; CallError when there is none to use."""
    if "v1" not in (hook.get("admissionReviewVersions") or []):
        raise CallError("webhook does not accept known AdmissionReview versions (v1)")
    url, server_name = _target(hook)
    timeout = hook.get("timeoutSeconds")
    timeout = min(max(timeout, 1), MAX_TIMEOUT) if isinstance(timeout, int) and not isinstance(timeout, bool) \
        else DEFAULT_TIMEOUT
    url += ("&" if "?" in url else "?") + f"timeout={timeout}s"
    tls = _ssl_context(hook)
    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=orjson.dumps(review), ssl=tls, server_hostname=server_name,
                                        headers={"Content-Type": "application/json", "Accept": "application/json"},
                                        allow_redirects=False) as resp:
                    body = await resp.content.read(_MAX_RESPONSE + 1)
                    status = resp.status
    except TimeoutError:
        raise CallError(f'failed to call webhook: Post "{url}": context deadline exceeded') from None
    except (aiohttp.ClientError, OSError) as exc:
        raise CallError(f'failed to call webhook: Post "{url}": {exc}') from None
    if status != 200:
        raise CallError(f"the server responded with HTTP status {status}")
    if len(body) > _MAX_RESPONSE:
        raise CallError("the webhook response is too large")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CallError(f"the webhook response is not JSON: {exc}") from None
    if not isinstance(answer, dict) or (answer.get("apiVersion"), answer.get("kind")) != \
            ("admission.k8s.io/v1", "AdmissionReview"):
        got = answer.get("apiVersion", "") if isinstance(answer, dict) else ""
        raise CallError(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}")
    response = answer.get("response")
    if not isinstance(response, dict):
        raise CallError("webhook response was absent")
    if response.get("uid") != review["request"]["uid"]:
        raise CallError(f'expected response.uid="{review["request"]["uid"]}", got "{response.get("uid", "")}"')
    return response


def _denied(name: str, response: Obj) -> errors.ApiError:
    status = response.get("status")
    result: Obj = status if isinstance(status, dict) else {}
    code = result.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    reason = str(result.get("reason") or "")
    denied_by = f'admission webhook "{name}" denied the request'
    if result.get("message"):
        message = f"{denied_by}: {result['message']}"
    elif reason:
        message = f"{denied_by}: {reason}"
    else:
        message = f"{denied_by} without explanation"
    details = result.get("details") if isinstance(result.get("details"), dict) else None
    return errors.ApiError(code, reason, message, details)


def _warnings(response: Obj) -> list[str]:
    return [w for w in response.get("warnings") or [] if isinstance(w, str)]


async def _call(hook: Obj, attrs: _Attrs, dry_run: bool) -> Obj | None:
    """The webhook's response, or None when it failed and failurePolicy is Ignore."""
    name = str(hook.get("name") or "")
    if dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        raise errors.bad_request(f'admission webhook "{name}" does not support dry run')
    try:
        return await _post(hook, _review(attrs, dry_run))
    except CallError as exc:
        if hook.get("failurePolicy") == "Ignore":
            return None
        raise errors.internal(f'failed calling webhook "{name}": {exc}') from None


def _patched(hook: Obj, response: Obj, obj: Obj) -> Obj | None:
    """The object after the response's patch (None: no patch); CallError for a malformed one."""
    patch, patch_type = response.get("patch"), response.get("patchType")
    if not patch and not patch_type:
        return None
    if not patch:
        raise CallError("webhook returned response.patchType but not response.patch")
    if not patch_type:
        raise CallError("webhook returned response.patch but not response.patchType")
    if patch_type != "JSONPatch":
        raise CallError(f'webhook returned invalid response.patchType of "{patch_type}"')
    try:
        operations = orjson.loads(base64.b64decode(patch, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CallError(f"webhook returned an undecodable response.patch: {exc}") from None
    try:
        result = apply_json_patch(obj, operations)
    except PatchError as exc:
        raise errors.internal(str(exc)) from None
    if not isinstance(result, dict):
        raise errors.internal("the patched object must be a JSON object")
    return result


# ---- the entry points --------------------------------------------------------------------

def _attrs(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str, subresource: str | None) -> _Attrs:
    meta = ((obj if obj is not None else old) or {}).get("metadata") or {}
    return _Attrs(rest, operation, subresource or "", str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                  obj, old)


async def mutate(rest: ResourceREST, obj: Obj, old: Obj | None, operation: str, *, dry_run: bool,
                 subresource: str | None = None) -> list[str]:
    """Call the matching mutating webhooks; ``obj`` is patched in place (top level). Returns warnings."""
    if not _any_configured(rest, MUTATING) or _exempt(rest):
        return []
    attrs = _attrs(rest, obj, old, operation, subresource)
    hooks = _matching(rest, MUTATING, attrs)
    warnings: list[str] = []
    changes = 0
    seen: list[int] = []  # the number of changes made when each webhook last saw the object
    for hook in hooks:
        changes += await _mutate_once(hook, attrs, obj, dry_run, warnings)
        seen.append(changes)
    for hook, saw in zip(hooks, seen):
        if hook.get("reinvocationPolicy") == "IfNeeded" and saw < changes:
            await _mutate_once(hook, attrs, obj, dry_run, warnings)
    return warnings


async def _mutate_once(hook: Obj, attrs: _Attrs, obj: Obj, dry_run: bool, warnings: list[str]) -> int:
    response = await _call(hook, attrs, dry_run)
    if response is None:
        return 0
    warnings += _warnings(response)
    if not response.get("allowed"):
        raise _denied(str(hook.get("name") or ""), response)
    try:
        patched = _patched(hook, response, obj)
    except CallError as exc:
        if hook.get("failurePolicy") == "Ignore":
            return 0
        raise errors.internal(f'failed calling webhook "{hook.get("name")}": {exc}') from None
    if patched is None or json_equal(patched, obj):
        return 0
    obj.clear()
    obj.update(patched)
    return 1


async def validate(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str, *, dry_run: bool,
                   subresource: str | None = None) -> list[str]:
    """Call the matching validating webhooks (a DELETE has no ``obj``). Returns warnings."""
    if not _any_configured(rest, VALIDATING) or _exempt(rest):
        return []
    attrs = _attrs(rest, obj, old, operation, subresource)
    warnings: list[str] = []
    for hook in _matching(rest, VALIDATING, attrs):
        response = await _call(hook, attrs, dry_run)
        if response is None:
            continue
        warnings += _warnings(response)
        if not response.get("allowed"):
            raise _denied(str(hook.get("name") or ""), response)
        if response.get("patch") or response.get("patchType"):
            if hook.get("failurePolicy") != "Ignore":
                raise errors.internal(f'failed calling webhook "{hook.get("name")}": '
                                      f"validating webhook may not return response.patch")
    return warnings
