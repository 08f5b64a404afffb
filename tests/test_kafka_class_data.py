"""Kafka's class-data archive (embedded/kafka/class_data.py): written by the first clean stop, mapped
by later brokers, ignored when damaged, and written by one broker at a time."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from embedded.kafka.class_data import WRITER_GIVES_UP_AFTER, ClassDataArchive
from embedded.kafka.jars import find_java
from tests.conftest import broker_at

pytestmark = pytest.mark.kafka


def jars_of_its_own(kafka_jars: Path, tmp_path: Path) -> Path:
    """A jars folder (links to the cached jars) whose archive no other broker has written yet."""
    lib = tmp_path / "jars" / kafka_jars.parent.name / "lib"
    lib.mkdir(parents=True)
    for jar in kafka_jars.glob("*.jar"):
        (lib / jar.name).symlink_to(jar)
    shutil.copy(kafka_jars / ".pom-sha256", lib / ".pom-sha256")
    return lib


def test_the_first_clean_stop_writes_the_archive_that_later_brokers_map(kafka_jars, tmp_path):
    lib = jars_of_its_own(kafka_jars, tmp_path)
    archive = ClassDataArchive(lib, find_java()).path
    first = broker_at(tmp_path / "first", lib.parent.parent).start()
    assert not archive.exists()  # written at the JVM's exit
    assert first.stop() == 143
    assert archive.is_file() and sorted(p.name for p in lib.iterdir() if not p.name.endswith(".jar")) == [
        ".pom-sha256",
        archive.name,
    ]  # no marker or temporary file left

    second = broker_at(tmp_path / "second", lib.parent.parent).start()
    try:
        assert str(archive) in Path(f"/proc/{second.process.pid}/maps").read_text()
    finally:
        second.stop()

    archive.write_bytes(os.urandom(4096))  # damaged: the JVM ignores it and starts all the same
    third = broker_at(tmp_path / "third", lib.parent.parent).start()
    assert third.stop() == 143


def test_one_writer_at_a_time_and_a_dead_writers_marker_is_taken_over(tmp_path):
    java = find_java()
    writer = ClassDataArchive(tmp_path, java)
    [option] = writer.options(write=True)
    assert option.startswith("-XX:ArchiveClassesAtExit=")
    assert ClassDataArchive(tmp_path, java).options(write=True) == []  # another broker is writing it
    assert ClassDataArchive(tmp_path, java).options(write=False) == []

    written = Path(option.split("=", 1)[1])
    written.write_bytes(b"archive")
    writer.after_exit(clean=False)  # killed: nothing kept, the marker freed
    assert sorted(tmp_path.iterdir()) == []

    marker = writer.path.with_name(writer.path.name + ".writing")
    marker.touch()
    stale = time.time() - WRITER_GIVES_UP_AFTER - 1
    os.utime(marker, (stale, stale))
    taker = ClassDataArchive(tmp_path, java)
    [option] = taker.options(write=True)
    Path(option.split("=", 1)[1]).write_bytes(b"archive")
    taker.after_exit(clean=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [taker.path.name]
    assert ClassDataArchive(tmp_path, java).options(write=True) == [f"-XX:SharedArchiveFile={taker.path}"]
