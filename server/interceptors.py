"""Server interceptors, one per concern: metrics (every call), reading requests and tokens (the
analytics calls).

Each wraps the method's handler, whatever its kind (unary or streaming, either way), so it sees
the request messages and the status the call ends with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from analytics_proto import analytics_pb2 as pb
from core.networks import AllowedNetworks, grpc_peer_host
from server.auth import ANY_USER, Tokens
from server.metrics import Metrics
from server.validation import IdFormat, mistyped_field

ANALYTICS_SERVICE = "analytics.AnalyticsService"
DEADLINE_MARGIN_SECONDS = 1.0

# behavior(request or request iterator, context) -> response or response iterator
Behavior = Callable


def wrap_handler(
    handler: grpc.RpcMethodHandler | None,
    unary: Callable[[Behavior], Behavior],
    streaming: Callable[[Behavior], Behavior],
    request_deserializer: Callable | None = None,
) -> grpc.RpcMethodHandler | None:
    """The same handler with its behavior wrapped: ``unary`` for unary responses, else ``streaming``.

    ``request_deserializer``, when given, replaces the handler's (the identity: ``bytes``).
    A behavior that answers through a callback and returns at once (grpcio's
    ``experimental_non_blocking``: the health service's Watch) is wrapped as a unary one and stays
    so, or every open Watch would hold a worker thread for its whole life; a behavior with a
    thread pool of its own (``experimental_thread_pool``) keeps it.
    """
    if handler is None:
        return None
    serializers = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_wrapped(handler.unary_unary, unary, unary), **serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_wrapped(handler.stream_unary, unary, unary), **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_wrapped(handler.unary_stream, streaming, unary), **serializers)
    return grpc.stream_stream_rpc_method_handler(_wrapped(handler.stream_stream, streaming, unary), **serializers)


def _wrapped(behavior: Behavior, wrap: Callable[[Behavior], Behavior], unary: Callable[[Behavior], Behavior]):
    if getattr(behavior, "experimental_non_blocking", False):

        def non_blocking(request, context, send_response_callback=None):
            def call(request, context):
                return behavior(request, context, send_response_callback=send_response_callback)

            return unary(call)(request, context)

        non_blocking.experimental_non_blocking = True
        wrapped = non_blocking
    else:
        wrapped = wrap(behavior)
    pool = getattr(behavior, "experimental_thread_pool", None)
    if pool is not None and wrapped is not behavior:
        wrapped.experimental_thread_pool = pool
    return wrapped


def split_method(method: str) -> tuple[str, str]:
    """'/analytics.AnalyticsService/GetUserAnalytics' -> ('analytics.AnalyticsService', 'GetUserAnalytics')"""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts calls and their status codes and times them."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        labels = split_method(handler_call_details.method)
        metrics = self.metrics

        def finished(context: grpc.ServicerContext, started: float, failed: bool) -> None:
            # abort() and set_code() leave the code on the context; an exception without one is UNKNOWN.
            code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
            if code == grpc.StatusCode.OK and not context.is_active():
                # A stream that stopped because its client cancelled or its deadline passed. The
                # client's timer starts before the call reaches us, so its cancel at the deadline
                # can arrive a little before our own copy of the deadline: hence the margin.
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= DEADLINE_MARGIN_SECONDS
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            metrics.responses.labels(*labels, code.name).inc()
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)

        def unary(behavior: Behavior) -> Behavior:
            def measured(request, context):
                metrics.requests.labels(*labels).inc()
                started, failed = time.perf_counter(), True
                try:
                    response = behavior(request, context)
                    failed = False
                    return response
                finally:
                    finished(context, started, failed)

            return measured

        def streaming(behavior: Behavior) -> Behavior:
            def measured(request, context) -> Iterator:
                metrics.requests.labels(*labels).inc()
                started, failed = time.perf_counter(), True
                try:
                    yield from behavior(request, context)
                    failed = False
                finally:
                    finished(context, started, failed)

            return measured

        return wrap_handler(continuation(handler_call_details), unary, streaming)


class NetworkInterceptor(grpc.ServerInterceptor):
    """ANALYTICS_GRPC_ALLOWED_NETWORKS: a call from elsewhere is PERMISSION_DENIED, naming its address.

    Every service is covered, health and reflection too; loopback is always allowed. Python's gRPC
    tells an interceptor the peer only inside the call, so the check runs first thing there.
    """

    def __init__(self, networks: AllowedNetworks):
        self.networks = networks

    def _check(self, context: grpc.ServicerContext) -> None:
        host = grpc_peer_host(context.peer())
        if not self.networks.allows(host):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, self.networks.refusal(host))

    def intercept_service(self, continuation, handler_call_details):
        def unary(behavior: Behavior) -> Behavior:
            def allowed(request, context):
                self._check(context)
                return behavior(request, context)

            return allowed

        def streaming(behavior: Behavior) -> Behavior:
            def allowed(request, context) -> Iterator:
                self._check(context)
                yield from behavior(request, context)

            return allowed

        return wrap_handler(continuation(handler_call_details), unary, streaming)


class RequestInterceptor(grpc.ServerInterceptor):
    """A request the service cannot read is INVALID_ARGUMENT, naming the message it should be.

    gRPC answers an undecodable request INTERNAL ("Exception deserializing request!"), as if the
    server had failed: an id that is not UTF-8 (proto3 strings must be) or a truncated or garbled
    message is the caller's. Here the request arrives as bytes and is decoded in the call. So is a
    field sent with another wire type than the contract's (a client's proto that does not match),
    which protobuf would set aside unread.
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        service, method = split_method(handler_call_details.method)
        if handler is None or service != ANALYTICS_SERVICE or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        message = pb.DESCRIPTOR.services_by_name["AnalyticsService"].methods_by_name[method].input_type.full_name

        def read(payload: bytes, context: grpc.ServicerContext):
            try:
                request = decode(payload)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError, whatever the implementation
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request is not a valid {message}: truncated or garbled, or a string field that is not UTF-8",
                )
            mistyped = mistyped_field(request)
            if mistyped is not None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {message}: {mistyped}")
            return request

        def read_all(payloads: Iterator[bytes], context) -> Iterator:
            for payload in payloads:
                yield read(payload, context)

        def decoded(request, context):
            return read_all(request, context) if isinstance(request, Iterator) else read(request, context)

        def unary(behavior: Behavior) -> Behavior:
            return lambda request, context: behavior(decoded(request, context), context)

        def streaming(behavior: Behavior) -> Behavior:
            def answered(request, context) -> Iterator:
                yield from behavior(decoded(request, context), context)

            return answered

        return wrap_handler(handler, unary, streaming, request_deserializer=bytes)


