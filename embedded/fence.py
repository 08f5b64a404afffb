"""What users' SQL may reach besides the tables: no files and no network, unless the operator allows it.

chDB runs as clickhouse-local does: ``file()``, ``url()``, ``INTO OUTFILE`` and the File, URL or S3
engines reach anything the process can, and ClickHouse's own confinement to ``user_files_path``
applies to servers only. A ClickHouse server answers a client over HTTP with its tables, so this
fence refuses, in the statements clients send (never in the front's own):

  * every table function that is not known to read only the database (the rest of
    ``system.table_functions``: file, url, s3, remote, mysql, executable, python, ...), and the
    ``file()`` function, in any position (a dictionary's ``SOURCE(FILE(...))`` included);
  * table and database engines other than the ones that keep their data in the database
    (MergeTree family, Memory, Log family, Null, views, ...), and dynamic disks (``disk(...)``);
  * ``INTO OUTFILE`` and ``FROM INFILE``, as a server refuses them over HTTP;
  * ``ATTACH ... FROM 'path'``.

Path-like table names need no rule: `default` is a plain Atomic database (see embedded.engine),
so a table is only what SHOW TABLES lists. The allow-lists are the safe side: a table function or
engine that a newer chDB adds is refused until it is listed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from embedded.errors import ClickHouseError
from embedded.sqltext import IncompleteText, Token, tokens

ACCESS_DENIED = (497, "ACCESS_DENIED")
INTO_OUTFILE_NOT_ALLOWED = (358, "INTO_OUTFILE_NOT_ALLOWED")
UNKNOWN_TYPE_OF_QUERY = (78, "UNKNOWN_TYPE_OF_QUERY")

# Table functions that read only what the database holds or generates.
SAFE_TABLE_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "primes",
        "generateRandom",
        "generateSeries",
        "generate_series",
        "values",
        "SQLStandardValues",
        "format",
        "input",
        "null",
        "view",
        "viewIfPermitted",
        "viewExplain",
        "merge",
        "loop",
        "dictionary",
        "fuzzJSON",
        "fuzzQuery",
        "mergeTreeIndex",
        "mergeTreeProjection",
        "mergeTreeAnalyzeIndexes",
        "mergeTreeAnalyzeIndexesUUID",
        "mergeTreeCodecBlockCounts",
        "mergeTreeTextIndex",
        "timeSeriesData",
        "timeSeriesTags",
        "timeSeriesMetrics",
    )
)
# Calls that reach outside but are not table functions: dictionary sources and dynamic disks.
EXTRA_REFUSED_CALLS = frozenset({"file", "disk", "http", "https", "executable_pool", "cassandra"})
# Engines whose data lives in the database (table engines and database engines).
SAFE_ENGINES = frozenset(
    name.lower()
    for name in (
        "Memory",
        "Null",
        "Log",
        "TinyLog",
        "StripeLog",
        "Set",
        "Join",
        "Buffer",
        "Merge",
        "Dictionary",
        "Distributed",
        "View",
        "MaterializedView",
        "LiveView",
        "WindowView",
        "GenerateRandom",
        "Loop",
        "EmbeddedRocksDB",
        "KeeperMap",
        "TimeSeries",
        "Alias",
        "FuzzJSON",
        "FuzzQuery",
        "Atomic",
        "Ordinary",
        "Lazy",
        "Replicated",
        "Overlay",
    )
)
_DDL = frozenset({"CREATE", "ATTACH", "REPLACE"})
# What may follow ``ENGINE Name`` without parentheses in a CREATE statement.
_AFTER_ENGINE = frozenset({"ORDER", "PARTITION", "PRIMARY", "SAMPLE", "TTL", "SETTINGS", "AS", "COMMENT", "EMPTY"})
_ALLOW_HINT = "start the embedded ClickHouse with --allow-file-access (ANALYTICS_CLICKHOUSE_ALLOW_FILE_ACCESS=true)"


class Fence:
    """Refuses statements that would reach files or the network; ``check`` raises ClickHouseError."""

    def __init__(self, user: str, table_functions: Iterable[str]):
        self.user = user
        self.refused_calls = EXTRA_REFUSED_CALLS | {
            name.lower() for name in table_functions if name.lower() not in SAFE_TABLE_FUNCTIONS
        }

    def check(self, statement: Sequence[Token]) -> None:
        first = statement[0].upper if statement else ""
        for index, token in enumerate(statement):
            after = statement[index + 1] if index + 1 < len(statement) else None
            if after is None:
                break
            name = _name(token)
            if after.kind == "open" and name.lower() in self.refused_calls:
                raise self._denied(f"{name}() reaches files or the network of the server")
            word = token.upper if token.kind == "word" else ""
            if word == "INTO" and after.upper == "OUTFILE":
                raise ClickHouseError.of(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
            if word == "FROM" and after.upper == "INFILE":
                raise ClickHouseError.of(UNKNOWN_TYPE_OF_QUERY, "Query has infile and was send directly to server")
            if word == "ENGINE" and first in _DDL:
                engine_name = _engine_name(statement, index)
                if engine_name and not _is_safe_engine(engine_name):
                    raise self._denied(f"the {engine_name} engine reaches files or the network of the server")
            if first == "ATTACH" and word == "FROM" and after.kind == "string":
                raise self._denied("ATTACH ... FROM a path reads files of the server")
            if word == "QUERY" and first in _DDL and after.kind == "string":
                # A dictionary's CLICKHOUSE(query '...') source is SQL the server runs later: fence it too.
                try:
                    self.check(list(tokens(_unquote_string(after.text))))
                except IncompleteText:
                    raise self._denied("a dictionary source query that cannot be read") from None

    def _denied(self, reason: str) -> ClickHouseError:
        return ClickHouseError.of(ACCESS_DENIED, f"{self.user}: Not enough privileges: {reason}; {_ALLOW_HINT}")


def _unquote_string(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)|''", lambda match: match.group(1) or "'", body)


def _name(token: Token) -> str:
    """A word, or a quoted identifier without its quotes (ClickHouse accepts `file`(...) too)."""
    if token.kind == "word":
        return token.text
    if token.kind == "quoted" and len(token.text) >= 2:
        return token.text[1:-1]
    return ""


def _engine_name(statement: Sequence[Token], index: int) -> str:
    """The engine named by ``ENGINE [=] Name`` at ``index``, or "" when ``ENGINE`` is a column there."""
    rest = statement[index + 1 : index + 4]
    if rest and rest[0].kind == "other" and rest[0].text == "=":
        return _name(rest[1]) if len(rest) > 1 else ""
    if not rest or rest[0].kind != "word":
        return ""
    follower = rest[1] if len(rest) > 1 else None
    if follower is None or follower.kind in ("open", "semicolon") or follower.upper in _AFTER_ENGINE:
        return rest[0].text
    return ""


def _is_safe_engine(name: str) -> bool:
    lowered = name.lower()
    return lowered in SAFE_ENGINES or lowered.endswith("mergetree")
