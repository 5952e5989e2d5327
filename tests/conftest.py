"""Shared fixtures: a real podlife cluster per test module, driven with kubectl.

``cluster`` and ``fresh_cluster`` use the kubectl of :func:`~tests.cluster_harness.kubectl_binary`
(the virtualenv's pinned 1.37 first).  ``kubectl_matrix_cluster`` runs a module once per
kubectl release: the pinned one, and the older releases this machine keeps beside its
``kubectl`` dispatcher (``kubectl.1.33``, ``kubectl.1.30`` in the folder of
``readlink -f $(command -v kubectl)``), which exist only on some machines, so their
absence is not a failure even under CI.  A module opts in by defining its ``cluster``
fixture as this one.

``local_api`` is the API inside the test's own process (:mod:`tests.in_process`), for
the tests of the components that run on it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from podlife.machinery.constants import KUBERNETES_VERSION

from .cluster_harness import PodlifeProcess, require_tool, running_podlife
from .etcd_harness import EtcdCluster, running_etcd
from .in_process import InProcessApi, in_process_api

collect_ignore_glob: list[str] = []

#: Older kubectl releases the matrix runs where the machine has them (issue 8: 1.30 to 1.37).
OLDER_KUBECTL_RELEASES = ("1.33", "1.30")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts a real podlife server and drives it with kubectl")


def older_kubectls() -> list[tuple[str, str]]:
    """``(release, path)`` of each older kubectl found beside the machine's kubectl dispatcher."""
    dispatcher = shutil.which("kubectl")
    if dispatcher is None:
        return []
    folder = Path(os.path.realpath(dispatcher)).parent
    found = []
    for release in OLDER_KUBECTL_RELEASES:
        binary = folder / f"kubectl.{release}"
        if binary.is_file() and os.access(binary, os.X_OK):
            found.append((release, str(binary)))
    return found


def _kubectl_matrix() -> list[pytest.param]:
    """The pinned kubectl (resolved when the fixture runs, so its absence fails or skips there)
    and the older ones this machine has."""
    return [pytest.param(None, id=f"kubectl-{KUBERNETES_VERSION}")] + [
        pytest.param(path, id=f"kubectl-{release}") for release, path in older_kubectls()]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """A running ``podlife up`` with one local node, shared by a test module."""
    with running_podlife(tmp_path_factory.mktemp("cluster") / "data", kubectl=require_tool("kubectl")) as proc:
        yield proc


@pytest.fixture(scope="module", params=_kubectl_matrix())
def kubectl_matrix_cluster(request: pytest.FixtureRequest,
                           tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """Like ``cluster``, once per kubectl release of the matrix (the cluster is bound to that kubectl)."""
    kubectl = request.param or require_tool("kubectl")
    with running_podlife(tmp_path_factory.mktemp("cluster") / "data", kubectl=kubectl) as proc:
        yield proc


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[PodlifeProcess]:
    """A cluster of the test's own (for restarts and other destructive tests); not started."""
    proc = PodlifeProcess(tmp_path / "data", kubectl=require_tool("kubectl"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def local_api() -> AsyncIterator[InProcessApi]:
    """An in-process API on a fresh memory store (``.ctx``, ``.client``, ``.store``), shut down after the test."""
    async with in_process_api() as api:
        yield api


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh one-member etcd on free loopback ports (``.url``: its ``etcd://`` store URL), removed after the test."""
    with running_etcd(tmp_path / "etcd") as cluster:
        yield cluster


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh three-member etcd cluster on loopback (``.url`` names all members; ``.members[i].kill()``)."""
    with running_etcd(tmp_path / "etcd3", size=3) as cluster:
        yield cluster
