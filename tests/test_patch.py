"""Tests for podlife.machinery.patch: RFC 7386 merge patch and RFC 6902 JSON patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlife.machinery.patch import (
    PatchError, apply_json_patch, apply_merge_patch, create_merge_patch, escape_json_pointer_token,
    json_equal, parse_json_pointer,
)

# Property tests run in a shared, sometimes loaded CI box: never fail on timing.
robust = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(
    allow_nan=False, allow_infinity=False
) | st.text(max_size=8)
keys = st.text(alphabet="ab~/-0", min_size=0, max_size=3)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
json_docs = st.dictionaries(keys, json_values, max_size=5)

# Values without nulls inside objects: exactly what merge patch can express.
null_free_scalars = st.booleans() | st.integers(-100, 100) | st.text(max_size=5)
null_free_values = st.recursive(
    null_free_scalars,
    lambda children: st.lists(children | st.none(), max_size=3)
    | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


def all_pointers(doc: Any, prefix: str = "") -> list[str]:
    """Every pointer that resolves inside ``doc`` (including the root)."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += all_pointers(value, prefix + "/" + escape_json_pointer_token(key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += all_pointers(value, f"{prefix}/{index}")
    return found


# ---------------------------------------------------------------------------
# Merge patch
# ---------------------------------------------------------------------------

