"""What a read-only request may run: ClickHouse's ``readonly`` 1 and 2, by statement.

A ClickHouse server runs every HTTP request but a POST with ``readonly = 2`` when the request's own
readonly is 0 (HTTPHandler's setReadOnlyIfHTTPMethodIdempotent): GET and HEAD only read. readonly=1
allows reads and USE; readonly=2 also SET (of any setting but readonly itself) and CREATE TEMPORARY
TABLE. DDL, SYSTEM, KILL and every INSERT are refused with READONLY (164).

A pooled request's throw-away connection also gets ``SET readonly``, but chDB lets some writes pass
under it (KILL QUERY, INSERT INTO FUNCTION), and a session's connection cannot have it at all (it
can never be undone there): so every read-only request's statement is judged here first, by chDB's
class of it and its first words.
"""

from __future__ import annotations

from core.errors import Code
from embedded.errors import ClickHouseError
from embedded.sqltext import IncompleteText, first_words, tokens


def level(method: str, asked: str | None) -> str | None:
    """The request's readonly: what it asked, else 2 for any method but POST, else None."""
    if asked not in (None, "", "0"):
        return asked
    return None if method == "POST" else "2"


def check(readonly: str | None, method: str, user: str, statement_class: str, sql: str) -> None:
    """Raise READONLY if a request of this readonly may not run the statement."""
    if readonly is None or statement_class == "READ_ONLY":
        return
    words = first_words(sql)
    if words[:1] == ["USE"] and statement_class == "CONTROL":
        return
    if readonly != "1" and statement_class == "CONTROL":
        if words[:2] == ["CREATE", "TEMPORARY"]:
            return
        if words[:1] == ["SET"] and words[1:2] != ["DEFAULT"]:
            if "readonly" not in _words_lowered(sql):
                return
            raise ClickHouseError.of(Code.READONLY, "Cannot modify 'readonly' setting in readonly mode")
    raise refusal(method, user)


def refusal(method: str, user: str) -> ClickHouseError:
    """ClickHouse's READONLY error, with its word on the HTTP method when that made it read-only."""
    if method == "POST":
        return ClickHouseError.of(Code.READONLY, f"{user}: Cannot execute query in readonly mode")
    return ClickHouseError.of(
        Code.READONLY,
        f"Cannot execute query in readonly mode. For queries over HTTP, method {method} implies readonly. "
        "You should use method POST for modifying queries",
    )


def _words_lowered(sql: str) -> set[str]:
    try:
        return {token.text.lower() for token in tokens(sql) if token.kind == "word"}
    except IncompleteText:
        return {"readonly"}  # a statement chDB would refuse anyway: nothing to allow
