"""Kubernetes resource quantities (``100m``, ``1``, ``128Mi``, ``1Gi``, ``1e3``, ``500k``).

Design
------
A quantity is a decimal number with an optional suffix: a binary SI multiple
(``Ki Mi Gi Ti Pi Ei``, powers of 1024), a decimal SI multiple (``n u m k M G T
P E``) or a decimal exponent (``e3``, ``E-2``). :func:`parse_quantity` turns
one into an exact :class:`~fractions.Fraction`, so ``0.1`` CPU is exactly 100
millicores and ``1.5Gi`` is exactly 1610612736 bytes.

The scheduler compares integers: CPU in millicores (:func:`milli_value`) and
everything else in units (:func:`int_value`). Both round *up*, as Kubernetes'
``MilliValue()``/``Value()`` do, so a request never looks smaller than it is.

Parsing is memoised: a cluster's pods come from a few templates, so the same
strings (``"100m"``, ``"128Mi"``) are parsed once, not once per pod.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exp>[+-]?\d+)|(?P<dec>[numkMGTPE]?))$"
)
_MAX_EXPONENT = 64  # far beyond any real quantity; keeps ``1e999999`` from eating memory


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; raises :class:`QuantityError` if it is not one."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"quantity is not finite: {value!r}")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string or a number, not {type(value).__name__}")
    return _parse_text(value.strip())


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Fraction:
    m = _QUANTITY_RE.match(text)
    if m is None:
        raise QuantityError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    number = Fraction(m.group("num"))
    if m.group("bin"):
        return number * _BINARY[m.group("bin")]
    if m.group("exp") is not None:
        exponent = int(m.group("exp"))
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"quantity exponent out of range: {text!r}")
        return number * Fraction(10) ** exponent
    return number * _DECIMAL[m.group("dec") or ""]


def int_value(value: str | int | float) -> int:
    """The quantity in whole units, rounded up (bytes, pods, devices)."""
    return math.ceil(parse_quantity(value))


def milli_value(value: str | int | float) -> int:
    """The quantity in thousandths, rounded up (CPU millicores)."""
    return math.ceil(parse_quantity(value) * 1000)


def resource_value(resource: str, value: str | int | float) -> int:
    """How the scheduler counts ``resource``: millicores for ``cpu``, units otherwise."""
    return milli_value(value) if resource == "cpu" else int_value(value)