# RFC 7386 Appendix A, verbatim.
RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target,patch,expected", RFC7386_CASES)
def test_merge_patch_rfc_examples(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert apply_merge_patch(target, patch) == expected
    assert target == before


def test_merge_patch_kubernetes_label_update_shares_untouched_subtrees() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}, "annotations": {"x": "y"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running"},
    }
    patch = {"metadata": {"labels": {"tier": None, "env": "prod"}}}
    result = apply_merge_patch(pod, patch)
    assert result["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    # Untouched subtrees are shared, touched ones are fresh.
    assert result["spec"] is pod["spec"]
    assert result["status"] is pod["status"]
    assert result["metadata"]["annotations"] is pod["metadata"]["annotations"]
    assert result["metadata"] is not pod["metadata"]


def test_merge_patch_result_does_not_alias_the_patch() -> None:
    patch = {"spec": {"ports": [{"port": 80}]}}
    result = apply_merge_patch({}, patch)
    result["spec"]["ports"][0]["port"] = 81
    assert patch == {"spec": {"ports": [{"port": 80}]}}


def test_merge_patch_nulls_inside_arrays_are_kept() -> None:
    assert apply_merge_patch({}, {"a": [None, {"b": None}]}) == {"a": [None, {"b": None}]}


def test_merge_patch_null_for_missing_key_is_a_no_op() -> None:
    assert apply_merge_patch({"a": 1}, {"zzz": None}) == {"a": 1}


def test_create_merge_patch_examples() -> None:
    assert create_merge_patch({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"b": None, "c": 3}
    assert create_merge_patch({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}) == {"a": {"y": None}}
    assert create_merge_patch({"a": [1]}, {"a": [1, 2]}) == {"a": [1, 2]}
    assert create_merge_patch({"a": 1}, {"a": 1}) == {}
    assert create_merge_patch({"a": 1}, ["x"]) == ["x"]
    assert create_merge_patch({"a": True}, {"a": 1}) == {"a": 1}


@robust
@given(st.dictionaries(keys, null_free_values, max_size=5), st.dictionaries(keys, null_free_values, max_size=5))
def test_merge_patch_of_diff_round_trips(original: dict, modified: dict) -> None:
    before = copy.deepcopy(original)
    patch = create_merge_patch(original, modified)
    assert json_equal(apply_merge_patch(original, patch), modified)
    assert original == before


@robust
@given(json_values, json_values)
def test_merge_patch_never_mutates_and_is_idempotent(target: Any, patch: Any) -> None:
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    once = apply_merge_patch(target, patch)
    assert json_equal(target, target_before) and json_equal(patch, patch_before)
    # RFC 7386 patches are idempotent.
    assert json_equal(apply_merge_patch(once, patch), once)


# ---------------------------------------------------------------------------
# JSON pointer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pointer,tokens",
    [
        ("", []),
        ("/", [""]),
        ("/foo", ["foo"]),
        ("/foo/0", ["foo", "0"]),
        ("/a~1b", ["a/b"]),
        ("/m~0n", ["m~n"]),
        ("/~01", ["~1"]),
        ("/metadata/labels/app.kubernetes.io~1name", ["metadata", "labels", "app.kubernetes.io/name"]),
        ("//x", ["", "x"]),
    ],
)
def test_parse_json_pointer(pointer: str, tokens: list[str]) -> None:
    assert parse_json_pointer(pointer) == tokens


@pytest.mark.parametrize("pointer", ["foo", "/a~2", "/a~", 5, None])
def test_parse_json_pointer_rejects(pointer: Any) -> None:
    with pytest.raises(PatchError):
        parse_json_pointer(pointer)


@robust
@given(st.lists(st.text(max_size=6), max_size=5))
def test_pointer_escaping_round_trips(tokens: list[str]) -> None:
    pointer = "".join("/" + escape_json_pointer_token(t) for t in tokens)
    assert parse_json_pointer(pointer) == tokens


# ---------------------------------------------------------------------------
# JSON patch: RFC 6902 Appendix A
# ---------------------------------------------------------------------------

RFC6902_OK = [
    # A.1 add an object member
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    # A.2 add an array element
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    # A.3 remove an object member
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    # A.4 remove an array element
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    # A.5 replace a value
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    # A.6 move a value
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    # A.7 move an array element
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    # A.8 test a value: success
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    # A.10 add a nested member object
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    # A.11 ignore unrecognised elements
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    # A.14 ~ escape ordering
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    # A.16 add an array value
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
]

RFC6902_ERRORS = [
    # A.9 test a value: error
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    # A.12 add to a nonexistent target
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    # A.15 comparing strings and numbers
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
]


@pytest.mark.parametrize("doc,ops,expected", RFC6902_OK)
def test_json_patch_rfc_examples(doc: Any, ops: list, expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_json_patch(doc, ops) == expected
    assert doc == before


@pytest.mark.parametrize("doc,ops", RFC6902_ERRORS)
def test_json_patch_rfc_error_examples(doc: Any, ops: list) -> None:
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)


# ---------------------------------------------------------------------------
# JSON patch: behaviour and errors
# ---------------------------------------------------------------------------


def test_failing_test_op_is_an_error_with_kubernetes_wording() -> None:
    doc = {"metadata": {"resourceVersion": "5"}}
    with pytest.raises(PatchError, match=r"^testing value /metadata/resourceVersion failed: test failed$"):
        apply_json_patch(doc, [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "4"},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "6"},
        ])


def test_test_op_distinguishes_booleans_from_numbers() -> None:
    with pytest.raises(PatchError):
        apply_json_patch({"a": True}, [{"op": "test", "path": "/a", "value": 1}])
    with pytest.raises(PatchError):
        apply_json_patch({"a": 0}, [{"op": "test", "path": "/a", "value": False}])
    apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}])
    apply_json_patch({"a": {"b": [1, None]}}, [{"op": "test", "path": "/a", "value": {"b": [1, None]}}])


def test_test_op_on_missing_path_fails() -> None:
    with pytest.raises(PatchError, match="test operation does not apply"):
        apply_json_patch({}, [{"op": "test", "path": "/a", "value": None}])


def test_test_op_null_value_present() -> None:
    assert apply_json_patch({"a": None}, [{"op": "test", "path": "/a", "value": None}]) == {"a": None}


