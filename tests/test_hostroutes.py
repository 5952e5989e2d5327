"""Tests for podlife.network.hostroutes.

Every test that really changes routes does so inside a throwaway network
namespace (``podlife-test-<random>``). The host's routing table is never
touched. The namespace is deleted in the fixture teardown, which runs even
when the test fails.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.network.hostroutes import HostRouteError, HostRouteGuard, RouteTools, can_manage_routes

POD = "10.244.0.0/16"
SVC = "10.96.0.0/12"
REPO = Path(__file__).resolve().parents[1]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RouteTools.detect().ip or "ip", *args], capture_output=True, text=True, check=check)


def ip_tool(path: Path, script: str) -> str:
    """An ``ip`` of the test's own: a shell script run with the arguments the guard gives ``ip``."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return str(path)


def routes(netns: str, family: str = "-4") -> str:
    return ip("-n", netns, family, "route", "show").stdout


def has_unreachable(netns: str, cidr: str) -> bool:
    family = "-6" if ":" in cidr else "-4"
    return any(line.split()[:2] == ["unreachable", cidr] for line in routes(netns, family).splitlines())


@pytest.fixture
def netns() -> Iterator[str]:
    if not can_manage_routes():
        pytest.skip("needs root (CAP_NET_ADMIN) and iproute2 to manage routes")
    name = f"podlife-test-{uuid.uuid4().hex[:10]}"
    created = ip("netns", "add", name, check=False)
    if created.returncode != 0:
        pytest.skip(f"ip netns unavailable: {created.stderr.strip()}")
    try:
        yield name
    finally:
        ip("netns", "del", name, check=False)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def state_file(state_dir: Path) -> dict[str, Any]:
    files = list((state_dir / "routes").glob("*.json"))
    assert len(files) <= 1
    return json.loads(files[0].read_text()) if files else {}


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=120)


# -- single guard ---------------------------------------------------------------------


def test_install_adds_and_remove_deletes(netns: str, state_dir: Path) -> None:
    guard = HostRouteGuard([POD, SVC], netns=netns, state_dir=state_dir)
    assert guard.install() == [POD, SVC]
    assert has_unreachable(netns, POD) and has_unreachable(netns, SVC)
    assert "unreachable 10.244.0.0/16" in routes(netns)
    assert set(state_file(state_dir)["routes"]) == {POD, SVC}
    guard.remove()
    assert not has_unreachable(netns, POD) and not has_unreachable(netns, SVC)
    assert state_file(state_dir) == {}
    guard.remove()  # idempotent


def test_install_twice_is_idempotent(netns: str, state_dir: Path) -> None:
    guard = HostRouteGuard([POD], netns=netns, state_dir=state_dir)
    assert guard.install() == [POD]
    assert guard.install() == [POD]
    assert len(state_file(state_dir)["routes"][POD]["holders"]) == 1
    guard.remove()
    assert not has_unreachable(netns, POD)


def test_context_manager_removes_even_on_error(netns: str, state_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), HostRouteGuard([POD], netns=netns, state_dir=state_dir) as guard:
        assert guard.held == [POD]
        assert has_unreachable(netns, POD)
        raise RuntimeError("boom")
    assert not has_unreachable(netns, POD)


def test_ipv6_route(netns: str, state_dir: Path) -> None:
    cidr = "fd00:10:244::/56"
    a = HostRouteGuard([cidr], netns=netns, state_dir=state_dir)
    b = HostRouteGuard([cidr], netns=netns, state_dir=state_dir)
    assert a.install() == [cidr] and b.install() == [cidr]
    assert has_unreachable(netns, cidr)
    a.remove()
    assert has_unreachable(netns, cidr)
    b.remove()
    assert not has_unreachable(netns, cidr)


def test_cidrs_are_normalised_and_validated() -> None:
    guard = HostRouteGuard([POD, "10.244.0.0/16", "fd00::/8"], netns="unused")
    assert guard.cidrs == [POD, "fd00::/8"]
    with pytest.raises(ValueError):
        HostRouteGuard(["10.244.0.1/16"])


# -- sharing between guards and processes -------------------------------------------


@pytest.mark.parametrize("first_out", ["a", "b"])
def test_two_guards_share_the_route(netns: str, state_dir: Path, first_out: str) -> None:
    guards = {
        "a": HostRouteGuard([POD, SVC], netns=netns, state_dir=state_dir),
        "b": HostRouteGuard([POD], netns=netns, state_dir=state_dir),
    }
    assert guards["a"].install() == [POD, SVC]
    assert guards["b"].install() == [POD]  # joined, not added twice
    assert routes(netns).count("unreachable 10.244.0.0/16") == 1
    second_out = "b" if first_out == "a" else "a"
    guards[first_out].remove()
    assert has_unreachable(netns, POD), "route removed while another guard holds it"
    guards[second_out].remove()
    assert not has_unreachable(netns, POD) and not has_unreachable(netns, SVC)
    assert state_file(state_dir) == {}


def test_parallel_processes_never_expose_a_held_route(netns: str, state_dir: Path) -> None:
    child = """
        import subprocess, sys
        from podlife.network.hostroutes import HostRouteGuard, RouteTools
        netns, state_dir = sys.argv[1], sys.argv[2]
        show = [RouteTools.detect().ip, "-n", netns, "route", "show", "exact", "10.244.0.0/16"]
        for _ in range(15):
            guard = HostRouteGuard(["10.244.0.0/16"], netns=netns, state_dir=state_dir)
            assert guard.install() == ["10.244.0.0/16"]
            guard.remove()
            out = subprocess.run(show, capture_output=True, text=True, check=True).stdout
            assert "unreachable" in out, "route vanished while the parent holds it"
    """
    with HostRouteGuard([POD], netns=netns, state_dir=state_dir):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(child), netns, str(state_dir)],
                env=child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
        assert all(rc == 0 for rc, _ in results), results
        assert has_unreachable(netns, POD)
        assert len(state_file(state_dir)["routes"][POD]["holders"]) == 1
    assert not has_unreachable(netns, POD)


