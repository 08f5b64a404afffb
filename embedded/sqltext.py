"""Just enough SQL lexing for the HTTP front to do what ClickHouse's own HTTP handler does.

The handler must know, before it hands a request to chDB:
  * where an ``INSERT ... FORMAT X`` / ``INSERT ... VALUES`` statement ends and its data begins,
    so the data can be streamed instead of being pasted into one huge SQL string;
  * the output format a statement asks for (``FORMAT X``), to answer ``X-ClickHouse-Format``;
  * whether the text holds more than one statement (ClickHouse's HTTP interface refuses that).

The scanner works on bytes decoded as latin-1, so every offset it reports is a byte offset into
the request, and UTF-8 inside literals passes through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One alternative per token kind; the order matters (comments before operators, and so on).
_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<line_comment>(?:--|\#)[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<string>'(?:[^'\\]|\\.|'')*'?)
    | (?P<quoted>"(?:[^"\\]|\\.|"")*"?|`(?:[^`\\]|\\.|``)*`?)
    | (?P<heredoc>\$(?P<tag>[A-Za-z_0-9]*)\$)
    | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<number>[0-9][0-9A-Za-z_.]*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<semicolon>;)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Statements whose answer is a result set: ClickHouse sends X-ClickHouse-Format only for these.
_RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK", "KILL", "WATCH"}
)
# Of those, the ones chDB can stream (it refuses the others with "Streaming query is not supported").
_STREAMABLE_KEYWORDS = frozenset({"SELECT", "WITH"})


@dataclass(frozen=True)
class Token:
    kind: str
    start: int
    end: int
    depth: int  # parenthesis depth before this token
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()


class IncompleteText(Exception):
    """The text ends inside a comment, literal or quoted name: more bytes are needed.

    The message is the token's kind (``string``, ``quoted``, ``comment`` or ``heredoc``); ``start`` its offset.
    """

    def __init__(self, kind: str, start: int = 0):
        super().__init__(kind)
        self.start = start

    def syntax_error(self, text: str) -> str:
        """What ClickHouse answers for a whole statement that ends so, e.g. ``Single quoted string is
        not closed: Syntax error: failed at position 8 ('abc): 'abc``."""
        rest = text[self.start :].rstrip()
        snippet = rest if len(rest) <= 40 else rest[:40] + "..."
        opening = text[self.start : self.start + 1]
        what = {
            "'": "Single quoted string is not closed: ",
            '"': "Double quoted string is not closed: ",
            "`": "Back quoted string is not closed: ",
            "/": "Multiline comment is not closed: ",
        }.get(opening, "")
        return f"{what}Syntax error: failed at position {self.start + 1} ({snippet}): {snippet}"


def tokens(text: str):
    """Yield significant tokens (no whitespace or comments) with their parenthesis depth."""
    pos, depth, length = 0, 0, len(text)
    while pos < length:
        match = _TOKEN.match(text, pos)
        kind = match.lastgroup
        end = match.end()
        if kind == "block_comment":
            end = _end_of_block_comment(text, pos)
        elif kind == "heredoc":
            closing = text.find(match.group(0), end)
            if closing < 0:
                raise IncompleteText("heredoc", pos)
            end = closing + len(match.group(0))
        elif kind in ("string", "quoted"):
            body = match.group(0)
            if len(body) < 2 or body[-1] != body[0] or _escaped_tail(body):
                raise IncompleteText(kind, pos)
        if kind not in ("ws", "line_comment", "block_comment"):
            if kind == "close":
                depth = max(0, depth - 1)
            yield Token(kind, pos, end, depth, text[pos:end])
            if kind == "open":
                depth += 1
        pos = end


def first_words(text: str, count: int = 2) -> list[str]:
    """The statement's first ``count`` words, upper-case, up to its first token that is not a word."""
    words = []
    try:
        for token in tokens(text):
            if token.kind != "word" or len(words) == count:
                break
            words.append(token.upper)
    except IncompleteText:
        pass
    return words


def _escaped_tail(literal: str) -> bool:
    """True when the closing quote found by the regex is really an escaped one (``'abc\\'``)."""
    backslashes = len(literal) - 1 - len(literal[:-1].rstrip("\\"))
    return backslashes % 2 == 1


def _end_of_block_comment(text: str, start: int) -> int:
    # ClickHouse block comments nest.
    depth, pos = 0, start
    while True:
        opening = text.find("/*", pos)
        closing = text.find("*/", pos)
        if closing < 0:
            raise IncompleteText("comment", start)
        if 0 <= opening < closing:
            depth += 1
            pos = opening + 2
        else:
            depth -= 1
            pos = closing + 2
            if depth == 0:
                return pos


@dataclass(frozen=True)
class InsertData:
    """An INSERT whose rows follow the statement text in the request.

    ``INSERT ... SELECT ... FROM input('structure') FORMAT X`` is one too: its SELECT reads the rows
    (``select``, and ``input_call``: the byte offsets of ``input``, its arguments' start and end, and
    the end of the call). An ``INSERT ... SELECT ... FORMAT X`` without input() has nothing that reads
    the data that follows.
    """

    format: str
    # Byte offsets into the request text.
    clause_start: int  # where ``FORMAT X`` or ``VALUES`` starts
    settings_start: int | None  # a top-level SETTINGS clause between the table and the data clause
    data_start: int
    select: bool = False
    input_call: tuple[int, int, int, int] | None = None

    def statement_reading_from(self, head: bytes, source: str) -> bytes:
        """The same INSERT, reading its rows from ``FROM INFILE source`` instead of inline data
        (input() reads them from ``file(source, format, structure)``).

        ``head`` is the request's bytes up to the data; the statement keeps them exactly as sent.
        """
        if self.input_call is not None:
            start, arguments_start, arguments_end, end = self.input_call
            arguments = [quote_string(source).encode(), quote_string(self.format).encode()]
            if structure := bytes(head[arguments_start:arguments_end]).strip():
                arguments.append(structure)
            call = b"file(" + b", ".join(arguments) + b")"
            return bytes(head[:start]) + call + bytes(head[end : self.clause_start]).rstrip()
        cut = self.settings_start if self.settings_start is not None else self.clause_start
        parts = [
            bytes(head[:cut]).rstrip(),
            b"FROM INFILE " + quote_string(source).encode(),
            bytes(head[cut : self.clause_start]).strip(),
            b"FORMAT " + self.format.encode(),
        ]
        return b" ".join(part for part in parts if part)


@dataclass(frozen=True)
class Query:
    """Any statement that is not an INSERT with inline data."""

    first_keyword: str
    output_format: str | None  # from a FORMAT clause, if the statement has one
    format_clause: tuple[int, int] | None  # byte span of ``FORMAT X``
    statement_end: int  # offset after the statement (before a trailing semicolon)
    tokens: tuple[Token, ...] = ()  # its significant tokens

    @property
    def returns_result(self) -> bool:
        return self.first_keyword in _RESULT_KEYWORDS

    @property
    def streamable(self) -> bool:
        return self.first_keyword in _STREAMABLE_KEYWORDS

    @property
    def has_totals(self) -> bool:
        """A top-level ``WITH TOTALS``: its totals row comes after the data (a subquery's do not)."""
        words = [t.upper for t in self.tokens if t.depth == 0 and t.kind == "word"]
        return any(a == "WITH" and b == "TOTALS" for a, b in zip(words, words[1:], strict=False))

    @property
    def limit(self) -> int | None:
        """The row count of a top-level ``LIMIT n``, ``LIMIT m, n`` or ``LIMIT n OFFSET m`` written as
        numbers (None otherwise: no such clause, or a parameter)."""
        top = [t for t in self.tokens if t.depth == 0]
        for index, token in enumerate(top):
            if token.kind != "word" or token.upper != "LIMIT":
                continue
            numbers = top[index + 1 : index + 5]
            if not numbers or numbers[0].kind != "number" or not numbers[0].text.isdigit():
                return None
            pair = len(numbers) >= 3 and numbers[1].text == "," and numbers[2].text.isdigit()
            after = numbers[3 if pair else 1 : 4 if pair else 2]
            if after and after[0].kind == "word" and after[0].upper == "BY":
                continue  # LIMIT n BY columns: n rows a group, not a bound on the result
            if any(t.kind == "word" and t.upper == "TIES" for t in top[index:]):
                return None  # WITH TIES: any number of rows equal to the last
            return int(numbers[2].text if pair else numbers[0].text)
        return None

    def mentions(self, setting: str) -> bool:
        """Whether a word of the statement is this setting's name (in a SETTINGS clause, say)."""
        return any(t.kind == "word" and t.text.lower() == setting for t in self.tokens)


def find_insert_data(text: str, complete: bool) -> InsertData | None | bool:
    """Locate the data of ``INSERT ... FORMAT X`` / ``INSERT ... VALUES``.

    Returns the InsertData, ``None`` when the text is not an INSERT with inline data, or ``False``
    when ``text`` is a prefix of the request that ends too early to tell (``complete`` is False).
    """
    try:
        stream = tokens(text)
        first = next(stream, None)
        if first is None or first.upper != "INSERT":
            return None if first is not None or complete else False
        settings_start = None
        for token in stream:
            if token.depth == 0 and token.kind == "word":
                word = token.upper
                if word in ("SELECT", "WITH"):
                    return _select_data(text, stream, complete)
                if word == "FROM":
                    return None  # INSERT ... FROM INFILE: no inline data
                if word == "SETTINGS" and settings_start is None:
                    settings_start = token.start
                elif word == "VALUES":
                    return InsertData("Values", token.start, settings_start, token.end)
                elif word == "FORMAT":
                    name = next(stream, None)
                    if name is None or (name.end == len(text) and not complete):
                        return None if complete else False
                    return InsertData(_unquote(name.text), token.start, settings_start, _data_start(text, name.end))
    except IncompleteText:
        return None if complete else False
    return None if complete else False


# Words after which FORMAT is a name in an expression (a column, a table), not the format clause.
_BEFORE_A_NAME = frozenset(
    {"SELECT", "DISTINCT", "AS", "FROM", "JOIN", "WHERE", "PREWHERE", "HAVING", "AND", "OR", "NOT", "BY", "ON",
     "USING", "IN", "LIKE", "ILIKE", "IS", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "LIMIT", "OFFSET", "WITH"}
)  # fmt: skip


def _select_data(text: str, stream, complete: bool) -> InsertData | None | bool:
    """The data after ``INSERT ... SELECT ... FORMAT X``, and the select's input() call, if any."""
    call, opened, previous = None, None, None
    for token in stream:
        if opened is not None and token.kind == "close" and token.depth == opened.depth:
            call, opened = (call[0], opened.end, token.start, token.end), None
        elif call is None and previous is not None and previous.upper == "INPUT" and token.kind == "open":
            call, opened = (previous.start, 0, 0, 0), token
        elif token.depth == 0 and token.kind == "word" and token.upper == "FORMAT" and _ends_an_expression(previous):
            name = next(stream, None)
            if name is None or (name.end == len(text) and not complete):
                return None if complete else False
            if name.kind in ("word", "quoted", "string"):
                data_start = _data_start(text, name.end)
                return InsertData(
                    _unquote(name.text), token.start, None, data_start, True, call if opened is None else None
                )
        previous = token
    return None if complete else False


def _ends_an_expression(token: Token | None) -> bool:
    if token is None or token.kind in ("open", "other"):
        return False
    return token.kind != "word" or token.upper not in _BEFORE_A_NAME


def insert_target(statement: str) -> tuple[str | None, str] | None:
    """The (database or None, table) an ``INSERT INTO [TABLE] [db.]table ...`` writes; None if it
    is not such an insert (another statement, ``INSERT INTO FUNCTION``)."""
    try:
        stream = tokens(statement)
        first = next(stream, None)
        if first is None or first.upper != "INSERT":
            return None
        token = next(stream, None)
        if token is not None and token.upper == "INTO":
            token = next(stream, None)
        if token is not None and token.upper == "TABLE":
            token = next(stream, None)
        if token is None or token.kind not in ("word", "quoted") or token.upper == "FUNCTION":
            return None
        name = _unquote(token.text)
        dot = next(stream, None)
        if dot is None or dot.text != ".":
            return None, name
        table = next(stream, None)
        if table is None or table.kind not in ("word", "quoted"):
            return None
        return name, _unquote(table.text)
    except IncompleteText:
        return None


def _data_start(text: str, after_format_name: int) -> int:
    """ClickHouse skips blanks on the FORMAT line and then one line break before the data."""
    pos = after_format_name
    while pos < len(text) and text[pos] in " \t\f":
        pos += 1
    if text.startswith("\r\n", pos):
        return pos + 2
    if pos < len(text) and text[pos] == "\n":
        return pos + 1
    return pos


def parse_query(text: str) -> Query:
    """Describe a complete statement that is not an INSERT with inline data.

    Raises ``MultiStatement`` when a second statement follows the first.
    """
    all_tokens = list(tokens(text))
    first_keyword = ""
    for token in all_tokens:
        if token.kind == "open":
            continue
        first_keyword = token.upper if token.kind == "word" else ""
        break
    if not all_tokens:
        return Query("", None, None, 0)
    statement_end = all_tokens[-1].end
    for index, token in enumerate(all_tokens):
        if token.kind == "semicolon" and token.depth == 0:
            if index + 1 < len(all_tokens):
                raise MultiStatement()
            statement_end = token.start
    output_format, clause = _format_clause(all_tokens)
    return Query(first_keyword, output_format, clause, statement_end, tuple(all_tokens))


def _format_clause(all_tokens: list[Token]) -> tuple[str | None, tuple[int, int] | None]:
    """A top-level ``FORMAT name`` followed only by the end, a semicolon or a SETTINGS clause."""
    for index in range(len(all_tokens) - 1, -1, -1):
        token = all_tokens[index]
        if token.depth != 0 or token.kind != "word" or token.upper != "FORMAT":
            continue
        if index + 1 >= len(all_tokens):
            return None, None
        name = all_tokens[index + 1]
        if name.kind not in ("word", "quoted", "string"):
            continue
        after = all_tokens[index + 2] if index + 2 < len(all_tokens) else None
        if after is None or after.kind == "semicolon" or (after.kind == "word" and after.upper == "SETTINGS"):
            return _unquote(name.text), (token.start, name.end)
    return None, None


# Settings of a statement's SETTINGS clause that shape how its result is written, not which rows
# it has: the front's conversion of a spooled result into the asked format needs them too.
_OUTPUT_SETTING_PREFIXES = ("output_format_", "format_")
_OUTPUT_SETTINGS = frozenset(
    {"date_time_output_format", "interval_output_format", "session_timezone", "bool_true_representation",
     "bool_false_representation"}
)  # fmt: skip


def output_settings(query: Query) -> list[str]:
    """The ``name = value`` texts of the statement's top-level SETTINGS clauses that shape its output."""
    found, all_tokens = [], query.tokens
    index = 0
    while index < len(all_tokens):
        token = all_tokens[index]
        index += 1
        if not (token.depth == 0 and token.kind == "word" and token.upper == "SETTINGS"):
            continue
        # name = value [, name = value ...]: a value runs to the next top-level comma, FORMAT or end.
        while index + 1 < len(all_tokens) and all_tokens[index].kind == "word" and all_tokens[index + 1].text == "=":
            name, end = all_tokens[index], index + 2
            while end < len(all_tokens) and not _ends_setting(all_tokens[end]):
                end += 1
            if end == index + 2:
                break  # no value: not a clause this reads
            if name.text.lower().startswith(_OUTPUT_SETTING_PREFIXES) or name.text.lower() in _OUTPUT_SETTINGS:
                found.append(" ".join(t.text for t in all_tokens[index:end]))
            index = end + 1 if end < len(all_tokens) and all_tokens[end].text == "," else end
    return found


def _ends_setting(token: Token) -> bool:
    return token.depth == 0 and (
        token.text == "," or token.kind == "semicolon" or (token.kind == "word" and token.upper == "FORMAT")
    )


class MultiStatement(Exception):
    """More than one statement in a request."""


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"`'":
        return name[1:-1]
    return name


def quote_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """A ClickHouse identifier, back-quoted."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def rewritten(head: bytearray, rewrites: list[tuple[int, int, str]]) -> bytearray:
    """``head`` with byte ranges replaced (the fence's file() paths, KILL QUERY's query_id), last
    first so offsets hold."""
    for start, end, text in sorted(rewrites, reverse=True):
        head = head[:start] + text.encode() + head[end:]
    return head
