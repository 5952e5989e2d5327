"""When a container's log is rotated and which old files go (the pure half of podlife.kubelet.log_rotation)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from podlife.kubelet.log_rotation import LogRotationConfig, rotated_files, rotation_plan

NOW = datetime(2026, 12, 2, 15, 4, 5, tzinfo=UTC)
CONFIG = LogRotationConfig(max_size=100, max_files=3)


def test_a_small_log_is_left_alone() -> None:
    plan = rotation_plan(Path("/p/c/0.log"), 100, [], CONFIG, NOW)
    assert plan.rotate_to is None and plan.remove == ()


def test_a_big_log_gets_the_kubelets_time_suffix() -> None:
    plan = rotation_plan(Path("/p/c/0.log"), 101, [], CONFIG, NOW)
    assert plan.rotate_to == Path("/p/c/0.log.20261202-150405") and plan.remove == ()


def test_at_most_max_files_are_kept_oldest_go_first() -> None:
    old = [Path("/p/c/0.log.20261202-150001"), Path("/p/c/0.log.20261202-150002")]
    plan = rotation_plan(Path("/p/c/0.log"), 500, old, CONFIG, NOW)
    assert plan.rotate_to is not None
    assert plan.remove == (old[0],)  # current + 2 rotated = 3 files
    assert rotation_plan(Path("/p/c/0.log"), 10, old + [Path("/p/c/0.log.20261202-150003")], CONFIG, NOW).remove == (
        old[0],)


def test_two_rotations_in_one_second_do_not_collide() -> None:
    taken = [Path("/p/c/0.log.20261202-150405")]
    plan = rotation_plan(Path("/p/c/0.log"), 500, taken, LogRotationConfig(max_size=1, max_files=5), NOW)
    assert plan.rotate_to not in taken


def test_one_file_only_means_no_rotation() -> None:
    assert rotation_plan(Path("/p/c/0.log"), 10**9, [], LogRotationConfig(max_size=1, max_files=1), NOW).rotate_to is None


def test_rotated_files_are_this_instances_only_oldest_first(tmp_path: Path) -> None:
    for name in ("0.log", "0.log.20261202-150002", "0.log.20261202-150001", "1.log", "1.log.20261202-150000"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in rotated_files(tmp_path / "0.log")] == ["0.log.20261202-150001", "0.log.20261202-150002"]
