"""A request's hold on one chDB connection: prepared with the request's database and settings,
used for its statements, then restored (a session's) or judged reusable (a pooled one).

Every method here runs in a worker thread, and a request calls them one at a time.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from embedded import readonly
from embedded.engine import Connection, ResultStream
from embedded.errors import ClickHouseError
from embedded.request import RequestSpec
from embedded.sessions import Session
from embedded.sqltext import first_words, parse_query, quote_identifier, quote_string

if TYPE_CHECKING:
    from embedded.http import Front

log = logging.getLogger(__name__)


class Lease:
    """A request's hold on one connection: prepares it, runs statements, restores it."""

    def __init__(self, front: Front, spec: RequestSpec, connection: Connection, session: Session | None):
        self.front = front
        self.spec = spec
        self.connection = connection
        self.session = session
        self.ended = False
        self._prepared = False
        self._saved_settings: dict[str, tuple[str, bool]] = {}
        self._url_settings: dict[str, str] = {}  # in force on a session's connection for this request
        self._statement_class = "UNKNOWN"
        self.ran = False  # the statement reached chDB (it was not refused first)
        self._temporary_table = False
        self._uses = False  # the statement is a USE
        self._database_chosen = False  # ... and it ran: the session's database is the one it chose
        self.session_broken = False  # the session could not be put back as it was: it ends
        self._binary_types = False  # the statement's Native spool writes its types in binary (_prepare)

    def _prepare(
        self, text: bytes, statement_class: str | None = None, mark: bool = False, spool: bool = False
    ) -> None:
        if self._prepared:
            return
        self._prepared = True
        spec, connection = self.spec, self.connection
        sql = text.decode("utf-8", "replace")
        # ``spool``: the result may be spooled as Native and converted (run_to_file). chDB's Native
        # writes a DateTime('tz') column's type as a bare DateTime (as a server does for a client too
        # old for zones), and the conversion put the values in UTC; its types in binary keep the zone.
        # Not when the request or the statement says how Native writes its types.
        self._binary_types = spool and _BINARY_TYPES not in spec.settings and _BINARY_TYPES not in sql.lower()
        statement_class = statement_class or connection.classify(sql)
        self._statement_class = statement_class
        words = first_words(sql)
        self._temporary_table = words == ["CREATE", "TEMPORARY"]
        self._uses = statement_class == "CONTROL" and words[:1] == ["USE"]
        if statement_class == "UNPARSED":
            if spec.readonly:
                # Parsed before judged, as a ClickHouse server does: a GET with a typo was told to use
                # POST. What parses here after all (the parser's limits) is judged as UNKNOWN.
                connection.raise_syntax_error(sql)
            statement_class = self._statement_class = "UNKNOWN"
        # chDB's own readonly (below) lets some writes pass, and a session's connection cannot have it.
        readonly.check(spec.readonly, spec.method, spec.user, statement_class, sql)
        settings = {**spec.settings, _BINARY_TYPES: "1"} if self._binary_types else spec.settings
        if spec.kill_marker is not None and statement_class != "CONTROL" and (spec.mark_every_statement or mark):
            settings = {**settings, "log_comment": spec.kill_marker}  # embedded.kill_marks
        if self.session is None:
            connection.use(spec.database or "default")
            connection.apply_settings(settings)
            if spec.readonly:
                connection.query(f"SET readonly = {quote_string(spec.readonly)}")
            return
        # A session keeps its own USE and SET; the request's database and settings are undone after.
        # readonly cannot be undone, so in a session only the check above enforces it.
        if spec.database:
            connection.use(spec.database)
        if settings:
            self._saved_settings = self.session.own_values(settings)
            self._url_settings = settings
            connection.query("SET " + ", ".join(f"{n} = {quote_string(v)}" for n, v in settings.items()))

    @property
    def statement_class(self) -> str:
        """chDB's class of the statement: READ_ONLY, MUTATING, MUTATING_GLOBAL, CONTROL or UNKNOWN."""
        return self._statement_class

    def run(self, text: bytes, fmt: str, statement_class: str | None = None):
        """Run a whole statement and return chDB's result."""
        self._prepare(text, statement_class)
        self.ran = True
        result = self.connection.query(text, fmt, self.spec.params)
        self._database_chosen = self._uses
        return result

    def settings_in_force(self, text: bytes, names: tuple[str, ...], mark: bool = False) -> dict[str, str]:
        """These settings' values on a session's connection as the statement will run: the session's
        own SETs and the request's URL settings (its SETTINGS clause aside). ``mark``: its whole
        result may be built before any of it is sent (embedded.kill_marks)."""
        self._prepare(text, mark=mark, spool=mark)
        try:
            own = self.session.own_values([name for name in names if name not in self._url_settings])
        except ClickHouseError:
            # The session's own SETs refuse even this (a tiny max_query_size, say): the statement
            # will meet the same refusal, so its answer's shape does not matter.
            return {}
        return {name: self._url_settings[name] if name in self._url_settings else own[name][0] for name in names}

    def start_stream(self, text: bytes, fmt: str, transform=None) -> tuple[ResultStream, bytes]:
        """Start a streaming query and read its first two chunks.

        Early errors then get a proper HTTP status, and a small answer (``stream.done``) is
        complete before the response starts.
        """
        self._prepare(text)
        stream = self.connection.stream(text, fmt, self.spec.params)
        stream.transform = transform
        try:
            first = stream.next_chunk() or b""
            if not stream.done:
                first += stream.next_chunk() or b""
            return stream, first
        except BaseException:
            stream.cancel()
            raise

    def run_to_file(self, native_text: bytes, original_text: bytes, fmt: str, settings: list[str]) -> Path | bytes:
        """A whole result in ``fmt``, built from a Native spool: a file path, or bytes when empty.

        ``settings``: the statement's own output settings (``name = value``), which the conversion
        into ``fmt`` applies as the statement would have.
        """
        self._prepare(original_text, mark=True, spool=True)  # the whole result before any: embedded.kill_marks
        tmp = self.front.engine.tmp_dir
        spool = tmp / f"{uuid.uuid4().hex}.native"
        output = tmp / f"{uuid.uuid4().hex}.out"
        try:
            stream = self.connection.stream(native_text, "Native", self.spec.params)
            with open(spool, "wb") as handle:
                while (chunk := stream.next_chunk()) is not None:
                    handle.write(chunk)
            if spool.stat().st_size == 0:
                # No rows, so no schema in the spool: the header-only answer is tiny, ask for it directly.
                return self.connection.query(original_text, fmt, self.spec.params).bytes()
            # One thread: with more, the spool's blocks reach the output in whatever order the
            # threads finish, and a sorted answer would not be sorted.
            # The first of two values of a setting wins: max_threads stays 1.
            binary = ["input_format_native_decode_types_in_binary_format = 1"] if self._binary_types else []
            try:
                self._convert(
                    f"INSERT INTO FUNCTION file({quote_string(str(output))}, {quote_string(fmt)}) "
                    f"SELECT * FROM file({quote_string(str(spool))}, 'Native') "
                    f"SETTINGS {', '.join(['max_threads = 1', *binary, *settings])}"
                )
            except ClickHouseError as error:
                if error.name != "CANNOT_EXTRACT_TABLE_STRUCTURE" or _REPEATED_NAME not in error.message:
                    raise
                # Two columns of one name (SELECT id, * ...): reading the spool refuses them, the
                # statement itself writes them. It runs again, whole, into the output.
                output.unlink(missing_ok=True)
                self.connection.query(_into_outfile(native_text, output, fmt), "TabSeparated", self.spec.params)
            return output
        except ClickHouseError as error:
            output.unlink(missing_ok=True)
            raise error.without_file(str(spool), "the result").without_file(str(output), "the output") from None
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        finally:
            spool.unlink(missing_ok=True)

    def _convert(self, sql: str) -> None:
        """Run the conversion of a spool into its format, which reads and writes only the front's files."""
        if self.session is not None or self.spec.readonly in (None, "2"):
            self.connection.query(sql)
            return
        # readonly = 1 refuses the conversion's own settings (max_threads = 1...), and every JSON or
        # RowBinaryWithNamesAndTypes answer with it: a pooled connection with the request's settings
        # converts instead (a session's readonly is judged statement by statement, never SET).
        with self.front.engine.connection() as converter:
            converter.apply_settings(self.spec.settings)
            converter.query(sql)

    def drain_to_buffer(self, stream: ResultStream, first: bytes | None):
        """Collect a whole streamed answer (wait_end_of_query=1) in memory, then on disk."""
        buffer = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - handed to the response, closed there
            max_size=self.front.config.response_memory_buffer, dir=self.front.engine.tmp_dir
        )
        try:
            if first:
                buffer.write(first)
            while (chunk := stream.next_chunk()) is not None:
                buffer.write(chunk)
        except BaseException:
            buffer.close()
            raise
        buffer.seek(0)
        return buffer

    def restore(self) -> None:
        """Undo what this request changed and decide whether a pooled connection can be reused."""
        connection = self.connection
        if self.session is None:
            # A user's SET, USE or temporary table would leak into the next request: start afresh.
            # So with settings that can refuse the next request's SET undoing them (parser limits,
            # another dialect, allow_ddl = 0): the next request would pay for this one.
            if (
                self.spec.readonly
                or self._statement_class == "CONTROL"
                or self._temporary_table
                or not _PARSER_SETTINGS.isdisjoint(self.spec.settings)
            ):
                connection.reusable = False
            return
        if self._statement_class not in ("READ_ONLY", "MUTATING"):
            self.session.own_settings.clear()  # the statement may have changed them (Session.own_settings)
        try:
            if self._database_chosen:
                # The session keeps the database its USE chose; the request's `database` was for it alone.
                connection.database = connection.query("SELECT currentDatabase()").bytes().decode().strip()
                self.session.database = connection.database
            else:
                connection.use(self.session.database)
            if self._saved_settings:
                connection.query(
                    "SET "
                    + ", ".join(
                        f"{name} = {quote_string(value)}" if changed else f"{name} = DEFAULT"
                        for name, (value, changed) in self._saved_settings.items()
                    )
                )
        except ClickHouseError as error:
            # Its settings refuse the SET that would undo them (a parser limit, say): the session ends,
            # and a request naming it again starts a new one, rather than meeting the same refusal.
            log.warning("session %s could not be put back as it was, so it ends: %s", self.session.session_id, error)
            self.session_broken = True


_REPEATED_NAME = "column with this name already exists"
_BINARY_TYPES = "output_format_native_encode_types_in_binary_format"


def _into_outfile(text: bytes, output: Path, fmt: str) -> bytes:
    """The statement (without its FORMAT clause), writing its result into ``output`` in ``fmt``."""
    statement = bytes(text[: parse_query(text.decode("latin-1")).statement_end])
    return statement + f"\nINTO OUTFILE {quote_string(str(output))} FORMAT {quote_identifier(fmt)}".encode()


_PARSER_SETTINGS = frozenset(
    {
        "max_parser_depth",
        "max_parser_backtracks",
        "max_ast_elements",
        "max_expanded_ast_elements",
        "dialect",
        "allow_ddl",
    }
)
