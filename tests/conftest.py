"""Fixtures shared by every suite: a real embedded ClickHouse and a real Apache Kafka on free ports."""

from __future__ import annotations

import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedded.kafka.broker import KafkaBroker
from embedded.kafka.jars import KafkaUnavailable, ensure_jars, find_java
from tests import dbt_prefork, embedded_server
from tests.embedded_server import free_port

pytest_plugins = ["tests.ci_rules", "tests.scheduling", "tests.browser"]

REPO = Path(__file__).resolve().parent.parent
# The same cache `analytics kafka` uses by default, so the jars are fetched once per checkout.
KAFKA_JARS_DIR = REPO / ".analytics" / "kafka"


@pytest.fixture(scope="session", autouse=True)
def forked_dbt(tmp_path_factory) -> Iterator[Path]:
    """Every dbt the session starts, its own or its children's, is forked from one that has imported
    dbt (tests/dbt_prefork.py): about 2 CPU-seconds less for each of some fifty."""
    with dbt_prefork.started(tmp_path_factory.mktemp("dbt")) as dbt, pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANALYTICS_DBT_EXECUTABLE", str(dbt.launcher))
        yield dbt.launcher


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    """One embedded ClickHouse process for the whole run (tests use their own databases)."""
    server = embedded_server.start(tmp_path_factory.mktemp("clickhouse") / "data")
    yield server
    try:
        client = server.client()
        running = client.query(
            "SELECT round(elapsed, 1), substring(query, 1, 200) FROM system.processes WHERE query_id != queryID()"
        ).result_rows
        client.close()
    except Exception as error:  # noqa: BLE001 - reported with the stop below
        running = [f"(the server did not say: {error})"]
    started = time.monotonic()
    server.stop()
    if running or time.monotonic() - started > 10:
        # The server waits for requests still in flight before it stops: a test left one behind,
        # and the server's log names it.
        held = [line for line in server.log().splitlines() if "still in flight" in line or line.startswith("  ")]
        warnings.warn(
            f"the session's ClickHouse took {time.monotonic() - started:.0f} s to stop; still running: {running}; "
            f"its log: {held[-10:]}",
            stacklevel=1,
        )


@pytest.fixture
def ch(clickhouse):
    """A clickhouse-connect client bound to a fresh database of its own."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    admin = clickhouse.client()
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse.client(database=database)
    yield client
    client.close()
    admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    admin.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound and never listening, for the test's length: every connection to it is
    refused, and no other process (another test's server) can take it, as it could a port that was
    merely free when it was chosen."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections (into its backlog) and never answers: a server that
    stalls, or a network that drops the answers."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(16)
        yield held.getsockname()[1]


@pytest.fixture(scope="session")
def analytics_db(clickhouse):
    """The analytics schema, built once by `analytics migrate` in the session's ClickHouse."""
    from operations.migrate import migrate

    settings = clickhouse.settings()
    result = migrate(settings, capture=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return clickhouse


@pytest.fixture
def own_analytics_db(tmp_path):
    """An embedded ClickHouse of the test's own with the schema built, and the settings that reach
    it: for tests that change the schema or the retention, which others must not see."""
    from core.settings.composed import Settings
    from operations.migrate import migrate

    server = embedded_server.start(tmp_path / "data")
    try:
        settings = Settings(clickhouse_http_port=server.port, data_dir=tmp_path / "state")
        built = migrate(settings, capture=True)
        assert built.returncode == 0, built.stdout[-3000:]
        yield server, settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """Kafka's jars, fetched on first use. Without Java or Maven, Kafka tests skip (under CI a skip fails)."""
    try:
        find_java()
        return ensure_jars(KAFKA_JARS_DIR)
    except KafkaUnavailable as error:
        pytest.skip(f"Kafka tests need Java 17+ and Maven: {error}")


def broker_at(data_dir: Path, jars_dir: Path = KAFKA_JARS_DIR) -> KafkaBroker:
    """A test's broker, both its ports (clients' and controller's) from this worker's range."""
    return KafkaBroker(data_dir, free_port(), controller_port=free_port(), jars_dir=jars_dir)


@pytest.fixture(scope="session")
def kafka(kafka_jars, tmp_path_factory) -> KafkaBroker:
    """One real Kafka broker for the whole run: ``.bootstrap``, ``.stop()``, ``.start()``, ``.restart()``.

    Tests never stop it (those that do take ``own_kafka``); tests use topics of their own.
    """
    broker = broker_at(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_kafka(kafka_jars, tmp_path) -> KafkaBroker:
    """A broker of the test's own, for tests that stop, kill or restart it: the session's broker
    is never restarted, so one failed restart cannot spoil every Kafka test after it."""
    broker = broker_at(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()
