"""What users' SQL may reach besides the tables: no files and no network, unless the operator allows it.

chDB runs as clickhouse-local does: ``file()``, ``url()``, ``INTO OUTFILE`` and the File, URL or S3
engines reach anything the process can, and ClickHouse's own confinement to ``user_files_path``
applies to servers only. A ClickHouse server answers a client over HTTP with its tables, so this
fence refuses, in the statements clients send (never in the front's own):

  * every table function that is not known to read only the database (the rest of
    ``system.table_functions``: url, s3, remote, mysql, executable, python, ...), in any position;
  * ``file()`` (the table function and the function), except with a plain string literal as its
    path inside ``user_files`` of the data directory, as a server's ``user_files_path``: relative
    paths are rewritten to absolute ones there, and ``..`` or a symbolic link out of it is refused
    with DATABASE_ACCESS_DENIED as a server words it (a dictionary's ``SOURCE(FILE(...))`` is refused);
  * table and database engines other than the ones that keep their data in the database
    (MergeTree family, Memory, Log family, Null, views, ...), and dynamic disks (``disk(...)``);
  * ``INTO OUTFILE`` and ``FROM INFILE``, as a server refuses them over HTTP;
  * ``ATTACH ... FROM 'path'``.

Path-like table names need no rule: `default` is a plain Atomic database (see embedded.engine),
so a table is only what SHOW TABLES lists. The allow-lists are the safe side: a table function or
engine that a newer chDB adds is refused until it is listed here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import Code
from embedded.errors import ClickHouseError
from embedded.sqltext import IncompleteText, Token, quote_string, tokens

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
    """Refuses statements that would reach files or the network, and confines ``file()`` to ``user_files``.

    ``check`` raises ClickHouseError, or returns the rewrites that point ``file()`` paths into
    ``user_files``: ``(start, end, literal)``, offsets into the statement's text.
    """

    def __init__(self, user: str, table_functions: Iterable[str], user_files: Path | None = None):
        self.user = user
        self.user_files = user_files.resolve() if user_files is not None else None
        self.refused_calls = EXTRA_REFUSED_CALLS | {
            name.lower() for name in table_functions if name.lower() not in SAFE_TABLE_FUNCTIONS
        }

    def check(self, statement: Sequence[Token], confine: bool = True) -> list[tuple[int, int, str]]:
        rewrites: list[tuple[int, int, str]] = []
        first = statement[0].upper if statement else ""
        for index, token in enumerate(statement):
            after = statement[index + 1] if index + 1 < len(statement) else None
            if after is None:
                break
            name = _name(token)
            if after.kind == "open" and name.lower() in self.refused_calls:
                if name.lower() == "file" and confine and self.user_files is not None:
                    rewrites.append(self._confined_path(statement, index + 2))
                    continue
                raise self._denied(f"{name}() reaches files or the network of the server")
            word = token.upper if token.kind == "word" else ""
            if word == "INTO" and after.upper == "OUTFILE":
                raise ClickHouseError.of(Code.INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
            if word == "FROM" and after.upper == "INFILE":
                raise ClickHouseError.of(Code.UNKNOWN_TYPE_OF_QUERY, "Query has infile and was send directly to server")
            if word == "ENGINE" and first in _DDL:
                engine_name = _engine_name(statement, index)
                if engine_name and not _is_safe_engine(engine_name):
                    raise self._denied(f"the {engine_name} engine reaches files or the network of the server")
            if first == "ATTACH" and word == "FROM" and after.kind == "string":
                raise self._denied("ATTACH ... FROM a path reads files of the server")
            if word == "QUERY" and first in _DDL and after.kind == "string":
                # A dictionary's CLICKHOUSE(query '...') source is SQL the server runs later: fence it too.
                try:
                    self.check(list(tokens(_unquote_string(after.text))), confine=False)
                except IncompleteText:
                    raise self._denied("a dictionary source query that cannot be read") from None
        return rewrites

    def _confined_path(self, statement: Sequence[Token], index: int) -> tuple[int, int, str]:
        """The rewrite of ``file('path', ...)``'s first argument to its place in ``user_files``."""
        literal = statement[index] if index < len(statement) else None
        closing = statement[index + 1] if index + 1 < len(statement) else None
        if (
            literal is None
            or literal.kind != "string"
            or closing is None
            or not (closing.kind == "close" or (closing.kind == "other" and closing.text == ","))
            or "\\" in literal.text
        ):
            raise self._denied("file() takes a plain string literal as its path here")
        raw = literal.text[1:-1].replace("''", "'").encode("latin-1").decode("utf-8", "replace")
        root = self.user_files
        path = Path(os.path.normpath(root / raw))
        if ".." in Path(raw).parts or not path.is_relative_to(root):
            raise ClickHouseError.of(Code.DATABASE_ACCESS_DENIED, f"File `{raw}` is not inside `{root}`")
        # The part before any glob must not leave the directory through a symbolic link either.
        fixed = Path(root)
        for part in path.relative_to(root).parts:
            if any(char in part for char in "*?{[") or not (fixed / part).exists():
                break
            fixed = fixed / part
        if not fixed.resolve().is_relative_to(root):
            raise ClickHouseError.of(Code.DATABASE_ACCESS_DENIED, f"File `{raw}` is not inside `{root}`")
        return literal.start, literal.end, quote_string(str(path))

    def _denied(self, reason: str) -> ClickHouseError:
        return ClickHouseError.of(Code.ACCESS_DENIED, f"{self.user}: Not enough privileges: {reason}; {_ALLOW_HINT}")


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
