"""The token controller: legacy token Secrets get their token; an account's go with it.

Learned from Kubernetes' ``pkg/controller/serviceaccount/tokens_controller.go``. It only
acts on Secrets a user made: it never creates one (Kubernetes 1.24+).

- A Secret of type ``kubernetes.io/service-account-token`` names its account in the
  annotation ``kubernetes.io/service-account.name`` (and, once filled in,
  ``kubernetes.io/service-account.uid``). When that account exists (with that uid),
  a Secret missing ``token``, ``namespace`` or the current ``ca.crt`` is filled in --
  re-read first, and left for its next event if it moved on since the informer saw it
  -- with a legacy token signed by ``generate`` (the API's
  :class:`~podlife.api.legacy_tokens.LegacyTokenGenerator`), the cluster CA and the
  Secret's namespace, and annotated with the account's uid.
- When the account does not exist (or has another uid), the Secret is deleted, with
  its uid as precondition. When an account is deleted, every token Secret naming it
  (and its uid, or no uid) is deleted.

Reads the Secrets (its own informer, of that type only) and ServiceAccounts (the shared
informer) through informers, falling back to a live GET on an informer miss for the
account (a just-created one); writes Secrets.

Runs in the controller manager as ``serviceaccount-token-controller`` with
kube-controller-manager's own identity (Kubernetes starts it with its root client: it
makes the tokens the other controllers' accounts would use); the signer is
``--service-account-private-key-file``'s (:attr:`ControllerContext.token_generator`) --
without one it is disabled, as in Kubernetes -- and the CA is ``--root-ca-file``'s.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from ..client.base import SECRETS, Obj
from ..client.informer import Informer
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from .manager import ControllerContext, ControllerDisabled, TokenGenerator
from .serviceaccounts import SERVICE_ACCOUNTS

log = logging.getLogger(__name__)

TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
ACCOUNT_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _annotations(obj: Obj) -> dict[str, str]:
    return _meta(obj).get("annotations") or {}


def is_token_secret_of(secret: Obj, account: Obj) -> bool:
    """Kubernetes' ``IsServiceAccountToken``: the type, the account's name, and its uid if the Secret has one."""
    annotations = _annotations(secret)
    uid = annotations.get(ACCOUNT_UID_ANNOTATION)
    return (secret.get("type") == TOKEN_SECRET_TYPE and _meta(secret).get("namespace") == _meta(account).get("namespace")
            and annotations.get(ACCOUNT_NAME_ANNOTATION) == _meta(account).get("name")
            and (not uid or uid == _meta(account).get("uid")))


class TokensController:
    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        if ctx.token_generator is None:
            raise ControllerDisabled("no service-account private key (--service-account-private-key-file) to sign with")
        self.client = ctx.client
        self.generate: TokenGenerator = ctx.token_generator
        self.root_ca = _b64(ctx.root_ca)
        self.informers = ctx.informers
        self.secrets = Informer(ctx.client, SECRETS, field_selector=f"type={TOKEN_SECRET_TYPE}")
        self.accounts = ctx.informers.informer(SERVICE_ACCOUNTS)
        self.queue = WorkQueue()
        self.workers = workers
        self.secrets.add_handlers(on_add=self._enqueue_secret, on_update=lambda _old, new: self._enqueue_secret(new))
        self.accounts.add_handlers(on_delete=self._enqueue_account)

    def _enqueue_secret(self, secret: Obj) -> None:
        meta = _meta(secret)
        self.queue.add(f"secret/{meta.get('namespace')}/{meta.get('name')}")

    def _enqueue_account(self, account: Obj) -> None:
        meta = _meta(account)
        self.queue.add(f"account/{meta.get('namespace')}/{meta.get('name')}/{meta.get('uid') or ''}")

    async def run(self) -> None:
        own = asyncio.ensure_future(self.secrets.run())
        try:
            await asyncio.gather(self.secrets.wait_synced(), self.informers.wait_synced(SERVICE_ACCOUNTS))
            await asyncio.gather(own, self.queue.run_workers(self.sync, self.workers))
        finally:
            own.cancel()
            await asyncio.gather(own, return_exceptions=True)

    async def sync(self, key: str) -> None:
        kind, namespace, name, *rest = key.split("/")
        if kind == "secret":
            await self.sync_secret(namespace, name)
        else:
            await self.delete_tokens_of({"metadata": {"namespace": namespace, "name": name, "uid": rest[0]}})

    async def sync_secret(self, namespace: str, name: str) -> None:
        secret = self.secrets.get(namespace, name)
        if secret is None or secret.get("type") != TOKEN_SECRET_TYPE or _meta(secret).get("deletionTimestamp"):
            return
        account = await self._account_of(secret)
        if account is None:
            log.info("token secret %s/%s names no existing service account: deleting it", namespace, name)
            await self._delete(secret)
            return
        if self._needs_update(secret):
            await self._fill_in(secret, account)

    async def _account_of(self, secret: Obj) -> Obj | None:
        """The account the Secret names (informer, then a live GET), if it has the Secret's uid."""
        namespace = str(_meta(secret).get("namespace"))
        annotations = _annotations(secret)
        name = annotations.get(ACCOUNT_NAME_ANNOTATION) or ""
        account = self.accounts.get(namespace, name) if name else None
        if account is None and name:
            try:
                account = await self.client.get(SERVICE_ACCOUNTS, name, namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        if account is None or not is_token_secret_of(secret, account):
            return None
        return account

    def _needs_update(self, secret: Obj) -> bool:
        data = secret.get("data") or {}
        return data.get("ca.crt") != self.root_ca or not data.get("namespace") or not data.get("token")

    async def _fill_in(self, cached: Obj, account: Obj) -> None:
        meta = _meta(cached)
        try:
            live = await self.client.get(SECRETS, meta["name"], meta["namespace"])
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        if _meta(live).get("resourceVersion") != meta.get("resourceVersion") or not self._needs_update(live):
            return  # our view is behind: the newer version has its own event
        data = live.setdefault("data", {})
        data["ca.crt"] = self.root_ca
        if not data.get("namespace"):
            data["namespace"] = _b64(meta["namespace"])
        if not data.get("token"):
            account_meta = _meta(account)
            data["token"] = _b64(self.generate(meta["namespace"], account_meta["name"], account_meta["uid"],
                                               meta["name"]))
        annotations = _meta(live).setdefault("annotations", {})
        annotations[ACCOUNT_NAME_ANNOTATION] = _meta(account)["name"]
        annotations[ACCOUNT_UID_ANNOTATION] = _meta(account)["uid"]
        try:
            await self.client.update(SECRETS, live)
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or changed: its next event tries again
                raise

    async def delete_tokens_of(self, account: Obj) -> None:
        """Delete the token Secrets of a deleted account."""
        namespace = _meta(account).get("namespace")
        for secret in list(self.secrets.cache.values()):
            if _meta(secret).get("namespace") == namespace and is_token_secret_of(secret, account):
                await self._delete(secret)

    async def _delete(self, secret: Obj) -> None:
        meta = _meta(secret)
        try:
            await self.client.delete(SECRETS, meta["name"], meta["namespace"], preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
