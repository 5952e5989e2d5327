"""The CSR signing controller: approved requests of the built-in signers get a certificate from the cluster CA.

kube-controller-manager's ``csrsigning`` (``certificatesigningrequest-signing-controller``,
acting as ``kube-system:certificate-controller``), with the CA that
``--cluster-signing-cert-file``/``--cluster-signing-key-file`` give it
(:attr:`ControllerContext.signing_cert`/``signing_key``; ``podlife up`` hands it podlife's
own CA, the one the API server's client-certificate authenticator trusts, so what it issues
authenticates). Without a CA key it does not run, as Kubernetes'.

It watches CertificateSigningRequests (the shared informer) and acts on one that is
Approved, not Failed, has no ``status.certificate`` yet, and names one of the signers
``kubernetes.io/kube-apiserver-client-kubelet``, ``kubernetes.io/kube-apiserver-client``,
``kubernetes.io/kubelet-serving`` (others belong to other signers and are left alone). A
request the signer's rules refuse (:func:`podlife.machinery.certificates.signer_problem`:
a kubelet client or serving request must look like one; a client certificate's usages are
client auth with digital signature and key encipherment optional) gets the condition
``Failed`` (reason ``SignerValidationFailure``, the rule's message). Otherwise it signs
(:func:`podlife.machinery.certificates.sign`): the request's subject and SANs, its usages,
valid for ``spec.expirationSeconds`` within [10 minutes, ``--cluster-signing-duration``
(8760h)], and writes the PEM to ``status.certificate`` through the ``status`` subresource.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging

from ..client.base import Obj
from ..client.workqueue import WorkQueue
from ..machinery import certificates as certs
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from .csr_approving import CSRS
from .manager import ControllerContext, ControllerDisabled

log = logging.getLogger(__name__)

FAILURE_REASON = "SignerValidationFailure"


def wants_certificate(csr: Obj) -> bool:
    """Approved, not failed, not issued, and for one of the signers this controller is."""
    return (certs.condition(csr, certs.APPROVED) is not None and certs.condition(csr, certs.FAILED) is None
            and not (csr.get("status") or {}).get("certificate")
            and (csr.get("spec") or {}).get("signerName") in certs.BUILTIN_SIGNERS)


def with_status(csr: Obj, **changes: object) -> Obj:
    status = dict(csr.get("status") or {})
    status.update(changes)
    return {**csr, "status": status}


def failed(csr: Obj, message: str, now: str) -> Obj:
    conditions = [*((csr.get("status") or {}).get("conditions") or []),
                  {"type": certs.FAILED, "status": "True", "reason": FAILURE_REASON, "message": message,
                   "lastUpdateTime": now}]
    return with_status(csr, conditions=conditions)


class CSRSigningController:
    def __init__(self, ctx: ControllerContext) -> None:
        if not ctx.signing_cert or not ctx.signing_key:
            raise ControllerDisabled("no --cluster-signing-cert-file/--cluster-signing-key-file")
        self.ca_cert, self.ca_key = ctx.signing_cert, ctx.signing_key
        self.duration = ctx.options.cluster_signing_duration
        self.client = ctx.client
        self.informers = ctx.informers
        self.csrs = ctx.informers.informer(CSRS)
        self.queue = WorkQueue()
        self.csrs.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, csr: Obj) -> None:
        if wants_certificate(csr):
            self.queue.add(csr["metadata"]["name"])

    async def run(self) -> None:
        await self.informers.wait_synced(CSRS)
        await self.queue.run_workers(self.sync, 2)

    def issue(self, csr: Obj, now: dt.datetime) -> Obj:
        """``csr`` as the status write makes it: with its certificate, or Failed with the signer's reason."""
        spec = csr.get("spec") or {}
        try:
            request = certs.parse_request(certs.request_bytes(csr))
        except certs.RequestError as exc:
            return failed(csr, str(exc), now_rfc3339())
        usages = list(spec.get("usages") or [])
        problem = certs.signer_problem(str(spec.get("signerName")), request, usages)
        if problem is not None:
            return failed(csr, problem, now_rfc3339())
        lifetime = certs.signing_duration(self.duration, spec.get("expirationSeconds"))
        pem = certs.sign(request, usages, self.ca_cert, self.ca_key, lifetime, now)
        return with_status(csr, certificate=base64.b64encode(pem).decode())

    async def sync(self, name: str) -> None:
        csr = self.csrs.get(None, name)
        if csr is None or not wants_certificate(csr):
            return
        updated = self.issue(csr, dt.datetime.now(dt.timezone.utc))
        try:
            await self.client.update(CSRS, updated, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            raise  # a conflict: retried with the newer object
        what = "signed" if (updated.get("status") or {}).get("certificate") else "refused"
        log.info("%s certificate signing request %s", what, name)
