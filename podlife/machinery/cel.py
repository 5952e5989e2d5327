"""CEL for admission: compile once, check at write time, evaluate within a budget.

What this module does. :func:`compile_expression` parses a CEL expression, checks that
every identifier is a declared variable (or a comprehension's own variable) and every
function/method is one podlife provides, and returns a :class:`Program`; a bad expression
raises :class:`CelCompileError` whose message reads like cel-go's (``ERROR: <input>:1:5:
undeclared reference to 'foo'`` plus the source line and a caret), so the API can refuse
the policy with ``spec.validations[0].expression: Invalid value: "...": compilation
failed: ...`` as Kubernetes does. :meth:`Program.evaluate` runs it against plain JSON
values (``object``, ``oldObject``, ``request``, ``params``, ``namespaceObject``,
``variables``, ``authorizer``) and returns plain JSON values; :class:`Budget` bounds it.
It reads and writes nothing else: the API layer (``podlife.api.admission_policy``,
``podlife.api.webhooks``) decides what the results mean.

Which library, and why. Two maintained CEL libraries are on PyPI here:
``common-expression-language`` 0.10 (Rust ``cel`` crate, PyO3) and ``cel-python``
(``celpy``) 0.5 (pure Python, a lark grammar and an AST interpreter). Measured on this
machine: the Rust one evaluates a small admission expression in ~15 us, celpy in ~370 us,
and the Rust one's parse errors look like cel-go's. It was still refused, for three
reasons that matter to an API server: (1) its ``execute`` holds the GIL and cannot be
interrupted -- a 24-million-step comprehension blocked every thread of the process for
10 s, so a hostile policy would freeze the server with no way to bound it but guessing
beforehand; (2) it exposes no AST, so "undeclared reference" / "unknown function" could
only be found at evaluation time, not when the policy is created; (3) it refuses message
construction (``Object{...}``, ``JSONPatch{...}``: "feature not enabled"), which
MutatingAdmissionPolicy needs. celpy gives the lark AST (static checks below), an
interpreter whose every node visit passes through :class:`_BudgetedEvaluator` (so cost
is counted as it is spent, like cel-go's runtime cost tracking, and evaluation stops at
the limit or a wall-clock deadline), and parses message construction, which the
evaluator here builds as plain maps. Its speed is ample for admission: policies are
looked up by a dict and the scale benchmark's writes evaluate nothing. Its raw error
messages are not shown: this module words them as cel-go does.

Kubernetes facts followed (k8s.io/apiserver/pkg/cel and .../admission/plugin/cel):
the variables above; the extension libraries -- strings (``charAt``, ``indexOf``,
``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``, ``split``, ``substring``,
``trim``, ``join``, ``reverse``), lists (``isSorted``, ``sum``, ``min``, ``max``,
``indexOf``, ``lastIndexOf``, ``slice``, ``flatten``, ``distinct``, ``sort``), regex
(``matches``, ``find``, ``findAll``; RE2, linear time), ``quantity``/``isQuantity`` with
``compareTo``, ``isGreaterThan``, ``isLessThan``, ``add``, ``sub``, ``asInteger``,
``asApproximateFloat``, ``isInteger``, ``sign``; ``url``/``isURL`` with ``getScheme``,
``getHost``, ``getHostname``, ``getPort``, ``getEscapedPath``, ``getQuery``; ``ip``/
``isIP``/``cidr``/``isCIDR`` with ``family``, ``isLoopback``, ``isUnspecified``,
``containsIP``, ``containsCIDR``, ``prefixLength``, ``masked``; and
``authorizer.group(g).resource(r)[.namespace(n)][.name(n)][.subresource(s)].check(verb)``
(or ``authorizer.path(p).check(verb)``, ``authorizer.serviceAccount(ns, name)``) with
``allowed()``, ``reason()``, ``errored()``, ``error()``. A per-expression cost limit
(``PER_CALL_LIMIT``, Kubernetes' ``PerCallLimit`` is 1,000,000) and a per-request budget
(:class:`Budget`, Kubernetes' ``RuntimeCELCostBudget``) stop runaway expressions with
cel-go's message ``operation cancelled: actual cost limit exceeded``.

Gaps, said plainly: no type checker (Kubernetes type-checks against the OpenAPI schema;
here a wrong field is an evaluation error, not a compile error); the optional syntax
``a.?b`` / ``?field:`` is not in celpy's grammar and is refused at compile time;
``Object{...}`` builds an untyped map (its type name is not checked against a schema).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import celpy
import lark
import re2
from celpy import celtypes
from celpy.evaluation import Activation, CELEvalError, Evaluator

from .quantity import parse_quantity

logging.getLogger("celpy").setLevel(logging.WARNING)

#: Kubernetes' per-expression limit (PerCallLimit); here one unit is one AST node visited
PER_CALL_LIMIT = 1_000_000
#: Kubernetes' RuntimeCELCostBudget for all expressions of one policy evaluation
RUNTIME_BUDGET = 10_000_000
#: wall-clock bound of one request's CEL work, whatever the units say
DEADLINE_SECONDS = 0.5
#: longest expression compiled (cel-go's parser allows 100,000 code points; admission
#: expressions are short, and a shorter bound keeps the pure-Python parser fast)
MAX_EXPRESSION_LENGTH = 5 * 1024
MAX_NESTING = 100
_CHECK_CLOCK_EVERY = 2048

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ENV = celpy.Environment()

Value = Any


class CelCompileError(ValueError):
    """The expression does not compile; ``str()`` is cel-go's ``ERROR: <input>:l:c: ...`` text."""


