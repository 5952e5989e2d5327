"""The cluster's PKI and credentials kept in a shared store, so every API server on it is one cluster.

Why
---
On one machine the certificate authority, the service-account signing key and the
admin's credentials are files in the data directory (:class:`~podlife.api.pki.PKI`).
When several API servers share one etcd, each with its own data directory, they must
present certificates from the same CA, accept the same client certificates and tokens
and verify each other's service-account tokens: one kubeconfig must work against any
of them. As k3s keeps its bootstrap data in its datastore, the first server on a store
writes these files into it under :data:`BOOTSTRAP_KEY` (outside ``/registry/``: no
API serves it), encrypted; every later server adopts them before it makes what is its
own (its serving certificate for its addresses, the kubelet certificates).

The encryption is AES-256-GCM with a key derived (scrypt) from the cluster token
(``--cluster-token-file`` or ``$PODLIFE_CLUSTER_TOKEN``), which every server of the
cluster is given, as k3s' ``--token``. Without a token the key is derived from the empty
string: the data is then protected only by access to etcd -- which, as Kubernetes'
documentation says of etcd, is access to the whole cluster anyway. A server given the
wrong token refuses to start instead of minting a second CA.
"""

from __future__ import annotations

import logging
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..store.base import Store
from .pki import PKI, _write_private

log = logging.getLogger(__name__)

#: where the shared files live in the store
BOOTSTRAP_KEY = "/podlife/bootstrap/pki"
#: the files every server of one store must have the same: the CA, the signing keys, the shared credentials
SHARED_FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub", "admin.crt", "admin.key", "admin.token",
                "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key")
#: what a server makes for itself from the CA; made again when the CA it adopts is not the one they were signed by
OWN_FILES = ("server.crt", "server.key", "kubelet.crt", "kubelet.key")
_FORMAT = 1


class SharedPKIError(ValueError):
    """The store holds another cluster's PKI this server cannot read (a wrong cluster token)."""


async def share_pki(store: Store, pki: PKI, hosts: list[str], token: str) -> bool:
    """Adopt the store's PKI, or publish this server's; True when adopted from the store.

    Races between servers starting together are settled by the store: whoever creates
    the key first wins, the other adopts it.
    """
    for _ in range(2):
        kv = await store.get(BOOTSTRAP_KEY)
        if kv is not None:
            _adopt(pki, _decrypt(kv.value, token))
            pki.ensure(hosts)
            return True
        pki.ensure(hosts)
        files = {name: (pki.dir / name).read_bytes().decode() for name in SHARED_FILES}
        if await store.create(BOOTSTRAP_KEY, _encrypt(files, token)) is not None:
            log.info("the cluster's PKI is now kept in the store (%s)", BOOTSTRAP_KEY)
            return False
    raise SharedPKIError("the store's PKI changed while this server started; start it again")


def _adopt(pki: PKI, files: dict[str, str]) -> None:
    """Write the shared files; drop this server's own certificates when they were signed by another CA."""
    pki.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.dir, 0o700)
    ca_changed = not pki.ca_cert.exists() or pki.ca_cert.read_text() != files["ca.crt"]
    for name, text in files.items():
        path = pki.dir / name
        if not path.exists() or path.read_text() != text:
            _write_private(path, text.encode())
    if ca_changed:
        for name in OWN_FILES:
            (pki.dir / name).unlink(missing_ok=True)
        for cert in pki.dir.glob("*.crt"):  # component certificates of the old CA: made again on use
            if cert.name not in SHARED_FILES:
                cert.unlink()
                cert.with_suffix(".key").unlink(missing_ok=True)
        log.info("adopted the cluster's PKI from the store")


def _key(token: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2 ** 14, r=8, p=1).derive(token.encode())


def _encrypt(files: dict[str, str], token: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(token, salt)).encrypt(nonce, orjson.dumps(files), BOOTSTRAP_KEY.encode())
    return orjson.dumps({"format": _FORMAT, "salt": salt.hex(), "nonce": nonce.hex(), "data": sealed.hex()})


def _decrypt(value: bytes, token: str) -> dict[str, str]:
    try:
        doc = orjson.loads(value)
        sealed = bytes.fromhex(doc["data"])
        key = _key(token, bytes.fromhex(doc["salt"]))
        files = orjson.loads(AESGCM(key).decrypt(bytes.fromhex(doc["nonce"]), sealed, BOOTSTRAP_KEY.encode()))
    except InvalidTag:
        raise SharedPKIError("the store holds a cluster's PKI encrypted with another cluster token "
                             "(--cluster-token-file / PODLIFE_CLUSTER_TOKEN)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SharedPKIError(f"the store's {BOOTSTRAP_KEY} is not podlife's PKI record: {exc}") from None
    missing = [name for name in SHARED_FILES if name not in files]
    if missing:
        raise SharedPKIError(f"the store's PKI record lacks {', '.join(missing)}")
    return files

