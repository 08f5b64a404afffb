"""One place that turns a handler's outcome into the status code DESIGN.md's contract names."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from core.backend import QueryFailed, QueryTimedOut, StoreBusy, StoreUnreachable
from server.validation import InvalidArgument

log = logging.getLogger(__name__)

# Below this, a query cannot finish anyway; answer DEADLINE_EXCEEDED without asking ClickHouse.
LEAST_USEFUL_SECONDS = 0.001

Response = TypeVar("Response")


class NotFound(Exception):
    """No analytics for what was asked; the message is sent to the client."""


class Exhausted(Exception):
    """The server cannot take this call now (RESOURCE_EXHAUSTED); the message says why."""


class Unavailable(Exception):
    """The call cannot go on now, e.g. the server stops; the client should call again (UNAVAILABLE)."""


# time_remaining() of a call without a deadline: very large (or None).
NO_DEADLINE_SECONDS = 1e6


def query_timeout(context: grpc.ServicerContext, default_deadline: float) -> float:
    """Seconds a query may take: what is left of the call's deadline, or the default
    (ANALYTICS_GRPC_DEFAULT_DEADLINE) when the client set none. A client's own deadline is kept, a
    longer one too: it was cut to the default, so a heavy call given 60 s ended DEADLINE_EXCEEDED at 10."""
    remaining = context.time_remaining()
    return default_deadline if remaining is None or remaining >= NO_DEADLINE_SECONDS else remaining


def abort_with_status(method: str, context: grpc.ServicerContext, error: Exception) -> None:
    """Abort the call with the status code that ``error`` stands for (never returns)."""
    if isinstance(error, InvalidArgument):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, NotFound):
        context.abort(grpc.StatusCode.NOT_FOUND, str(error))
    if isinstance(error, Exhausted):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, Unavailable):
        context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
    if isinstance(error, QueryTimedOut):
        log.info("%s: deadline exceeded: %s", method, error)
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the analytics query did not finish before the deadline")
    if isinstance(error, StoreBusy):
        log.warning("%s: %s", method, error)
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the analytics store is taking too many queries; call again")
    if isinstance(error, StoreUnreachable):
        log.warning("%s: %s", method, error)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the analytics store cannot be reached now; call again")
    if isinstance(error, QueryFailed):
        # ClickHouse's message can quote SQL; it goes to the log, the client gets none of it.
        log.error("%s: query failed: %s", method, error)
        context.abort(grpc.StatusCode.INTERNAL, "the analytics store could not answer; see the server log")
    log.error("%s failed", method, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def respond_or_abort(
    method: str, context: grpc.ServicerContext, default_deadline: float, respond: Callable[[float], Response]
) -> Response:
    """Run ``respond(seconds left)`` and turn every failure into its status code."""
    timeout = query_timeout(context, default_deadline)
    try:
        if timeout < LEAST_USEFUL_SECONDS:
            raise QueryTimedOut("the deadline had passed before the query started")
        return respond(timeout)
    except Exception as error:  # noqa: BLE001 - every failure becomes a status code
        abort_with_status(method, context, error)
    raise AssertionError("context.abort returns only by raising")