@pytest.mark.parametrize(
    "doc,op,message",
    [
        ({}, {"op": "remove", "path": "/a"}, "Unable to remove nonexistent key: a"),
        ({}, {"op": "replace", "path": "/a", "value": 1}, "doc is missing key: /a"),
        ({"a": 1}, {"op": "add", "path": "/a/b", "value": 1}, "add operation does not apply"),
        ({"a": {}}, {"op": "add", "path": "/x/y/z", "value": 1}, 'doc is missing path: "/x/y/z"'),
        ({"a": [1]}, {"op": "add", "path": "/a/2", "value": 1}, "invalid index: 2"),
        ({"a": [1]}, {"op": "add", "path": "/a/01", "value": 1}, "not a proper array index: '01'"),
        ({"a": [1]}, {"op": "add", "path": "/a/-1", "value": 1}, "not a proper array index"),
        ({"a": [1]}, {"op": "replace", "path": "/a/-", "value": 1}, "not a proper array index: '-'"),
        ({"a": [1]}, {"op": "remove", "path": "/a/1"}, "invalid index: 1"),
        ({"a": [1]}, {"op": "remove", "path": "/a/x"}, "not a proper array index"),
        ({"a": {"b": 1}}, {"op": "move", "from": "/a", "path": "/a/b/c"}, "proper prefix"),
        ({"a": 1}, {"op": "move", "from": "/missing", "path": "/b"}, "move operation does not apply"),
        ({"a": 1}, {"op": "copy", "from": "/missing", "path": "/b"}, "copy operation does not apply"),
        ({"a": 1}, {"op": "remove", "path": ""}, "document root"),
        ({"a": 1}, {"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
        ({"a": 1}, {"path": "/a"}, "Unexpected kind: unknown"),
        ({"a": 1}, {"op": "add", "path": "/b"}, "missing the 'value' field"),
        ({"a": 1}, {"op": "add", "value": 1}, "missing the 'path' field"),
        ({"a": 1}, {"op": "move", "path": "/b"}, "missing the 'from' field"),
        ({"a": 1}, {"op": "add", "path": 5, "value": 1}, "failed to decode path"),
        ({"a": 1}, {"op": "add", "path": "a", "value": 1}, "invalid JSON pointer"),
        ("scalar", {"op": "add", "path": "/a", "value": 1}, "add operation does not apply"),
    ],
)
def test_json_patch_errors(doc: Any, op: dict, message: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError, match=_escape(message)):
        apply_json_patch(doc, [op])
    assert doc == before


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("ops", [{"op": "add"}, "nope", None, [1], [["op", "add"]]])
def test_json_patch_rejects_malformed_patches(ops: Any) -> None:
    with pytest.raises(PatchError):
        apply_json_patch({}, ops)


def test_patch_error_is_a_value_error() -> None:
    assert issubclass(PatchError, ValueError)


def test_json_patch_root_operations() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}]) == {"b": 2}
    assert apply_json_patch([1, 2], [{"op": "add", "path": "/0", "value": 0}]) == [0, 1, 2]
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}]) == {"a": 1}
    assert apply_json_patch({"a": 1}, []) == {"a": 1}


def test_json_patch_empty_and_escaped_keys() -> None:
    doc = {"": 1, "metadata": {"labels": {}}}
    result = apply_json_patch(doc, [
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
        {"op": "add", "path": "/metadata/labels/a~0b", "value": "x"},
        {"op": "replace", "path": "/", "value": 2},
    ])
    assert result == {"": 2, "metadata": {"labels": {"app.kubernetes.io/name": "web", "a~b": "x"}}}


def test_json_patch_move_to_same_location_is_a_no_op() -> None:
    doc = {"a": {"b": 1}}
    assert apply_json_patch(doc, [{"op": "move", "from": "/a", "path": "/a"}]) == doc


def test_json_patch_copy_is_independent_of_source() -> None:
    doc = {"a": {"b": [1]}}
    result = apply_json_patch(doc, [
        {"op": "copy", "from": "/a", "path": "/c"},
        {"op": "add", "path": "/c/b/-", "value": 2},
    ])
    assert result == {"a": {"b": [1]}, "c": {"b": [1, 2]}}
    assert doc == {"a": {"b": [1]}}


def test_json_patch_value_is_copied_not_aliased() -> None:
    value = {"x": [1]}
    result = apply_json_patch({}, [{"op": "add", "path": "/v", "value": value}])
    result["v"]["x"].append(2)
    assert value == {"x": [1]}


