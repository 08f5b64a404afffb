"""ClickHouse exceptions as the HTTP interface reports them: ``Code: N. DB::Exception: ...``.

The codes themselves are core.errors.Code; chDB's own errors carry their code and name in the text.
"""

from __future__ import annotations

import errno
import logging
import re

from core.errors import Code, http_status
from core.names import TOPICS
from embedded.sqltext import quote_string

log = logging.getLogger(__name__)

# native_blocks raises NOT_IMPLEMENTED by this name; every other module uses core.errors.Code.
NOT_IMPLEMENTED = Code.NOT_IMPLEMENTED
THROW_IF = "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"
# A refusal under the event contract (dbt_project/macros/event_contract.sql, contract_holds).
_CONTRACT_REFUSAL = re.compile(rf"^({'|'.join(TOPICS)}) event (\"|with EventKey |without an ).* refused, \w+: ")

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
        self.status: int | None = None  # the HTTP status, where it is not the name's

    @classmethod
    def of(cls, code: Code, message: str) -> ClickHouseError:
        return cls(int(code), code.name, message)

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
            return cls.of(Code.UNKNOWN_EXCEPTION, text or type(error).__name__)
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

    def of_the_rows(self) -> ClickHouseError:
        """The error of an INSERT's rows. The landing views' event contract refuses them with a
        throwIf (`jobs event "e-1" refused, <rule>: ...`): the sender's data, so 400, which no HTTP
        client retries as it is (a ClickHouse server answers 500), with the contract's message and
        not the expression that gave it. Any other view's throwIf stays as ClickHouse reports it."""
        if self.name != THROW_IF or not _CONTRACT_REFUSAL.match(self.message):
            return self
        refused = ClickHouseError(
            self.code, self.name, self.message.split(": while executing 'FUNCTION throwIf(", 1)[0]
        )
        refused.status = 400
        return refused

    @property
    def http_status(self) -> int:
        return self.status or http_status(self.name)

    def render(self, version: str) -> str:
        """The response body ClickHouse sends for this error."""
        message = self.message.rstrip()
        name = f" ({self.name})" if self.name else ""
        return f"Code: {self.code}. DB::Exception: {message}{name} (version {version})\n"


# Errors of the front's own file writes (a request body spooled to a file) that ClickHouse has a code for.
_RESOURCE_CODES = {
    errno.ENOSPC: Code.NOT_ENOUGH_SPACE,
    errno.EDQUOT: Code.NOT_ENOUGH_SPACE,
    errno.EMFILE: Code.CANNOT_OPEN_FILE,
    errno.ENFILE: Code.CANNOT_OPEN_FILE,
}


def unexpected(error: Exception, query_id: str) -> ClickHouseError:
    """An error of the front itself, as ClickHouse would say it (call it in the `except` block): a
    full disk or no file descriptor left with ClickHouse's code for it, which senders retry;
    anything else UNKNOWN_EXCEPTION, logged with its traceback."""
    code = _RESOURCE_CODES.get(error.errno) if isinstance(error, OSError) else None
    if code is None:
        log.exception("query %s failed inside the embedded server", query_id)
    else:
        log.warning("query %s: %s", query_id, error)
    return ClickHouseError.of(code or Code.UNKNOWN_EXCEPTION, f"{type(error).__name__}: {error}")
