"""The two query backends of the gRPC service on real engines: chDB in this process and HTTP."""

from __future__ import annotations

import threading

import pytest

from core.backend import QueryFailed, QueryTimedOut
from core.clickhouse.backend import HttpBackend
from embedded.backend import ChdbBackend
from embedded.engine import Engine
from tests.grpc_server import HeldRelay

AWKWARD = ["tab\there", "new\nline", "back\\slash\\", "quotes ' \" `", "ünïcode ✓", "cr\rnul\0end", "{x:String}", ""]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """chDB in this process (one data directory per process: closed when the module ends)."""
    engine = Engine(tmp_path_factory.mktemp("chdb-backend"))
    engine.open()
    yield engine
    engine.close()


@pytest.fixture(params=["chdb", "http"])
def backend(request, clickhouse):
    backend = ChdbBackend(request.getfixturevalue("engine")) if request.param == "chdb" else HttpBackend(clickhouse.url)
    yield backend
    backend.close()


def test_values_arrive_exactly_as_given(backend):
    for value in AWKWARD:
        assert backend.rows("select {v:String}, length({v:String})", {"v": value}, 10) == [[value, len(value.encode())]]


def test_bytes_that_are_not_utf8_come_back_replaced_not_as_a_failure(backend):
    assert backend.rows("select concat('bad ', unhex('FFFE'), ' bytes')", {}, 10) == [["bad \ufffd bytes"]]


def test_arrays_of_tuples_arrive_exactly_as_given(backend):
    jobs = [(value, "w", value[::-1]) for value in AWKWARD]
    rows = backend.rows("select {jobs:Array(Tuple(String, String, String))}", {"jobs": jobs}, 10)
    assert rows == [[[list(job) for job in jobs]]]
    member = "select ({a:String}, 'w', {b:String}) in {jobs:Array(Tuple(String, String, String))}"
    assert backend.rows(member, {"a": "quotes ' \" `", "b": "` \" ' setouq", "jobs": jobs}, 10) == [[1]]
    assert backend.rows(member, {"a": "quotes", "b": "setouq", "jobs": jobs}, 10) == [[0]]


def test_each_worker_thread_gets_its_own_answers(backend):
    wrong: list = []

    def work(thread: int) -> None:
        for n in range(60):
            value = f"t{thread}-{n}"
            rows = backend.rows("select {n:UInt64} * 2, {s:String}", {"n": thread * 1000 + n, "s": value}, 10)
            if rows != [[(thread * 1000 + n) * 2, value]]:
                wrong.append((thread, n, rows))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_query_that_outlives_its_time_is_timed_out(backend):
    with pytest.raises(QueryTimedOut, match="Timeout exceeded|TIMEOUT_EXCEEDED"):
        backend.rows("select count() from numbers_mt(10000000000000) where not ignore(sipHash64(number))", {}, 0.2)


def test_clickhouse_errors_are_query_failures_for_the_log(backend):
    with pytest.raises(QueryFailed, match="UNKNOWN_DATABASE|does not exist"):
        backend.rows("select * from no_such_database.no_table where x = {x:String}", {"x": "1"}, 10)


def test_an_http_url_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="is not http"):
        HttpBackend("clickhouse:8123")


def test_an_unreachable_clickhouse_is_a_query_failure(refused_port):
    backend = HttpBackend(f"http://127.0.0.1:{refused_port}")
    with pytest.raises(QueryFailed, match="is unreachable") as caught:
        backend.rows("select 1", {}, 5)
    assert not isinstance(caught.value, QueryTimedOut)


def test_a_dropped_connection_is_asked_again_once(clickhouse):
    relay = HeldRelay(clickhouse.port)
    backend = HttpBackend(relay.url)
    try:
        assert backend.rows("select 1", {}, 10) == [[1]]
        relay.drop_next()
        assert backend.rows("select 2", {}, 10) == [[2]]  # on a new connection
        relay.drop_next(2)
        with pytest.raises(QueryFailed, match="dropped the connection"):
            backend.rows("select 3", {}, 10)
    finally:
        backend.close()
        relay.close()


def test_a_held_query_times_out_on_the_socket(clickhouse):
    relay = HeldRelay(clickhouse.port)
    backend = HttpBackend(relay.url)
    try:
        relay.hold()
        with pytest.raises(QueryTimedOut, match="did not answer in time"):
            backend.rows("select 1", {}, 0.1)
    finally:
        backend.close()
        relay.close()


def test_chdb_connections_are_the_services_own_not_the_http_fronts(engine):
    # The front leaves a request's settings on the connections it pools; the service must not see them.
    pooled = engine.acquire()
    pooled.apply_settings({"limit": "1"})
    engine.release(pooled)
    backend = ChdbBackend(engine)
    try:
        assert backend.rows("select number from numbers(3)", {}, 10) == [[0], [1], [2]]
    finally:
        backend.close()
