"""``cancel_http_readonly_queries_on_client_close``: a read-only statement whose client went away is killed.

As on a ClickHouse server, only when the request asks for it (clickhouse-connect does on every
query, and with it Superset and the dbt adapter): a statement that writes nothing for a long time,
such as a count over a large table, would otherwise run on after its client gave up, holding a
core of the machine. The front marks such a statement with the request's own ``log_comment``
(``RequestSpec.cancel_marker``, applied by the lease to read-only statements only) and, when the
client's connection closes while chDB works on it, runs ``KILL QUERY`` for that mark; chDB's
streaming cancel cannot be called while another thread waits on the same query. Without the
setting the statement runs to its end, or until its answer cannot be written, as on a server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from embedded.engine import Engine
from embedded.request import RequestSpec

log = logging.getLogger(__name__)


async def watched(
    in_thread: Callable[..., Awaitable[Any]], engine: Engine, spec: RequestSpec, function: Callable, *args
) -> Any:
    """``function(*args)`` in a worker thread, killed if the client goes away meanwhile and asked for that."""
    if spec.cancel_marker is None or spec.client_gone is None:
        return await in_thread(function, *args)
    marker, client_gone = spec.cancel_marker, spec.client_gone

    async def kill_when_gone() -> None:
        await client_gone()
        log.info("query %s: the client went away; cancelling the read-only statement", spec.query_id)
        try:
            await in_thread(engine.kill_marked, marker)
        except Exception:
            log.exception("query %s: could not cancel it", spec.query_id)

    # A task of its own rather than a task group's: the statement's own error (cancelled, say)
    # must reach the front as it is, not inside an exception group.
    watcher = asyncio.ensure_future(kill_when_gone())
    try:
        return await in_thread(function, *args)
    finally:
        watcher.cancel()
