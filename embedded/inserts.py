"""INSERT bodies into chDB: always through `INSERT ... FROM INFILE`, never pasted after the statement.

chDB (like clickhouse-local) ends inline INSERT data at the first blank line and runs the rest as
SQL, so "\\n\\n" in a body (text, or bytes of a Native block) would be executed. A small, complete
body is written to a file first; a large or still-arriving one streams through a FIFO as it comes,
except into a topic's landing tables: those inserts run one at a time (embedded/landing_locks.py),
so such a body is received whole into a file first, and a slow sender holds nobody up meanwhile.
A small body with async_insert=1 joins others in one batch (the queue: embedded/async_inserts.py),
which its first sender inserts from a file.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from embedded import async_inserts
from embedded.errors import ClickHouseError
from embedded.lease import Lease
from embedded.request import BodyReader, RequestSpec
from embedded.sqltext import InsertData, quote_string

if TYPE_CHECKING:
    from embedded.engine import Engine
    from embedded.http import Front

log = logging.getLogger(__name__)


async def insert_from_file(front: Front, lease: Lease, head: bytearray, insert: InsertData, rows: bytes | None = None):
    """A small, complete body (or `rows` instead of it): write it to a file and let chDB read it."""
    data = head[insert.data_start :] if rows is None else rows

    async def write(path: Path) -> None:
        path.write_bytes(data)

    return await _insert_file(front, lease, head, insert, write)


async def insert_through_fifo(front: Front, lease: Lease, head: bytearray, insert: InsertData, body: BodyReader):
    """A large or still-arriving body: stream it into chDB through a FIFO as it comes (received
    whole first when it goes into a topic's landing tables)."""
    if not front.landing_locks.taken_by(insert.statement_reading_from(head[: insert.data_start], "")):
        return await _insert_through_fifo(front, lease, head, insert, body)
    rows = head[insert.data_start :]
    return await _insert_file(front, lease, head, insert, lambda path: _receive_whole(path, rows, body))


async def _insert_file(front: Front, lease: Lease, head: bytearray, insert: InsertData, write):
    """Write the rows into a file (``await write(path)``), then insert them from it, in the topic's
    turn when they go into its landing tables."""
    path = front.engine.tmp_dir / f"{uuid.uuid4().hex}.rows"
    try:
        await write(path)
        statement = insert.statement_reading_from(head[: insert.data_start], str(path))
        async with front.landing_locks.held(statement):
            return await front.in_thread(lease.run, statement, "TabSeparated", "MUTATING")
    except ClickHouseError as error:
        raise error.without_file(str(path), "the request body").of_the_rows() from None
    finally:
        path.unlink(missing_ok=True)


async def insert_coalesced(front: Front, spec: RequestSpec, lease: Lease, head: bytearray, insert: InsertData):
    """async_insert=1: joined with other small inserts of the same kind (embedded/async_inserts.py).
    chDB's result of the batch, or None when the sender does not wait for it."""
    await front.end(lease)  # the batch gets a connection of its own when it is inserted
    statement = bytes(head[: insert.data_start])
    key = async_inserts.queue_key(spec.user, spec.database, statement, spec.settings)
    timeout_s, at_once = front.async_inserts.busy_timeout(key, spec.settings, time.monotonic())
    batch, outcome, leader = front.async_inserts.join(
        key,
        insert.format,
        bytes(head[insert.data_start :]),
        async_inserts.max_data_size(spec.settings),
        at_once=at_once,
    )
    if leader:
        front.async_inserts.track(asyncio.ensure_future(_lead_batch(front, batch, spec, head, insert, timeout_s)))
    if not async_inserts.waits(spec.settings):
        outcome.add_done_callback(partial(_report_unawaited, front, spec.query_id))
        return None
    return await outcome


def _report_unawaited(front: Front, query_id: str, outcome: asyncio.Future) -> None:
    """A sender answered at once (wait_for_async_insert=0) whose rows were then refused: nobody
    else hears of it, so it is logged and counted, never dropped unsaid."""
    error = None if outcome.cancelled() else outcome.exception()
    if error is None:
        return
    log.warning(
        "an insert answered at once (wait_for_async_insert=0, query id %s) was refused when its batch went in;"
        " none of its rows are stored: %s",
        query_id,
        error,
    )
    front.count_late_refusal(str(getattr(error, "code", "")))


async def _lead_batch(front: Front, batch, spec: RequestSpec, head: bytearray, insert: InsertData, timeout_s: float):
    lease = None

    async def run(rows: bytes):
        nonlocal lease
        lease = lease or await front.lease_for(async_inserts.batch_request(spec))
        try:
            result = await insert_from_file(front, lease, head, insert, rows)
        finally:
            front.engine.writes.inserted()  # before the batch's senders get their answer
        front.count_written_rows(result.rows_written())  # once for the batch, whoever waits for it
        return result

    try:
        await front.async_inserts.lead(batch, timeout_s, run)
    except Exception:
        log.exception("an asynchronous insert failed inside the embedded server")
    finally:
        if lease is not None:
            await front.end(lease)


async def _receive_whole(path: Path, start: bytes, body: BodyReader) -> None:
    """Write the body into ``path`` as it arrives, in writes of about a MiB; a body that does not
    arrive whole raises as it would into the FIFO, and nothing is inserted."""
    with open(path, "wb") as file:
        pending, size = [bytes(start)], len(start)
        while (chunk := await body.read()) is not None:
            pending.append(chunk)
            size += len(chunk)
            if size >= 1 << 20:
                await anyio.to_thread.run_sync(file.writelines, pending)
                pending, size = [], 0
        await anyio.to_thread.run_sync(file.writelines, pending)


async def _insert_through_fifo(front: Front, lease: Lease, head: bytearray, insert: InsertData, body: BodyReader):
    fifo = front.engine.tmp_dir / f"{uuid.uuid4().hex}.fifo"
    os.mkfifo(fifo, 0o600)
    try:
        statement = insert.statement_reading_from(head[: insert.data_start], str(fifo))
        done = asyncio.ensure_future(front.in_thread(lease.run, statement, "TabSeparated", "MUTATING"))
        pipe = FifoWriter(fifo, done)
        try:
            await pipe.open()
            await pipe.write(bytes(head[insert.data_start :]))
            while (chunk := await body.read()) is not None:
                await pipe.write(chunk)
        except ReaderGone:
            pass  # chDB stopped reading: its error (awaited below) says why
        except BaseException:
            # The body did not arrive whole (the client went away or stopped sending, or it did
            # not decode). Closing the FIFO alone would end chDB's input as if the body were
            # complete and commit the rows it got; as in ClickHouse, the insert fails instead.
            with anyio.CancelScope(shield=True):
                await abort(front, fifo, done, pipe)
            raise
        finally:
            pipe.close()
        return await done
    except ClickHouseError as error:
        raise error.without_file(str(fifo), "the request body").of_the_rows() from None
    finally:
        fifo.unlink(missing_ok=True)


async def abort(front: Front, fifo: Path, done: asyncio.Future, pipe: FifoWriter) -> None:
    """Cancel the INSERT reading ``fifo``, then close the FIFO and wait for the INSERT to end.

    KILL QUERY marks the query cancelled at once (ASYNC); the end of input that closing the FIFO
    then gives it ends it cancelled, and blocks it had not yet written are dropped.
    """
    try:
        if not done.done():
            await front.in_thread(kill_insert_reading, front.engine, fifo.name)
    finally:
        # Even if the KILL failed: the INSERT must end before its connection is used or closed.
        pipe.close()
        try:
            await done
        except ClickHouseError:
            pass  # cancelled, as it should be
        else:
            log.warning("an INSERT whose body ended early finished before it could be cancelled (%s)", fifo.name)


def kill_insert_reading(engine: Engine, file_name: str) -> None:
    connection = engine.acquire()
    try:
        # The name is split in the statement so that the KILL does not match its own text.
        head, tail = file_name[:8], file_name[8:]
        connection.query(
            "KILL QUERY WHERE query_kind = 'Insert' AND position(query, "
            f"concat({quote_string(head)}, {quote_string(tail)})) > 0 ASYNC"
        )
    finally:
        if not engine.release_to_pool(connection):
            connection.close()


class ReaderGone(Exception):
    """chDB closed the FIFO (or never opened it): the INSERT has ended, with or without an error."""


class FifoWriter:
    """Writes request bytes into the FIFO that a chDB ``INSERT ... FROM INFILE`` reads.

    Opening for writing only succeeds once chDB has opened the FIFO for reading, so data is never
    written into a pipe nobody will read; every wait also watches the INSERT, which may end early.
    """

    def __init__(self, path: Path, insert_done: asyncio.Future):
        self.path = path
        self.insert_done = insert_done
        self.fd: int | None = None

    async def open(self) -> None:
        delay = 0.0005
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                return
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            if self.insert_done.done():
                raise ReaderGone()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                written = os.write(self.fd, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                raise ReaderGone() from None
            writable = loop.create_future()
            loop.add_writer(self.fd, _resolve, writable)
            try:
                await asyncio.wait({writable, self.insert_done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                loop.remove_writer(self.fd)
            if self.insert_done.done():
                raise ReaderGone()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