class CelEvalError(Exception):
    """Evaluation failed (no such key, no such overload, cost limit...)."""


class CostExceeded(BaseException):
    """Raised inside the interpreter to abort it.

    A BaseException on purpose: celpy's evaluator catches ``Exception`` in places and
    would turn this into an ordinary error *value* that ``||`` could short-circuit past;
    the budget must stop evaluation outright. :meth:`Program.evaluate` converts it to a
    :class:`CelEvalError`.
    """


@dataclass
class Budget:
    """Cost units left for one request's expressions, and its wall-clock deadline."""

    remaining: int = RUNTIME_BUDGET
    deadline: float = field(default_factory=lambda: time.monotonic() + DEADLINE_SECONDS)
    _ticks: int = 0

    def start_call(self) -> int:
        """The units this expression may spend: the per-call limit or what is left."""
        if self.remaining <= 0:
            raise CelEvalError("validation failed due to running out of cost budget, "
                               "no further validation rules will be run")
        return min(PER_CALL_LIMIT, self.remaining)


@dataclass
class _Meter:
    budget: Budget
    limit: int
    spent: int = 0

    def charge(self, units: int = 1) -> None:
        self.spent += units
        if self.spent > self.limit:
            raise CostExceeded("operation cancelled: actual cost limit exceeded")
        self.budget._ticks += units
        if self.budget._ticks >= _CHECK_CLOCK_EVERY:
            self.budget._ticks = 0
            if time.monotonic() > self.budget.deadline:
                raise CostExceeded("operation cancelled: evaluation deadline exceeded")


# ---- the values Kubernetes adds: quantity, URL, IP, CIDR, authorizer ---------------------

@dataclass(frozen=True)
class Quantity:
    text: str
    value: Fraction

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class URL:
    text: str


@dataclass(frozen=True)
class IP:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CIDR:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    text: str


#: the authorizer callback the API layer passes: attributes -> (decision, reason, error)
AuthorizeFn = Callable[[Mapping[str, str]], tuple[str, str, str]]


@dataclass(frozen=True)
class AuthzRequest:
    """``authorizer.group(..).resource(..)...``: the attributes gathered so far."""

    authorize: AuthorizeFn
    attrs: tuple[tuple[str, str], ...] = ()

    def with_(self, key: str, value: str) -> AuthzRequest:
        return AuthzRequest(self.authorize, tuple((k, v) for k, v in self.attrs if k != key) + ((key, value),))


@dataclass(frozen=True)
class AuthzDecision:
    decision: str
    reason: str
    error: str


# ---- conversion ----------------------------------------------------------------------------

def to_cel(value: Any) -> Value:
    """A JSON value (or one of this module's values) as celpy values."""
    if isinstance(value, (Quantity, URL, IP, CIDR, AuthzRequest, AuthzDecision, CELEvalError)):
        return value
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return celtypes.ListType([to_cel(v) for v in value])
    return celpy.json_to_cel(value)


