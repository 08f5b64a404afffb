"""What the front needs to know about ClickHouse output formats."""

from __future__ import annotations

from embedded.sqltext import Query, output_settings

# Formats whose output for a whole result is the plain concatenation of their output for each
# block: chDB's streaming results can be passed straight through. chDB starts every streamed
# chunk with a fresh output format, so formats with a header, prefix or suffix (JSON, XML,
# Parquet, TSVWithNames, RowBinaryWithNamesAndTypes, Pretty...) are not in this set; they are
# produced in one piece from a Native spool instead (see embedded.http).
CONCATENABLE = frozenset(
    name.lower()
    for name in (
        "Native",
        "RowBinary",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "Raw",
        "CSV",
        "JSONEachRow",
        "JSONLines",
        "NDJSON",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "TSKV",
        "LineAsString",
        "MsgPack",
        "BSONEachRow",
        "Null",
    )
)

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "csvwithnamesandtypes": "text/csv; charset=UTF-8; header=present",
    "xml": "application/xml; charset=UTF-8",
    "markdown": "text/markdown; charset=UTF-8",
}
_BINARY = ("native", "rowbinary", "parquet", "arrow", "orc", "avro", "msgpack", "bson", "protobuf", "capnproto", "npy")


# Values is not in the set: its rows are separated by commas, and chDB leaves the comma out
# between chunks ("(0),(1)(2)"). JSONEachRow and its aliases are, but with the setting
# output_format_json_array_of_rows they print one JSON array of all rows, and chDB one per chunk.
ARRAY_OF_ROWS_SETTING = "output_format_json_array_of_rows"
# The settings that decide how the front produces an answer, asked of a session's connection.
SHAPING_SETTINGS = ("extremes", ARRAY_OF_ROWS_SETTING)
_ARRAY_OF_ROWS_FORMATS = frozenset({"jsoneachrow", "jsonlines", "ndjson", "jsonstringseachrow"})
# The time zone a statement's DateTime values are read and written in: X-ClickHouse-Timezone says it,
# and clients read binary DateTime columns in it (clickhouse-connect, the JDBC driver).
TIMEZONE_SETTING = "session_timezone"


def statement_timezone(statement: Query) -> str | None:
    """The session_timezone of the statement's own top-level SETTINGS clause, if it sets one."""
    for setting in output_settings(statement):
        name, _, value = setting.partition("=")
        if name.strip().lower() == TIMEZONE_SETTING:
            return value.strip().strip("'\"")
    return None


def is_concatenable(fmt: str, settings_may_wrap_rows: bool = False) -> bool:
    """Whether chDB's streamed chunks of ``fmt`` make the whole answer when joined.

    ``settings_may_wrap_rows``: the request may set output_format_json_array_of_rows (in its URL,
    its text, or a session's earlier SET): then the JSONEachRow family is spooled too.
    """
    name = fmt.lower()
    if settings_may_wrap_rows and name in _ARRAY_OF_ROWS_FORMATS:
        return False
    return name in CONCATENABLE


def content_type(fmt: str) -> str:
    name = fmt.lower()
    if name in _CONTENT_TYPES:
        return _CONTENT_TYPES[name]
    if name.startswith("json") or name == "ndjson":
        return "application/json; charset=UTF-8"
    if name.startswith(_BINARY):
        return "application/octet-stream"
    if name.startswith("tabseparated") or name.startswith("tsv"):
        return "text/tab-separated-values; charset=UTF-8"
    return "text/plain; charset=UTF-8"


# Formats that report rows_before_limit_at_least (how many rows there were before a LIMIT), which
# the front learns only when chDB runs the statement whole.
REPORTS_ROWS_BEFORE_LIMIT = frozenset(
    name.lower()
    for name in (
        "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings", "JSONColumnsWithMetadata", "XML",
        "JSONEachRowWithProgress", "JSONStringsEachRowWithProgress", "JSONCompactEachRowWithProgress",
        "JSONCompactStringsEachRowWithProgress",
    )
)  # fmt: skip


# A LIMIT up to this many rows is run whole for formats that report the rows before it: the
# answer is then held in memory, not spooled to a file, and this bounds it.
WHOLE_LIMIT_ROWS = 100_000


def writes_rows_after_the_data(statement: Query, url_settings: dict[str, str], fmt: str) -> bool:
    """Whether the answer's format writes totals, extremes or rows_before_limit_at_least after its
    rows, which chDB's streamed chunks and the front's spool leave out: such a statement is run
    whole. Not Native: the front rewrites its blocks for the client's revision, and chDB (as a
    server over HTTP) writes it without them."""
    name = fmt.lower()
    if name == "native":
        return False
    limit = statement.limit
    limited = name in REPORTS_ROWS_BEFORE_LIMIT and limit is not None and limit <= WHOLE_LIMIT_ROWS
    return statement.has_totals or may_be_on("extremes", url_settings, statement) or limited


def may_be_on(setting: str, settings: dict[str, str], statement: Query) -> bool:
    """Whether the setting is on in ``settings`` (the URL's, or a session's in force) or may be in the
    statement's own SETTINGS clause (any mention of its name counts: that only costs a stream)."""
    return settings.get(setting, "0") not in ("0", "false", "False", "") or statement.mentions(setting)
