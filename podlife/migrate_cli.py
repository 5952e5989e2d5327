"""``podlife migrate --from STORE --to STORE``: copy a cluster's objects between stores.

(Being written: see the module's final design docstring.)
"""

from __future__ import annotations

from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the subcommand (not yet)."""
