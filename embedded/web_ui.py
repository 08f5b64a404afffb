"""ClickHouse's own web page (`/play`) and its answer to OPTIONS, as a ClickHouse server gives them.

A ClickHouse server answers `GET /play` with its SQL console, a page compiled into the binary. chDB
is the same engine built as a library and carries the same pages, so the front serves the one in
the installed chDB rather than a copy of its own: the page and the engine are of one version. The
page is found once, by its title, between its `<!DOCTYPE html>` and the NUL that ends each of the
binary's resources.
"""

from __future__ import annotations

import functools
import mmap
from pathlib import Path

import anyio.to_thread
import chdb
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

PAGES = {"/play": b"<title>ClickHouse Query</title>"}


def _library() -> Path:
    [library] = Path(chdb.__file__).parent.glob("_chdb*.so")
    return library


@functools.cache
def page(path: str) -> bytes | None:
    """The page ClickHouse serves at ``path``, or None if this chDB does not carry it."""
    title = PAGES[path]
    with _library().open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as library:
        at = library.find(title)
        if at < 0:
            return None
        start = max(library.rfind(b"<!DOCTYPE html>", 0, at), library.rfind(b"<!doctype html>", 0, at))
        end = library.find(b"\x00", at)
        if start < 0 or end < 0:
            return None
        return library[start:end]


# A ClickHouse server's answer to OPTIONS (a browser's preflight, or /play's check that the server is
# up) when its configuration has `http_options_response`: any origin may send a query.
OPTIONS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "origin, x-requested-with, x-clickhouse-format, x-clickhouse-user, x-clickhouse-key, Authorization"
    ),
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Max-Age": "86400",
}


async def play(request: Request) -> Response:
    found = await anyio.to_thread.run_sync(page, "/play")
    if found is None:
        return PlainTextResponse("This chDB does not carry ClickHouse's /play page.\n", status_code=404)
    return Response(found, media_type="text/html; charset=UTF-8")


async def options(request: Request) -> Response:
    return Response(status_code=204, headers=OPTIONS_HEADERS)
