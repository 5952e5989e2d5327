"""Shared fixtures: a real podlife cluster per test module, driven with kubectl."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster_harness import PodlifeProcess

collect_ignore_glob: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts a real podlife server and drives it with kubectl")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """A running ``podlife up`` with one local node, shared by a test module."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    proc = PodlifeProcess(tmp_path_factory.mktemp("cluster") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[PodlifeProcess]:
    """A cluster of the test's own (for restarts and other destructive tests)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    proc = PodlifeProcess(tmp_path / "data")
    try:
        yield proc
    finally:
        proc.stop()
