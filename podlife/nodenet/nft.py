"""Running ``nft`` inside a node namespace: load a script, check one, delete a table.

The one place podlife calls ``nft`` (the service proxy's and the NetworkPolicy agent's
tables both load through it).

Why a subprocess
----------------
``nft -f -`` loads a whole script as one netlink transaction: the table is replaced
atomically or not at all, which is what a ruleset re-rendered from scratch needs. The
command runs inside the target network namespace -- ``ip netns exec NAME`` for a named
namespace, ``nsenter --net=PATH`` for a path -- never in the host's. Errors carry nft's
own message (it names the offending line of the script).
"""

from __future__ import annotations

import asyncio
import os
import shutil


class NftError(RuntimeError):
    """``nft`` failed; the message holds its stderr."""


def _tool(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}")
                                        if os.access(p, os.X_OK)), None)
    if found is None:
        raise NftError(f"{name} not found (Debian package: nftables / iproute2 / util-linux)")
    return found


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """``argv`` run inside ``netns`` (a name under /run/netns, or a path to a namespace file)."""
    if "/" in netns:
        return [_tool("nsenter"), f"--net={netns}", "--", *argv]
    return [_tool("ip"), "netns", "exec", netns, *argv]


async def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, err.decode(errors="replace").strip()


async def nft_apply(netns: str, script: str, *, check_only: bool = False) -> None:
    """Load ``script`` (``nft -f -``) in ``netns``; with ``check_only`` only parse and validate it (``-c``)."""
    argv = [_tool("nft"), *(["-c"] if check_only else []), "-f", "-"]
    code, err = await _run(in_netns(netns, argv), script)
    if code != 0:
        raise NftError(f"nft -f in {netns} failed ({code}): {err}")


async def nft_delete_table(netns: str, family: str, table: str) -> bool:
    """Delete table ``family table`` in ``netns``; False when it was not there (or the namespace is gone)."""
    if "/" in netns and not os.path.exists(netns):
        return False
    if "/" not in netns and not os.path.exists(f"/run/netns/{netns}"):
        return False
    code, err = await _run(in_netns(netns, [_tool("nft"), "delete", "table", family, table]))
    if code == 0:
        return True
    if "No such file" in err or "does not exist" in err:
        return False
    raise NftError(f"nft delete table {family} {table} in {netns} failed ({code}): {err}")


__all__ = ["NftError", "in_netns", "nft_apply", "nft_delete_table"]
