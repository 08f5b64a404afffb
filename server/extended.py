"""Details, listings, time series and whether a key is known: from the serving model where it can
answer, else ClickHouse.

Over all time, a listing of a user's workflows, a user's details and a user's time series need
nothing the serving model (server/serving.py) lacks, so they cost no statement; a workflow's or
a kind's details read only their duration digests. The answers are the numbers Queries gives,
read as fresh (read-your-writes in `analytics up`, within the bound elsewhere). Over a range of
days (for time series, one that cuts a bucket in two), or when the model cannot answer (Stale),
the statements of server/queries.py run.
"""

from __future__ import annotations

import datetime as dt

from server.pagination import Position
from server.queries import Queries, Scope, Summary, WorkflowRow
from server.serving import ServingModel, Stale


class ExtendedQueries:
    def __init__(self, queries: Queries, model: ServingModel | None = None):
        self.queries = queries
        self.model = model

    def summary(self, scope: Scope, timeout: float) -> tuple[str, Summary] | None:
        """As Queries.summary: (kind, summary), or None when the user (or workflow) is unknown."""
        if self.model is not None and not scope.period.bounded:
            try:
                if scope.workflow_id is None and scope.kind is None:
                    whole = self.model.details(scope.user_id, timeout)
                    return None if whole is None else ("", Summary(*whole[0], whole[1]))
                found = self.model.counters(scope.user_id, scope.workflow_id, scope.kind, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
            else:
                if found is None:
                    return None
                kind, counters = found
                return kind, Summary(*counters, self.queries.percentiles(scope, timeout))
        return self.queries.summary(scope, timeout)

    def list_workflows(
        self, scope: Scope, sort: str, ascending: bool, after: Position | None, limit: int, timeout: float
    ) -> list[WorkflowRow]:
        """As Queries.list_workflows (an unknown user has no rows)."""
        if self.model is not None and not scope.period.bounded:
            try:
                rows = self.model.list_workflows(scope.user_id, scope.kind, sort, ascending, after, limit, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
            else:
                return rows or []
        return self.queries.list_workflows(scope, sort, ascending, after, limit, timeout)

    def time_series(self, scope: Scope, granularity: str, timeout: float) -> list[tuple[dt.date, Summary]]:
        """As Queries.time_series; a user's whole series from the model, over days that cut no bucket."""
        if self.model is not None and scope.workflow_id is None and scope.kind is None:
            try:
                return self.model.time_series(scope.user_id, granularity, scope.period, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
        return self.queries.time_series(scope, granularity, timeout)

    def known(self, user_id: str, workflow_id: str | None, timeout: float) -> bool:
        """As Queries.known."""
        if self.model is not None:
            try:
                return self.model.known(user_id, workflow_id, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
        return self.queries.known(user_id, workflow_id, timeout)