def test_crashed_holder_is_pruned_and_route_adopted(netns: str, state_dir: Path) -> None:
    crashed = run_child(
        """
        import os, sys
        from podlife.network.hostroutes import HostRouteGuard
        HostRouteGuard(["10.244.0.0/16"], netns=sys.argv[1], state_dir=sys.argv[2]).install()
        os._exit(0)  # dies without remove()
        """,
        netns,
        str(state_dir),
    )
    assert crashed.returncode == 0, crashed.stderr
    assert has_unreachable(netns, POD)
    assert len(state_file(state_dir)["routes"][POD]["holders"]) == 1

    guard = HostRouteGuard([POD], netns=netns, state_dir=state_dir)
    assert guard.install() == [POD]  # adopts the orphaned podlife route
    holders = state_file(state_dir)["routes"][POD]["holders"]
    assert [h["pid"] for h in holders] == [os.getpid()]
    guard.remove()
    assert not has_unreachable(netns, POD)


# -- routes podlife did not add ---------------------------------------------------------


def test_preexisting_identical_route_is_left_alone(netns: str, state_dir: Path) -> None:
    ip("-n", netns, "route", "add", "unreachable", POD)
    guard = HostRouteGuard([POD, SVC], netns=netns, state_dir=state_dir)
    assert guard.install() == [SVC]
    guard.remove()
    assert has_unreachable(netns, POD), "removed a route podlife did not add"
    assert not has_unreachable(netns, SVC)


def test_different_route_is_not_replaced(netns: str, state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    ip("-n", netns, "route", "add", "blackhole", SVC)
    with caplog.at_level(logging.WARNING, logger="podlife.network.hostroutes"):
        guard = HostRouteGuard([POD, SVC], netns=netns, state_dir=state_dir)
        assert guard.install() == [POD]
    assert "different route" in caplog.text
    guard.remove()
    assert "blackhole 10.96.0.0/12" in routes(netns)
    assert not has_unreachable(netns, POD)


def test_route_deleted_behind_our_back_is_readded(netns: str, state_dir: Path) -> None:
    a = HostRouteGuard([POD], netns=netns, state_dir=state_dir)
    a.install()
    ip("-n", netns, "route", "del", "unreachable", POD)
    b = HostRouteGuard([POD], netns=netns, state_dir=state_dir)
    assert b.install() == [POD]
    assert has_unreachable(netns, POD)
    b.remove()
    assert has_unreachable(netns, POD)
    a.remove()
    assert not has_unreachable(netns, POD)


# -- failures -------------------------------------------------------------------------------


def test_failed_add_rolls_back_and_raises(netns: str, state_dir: Path, tmp_path: Path) -> None:
    # the real ip, except that adding the second route fails
    flaky = ip_tool(tmp_path / "flaky-ip", f"""
        case " $* " in *" route add unreachable {SVC} "*) echo "simulated failure" >&2; exit 2;; esac
        exec {RouteTools.detect().ip} "$@"
    """)
    guard = HostRouteGuard([POD, SVC], netns=netns, state_dir=state_dir, tools=RouteTools(flaky, net_admin=True))
    with pytest.raises(HostRouteError, match="simulated"):
        guard.install()
    assert guard.held == []
    assert not has_unreachable(netns, POD)
    assert state_file(state_dir) == {}
    guard.remove()  # nothing to do, must not raise


def test_remove_after_namespace_vanished_does_not_raise(netns: str, state_dir: Path) -> None:
    guard = HostRouteGuard([POD], netns=netns, state_dir=state_dir)
    guard.install()
    ip("netns", "del", netns)
    guard.remove()
    assert guard.held == []
    assert state_file(state_dir) == {}


def test_missing_namespace_raises(state_dir: Path) -> None:
    if not can_manage_routes():
        pytest.skip("needs root (CAP_NET_ADMIN) and iproute2 to manage routes")
    guard = HostRouteGuard([POD], netns=f"podlife-test-missing-{uuid.uuid4().hex[:8]}", state_dir=state_dir)
    with pytest.raises(HostRouteError, match="not found"):
        guard.install()


# -- without privileges (no namespace needed: install must return before any ip call) --


@pytest.mark.parametrize("missing, reason", [("net_admin", "CAP_NET_ADMIN"), ("ip", "ip tool is missing")])
def test_noop_without_privileges_or_ip(
    missing: str,
    reason: str,
    state_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran = tmp_path / "ip-ran"
    # an ip that only records that it ran: it must not, without privileges
    no_ip = ip_tool(tmp_path / "no-ip", f'echo "$*" >> {ran}\nexit 1\n')
    tools = RouteTools(no_ip, net_admin=False) if missing == "net_admin" else RouteTools(None, net_admin=True)
    # A namespace name that does not exist, so a bug here cannot touch the host.
    guard = HostRouteGuard([POD], netns="podlife-test-does-not-exist", state_dir=state_dir, tools=tools)
    with caplog.at_level(logging.WARNING, logger="podlife.network.hostroutes"):
        assert guard.install() == []
    assert reason in caplog.text
    guard.remove()
    assert not ran.exists(), f"ip must not run without privileges: {ran.read_text()}"
    assert not state_dir.exists()
    assert can_manage_routes(tools) is False


def test_can_manage_routes_matches_privileges() -> None:
    tools = RouteTools.detect()
    expected = tools.ip is not None and tools.net_admin
    assert can_manage_routes() is expected
