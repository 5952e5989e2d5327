"""Field errors of CRD and custom-resource validation, rendered as Go's ``field.Error``.

Design.  apiextensions-apiserver reports CRD and schema problems through
apimachinery's ``field.ErrorList``, whose messages print values the Go way
(``true``, ``null``, ``1.5``, quoted strings) and include ``Too many`` for item counts.
:class:`SchemaFieldError` renders exactly that, and the ``*_error`` constructors give
the CRD strategy, the structural-schema checks and value validation one spelling of
each error type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ..types import FieldError

__all__ = [
    "SchemaFieldError", "child_path", "forbidden_error", "go_number", "go_value", "invalid_error",
    "not_supported_error", "required_error", "too_long_error", "too_many_error", "type_invalid_error",
]


class SchemaFieldError(FieldError):
    """A :class:`FieldError` whose message renders values and types as Go does.

    Adds ``FieldValueTooMany`` (``Too many: 3: must have at most 2 items``) and prints
    ``true``/``null``/``1.5`` the way apimachinery's ``field.Error`` prints them.
    """

    __slots__ = ()

    _HEADS = {
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueTypeInvalid": "Invalid value",
        "FieldValueInvalid": "Invalid value",
    }
    _NO_VALUE = ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong")

    @property
    def message(self) -> str:
        head = self._HEADS.get(self.type, "Invalid value")
        body = head if self.type in self._NO_VALUE else f"{head}: {go_value(self.value)}"
        return f"{body}: {self.detail}" if self.detail else body


def go_value(value: Any) -> str:
    """A JSON value as Go's ``%v``/``%q`` prints it in field errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_number(value)
    return orjson.dumps(value).decode()


def go_number(value: float | int) -> str:
    """A number as Go's ``%v`` prints a float64 (``1``, ``1.5``, ``1e+21``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def required_error(path: str, detail: str = "") -> FieldError:
    return SchemaFieldError("FieldValueRequired", path, detail)


def invalid_error(path: str, value: Any, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueInvalid", path, detail, value)


def type_invalid_error(path: str, value: Any, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueTypeInvalid", path, detail, value)


def not_supported_error(path: str, value: Any, allowed: Iterable[str]) -> FieldError:
    quoted = ", ".join(orjson.dumps(a).decode() for a in allowed)
    return SchemaFieldError("FieldValueNotSupported", path, f"supported values: {quoted}", value)


def forbidden_error(path: str, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueForbidden", path, detail)


def too_long_error(path: str, limit: int) -> FieldError:
    return SchemaFieldError("FieldValueTooLong", path, f"may not be longer than {limit}")


def too_many_error(path: str, actual: int, limit: int) -> FieldError:
    return SchemaFieldError("FieldValueTooMany", path, f"must have at most {limit} items", actual)


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name