def test_json_patch_shares_untouched_subtrees_and_copies_the_path() -> None:
    doc = {
        "metadata": {"labels": {"a": "1"}, "annotations": {"k": "v"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    result = apply_json_patch(doc, [{"op": "add", "path": "/metadata/labels/b", "value": "2"}])
    assert result["spec"] is doc["spec"]
    assert result["metadata"]["annotations"] is doc["metadata"]["annotations"]
    assert result["metadata"] is not doc["metadata"]
    assert doc["metadata"]["labels"] == {"a": "1"}


def test_json_patch_is_atomic_on_failure() -> None:
    doc = {"a": [1, 2, 3]}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [
            {"op": "remove", "path": "/a/0"},
            {"op": "add", "path": "/b", "value": 1},
            {"op": "test", "path": "/a/0", "value": 99},
        ])
    assert doc == {"a": [1, 2, 3]}


def test_many_ops_on_one_map_reuse_the_copy() -> None:
    labels = {f"k{i}": str(i) for i in range(50)}
    doc = {"metadata": {"labels": labels}}
    ops = [{"op": "replace", "path": f"/metadata/labels/k{i}", "value": "x"} for i in range(50)]
    result = apply_json_patch(doc, ops)
    assert set(result["metadata"]["labels"].values()) == {"x"}
    assert set(labels.values()) != {"x"}


def test_kopf_style_finalizer_patch() -> None:
    obj = {"metadata": {"finalizers": ["a", "b"], "resourceVersion": "7"}}
    ops = [
        {"op": "test", "path": "/metadata/finalizers", "value": ["a", "b"]},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    assert apply_json_patch(obj, ops)["metadata"]["finalizers"] == ["b"]
    with pytest.raises(PatchError):
        apply_json_patch(obj, [{"op": "test", "path": "/metadata/finalizers", "value": ["a"]}])


def test_json_equal() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(True, 1)
    assert not json_equal(1, True)
    assert not json_equal(None, False)
    assert not json_equal({"a": 1}, {"b": 1})
    assert not json_equal([1], [1, 2])
    assert not json_equal("1", 1)
    assert json_equal(False, False)


# ---------------------------------------------------------------------------
# JSON patch: properties
# ---------------------------------------------------------------------------


@robust
@given(json_docs, keys, json_values)
def test_add_then_remove_member_is_identity(doc: dict, key: str, value: Any) -> None:
    if key in doc:
        return
    pointer = "/" + escape_json_pointer_token(key)
    before = copy.deepcopy(doc)
    added = apply_json_patch(doc, [{"op": "add", "path": pointer, "value": value}])
    assert json_equal(added[key], value)
    assert json_equal(apply_json_patch(added, [{"op": "remove", "path": pointer}]), before)
    assert json_equal(doc, before)


@robust
@given(st.lists(json_values, max_size=6), st.data(), json_values)
def test_add_then_remove_array_element_is_identity(items: list, data: st.DataObject, value: Any) -> None:
    index = data.draw(st.integers(0, len(items)))
    doc = {"items": items}
    added = apply_json_patch(doc, [{"op": "add", "path": f"/items/{index}", "value": value}])
    assert len(added["items"]) == len(items) + 1
    assert json_equal(apply_json_patch(added, [{"op": "remove", "path": f"/items/{index}"}]), doc)


@robust
@given(json_docs, st.data())
def test_test_op_succeeds_on_every_existing_path(doc: dict, data: st.DataObject) -> None:
    pointer = data.draw(st.sampled_from(all_pointers(doc)))
    expected = _reference_get(doc, pointer)
    assert apply_json_patch(doc, [{"op": "test", "path": pointer, "value": expected}]) == doc


# A deliberately naive reference implementation: deep-copy, then mutate in place.

def _ref_tokens(pointer: str) -> list[str]:
    return parse_json_pointer(pointer)


def _ref_index(token: str, size: int, insert: bool) -> int:
    if insert and token == "-":
        return size
    if not token.isascii() or not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError("bad index")
    index = int(token)
    if index > size or (index == size and not insert):
        raise PatchError("out of range")
    return index


def _reference_get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _ref_tokens(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_ref_index(token, len(node), False)]
        else:
            raise PatchError("missing")
    return node


def _ref_parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _ref_tokens(pointer)
    parent = _reference_get(doc, "".join("/" + escape_json_pointer_token(t) for t in tokens[:-1]))
    if not isinstance(parent, (dict, list)):
        raise PatchError("not a container")
    return parent, tokens[-1]


def _reference_apply(doc: Any, ops: list[dict]) -> Any:
    doc = copy.deepcopy(doc)

    def add(path: str, value: Any) -> None:
        nonlocal doc
        if path == "":
            doc = value
            return
        parent, key = _ref_parent(doc, path)
        if isinstance(parent, dict):
            parent[key] = value
        else:
            parent.insert(_ref_index(key, len(parent), True), value)

    def remove(path: str) -> Any:
        if path == "":
            raise PatchError("root")
        parent, key = _ref_parent(doc, path)
        if isinstance(parent, dict):
            if key not in parent:
                raise PatchError("missing")
            return parent.pop(key)
        return parent.pop(_ref_index(key, len(parent), False))

    for op in ops:
        kind, path = op["op"], op["path"]
        if kind == "add":
            add(path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            remove(path)
        elif kind == "replace":
            _reference_get(doc, path)
            if path == "":
                doc = copy.deepcopy(op["value"])
            else:
                remove(path)
                add(path, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = op["from"]
            if path != source and path.startswith(source + "/"):
                raise PatchError("prefix")
            value = _reference_get(doc, source)
            if path != source:
                remove(source)
                add(path, value)
        elif kind == "copy":
            add(path, copy.deepcopy(_reference_get(doc, op["from"])))
        elif kind == "test":
            if not json_equal(_reference_get(doc, path), op["value"]):
                raise PatchError("test")
    return doc


@st.composite
def docs_and_ops(draw: st.DrawFn) -> tuple[Any, list[dict]]:
    """A document and a patch drawn step by step against the evolving document.

    Pointers mostly come from the current state, so long valid sequences are
    common; occasional stale or invented pointers exercise the error paths.
    """
    doc = draw(st.dictionaries(keys, json_values, min_size=2, max_size=6))
    state, ops = doc, []
    for _ in range(draw(st.integers(0, 8))):
        live = all_pointers(state)[1:] or [""]  # the root is covered by unit tests
        existing = st.sampled_from(live)
        pointer = st.one_of(
            *[existing] * 6,
            existing.map(lambda p: p + "/-"),
            st.sampled_from(["/zz", "/a/-", "/a/0", "/a/1", "/-", "/0"]),
        )
        path = draw(pointer)
        kind = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "test"]))
        op: dict[str, Any] = {"op": kind, "path": path}
        if kind in ("move", "copy"):
            op["from"] = draw(pointer)
        elif kind == "test":
            try:
                current = _reference_get(state, path)
            except (PatchError, IndexError):
                current = None
            op["value"] = draw(st.just(current) | st.just(current) | json_values)
        elif kind in ("add", "replace"):
            op["value"] = draw(json_values)
        ops.append(op)
        try:
            state = _reference_apply(state, [op])
        except (PatchError, IndexError):
            break
    return doc, ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs_and_ops())
def test_json_patch_agrees_with_naive_reference(case: tuple[Any, list[dict]]) -> None:
    doc, ops = case
    before = copy.deepcopy(doc)
    try:
        expected = _reference_apply(doc, ops)
    except (PatchError, IndexError):
        with pytest.raises(PatchError):
            apply_json_patch(doc, ops)
        # Generation stops at the first failing op, so the prefix is valid.
        ops = ops[:-1]
        expected = _reference_apply(doc, ops)
    result = apply_json_patch(doc, ops)
    assert json_equal(result, expected)
    assert json_equal(doc, before)
