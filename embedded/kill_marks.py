"""Statements a request runs carry a mark, so they can be killed as a ClickHouse server kills them.

chDB gives each statement a query id of its own, not the one the client sent (``query_id=``), and
its streaming cancel cannot be called while another thread waits on the same statement. So a
statement runs with the request's own ``log_comment`` (``RequestSpec.kill_marker``: ``query_id:
<the client's id>``, applied by the lease), which ``KILL QUERY`` can find:

* ``cancel_http_readonly_queries_on_client_close=1`` (clickhouse-connect sends it on every query,
  and with it Superset and the dbt adapter): when the client's connection closes while chDB works
  on a read-only statement, the front kills it. A statement that writes nothing for a long time,
  such as a count over a large table, ran on after its client gave up, holding a core. Without the
  setting, or for a statement that writes, it runs on, as on a server.
* A result in a format with a header or a wrapper (``TSVWithNames``, ``RowBinaryWithNamesAndTypes``,
  JSON...) is spooled whole before a byte of it is sent, where a server streams it and stops at
  its first write to a closed connection: so its statement is cancelled when the client goes,
  with or without the setting (a spool of ``numbers(10000000000)`` filled gigabytes of disk a
  second for a client long gone).
* ``KILL QUERY WHERE query_id = '<id>'`` (how a client cancels a statement it named):
  the condition also finds the statement marked with that id, which chDB's own ids never match.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from embedded.engine import Engine
from embedded.request import RequestSpec
from embedded.sqltext import Query

log = logging.getLogger(__name__)


async def watched(
    in_thread: Callable[..., Awaitable[Any]],
    engine: Engine,
    spec: RequestSpec,
    function: Callable,
    *args,
    whole_result: bool = False,
) -> Any:
    """``function(*args)`` in a worker thread, killed if the client goes away meanwhile and asked for
    that, or (``whole_result``) if it builds a whole result before sending any of it."""
    if spec.kill_marker is None or spec.client_gone is None or not (spec.cancel_on_close or whole_result):
        return await in_thread(function, *args)
    marker, client_gone = spec.kill_marker, spec.client_gone

    async def kill_when_gone() -> None:
        await client_gone()
        log.info("query %s: the client went away; the statement is cancelled if it only reads", spec.query_id)
        try:
            await in_thread(engine.kill_marked_reading, marker)
        except Exception:
            log.exception("query %s: could not cancel it", spec.query_id)

    # A task of its own rather than a task group's: the statement's own error (cancelled, say)
    # must reach the front as it is, not inside an exception group.
    watcher = asyncio.ensure_future(kill_when_gone())
    try:
        return await in_thread(function, *args)
    finally:
        watcher.cancel()


def by_client_query_id(statement: Query) -> list[tuple[int, int, str]]:
    """The rewrites that make a ``KILL QUERY``'s ``query_id = '<id>'`` also find the statement a
    request with that ``query_id`` runs (``sqltext.rewritten`` applies them)."""
    words = [token.upper for token in statement.tokens[:2]]
    if words != ["KILL", "QUERY"]:
        return []
    rewrites = []
    found = statement.tokens
    for name, equals, literal in zip(found, found[1:], found[2:], strict=False):
        if name.text.strip('`"').lower() == "query_id" and equals.text == "=" and literal.kind == "string":
            condition = f"(query_id = {literal.text} OR Settings['log_comment'] = concat('query_id: ', {literal.text}))"
            rewrites.append((name.start, literal.end, condition))
    return rewrites
