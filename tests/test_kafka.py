"""The local Apache Kafka (`analytics kafka`, the `kafka` fixture) and the topics (`analytics topics`).

Everything runs against a real broker; the tests at the end check the errors people meet first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from analytics.cli import main
from core.names import TOPICS
from embedded.kafka.broker import CLEAN_EXIT_CODES, KafkaBroker, KafkaStartError
from embedded.kafka.jars import KafkaUnavailable, ensure_jars, find_java, kafka_version
from embedded.kafka.topics import (
    KafkaUnreachable,
    MissingTopics,
    TopicError,
    create_topics,
    require_topics,
    wait_until_listed,
)
from tests.conftest import KAFKA_JARS_DIR, REPO
from tests.embedded_server import free_port
from tests.test_child_processes import ignoring_and_blocking_the_stop_signals

pytestmark = pytest.mark.long_file(60)  # seconds of a worker, measured: run first (tests/scheduling.py)

WAIT = 60.0  # an upper bound for waits on the broker, never an assertion about speed


def new_topic(bootstrap: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    create_topics(bootstrap, names=(name,))
    return name


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Produce and wait until the broker acknowledged every message."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda error, _msg: error and failures.append(error))
    assert producer.flush(WAIT) == 0, "messages still unacknowledged"
    assert failures == []


def consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """Up to ``count`` values from ``topic`` for ``group``, starting at its committed offset."""
    reader = consumer(bootstrap, group)
    reader.subscribe([topic])
    values = []
    deadline = time.monotonic() + WAIT
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                values.append(message.value())
    finally:
        reader.close()
    return values


def topic_partitions(bootstrap: str) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=WAIT).topics
    return {name: len(topic.partitions) for name, topic in topics.items()}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


# --- a real broker ---------------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_produce_and_consume_round_trip(kafka):
    topic = new_topic(kafka.bootstrap)
    sent = [f"event {i}".encode() for i in range(50)]
    produce(kafka.bootstrap, topic, sent)

    assert consume(kafka.bootstrap, topic, "round-trip", len(sent)) == sent


@pytest.mark.kafka
def test_topics_command_creates_the_five_topics_once(kafka):
    runner = CliRunner()
    first = runner.invoke(main, ["topics", "--kafka", kafka.bootstrap, "--partitions", "3"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"{name}: created, 3 partitions" for name in TOPICS]
    assert {name: topic_partitions(kafka.bootstrap)[name] for name in TOPICS} == dict.fromkeys(TOPICS, 3)

    # Running again changes nothing, even when asked for another partition count.
    again = runner.invoke(main, ["topics", "--kafka", kafka.bootstrap, "--partitions", "1"])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [f"{name}: exists, 3 partitions" for name in TOPICS]
    assert {name: topic_partitions(kafka.bootstrap)[name] for name in TOPICS} == dict.fromkeys(TOPICS, 3)
    require_topics(kafka.bootstrap)


def test_created_topics_are_awaited_until_the_metadata_lists_them():
    # The broker's metadata can lag its controller: a topic just created may not be listed yet.
    listings = iter([{}, {"a": 1}, {"a": 1, "b": 3}])
    wait_until_listed(lambda: next(listings), ["a", "b"], timeout=5, bootstrap="k:9092")
    assert next(listings, None) is None  # it looked until both were there, and no further

    with pytest.raises(TopicError, match="created b but did not list them within 0.2 s"):
        wait_until_listed(lambda: {"a": 1}, ["a", "b"], timeout=0.2, bootstrap="k:9092")


@pytest.mark.kafka
def test_require_topics_names_every_missing_topic(kafka):
    present = new_topic(kafka.bootstrap)
    absent = [f"absent_{uuid.uuid4().hex[:8]}", f"absent_{uuid.uuid4().hex[:8]}"]

    with pytest.raises(MissingTopics) as raised:
        require_topics(kafka.bootstrap, (present, *absent))

    assert raised.value.missing == absent
    assert all(name in str(raised.value) for name in absent)
    assert present not in str(raised.value)
    require_topics(kafka.bootstrap, (present,))


@pytest.mark.kafka
def test_create_topics_reports_a_topic_kafka_refuses(kafka):
    with pytest.raises(
        TopicError, match="cannot create topic .no spaces allowed. on Kafka at .*: Topic name is invalid"
    ):
        create_topics(kafka.bootstrap, names=("no spaces allowed",))


@pytest.mark.kafka
def test_restart_keeps_messages_and_committed_offsets(own_kafka):
    kafka = own_kafka  # it is stopped and started again
    topic = new_topic(kafka.bootstrap)
    sent = [f"kept {i}".encode() for i in range(20)]
    produce(kafka.bootstrap, topic, sent)
    reader = consumer(kafka.bootstrap, "halfway")
    reader.subscribe([topic])
    read = []
    while len(read) < 10:
        message = reader.poll(WAIT)
        assert message is not None and message.error() is None
        read.append(message.value())
    reader.commit(message=message, asynchronous=False)
    reader.close()

    assert kafka.stop() in CLEAN_EXIT_CODES
    assert (kafka.storage_dir / ".kafka_cleanshutdown").exists(), "Kafka did not shut down cleanly"
    with ignoring_and_blocking_the_stop_signals():  # started by a process that ignores them
        kafka.start()

    assert consume(kafka.bootstrap, topic, "halfway", 10) == sent[10:]
    assert consume(kafka.bootstrap, topic, "from-the-start", len(sent)) == sent
    # The JVM acted on SIGTERM all the same: not killed after stop_timeout.
    assert kafka.stop(timeout=WAIT) in CLEAN_EXIT_CODES


@pytest.mark.kafka
def test_a_broker_that_ignores_sigterm_is_killed_and_recovers_its_data(own_kafka):
    kafka = own_kafka  # it is stopped and started again
    topic = new_topic(kafka.bootstrap)
    sent = [f"survivor {i}".encode() for i in range(10)]
    produce(kafka.bootstrap, topic, sent)

    kafka.process.send_signal(signal.SIGSTOP)  # a frozen JVM cannot act on SIGTERM
    assert kafka.stop(timeout=1) == -signal.SIGKILL
    assert not (kafka.storage_dir / ".kafka_cleanshutdown").exists()
    kafka.start()

    assert consume(kafka.bootstrap, topic, "after-kill", len(sent)) == sent


@pytest.mark.kafka
def test_analytics_kafka_serves_until_sigterm(kafka_jars, tmp_path):
    port = free_port()
    process, output = start_analytics_kafka(port, tmp_path)
    try:
        topic = new_topic(f"127.0.0.1:{port}")
        produce(f"127.0.0.1:{port}", topic, [b"hello"])
        assert consume(f"127.0.0.1:{port}", topic, "cli", 1) == [b"hello"]

        process.send_signal(signal.SIGTERM)
        process.wait(WAIT)
    finally:
        process.kill()
    assert process.returncode == 0, output.read_text()
    assert "stopping Kafka" in output.read_text()
    assert (tmp_path / "kafka" / "storage" / ".kafka_cleanshutdown").exists()
    assert not port_open(port), "the broker outlived the command"


@pytest.mark.kafka
def test_broker_stops_when_analytics_kafka_is_killed(kafka_jars, tmp_path):
    port = free_port()
    process, _ = start_analytics_kafka(port, tmp_path)
    jvm = broker_jvm(process)
    process.kill()
    process.wait()

    try:
        wait_for(lambda: not port_open(port), "the orphaned broker to stop")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(jvm, signal.SIGKILL)  # leave no broker behind if this test fails


@pytest.mark.kafka
def test_analytics_kafka_fails_when_the_broker_dies(kafka_jars, tmp_path):
    process, output = start_analytics_kafka(free_port(), tmp_path)
    try:
        os.kill(broker_jvm(process), signal.SIGKILL)
        process.wait(WAIT)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "Kafka exited unexpectedly with code -9" in output.read_text()


@pytest.mark.kafka
def test_analytics_kafka_reports_a_broker_it_had_to_kill(kafka_jars, tmp_path):
    process, output = start_analytics_kafka(free_port(), tmp_path, ANALYTICS_KAFKA_STOP_TIMEOUT="1")
    try:
        os.kill(broker_jvm(process), signal.SIGSTOP)  # a frozen JVM cannot act on SIGTERM
        process.send_signal(signal.SIGTERM)
        process.wait(WAIT)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "Kafka did not stop cleanly (exit -9)" in output.read_text()


def start_analytics_kafka(port: int, tmp_path: Path, **environment: str) -> tuple[subprocess.Popen, Path]:
    """Run `analytics kafka` and wait until it says it is ready; return the process and its output file."""
    output = tmp_path / "analytics-kafka.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "analytics.cli",
                "kafka",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "kafka"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "ANALYTICS_DATA_DIR": str(REPO / ".analytics"), **environment},
        )
    ready = f"ready for clients at 127.0.0.1:{port}"
    wait_for(lambda: process.poll() is not None or ready in output.read_text(), "analytics kafka to be ready")
    assert process.poll() is None, output.read_text()
    return process, output


def broker_jvm(process: subprocess.Popen) -> int:
    """The pid of the Kafka JVM that an `analytics kafka` process started."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.parametrize("variable", ["ANALYTICS_KAFKA_PORT", "ANALYTICS_KAFKA_CONTROLLER_PORT"])
