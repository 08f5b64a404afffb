"""GetStorageStats: what the store holds, read from the SQL views analysts query too.

The views (dbt_project/models/views/storage_*.sql) are the one definition: per table from
system.parts, per topic from the raw tables' part metadata and the dead letters, and the log
retention from job_log_events' own TTL.
"""

from __future__ import annotations

import grpc

from analytics_proto import analytics_pb2 as pb
from core.names import sql
from server.answers import respond_or_abort
from server.log_service import timestamp
from server.queries import Queries

TABLES = sql("""select
    table, engine, rows, parts, bytes_on_disk, compressed_bytes, uncompressed_bytes,
    ifNull(compression_ratio, 0), ttl
from $storage_tables
order by table""")
TOPICS = sql("""select
    topic, raw_table, events,
    toUnixTimestamp64Milli(oldest_event_time),
    toUnixTimestamp64Milli(newest_event_time),
    dead_letters,
    toUnixTimestamp64Milli(last_dead_letter_at)
from $storage_topics
order by topic""")
RETENTION = sql("""select audit_mode, ifNull(log_retention_hours, 0), ttl
from $storage_log_retention""")


def _time(time_ms) -> str:
    return "" if time_ms is None else timestamp(int(time_ms))


class StorageService:
    def __init__(self, queries: Queries, default_deadline: float):
        self.queries = queries
        self.default_deadline = default_deadline

    def stats(self, request: pb.GetStorageStatsRequest, context: grpc.ServicerContext) -> pb.GetStorageStatsResponse:
        def respond(timeout: float) -> pb.GetStorageStatsResponse:
            response = pb.GetStorageStatsResponse()
            for table, engine, rows, parts, on_disk, compressed, uncompressed, ratio, ttl in self.queries.rows(
                "storage_tables", TABLES, {}, timeout
            ):
                response.tables.append(
                    pb.TableStorage(
                        table=table,
                        engine=engine,
                        rows=int(rows),
                        parts=int(parts),
                        bytes_on_disk=int(on_disk),
                        compressed_bytes=int(compressed),
                        uncompressed_bytes=int(uncompressed),
                        compression_ratio=float(ratio),
                        ttl=ttl,
                    )
                )
            for topic, raw_table, events, oldest, newest, dead, last_dead in self.queries.rows(
                "storage_topics", TOPICS, {}, timeout
            ):
                response.topics.append(
                    pb.TopicStorage(
                        topic=topic,
                        raw_table=raw_table,
                        events=int(events),
                        oldest_event_time=_time(oldest),
                        newest_event_time=_time(newest),
                        dead_letters=int(dead),
                        last_dead_letter_time=_time(last_dead),
                    )
                )
            for audit_mode, hours, ttl in self.queries.rows("storage_log_retention", RETENTION, {}, timeout):
                response.log_retention.CopyFrom(
                    pb.LogRetention(audit_mode=bool(audit_mode), log_retention_hours=int(hours), ttl=ttl)
                )
            return response

        return respond_or_abort("GetStorageStats", context, self.default_deadline, respond)
