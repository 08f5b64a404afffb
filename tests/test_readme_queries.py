"""The ad hoc queries of README's table of tables run as written on the schema, over rows that exercise them."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from tests.intake import execute, post_batch

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_queries() -> list[str]:
    """The last cell of each row of README's table of tables, when it is a query."""
    return re.findall(r"^\|.*\| `(SELECT [^`]+)`[^|`]*\|$", README.read_text(), re.M)


def test_every_ad_hoc_query_of_the_readme_runs(analytics_db):
    prefix = f"readme-{uuid.uuid4().hex[:8]}"
    telemetry = {
        "event_id": f"{prefix}-e",
        "event_time": "2026-01-02T03:04:05Z",
        "event_type": "behavioral",
        "event_name": "deploy-success",
        "service_name": "cli",
        "service_version": "1.2.3",
        "install_id": "abc",
        "user_id": f"{prefix}-u",
    }
    # A JSON path's value is Dynamic: grouping by it is refused (Code 44) once a row has it.
    assert post_batch(analytics_db, "telemetry", [telemetry]).status == 200
    queries = readme_queries()
    assert any("telemetry_events" in sql for sql in queries)
    for sql in queries:  # over whatever the session holds: answers that are not UTF-8 text included
        execute(analytics_db, sql)
