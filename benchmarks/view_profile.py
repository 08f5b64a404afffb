"""Each materialized view's own cost over one large block: bench_view_cost's section 5.

chDB keeps no `system.query_views_log`, so a whole insert cannot say which of its thirty-odd views
took the time. Instead:

1. every table that feeds a view gets a Memory copy, filled by a capturing view, and one block of
   each topic's events goes through the bridge's framing (RowBinary into `<topic>_messages`), so
   each copy holds exactly the rows its views were handed by that block;
2. the capturing views go, the schema's tables are emptied (the first-seen gates then see the
   block as new, as they did); measured so, then again once `grown` blocks of other events have
   gone through the chain and their parts have merged;
3. each view's SELECT, reading its source's copy instead of the source, is inserted into a copy of
   its target table that has no views of its own, `samples` times: the view's work and the part it
   writes, nothing of the views behind it. Its SELECT alone (`FORMAT Null`) tells the two apart.

The baseline, in the same run: the same events parsed by JSONEachRow into Null tables of the
landing tables' columns (bench_ingest's parse), whose time every view is a ratio of.
"""

from __future__ import annotations

import re
import statistics

from benchmarks.bench_http_front import timed
from benchmarks.bench_ingest import null_tables
from benchmarks.ingest_support import generate, insert, insert_framed, merges_settled, total
from tests.intake import execute, query


def _views(tables: list[dict]) -> dict[str, tuple[str, str, str]]:
    """Each view of the schema: (the table it reads, the table it writes, its SELECT)."""
    sources = {view: table["name"] for table in tables for view in table["dependencies_table"]}
    return {
        table["name"]: (
            sources[table["name"]],
            table["create_table_query"].split(" TO ", 1)[1].split()[0].split(".")[-1].strip("`"),
            table["as_select"],
        )
        for table in tables
        if table["engine"] == "MaterializedView" and table["name"] in sources
    }


def _capture(server, sources: set[str], events: dict[str, list[bytes]]) -> dict[str, int]:
    """Rows each source table was handed by one framed block of `events`, kept in `view_profile_capture`."""
    execute(server, "CREATE DATABASE view_profile_capture")
    for source in sources:
        execute(server, f"CREATE TABLE view_profile_capture.{source} AS analytics.{source} ENGINE = Memory")
        execute(
            server,
            f"CREATE MATERIALIZED VIEW view_profile_capture.{source}_capturing TO view_profile_capture.{source}"
            f" AS SELECT * FROM analytics.{source}",
        )
    insert_framed(server.url, events, max(len(batch) for batch in events.values()))
    for source in sources:
        execute(server, f"DROP VIEW view_profile_capture.{source}_capturing")
    return {
        source: int(query(server, f"SELECT count() AS n FROM view_profile_capture.{source}")[0]["n"])
        for source in sources
    }


def _empty_the_schema(server, tables: list[dict]) -> None:
    for table in tables:
        if table["engine"] not in ("Null", "MaterializedView", "View"):
            execute(server, f"TRUNCATE TABLE analytics.{table['name']}")


def _alone(server, view: str, source: str, target: str, select: str, samples: int) -> tuple[float, float]:
    """Seconds (median) of the view's SELECT over its captured rows: into a copy of its target, and alone."""
    select = re.sub(rf"\banalytics\.`?{source}`?(?![\w`])", f"view_profile_capture.{source}", select)
    execute(server, f"CREATE TABLE IF NOT EXISTS view_profile_target.{target} AS analytics.{target}")
    in_order = f"SELECT name FROM system.columns WHERE database = 'analytics' AND table = '{view}' ORDER BY position"
    columns = ", ".join(row["name"] for row in query(server, in_order))
    into = f"INSERT INTO view_profile_target.{target} ({columns}) {select}"
    alone = statistics.median(timed(lambda: execute(server, into), samples))
    computed = statistics.median(timed(lambda: execute(server, f"{select} FORMAT Null"), samples))
    return alone, computed


def each_view_alone(server, workflows: int, grown: int, samples: int) -> None:
    """Print each view's cost over one block of `workflows` workflows' events (26 each), the schema's
    tables empty and then holding `grown` more such blocks; and the JSONEachRow parse of the block."""
    tables = query(
        server,
        "SELECT name, engine, dependencies_table, create_table_query, as_select"
        " FROM system.tables WHERE database = 'analytics'",
    )
    views = _views(tables)
    events = generate("profiled", workflows)
    rows_in = _capture(server, {source for source, _, _ in views.values()}, events)
    execute(server, "CREATE DATABASE view_profile_target")
    null_tables(server.url)
    parse = statistics.median(timed(lambda: insert(server.url, "bench_null", events, 100_000), samples))
    print(f"baseline: JSONEachRow parse of the block's {total(events):,} events into Null tables {parse * 1e3:.1f} ms")

    _empty_the_schema(server, tables)
    for state in ("empty", "grown"):
        if state == "grown":
            for n in range(grown):
                insert_framed(server.url, generate(f"grown{n}", workflows), 100_000)
            merges_settled(server.url)
        figures = [
            (*_alone(server, view, source, target, select, samples), view, rows_in[source])
            for view, (source, target, select) in views.items()
            if rows_in[source]
        ]
        chain = sum(alone for alone, *_ in figures)
        label = "the schema's tables empty" if state == "empty" else f"after {grown} blocks more, merged"
        print(f"\n{label}: all views {chain * 1e3:.0f} ms, {chain / parse:.1f}x the parse")
        for alone, computed, view, handed in sorted(figures, reverse=True):
            print(
                f"  {view:52} {alone * 1e3:6.1f} ms ({computed * 1e3:5.1f} without writing) {alone / parse:5.2f}x"
                f"  {alone / chain:4.0%}  {handed:>6,} rows in"
            )
