"""Flag values read as Kubernetes' components read theirs (Go's ``flag`` package), for every podlife command.

``--leader-elect=false``, ``--trace=0``, ``--rotate-server-certificates=t`` are booleans the way Go's
``strconv.ParseBool`` takes them (its short forms included); ``--discovery-timeout 5m0s`` is a Go
duration (:func:`podlife.machinery.timeutil.go_duration_seconds`). Each is an argparse ``type``:
a bad value is argparse's one-line usage error, never a traceback.
"""

from __future__ import annotations

import argparse

from .machinery.timeutil import go_duration_seconds

__all__ = ["go_bool", "go_duration"]


def go_bool(text: str) -> bool:
    """A boolean flag value: ``1``/``t``/``true`` or ``0``/``f``/``false``, any case."""
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def go_duration(text: str) -> float:
    """A duration flag value (``15s``, ``1m0s``, ``8760h``) in seconds."""
    seconds = go_duration_seconds(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (want e.g. 15s, 1m0s)")
    return seconds
