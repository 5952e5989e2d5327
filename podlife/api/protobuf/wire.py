"""Protocol Buffers wire-format reader: varints, tags and length-delimited fields.

Only the reading half of the wire format, and only what Kubernetes' gogo-generated
messages use: varints (wire type 0) and length-delimited values (wire type 2).  The
fixed-width types (1 and 5) are still *skipped* correctly so that an unexpected field
does not desynchronise the reader; groups (3 and 4), long deprecated, are rejected.

Every malformed input raises :class:`ProtobufError` (a ``ValueError``) with the byte
offset, never ``IndexError``/``struct.error``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "FIXED32",
    "FIXED64",
    "LENGTH_DELIMITED",
    "VARINT",
    "ProtobufError",
    "RawField",
    "UnsupportedKindError",
    "is_empty",
    "iter_fields",
    "read_varint",
    "to_int32",
    "to_int64",
    "unpack_varints",
]

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
_START_GROUP = 3
_END_GROUP = 4
FIXED32 = 5

_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = (1 << 29) - 1
_UINT64 = 1 << 64


class ProtobufError(ValueError):
    """A request body is not valid Kubernetes protobuf (maps to 400 Bad Request)."""


class UnsupportedKindError(ProtobufError):
    """The envelope names a kind this decoder has no field table for (maps to 415)."""


@dataclass(frozen=True, slots=True)
class RawField:
    """One field as it appears on the wire, before any schema is applied.

    ``value`` is an ``int`` for varints and ``bytes`` for every other wire type
    (the payload of a length-delimited field, or the raw 4/8 fixed-width bytes).
    """

    number: int
    wire_type: int
    value: int | bytes


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the unsigned varint at ``buf[pos:]``; return ``(value, next_pos)``."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos + index >= len(buf):
            raise ProtobufError(f"truncated varint at byte {pos}")
        byte = buf[pos + index]
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if result >= _UINT64:
                raise ProtobufError(f"varint at byte {pos} overflows 64 bits")
            return result, pos + index + 1
    raise ProtobufError(f"varint at byte {pos} is longer than {_MAX_VARINT_BYTES} bytes")


def _take(buf: bytes, pos: int, size: int, what: str) -> tuple[bytes, int]:
    end = pos + size
    if end > len(buf):
        raise ProtobufError(f"truncated {what} at byte {pos}: need {size} bytes, have {len(buf) - pos}")
    return buf[pos:end], end


def _read_value(buf: bytes, pos: int, wire_type: int) -> tuple[int | bytes, int]:
    if wire_type == VARINT:
        return read_varint(buf, pos)
    if wire_type == LENGTH_DELIMITED:
        size, pos = read_varint(buf, pos)
        return _take(buf, pos, size, "length-delimited field")
    if wire_type == FIXED64:
        return _take(buf, pos, 8, "fixed64 field")
    if wire_type == FIXED32:
        return _take(buf, pos, 4, "fixed32 field")
    if wire_type in (_START_GROUP, _END_GROUP):
        raise ProtobufError(f"unsupported group wire type {wire_type} at byte {pos}")
    raise ProtobufError(f"invalid wire type {wire_type} at byte {pos}")


def iter_fields(buf: bytes) -> Iterator[RawField]:
    """Yield the fields of one message, in wire order, without interpreting them."""
    pos = 0
    while pos < len(buf):
        tag_pos = pos
        tag, pos = read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 0x7
        if not 0 < number <= _MAX_FIELD_NUMBER:
            raise ProtobufError(f"invalid field number {number} at byte {tag_pos}")
        value, pos = _read_value(buf, pos, wire_type)
        yield RawField(number, wire_type, value)


def unpack_varints(buf: bytes) -> list[int]:
    """Decode a packed repeated varint field (a run of varints with no tags)."""
    values: list[int] = []
    pos = 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        values.append(value)
    return values


def to_int64(value: int) -> int:
    """Reinterpret a decoded varint as a two's-complement ``int64``."""
    return value - _UINT64 if value >= 1 << 63 else value


def to_int32(value: int) -> int:
    """Reinterpret a decoded varint as ``int32`` (negatives are sign-extended to 10 bytes)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def is_empty(field: RawField) -> bool:
    """True for the zero value gogo-protobuf emits for every non-pointer field."""
    return field.value in (0, b"")
