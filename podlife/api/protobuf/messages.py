"""Field tables of the Kubernetes messages kubectl sends as protobuf, compiled for the decoder.

The tables themselves are generated (:mod:`.generated_tables`, made by
``scripts/gen_protobuf_tables.py`` from the published ``generated.proto`` files of
k8s.io/api and k8s.io/apimachinery); this module names the types and flags they use
and compiles each entry into a :class:`FieldSpec`.  Each message is a
``{field_number: (jsonName, type, *flags)}`` dict; field numbers are stable across
releases, so one table serves every client version.  JSON names are the Go ``json:``
tags, which differ from the proto names in a few places (``BoundObjectReference.uID``
is ``uid`` in JSON).

``type`` is one of the scalar types (``STR``, ``BYTES``, ``BOOL``, ``I32``, ``I64``), a
special type with a custom JSON form (``TIME``, ``MICROTIME``, ``QUANTITY``, ``INTORSTR``,
``RAWEXT``, ``FIELDSV1``, ``STRLIST``), ``("map", value_type)`` for ``map<string, V>``
(compiled to :class:`MapOf`), or the qualified name of another message in
:data:`MESSAGES` (``"core.Container"``).

Flags:

``REP``
    ``repeated``; the JSON value is a list.
``KEEP``
    emit the zero value when it is on the wire.  gogo-protobuf writes every non-pointer
    field, so a bare ``""``/``0``/``false`` normally means "unset" and is dropped, as
    ``omitempty`` would.  Pointer fields (``*int32 replicas``, ``*bool optional``) and
    fields whose JSON tag lacks ``omitempty`` are only written when set, so their zero
    value is meaningful (``replicas: 0``) and must survive.
``INLINE``
    an embedded Go struct (``json:",inline"``): its fields are merged into the parent
    object (``Probe.handler``, ``Volume.volumeSource``, ``*.localObjectReference``).

Coverage: everything reachable from the kinds in :data:`KINDS`; a non-empty field
missing from a table is reported as an error rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from . import generated_tables

__all__ = [
    "BOOL",
    "BYTES",
    "FIELDSV1",
    "I32",
    "I64",
    "INTORSTR",
    "KINDS",
    "MESSAGES",
    "MICROTIME",
    "QUANTITY",
    "RAWEXT",
    "SCALARS",
    "SPECIALS",
    "STR",
    "STRLIST",
    "TIME",
    "AnyVersionKinds",
    "FieldSpec",
    "MapOf",
    "compiled",
]

# Scalar types.
STR: Final = "string"
BYTES: Final = "bytes"
BOOL: Final = "bool"
I32: Final = "int32"
I64: Final = "int64"
SCALARS: Final = frozenset({STR, BYTES, BOOL, I32, I64})

# Messages with a custom JSON form (see the decoder for each one's wire layout).
TIME: Final = "@Time"  # meta.v1.Time {seconds, nanos} -> RFC3339 seconds, or null
MICROTIME: Final = "@MicroTime"  # meta.v1.MicroTime -> RFC3339 with microseconds, or null
QUANTITY: Final = "@Quantity"  # resource.Quantity {string} -> "100m"
INTORSTR: Final = "@IntOrString"  # intstr.IntOrString {type, intVal, strVal} -> 80 | "http"
RAWEXT: Final = "@RawExtension"  # runtime.RawExtension {raw} -> embedded JSON object
FIELDSV1: Final = "@FieldsV1"  # meta.v1.FieldsV1 {Raw} -> embedded JSON object
STRLIST: Final = "@StringList"  # ExtraValue / Verbs {repeated items} -> ["a", "b"]
SPECIALS: Final = frozenset({TIME, MICROTIME, QUANTITY, INTORSTR, RAWEXT, FIELDSV1, STRLIST})

REP: Final = "repeated"
KEEP: Final = "keep-zero"
INLINE: Final = "inline"


@dataclass(frozen=True, slots=True)
class MapOf:
    """``map<string, value>``; the value is a scalar, special or message type."""

    value: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One compiled table entry."""

    number: int
    json_name: str
    type: str | MapOf
    repeated: bool = False
    keep_zero: bool = False
    inline: bool = False


#: One message table: field number -> (jsonName, type, *flags).
Table = Mapping[int, tuple[Any, ...]]

#: (apiVersion, kind) of a top-level object -> its message table.
KINDS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(dict(generated_tables.KINDS))

#: meta.k8s.io kinds registered into every group version (client-go sends a
#: DeleteOptions body tagged with the target resource's apiVersion, e.g. "v1").
AnyVersionKinds: Final[Mapping[str, str]] = MappingProxyType(dict(generated_tables.ANY_VERSION_KINDS))


def _compile_field(number: int, entry: tuple[Any, ...]) -> FieldSpec:
    json_name, type_, *flags = entry
    if isinstance(type_, tuple):  # ("map", value type)
        type_ = MapOf(type_[1])
    unknown = set(flags) - {REP, KEEP, INLINE}
    if unknown:
        raise ValueError(f"field {number} ({json_name}): unknown flags {sorted(unknown)}")
    return FieldSpec(
        number=number,
        json_name=json_name,
        type=type_,
        repeated=REP in flags,
        keep_zero=KEEP in flags,
        inline=INLINE in flags,
    )


def _compile(tables: Mapping[str, Table]) -> dict[str, dict[int, FieldSpec]]:
    return {
        name: {number: _compile_field(number, entry) for number, entry in table.items()}
        for name, table in tables.items()
    }


#: Compiled tables: message name -> field number -> FieldSpec.
MESSAGES: Final[Mapping[str, Mapping[int, FieldSpec]]] = MappingProxyType(_compile(generated_tables.TABLES))


def compiled(name: str) -> Mapping[int, FieldSpec]:
    """The compiled table for message ``name`` (KeyError if it is not tabled)."""
    return MESSAGES[name]
