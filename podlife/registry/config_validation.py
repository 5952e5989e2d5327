"""Validation of ConfigMaps and Secrets, as Kubernetes' ``ValidateConfigMap`` and ``ValidateSecret``.

What it reads: the object after defaulting (a Secret's ``stringData`` is already merged
into ``data`` as base64, its ``type`` defaulted to ``Opaque``) and, on update, the stored
one. What it writes: field errors for the strategies of :mod:`podlife.registry.core`.
Why: kubelets mount these as files and environment; a key that is not a file name, a
TLS secret without its key, or a change to an ``immutable`` object would break pods that
already use them.

Kubernetes facts followed (``pkg/apis/core/validation/validation.go``: ``ValidateConfigMap``,
``ValidateConfigMapUpdate``, ``ValidateSecret``, ``ValidateSecretUpdate``;
``k8s.io/apimachinery/pkg/util/validation`` ``IsConfigMapKey``):

* keys match ``[-._a-zA-Z0-9]+``, at most 253 characters, not ``.``/``..`` nor starting
  with ``..``; a ConfigMap key may not be in both ``data`` and ``binaryData``;
* the total size is at most 1 MiB (``[]: Too long`` for a ConfigMap -- Kubernetes names
  the whole object with an empty path, which prints as ``[]`` -- and ``data: Too long``
  for a Secret);
* once ``immutable: true`` the flag, ``data`` and ``binaryData`` are frozen
  ("field is immutable when `immutable` is set"); a Secret's ``type`` never changes;
* type rules: ``kubernetes.io/service-account-token`` needs the
  ``kubernetes.io/service-account.name`` annotation, ``kubernetes.io/dockercfg`` and
  ``kubernetes.io/dockerconfigjson`` their key holding JSON, ``kubernetes.io/basic-auth``
  a username or password, ``kubernetes.io/ssh-auth`` a non-empty ``ssh-privatekey``,
  ``kubernetes.io/tls`` both ``tls.crt`` and ``tls.key``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ..machinery.names import regex_error
from .field_rules import too_long
from .types import FieldError, Obj, forbidden, invalid, required

MAX_SIZE = 1024 * 1024
_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_KEY_MESSAGE = regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                           "[-._a-zA-Z0-9]+", "key.name", "KEY_NAME", "key-name")
_IMMUTABLE = "field is immutable when `immutable` is set"
_REDACTED = "<secret contents redacted>"


def config_key_errors(key: str) -> list[str]:
    """``IsConfigMapKey``."""
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _KEY_RE.match(key):
        errs.append(_KEY_MESSAGE)
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _map(obj: Obj, key: str, errs: list[FieldError]) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errs.append(invalid(key, value, "must be a map"))
        return {}
    return value


# --------------------------------------------------------------------------- ConfigMap


def validate_config_map(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    data, binary = _map(obj, "data", errs), _map(obj, "binaryData", errs)
    total = 0
    for key, value in data.items():
        errs += [invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
        if key in binary:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        if not isinstance(value, str):
            errs.append(invalid(f"data[{key}]", value, "must be a string"))
        else:
            total += len(value.encode())
    for key, value in binary.items():
        errs += [invalid(f"binaryData[{key}]", key, m) for m in config_key_errors(key)]
        if key in data:
            errs.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        total += len(_decoded(value) or b"")
    if total > MAX_SIZE:
        errs.append(too_long("[]", MAX_SIZE))  # field.NewPath("") prints as "[]"
    return errs


def validate_config_map_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = _frozen(new, old, ("data", "binaryData"))
    return errs + validate_config_map(new)


def _frozen(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs = []
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", _IMMUTABLE))
    for key in fields:
        if (new.get(key) or None) != (old.get(key) or None):
            errs.append(forbidden(key, _IMMUTABLE))
    return errs


# --------------------------------------------------------------------------- Secret


def _decoded(value: Any) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return None


def validate_secret(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    data = _map(obj, "data", errs)
    decoded: dict[str, bytes] = {}
    total = 0
    for key, value in data.items():
        errs += [invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
        raw = _decoded(value)
        if raw is None:
            errs.append(invalid(f"data[{key}]", _REDACTED, "illegal base64 data"))
            continue
        decoded[key] = raw
        total += len(raw)
    if total > MAX_SIZE:
        errs.append(too_long("data", MAX_SIZE))
    errs += _type_rules(obj, decoded)
    return errs


def _type_rules(obj: Obj, data: dict[str, bytes]) -> list[FieldError]:
    kind = obj.get("type")
    if kind == "kubernetes.io/service-account-token":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        problem = _json_object_error(data[key])
        if problem is not None:
            return [invalid(f"data[{key}]", _REDACTED, problem)]
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            return [required("data[ssh-privatekey]")]
    elif kind == "kubernetes.io/tls":
        return [required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return []


def _json_object_error(raw: bytes) -> str | None:
    """Roughly Go's ``json.Unmarshal`` into a map: its message for the common failures."""
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        return "unexpected end of JSON input"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        bad = text[err.pos]
        where = "looking for beginning of value" if err.pos == len(text) - len(text.lstrip()) else "after top-level value" \
            if err.msg.startswith("Extra data") else "looking for beginning of object key string"
        return f"invalid character {_go_char(bad)} {where}"
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(value), "number")
        if kind == "null":
            return None
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return None


def _go_char(ch: str) -> str:
    return "'\\''" if ch == "'" else f"'{ch}'"


def validate_secret_update(new: Obj, old: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    if new.get("type") != old.get("type"):
        errs.append(invalid("type", new.get("type") or "", "field is immutable"))
    errs += _frozen(new, old, ("data",))
    return errs + validate_secret(new)
