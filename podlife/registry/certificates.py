"""CertificateSigningRequests (``certificates.k8s.io/v1``): who asked, what may change, validation.

Learned from Kubernetes' ``pkg/registry/certificates/certificates/strategy.go`` and
``pkg/apis/certificates/validation``. Three ways to write a CSR, three sets of rules:

- the object (create, update): on create ``spec.username``, ``uid``, ``groups`` and ``extra``
  are the *requesting user's* -- whatever the client sent is dropped -- and ``status`` is
  emptied (no pre-approved requests); on update neither spec nor status changes (only
  metadata): ``spec`` is immutable and ``status`` has its own subresources;
- ``status`` (the signer's write): ``certificate`` (PEM ``CERTIFICATE`` blocks only, set
  once) and conditions other than Approved/Denied -- those are kept from the stored object;
- ``approval`` (``kubectl certificate approve|deny``): only the conditions change; Approved
  and Denied exclude each other, and no Approved, Denied or Failed condition is ever removed.

Every write's conditions get ``status: "True"`` by default (v1's defaulting), and
``lastUpdateTime``/``lastTransitionTime`` when missing (a transition time is kept from the
stored condition of the same type and status).

Validation: ``spec.request`` parses as a PEM ``CERTIFICATE REQUEST`` with a good signature
(:func:`podlife.machinery.certificates.parse_request`), ``spec.signerName`` is
``<domain>/<path>`` (``kubernetes.io/legacy-unknown`` is refused by v1), ``spec.usages``
are non-empty, known and unique, ``spec.expirationSeconds`` is at least 600; messages and
field paths as Kubernetes words them.

Who the requester is: the registry does not see the request, so the API layer hands the
strategy a callable that returns the current request's user
(:attr:`CertificateSigningRequestStrategy.requester`, set by :mod:`podlife.api.certificates`).
Which users may approve (verb ``approve`` on ``signers``) or sign (``sign``) is admission's
check, also in :mod:`podlife.api.certificates`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from cryptography import x509

from ..machinery import certificates as certs
from ..machinery.names import dns1123_label_errors, dns1123_subdomain_errors
from ..machinery.timeutil import now_rfc3339
from .rbac import GoValue
from .types import FieldError, Obj, Strategy, forbidden, invalid, not_supported, required

GROUP = certs.GROUP
KIND = "CertificateSigningRequest"
#: condition types whose status may only be True
_TRUE_ONLY = (certs.APPROVED, certs.DENIED, certs.FAILED)
_STATUS_VALUES = ["False", "True", "Unknown"]
_MAX_DOMAIN = 253
_MAX_SIGNER_NAME = _MAX_DOMAIN + (253 + 63 + 1) + 1


def _no_requester() -> Obj | None:
    return None


def _bytes_value(raw: Any) -> GoValue:
    """A ``[]byte`` field's bad value, shown as Go shows one (``[]byte{0x2d, ...}``, elided past a few bytes)."""
    data = raw.encode() if isinstance(raw, str) else b""
    try:
        data = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    shown = ", ".join(f"0x{b:x}" for b in data[:8]) + (", ..." if len(data) > 8 else "")
    return GoValue(f"[]byte{{{shown}}}")


# ---- validation ------------------------------------------------------------------------