def test_start_refuses_a_port_in_use_before_the_jvm_starts(tmp_path, variable):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        ports = {"port": port} if variable == "ANALYTICS_KAFKA_PORT" else {"controller_port": port}
        broker = KafkaBroker(tmp_path, **{"port": free_port(), **ports}, jars_dir=KAFKA_JARS_DIR)
        with pytest.raises(KafkaStartError) as raised:
            broker.start()
    assert str(raised.value) == (
        f"cannot listen on 127.0.0.1:{port} ({variable}): Address already in use; "
        "another process has it (a Kafka broker already running?), or choose another port"
    )
    assert broker.process is None


@pytest.mark.kafka
def test_start_gives_up_when_the_broker_does_not_serve_in_time(kafka_jars, tmp_path):
    broker = KafkaBroker(tmp_path, free_port(), jars_dir=KAFKA_JARS_DIR, ready_timeout=0.01)
    with pytest.raises(KafkaStartError, match="did not serve on .* within 0.01 s"):
        broker.start()
    assert not broker.running


@pytest.mark.kafka
def test_start_reports_storage_that_cannot_be_formatted(kafka_jars, tmp_path):
    (tmp_path / "storage").write_text("a file where Kafka's log directory belongs")
    with pytest.raises(KafkaStartError, match="(?s)formatting Kafka storage.*No available log directories"):
        KafkaBroker(tmp_path, free_port(), jars_dir=KAFKA_JARS_DIR).start()


