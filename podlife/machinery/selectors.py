"""Kubernetes label selectors and field selectors: parse, validate, match, format.

Design: a selector is an immutable value (a frozen dataclass holding a tuple
of requirements) produced once per request or per watch and then matched
against many objects, so parsing does all the work up front: keys and values
are validated, ``in`` value sets are sorted and de-duplicated, requirements
are ordered by key.  Matching is then a short loop of dict look-ups, and two
selectors that mean the same thing compare (and hash) equal, so caches can key
on them.

Why mirror Kubernetes so closely: ``kubectl``, client-go informers and Python
clients send selectors as strings (``?labelSelector=`` and
``?fieldSelector=``) and show the server's error text to users, and
controllers post ``metav1.LabelSelector`` objects (Deployments, Services,
PodDisruptionBudgets).  The grammar, the accepted edge cases (``x in (,a)``,
``a=`` ...) and the error messages therefore follow
``k8s.io/apimachinery`` (``pkg/labels``, ``pkg/fields``, ``pkg/util/validation``)
as of Kubernetes 1.32, reimplemented here.

Label selector grammar (whitespace between tokens is ignored)::

    selector    := requirement ("," requirement)*
    requirement := ["!"] KEY
                 | KEY ("=" | "==" | "!=" | ">" | "<") VALUE
                 | KEY ("in" | "notin") "(" [VALUE ("," VALUE)*] ")"

Field selectors are simpler: comma-separated ``field=value``, ``field==value``
or ``field!=value`` terms; ``\\``, ``,`` and ``=`` inside values are escaped with
a backslash (see :func:`escape_field_value`).  Field names are not checked here;
which fields are selectable is the resource's business.

Fast paths for the store and cacher: :meth:`LabelSelector.equality_terms` lists
the ``key=value`` requirements an index can serve, and
:meth:`FieldSelector.exact` gives the value a selector pins a field to (for
example ``spec.nodeName`` for a kubelet's pod watch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .names import label_value_errors, qualified_name_errors

__all__ = [
    "SelectorError",
    "Requirement",
    "LabelSelector",
    "EVERYTHING",
    "NOTHING",
    "new_requirement",
    "parse_label_selector",
    "label_selector_from_dict",
    "label_selector_from_set",
    "format_label_selector",
    "FieldRequirement",
    "FieldSelector",
    "parse_field_selector",
    "field_selector_from_set",
    "escape_field_value",
    "unescape_field_value",
    "IN",
    "NOT_IN",
    "EQUALS",
    "DOUBLE_EQUALS",
    "NOT_EQUALS",
    "EXISTS",
    "DOES_NOT_EXIST",
    "GREATER_THAN",
    "LESS_THAN",
]


class SelectorError(ValueError):
    """A selector could not be parsed or is invalid; ``str(err)`` is the Kubernetes-style message."""


# ---------------------------------------------------------------------------
# Go-style error rendering (field.Error / utilerrors.Aggregate)
# ---------------------------------------------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _go_quote(text: str) -> str:
    """Render a string the way Go's ``%q`` does (close enough for messages)."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


go_quote = _go_quote  # Go's %q, for messages elsewhere that quote a value as Kubernetes does


def _go_strings(values: Sequence[str]) -> str:
    """Render a ``[]string`` the way Go's ``%#v`` does."""
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _invalid(path: str, rendered_value: str, detail: str) -> str:
    return f"{path}: Invalid value: {rendered_value}: {detail}"


def _aggregate(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---------------------------------------------------------------------------
# Label requirements and selectors
# ---------------------------------------------------------------------------

# Operator spellings are those of k8s.io/apimachinery/pkg/selection.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_ALL_OPERATORS = _BINARY_OPERATORS + (EXISTS, DOES_NOT_EXIST)
_EXACT = frozenset((EQUALS, DOUBLE_EQUALS))
_INFIX = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", GREATER_THAN: ">",
          LESS_THAN: "<", IN: " in ", NOT_IN: " notin "}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_GO_INT = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    """Parse like Go's ``strconv.ParseInt(text, 10, 64)``; ``None`` on failure."""
    if not _GO_INT.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


