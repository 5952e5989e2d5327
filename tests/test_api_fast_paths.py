"""The API server's shortcuts give exactly what the long way gives.

- ``fieldvalidation.surely_no_duplicates`` lets a body skip the exact duplicate-key
  search only when it has none: checked against that search on bodies with and
  without duplicates, in every spelling that could fool a colon count.
- ``cache._with_revision`` (a cached object's encoding made from its stored bytes) is
  byte for byte ``orjson.dumps`` of the object with its resourceVersion, for objects
  written through the real REST layer; and it declines when the field is elsewhere.
"""

from __future__ import annotations

import json

import orjson
import pytest

from podlife.api.cache import _with_revision
from podlife.api.fieldvalidation import surely_no_duplicates
from podlife.api.rest import encode_for_storage, new_uid
from podlife.client.base import PODS
from podlife.registry.schemas.decoder import duplicate_fields

from .in_process import InProcessApi

BODIES = [
    b'{"a":1,"b":{"c":1,"d":2}}',
    b'{"a":1,"b":{"c":1,"c":2}}',
    b'{"a":1, "a" : 2}',
    b'{"a" :1,"a":2}',
    b'{"a":"x:y","a":"z"}',
    b'{"a":"x","a":"\\u003a"}',
    b'{"a":"\\"k\\":1","b":2}',
    b'{"k":[{"x":1},{"x":1,"x":2}]}',
    b'{"\\u0061":1,"a":2}',
    b'{"a":NaN,"a":1}',
    b'not json',
    json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b:c"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo a:b"]}]}},
               indent=2).encode(),
]


@pytest.mark.parametrize("raw", BODIES)
def test_shortcut_only_when_the_exact_search_finds_nothing(raw: bytes) -> None:
    if surely_no_duplicates(raw):
        assert duplicate_fields(raw) == []


def test_shortcut_taken_for_plain_bodies() -> None:
    assert surely_no_duplicates(BODIES[0])
    assert surely_no_duplicates(BODIES[-1])
    assert not surely_no_duplicates(BODIES[1])


def test_new_uid_is_a_version_4_uuid() -> None:
    import uuid

    for _ in range(100):
        text = new_uid()
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_revision_spliced_only_in_metadata() -> None:
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "resourceVersion": ""}, "spec": {}}
    stored = encode_for_storage(obj)
    obj["metadata"]["resourceVersion"] = "42"
    assert _with_revision(stored, 42) == orjson.dumps(obj)
    nested_first = orjson.dumps({"kind": "X", "spec": {"resourceVersion": ""}, "metadata": {"resourceVersion": ""}})
    assert _with_revision(nested_first, 1) is None
    assert _with_revision(b'{"kind":"X","metadata":{"name":"a"}}', 1) is None


async def test_cached_encodings_match_a_fresh_encoding(local_api: InProcessApi) -> None:
    client = local_api.client
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await client.create(PODS, pod, "default")
    await client.patch(PODS, "a", {"metadata": {"annotations": {"k": "v:w"}}}, "default")
    await client.patch(PODS, "a", {"status": {"phase": "Running"}}, "default", subresource="status")
    rest = local_api.ctx.rest_by("", "v1", "pods")
    assert rest is not None
    co = rest.cache.get(rest.rt.key("default", "a"))
    assert co is not None and co.rv > 0
    assert co.raw == orjson.dumps(co.obj)
    assert orjson.loads(co.raw)["metadata"]["resourceVersion"] == str(co.rv)