def from_cel(value: Value) -> Any:
    """A celpy value as plain JSON (maps with string keys, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, celtypes.BoolType) or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(from_cel(k)): from_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_cel(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def is_bool(value: Value) -> bool:
    return isinstance(value, celtypes.BoolType)


def cel_type_name(value: Value) -> str:
    """cel-go's name of a value's type, for messages."""
    for cls, name in ((celtypes.BoolType, "bool"), (celtypes.IntType, "int"), (celtypes.UintType, "uint"),
                      (celtypes.DoubleType, "double"), (celtypes.StringType, "string"),
                      (celtypes.BytesType, "bytes"), (celtypes.ListType, "list"), (celtypes.MapType, "map"),
                      (celtypes.TimestampType, "google.protobuf.Timestamp"),
                      (celtypes.DurationType, "google.protobuf.Duration"), (Quantity, "kubernetes.Quantity"),
                      (URL, "kubernetes.URL"), (IP, "net.IP"), (CIDR, "net.CIDR")):
        if isinstance(value, cls):
            return name
    if value is None:
        return "null_type"
    return type(value).__name__


# ---- extension functions ------------------------------------------------------------------
#
# celpy calls ``x.f(a)`` as ``f(x, a)``; one name may serve strings and lists (indexOf...),
# so each function looks at its receiver. A TypeError means "no such overload".

def _s(value: str) -> celtypes.StringType:
    return celtypes.StringType(value)


def _str_arg(value: Value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"no such overload for {cel_type_name(value)}")
    return str(value)


def _char_at(text: Value, index: Value) -> Value:
    text, i = _str_arg(text), int(index)
    if not 0 <= i <= len(text):
        raise IndexError(f"index out of range: {i}")
    return _s(text[i:i + 1])


def _index_of(target: Value, item: Value, start: Value = None) -> Value:
    if isinstance(target, list):
        for i, v in enumerate(target):
            if v == item:
                return celtypes.IntType(i)
        return celtypes.IntType(-1)
    text, sub = _str_arg(target), _str_arg(item)
    offset = int(start) if start is not None else 0
    if not 0 <= offset <= len(text):
        raise IndexError(f"index out of range: {offset}")
    return celtypes.IntType(text.find(sub, offset))


def _last_index_of(target: Value, item: Value, end: Value = None) -> Value:
    if isinstance(target, list):
        for i in range(len(target) - 1, -1, -1):
            if target[i] == item:
                return celtypes.IntType(i)
        return celtypes.IntType(-1)
    text, sub = _str_arg(target), _str_arg(item)
    stop = int(end) if end is not None else len(text)
    if not 0 <= stop <= len(text):
        raise IndexError(f"index out of range: {stop}")
    return celtypes.IntType(text.rfind(sub, 0, stop + len(sub)))


def _lower_ascii(text: Value) -> Value:
    return _s("".join(c.lower() if c.isascii() else c for c in _str_arg(text)))


def _upper_ascii(text: Value) -> Value:
    return _s("".join(c.upper() if c.isascii() else c for c in _str_arg(text)))


def _replace(text: Value, old: Value, new: Value, count: Value = None) -> Value:
    n = int(count) if count is not None else -1
    return _s(_str_arg(text).replace(_str_arg(old), _str_arg(new), n))


def _split(text: Value, sep: Value, count: Value = None) -> Value:
    n = int(count) if count is not None else -1
    if n == 0:
        return celtypes.ListType()
    parts = _str_arg(text).split(_str_arg(sep), n - 1 if n > 0 else -1) if sep else list(_str_arg(text))
    return celtypes.ListType([_s(p) for p in parts])


def _substring(text: Value, start: Value, end: Value = None) -> Value:
    t = _str_arg(text)
    b, e = int(start), int(end) if end is not None else len(t)
    if not 0 <= b <= e <= len(t):
        raise IndexError(f"index out of range: {b}, {e}")
    return _s(t[b:e])


def _trim(text: Value) -> Value:
    return _s(_str_arg(text).strip())


def _join(items: Value, sep: Value = None) -> Value:
    if not isinstance(items, list):
        raise TypeError("join needs a list of strings")
    return _s(_str_arg(sep if sep is not None else "").join(_str_arg(i) for i in items))


def _reverse(target: Value) -> Value:
    if isinstance(target, list):
        return celtypes.ListType(list(reversed(target)))
    return _s(_str_arg(target)[::-1])


def _list_arg(value: Value) -> list[Value]:
    if not isinstance(value, list):
        raise TypeError(f"no such overload for {cel_type_name(value)}")
    return value


def _is_sorted(items: Value) -> Value:
    lst = _list_arg(items)
    return celtypes.BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))


def _sum(items: Value) -> Value:
    lst = _list_arg(items)
    total: Value = celtypes.IntType(0)
    for i, v in enumerate(lst):
        total = v if i == 0 else total + v
    return total


def _max(items: Value) -> Value:
    lst = _list_arg(items)
    if not lst:
        raise ValueError("max(list) argument must not be empty")
    return max(lst)


def _slice(items: Value, start: Value, end: Value) -> Value:
    lst, b, e = _list_arg(items), int(start), int(end)
    if not 0 <= b <= e <= len(lst):
        raise IndexError(f"cannot slice({b}, {e}), invalid range")
    return celtypes.ListType(lst[b:e])


def _flatten(items: Value, depth: Value = None) -> Value:
    levels = int(depth) if depth is not None else 1
    out: list[Value] = list(_list_arg(items))
    for _ in range(max(levels, 0)):
        flat: list[Value] = []
        for v in out:
            flat.extend(v if isinstance(v, list) else [v])
        out = flat
    return celtypes.ListType(out)


def _distinct(items: Value) -> Value:
    out: list[Value] = []
    for v in _list_arg(items):
        if not any(type(v) is type(o) and v == o for o in out):
            out.append(v)
    return celtypes.ListType(out)


def _sort(items: Value) -> Value:
    return celtypes.ListType(sorted(_list_arg(items)))


def _find(text: Value, pattern: Value) -> Value:
    try:
        match = re2.search(_str_arg(pattern), _str_arg(text))
    except re2.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    return _s(match.group(0) if match else "")


def _find_all(text: Value, pattern: Value, limit: Value = None) -> Value:
    try:
        found = [m.group(0) for m in re2.finditer(_str_arg(pattern), _str_arg(text))]
    except re2.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    if limit is not None and int(limit) >= 0:
        found = found[:int(limit)]
    return celtypes.ListType([_s(f) for f in found])


def _quantity(text: Value) -> Value:
    try:
        return Quantity(_str_arg(text), parse_quantity(_str_arg(text)))
    except (ValueError, ArithmeticError):
        raise ValueError(f"quantities must match the regular expression: {text}") from None


def _is_quantity(text: Value) -> Value:
    try:
        parse_quantity(_str_arg(text))
    except (ValueError, ArithmeticError):
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _q(value: Value) -> Fraction:
    if isinstance(value, Quantity):
        return value.value
    if isinstance(value, int) and not isinstance(value, celtypes.BoolType):
        return Fraction(int(value))
    raise TypeError(f"no such overload for {cel_type_name(value)}")


def _compare_to(a: Value, b: Value) -> Value:
    x, y = _q(a), _q(b)
    return celtypes.IntType((x > y) - (x < y))


def _quantity_from(value: Fraction) -> Quantity:
    text = str(value.numerator) if value.denominator == 1 else f"{float(value)}"
    return Quantity(text, value)


def _q_add(a: Value, b: Value) -> Value:
    return _quantity_from(_q(a) + _q(b))


def _q_sub(a: Value, b: Value) -> Value:
    return _quantity_from(_q(a) - _q(b))


def _as_integer(q: Value) -> Value:
    v = _q(q)
    if v.denominator != 1 or not -(2**63) <= v.numerator < 2**63:
        raise ValueError("cannot convert value to integer")
    return celtypes.IntType(v.numerator)


def _is_integer(q: Value) -> Value:
    v = _q(q)
    return celtypes.BoolType(v.denominator == 1 and -(2**63) <= v.numerator < 2**63)


def _url(text: Value) -> Value:
    if not _is_url(text):
        raise ValueError(f"URL parse error during conversion from string: {text}")
    return URL(_str_arg(text))


def _is_url(text: Value) -> Value:
    t = _str_arg(text)
    try:
        parts = urlsplit(t)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(bool(parts.scheme) and (bool(parts.netloc) or t.startswith("/")) or t.startswith("/"))


def _url_part(part: str) -> Callable[[Value], Value]:
    def get(value: Value) -> Value:
        if not isinstance(value, URL):
            raise TypeError(f"no such overload for {cel_type_name(value)}")
        p = urlsplit(value.text)
        values = {"getScheme": p.scheme, "getHost": p.netloc.rpartition("@")[2], "getHostname": p.hostname or "",
                  "getPort": str(p.port or "") if p.port else "", "getEscapedPath": p.path, "getQuery": None}
        if part == "getQuery":
            query: dict[str, list[str]] = {}
            for pair in filter(None, p.query.split("&")):
                k, _, v = pair.partition("=")
                query.setdefault(k, []).append(v)
            return to_cel(query)
        return _s(values[part] or "")
    return get


def _ip(text: Value) -> Value:
    try:
        return IP(ipaddress.ip_address(_str_arg(text)))
    except ValueError:
        raise ValueError(f"IP Address {text!s} parse error during conversion from string") from None


def _is_ip(text: Value) -> Value:
    try:
        ipaddress.ip_address(_str_arg(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _cidr(text: Value) -> Value:
    try:
        return CIDR(ipaddress.ip_network(_str_arg(text), strict=False), _str_arg(text))
    except ValueError:
        raise ValueError(f"network address parse error during conversion from string: {text!s}") from None


def _is_cidr(text: Value) -> Value:
    try:
        ipaddress.ip_network(_str_arg(text), strict=False)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _family(value: Value) -> Value:
    addr = value.address if isinstance(value, IP) else value.network if isinstance(value, CIDR) else None
    if addr is None:
        raise TypeError("no such overload")
    return celtypes.IntType(addr.version)


def _is_loopback(value: Value) -> Value:
    if not isinstance(value, IP):
        raise TypeError("no such overload")
    return celtypes.BoolType(value.address.is_loopback)


def _is_unspecified(value: Value) -> Value:
    if not isinstance(value, IP):
        raise TypeError("no such overload")
    return celtypes.BoolType(value.address.is_unspecified)


def _contains_ip(cidr: Value, ip: Value) -> Value:
    if not isinstance(cidr, CIDR):
        raise TypeError("no such overload")
    addr = ip.address if isinstance(ip, IP) else ipaddress.ip_address(_str_arg(ip))
    return celtypes.BoolType(addr.version == cidr.network.version and addr in cidr.network)


def _contains_cidr(cidr: Value, other: Value) -> Value:
    if not isinstance(cidr, CIDR):
        raise TypeError("no such overload")
    net = other.network if isinstance(other, CIDR) else ipaddress.ip_network(_str_arg(other), strict=False)
    return celtypes.BoolType(net.version == cidr.network.version and net.subnet_of(cidr.network))  # type: ignore[arg-type]


def _prefix_length(cidr: Value) -> Value:
    if not isinstance(cidr, CIDR):
        raise TypeError("no such overload")
    return celtypes.IntType(cidr.network.prefixlen)


def _masked(cidr: Value) -> Value:
    if not isinstance(cidr, CIDR):
        raise TypeError("no such overload")
    return CIDR(cidr.network, str(cidr.network))


def _ip_of(cidr: Value) -> Value:
    if not isinstance(cidr, CIDR):
        raise TypeError("no such overload")
    return IP(ipaddress.ip_address(cidr.text.partition("/")[0]))


def _authz_attr(key: str) -> Callable[..., Value]:
    def setter(target: Value, value: Value) -> Value:
        if not isinstance(target, AuthzRequest):
            raise TypeError("no such overload")
        return target.with_(key, _str_arg(value))
    return setter


def _service_account(target: Value, namespace: Value, name: Value) -> Value:
    if not isinstance(target, AuthzRequest):
        raise TypeError("no such overload")
    return target.with_("user", f"system:serviceaccount:{_str_arg(namespace)}:{_str_arg(name)}")


def _check(target: Value, verb: Value) -> Value:
    if not isinstance(target, AuthzRequest):
        raise TypeError("no such overload")
    decision, reason, error = target.authorize({**dict(target.attrs), "verb": _str_arg(verb)})
    return AuthzDecision(decision, reason, error)


def _decision_part(part: str) -> Callable[[Value], Value]:
    def get(value: Value) -> Value:
        if not isinstance(value, AuthzDecision):
            raise TypeError("no such overload")
        if part == "allowed":
            return celtypes.BoolType(value.decision == "allow")
        if part == "errored":
            return celtypes.BoolType(bool(value.error))
        return _s(value.reason if part == "reason" else value.error)
    return get


def _string(value: Value) -> Value:
    """``string()``: celpy's, plus Kubernetes' own values."""
    if isinstance(value, (Quantity, URL)):
        return _s(value.text) if isinstance(value, URL) else _s(value.text)
    if isinstance(value, IP):
        return _s(str(value.address))
    if isinstance(value, CIDR):
        return _s(value.text)
    return celtypes.StringType(value)


FUNCTIONS: dict[str, Callable[..., Value]] = {
    # strings ext
    "charAt": _char_at, "indexOf": _index_of, "lastIndexOf": _last_index_of, "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii, "replace": _replace, "split": _split, "substring": _substring, "trim": _trim,
    "join": _join, "reverse": _reverse,
    # lists ext (``min`` is celpy's own)
    "isSorted": _is_sorted, "sum": _sum, "max": _max, "slice": _slice, "flatten": _flatten,
    "distinct": _distinct, "sort": _sort,
    # regex
    "find": _find, "findAll": _find_all,
    # quantity
    "quantity": _quantity, "isQuantity": _is_quantity, "compareTo": _compare_to,
    "isGreaterThan": lambda a, b: celtypes.BoolType(_q(a) > _q(b)),
    "isLessThan": lambda a, b: celtypes.BoolType(_q(a) < _q(b)),
    "add": _q_add, "sub": _q_sub, "asInteger": _as_integer, "isInteger": _is_integer,
    "asApproximateFloat": lambda q: celtypes.DoubleType(float(_q(q))),
    "sign": lambda q: celtypes.IntType((_q(q) > 0) - (_q(q) < 0)),
    # url
    "url": _url, "isURL": _is_url,
    **{name: _url_part(name) for name in ("getScheme", "getHost", "getHostname", "getPort", "getEscapedPath",
                                          "getQuery")},
    # ip / cidr
    "ip": _ip, "isIP": _is_ip, "cidr": _cidr, "isCIDR": _is_cidr, "family": _family, "isLoopback": _is_loopback,
    "isUnspecified": _is_unspecified, "containsIP": _contains_ip, "containsCIDR": _contains_cidr,
    "prefixLength": _prefix_length, "masked": _masked,
    # authorizer
    **{name: _authz_attr(name) for name in ("group", "resource", "subresource", "namespace", "name", "path")},
    "serviceAccount": _service_account, "check": _check,
    **{name: _decision_part(name) for name in ("allowed", "reason", "errored", "error")},
    "string": _string,
}
def _ip_dispatch(value: Value) -> Value:
    """``ip(string)`` and ``cidr.ip()`` share the name."""
    return _ip_of(value) if isinstance(value, CIDR) else _ip(value)


FUNCTIONS["ip"] = _ip_dispatch

#: celpy's built-in functions and methods (what its base_functions serve, plus macros)
_BUILTINS = frozenset({
    "size", "contains", "type", "endsWith", "startsWith", "matches", "getDate", "getDayOfMonth", "getDayOfWeek",
    "getDayOfYear", "getFullYear", "getMonth", "getHours", "getMilliseconds", "getMinutes", "getSeconds",
    "bool", "bytes", "double", "duration", "int", "uint", "timestamp", "min", "has", "dyn",
})
KNOWN_FUNCTIONS = frozenset(FUNCTIONS) | _BUILTINS
#: the type names message construction may use (MutatingAdmissionPolicy)
_TYPE_ROOTS = ("Object", "JSONPatch")


# ---- static checks --------------------------------------------------------------------------

def _token(tree: Any) -> lark.Token | None:
    for t in tree.scan_values(lambda v: isinstance(v, lark.Token)) if isinstance(tree, lark.Tree) else ():
        return t
    return None


_WRAPPERS = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                       "unary", "member", "primary"})


def _dotted_name(tree: lark.Tree) -> str | None:
    """``a.b.c`` of a member tree made only of idents and dots, else None."""
    node = tree
    parts: list[str] = []
    while isinstance(node, lark.Tree):
        if node.data in _WRAPPERS and len(node.children) == 1:
            node = node.children[0]
        elif node.data == "member_dot":
            parts.append(str(node.children[1]))
            node = node.children[0]
        elif node.data == "ident":
            parts.append(str(node.children[0]))
            return ".".join(reversed(parts))
        else:
            return None
    return None


@dataclass
class _Checker:
    source: str
    declared: frozenset[str]

    def fail(self, token: Any, message: str) -> CelCompileError:
        line = getattr(token, "line", 1) or 1
        column = getattr(token, "column", 1) or 1
        return CelCompileError(_located(self.source, line, column, message))

    def check(self, tree: Any, scope: frozenset[str]) -> None:
        if not isinstance(tree, lark.Tree):
            return
        handler = getattr(self, f"_check_{tree.data}", None)
        if handler is not None:
            handler(tree, scope)
            return
        for child in tree.children:
            self.check(child, scope)

    def _check_ident(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        name = str(tree.children[0])
        if name not in scope and name not in self.declared:
            raise self.fail(tree.children[0], f"undeclared reference to '{name}' (in container '')")

    def _check_dot_ident(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        self._check_ident(tree, frozenset())

    def _check_dot_ident_arg(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        raise self.fail(tree.children[0], f"undeclared reference to '.{tree.children[0]}' (in container '')")

    def _check_ident_arg(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        name = str(tree.children[0])
        if name not in KNOWN_FUNCTIONS:
            raise self.fail(tree.children[0], f"undeclared reference to '{name}' (in container '')")
        args = tree.children[1] if len(tree.children) > 1 else None
        if name == "has":
            exprs = args.children if isinstance(args, lark.Tree) else []
            if len(exprs) != 1 or not list(exprs[0].find_data("member_dot")):
                raise self.fail(tree.children[0], "invalid argument to has() macro")
        self.check(args, scope)

    def _check_member_dot_arg(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        target, method = tree.children[0], tree.children[1]
        args = tree.children[2] if len(tree.children) > 2 else None
        self.check(target, scope)
        name = str(method)
        if name in MACROS:
            exprs = args.children if isinstance(args, lark.Tree) else []
            var = _dotted_name(exprs[0]) if exprs and isinstance(exprs[0], lark.Tree) else None
            if len(exprs) != 2 or var is None or "." in var:
                raise self.fail(method, f"{name}() macro needs a variable name and one expression"
                                        f"{' (the three-argument map() is not supported)' if name == 'map' else ''}")
            self.check(exprs[1], scope | {var})
            return
        if name not in KNOWN_FUNCTIONS:
            raise self.fail(method, f"undeclared reference to '{name}' (in container '')")
        self.check(args, scope)

    def _check_member_object(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        name = _dotted_name(tree.children[0])
        if name is None or name.split(".")[0] not in _TYPE_ROOTS or (name.startswith("JSONPatch") and name != "JSONPatch"):
            raise self.fail(_token(tree.children[0]), f"undeclared reference to '{name or '?'}' (in container '')")
        for child in tree.children[1:]:
            self.check(child, scope)

    def _check_fieldinits(self, tree: lark.Tree, scope: frozenset[str]) -> None:
        for expr in tree.children[1::2]:
            self.check(expr, scope)


def _located(source: str, line: int, column: int, message: str) -> str:
    """cel-go's error layout: the message, the source line, a caret under the column."""
    lines = source.split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return f"ERROR: <input>:{line}:{column}: {message}\n | {text}\n | {'.' * (column - 1)}^"


