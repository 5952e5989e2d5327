"""The CSR cleaner: old CertificateSigningRequests are deleted, as Kubernetes' ``csrcleaner`` deletes them.

kube-controller-manager's ``certificatesigningrequest-cleaner-controller`` (acting as
``kube-system:certificate-controller``). A CSR is a request, not a record: once it has done
its work (or never will), it goes. The deadlines are Kubernetes':

- Approved, Denied or Failed: an hour after that condition's ``lastUpdateTime``;
- pending (no condition at all): 24 hours after its creation;
- issued: when the issued certificate expires, if that comes first.

Kubernetes polls every CSR once an hour; this controller watches them (the shared informer)
and queues each for its own deadline (:func:`deletion_time`), so a CSR is gone at its deadline
rather than up to an hour later. The delete carries the CSR's uid as a precondition, so a new
request that reused the name is left alone.
"""

from __future__ import annotations

import logging
import time

from ..client.base import Obj
from ..client.workqueue import WorkQueue
from ..machinery import certificates as certs
from ..machinery.bootstrap_token import parse_rfc3339
from ..machinery.errors import ApiError
from .cronjob import KeyTimers
from .csr_approving import CSRS
from .manager import ControllerContext

log = logging.getLogger(__name__)

DECIDED_EXPIRATION = 3600.0  # approved, denied, failed
PENDING_EXPIRATION = 24 * 3600.0


def _moment(text: object) -> float | None:
    return parse_rfc3339(text) if isinstance(text, str) and text else None


def deletion_time(csr: Obj) -> float | None:
    """When ``csr`` is to be deleted (seconds since the epoch); None when no rule applies yet."""
    created = _moment((csr.get("metadata") or {}).get("creationTimestamp"))
    moments: list[float] = []
    conditions = [c for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") in (certs.APPROVED, certs.DENIED, certs.FAILED):
            updated = _moment(c.get("lastUpdateTime")) or _moment(c.get("lastTransitionTime")) or created or 0.0
            moments.append(updated + DECIDED_EXPIRATION)
    if not conditions and created is not None:
        moments.append(created + PENDING_EXPIRATION)
    pem = certs.certificate_pem(csr)
    if pem:
        expiry = certs.certificate_not_after(pem)
        if expiry is not None:
            moments.append(expiry.timestamp())
    return min(moments) if moments else None


class CSRCleanerController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.csrs = ctx.informers.informer(CSRS)
        self.queue = WorkQueue()
        self.timers = KeyTimers(self.queue)
        self.csrs.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                               on_delete=lambda gone: self.timers.forget(gone["metadata"]["name"]))

    def _enqueue(self, csr: Obj) -> None:
        self.queue.add(csr["metadata"]["name"])

    async def run(self) -> None:
        try:
            await self.informers.wait_synced(CSRS)
            await self.queue.run_workers(self.sync, 1)
        finally:
            self.timers.cancel_all()

    async def sync(self, name: str) -> None:
        csr = self.csrs.get(None, name)
        if csr is None:
            return
        when = deletion_time(csr)
        if when is None:
            return
        left = when - time.time()
        if left > 0:
            self.timers.add_after(name, left)
            return
        try:
            await self.client.delete(CSRS, name, preconditions={"uid": csr["metadata"]["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
            return
        log.info("deleted certificate signing request %s", name)