@dataclass(frozen=True)
class Requirement:
    """One ``key <operator> values`` clause; values are kept sorted and unique.

    Build validated requirements with :func:`new_requirement`; the constructor
    itself only normalises.
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = self.values
        if len(values) > 1 or not isinstance(values, tuple):
            object.__setattr__(self, "values", tuple(sorted(set(values))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes semantics)."""
        op, key = self.operator, self.key
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return key in labels and labels[key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return key not in labels or labels[key] not in self.values
        if op == EXISTS:
            return key in labels
        if op == DOES_NOT_EXIST:
            return key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            return self._compare(labels)
        return False

    def _compare(self, labels: Mapping[str, str]) -> bool:
        if self.key not in labels or len(self.values) != 1:
            return False
        have = _parse_int64(labels[self.key])
        want = _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if self.operator == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if self.operator in (IN, NOT_IN):
            # {""} is written "(,)", not Kubernetes' "()", which this parser refuses
            joined = "(,)" if joined == "" else f"({joined})"
        return self.key + _INFIX.get(self.operator, self.operator) + joined


def _requirement_errors(key: str, operator: str, values: Sequence[str]) -> list[str]:
    """The checks of ``labels.NewRequirement`` with a root field path."""
    errors = []
    key_problems = qualified_name_errors(key)
    if key_problems:
        errors.append(_invalid("key", _go_quote(key), "; ".join(key_problems)))
    if operator in (IN, NOT_IN):
        if not values:
            errors.append(_invalid("values", _go_strings(values),
                                   "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errors.append(_invalid("values", _go_strings(values),
                                   "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            errors.append(_invalid("values", _go_strings(values),
                                   "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errors.append(_invalid("values", _go_strings(values),
                                   "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(_invalid(f"values[{i}]", _go_quote(value),
                                       "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        supported = ", ".join(_go_quote(op) for op in _ALL_OPERATORS)
        errors.append(f"operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}")
    for i, value in enumerate(values):
        value_problems = label_value_errors(value)
        if value_problems:
            errors.append(_invalid(f"values[{i}][{key}]", _go_quote(value), "; ".join(value_problems)))
    return errors


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """Build a validated :class:`Requirement`; raises :class:`SelectorError` like ``NewRequirement``."""
    values = list(values)
    errors = _requirement_errors(key, operator, values)
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(values))


def _by_key(requirement: Requirement) -> str:
    return requirement.key


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of label requirements, kept sorted by key.

    ``match_nothing`` marks the selector of an absent (``null``)
    ``metav1.LabelSelector``, which selects no objects at all.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "requirements", tuple(sorted(self.requirements, key=_by_key)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels (``None`` means none) is selected."""
        if self.match_nothing:
            return False
        if labels is None:
            labels = {}
        for requirement in self.requirements:
            if not requirement.matches(labels):
                return False
        return True

    def equality_terms(self) -> tuple[tuple[str, str], ...]:
        """The ``(key, value)`` pairs an object must carry exactly, for index look-ups.

        Includes ``key=value``, ``key==value`` and single-valued ``key in (value)``;
        every selected object has all of these labels, so a cache may intersect
        its per-label index with any of them and then run :meth:`matches`.
        """
        return tuple(
            (r.key, r.values[0])
            for r in self.requirements
            if len(r.values) == 1 and (r.operator in _EXACT or r.operator == IN)
        )

    def requires_exact_match(self, key: str) -> str | None:
        """The value the first requirement on ``key`` pins it to, else ``None``."""
        for r in self.requirements:
            if r.key == key:
                exact = len(r.values) == 1 and (r.operator in _EXACT or r.operator == IN)
                return r.values[0] if exact else None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(match_nothing=True)


# --- the string parser (k8s.io/apimachinery/pkg/labels Lexer/Parser) -------

_T_EOS, _T_CLOSE, _T_COMMA, _T_NOT, _T_DEQ, _T_EQ = "eos", ")", ",", "!", "==", "="
_T_GT, _T_IDENT, _T_IN, _T_LT, _T_NEQ, _T_NOTIN, _T_OPEN = ">", "ident", "in", "<", "!=", "notin", "("
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_KEYWORDS = {"in": _T_IN, "notin": _T_NOTIN}
_TOKEN_OPERATORS = {_T_IN: IN, _T_EQ: EQUALS, _T_DEQ: DOUBLE_EQUALS, _T_GT: GREATER_THAN,
                    _T_LT: LESS_THAN, _T_NOTIN: NOT_IN, _T_NEQ: NOT_EQUALS}

_Token = tuple[str, str]  # (kind, literal)


def _lex(text: str) -> list[_Token]:
    """Tokenise; like the Go lexer a NUL character ends the input."""
    end = text.find("\0")
    n = len(text) if end < 0 else end
    tokens: list[_Token] = []
    i = 0
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_T_EOS, ""))
            return tokens
        if text[i] in _SPECIAL:
            pair = text[i:i + 2] if i + 2 <= n else ""
            literal = pair if pair in ("==", "!=") else text[i]
            tokens.append((literal, literal))
            i += len(literal)
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in _WHITESPACE:
            i += 1
        word = text[start:i]
        tokens.append((_KEYWORDS.get(word, _T_IDENT), word))


class _Parser:
    """Recursive-descent parser; ``in``/``notin`` are identifiers except in operator position."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, as_value: bool = True) -> _Token:
        kind, literal = self.tokens[min(self.pos, len(self.tokens) - 1)]
        if as_value and kind in (_T_IN, _T_NOTIN):
            kind = _T_IDENT
        return kind, literal

    def take(self, as_value: bool = True) -> _Token:
        token = self.peek(as_value)
        self.pos += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == _T_EOS:
                return requirements
            if kind not in (_T_IDENT, _T_NOT):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            kind, literal = self.take()
            if kind == _T_EOS:
                return requirements
            if kind != _T_COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in (_T_IDENT, _T_NOT):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_inferred_operator()
        if operator is not None:
            return new_requirement(key, operator)
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def key_and_inferred_operator(self) -> tuple[str, str | None]:
        operator: str | None = None
        kind, literal = self.take()
        if kind == _T_NOT:
            operator = DOES_NOT_EXIST
            kind, literal = self.take()
        if kind != _T_IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        problems = qualified_name_errors(literal)
        if problems:
            raise SelectorError(_invalid("<nil>", _go_quote(literal), "; ".join(problems)))
        if operator is None and self.peek()[0] in (_T_EOS, _T_COMMA):
            operator = EXISTS
        return literal, operator

    def operator(self) -> str:
        kind, literal = self.take(as_value=False)
        if kind not in _TOKEN_OPERATORS:
            raise SelectorError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return _TOKEN_OPERATORS[kind]

    def value_set(self) -> set[str]:
        kind, literal = self.take()
        if kind != _T_OPEN:
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == _T_CLOSE:
            # Kubernetes reads "()" as {""}, so "a notin ()" selects everything and
            # `kubectl delete -l 'a notin ()'` deletes a whole namespace. podlife refuses it
            # instead (the requirement check: "values set can't be empty"), as its security
            # rules ask; "(,)" still means {""}.
            self.take()
            return set()
        if kind not in (_T_IDENT, _T_COMMA):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.identifier_list()
        self.take()  # the ')' that identifier_list stopped at
        return values

    def identifier_list(self) -> set[str]:
        """Comma-separated, possibly empty, identifiers; stops before ')'."""
        values: set[str] = set()
        while True:
            kind, literal = self.take()
            if kind == _T_IDENT:
                values.add(literal)
                next_kind, next_literal = self.peek()
                if next_kind == _T_CLOSE:
                    return values
                if next_kind != _T_COMMA:
                    raise SelectorError(f"found '{next_literal}', expected: ',' or ')'")
            elif kind == _T_COMMA:
                if not values:
                    values.add("")  # "(,x)"
                next_kind = self.peek()[0]
                if next_kind == _T_CLOSE:
                    values.add("")  # "(x,)"
                    return values
                if next_kind == _T_COMMA:
                    self.take()
                    values.add("")  # "(x,,y)"
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (_T_EOS, _T_COMMA):
            return {""}
        kind, literal = self.take()
        if kind != _T_IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the string form (``?labelSelector=``, ``kubectl -l``); ``""`` selects everything."""
    if not text:
        return EVERYTHING
    return LabelSelector(tuple(_Parser(text).parse()))


# --- metav1.LabelSelector ----------------------------------------------------

_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def _expression_requirement(expression: Any) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError("matchExpressions entries must be objects")
    operator = expression.get("operator")
    if operator not in _EXPRESSION_OPERATORS:
        shown = _go_quote(operator) if isinstance(operator, str) else _go_quote(str(operator or ""))
        raise SelectorError(f"{shown} is not a valid pod selector operator")
    key = expression.get("key") or ""  # a missing key fails validation like an empty one
    values = expression.get("values") or []
    if not isinstance(key, str) or not isinstance(values, list) or not all(
        isinstance(v, str) for v in values
    ):
        raise SelectorError("matchExpressions entries need a string key and a list of string values")
    return new_requirement(key, _EXPRESSION_OPERATORS[operator], values)


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels``/``matchExpressions``).

    ``None`` selects nothing; ``{}`` selects everything (``LabelSelectorAsSelector``).
    """
    if selector is None:
        return NOTHING
    if not isinstance(selector, Mapping):
        raise SelectorError("a label selector must be an object")
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    requirements = []
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError("matchLabels keys and values must be strings")
        requirements.append(new_requirement(key, EQUALS, (value,)))
    requirements.extend(_expression_requirement(e) for e in expressions)
    return LabelSelector(tuple(requirements))


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Selector matching exactly these labels (a Service's ``spec.selector``); not validated."""
    if not labels:
        return EVERYTHING
    return LabelSelector(tuple(Requirement(k, EQUALS, (v,)) for k, v in labels.items()))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.LabelSelector`` as kubectl shows it: ``app=web,tier in (a,b)``, ``<none>``, ``<error>``."""
    try:
        text = str(label_selector_from_dict(selector))
    except SelectorError:
        return "<error>"
    return text or "<none>"


# ---------------------------------------------------------------------------
# Field selectors (k8s.io/apimachinery/pkg/fields)
# ---------------------------------------------------------------------------


class FieldRequirement(NamedTuple):
    """``field operator value`` with operator ``"="`` or ``"!="`` (``==`` parses as ``=``)."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


def _field_order(requirement: FieldRequirement) -> str:
    return str(requirement)


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field terms, kept in the order of their string form."""

    requirements: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        # Always reassign: plain tuples compare equal to FieldRequirements.
        ordered = tuple(sorted((FieldRequirement(*r) for r in self.requirements), key=_field_order))
        object.__setattr__(self, "requirements", ordered)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object whose selectable fields are ``fields`` is selected.

        A field missing from ``fields`` reads as ``""``, as in Kubernetes.
        """
        for field, operator, value in self.requirements:
            if (fields.get(field, "") == value) != (operator == "="):
                return False
        return True

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal (first ``field=value`` term), else ``None``."""
        for name, operator, value in self.requirements:
            if name == field and operator == "=":
                return value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_FIELD_OPERATORS = ("!=", "==", "=")


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so any string can be a field selector value."""
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(text: str) -> str:
    """Inverse of :func:`escape_field_value`; rejects bare ``,``/``=`` and unknown escapes."""
    if "\\" not in text and "," not in text and "=" not in text:
        return text
    out = []
    escaped = False
    for ch in text:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (escapes are kept)."""
    terms = []
    start = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Split at the first operator; the field part cannot contain escapes."""
    for i in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator):]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``?fieldSelector=`` / ``kubectl --field-selector``; ``""`` selects everything."""
    if not text:
        return FieldSelector()
    requirements = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, raw_value = split
        requirements.append(
            FieldRequirement(field, "!=" if operator == "!=" else "=", unescape_field_value(raw_value))
        )
    return FieldSelector(tuple(requirements))


def field_selector_from_set(fields: Mapping[str, str] | None) -> FieldSelector:
    """Selector requiring each field to equal the given value."""
    return FieldSelector(tuple(FieldRequirement(f, "=", v) for f, v in (fields or {}).items()))