def _syntax_error(source: str, exc: celpy.CELParseError) -> CelCompileError:
    cause = exc.__context__
    what = "Syntax error"
    at_end = False
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        at_end = token.type == "$END"
        what = f"Syntax error: mismatched input '{'<EOF>' if at_end else token}'"
    elif isinstance(cause, lark.exceptions.UnexpectedCharacters):
        what = f"Syntax error: token recognition error at: '{cause.char}'"
    lines = source.split("\n")
    line = len(lines) if at_end else exc.line or 1
    column = exc.column if exc.column and exc.column > 0 and not at_end else len(lines[line - 1]) + 1
    return CelCompileError(_located(source, line, column, what))


def _nesting(source: str) -> int:
    depth = deepest = 0
    for ch in re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", "", source):
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


# ---- evaluation -------------------------------------------------------------------------------

class _BudgetedEvaluator(Evaluator):
    """celpy's interpreter, charged one unit per node visited, building ``Object{}`` as maps."""

    def __init__(self, ast: lark.Tree, activation: Activation, meter: _Meter) -> None:
        super().__init__(ast, activation)
        self.meter = meter

    def _visit_tree(self, tree: lark.Tree) -> Any:  # every node, root or child, passes here
        self.meter.charge()
        return super()._visit_tree(tree)

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:
        return _BudgetedEvaluator(ast, self.activation, self.meter)

    def member_object(self, tree: lark.Tree) -> Any:
        fields = self.visit(tree.children[1]) if len(tree.children) > 1 else {}
        if isinstance(fields, CELEvalError):
            return fields
        built = celtypes.MapType({celtypes.StringType(k): v for k, v in dict(fields).items()})
        for v in built.values():
            if isinstance(v, CELEvalError):
                return v
        return built


