"""The embedded ClickHouse's allow-list (ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS), as an ASGI middleware.

It wraps everything the HTTP interface serves, `/metrics` and `/ping` included: a client from
elsewhere gets what ClickHouse answers a user outside its `<networks>`, code 516
(AUTHENTICATION_FAILED) with HTTP 403, naming the address and the setting. Each refused address is
logged once, so an operator sees who is knocking without a line per request.
"""

from __future__ import annotations

import logging
import time

from core.errors import Code
from core.networks import AllowedNetworks
from embedded.errors import ClickHouseError

log = logging.getLogger(__name__)

# Refused addresses remembered so that each is logged once; past this many, the rest are not logged.
REMEMBERED_REFUSALS = 1024


class AllowedClients:
    def __init__(self, app, networks: AllowedNetworks, version: str, on_refused=None):
        self.app = app
        # Called with a refused request's scope and the seconds its answer took (the metrics).
        self.on_refused = on_refused
        self.networks = networks
        self.version = version
        self.refused: set[str] = set()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        client = scope.get("client")
        host = client[0] if client else None
        if self.networks.allows(host):
            await self.app(scope, receive, send)
            return
        if host not in self.refused and len(self.refused) < REMEMBERED_REFUSALS:
            self.refused.add(host)
            log.warning("refused a request from %s: not in %s", host, self.networks.setting)
        error = ClickHouseError.of(Code.AUTHENTICATION_FAILED, f"Authentication failed: {self.networks.refusal(host)}")
        body = error.render(self.version).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.http_status,
                "headers": [
                    (b"content-type", b"text/plain; charset=UTF-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-clickhouse-exception-code", str(error.code).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        if self.on_refused is not None:
            self.on_refused(scope, time.perf_counter() - started)
