"""A class-data archive for Kafka's JVM: the classes a broker loads, saved once, mapped by every later start.

On a shared 2-core AMD EPYC, idle, a broker started in 2.4 s on 3.1 CPU-seconds without it and
in 1.5 s on 2.0 with it (`benchmarks/bench_kafka_start.py`; the suite starts about thirty).

The first broker that finds no archive writes one when it exits cleanly (`-XX:ArchiveClassesAtExit`,
JDK 13 and later), under a name of its own, moved into place after the exit; one writer at a time
(a marker file, taken over after ten minutes). The archive lives in the jars' folder, which a new
fetch of the jars replaces whole, and its name carries the JVM it was made by, so a new JDK writes
its own. A JVM given an archive it cannot use (another JDK, other jars, a damaged file) ignores it
and starts as it would without one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from pathlib import Path

WRITER_GIVES_UP_AFTER = 600.0  # seconds: a marker older than this was left by a writer that died


class ClassDataArchive:
    """The archive of one JVM for the jars in ``lib``: options to start with, and the writer's clean-up."""

    def __init__(self, lib: Path, java: str) -> None:
        resolved = Path(java).resolve()
        jvm = hashlib.sha256(f"{resolved}:{resolved.stat().st_mtime_ns}".encode()).hexdigest()[:12]
        self.path = Path(lib) / f"broker-{jvm}.jsa"
        self._marker = self.path.with_name(self.path.name + ".writing")
        self._written: Path | None = None  # where this process's broker writes one at its exit

    def options(self, write: bool) -> list[str]:
        """The JVM options: use the archive if there is one; else, with ``write``, make it at exit."""
        if self.path.is_file():
            return [f"-XX:SharedArchiveFile={self.path}"]
        if not write or not self._take_marker():
            return []
        self._written = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        return [f"-XX:ArchiveClassesAtExit={self._written}"]

    def after_exit(self, clean: bool) -> None:
        """Once the writing JVM has exited: keep its archive if it stopped cleanly, and free the marker."""
        if self._written is None:
            return
        try:
            if clean and self._written.is_file():
                os.replace(self._written, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._written.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._marker.unlink()
            self._written = None

    def _take_marker(self) -> bool:
        for _ in range(2):
            try:
                os.close(os.open(self._marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return True
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - self._marker.stat().st_mtime < WRITER_GIVES_UP_AFTER:
                        return False  # another broker is writing it
                    self._marker.unlink()
            except OSError:
                return False  # a read-only jars folder: no archive, no harm
        return False