@pytest.mark.kafka
def test_cached_jars_need_no_maven(kafka_jars, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ensure_jars(KAFKA_JARS_DIR) == kafka_jars


# --- what people meet without a broker, Java or Maven ---------------------------------------------------------


def fake_tool(folder: Path, name: str, script: str) -> None:
    tool = folder / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaUnavailable, match="java is not on PATH; install a JDK 17"):
        find_java()


def test_old_java_is_refused(monkeypatch, tmp_path):
    fake_tool(tmp_path, "java", """echo 'openjdk version "11.0.2" 2019-01-15' >&2""")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaUnavailable, match="is Java 11, Kafka 4 needs Java 17"):
        find_java()


def test_missing_maven_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaUnavailable, match="mvn is not on PATH .* install Maven"):
        ensure_jars(tmp_path / "cache")


def test_maven_failure_is_reported_and_leaves_no_partial_jars(monkeypatch, tmp_path):
    fake_tool(tmp_path, "mvn", "echo '[ERROR] Could not transfer artifact org.apache.kafka:kafka_2.13'; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaUnavailable, match="(?s)exit 1.*Could not transfer artifact"):
        ensure_jars(tmp_path / "cache")
    assert list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache" / kafka_version()]


def test_topics_command_needs_a_kafka_address(monkeypatch):
    monkeypatch.delenv("ANALYTICS_KAFKA_BOOTSTRAP", raising=False)
    result = CliRunner().invoke(main, ["topics"])
    assert result.exit_code == 2
    assert "no Kafka given: pass --kafka HOST:PORT" in result.output


@pytest.mark.parametrize("address", ["localhost", "localhost:port", ":9092", "localhost:70000", "a:1,b"])
def test_topics_command_rejects_a_malformed_address(address):
    result = CliRunner().invoke(main, ["topics", "--kafka", address])
    assert result.exit_code == 2
    assert "ANALYTICS_KAFKA_BOOTSTRAP" in result.output and "is not HOST:PORT" in result.output


def test_topics_command_rejects_zero_partitions():
    result = CliRunner().invoke(main, ["topics", "--kafka", "127.0.0.1:9092", "--partitions", "0"])
    assert result.exit_code == 2
    assert "ANALYTICS_KAFKA_TOPIC_PARTITIONS" in result.output


def test_create_topics_rejects_zero_partitions():
    with pytest.raises(ValueError, match="partitions must be at least 1, got 0"):
        create_topics("127.0.0.1:9092", partitions=0)


def test_topics_report_an_unreachable_kafka(refused_port):
    address = f"127.0.0.1:{refused_port}"
    with pytest.raises(KafkaUnreachable, match=f"no Kafka answered at {address}"):
        create_topics(address, timeout=1)
    with pytest.raises(KafkaUnreachable, match=f"no Kafka answered at {address}"):
        require_topics(address, timeout=1)


def test_analytics_kafka_rejects_a_bad_port():
    result = CliRunner().invoke(main, ["kafka", "--port", "70000"])
    assert result.exit_code == 2
    assert "ANALYTICS_KAFKA_PORT" in result.output


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_kafka_tests_skip_without_java_except_in_ci(tmp_path, ci, outcome):
    environment = {**os.environ, "PATH": str(tmp_path), "CI": ci}
    test = "tests/test_kafka.py::test_produce_and_consume_round_trip"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
    )
    assert outcome in run.stdout, run.stdout
    assert "java is not on PATH; install a JDK 17" in run.stdout
