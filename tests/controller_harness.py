"""Controllers of the controller manager run by a test, without a ControllerManager.

A controller is built from a :class:`~podlife.controllers.manager.ControllerContext`, as
the manager builds it: :func:`controller_context` makes one on a client (fresh shared
informers, default options unless given), and :func:`running` runs the controllers
together with the shared informers they use (:func:`~podlife.controllers.manager.run_controllers`,
what the manager runs), cancelling both at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from podlife.client.base import Client
from podlife.client.shared_informers import SharedInformers
from podlife.controllers.manager import ControllerContext, TokenGenerator, run_controllers
from podlife.controllers.options import ControllerManagerOptions


def controller_context(client: Client, component: str = "test-controller", *,
                       options: ControllerManagerOptions | None = None, root_ca: str = "",
                       token_generator: TokenGenerator | None = None) -> ControllerContext:
    """A context on ``client`` with its own shared informers (one context can serve several controllers)."""
    return ControllerContext(client, SharedInformers(client), options or ControllerManagerOptions(), component,
                             root_ca=root_ca, token_generator=token_generator)


@asynccontextmanager
async def running(ctx: ControllerContext, *controllers: Any) -> AsyncIterator[None]:
    """Run ``controllers`` (built on ``ctx``) and ``ctx``'s shared informers until the block ends."""
    task = asyncio.create_task(run_controllers(ctx.informers, {f"{type(c).__name__}-{i}": c
                                                               for i, c in enumerate(controllers)}))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
