"""Helpers of the HTTP interface suites: requests as curl would send them, and a database per test."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
import urllib3

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))


def url(server, **params) -> str:
    return server.url + "/" + ("?" + urlencode(params) if params else "")


def post(server, body=b"", headers=None, **params):
    return HTTP.request("POST", url(server, **params), body=body, headers=headers or {})


def get(server, **params):
    return HTTP.request("GET", url(server, **params))


@pytest.fixture
def db(clickhouse):
    database = f"wire_{uuid.uuid4().hex[:10]}"
    assert post(clickhouse, f"CREATE DATABASE {database}".encode()).status == 200
    yield database
    post(clickhouse, f"DROP DATABASE IF EXISTS {database}".encode())
