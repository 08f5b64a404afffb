"""ClickHouse exceptions as the HTTP interface reports them: ``Code: N. DB::Exception: ...``."""

from __future__ import annotations

import re

from embedded.sqltext import quote_string

# The codes the front raises itself; chDB's own errors carry their code and name in the text.
AUTHENTICATION_FAILED = (516, "AUTHENTICATION_FAILED")
BAD_ARGUMENTS = (36, "BAD_ARGUMENTS")
CANNOT_DECOMPRESS = (271, "CANNOT_DECOMPRESS")
NOT_IMPLEMENTED = (48, "NOT_IMPLEMENTED")
QUERY_WAS_CANCELLED = (394, "QUERY_WAS_CANCELLED")
QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING = (216, "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING")
READONLY = (164, "READONLY")
SESSION_IS_LOCKED = (373, "SESSION_IS_LOCKED")
SESSION_NOT_FOUND = (372, "SESSION_NOT_FOUND")
SYNTAX_ERROR = (62, "SYNTAX_ERROR")
TOO_MANY_SIMULTANEOUS_QUERIES = (202, "TOO_MANY_SIMULTANEOUS_QUERIES")
UNKNOWN_COMPRESSION_METHOD = (89, "UNKNOWN_COMPRESSION_METHOD")
UNKNOWN_SETTING = (115, "UNKNOWN_SETTING")
UNKNOWN_EXCEPTION = (1002, "UNKNOWN_EXCEPTION")

# HTTP status per exception name, as ClickHouse's exceptionCodeToHTTPStatus maps them; others are 500.
_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_CODE_IN_TEXT = re.compile(r"^Code: (\d+)\. ")
_NESTED = re.compile(
    r"^Code: (\d+)\. DB::Exception: (.*?)(?: \([A-Z][A-Z0-9_]+\))?(?: \(version [^)]*\))?\.?$", re.DOTALL
)
_NAME_IN_TEXT = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version [^)]*\)\s*)?$")


class ClickHouseError(Exception):
    """An error with a ClickHouse exception code, reported to HTTP clients as ClickHouse does."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def of(cls, kind: tuple[int, str], message: str) -> ClickHouseError:
        return cls(kind[0], kind[1], message)

    @classmethod
    def from_engine(cls, error: BaseException) -> ClickHouseError:
        """Wrap an exception raised by chDB; its text already reads ``Code: N. DB::Exception: ...``."""
        if isinstance(error, UnicodeDecodeError):
            # chDB raises this when its error text holds bytes that are not UTF-8 (e.g. a binary value).
            text = error.object.decode("utf-8", "replace").strip()
        else:
            text = str(error).strip()
        # chDB sometimes prefixes its own context ("Streaming query failed: Code: ...").
        start = text.find("Code: ")
        if start > 0:
            text = text[start:]
        match = _CODE_IN_TEXT.match(text)
        if not match:
            return cls(UNKNOWN_EXCEPTION[0], UNKNOWN_EXCEPTION[1], text or type(error).__name__)
        code = int(match.group(1))
        name_match = _NAME_IN_TEXT.search(text)
        body = text[match.end() : name_match.start() if name_match else len(text)].rstrip()
        body = body.removeprefix("DB::Exception: ")
        # chDB wraps some errors in a second copy of themselves: "Code: 27. DB::Exception: <inner> (NAME) (version X)."
        inner = _NESTED.match(body)
        if inner and int(inner.group(1)) == code:
            body = inner.group(2)
        return cls(code, name_match.group(1) if name_match else "", body)

    def without_file(self, path: str, data_source: str) -> ClickHouseError:
        """The same error without the front's temporary file: as ClickHouse words it for data from the request."""
        message = self.message.replace(f": (in file/uri {path})", "").replace(f" (in file/uri {path})", "")
        message = message.replace(": While executing File: data for INSERT was parsed from file", "")
        message = message.replace(f"FROM INFILE {quote_string(path)} ", "").replace(path, data_source)
        return ClickHouseError(self.code, self.name, message)

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def render(self, version: str) -> str:
        """The response body ClickHouse sends for this error."""
        message = self.message.rstrip()
        name = f" ({self.name})" if self.name else ""
        return f"Code: {self.code}. DB::Exception: {message}{name} (version {version})\n"
