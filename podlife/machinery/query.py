"""Query parameters as the Kubernetes API server reads them.

Kubernetes decodes query parameters into option structs with Go's conversion functions,
so a boolean such as ``watch`` accepts exactly what ``strconv.ParseBool`` accepts
(``1 t T TRUE true True`` and ``0 f F FALSE false False``), and anything else is a
400 ``BadRequest``. The official Python client sends ``watch=True``; kubectl sends
``watch=true``; both must mean the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping

TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class InvalidBool(ValueError):
    """A boolean query parameter whose value ``strconv.ParseBool`` would refuse."""

    def __init__(self, name: str, value: str) -> None:
        super().__init__(f'invalid value for {name}: "{value}": strconv.ParseBool: parsing "{value}": invalid syntax')
        self.name = name
        self.value = value


def parse_bool(name: str, value: str) -> bool:
    """One boolean parameter's value, read as Go's ``strconv.ParseBool`` reads it."""
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise InvalidBool(name, value)


def query_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """``name`` from a query string: ``default`` when absent; :class:`InvalidBool` when malformed."""
    value = query.get(name)
    if value is None:
        return default
    return parse_bool(name, value)
