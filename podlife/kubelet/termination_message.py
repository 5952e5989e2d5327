"""A terminated container's ``message``: its termination-message file, or its last log lines.

What Kubernetes does (the kubelet's ``kuberuntime`` container status code), and so this:

* each container instance gets an empty host file bind-mounted at its
  ``terminationMessagePath`` (default ``/dev/termination-log``), where the program may
  write why it ended; once it has exited, the file's first :data:`MAX_MESSAGE_BYTES`
  become ``state.terminated.message``;
* ``terminationMessagePolicy: FallbackToLogsOnError``: when that file is empty and the
  container failed (a non-zero exit), the message is the end of its log instead: the last
  :data:`FALLBACK_LOG_LINES` lines, at most :data:`FALLBACK_LOG_BYTES` bytes of them.

Only runtimes with a mount namespace can put the file at that path in the container
(the OCI runtime); for the process runtime there is no file, and only the log fallback
applies. Pure file reading, done in a worker thread by the pod worker.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from .logs import parse_cri_record

__all__ = [
    "DEFAULT_PATH",
    "FALLBACK_LOG_BYTES",
    "FALLBACK_LOG_LINES",
    "MAX_MESSAGE_BYTES",
    "message_path",
    "termination_message",
]

#: ``terminationMessagePath``'s default (the API server defaults it too).
DEFAULT_PATH = "/dev/termination-log"
#: The most of a termination-message file that is read (the kubelet's per-container limit).
MAX_MESSAGE_BYTES = 4096
#: ``FallbackToLogsOnError``: how many of the last log lines, and at most how many bytes.
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
#: The policy that falls back to the log.
FALLBACK_TO_LOGS = "FallbackToLogsOnError"


def message_path(container: dict[str, Any]) -> str:
    """Where in the container its termination message is written."""
    return str(container.get("terminationMessagePath") or DEFAULT_PATH)


def termination_message(container: dict[str, Any], exit_code: int, message_file: Path | None,
                        log_path: Path | None) -> str:
    """The message of a container instance that ended with ``exit_code`` (see the design)."""
    message = _read_head(message_file, MAX_MESSAGE_BYTES) if message_file is not None else ""
    if message or exit_code == 0 or container.get("terminationMessagePolicy") != FALLBACK_TO_LOGS:
        return message
    return _log_tail(log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES) if log_path is not None else ""


def _read_head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _log_tail(path: Path, lines: int, limit: int) -> str:
    """The last ``lines`` lines of a CRI log file (partial records joined), cut to its last ``limit`` bytes."""
    kept: deque[bytes] = deque(maxlen=lines)
    pending = b""
    try:
        with open(path, "rb") as f:
            for raw in f:
                record = parse_cri_record(raw)
                if record is None:
                    continue
                pending += record.content
                if not record.partial:
                    kept.append(pending + b"\n")
                    pending = b""
    except OSError:
        return ""
    if pending:
        kept.append(pending)
    return b"".join(kept)[-limit:].decode(errors="replace")