@dataclass(frozen=True)
class Program:
    """A compiled, checked expression."""

    source: str
    ast: lark.Tree
    runner: Any

    def evaluate(self, activation: Mapping[str, Value], budget: Budget) -> Value:
        """The result as a celpy value; CelEvalError when it cannot be computed.

        ``activation`` holds celpy values (see :func:`to_cel`); convert once per request,
        not per expression.
        """
        meter = _Meter(budget, budget.start_call())
        evaluator = _BudgetedEvaluator(self.ast, self.runner.new_activation(), meter)
        try:
            return evaluator.evaluate(dict(activation))
        except CostExceeded as exc:
            raise CelEvalError(str(exc)) from None
        except CELEvalError as exc:
            raise CelEvalError(_eval_message(exc)) from None
        except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, AttributeError,
                RecursionError) as exc:
            raise CelEvalError(f"no such overload: {exc}" if isinstance(exc, TypeError) else str(exc)) from None
        finally:
            budget.remaining -= meter.spent


def _eval_message(exc: CELEvalError) -> str:
    """cel-go's words for celpy's evaluation errors."""
    text = str(exc.args[0]) if exc.args else "evaluation error"
    cause = exc.args[1] if len(exc.args) > 1 else None
    detail = exc.args[2] if len(exc.args) > 2 else None
    found = re.match(r"no such member in mapping: '(.*)'", text)
    if found:
        return f"no such key: {found.group(1)}"
    if cause is KeyError:
        key = detail[0] if isinstance(detail, tuple) and detail else ""
        return f"no such key: {key}"
    if cause is ZeroDivisionError or "divide by zero" in text:
        return "division by zero"
    if text.startswith("undeclared reference"):
        return text.split(" (in activation")[0]
    if "no matching overload" in text or text == "no such overload":
        return "no such overload"
    if isinstance(detail, tuple) and detail and text in ("return error for overflow", "match error"):
        return str(detail[0])
    return text