class TokenInterceptor(grpc.ServerInterceptor):
    """Bearer tokens on AnalyticsService calls: a caller reads only its own user's analytics.

    No or an unknown token: UNAUTHENTICATED. A request for another user: PERMISSION_DENIED; so is
    a call about no user in particular (GetStorageStats covers them all) with a token that does
    not read every user (*). Health checks and reflection stay open, as load balancers and
    grpcurl expect.
    """

    def __init__(self, tokens: Tokens, id_format: IdFormat):
        self.tokens = tokens
        self.ids = id_format

    def _caller(self, metadata) -> str | None:
        """The user the call's token reads; None when the token is missing or unknown."""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return self.tokens.user_of(token.strip())
        return None

    def _check(self, caller: str | None, has_token: bool, request, context: grpc.ServicerContext) -> None:
        if caller is None:
            if has_token:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server needs a token: send metadata 'authorization: Bearer TOKEN'",
            )
        if caller == ANY_USER:
            return
        if "user_id" not in request.DESCRIPTOR.fields_by_name:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "this call covers every user: it needs a token that reads all (*)"
            )
        if self.ids.canonical(request.user_id) != self.ids.canonical(caller):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this token does not read that user's analytics")

    def intercept_service(self, continuation, handler_call_details):
        service, _ = split_method(handler_call_details.method)
        if service != ANALYTICS_SERVICE:
            return continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata
        has_token = any(key == "authorization" for key, _ in metadata or ())
        caller = self._caller(metadata)
        check = self._check

        def checked_requests(requests: Iterator, context) -> Iterator:
            for request in requests:
                check(caller, has_token, request, context)
                yield request

        def unary(behavior: Behavior) -> Behavior:
            def guarded(request, context):
                if isinstance(request, Iterator):
                    return behavior(checked_requests(request, context), context)
                check(caller, has_token, request, context)
                return behavior(request, context)

            return guarded

        def streaming(behavior: Behavior) -> Behavior:
            def guarded(request, context) -> Iterator:
                if isinstance(request, Iterator):
                    yield from behavior(checked_requests(request, context), context)
                    return
                check(caller, has_token, request, context)
                yield from behavior(request, context)

            return guarded

        return wrap_handler(continuation(handler_call_details), unary, streaming)


class ThreadsOfTheirOwn(grpc.ServerInterceptor):
    """The calls of ``methods`` (full names) run on ``pool``, not on the server's thread pool."""

    def __init__(self, methods: set[str], pool: futures.ThreadPoolExecutor):
        self.methods = methods
        self.pool = pool

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method not in self.methods:
            return handler

        def on_pool(behavior: Behavior) -> Behavior:
            def run(request, context):
                return behavior(request, context)

            run.experimental_thread_pool = self.pool
            return run

        return wrap_handler(handler, on_pool, on_pool)


class WorkerLimit(grpc.ServerInterceptor):
    """At most ``workers`` AnalyticsService calls other than log tails run at once.

    The thread pool is sized for the workers and the tails (each tail holds a thread), so without
    this, ordinary calls took the tails' threads too: 400 slow calls at once sent 130 queries to
    ClickHouse together, which refused those beyond its 64 (TOO_MANY_SIMULTANEOUS_QUERIES). A call
    waits here for a worker within its deadline; gRPC's maximum_concurrent_rpcs bounds how many wait.
    """

    def __init__(self, workers: int):
        self.free = threading.BoundedSemaphore(workers)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        service, _ = split_method(handler_call_details.method)
        if handler is None or service != ANALYTICS_SERVICE or handler.unary_unary is None:
            return handler  # tails (server streams), health and reflection are not limited

        def unary(behavior: Behavior) -> Behavior:
            def limited(request, context: grpc.ServicerContext):
                remaining = context.time_remaining()  # very large without a deadline
                if not self.free.acquire(timeout=remaining if remaining is not None and remaining < 1e6 else None):
                    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed while the call waited")
                try:
                    return behavior(request, context)
                finally:
                    self.free.release()

            return limited

        return wrap_handler(handler, unary, lambda behavior: behavior)
