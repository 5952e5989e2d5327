"""Decode Kubernetes protobuf request bodies into the JSON-shaped dicts the server uses.

Design: a table-driven decoder.  The wire reader (:mod:`.wire`) splits a message into
``(field number, wire type, value)`` triples; a declarative table per message
(:mod:`.messages`, generated from Kubernetes' published ``generated.proto`` files by
``scripts/gen_protobuf_tables.py``) names each field's JSON key, its type and whether it
is repeated, a map, inlined or "keep zero"; this module
walks the tables recursively and builds exactly the dict that Go's ``encoding/json``
would have produced for the same object.  Everything downstream (validation, defaulting,
storage, watch) therefore sees one representation, whichever encoding the client used.

Why: kubectl's typed clientset (1.30 to 1.37) sends ``Content-Type:
application/vnd.kubernetes.protobuf`` for ``create namespace|configmap|secret|
deployment|service|...``, ``create token``, ``auth can-i``, ``auth whoami`` and the
DELETE that ``drain`` issues, and it does not retry with JSON after a 415.  We only ever
*read* protobuf (responses stay JSON, which kubectl accepts), and only a few dozen
messages, so a small interpreter over generated field tables is cheaper to own than
generated classes and a dependency on the ``protobuf`` runtime.

The envelope is four magic bytes ``k8s\\x00`` followed by a ``runtime.Unknown``::

    Unknown { 1: TypeMeta{1: apiVersion, 2: kind}, 2: raw (the object message),
              3: contentEncoding, 4: contentType }

Mapping rules (each mirrors what the Go types do when re-encoded as JSON):

* gogo-protobuf writes every non-pointer field, even when zero.  A scalar zero on the
  wire is therefore dropped, as ``omitempty`` would, unless the table marks the field
  ``KEEP`` (Go pointers such as ``replicas``/``optional``, and tags without
  ``omitempty``).  Repeated elements and map values are always kept (``apiGroups: [""]``).
* Nested messages present on the wire become objects even when empty (``"spec": {}``,
  ``"resources": {}``), like Go's always-emitted struct fields.
* ``Time`` is seconds since the epoch -> ``"2026-01-01T00:00:00Z"`` (nanos dropped, as
  the apiserver does); an empty ``Time`` is ``null`` (``"creationTimestamp": null``).
  ``MicroTime`` keeps microseconds.  ``Quantity`` is its ``string`` field;
  ``IntOrString`` becomes a bare int or string; ``bytes`` become base64 (Secret
  ``data``); ``RawExtension``/``FieldsV1`` carry embedded JSON (or a nested envelope).
* A field number missing from a table is ignored when its value is empty (newer clients
  add fields gogo then writes as zero) and rejected with :class:`ProtobufError`
  otherwise, so an unsupported field is reported instead of silently dropped.

Errors: malformed input raises :class:`ProtobufError` (a ``ValueError``; answer 400
BadRequest); a well-formed envelope naming a kind without a table raises its subclass
:class:`UnsupportedKindError` (answer 415 UnsupportedMediaType).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from .messages import (
    BOOL,
    BYTES,
    FIELDSV1,
    I32,
    I64,
    INTORSTR,
    KINDS,
    MICROTIME,
    QUANTITY,
    RAWEXT,
    SCALARS,
    STR,
    STRLIST,
    TIME,
    AnyVersionKinds,
    FieldSpec,
    MapOf,
    compiled,
)
from .wire import (
    LENGTH_DELIMITED,
    VARINT,
    ProtobufError,
    RawField,
    UnsupportedKindError,
    is_empty,
    iter_fields,
    to_int32,
    to_int64,
    unpack_varints,
)

__all__ = [
    "MAGIC",
    "PROTOBUF_CONTENT_TYPE",
    "ProtobufError",
    "UnsupportedKindError",
    "decode_k8s_protobuf",
    "decode_object",
    "is_k8s_protobuf",
    "message_for",
    "supported_kinds",
]

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

JSON = Any  # a JSON-compatible value: dict, list, str, int, bool or None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALAR_ZERO: dict[str, JSON] = {STR: "", BYTES: "", BOOL: False, I32: 0, I64: 0}
_VARINT_TYPES = frozenset({BOOL, I32, I64})


# --------------------------------------------------------------------------- public API


def is_k8s_protobuf(body: bytes) -> bool:
    """True if ``body`` starts with the Kubernetes protobuf magic prefix ``k8s\\x00``."""
    return body[: len(MAGIC)] == MAGIC


def decode_k8s_protobuf(body: bytes) -> dict[str, JSON]:
    """Decode a ``k8s\\x00``-prefixed protobuf body into Kubernetes JSON.

    Returns the object as a dict with ``apiVersion`` and ``kind`` taken from the
    envelope.  Raises :class:`ProtobufError` for malformed input and
    :class:`UnsupportedKindError` for kinds without a field table.
    """
    api_version, kind, raw = _read_envelope(body)
    return decode_object(raw, api_version, kind)


def decode_object(raw: bytes, api_version: str, kind: str) -> dict[str, JSON]:
    """Decode a bare object message (an envelope's ``raw``) of the given type."""
    message = message_for(api_version, kind)
    return {"apiVersion": api_version, "kind": kind, **_decode_message(raw, message, kind)}


def message_for(api_version: str, kind: str) -> str:
    """The field-table name for ``apiVersion``/``kind``, or :class:`UnsupportedKindError`."""
    message = KINDS.get((api_version, kind)) or AnyVersionKinds.get(kind)
    if message is None:
        raise UnsupportedKindError(
            f"protobuf decoding is not supported for {kind!r} in {api_version!r}; send JSON instead"
        )
    return message


def supported_kinds() -> list[tuple[str, str]]:
    """The ``(apiVersion, kind)`` pairs this decoder accepts (DeleteOptions: any version)."""
    return sorted(KINDS) + [("*", kind) for kind in sorted(AnyVersionKinds)]


# --------------------------------------------------------------------------- envelope


def _read_envelope(body: bytes) -> tuple[str, str, bytes]:
    if not is_k8s_protobuf(body):
        raise ProtobufError("body is not Kubernetes protobuf: missing the 'k8s\\x00' prefix")
    unknown = _fields_by_number(body[len(MAGIC) :], "runtime.Unknown")
    type_meta = _fields_by_number(_bytes_of(unknown.get(1), "typeMeta"), "runtime.TypeMeta")
    api_version = _text(_bytes_of(type_meta.get(1), "typeMeta.apiVersion"), "typeMeta.apiVersion")
    kind = _text(_bytes_of(type_meta.get(2), "typeMeta.kind"), "typeMeta.kind")
    encoding = _text(_bytes_of(unknown.get(3), "contentEncoding"), "contentEncoding")
    if not kind or not api_version:
        raise ProtobufError("protobuf envelope has no apiVersion/kind in its TypeMeta")
    if encoding:
        raise ProtobufError(f"unsupported protobuf contentEncoding {encoding!r}")
    return api_version, kind, _bytes_of(unknown.get(2), "raw")


def _fields_by_number(data: bytes, path: str) -> dict[int, RawField]:
    """Index a small message's fields by number (last occurrence wins, as in proto)."""
    return {field.number: field for field in _fields(data, path)}


def _bytes_of(field: RawField | None, path: str) -> bytes:
    if field is None:
        return b""
    if field.wire_type != LENGTH_DELIMITED:
        raise ProtobufError(f"{path}: expected a length-delimited field, got wire type {field.wire_type}")
    assert isinstance(field.value, bytes)
    return field.value


def _varint_of(field: RawField | None, path: str) -> int:
    if field is None:
        return 0
    if field.wire_type != VARINT:
        raise ProtobufError(f"{path}: expected a varint field, got wire type {field.wire_type}")
    assert isinstance(field.value, int)
    return field.value


def _text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufError(f"{path}: string is not valid UTF-8") from exc


def _fields(data: bytes, path: str) -> Iterator[RawField]:
    """``iter_fields`` with the JSON path of the message added to wire errors."""
    try:
        yield from iter_fields(data)
    except ProtobufError as exc:
        raise ProtobufError(f"{path or '<object>'}: {exc}") from exc


# --------------------------------------------------------------------------- messages


def _decode_message(data: bytes, message: str, path: str) -> dict[str, JSON]:
    table = compiled(message)
    out: dict[str, JSON] = {}
    for field in _fields(data, path):
        spec = table.get(field.number)
        if spec is None:
            _reject_unknown(field, message, path)
        else:
            _apply(out, spec, field, f"{path}.{spec.json_name}")
    return out


def _reject_unknown(field: RawField, message: str, path: str) -> None:
    if not is_empty(field):
        raise ProtobufError(f"{path}: field number {field.number} of {message} is not supported by this decoder")


def _apply(out: dict[str, JSON], spec: FieldSpec, field: RawField, path: str) -> None:
    if spec.inline:
        assert isinstance(spec.type, str)
        out.update(_decode_message(_bytes_of(field, path), spec.type, path))
    elif isinstance(spec.type, MapOf):
        key, value = _decode_map_entry(_bytes_of(field, path), spec.type.value, path)
        out.setdefault(spec.json_name, {})[key] = value
    elif spec.repeated:
        items = out.setdefault(spec.json_name, [])
        items.extend(_decode_repeated(field, spec.type, f"{path}[{len(items)}]"))
    else:
        _set_singular(out, spec, _decode_value(field, spec.type, path))


def _set_singular(out: dict[str, JSON], spec: FieldSpec, value: JSON) -> None:
    """Store a singular value, dropping gogo's always-written zero unless KEEP."""
    name = spec.json_name
    if spec.type in SCALARS and value == _SCALAR_ZERO[spec.type] and not spec.keep_zero:
        out.pop(name, None)  # a later zero overrides an earlier value, as in proto
    elif isinstance(value, dict) and isinstance(out.get(name), dict):
        out[name].update(value)  # repeated occurrences of a message merge
    else:
        out[name] = value


def _decode_repeated(field: RawField, type_: str, path: str) -> list[JSON]:
    if type_ in _VARINT_TYPES and field.wire_type == LENGTH_DELIMITED:
        assert isinstance(field.value, bytes)
        return [_convert_varint(value, type_) for value in unpack_varints(field.value)]
    return [_decode_value(field, type_, path)]


def _decode_map_entry(data: bytes, value_type: str, path: str) -> tuple[str, JSON]:
    entry = _fields_by_number(data, path)
    key = _text(_bytes_of(entry.get(1), path), path)
    value_field = entry.get(2)
    if value_field is None:
        return key, _default_value(value_type, f"{path}[{key!r}]")
    return key, _decode_value(value_field, value_type, f"{path}[{key!r}]")


def _default_value(type_: str, path: str) -> JSON:
    """The value of an absent map value: the type's zero, as Go would decode it."""
    if type_ in SCALARS:
        return _SCALAR_ZERO[type_]
    return _decode_value(RawField(2, LENGTH_DELIMITED, b""), type_, path)


# --------------------------------------------------------------------------- values


def _decode_value(field: RawField, type_: str, path: str) -> JSON:
    if type_ in _VARINT_TYPES:
        return _convert_varint(_varint_of(field, path), type_)
    data = _bytes_of(field, path)
    if type_ == STR:
        return _text(data, path)
    if type_ == BYTES:
        return base64.b64encode(data).decode("ascii")
    special = _SPECIAL_DECODERS.get(type_)
    if special is not None:
        return special(data, path)
    return _decode_message(data, type_, path)


def _convert_varint(value: int, type_: str) -> JSON:
    if type_ == BOOL:
        return value != 0
    if type_ == I32:
        return to_int32(value)
    return to_int64(value)


def _time(data: bytes, path: str) -> str | None:
    """metav1.Time: whole seconds in UTC; an empty message is the zero time (null)."""
    if not data:
        return None
    fields = _fields_by_number(data, path)
    return _format_time(to_int64(_varint_of(fields.get(1), path)), 0, path)


def _micro_time(data: bytes, path: str) -> str | None:
    """metav1.MicroTime: like Time but with microsecond precision."""
    if not data:
        return None
    fields = _fields_by_number(data, path)
    seconds = to_int64(_varint_of(fields.get(1), path))
    nanos = to_int32(_varint_of(fields.get(2), path))
    return _format_time(seconds, nanos // 1000, path)


def _format_time(seconds: int, micros: int, path: str) -> str:
    try:
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=micros)
    except OverflowError as exc:
        raise ProtobufError(f"{path}: timestamp {seconds} is out of range") from exc
    if micros:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(data: bytes, path: str) -> str:
    """resource.Quantity is carried as its canonical string; absent means zero."""
    field = _fields_by_number(data, path).get(1)
    if field is None:
        return "0"
    text = _text(_bytes_of(field, path), path)
    if not text:
        raise ProtobufError(f"{path}: empty quantity")
    return text


def _int_or_string(data: bytes, path: str) -> int | str:
    """intstr.IntOrString {1: type (0 int, 1 string), 2: intVal, 3: strVal}."""
    fields = _fields_by_number(data, path)
    if _varint_of(fields.get(1), path) == 1:
        return _text(_bytes_of(fields.get(3), path), path)
    return to_int32(_varint_of(fields.get(2), path))


def _raw_extension(data: bytes, path: str) -> JSON:
    """runtime.RawExtension / FieldsV1 {1: raw}: embedded JSON or a nested envelope."""
    raw = _bytes_of(_fields_by_number(data, path).get(1), path)
    if not raw:
        return None
    if is_k8s_protobuf(raw):
        return decode_k8s_protobuf(raw)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtobufError(f"{path}: embedded object is neither JSON nor Kubernetes protobuf") from exc


def _string_list(data: bytes, path: str) -> list[str]:
    """ExtraValue / Verbs {repeated string items = 1} is a plain JSON list."""
    return [_text(_bytes_of(field, path), path) for field in _fields(data, path) if field.number == 1]


_SPECIAL_DECODERS = {
    TIME: _time,
    MICROTIME: _micro_time,
    QUANTITY: _quantity,
    INTORSTR: _int_or_string,
    RAWEXT: _raw_extension,
    FIELDSV1: _raw_extension,
    STRLIST: _string_list,
}