def compile_expression(source: Any, variables: frozenset[str]) -> Program:
    """Parse and check ``source`` against the declared ``variables``; CelCompileError if bad."""
    if not isinstance(source, str):
        raise CelCompileError("ERROR: <input>:1:1: expression must be a string")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CelCompileError(f"ERROR: <input>:1:1: expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if _nesting(source) > MAX_NESTING:
        raise CelCompileError(f"ERROR: <input>:1:1: expression recursion limit exceeded: {MAX_NESTING}")
    if ".?" in source or re.search(r"[{,]\s*\?\s*[A-Za-z_]", source):
        index = source.find(".?") if ".?" in source else source.find("?")
        line = source.count("\n", 0, index) + 1
        column = index - (source.rfind("\n", 0, index) + 1) + 1
        raise CelCompileError(_located(source, line, column, "unsupported syntax '.?' (optional values are "
                                                             "not supported by this server)"))
    try:
        ast = _ENV.compile(source)
    except celpy.CELParseError as exc:
        raise _syntax_error(source, exc) from None
    except RecursionError:
        raise CelCompileError(f"ERROR: <input>:1:1: expression recursion limit exceeded: {MAX_NESTING}") from None
    _Checker(source, variables).check(ast, frozenset())
    return Program(source, ast, _ENV.program(ast, functions=FUNCTIONS))


#: the variables every admission expression may use (Kubernetes' base environment)
ADMISSION_VARIABLES = frozenset({"object", "oldObject", "request", "params", "namespaceObject", "authorizer",
                                 "variables"})
