"""The CSR approving controller: kubelets' client certificate requests are approved after a SubjectAccessReview.

kube-controller-manager's ``csrapproving`` (``certificatesigningrequest-approving-controller``,
acting as ``kube-system:certificate-controller``). It watches CertificateSigningRequests (the
shared informer) and looks at each that is neither Approved nor Denied. One it recognizes --
signer ``kubernetes.io/kube-apiserver-client-kubelet`` and a kubelet client request
(:func:`podlife.machinery.certificates.kubelet_client_problem`: ``O=system:nodes``,
``CN=system:node:<name>``, digital signature and client auth (key encipherment allowed), no
SANs) -- is asked about with a SubjectAccessReview for its requester (``spec.username``,
``groups``, ``uid``, ``extra``): may they ``create certificatesigningrequests/selfnodeclient``
when they are that very node renewing (the request's CN is their user name), else
``certificatesigningrequests/nodeclient``? kubeadm binds those to the bootstrap tokens' group
and to ``system:nodes``. If allowed, it appends the condition ``Approved`` (reason
``AutoApproved``, message ``Auto approving kubelet client certificate after
SubjectAccessReview.``) through the ``approval`` subresource; otherwise the request stays
pending for a human (``kubectl certificate approve``). It never denies. The signing
controller (:mod:`.csr_signing`) then issues the certificate.
"""

from __future__ import annotations

import logging
from typing import Any

from ..client.base import Obj, Resource
from ..client.workqueue import WorkQueue
from ..machinery import certificates as certs
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from .manager import ControllerContext

log = logging.getLogger(__name__)

CSRS = Resource(certs.GROUP, "v1", "certificatesigningrequests", "CertificateSigningRequest", namespaced=False)
SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
                                  namespaced=False)
REASON = "AutoApproved"
MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."


def decided(csr: Obj) -> bool:
    return certs.condition(csr, certs.APPROVED) is not None or certs.condition(csr, certs.DENIED) is not None


def node_client_subresources(csr: Obj) -> list[str]:
    """The permissions that would approve ``csr``, in the order asked (empty: not a kubelet client request)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != certs.KUBE_APISERVER_CLIENT_KUBELET:
        return []
    try:
        request = certs.parse_request(certs.request_bytes(csr))
    except certs.RequestError:
        return []
    if certs.kubelet_client_problem(request, spec.get("usages") or []) is not None:
        return []
    asked = ["nodeclient"]
    if spec.get("username") == certs.common_name(request):
        asked.insert(0, "selfnodeclient")  # the node renewing its own certificate
    return asked


def access_review(csr: Obj, subresource: str) -> Obj:
    """The SubjectAccessReview of the requester for ``create certificatesigningrequests/<subresource>``."""
    spec = csr.get("spec") or {}
    review: dict[str, Any] = {"user": spec.get("username", ""), "groups": list(spec.get("groups") or []),
                              "resourceAttributes": {"group": certs.GROUP, "resource": "certificatesigningrequests",
                                                     "verb": "create", "subresource": subresource}}
    if spec.get("uid"):
        review["uid"] = spec["uid"]
    if spec.get("extra"):
        review["extra"] = spec["extra"]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review}


def approved(csr: Obj, now: str) -> Obj:
    """``csr`` with the auto-approval condition appended (what the ``approval`` write sends)."""
    status = dict(csr.get("status") or {})
    status["conditions"] = [*(status.get("conditions") or []),
                            {"type": certs.APPROVED, "status": "True", "reason": REASON, "message": MESSAGE,
                             "lastUpdateTime": now}]
    return {**csr, "status": status}


class CSRApprovingController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.csrs = ctx.informers.informer(CSRS)
        self.queue = WorkQueue()
        self.csrs.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, csr: Obj) -> None:
        if not decided(csr):
            self.queue.add(csr["metadata"]["name"])

    async def run(self) -> None:
        await self.informers.wait_synced(CSRS)
        await self.queue.run_workers(self.sync, 5)

    async def sync(self, name: str) -> None:
        csr = self.csrs.get(None, name)
        if csr is None or decided(csr):
            return
        for subresource in node_client_subresources(csr):
            answer = await self.client.create(SUBJECT_ACCESS_REVIEWS, access_review(csr, subresource))
            if (answer.get("status") or {}).get("allowed"):
                await self._approve(csr)
                return

    async def _approve(self, csr: Obj) -> None:
        try:
            await self.client.update(CSRS, approved(csr, now_rfc3339()), subresource="approval")
        except ApiError as exc:
            if exc.code == 404:
                return
            raise  # a conflict: the queue retries with the newer object
        log.info("approved certificate signing request %s", csr["metadata"]["name"])

