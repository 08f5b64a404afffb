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
