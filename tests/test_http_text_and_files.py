"""Non-ASCII SQL reaches chDB byte for byte; error texts read as ClickHouse's; files are fenced off.

Every format path of the front is covered: results streamed as they come (TSV, JSONEachRow,
Native), results converted from a Native spool (JSON, CSVWithNames), statements chDB runs whole
(DDL, SHOW), and inserts (small bodies from a file, large ones through a FIFO, VALUES).
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

import pytest
import urllib3

from tests import embedded_server

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))
TEXT = "Zoë 北京 ✓ ñ"


def post(server, body, headers=None, **params):
    url = server.url + "/" + ("?" + urlencode(params) if params else "")
    return HTTP.request("POST", url, body=body.encode() if isinstance(body, str) else body, headers=headers or {})


@pytest.fixture
def db(clickhouse):
    database = f"text_{uuid.uuid4().hex[:10]}"
    assert post(clickhouse, f"CREATE DATABASE {database}").status == 200
    yield database
    post(clickhouse, f"DROP DATABASE IF EXISTS {database}")


# -- non-ASCII SQL text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("TabSeparated", f"{TEXT}\t1\t1\n".encode()),
        ("JSONEachRow", json.dumps({"s": TEXT, "like": 1, "eq": 1}, ensure_ascii=False).replace(" ", "").encode()),
        ("CSVWithNames", f'"s","like","eq"\n"{TEXT}",1,1\n'.encode()),
    ],
)
def test_non_ascii_literals_and_comments_in_every_result_path(clickhouse, fmt, expected):
    query = f"SELECT '{TEXT}' AS s /* commentaire: à */, s LIKE '%北%' AS like, s = 'Zoë 北京 ✓ ñ' AS eq -- fin ü"
    response = post(clickhouse, f"{query}\nFORMAT {fmt}")
    assert response.status == 200, response.data
    data = response.data.replace(b" ", b"") if fmt == "JSONEachRow" else response.data
    assert data == (expected + b"\n" if fmt == "JSONEachRow" else expected).replace(b"\n\n", b"\n")


def test_non_ascii_in_native_and_json_documents(clickhouse):
    native = post(clickhouse, f"SELECT '{TEXT}' AS s FORMAT Native").data
    encoded = TEXT.encode()
    assert native == b"\x01\x01\x01s\x06String" + bytes([len(encoded)]) + encoded
    document = json.loads(post(clickhouse, f"SELECT '{TEXT}' AS s FROM numbers(3) FORMAT JSON").data)
    assert [row["s"] for row in document["data"]] == [TEXT] * 3
    in_url = HTTP.request("GET", clickhouse.url + "/?" + urlencode({"query": f"SELECT '{TEXT}'"}))
    assert in_url.data == f"{TEXT}\n".encode()


def test_non_ascii_filters_find_stored_rows(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.people (name String) ENGINE = MergeTree ORDER BY name")
    post(clickhouse, "Zoë\nJosé\n北京\nplain\n", query=f"INSERT INTO {db}.people FORMAT TSV")
    assert post(clickhouse, f"SELECT count() FROM {db}.people WHERE name LIKE '%é%' OR name = '北京'").data == b"2\n"
    found = post(
        clickhouse, f"SELECT name FROM {db}.people WHERE name IN ('Zoë', 'José') ORDER BY name FORMAT JSONEachRow"
    )
    assert [json.loads(line)["name"] for line in found.data.splitlines()] == ["José", "Zoë"]
    # Parameters carry non-ASCII values too (URL-encoded UTF-8, as clients send them).
    bound = post(clickhouse, f"SELECT count() FROM {db}.people WHERE name = {{n:String}}", param_n="北京")
    assert bound.data == b"1\n"


def test_non_ascii_identifiers_comments_and_values_in_ddl_and_inserts(clickhouse, db):
    ddl = (
        f"CREATE TABLE {db}.`tâble_ü` (`çolumn` String COMMENT 'commentaire: é', n UInt32) "
        "ENGINE = MergeTree ORDER BY n COMMENT 'table à'"
    )
    assert post(clickhouse, ddl).status == 200
    assert post(clickhouse, f"SHOW TABLES FROM {db}").data == "tâble_ü\n".encode()
    comment = post(clickhouse, f"SELECT comment FROM system.columns WHERE database = '{db}' AND name = 'çolumn'")
    assert comment.data == "commentaire: é\n".encode()
    # Small insert (a file), VALUES, JSONEachRow naming the non-ASCII column, a large insert (a FIFO).
    table = f"{db}.`tâble_ü`"
    assert post(clickhouse, "ü\t1\n", query=f"INSERT INTO {table} FORMAT TSV").status == 200
    assert post(clickhouse, f"INSERT INTO {table} (`çolumn`, n) VALUES ('北京', 2)").status == 200
    row = json.dumps({"çolumn": "ñ", "n": 3}, ensure_ascii=False)
    assert post(clickhouse, row, query=f"INSERT INTO {table} (`çolumn`, n) FORMAT JSONEachRow").status == 200
    big = "".join(f"ßig {i}\t{i + 10}\n" for i in range(300_000))
    assert post(clickhouse, big, query=f"INSERT INTO {table} SETTINGS async_insert = 0 FORMAT TSV").status == 200
    assert post(clickhouse, f"INSERT INTO {table} SELECT 'Zoë', 4").status == 200
    firsts = post(clickhouse, f"SELECT `çolumn` FROM {table} WHERE n <= 4 ORDER BY n FORMAT JSONEachRow").data
    assert [json.loads(line)["çolumn"] for line in firsts.splitlines()] == ["ü", "北京", "ñ", "Zoë"]
    assert post(clickhouse, f"SELECT countIf(`çolumn` LIKE 'ßig %') FROM {table}").data == b"300000\n"
    # A mutation with a non-ASCII value, and a view whose definition holds one.
    post(clickhouse, f"ALTER TABLE {table} UPDATE `çolumn` = 'éé' WHERE n = 1 SETTINGS mutations_sync = 1")
    post(clickhouse, f"CREATE VIEW {db}.`vüe` AS SELECT `çolumn` FROM {table} WHERE `çolumn` = 'éé'")
    assert post(clickhouse, f"SELECT * FROM {db}.`vüe`").data == "éé\n".encode()


# -- error texts -----------------------------------------------------------------------------------


def test_exception_block_length_counts_its_line_break(clickhouse):
    response = post(
        clickhouse,
        "SELECT number, throwIf(number = 150000, 'spät failure') FROM numbers(200000)",
        max_block_size="10000",
    )
    tag = response.headers["X-ClickHouse-Exception-Tag"]
    match = re.search(
        rb"\r\n__exception__\r\n" + tag.encode() + rb"\r\n(.*\n)(\d+) " + tag.encode() + rb"\r\n__exception__\r\n$",
        response.data,
        re.DOTALL,
    )
    assert match, response.data[-500:]
    message, length = match.group(1), int(match.group(2))
    assert message.startswith(b"Code: 395. DB::Exception: ") and message.endswith(b"\n")
    assert "spät failure".encode() in message
    assert len(message) == length


@pytest.mark.parametrize("rows", [10, 300_000], ids=["small-body", "streamed-body"])
def test_insert_parse_errors_name_no_temporary_file(clickhouse, db, rows):
    post(clickhouse, f"CREATE TABLE {db}.n (x UInt8) ENGINE = Memory")
    body = "1\n" * rows + "not a number\n"
    response = post(clickhouse, body, query=f"INSERT INTO {db}.n FORMAT TSV")
    assert response.status == 400
    text = response.data.decode()
    assert text.startswith("Code: 27. DB::Exception: Cannot parse input"), text
    assert text.count("Code: ") == 1
    for leak in ("tmp/http", ".rows", ".fifo", "in file/uri", "INFILE", "parsed from file"):
        assert leak not in text, text


# -- files fenced off ------------------------------------------------------------------------------

REFUSED = [
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "291"),
    ("SELECT file('/etc/hostname')", "291"),
    ("SELECT * FROM `file`('/etc/hostname')", "291"),
    ("SELECT * FROM file('../../../etc/hostname', 'LineAsString')", "291"),
    ("SELECT * FROM file(concat('/etc/', 'hostname'), 'LineAsString')", "497"),
    ("SELECT * FROM file({path:String}, 'LineAsString')", "497"),
    ("SELECT * FROM view(SELECT * FROM file('/etc/hostname'))", "291"),
    ("INSERT INTO FUNCTION file('/tmp/out.tsv', 'TSV') SELECT 1", "291"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', 'TSV', 'x String')", "497"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/x.csv')", "497"),
    ("SELECT * FROM remote('127.0.0.1:1', system.one)", "497"),
    ("CREATE TABLE f (x String) ENGINE = File(TSV, '/etc/hostname')", "497"),
    ("CREATE TABLE f (x String) ENGINE URL('http://127.0.0.1:1/x', TSV)", "497"),
    ("CREATE DATABASE fs ENGINE = Filesystem('/etc')", "497"),
    (
        "CREATE TABLE d (x UInt8) ENGINE = MergeTree ORDER BY x SETTINGS disk = disk(type = local, path = '/tmp/d/')",
        "497",
    ),
    (
        "CREATE DICTIONARY dict (x String) PRIMARY KEY x SOURCE(FILE(path '/etc/hostname' format 'TSV')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        "497",
    ),
    (
        "CREATE DICTIONARY dict (x String) PRIMARY KEY x "
        "SOURCE(CLICKHOUSE(query 'SELECT * FROM file(\\'/etc/hostname\\')')) LAYOUT(FLAT()) LIFETIME(0)",
        "497",
    ),
    ("SELECT 1 INTO OUTFILE '/tmp/out.tsv'", "358"),
    ("INSERT INTO t FROM INFILE '/etc/hostname' FORMAT LineAsString", "78"),
]


@pytest.mark.parametrize("statement, code", REFUSED, ids=[statement[:40] for statement, _ in REFUSED])
def test_file_and_network_access_is_refused(clickhouse, statement, code):
    response = post(clickhouse, statement)
    assert response.headers.get("X-ClickHouse-Exception-Code") == code, response.data
    if code == "497":
        assert b"--allow-file-access" in response.data
    if code == "291":
        assert b"is not inside" in response.data and b"user_files" in response.data


def test_file_reads_and_writes_inside_user_files(clickhouse):
    user_files = clickhouse.data_dir / "user_files"
    folder = user_files / f"in_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "a.csv").write_text("x,name\n1,Zoë\n")
    (folder / "b.csv").write_text("x,name\n2,北京\n")
    relative = post(clickhouse, f"SELECT name FROM file('{folder.name}/a.csv', 'CSVWithNames')")
    assert relative.data == "Zoë\n".encode(), relative.data
    absolute = post(clickhouse, f"SELECT sum(x) FROM file('{folder}/*.csv', 'CSVWithNames')")
    assert absolute.data == b"3\n", absolute.data
    written = post(clickhouse, f"INSERT INTO FUNCTION file('{folder.name}/out.tsv', 'TSV') SELECT 'é', 7")
    assert written.status == 200, written.data
    assert (folder / "out.tsv").read_text() == "é\t7\n"
    content = post(clickhouse, f"SELECT file('{folder.name}/out.tsv')")
    assert content.data == "é\\t7\\n\n".encode(), content.data
    # A symbolic link inside user_files that points out of it is refused.
    (folder / "escape").symlink_to("/etc")
    escaped = post(clickhouse, f"SELECT * FROM file('{folder.name}/escape/hostname', 'LineAsString')")
    assert escaped.headers["X-ClickHouse-Exception-Code"] == "291", escaped.data


@pytest.mark.parametrize("name", ["`/etc/hostname`", "default.`/etc/hostname`", '"/etc/passwd"', "`*.md`", "README"])
def test_paths_are_not_tables(clickhouse, name):
    response = post(clickhouse, f"SELECT * FROM {name}")
    assert response.headers["X-ClickHouse-Exception-Code"] in ("60", "81"), response.data
    assert post(clickhouse, f"EXISTS TABLE {name}").data == b"0\n"


def test_tables_are_what_show_tables_lists(clickhouse):
    assert post(clickhouse, "EXISTS TABLE `SELECT * FROM t`").data == b"0\n"
    assert post(clickhouse, "SELECT engine FROM system.databases WHERE name = 'default'").data == b"Atomic\n"
    post(clickhouse, "CREATE TABLE default.listed (x UInt8) ENGINE = Memory")
    try:
        assert b"listed\n" in post(clickhouse, "SHOW TABLES FROM default").data
        assert post(clickhouse, "EXISTS TABLE listed").data == b"1\n"
    finally:
        post(clickhouse, "DROP TABLE default.listed")


def test_ordinary_sql_that_mentions_engines_and_files_is_not_refused(clickhouse, db):
    assert post(clickhouse, "SELECT name, engine FROM system.tables WHERE engine = 'File' LIMIT 1").status == 200
    created = post(clickhouse, f"CREATE TABLE {db}.ok ENGINE = MergeTree ORDER BY file AS SELECT 'a' AS file")
    assert created.status == 200, created.data
    assert post(clickhouse, f"SELECT file FROM {db}.ok").data == b"a\n"
    assert post(clickhouse, "SELECT count() FROM numbers(10) FORMAT JSON").status == 200


def test_operator_can_allow_file_access(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    server = embedded_server.start(tmp_path / "data", None, "--allow-file-access")
    try:
        read = post(server, f"SELECT * FROM file('{tmp_path / 'data.csv'}', 'CSVWithNames')")
        assert read.data == b"1\t2\n", read.data
        assert post(server, "SELECT engine FROM system.databases WHERE name = 'default'").data == b"Atomic\n"
    finally:
        server.stop()
