"""``podlife token create`` and ``podlife node``: a node on another host joins with a bootstrap token.

(Being written: see the module's final design docstring.)
"""

from __future__ import annotations

from typing import Any


def add_parsers(subparsers: Any) -> None:
    """Register the subcommands (none yet)."""