def validate_signer_name(path: str, name: Any) -> list[FieldError]:
    """``<fully qualified domain>/<path>``, as Kubernetes' ``ValidateSignerName``."""
    if not name:
        return [required(path)]
    if not isinstance(name, str):
        return [invalid(path, name, "must be a string")]
    segments = name.split("/")
    if len(segments) != 2:
        return [invalid(path, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")]
    domain, rest = segments
    errs: list[FieldError] = []
    if len(domain) > _MAX_DOMAIN:
        errs.append(FieldError("FieldValueTooLong", path, f"may not be more than {_MAX_DOMAIN} bytes", domain))
    labels = domain.split(".")
    for label in labels:
        problems = dns1123_label_errors(label)
        if problems:
            errs += [invalid(path, domain, f'validating label "{label}": {p}') for p in problems]
            break
    if len(labels) < 2:
        errs.append(invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for label in rest.split("."):
        problems = dns1123_subdomain_errors(label)
        if problems:
            errs += [invalid(path, rest, f'validating label "{label}": {p}') for p in problems]
            break
    if len(name) > _MAX_SIGNER_NAME:
        errs.append(FieldError("FieldValueTooLong", path, f"may not be more than {_MAX_SIGNER_NAME} bytes", name))
    return errs


def _validate_usages(usages: Any) -> list[FieldError]:
    if not usages:
        return [required("spec.usages")]
    if not isinstance(usages, list):
        return [invalid("spec.usages", usages, "must be a list of strings")]
    errs: list[FieldError] = []
    for i, usage in enumerate(usages):
        if usage not in certs.KEY_USAGES:
            errs.append(not_supported(f"spec.usages[{i}]", usage, list(certs.KEY_USAGES)))
    seen: set[Any] = set()
    for i, usage in enumerate(usages):
        if isinstance(usage, str) and usage in seen:
            errs.append(FieldError("FieldValueDuplicate", f"spec.usages[{i}]", "", usage))
        seen.add(usage)
    return errs


def _validate_conditions(conditions: Any, *, allow_both: bool) -> list[FieldError]:
    if conditions is None:
        return []
    if not isinstance(conditions, list):
        return [invalid("status.conditions", conditions, "must be a list")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(conditions):
        path = f"status.conditions[{i}]"
        if not isinstance(c, dict):
            errs.append(invalid(path, c, "must be an object"))
            continue
        kind, state = c.get("type") or "", c.get("status") or ""
        if not kind:
            errs.append(required(f"{path}.type"))
        allowed = ["True"] if kind in _TRUE_ONLY else _STATUS_VALUES
        if not state:
            errs.append(required(f"{path}.status"))
        elif state not in allowed:
            errs.append(not_supported(f"{path}.status", state, allowed))
        if not allow_both:
            if kind == certs.APPROVED:
                approved = True
                if denied:
                    errs.append(invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"))
            elif kind == certs.DENIED:
                denied = True
                if approved:
                    errs.append(invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"))
        if kind and kind in seen:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.type", "", kind))
        seen.add(kind)
    return errs


def certificate_problem(pem: bytes) -> str | None:
    """Why ``status.certificate`` is not PEM ``CERTIFICATE`` blocks (None: it is, or it is empty)."""
    if not pem:
        return None
    blocks, rest = 0, pem
    while True:
        begin = rest.find(b"-----BEGIN ")
        if begin < 0:
            break
        header_end = rest.find(b"-----", begin + 11)
        kind = rest[begin + 11:header_end].decode(errors="replace") if header_end > 0 else ""
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        end = rest.find(b"-----END CERTIFICATE-----", begin)
        if end < 0:
            break
        block = rest[begin:end + len(b"-----END CERTIFICATE-----")]
        lines = block.splitlines()
        if len(lines) > 2 and b":" in lines[1]:  # a ``Name: value`` line right after BEGIN
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(block)
        except ValueError as exc:
            return f"x509: malformed certificate: {exc}"
        blocks += 1
        rest = rest[end + len(b"-----END CERTIFICATE-----"):]
    return None if blocks else "must contain at least one CERTIFICATE PEM block"


def validate_csr(csr: Obj, *, allow_both: bool = False, allow_arbitrary_certificate: bool = False) -> list[FieldError]:
    spec: Obj = csr["spec"] if isinstance(csr.get("spec"), dict) else {}
    errs: list[FieldError] = []
    try:
        certs.parse_request(certs.request_bytes(csr))
    except certs.RequestError as exc:
        errs.append(invalid("spec.request", _bytes_value(spec.get("request")), str(exc)))
    errs += _validate_usages(spec.get("usages"))
    signer = spec.get("signerName")
    if signer == certs.LEGACY_UNKNOWN:
        errs.append(invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        errs += validate_signer_name("spec.signerName", signer)
    seconds = spec.get("expirationSeconds")
    if seconds is not None:
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            errs.append(invalid("spec.expirationSeconds", seconds, "must be an integer"))
        elif seconds < certs.MIN_EXPIRATION_SECONDS:
            errs.append(invalid("spec.expirationSeconds", seconds,
                                "may not specify a duration less than 600 seconds (10 minutes)"))
    status: Obj = csr["status"] if isinstance(csr.get("status"), dict) else {}
    errs += _validate_conditions(status.get("conditions"), allow_both=allow_both)
    if not allow_arbitrary_certificate:
        problem = certificate_problem(certs.certificate_pem(csr))
        if problem is not None:
            errs.append(invalid("status.certificate", "<certificate data>", problem))
    return errs


def _of_type(csr: Obj, kind: str) -> list[Any]:
    return [c for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, dict) and c.get("type") == kind]


def _both(csr: Obj) -> bool:
    return bool(_of_type(csr, certs.APPROVED)) and bool(_of_type(csr, certs.DENIED))


def validate_csr_update(new: Obj, old: Obj, *, approval: bool, certificate: bool) -> list[FieldError]:
    """The update rules (``validateCertificateSigningRequestUpdate``); ``approval``/``certificate``: what this
    path may set. A problem the stored object already has is tolerated, as Kubernetes tolerates it."""
    arbitrary = certificate_problem(certs.certificate_pem(old)) is not None
    errs = validate_csr(new, allow_both=_both(old), allow_arbitrary_certificate=arbitrary)
    for kind in (certs.APPROVED, certs.DENIED, certs.FAILED):
        if len(_of_type(new, kind)) < len(_of_type(old, kind)):
            errs.append(forbidden("status.conditions", f'updates may not remove a condition of type "{kind}"'))
    if not approval:
        for kind in (certs.APPROVED, certs.DENIED):
            before, after = _of_type(old, kind), _of_type(new, kind)
            if len(after) > len(before):
                errs.append(forbidden("status.conditions", f'updates may not add a condition of type "{kind}"'))
            elif len(after) == len(before) and after != before:
                errs.append(forbidden("status.conditions", f'updates may not modify a condition of type "{kind}"'))
    new_cert, old_cert = certs.certificate_pem(new), certs.certificate_pem(old)
    if new_cert != old_cert:
        if not certificate:
            errs.append(forbidden("status.certificate", "updates may not set certificate content"))
        elif old_cert:
            errs.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
    return errs


# ---- conditions ------------------------------------------------------------------------


def default_conditions(csr: Obj) -> None:
    """v1's defaulting: a condition without a status is True."""
    for c in (csr.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and not c.get("status"):
            c["status"] = "True"


def populate_condition_timestamps(new: Obj, old: Obj, now: str) -> None:
    """``lastUpdateTime`` now when missing; ``lastTransitionTime`` from the stored same type and status, else now."""
    previous = [c for c in (old.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    for c in (new.get("status") or {}).get("conditions") or []:
        if not isinstance(c, dict):
            continue
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            kept = next((p.get("lastTransitionTime") for p in previous if p.get("type") == c.get("type")
                         and p.get("status") == c.get("status") and p.get("lastTransitionTime")), None)
            c["lastTransitionTime"] = kept or now


def _preserve(new: Obj, old: Obj, kind: str) -> None:
    """Keep the stored conditions of ``kind`` in their places (a status write never changes approval)."""
    before = [c for c in (old.get("status") or {}).get("conditions") or [] if isinstance(c, dict) and c.get("type") == kind]
    conditions = (new.get("status") or {}).get("conditions")
    if not isinstance(conditions, list):
        return
    places = [i for i, c in enumerate(conditions) if isinstance(c, dict) and c.get("type") == kind]
    if len(places) != len(before):
        return  # added or removed: validation says so
    for i, kept in zip(places, before):
        conditions[i] = kept


def _own_status(obj: Obj) -> Obj:
    status = obj.get("status")
    status = dict(status) if isinstance(status, dict) else {}
    if isinstance(status.get("conditions"), list):
        status["conditions"] = [dict(c) if isinstance(c, dict) else c for c in status["conditions"]]
    obj["status"] = status
    return status


# ---- the strategy ----------------------------------------------------------------------


class CertificateSigningRequestStrategy(Strategy):
    has_status = True
    update_subresources = ("approval",)
    #: the user making the current request, as ``{username, uid, groups, extra}`` (None: the server itself)
    requester: Callable[[], Obj | None] = staticmethod(_no_requester)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for own in ("username", "uid", "groups", "extra"):
                spec.pop(own, None)
            user = type(self).requester()
            if user is not None:
                spec["username"] = user.get("username", "")
                if user.get("uid"):
                    spec["uid"] = user["uid"]
                spec["groups"] = list(user.get("groups") or [])
                if user.get("extra"):
                    spec["extra"] = {k: list(v) for k, v in user["extra"].items()}
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_csr(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec")
        new["status"] = old.get("status") if "status" in old else {}

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, approval=False, certificate=False)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        _own_status(merged)
        default_conditions(merged)
        _preserve(merged, old, certs.APPROVED)
        _preserve(merged, old, certs.DENIED)
        populate_condition_timestamps(merged, old, now_rfc3339())
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, approval=False, certificate=True)

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> Obj:
        """``approval``: the conditions are the client's; everything else stays as stored."""
        status = _own_status(new)
        default_conditions(new)
        populate_condition_timestamps(new, old, now_rfc3339())
        merged = dict(old)
        merged["metadata"] = new.get("metadata", old.get("metadata"))
        merged_status = dict(old.get("status") or {})
        if status.get("conditions") is not None:
            merged_status["conditions"] = status["conditions"]
        else:
            merged_status.pop("conditions", None)
        merged["status"] = merged_status
        return merged

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, approval=True, certificate=False)


def signer_name(csr: Obj) -> str:
    return str((csr.get("spec") or {}).get("signerName") or "")
