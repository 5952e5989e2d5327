"""``podlife scheduler`` and ``podlife controller-manager``: control-plane components in their own process.

(Being written: see the module's final design docstring.)
"""

from __future__ import annotations

from typing import Any


def add_parsers(subparsers: Any) -> None:
    """Register the subcommands (none yet)."""
