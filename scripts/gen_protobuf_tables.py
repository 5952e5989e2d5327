#!/usr/bin/env python3
"""Generate ``podlife/api/protobuf/generated_tables.py`` from Kubernetes' ``generated.proto`` files.

Why a generator: the protobuf decoder (:mod:`podlife.api.protobuf`) needs, for every
message reachable from the kinds kubectl sends as protobuf, each field's number, JSON
name, type, and whether it is repeated, a map, inlined or "zero kept".  Numbers, names
and types are facts of the published ``.proto`` files, so they are read from them
rather than typed by hand; a new Kubernetes release is followed by refreshing the
inputs and running this script.

Inputs (all in the repository, so the test suite can regenerate and compare):

* ``podlife/api/protobuf/proto/k8s.io/.../generated.proto`` -- the declarations of the
  published files (k8s.io/api, k8s.io/apimachinery) for the messages podlife decodes,
  comments dropped.  A small proto2 parser reads them (messages, ``optional``/
  ``repeated`` fields, ``map<string, V>``); nothing else of proto syntax is needed.
* ``podlife/api/protobuf/proto/zero_kept.txt`` -- the fields whose zero value survives
  (``alias.Message.protoName``, one a line).  The ``.proto`` files do not carry Go's
  JSON omission rules: gogo-protobuf writes every non-pointer field, so a zero on the
  wire usually means "unset"; Go pointers (``*int32 replicas``) and tags without
  ``omitempty`` are the exceptions, and this list names them (taken from the Go types).
* The Kubernetes OpenAPI definitions (:mod:`podlife.registry.schemas.loader`), which give the
  JSON names where they differ from the proto names (``uID`` is ``uid``) and tell
  embedded Go structs apart: a message-typed field whose name is not a property of its
  message's definition, while the embedded message's fields are, is inlined
  (``Probe.handler``, ``Volume.volumeSource``, ``*.localObjectReference``).

Output: a Python module holding ``KINDS`` (``(apiVersion, kind)`` -> message) and
``TABLES`` (message -> field number -> ``(jsonName, type, *flags)``), in the format
:mod:`podlife.api.protobuf.messages` compiles.  Message names are ``alias.Message``
(``core.Pod``, ``meta.ObjectMeta``); the few messages with a JSON form of their own
(``Time``, ``Quantity``, ``IntOrString``, ...) become the decoder's special types.

Usage::

    .venv/bin/python scripts/gen_protobuf_tables.py            # rewrite the module
    .venv/bin/python scripts/gen_protobuf_tables.py --check    # exit 1 if it is stale
    .venv/bin/python scripts/gen_protobuf_tables.py --output DIR/tables.py
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO / "podlife" / "api" / "protobuf" / "proto"
ZERO_KEPT = PROTO_DIR / "zero_kept.txt"
OUTPUT = REPO / "podlife" / "api" / "protobuf" / "generated_tables.py"

#: The kinds kubectl's typed clients write as protobuf (create, auth, token, drain, scale).
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
    ("v1", "ServiceAccount"), ("v1", "Pod"), ("v1", "PodTemplate"), ("v1", "ResourceQuota"),
    ("v1", "Event"),
    ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("apps/v1", "DaemonSet"),
    ("apps/v1", "ControllerRevision"),
    ("batch/v1", "Job"), ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("policy/v1", "PodDisruptionBudget"), ("policy/v1", "Eviction"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("authentication.k8s.io/v1", "TokenRequest"), ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"), ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"), ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("autoscaling/v1", "Scale"), ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
)
#: Messages registered in every group-version (client-go tags DeleteOptions with the target's version).
ANY_VERSION_KINDS: tuple[tuple[str, str], ...] = (("DeleteOptions", "meta.DeleteOptions"),)

#: Short names of the proto packages, used in message names (``core.Pod``).
ALIASES: dict[str, str] = {
    "k8s.io.api.core.v1": "core",
    "k8s.io.api.apps.v1": "apps",
    "k8s.io.api.batch.v1": "batch",
    "k8s.io.api.rbac.v1": "rbac",
    "k8s.io.api.policy.v1": "policy",
    "k8s.io.api.scheduling.v1": "scheduling",
    "k8s.io.api.authentication.v1": "authn",
    "k8s.io.api.authorization.v1": "authz",
    "k8s.io.api.autoscaling.v1": "autoscaling",
    "k8s.io.api.certificates.v1": "certificates",
    "k8s.io.apimachinery.pkg.apis.meta.v1": "meta",
    "k8s.io.apimachinery.pkg.api.resource": "resource",
    "k8s.io.apimachinery.pkg.util.intstr": "intstr",
    "k8s.io.apimachinery.pkg.runtime": "runtime",
}
#: Messages with a JSON form of their own -> the decoder's special type names.
SPECIALS: dict[str, str] = {
    "meta.Time": "@Time",
    "meta.MicroTime": "@MicroTime",
    "meta.FieldsV1": "@FieldsV1",
    "resource.Quantity": "@Quantity",
    "intstr.IntOrString": "@IntOrString",
    "runtime.RawExtension": "@RawExtension",
    "authn.ExtraValue": "@StringList",
    "authz.ExtraValue": "@StringList",
    "certificates.ExtraValue": "@StringList",
}
SCALARS = frozenset({"string", "bytes", "bool", "int32", "int64"})
REPEATED, KEEP, INLINE = "repeated", "keep-zero", "inline"


# --------------------------------------------------------------------------- parsing


@dataclass
class ProtoField:
    label: str          # "optional", "repeated" or "map"
    type: str           # as written (map: the value type)
    name: str
    number: int


@dataclass
class ProtoMessage:
    package: str
    name: str
    fields: list[ProtoField] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{ALIASES[self.package]}.{self.name}"


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)
_MESSAGE = re.compile(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}")
_FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;\s*$")
_MAP_FIELD = re.compile(r"^\s*map\s*<\s*string\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;\s*$")


def parse_proto(text: str, origin: str) -> list[ProtoMessage]:
    """The messages of one proto2 file (no nested messages, enums or options, as in Kubernetes')."""
    text = _COMMENT.sub("", text)
    package = _PACKAGE.search(text)
    if package is None:
        raise SystemExit(f"{origin}: no package statement")
    messages = []
    for match in _MESSAGE.finditer(text):
        message = ProtoMessage(package.group(1), match.group(1))
        for line in filter(str.strip, match.group(2).splitlines()):
            if plain := _FIELD.match(line):
                label, type_, name, number = plain.groups()
            elif mapped := _MAP_FIELD.match(line):
                label, (type_, name, number) = "map", mapped.groups()
            else:
                raise SystemExit(f"{origin}: message {message.name}: cannot parse {line.strip()!r}")
            message.fields.append(ProtoField(label, type_, name, int(number)))
        messages.append(message)
    return messages


def load_messages(proto_dir: Path) -> dict[str, ProtoMessage]:
    """Every message of every ``generated.proto`` under ``proto_dir``, by qualified name."""
    out: dict[str, ProtoMessage] = {}
    for path in sorted(proto_dir.rglob("*.proto")):
        for message in parse_proto(path.read_text(), str(path.relative_to(proto_dir))):
            out[message.qualified] = message
    return out


def load_zero_kept(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


# --------------------------------------------------------------------------- resolving


def resolve_type(type_: str, package: str) -> str:
    """A field's type as the tables name it: a scalar, a special, or ``alias.Message``."""
    if type_ in SCALARS:
        return type_
    full = type_.lstrip(".")
    if "." in full:
        pkg, _, name = full.rpartition(".")
    else:
        pkg, name = package, full
    if pkg not in ALIASES:
        raise SystemExit(f"type {type_!r}: package {pkg!r} has no alias")
    qualified = f"{ALIASES[pkg]}.{name}"
    return SPECIALS.get(qualified, qualified)


def openapi_name(qualified: str) -> str:
    """``core.Pod`` -> ``io.k8s.api.core.v1.Pod`` (the OpenAPI definition name)."""
    alias, name = qualified.split(".", 1)
    package = next(p for p, a in ALIASES.items() if a == alias)
    return "io.k8s." + package[len("k8s.io."):] + "." + name


def json_properties(qualified: str, definitions: Mapping[str, Any]) -> set[str] | None:
    schema = definitions.get(openapi_name(qualified))
    return None if schema is None else set(schema.get("properties") or ())


class TableBuilder:
    """Turns the parsed messages into tables, following references from the roots."""

    def __init__(self, messages: Mapping[str, ProtoMessage], zero_kept: set[str],
                 definitions: Mapping[str, Any]) -> None:
        self.messages = messages
        self.zero_kept = zero_kept
        self.definitions = definitions
        self.tables: dict[str, dict[int, tuple[Any, ...]]] = {}
        self.used_zero_kept: set[str] = set()

    def build(self, roots: Iterable[str]) -> dict[str, dict[int, tuple[Any, ...]]]:
        pending = list(roots)
        while pending:
            name = pending.pop()
            if name in self.tables or name.startswith("@"):
                continue
            if name not in self.messages:
                raise SystemExit(f"message {name} is referenced but not in the .proto inputs")
            self.tables[name] = table = self._table(self.messages[name])
            pending.extend(self._referenced(table))
        unused = self.zero_kept - self.used_zero_kept
        if unused:
            raise SystemExit(f"zero_kept.txt names fields that do not exist: {sorted(unused)}")
        return dict(sorted(self.tables.items()))

    @staticmethod
    def _referenced(table: Mapping[int, tuple[Any, ...]]) -> Iterable[str]:
        for entry in table.values():
            type_ = entry[1]
            target = type_[1] if isinstance(type_, tuple) else type_
            if target not in SCALARS:
                yield target

    def _table(self, message: ProtoMessage) -> dict[int, tuple[Any, ...]]:
        properties = json_properties(message.qualified, self.definitions)
        table: dict[int, tuple[Any, ...]] = {}
        for f in message.fields:
            type_ = resolve_type(f.type, message.package)
            flags: list[str] = []
            json_name = f.name
            if properties is not None and f.name not in properties:
                json_name = self._json_name(message, f, type_, properties, flags)
            if f.label == "repeated":
                flags.append(REPEATED)
            key = f"{message.qualified}.{f.name}"
            if key in self.zero_kept:
                flags.append(KEEP)
                self.used_zero_kept.add(key)
            table[f.number] = (json_name, ("map", type_) if f.label == "map" else type_, *flags)
        return table

    def _json_name(self, message: ProtoMessage, f: ProtoField, type_: str, properties: set[str],
                   flags: list[str]) -> str:
        """The JSON name of a field the OpenAPI definition does not list under its proto name."""
        folded = {p.lower(): p for p in properties}
        if f.name.lower() in folded:
            return folded[f.name.lower()]        # uID -> uid
        embedded = self.messages.get(type_)
        if embedded is not None and f.label == "optional" and any(
                g.name in properties for g in embedded.fields):
            flags.append(INLINE)                 # a Go struct embedded with json:",inline"
            return f.name
        return f.name                            # not in this release's OpenAPI: keep the proto name


# --------------------------------------------------------------------------- output


def kinds_table(messages: Mapping[str, ProtoMessage]) -> dict[tuple[str, str], str]:
    out = {}
    for api_version, kind in KINDS:
        group, _, version = api_version.rpartition("/")
        alias = {"": "core", "rbac.authorization.k8s.io": "rbac", "scheduling.k8s.io": "scheduling",
                 "authentication.k8s.io": "authn", "authorization.k8s.io": "authz",
                 "certificates.k8s.io": "certificates"}.get(group, group)
        name = f"{alias}.{kind}"
        if name not in messages:
            raise SystemExit(f"{api_version} {kind}: no message {name} in the .proto inputs")
        out[(api_version, kind)] = name
    return out


def render(kinds: Mapping[tuple[str, str], str], tables: Mapping[str, Mapping[int, tuple[Any, ...]]],
           sources: Iterable[str]) -> str:
    lines = [
        '"""Protobuf field tables of the Kubernetes messages podlife decodes.  GENERATED: do not edit.',
        "",
        "Made by ``scripts/gen_protobuf_tables.py`` from these inputs (rerun it after changing them;",
        "``tests/test_protobuf.py`` fails while this module is out of step):",
        "",
        *(f"* ``{s}``" for s in sources),
        "* ``podlife/api/protobuf/proto/zero_kept.txt`` and the OpenAPI definitions of",
        "  :mod:`podlife.registry.schemas.loader` (JSON names, inlined structs).",
        "",
        "``TABLES[message][number]`` is ``(jsonName, type, *flags)``; see :mod:`podlife.api.protobuf.messages`.",
        '"""',
        "",
        "from typing import Any",
        "",
        "KINDS: dict[tuple[str, str], str] = {",
        *(f"    {key!r}: {value!r}," for key, value in kinds.items()),
        "}",
        "",
        f"ANY_VERSION_KINDS: dict[str, str] = {dict(ANY_VERSION_KINDS)!r}",
        "",
        "TABLES: dict[str, dict[int, tuple[Any, ...]]] = {",
    ]
    for name, table in tables.items():
        lines.append(f"    {name!r}: {{")
        lines.extend(f"        {number}: {entry!r}," for number, entry in table.items())
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(proto_dir: Path = PROTO_DIR, zero_kept: Path = ZERO_KEPT) -> str:
    sys.path.insert(0, str(REPO))
    from podlife.registry.schemas.loader import definitions  # the OpenAPI definitions podlife serves

    messages = load_messages(proto_dir)
    kinds = kinds_table(messages)
    roots = [*kinds.values(), *(name for _, name in ANY_VERSION_KINDS)]
    tables = TableBuilder(messages, load_zero_kept(zero_kept), definitions()).build(roots)
    sources = [str(p.relative_to(REPO)) for p in sorted(proto_dir.rglob("*.proto"))]
    return render(kinds, tables, sources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the module")
    parser.add_argument("--check", action="store_true", help="only report whether the module is in step")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of step with its inputs; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
