"""ClickHouse's web SQL console at /play, as a ClickHouse server serves it, and what it asks of the
HTTP interface: the CORS preflight, `Authorization: never`, and answers framed as server-sent events
(`framing_output_format=EventStream`). The last test runs the page itself in headless Chromium."""

from __future__ import annotations

import base64
import json

import pytest

from tests.browser import CHROMIUM_ARGS
from tests.http_support import HTTP, db, post  # noqa: F401 - db is a fixture

EVENT_STREAM = {"framing_output_format": "EventStream"}


def events(body: bytes) -> list[tuple[str, str]]:
    """(event, data) of each server-sent event; every event must end with a blank line."""
    text = body.decode()
    assert text == "" or text.endswith("\n\n"), text[-200:]
    found = []
    for block in filter(None, text.split("\n\n")):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) == {"event", "data"}, block[:200]
        found.append((fields["event"], fields["data"]))
    return found


def payload(found: list[tuple[str, str]]) -> bytes:
    return b"".join(base64.b64decode(data) for event, data in found if event == "data")


def test_play_serves_clickhouse_own_console(clickhouse):
    page = HTTP.request("GET", clickhouse.url + "/play")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"<title>ClickHouse Query</title>" in page.data
    assert page.data.startswith(b"<!DOCTYPE html>") and page.data.rstrip().endswith(b"</html>")
    assert HTTP.request("HEAD", clickhouse.url + "/play").status == 200


def test_options_answers_a_preflight_as_clickhouse_configured_for_it(clickhouse):
    # /play checks that the server is up with OPTIONS; a page elsewhere sends it before a POST.
    answer = HTTP.request("OPTIONS", clickhouse.url + "/?query", headers={"Origin": "http://elsewhere.example"})
    assert answer.status == 204 and answer.data == b""
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "x-clickhouse-format" in answer.headers["Access-Control-Allow-Headers"]


def test_a_framed_answer_carries_the_format_output_in_data_events(clickhouse):
    plain = post(clickhouse, b"SELECT number, toString(number) FROM numbers(300000)", default_format="TSV")
    framed = post(
        clickhouse, b"SELECT number, toString(number) FROM numbers(300000)", default_format="TSV", **EVENT_STREAM
    )
    assert framed.status == 200
    assert framed.headers["Content-Type"] == "text/event-stream; charset=UTF-8; payload=base64"
    assert framed.headers["X-ClickHouse-Format"] == "TSV"
    found = events(framed.data)
    assert {event for event, _ in found} == {"data"}
    assert payload(found) == plain.data

    small = events(post(clickhouse, "SELECT 'é' AS x FORMAT JSONEachRow".encode(), **EVENT_STREAM).data)
    assert payload(small) == '{"x":"é"}\n'.encode()


def test_a_framed_statement_without_a_result_has_no_data(clickhouse, db):
    created = post(clickhouse, f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory".encode(), **EVENT_STREAM)
    assert created.status == 200
    assert [event for event, _ in events(created.data)] in ([], ["progress"])
    inserted = post(clickhouse, f"INSERT INTO {db}.t VALUES (1), (2)".encode(), **EVENT_STREAM)
    progress = [json.loads(data) for event, data in events(inserted.data) if event == "progress"]
    assert [event for event, _ in events(inserted.data)] == ["progress"]
    assert progress[0]["written_rows"] == "2"
    assert post(clickhouse, f"SELECT sum(x) FROM {db}.t".encode()).data == b"3\n"


def test_a_framed_error_is_the_last_event_before_or_after_the_first_data(clickhouse):
    refused = post(clickhouse, b"SELECT nope", **EVENT_STREAM)
    assert refused.status == 404 and refused.headers["X-ClickHouse-Exception-Code"] == "47"
    assert refused.headers["Content-Type"].startswith("text/event-stream")
    [(event, data)] = events(refused.data)
    assert event == "exception"
    assert json.loads(data)["exception"].startswith("Code: 47. DB::Exception: Unknown expression identifier `nope`")

    late = post(
        clickhouse,
        b"SELECT number, throwIf(number = 150000, 'late failure') FROM numbers(200000)",
        max_block_size="10000",
        **EVENT_STREAM,
    )
    assert late.status == 200  # the headers were already sent
    found = events(late.data)
    assert found[0][0] == "data" and found[-1][0] == "exception"
    assert "late failure" in json.loads(found[-1][1])["exception"]
    assert b"__exception__" not in late.data


@pytest.mark.parametrize("unframed", ["None", "none", ""])
def test_no_framing_is_the_plain_answer(clickhouse, unframed):
    answer = post(clickhouse, b"SELECT 1", framing_output_format=unframed)
    assert answer.data == b"1\n" and answer.headers["Content-Type"].startswith("text/tab-separated-values")


def test_a_framing_the_embedded_server_does_not_write_is_refused_by_name(clickhouse):
    refused = post(clickhouse, b"SELECT 1", framing_output_format="JSONEachPacketString")
    assert refused.status == 501 and refused.headers["X-ClickHouse-Exception-Code"] == "48"
    assert b"framing_output_format 'JSONEachPacketString' is not supported" in refused.data


def test_play_runs_statements_in_chromium(chromium, clickhouse, db):  # chromium first: nothing else when it skips
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(clickhouse.url + "/play")
            expect(page.locator("#url_status")).to_have_class("ok")  # its OPTIONS check passed

            def run(statement: str) -> None:
                page.fill("#query", statement)
                page.click("#run")

            run(f"CREATE TABLE {db}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
            expect(page.locator("#check-mark")).to_be_visible()
            run(f"INSERT INTO {db}.t SELECT number, 'row ' || toString(number) FROM numbers(5)")
            expect(page.locator("#check-mark")).to_be_visible()
            run(f"SELECT n, s FROM {db}.t WHERE n >= 3 ORDER BY n")
            table = page.locator("#data-table")
            expect(table).to_contain_text("row 3")
            expect(table).to_contain_text("row 4")
            expect(table).not_to_contain_text("row 2")
            expect(page.locator("#query-progress")).to_contain_text("2 rows in result")

            run(f"SELECT missing FROM {db}.t")
            expect(page.locator("#error")).to_contain_text("Unknown expression identifier `missing`")
        finally:
            browser.close()
