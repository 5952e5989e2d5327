"""The API assembled inside the test's own process, for tests of the components on it.

Controller, scheduler, kubelet and simulator tests do not need the HTTP server: they
drive the same API through :class:`~podlife.api.local_client.LocalClient` on
:func:`~podlife.api.context.build_api` over a :class:`~podlife.store.memory.MemoryStore`.
:func:`in_process_api` builds that (the ``local_api`` fixture of ``tests/conftest.py``
is it, once per test) and shuts it down in order: the CRD controller that
``build_api`` installs, then the store. Tests that restart the API on the same store
call :func:`in_process_api` with that store; it is then theirs to close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from podlife.api.context import build_api
from podlife.api.crds import controller_of
from podlife.api.local_client import LocalClient
from podlife.api.rest import ApiContext
from podlife.store.memory import MemoryStore


@dataclass
class InProcessApi:
    """One in-process API: its store, its context (catalog, RESTs, caches) and a client on it."""

    store: MemoryStore
    ctx: ApiContext
    client: LocalClient


@asynccontextmanager
async def in_process_api(store: MemoryStore | None = None) -> AsyncIterator[InProcessApi]:
    """An API on ``store`` (a fresh, started MemoryStore, closed at the end, if none is given)."""
    owned = store is None
    if store is None:
        store = MemoryStore()
        await store.start()
    try:
        ctx = await build_api(store)
        try:
            # no controller manager here to make the default service accounts: Kubernetes'
            # integration tests run their API server with --disable-admission-plugins=ServiceAccount
            ctx.disabled_admission_plugins.add("ServiceAccount")
            yield InProcessApi(store, ctx, LocalClient(ctx))
        finally:
            crd_controller = controller_of(ctx)
            if crd_controller is not None:
                await crd_controller.close()
    finally:
        if owned:
            await store.close()
