"""The original contract's two lookups, served as cheaply as they can be while staying exact.

First the serving model (server/serving.py) when it runs and is fresh enough; otherwise
ClickHouse, with the lookups that arrive together coalesced into one ``IN`` query per batch
(server/coalesce.py). Both give the very numbers of the single-key queries in server/queries.py.
"""

from __future__ import annotations

from core.names import sql
from server.coalesce import Coalescer
from server.queries import Queries, Totals
from server.serving import ServingModel, Stale

WORKFLOW_TOTALS_BATCH = sql("""select
    user_id,
    workflow_id,
    toInt64(sum(jobs)),
    toInt64(sum(joblogs)),
    toInt64(sum(job_execution_seconds))
from $workflow_totals
where (user_id, workflow_id) in {keys:Array(Tuple(String, String))}
group by user_id, workflow_id""")

USER_TOTALS_BATCH = sql("""select
    user_id,
    uniqExact(workflow_id),
    toInt64(sum(jobs)),
    toInt64(sum(joblogs)),
    toInt64(sum(job_execution_seconds))
from $workflow_totals
where user_id in {users:Array(String)}
group by user_id""")


class TotalsLookups:
    """GetUserAnalytics' and GetWorkflowAnalytics' numbers: model first, else coalesced queries."""

    def __init__(
        self,
        queries: Queries,
        model: ServingModel | None = None,
        max_batch: int = 64,
        parallel: int = 2,
        on_batch=None,
    ):
        self.queries = queries
        self.model = model
        self._workflows: Coalescer[tuple[str, str], Totals] = Coalescer(
            self._fetch_workflows, max_batch, parallel, on_batch=on_batch
        )
        self._users: Coalescer[str, Totals] = Coalescer(self._fetch_users, max_batch, parallel, on_batch=on_batch)

    @property
    def pending(self) -> int:
        """Lookups gone to ClickHouse that have no answer yet (queued for a batch or in one)."""
        return self._workflows.pending + self._users.pending

    def _fetch_workflows(self, keys: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], Totals]:
        rows = self.queries.rows("workflow_totals", WORKFLOW_TOTALS_BATCH, {"keys": keys}, timeout)
        return {(row[0], row[1]): Totals(1, *map(int, row[2:])) for row in rows}

    def _fetch_users(self, users: list[str], timeout: float) -> dict[str, Totals]:
        rows = self.queries.rows("user_totals", USER_TOTALS_BATCH, {"users": users}, timeout)
        return {row[0]: Totals(*map(int, row[1:])) for row in rows}

    def user_totals(self, user_id: str, timeout: float) -> Totals | None:
        if self.model is not None:
            try:
                return self.model.user_totals(user_id, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
        return self._users.get(user_id, timeout)

    def workflow_totals(self, user_id: str, workflow_id: str, timeout: float) -> Totals | None:
        if self.model is not None:
            try:
                return self.model.workflow_totals(user_id, workflow_id, timeout)
            except Stale as stale:
                self.model.answered_elsewhere(stale)
        return self._workflows.get((user_id, workflow_id), timeout)
