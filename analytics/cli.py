"""The `analytics` command: one entry point for every part of the stack.

Each subcommand lives in analytics.commands, reads the settings once (analytics.settings) and
imports the parts it runs only when it runs, inside `requires(extra)`: a part that is not
installed is named in one line with the extra that brings it.
"""

from __future__ import annotations

import click

from analytics.commands.clickhouse import clickhouse
from analytics.commands.dagster import dagster
from analytics.commands.dead_letters import dead_letters
from analytics.commands.demo import demo
from analytics.commands.grpc import grpc
from analytics.commands.kafka import ingest, kafka, topics
from analytics.commands.schema import backfill, migrate
from analytics.commands.up import up
from core.limits import raise_open_files_limit
from core.settings.composed import environment_help


@click.group(
    epilog="Environment variables (flags override them):\n\n\b\n" + environment_help(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
def main() -> None:
    """ClickHouse-native analytics for workflows, jobs, job logs and product telemetry."""
    raise_open_files_limit()  # the servers hold a descriptor a connection, part and pipe


for command in (clickhouse, migrate, backfill, kafka, topics, ingest, grpc, up, demo, dagster, dead_letters):
    main.add_command(command)

if __name__ == "__main__":
    main()
