"""An exclusive lock on a data directory, held for the life of the process that owns it.

A server that finds its data directory taken says so at once, naming the directory and the process
that holds it, before it writes anything there: the embedded ClickHouse (chDB locks its own
`status` file, but only once it has started, with an error that names neither) and the local
Kafka broker (a second one rewrote the first one's configuration and broke it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "analytics.lock"


class DataDirectoryError(Exception):
    """The data directory cannot be used: taken, or not writable."""


class DataDirectoryInUse(DataDirectoryError):
    """Another process owns the data directory."""


class DataDirectoryLock:
    """An exclusive lock on the data directory (``<dir>/analytics.lock``), held until release()."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._file = None

    def acquire(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until release()
        except OSError as error:  # read-only, no permission, no space: said in one line, not a traceback
            raise DataDirectoryError(
                f"cannot keep data in {self.data_dir.resolve()}: {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DataDirectoryInUse(
                f"data directory {self.data_dir.resolve()} is in use by {describe_holder(self.data_dir)}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def describe_holder(data_dir: Path) -> str:
    """'process 1234 (analytics clickhouse ...)' for whoever holds the directory, as far as we can tell."""
    pid = _pid_from_lock_file(data_dir) or _pid_holding_chdb_status(data_dir)
    if pid is None:
        return "another process"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command})" if command else "")


def _pid_from_lock_file(data_dir: Path) -> int | None:
    try:
        text = (data_dir / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None


def _pid_holding_chdb_status(data_dir: Path) -> int | None:
    """The process with a POSIX lock on chDB's status file (a chDB user outside this project)."""
    try:
        inode = (data_dir / "status").stat().st_ino
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in locks:
        parts = line.split()
        # "1: POSIX  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
        if len(parts) >= 6 and parts[5].rsplit(":", 1)[-1] == str(inode) and parts[4].isdigit():
            return int(parts[4])
    return None
