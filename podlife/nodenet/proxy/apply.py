"""Load the proxy's nftables table into one node namespace (the only side effects of the proxy's rules).

Design
------
:class:`NftApplier` runs ``nft -f -`` inside the node namespace (:mod:`podlife.nodenet.nft`),
never in the host's. Each script is one nft transaction: it applies whole or not at all, so a
failed apply leaves the previous ruleset in force; the error is logged with nft's own
message and the applier forgets nothing it had applied, so the next call retries.

Unchanged scripts are not applied again (the proxy re-renders on every event, most of
which change nothing). :meth:`NftApplier.apply_ruleset` prefers an *update* of the
table it applied last (rules and maps replaced, stale chains and sets deleted, affinity
sets kept with their clients, see :func:`.render.update_script`); the first apply, and
the retry after a failed update, replace the whole table instead, which also clears
whatever a crashed earlier run left. :meth:`NftApplier.remove` deletes the table;
deleting a table that is not there is not an error.
"""

from __future__ import annotations

import logging

from .. import names
from ..nft import NftError, nft_apply, nft_delete_table
from .render import Ruleset, replace_script, update_script

log = logging.getLogger(__name__)


class NftApplier:
    def __init__(self, netns: str, *, table: str = names.PROXY_TABLE) -> None:
        if not netns:
            raise ValueError("the proxy's rules belong in a node namespace, never the host's")
        self.netns = netns
        self.table = table
        self._last_script: str | None = None
        self._last_ruleset: Ruleset | None = None
        self.applies = 0  # how many scripts nft has accepted (tests and metrics)

    async def _run(self, script: str) -> None:
        await nft_apply(self.netns, script)

    async def apply(self, script: str) -> bool:
        """Load ``script`` unless it is the one applied last; False (logged) when nft refused it."""
        if script == self._last_script:
            return True
        try:
            await self._run(script)
        except (NftError, OSError) as exc:
            log.error("service proxy: nft in %s refused the ruleset, the previous one stays: %s", self.netns, exc)
            return False
        self._last_script = script
        self._last_ruleset = None  # a script of unknown content: the next ruleset replaces the table
        self.applies += 1
        return True

    async def apply_ruleset(self, rs: Ruleset) -> bool:
        """Make the table ``rs``: an update of the last applied ruleset when there is one, else a replacement."""
        if rs == self._last_ruleset:
            return True
        if self._last_ruleset is not None:
            if await self.apply(update_script(self._last_ruleset, rs)):
                self._last_ruleset = rs
                return True
            log.warning("service proxy: replacing table %s in %s after the failed update", rs.table, self.netns)
        if await self.apply(replace_script(rs)):
            self._last_ruleset = rs
            return True
        return False

    async def remove(self) -> None:
        """Delete the table (idempotent)."""
        self._last_script = None
        self._last_ruleset = None
        try:
            await nft_delete_table(self.netns, "ip", self.table)
        except (NftError, OSError) as exc:
            log.warning("service proxy: could not delete table %s in %s: %s", self.table, self.netns, exc)


__all__ = ["NftApplier"]
