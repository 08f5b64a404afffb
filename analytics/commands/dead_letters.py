"""`analytics dead-letters` and `analytics dead-letters replay` (the work is in operations.dead_letters)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import click

from analytics.extras import requires
from analytics.reach import answering
from analytics.settings import configure_logging, load_settings
from core.days import utc_moment
from core.settings.schema import SchemaSettings


class Moment(click.ParamType):
    """A time in ISO 8601, as the events carry them: `2026-11-24`, `2026-11-24T08:00:00`,
    `2026-11-24 08:00`, with `Z` or an offset such as `+02:00` (UTC without one); in UTC."""

    name = "TIME"

    def convert(self, value, param, ctx) -> dt.datetime:
        try:
            return utc_moment(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


_topic_option = click.option("--topic", help="Only this topic (workflows, jobs, job_logs, analytics, telemetry).")
_since_option = click.option(
    "--since",
    type=Moment(),
    help="Only those first received at or after TIME (a redelivery by Kafka is no new dead letter): "
    "ISO 8601, with Z or an offset, or neither (UTC).",
)
_clickhouse_option = click.option("--clickhouse-url", help="ClickHouse with the schema (ANALYTICS_CLICKHOUSE_URL).")


# A server without the schema says so with one of these codes (UNKNOWN_TABLE, UNKNOWN_DATABASE).
_NO_SCHEMA = ("Code: 60.", "Code: 81.")


def _settings(clickhouse_url: str | None) -> SchemaSettings:
    loaded = load_settings(clickhouse_url=clickhouse_url)
    configure_logging(loaded)
    return answering(loaded.slice(SchemaSettings))


@contextlib.contextmanager
def _clickhouse_errors(settings: SchemaSettings) -> Iterator[None]:
    """One line naming the server and what went wrong, for a ClickHouse out of reach or refusing."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    url = settings.clickhouse_connection.url
    try:
        yield
    except OperationalError as error:
        cause: BaseException = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise click.ClickException(f"cannot reach ClickHouse at {url}: {cause}") from None
    except DatabaseError as error:
        text = str(error)
        answer = text.split("server response: ", 1)[-1].split(" (for url ", 1)[0]
        if answer.startswith(_NO_SCHEMA):
            answer += "; build the schema there with `analytics migrate`"
        raise click.ClickException(f"ClickHouse at {url} refused: {answer}") from None


@click.group("dead-letters", invoke_without_command=True)
@_topic_option
@_since_option
@_clickhouse_option
@click.pass_context
def dead_letters(ctx, topic, since, clickhouse_url) -> None:
    """Kafka messages that could not be taken in, grouped by topic and error (`replay` feeds them back)."""
    if ctx.invoked_subcommand is not None:
        return
    with requires("dbt", "dead-letters"):
        from operations.dead_letters import UnknownTopic, summarize

    settings = _settings(clickhouse_url)
    with _clickhouse_errors(settings):
        try:
            groups = summarize(settings, topic=topic, since=since)
        except UnknownTopic as error:
            raise click.ClickException(str(error)) from None
    if not groups:
        click.echo("no dead letters")
        return
    click.echo(f"{'topic':24} {'messages':>8}  {'first received':23}  {'last received':23}  error")
    for group in groups:
        click.echo(
            f"{group.topic:24} {group.messages:>8}  {group.first_received.isoformat(sep=' ')[:23]:23}  "
            f"{group.last_received.isoformat(sep=' ')[:23]:23}  {group.error}"
        )
    click.echo(
        f"{sum(group.messages for group in groups)} dead letters; `analytics dead-letters replay` feeds them back"
    )


@dead_letters.command("replay")
@_topic_option
@_since_option
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@_clickhouse_option
def replay_dead_letters(topic, since, dry_run, clickhouse_url) -> None:
    """Feed dead letters back through the landing tables, after their cause was fixed.

    A message that passes now counts (once, however often it is replayed) and leaves the dead
    letters; one that still fails stays, with its new error.
    """
    with requires("dbt", "dead-letters replay"):
        from operations.dead_letters import UnknownTopic, replay

    settings = _settings(clickhouse_url)
    with _clickhouse_errors(settings):
        try:
            result = replay(settings, topic=topic, since=since, dry_run=dry_run)
        except UnknownTopic as error:
            raise click.ClickException(str(error)) from None
    for reason, count in sorted(result.skipped.items()):
        click.echo(f"skipped {count}: {reason}")
    if dry_run:
        for name, count in sorted(result.by_topic.items()):
            click.echo(f"{name}: {count} would be replayed")
        click.echo(f"dry run: {sum(result.by_topic.values())} of {result.selected} dead letters would be replayed")
    elif result.produced_to_kafka:
        click.echo(f"{result.replayed} produced to their topics again; those that still fail come back as dead letters")
    else:
        click.echo(f"replayed {result.replayed}: {result.landed} taken in, {result.still_failing} still failing")
