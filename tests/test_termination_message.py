"""podlife.kubelet.termination_message: the file first, the log's end for FallbackToLogsOnError failures."""

from __future__ import annotations

from pathlib import Path

from podlife.kubelet.logs import CRILogEncoder
from podlife.kubelet.termination_message import (
    FALLBACK_LOG_BYTES,
    FALLBACK_LOG_LINES,
    MAX_MESSAGE_BYTES,
    message_path,
    termination_message,
)

FALLBACK = {"terminationMessagePolicy": "FallbackToLogsOnError"}


def _log(tmp_path: Path, text: bytes) -> Path:
    encoder = CRILogEncoder("stdout")
    path = tmp_path / "0.log"
    path.write_bytes(encoder.feed(text) + encoder.finish())
    return path


def test_the_file_is_the_message_cut_to_the_kubelets_limit(tmp_path: Path) -> None:
    file = tmp_path / "msg"
    file.write_text("x" * (MAX_MESSAGE_BYTES + 10))
    assert termination_message({}, 1, file, None) == "x" * MAX_MESSAGE_BYTES
    file.write_text("done\n")
    assert termination_message(FALLBACK, 3, file, _log(tmp_path, b"ignored\n")) == "done\n"  # the file wins


def test_fallback_to_logs_only_for_a_failure_with_no_message(tmp_path: Path) -> None:
    empty = tmp_path / "msg"
    empty.write_bytes(b"")
    log = _log(tmp_path, b"starting\npanic: boom\n")
    assert termination_message(FALLBACK, 2, empty, log) == "starting\npanic: boom\n"
    assert termination_message(FALLBACK, 0, empty, log) == ""  # success: no fallback
    assert termination_message({"terminationMessagePolicy": "File"}, 2, empty, log) == ""
    assert termination_message(FALLBACK, 2, None, log) == "starting\npanic: boom\n"  # no file (host processes)
    assert termination_message(FALLBACK, 2, tmp_path / "absent", None) == ""


def test_fallback_keeps_the_last_lines_and_bytes(tmp_path: Path) -> None:
    many = b"".join(b"line %d\n" % i for i in range(200))
    tail = termination_message(FALLBACK, 1, None, _log(tmp_path, many))
    assert tail.splitlines() == [f"line {i}" for i in range(200 - FALLBACK_LOG_LINES, 200)]
    long = b"y" * 5000 + b"\n"
    assert termination_message(FALLBACK, 1, None, _log(tmp_path, long)) == ("y" * 5000 + "\n")[-FALLBACK_LOG_BYTES:]


def test_message_path_default() -> None:
    assert message_path({}) == "/dev/termination-log"
    assert message_path({"terminationMessagePath": "/tmp/why"}) == "/tmp/why"
