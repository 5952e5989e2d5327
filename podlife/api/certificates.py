"""The API server's part of CertificateSigningRequests: who asked, and who may approve or sign.

The kind's rules are the registry's (:mod:`podlife.registry.certificates`); what needs the
request's user lives here, as in kube-apiserver:

- the requester: a CSR's ``spec.username/uid/groups/extra`` are the user of the create
  request. The registry cannot see requests, so this module gives its strategy
  :func:`current_requester` (the request's :data:`~podlife.api.rbac_guard.CURRENT_USER`,
  set for HTTP callers and in-process components alike) when it is imported;
- three of Kubernetes' admission plugins (``plugin/pkg/admission/certificates``), in
  :data:`podlife.api.admission.ADMISSION_PLUGINS` at their place in kube's order:
  **CertificateApproval** -- a write to ``approval`` needs verb ``approve`` on resource
  ``signers`` (group ``certificates.k8s.io``) named the CSR's ``signerName`` or
  ``<domain>/*``; **CertificateSigning** -- a ``status`` write that changes
  ``status.certificate`` needs verb ``sign`` the same way; **CertificateSubjectRestriction**
  -- a ``kubernetes.io/kube-apiserver-client`` request for the group ``system:masters`` is
  refused. Each refusal is admission's 403 (``user not permitted to approve requests with
  signerName "..."``). The API server's own writes (no user) pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..machinery import certificates as certs
from ..registry.certificates import CertificateSigningRequestStrategy, signer_name
from ..registry.types import Obj
from .admission_plugin import CREATE_ONLY, OBJECT_ONLY, SUBRESOURCE, UPDATE, AdmissionPlugin, Attributes, refuse
from .authz.attributes import Attributes as AuthzAttributes
from .rbac_guard import CURRENT_USER

if TYPE_CHECKING:
    from .rest import ResourceREST

RESOURCES = frozenset({(certs.GROUP, "certificatesigningrequests")})
MASTERS = "system:masters"


def current_requester() -> Obj | None:
    """The user of the request being served, as a CSR's spec names it (None: the API server itself)."""
    user = CURRENT_USER.get()
    return user.as_dict() if user is not None else None


CertificateSigningRequestStrategy.requester = staticmethod(current_requester)


def allowed_for_signer(rest: ResourceREST, verb: str, signer: str) -> bool:
    """Whether the current user holds ``verb`` on ``signers/<signer>`` or ``signers/<domain>/*``."""
    user = CURRENT_USER.get()
    authorizer = rest.ctx.authorizer
    if user is None or authorizer is None:
        return True
    names = [signer]
    if "/" in signer:
        names.append(signer.split("/", 1)[0] + "/*")
    for name in names:
        attrs = AuthzAttributes(user, verb, True, certs.GROUP, "*", "signers", "", "", name)
        if authorizer.authorize(attrs).allowed:
            return True
    return False


def _approval(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    if attrs.subresource == "approval" and not allowed_for_signer(rest, "approve", signer_name(obj)):
        raise refuse(rest, obj, f'user not permitted to approve requests with signerName "{signer_name(obj)}"')
    return []


def _signing(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    if attrs.subresource != "status" or old is None:
        return []
    if certs.certificate_pem(obj) != certs.certificate_pem(old) and not allowed_for_signer(rest, "sign", signer_name(obj)):
        raise refuse(rest, obj, f'user not permitted to sign requests with signerName "{signer_name(obj)}"')
    return []


def _subject_restriction(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    if signer_name(obj) != certs.KUBE_APISERVER_CLIENT:
        return []
    try:
        request = certs.parse_request(certs.request_bytes(obj))
    except certs.RequestError:
        return []  # validation has said so already
    if MASTERS in certs.organizations(request):
        raise refuse(rest, obj, f"use of {certs.KUBE_APISERVER_CLIENT} signer with {MASTERS} group is not allowed")
    return []


CERTIFICATE_APPROVAL = AdmissionPlugin("CertificateApproval", RESOURCES, frozenset({UPDATE}), frozenset({SUBRESOURCE}),
                                       validate=_approval)
CERTIFICATE_SIGNING = AdmissionPlugin("CertificateSigning", RESOURCES, frozenset({UPDATE}), frozenset({SUBRESOURCE}),
                                      validate=_signing)
CERTIFICATE_SUBJECT_RESTRICTION = AdmissionPlugin("CertificateSubjectRestriction", RESOURCES, CREATE_ONLY, OBJECT_ONLY,
                                                  validate=_subject_restriction)
