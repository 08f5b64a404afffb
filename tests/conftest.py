"""Fixtures shared by every suite: a real embedded ClickHouse on a free port."""

from __future__ import annotations

import uuid

import pytest

from tests import embedded_server


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    """One embedded ClickHouse process for the whole run (tests use their own databases)."""
    server = embedded_server.start(tmp_path_factory.mktemp("clickhouse") / "data")
    yield server
    server.stop()


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


@pytest.fixture(scope="session")
def analytics_db(clickhouse):
    """The analytics schema, built once by `analytics migrate` in the session's ClickHouse."""
    from analytics.migrate import migrate
    from analytics.settings import Settings

    settings = Settings(clickhouse_http_port=clickhouse.port, data_dir=clickhouse.data_dir.parent / "state")
    result = migrate(settings, capture=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return clickhouse
