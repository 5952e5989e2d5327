"""Priority and fairness: who goes into which level, fair queuing per user, 429s when full.

The levels are driven as the middleware drives them (acquire before the handler,
release after), with asyncio tasks standing for requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podlife.api.flowcontrol import (
    DEFAULT_LEVELS, TOO_MANY_MESSAGE, FlowControl, Level, LevelConfig, Rejected, classify, too_many_requests,
)
from podlife.api.identity import ADMIN_USER, UserInfo


def sa(namespace: str, name: str) -> UserInfo:
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


def test_users_fall_into_kubernetes_default_levels() -> None:
    assert classify(ADMIN_USER) is None  # system:masters is exempt
    assert classify(UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))) == "node-high"
    assert classify(UserInfo("system:kube-scheduler", groups=("system:authenticated",))) == "workload-high"
    assert classify(sa("kube-system", "job-controller")) == "workload-high"
    assert classify(sa("default", "app")) == "workload-low"
    assert classify(UserInfo("alice", groups=("system:authenticated",))) == "global-default"
    assert classify(UserInfo("system:anonymous", groups=("system:unauthenticated",))) == "catch-all"
    assert classify(None) == "catch-all"


def test_seats_follow_the_shares_of_600() -> None:
    fc = FlowControl()
    total = sum(c.shares for c in DEFAULT_LEVELS)
    assert fc.levels["workload-low"].seats == -(-600 * 100 // total)
    assert sum(level.seats for level in fc.levels.values()) >= 600


def test_the_429_is_kubernetes_status() -> None:
    exc = too_many_requests()
    assert exc.code == 429 and exc.reason == "TooManyRequests" and exc.message == TOO_MANY_MESSAGE
    assert exc.retry_after == 1 and exc.status()["details"] == {"retryAfterSeconds": 1}


async def test_a_busy_user_cannot_starve_the_others() -> None:
    level = Level(LevelConfig("l", 1, queue_length=10, queue_wait=5), seats=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def request(user: str, tag: str) -> None:
        await level.acquire(user)
        order.append(tag)
        if tag == "first":
            await gate.wait()
        level.release()

    first = asyncio.create_task(request("busy", "first"))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(request("busy", f"busy-{i}")) for i in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(request("quiet", "quiet")))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *tasks)
    # round-robin over users: the quiet user's one request goes second, not last
    assert order[:3] == ["first", "busy-0", "quiet"]
    assert level.executing == 0 and not level.queues


async def test_a_full_queue_and_a_long_wait_are_rejected() -> None:
    level = Level(LevelConfig("l", 1, queue_length=1, queue_wait=0.05), seats=1)
    await level.acquire("u")  # takes the only seat
    waiting = asyncio.create_task(level.acquire("u"))
    await asyncio.sleep(0)
    with pytest.raises(Rejected):
        await level.acquire("u")  # the queue holds one
    with pytest.raises(Rejected):
        await waiting  # nobody released the seat in time
    assert level.rejected == 2
    level.release()
    assert level.executing == 0 and not level.queues


# --------------------------------------------------------------------------- through the real HTTP server


@contextlib.asynccontextmanager
async def tight_server(local_api: Any, tmp_path: Any) -> AsyncIterator[tuple[str, str, FlowControl]]:
    """The real HTTPS server with few seats on the test's store: (its URL, a service-account token whose account
    may do anything in ``default``, its flow control)."""
    import ssl

    import aiohttp

    from podlife.api.authn import AuthenticationOptions
    from podlife.api.authz.bootstrap import ensure_bootstrap_policy
    from podlife.api.pki import PKI
    from podlife.api.server import APIServer
    from podlife.client.base import Resource

    pki = PKI(tmp_path / "pki")
    pki.ensure(["127.0.0.1"])
    await ensure_bootstrap_policy(local_api.client)
    bindings = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    await local_api.client.create(bindings, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "flood-edit", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}, "default")
    tight = FlowControl(levels=tuple(LevelConfig(c.name, c.shares, queue_length=2, queue_wait=1.0)
                                     for c in DEFAULT_LEVELS), total_seats=12)
    server = APIServer(local_api.ctx, token="admin-secret", service_account_key=pki.service_account_key(),
                       authentication=AuthenticationOptions(), flow_control=tight)
    url = await server.start("127.0.0.1", 0, pki.server_ssl_context())
    tls = ssl.create_default_context(cafile=str(pki.ca_cert))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
            admin = {"Authorization": "Bearer admin-secret"}
            sa = await session.post(f"{url}/api/v1/namespaces/default/serviceaccounts",
                                    json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "flood"}},
                                    headers=admin)
            assert sa.status == 201
            token_resp = await session.post(f"{url}/api/v1/namespaces/default/serviceaccounts/flood/token",
                                            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                                  "spec": {}}, headers=admin)
            token = (await token_resp.json())["status"]["token"]
        yield url, token, tight
    finally:
        await server.stop()


def _configmap(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"flood-{i}"}, "data": {"k": "v"}}


async def test_a_flood_through_the_server_gets_429s_and_the_admin_is_still_answered(local_api: Any,
                                                                                     tmp_path: Any) -> None:
    """Service-account clients flood creates at a server with few seats; the overflow is 429, the admin exempt."""
    import json
    import ssl

    import aiohttp

    async with tight_server(local_api, tmp_path) as (url, token, _):
        tls = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, limit=0)) as session:
            async def post(headers: dict[str, str], i: int) -> tuple[int, dict[str, Any], str]:
                async with session.post(f"{url}/api/v1/namespaces/default/configmaps", json=_configmap(i),
                                        headers=headers) as resp:
                    return resp.status, json.loads(await resp.text()), resp.headers.get("Retry-After", "")

            flood = [asyncio.ensure_future(post({"Authorization": f"Bearer {token}"}, i)) for i in range(300)]
            admin = await post({"Authorization": "Bearer admin-secret"}, 10_000)
            results = await asyncio.gather(*flood)
    assert admin[0] == 201  # exempt: answered whatever the flood does
    codes = [code for code, _, _ in results]
    assert set(codes) <= {201, 429}, set(codes)
    assert 201 in codes and 429 in codes, codes.count(429)
    refused = next(r for r in results if r[0] == 429)
    assert refused[1]["reason"] == "TooManyRequests" and refused[1]["message"] == TOO_MANY_MESSAGE
    assert refused[2] == "1"


FLOOD = 40


async def test_the_http_client_rides_out_429s_as_client_go(local_api: Any, tmp_path: Any) -> None:
    """The same flood through podlife's HTTP client: the server turns many away, yet every create succeeds,
    because the client waits the Retry-After and sends again (client-go's REST client does so)."""
    from podlife.client.base import CONFIGMAPS
    from podlife.client.http import HTTPClient

    async with tight_server(local_api, tmp_path) as (url, token, tight):
        # 40 at once from one user against 12 seats and a queue of 2: most are turned away, and all retry
        # together after the same 1 s, so each round admits about a dozen; a few rounds of the 10 retries see
        # every one through, with room left for a busy machine
        client = HTTPClient(url, token=token, ca_file=tmp_path / "pki" / "ca.crt", max_connections=FLOOD)
        try:
            created = await asyncio.gather(*(client.create(CONFIGMAPS, _configmap(i), "default") for i in range(FLOOD)))
        finally:
            await client.close()
    assert sorted(c["metadata"]["name"] for c in created) == sorted(f"flood-{i}" for i in range(FLOOD))
    assert sum(level.rejected for level in tight.levels.values()) > 0  # there were 429s to ride out


def test_which_responses_are_retried() -> None:
    """client-go's checkWait: a 429 or 5xx with a Retry-After of whole seconds, capped; nothing else."""
    from podlife.client.http import MAX_RETRY_AFTER, retry_after

    assert retry_after(429, "1") == 1.0 and retry_after(503, "2") == 2.0
    assert retry_after(429, "3600") == MAX_RETRY_AFTER
    assert retry_after(429, None) is None  # an eviction a budget refuses: the caller decides
    assert retry_after(500, None) is None and retry_after(409, "1") is None and retry_after(429, "soon") is None
