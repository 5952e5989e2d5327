"""The controller manager: every controller under one ``--controllers`` and one leader election.

Three layers: the names (kube-controller-manager's canonical ``--controllers`` names and
their aliases, the flags' parsing); two :class:`ControllerManager` on one in-process API
(only the Lease holder runs controllers; when its run is cancelled it releases the Lease
and the other takes over, and its controllers act); and one ``podlife up --controllers
'*,-serviceaccount' --no-leader-elect``, where a new namespace gets the root CA ConfigMap
but no ``default`` ServiceAccount, and no Lease is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from podlife.client.base import LEASES, NAMESPACES, Client
from podlife.controllers.manager import CONTROLLERS, LEADER_LEASE, LEADER_NAMESPACE, ControllerManager
from podlife.controllers.options import ALIASES, ControllerManagerOptions, add_flags, canonical, from_args
from podlife.controllers.serviceaccounts import SERVICE_ACCOUNTS
from podlife.machinery.errors import ApiError

from .cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
from .in_process import InProcessApi

TIMEOUT = 20.0

#: the controllers that moved under the manager, by kube-controller-manager's canonical names
MOVED = ("namespace-controller", "garbage-collector-controller", "serviceaccount-controller",
         "serviceaccount-token-controller", "endpoints-controller", "endpointslice-controller",
         "endpointslice-mirroring-controller", "clusterrole-aggregation-controller",
         "root-ca-certificate-publisher-controller")


# --------------------------------------------------------------------------- names and flags


def test_the_registry_uses_kube_controller_managers_names_and_accounts() -> None:
    assert set(MOVED) <= set(CONTROLLERS)
    assert all(name.endswith("-controller") for name in CONTROLLERS)
    assert set(ALIASES.values()) <= set(CONTROLLERS)  # every alias names a controller podlife has
    for module, cls, _account in CONTROLLERS.values():
        assert hasattr(importlib.import_module(f"podlife.controllers.{module}"), cls)
    assert CONTROLLERS["serviceaccount-token-controller"][2] is None  # kube-controller-manager's own identity
    assert CONTROLLERS["garbage-collector-controller"][2] == "generic-garbage-collector"
    assert CONTROLLERS["root-ca-certificate-publisher-controller"][2] == "root-ca-cert-publisher"
    assert CONTROLLERS["endpoints-controller"][2] == "endpoint-controller"


def test_aliases_and_canonical_names_mean_the_same_controller() -> None:
    assert canonical("garbagecollector") == "garbage-collector-controller"
    assert canonical("-serviceaccount") == "-serviceaccount-controller"
    off = ControllerManagerOptions(controllers=("*", "-serviceaccount"))
    assert not off.enabled("serviceaccount-controller") and not off.enabled("serviceaccount")
    assert off.enabled("serviceaccount-token-controller") and off.enabled("namespace")
    only = ControllerManagerOptions(controllers=("endpoints-controller",))
    assert only.enabled("endpoint") and not only.enabled("endpointslice-controller")


def _parse(*argv: str) -> ControllerManagerOptions:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser)
    return from_args(parser.parse_args(list(argv)))


def test_flags_controllers_and_max_endpoints_per_slice() -> None:
    assert _parse().max_endpoints_per_slice == 100
    assert _parse("--max-endpoints-per-slice", "30").max_endpoints_per_slice == 30
    assert _parse("--max-endpoints-per-slice", "0").max_endpoints_per_slice == 1  # as before: at least one
    assert not _parse("--controllers", "*,-root-ca-cert-publisher").enabled("root-ca-certificate-publisher-controller")
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        _parse("--controllers", "*,-no-such-controller")


# --------------------------------------------------------------------------- two managers on one API


def _fast(**overrides: Any) -> ControllerManagerOptions:
    return ControllerManagerOptions(leader_elect_lease_duration=3.0, leader_elect_renew_deadline=2.0,
                                    leader_elect_retry_period=0.1, **overrides)


def _manager(client: Client) -> ControllerManager:
    return ControllerManager(lambda _account: client, client, _fast(), root_ca="-----BEGIN CERTIFICATE-----\n",
                             token_generator=lambda namespace, account, uid, secret: f"token-{account}",
                             signing_cert=b"-----BEGIN CERTIFICATE-----\n", signing_key=b"-----BEGIN PRIVATE KEY-----\n")


async def _holder(client: Client) -> str | None:
    try:
        lease = await client.get(LEASES, LEADER_LEASE, LEADER_NAMESPACE)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise
    return (lease.get("spec") or {}).get("holderIdentity")


async def _default_account(client: Client, namespace: str) -> dict[str, Any] | None:
    try:
        return await client.get(SERVICE_ACCOUNTS, "default", namespace)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def test_one_of_two_managers_runs_the_controllers_and_the_other_takes_over(local_api: InProcessApi) -> None:
    client = local_api.client
    managers = [_manager(client), _manager(client)]
    tasks = {m.identity: asyncio.create_task(m.run()) for m in managers}
    try:
        holder = await async_wait_for(lambda: _holder(client), TIMEOUT, what="a leader")
        leader, follower = sorted(managers, key=lambda m: m.identity != holder)
        await async_wait_for(lambda: leader.controllers, TIMEOUT, what="the leader's controllers")
        assert set(leader.controllers) == set(CONTROLLERS)  # all of them, the moved ones too
        await client.create(NAMESPACES, {"metadata": {"name": "team-a"}})
        first = await async_wait_for(lambda: _default_account(client, "team-a"), TIMEOUT, what="team-a's account")
        assert follower.controllers == {} and await _holder(client) == leader.identity

        tasks[leader.identity].cancel()  # the leader stops: it releases the Lease, the other takes it
        await asyncio.gather(tasks[leader.identity], return_exceptions=True)
        await async_wait_for(lambda: follower.controllers, TIMEOUT, what="the other manager's controllers")
        assert await _holder(client) == follower.identity and leader.controllers == {}
        await client.create(NAMESPACES, {"metadata": {"name": "team-b"}})
        await async_wait_for(lambda: _default_account(client, "team-b"), TIMEOUT, what="team-b's account")
        again = await _default_account(client, "team-a")
        assert again is not None and again["metadata"]["uid"] == first["metadata"]["uid"]  # made once, kept
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_controllers_without_what_they_need_are_left_out(local_api: InProcessApi) -> None:
    client = local_api.client
    manager = ControllerManager(lambda _account: client, client, _fast(max_endpoints_per_slice=30))  # no CA, no signer
    built = manager.build()
    assert "root-ca-certificate-publisher-controller" not in built and "serviceaccount-token-controller" not in built
    assert "certificatesigningrequest-signing-controller" not in built  # no --cluster-signing-*-file
    assert "certificatesigningrequest-approving-controller" in built
    assert "serviceaccount-controller" in built and "namespace-controller" in built
    assert built["endpointslice-controller"].max_endpoints_per_slice == 30  # --max-endpoints-per-slice reaches it


# --------------------------------------------------------------------------- podlife up --controllers


def _json_or_none(proc: PodlifeProcess, *args: str) -> dict[str, Any] | None:
    result = proc.kubectl(*args, "-o", "json", check=False)
    return None if result.returncode else json.loads(result.stdout)


def test_controllers_flag_turns_the_service_account_controller_off(tmp_path: Path) -> None:
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--controllers", "*,-serviceaccount", "--no-leader-elect",
                          kubectl=require_tool("kubectl"))
    try:
        proc.start()
        proc.kubectl("create", "namespace", "probe-1")
        wait_for(lambda: _json_or_none(proc, "get", "configmap", "kube-root-ca.crt", "-n", "probe-1"), TIMEOUT,
                 what="the root CA publisher in probe-1")
        # a second namespace, handled after the first: by then an account for probe-1 would have been made
        proc.kubectl("create", "namespace", "probe-2")
        wait_for(lambda: _json_or_none(proc, "get", "configmap", "kube-root-ca.crt", "-n", "probe-2"), TIMEOUT,
                 what="the root CA publisher in probe-2")
        for namespace in ("probe-1", "probe-2", "default"):
            accounts = _json_or_none(proc, "get", "serviceaccounts", "-n", namespace)
            assert accounts is not None and accounts["items"] == [], namespace
        # --no-leader-elect: the controllers ran without taking the Lease
        assert _json_or_none(proc, "get", "lease", LEADER_LEASE, "-n", LEADER_NAMESPACE) is None
    finally:
        proc.stop()
