"""Tests for podlife.machinery.selectors: label and field selectors as Kubernetes defines them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlife.machinery.names import dns1123_subdomain_errors, label_value_errors, qualified_name_errors
from podlife.machinery.selectors import (
    DOES_NOT_EXIST, DOUBLE_EQUALS, EQUALS, EVERYTHING, EXISTS, GREATER_THAN, IN, LESS_THAN, NOT_EQUALS,
    NOT_IN, NOTHING, FieldRequirement, FieldSelector, LabelSelector, Requirement, SelectorError,
    escape_field_value, field_selector_from_set, format_label_selector,
    label_selector_from_dict, label_selector_from_set,
    new_requirement, parse_field_selector, parse_label_selector, unescape_field_value,
)

robust = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAME_REGEX_HINT = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_REGEX_HINT = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
SUBDOMAIN_REGEX_HINT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

# ---------------------------------------------------------------------------
# Label selector parsing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("", ""),
        ("   ", ""),
        ("x=a", "x=a"),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,y=b,x=a", "x=a,y=b,z=c"),
        ("x==a", "x==a"),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x= ,z= ", "x=,z="),
        ("x", "x"),
        ("!x", "!x"),
        ("! x", "!x"),
        ("x>1", "x>1"),
        ("x<1", "x<1"),
        ("x>1,z<5", "x>1,z<5"),
        ("x in (foo,,baz),y,z notin (,)", "x in (,baz,foo),y,z notin (,)"),
        ("x in (foo,bar,baz)", "x in (bar,baz,foo)"),
        ("x in (a,a,b)", "x in (a,b)"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("x in (,)", "x in (,)"),
        ("x in(a)", "x in (a)"),
        ("x notin (a)", "x notin (a)"),
        ("in in (in)", "in in (in)"),
        ("notin notin (notin)", "notin notin (notin)"),
        ("x=in", "x=in"),
        ("  a = b ,\tc  ,  !d  ", "a=b,c,!d"),
        ("a=b\n,c\r", "a=b,c"),
        ("example.com/app=web", "example.com/app=web"),
        ("app.kubernetes.io/name in (nginx)", "app.kubernetes.io/name in (nginx)"),
        ("A_b-c.D=E_f-g.H", "A_b-c.D=E_f-g.H"),
        ("a=b\x00garbage", "a=b"),  # the Go lexer treats NUL as the end of input
    ],
)
def test_parse_valid(text: str, canonical: str) -> None:
    selector = parse_label_selector(text)
    assert str(selector) == canonical
    assert parse_label_selector(canonical) == selector


@pytest.mark.parametrize(
    "text,message",
    [
        ("x=a||y=b", "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": " + VALUE_REGEX_HINT),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("x>-1", "unable to parse requirement: values[0][x]: Invalid value: \"-1\": " + VALUE_REGEX_HINT),
        ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": "
                "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("x>1.5", "unable to parse requirement: values[0]: Invalid value: \"1.5\": "
                  "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("x=(", "unable to parse requirement: found '(', expected: identifier"),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("x in (a,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in", "unable to parse requirement: found '' expected: '('"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a !b", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
        ("x>=1", "unable to parse requirement: found '=', expected: identifier"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        ("app: nginx", "unable to parse requirement: <nil>: Invalid value: \"app:\": name part " + NAME_REGEX_HINT),
        ("*bar", "unable to parse requirement: <nil>: Invalid value: \"*bar\": name part " + NAME_REGEX_HINT),
        (
            "a/b/c ?=? def",
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name " + NAME_REGEX_HINT
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "app.kubernetes_io/name=x",
            "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part "
            + SUBDOMAIN_REGEX_HINT,
        ),
        ("/a", "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"),
        (
            "a/",
            "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part "
            + NAME_REGEX_HINT,
        ),
        ("env=-bad", "unable to parse requirement: values[0][env]: Invalid value: \"-bad\": " + VALUE_REGEX_HINT),
        (
            "env in (ok,-bad)",
            "unable to parse requirement: values[0][env]: Invalid value: \"-bad\": " + VALUE_REGEX_HINT,
        ),
    ],
)
def test_parse_errors_match_kubernetes(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("text", ["a notin ()", "a in ()", "a in ( )", "b=c,a notin ()"])
def test_an_empty_value_set_is_refused(text: str) -> None:
    """Kubernetes reads "()" as {""} (so "a notin ()" selects everything); podlife refuses it."""
    with pytest.raises(SelectorError, match="for 'in', 'notin' operators, values set can't be empty"):
        parse_label_selector(text)


def test_the_set_of_one_empty_value_round_trips() -> None:
    selector = parse_label_selector("a notin (,)")
    assert str(selector) == "a notin (,)"
    assert str(parse_label_selector(str(selector))) == "a notin (,)"


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


def test_long_keys_and_values() -> None:
    parse_label_selector("a" * 63 + "=" + "b" * 63)
    parse_label_selector("a" * 253 + "/" + "b" * 63)
    with pytest.raises(SelectorError, match="name part must be no more than 63 characters"):
        parse_label_selector("a" * 64)
    with pytest.raises(SelectorError, match="must be no more than 63 characters"):
        parse_label_selector("a=" + "b" * 64)
    with pytest.raises(SelectorError, match="prefix part must be no more than 253 characters"):
        parse_label_selector("a" * 254 + "/b")


def test_multiple_value_problems_are_aggregated() -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector("x>-a")
    message = str(info.value)
    assert message.startswith("unable to parse requirement: [values[0]: Invalid value: \"-a\"")
    assert "values[0][x]: Invalid value: \"-a\"" in message and message.endswith("]")


def test_non_ascii_is_rejected_with_go_quoting() -> None:
    with pytest.raises(SelectorError, match='Invalid value: "caf\u00e9"'):
        parse_label_selector("café=1")


# ---------------------------------------------------------------------------
# Label matching
# ---------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "frontend", "n": "5", "empty": ""}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("missing=x", False),
        ("missing=", False),
        ("empty=", True),
        ("empty", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("missing in (a)", False),
        ("app notin (db)", True),
        ("app notin (web)", False),
        ("missing notin (a)", True),
        ("empty in (,)", True),
        ("n>4", True),
        ("n>5", False),
        ("n<6", True),
        ("n<5", False),
        ("app>1", False),  # non-numeric label never satisfies gt/lt
        ("missing>1", False),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("app=web,!missing,n>1,tier in (frontend)", True),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_matches_none_labels() -> None:
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)
    assert parse_label_selector("a notin (x)").matches(None)


def test_gt_lt_follow_go_integer_parsing() -> None:
    selector = parse_label_selector("n>10")
    assert selector.matches({"n": "11"})
    assert selector.matches({"n": "+11"})
    assert not selector.matches({"n": " 11"})
    assert not selector.matches({"n": "1_1"})
    assert not selector.matches({"n": str(2**63)})  # overflows int64
    assert selector.matches({"n": str(2**63 - 1)})
    assert parse_label_selector("n<0").matches({"n": "-3"})


def test_empty_everything_nothing() -> None:
    assert EVERYTHING.empty and EVERYTHING.matches({"a": "b"}) and EVERYTHING.matches(None)
    assert not NOTHING.empty and not NOTHING.matches({}) and not NOTHING.matches({"a": "b"})
    assert parse_label_selector("") == EVERYTHING
    assert not parse_label_selector("a").empty


def test_selectors_are_hashable_and_normalised() -> None:
    a = parse_label_selector("b=1,a in (y,x)")
    b = parse_label_selector("a in (x,y,x), b=1")
    assert a == b and hash(a) == hash(b)
    assert [r.key for r in a.requirements] == ["a", "b"]
    assert a.requirements[0] == Requirement("a", IN, ("x", "y"))
    assert LabelSelector((Requirement("z", EXISTS), Requirement("a", EXISTS))).requirements[0].key == "a"


def test_equality_terms_and_exact_match() -> None:
    selector = parse_label_selector("app=web,env==prod,tier in (fe),x in (a,b),y!=z,w")
    assert selector.equality_terms() == (("app", "web"), ("env", "prod"), ("tier", "fe"))
    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("tier") == "fe"
    assert selector.requires_exact_match("x") is None
    assert selector.requires_exact_match("y") is None
    assert selector.requires_exact_match("nope") is None
    assert EVERYTHING.equality_terms() == ()


# ---------------------------------------------------------------------------
# Requirements
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,op,values,message",
    [
        ("a", IN, [], "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"),
        ("a", EQUALS, ["x", "y"], "values: Invalid value: []string{\"x\", \"y\"}: exact-match compatibility requires one single value"),
        ("a", EXISTS, ["x"], "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"),
        ("a", GREATER_THAN, [], "values: Invalid value: []string(nil): for 'Gt', 'Lt' operators, exactly one value is required"),
        ("a", "~", [], "operator: Unsupported value: \"~\": supported values: \"in\""),
        ("", EXISTS, [], "key: Invalid value: \"\": name part must be non-empty; name part " + NAME_REGEX_HINT),
    ],
)
def test_new_requirement_errors(key: str, op: str, values: list, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        new_requirement(key, op, values)
    assert str(info.value).startswith(message)


def test_requirement_string_forms() -> None:
    assert str(new_requirement("a", EQUALS, ["b"])) == "a=b"
    assert str(new_requirement("a", DOUBLE_EQUALS, ["b"])) == "a==b"
    assert str(new_requirement("a", NOT_EQUALS, ["b"])) == "a!=b"
    assert str(new_requirement("a", IN, ["c", "b"])) == "a in (b,c)"
    assert str(new_requirement("a", NOT_IN, ["b"])) == "a notin (b)"
    assert str(new_requirement("a", EXISTS)) == "a"
    assert str(new_requirement("a", DOES_NOT_EXIST)) == "!a"
    assert str(new_requirement("a", GREATER_THAN, ["1"])) == "a>1"
    assert str(new_requirement("a", LESS_THAN, ["1"])) == "a<1"


# ---------------------------------------------------------------------------
# metav1.LabelSelector
# ---------------------------------------------------------------------------


def test_from_dict_and_format() -> None:
    selector = {
        "matchLabels": {"tier": "fe", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["a"]},
            {"key": "gpu", "operator": "Exists", "values": []},
        ],
    }
    parsed = label_selector_from_dict(selector)
    assert str(parsed) == "app=web,!canary,env in (dev,prod),gpu,tier=fe,zone notin (a)"
    assert format_label_selector(selector) == str(parsed)
    assert parsed.matches({"app": "web", "tier": "fe", "env": "dev", "gpu": "1"})
    assert not parsed.matches({"app": "web", "tier": "fe", "env": "dev", "gpu": "1", "canary": "y"})
    assert parse_label_selector(str(parsed)) == parsed


def test_from_dict_special_cases() -> None:
    assert label_selector_from_dict(None) == NOTHING
    assert label_selector_from_dict({}) == EVERYTHING
    assert label_selector_from_dict({"matchLabels": None, "matchExpressions": None}) == EVERYTHING
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchLabels": {"a b": "c"}}) == "<error>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]}) == "<error>"


@pytest.mark.parametrize(
    "selector,message",
    [
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, '"Gt" is not a valid pod selector operator'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values: Invalid value: []string(nil)"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "values set must be empty"),
        ({"matchExpressions": [{"operator": "Exists"}]}, 'key: Invalid value: ""'),
        ({"matchLabels": {"app": "bad value"}}, 'values[0][app]: Invalid value: "bad value"'),
        ({"matchLabels": {"app": 1}}, "must be strings"),
        ({"matchLabels": ["a"]}, "matchLabels must be an object"),
        ({"matchExpressions": ["a"]}, "must be objects"),
        ("app=web", "must be an object"),
    ],
)
def test_from_dict_errors(selector: Any, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        label_selector_from_dict(selector)
    assert message in str(info.value)


def test_from_set() -> None:
    selector = label_selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    assert not selector.matches({"a": "1"})
    assert label_selector_from_set({}) == EVERYTHING
    assert label_selector_from_set(None) == EVERYTHING


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def test_validation_helpers() -> None:
    assert qualified_name_errors("app") == []
    assert qualified_name_errors("example.com/app") == []
    assert qualified_name_errors("Example.com/app") != []
    assert label_value_errors("") == []
    assert label_value_errors("a.b_c-d") == []
    assert label_value_errors("-a") != []
    assert dns1123_subdomain_errors("a.b-c") == []
    assert dns1123_subdomain_errors("a..b") != []
    assert qualified_name_errors("é" * 40) == [
        "name part must be no more than 63 characters",  # 80 bytes, as Go counts
        "name part " + NAME_REGEX_HINT,
    ]


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,requirements",
    [
        ("", ()),
        (",", ()),
        ("a=b", (("a", "=", "b"),)),
        ("a==b", (("a", "=", "b"),)),
        ("a!=b", (("a", "!=", "b"),)),
        ("a=", (("a", "=", ""),)),
        ("=b", (("", "=", "b"),)),
        ("metadata.name=foo,spec.nodeName=n1", (("metadata.name", "=", "foo"), ("spec.nodeName", "=", "n1"))),
        ("spec.nodeName=n1,metadata.name=foo", (("metadata.name", "=", "foo"), ("spec.nodeName", "=", "n1"))),
        ("status.phase!=Succeeded,status.phase!=Failed",
         (("status.phase", "!=", "Failed"), ("status.phase", "!=", "Succeeded"))),
        (r"a=b\,c", (("a", "=", "b,c"),)),
        (r"a=b\=c", (("a", "=", "b=c"),)),
        (r"a=b\\c", (("a", "=", "b\\c"),)),
        (r"a=\\", (("a", "=", "\\"),)),
        ("a=!b", (("a", "=", "!b"),)),
        ("a = b", (("a ", "=", " b"),)),  # no whitespace trimming, as in Kubernetes
        ("involvedObject.kind=Pod,,involvedObject.name=x",
         (("involvedObject.kind", "=", "Pod"), ("involvedObject.name", "=", "x"))),
    ],
)
def test_parse_field_selector(text: str, requirements: tuple) -> None:
    selector = parse_field_selector(text)
    assert selector.requirements == requirements
    assert all(isinstance(r, FieldRequirement) for r in selector.requirements)
    assert parse_field_selector(str(selector)) == selector


@pytest.mark.parametrize(
    "text,message",
    [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a===b", "invalid field selector: unescaped character in value: 61"),
        ("a!==b", "invalid field selector: unescaped character in value: 61"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=\\n", "invalid field selector: invalid escape sequence: \\n"),
    ],
)
def test_parse_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    assert str(info.value) == message


def test_field_selector_matching_and_exact() -> None:
    selector = parse_field_selector("spec.nodeName=node-1,status.phase!=Failed")
    assert selector.matches({"spec.nodeName": "node-1", "status.phase": "Running"})
    assert not selector.matches({"spec.nodeName": "node-1", "status.phase": "Failed"})
    assert not selector.matches({"spec.nodeName": "node-2", "status.phase": "Running"})
    assert not selector.matches({})
    assert selector.exact("spec.nodeName") == "node-1"
    assert selector.exact("status.phase") is None
    assert selector.exact("metadata.name") is None
    # A missing field reads as "": unscheduled pods match spec.nodeName=
    assert parse_field_selector("spec.nodeName=").matches({"metadata.name": "p"})
    assert parse_field_selector("spec.nodeName=").exact("spec.nodeName") == ""
    assert parse_field_selector("").matches({}) and parse_field_selector("").empty
    assert not selector.empty


def test_field_selector_from_set() -> None:
    selector = field_selector_from_set({"metadata.name": "a,b"})
    assert str(selector) == "metadata.name=a\\,b"
    assert selector.exact("metadata.name") == "a,b"
    assert field_selector_from_set(None).empty


def test_field_selector_accepts_plain_tuples() -> None:
    selector = FieldSelector((("b", "=", "1"), ("a", "!=", "2")))
    assert str(selector) == "a!=2,b=1"
    assert selector.requirements[0].field == "a"


def test_escape_field_value() -> None:
    assert escape_field_value("plain") == "plain"
    assert escape_field_value("a,b=c\\d") == "a\\,b\\=c\\\\d"


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

label_names = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?", fullmatch=True)
prefixes = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?(\.[a-z0-9]{1,4}){0,2}", fullmatch=True)
label_keys = st.one_of(
    label_names,
    st.builds(lambda p, n: f"{p}/{n}", prefixes, label_names),
    st.sampled_from(["in", "notin"]),
)
label_values = st.one_of(st.just(""), label_names, st.sampled_from(["in", "notin"]))
int_values = st.integers(-(2**63), 2**63 - 1).map(str)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(label_keys)
    op = draw(st.sampled_from([EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST,
                               GREATER_THAN, LESS_THAN]))
    if op in (EXISTS, DOES_NOT_EXIST):
        values: list[str] = []
    elif op in (IN, NOT_IN):
        values = draw(st.lists(label_values, min_size=1, max_size=4))
    elif op in (GREATER_THAN, LESS_THAN):
        values = [draw(int_values.filter(lambda v: not v.startswith("-")))]
    else:
        values = [draw(label_values)]
    return new_requirement(key, op, values)


label_selectors = st.lists(requirements(), max_size=5).map(lambda rs: LabelSelector(tuple(rs)))
label_maps = st.dictionaries(label_keys, label_values | int_values.filter(lambda v: not v.startswith("-")),
                             max_size=5)


@robust
@given(label_selectors)
def test_parse_of_formatted_selector_equals_original(selector: LabelSelector) -> None:
    assert parse_label_selector(str(selector)) == selector


@robust
@given(label_selectors, label_maps)
def test_selector_is_the_conjunction_of_its_requirements(selector: LabelSelector, labels: dict) -> None:
    expected = all(r.matches(labels) for r in selector.requirements)
    assert selector.matches(labels) is expected
    assert parse_label_selector(str(selector)).matches(labels) is expected


@robust
@given(label_selectors, label_maps)
def test_equality_terms_are_necessary_conditions(selector: LabelSelector, labels: dict) -> None:
    if selector.matches(labels):
        for key, value in selector.equality_terms():
            assert labels.get(key) == value


@robust
@given(st.dictionaries(label_keys, label_values, max_size=4),
       st.lists(st.tuples(label_keys, st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                          st.lists(label_values, min_size=1, max_size=3)), max_size=3),
       label_maps)
def test_dict_selector_round_trips_through_its_string_form(
    match_labels: dict, expressions: list, labels: dict
) -> None:
    exprs = [
        {"key": k, "operator": op, **({"values": vs} if op in ("In", "NotIn") else {})}
        for k, op, vs in expressions
    ]
    selector = label_selector_from_dict({"matchLabels": match_labels, "matchExpressions": exprs})
    text = format_label_selector({"matchLabels": match_labels, "matchExpressions": exprs})
    reparsed = parse_label_selector("" if text == "<none>" else text)
    assert reparsed == selector
    direct = all(labels.get(k) == v for k, v in match_labels.items()) and all(
        (k in labels and labels[k] in vs) if op == "In"
        else (k not in labels or labels[k] not in vs) if op == "NotIn"
        else (k in labels) if op == "Exists"
        else (k not in labels)
        for k, op, vs in expressions
    )
    assert selector.matches(labels) is direct


selector_noise = st.text(alphabet="ab/.-_=!(),<> \t01inot\\", max_size=30)


@robust
@given(st.one_of(st.text(max_size=30), selector_noise))
def test_label_parser_only_raises_selector_error(text: str) -> None:
    try:
        selector = parse_label_selector(text)
    except SelectorError:
        return
    assert parse_label_selector(str(selector)) == selector


@robust
@given(st.one_of(st.text(max_size=30), selector_noise))
def test_field_parser_only_raises_selector_error(text: str) -> None:
    try:
        selector = parse_field_selector(text)
    except SelectorError:
        return
    assert isinstance(selector, FieldSelector)


@robust
@given(st.text())
def test_field_value_escaping_round_trips(value: str) -> None:
    assert unescape_field_value(escape_field_value(value)) == value


field_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9.]{0,12}", fullmatch=True)


@robust
@given(st.lists(st.tuples(field_names, st.sampled_from(["=", "!="]), st.text(max_size=8)), max_size=5))
def test_field_selector_round_trips(terms: list) -> None:
    selector = FieldSelector(tuple(terms))
    assert parse_field_selector(str(selector)) == selector


@robust
@given(st.lists(st.tuples(field_names, st.sampled_from(["=", "!="]), st.text(max_size=4)), max_size=4),
       st.dictionaries(field_names, st.text(max_size=4), max_size=4))
def test_field_selector_matching_and_exact_agree(terms: list, fields: dict) -> None:
    selector = FieldSelector(tuple(terms))
    expected = all((fields.get(f, "") == v) == (op == "=") for f, op, v in terms)
    assert selector.matches(fields) is expected
    for field, op, _value in terms:
        if op == "=":
            pinned = selector.exact(field)
            assert pinned is not None
            if selector.matches(fields):
                assert fields.get(field, "") == pinned
