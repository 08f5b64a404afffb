"""`replay_dead_letters`: Dagster's `analytics dead-letters replay`, for after the cause was fixed."""

import dagster as dg

from core.days import utc_moment
from core.settings.dagster import DagsterSettings
from operations.dead_letters import UnknownTopic, replay

REPLAY_JOB = "replay_dead_letters"


class ReplayConfig(dg.Config):
    topic: str | None = None  # workflows, jobs, job_logs, analytics or telemetry; every topic when unset
    since: str | None = None  # ISO 8601 (UTC when it has no offset): only dead letters first received since
    dry_run: bool = False


@dg.op(description="Feed dead letters back through the landing tables; those that still fail stay, with the new error.")
def replay_dead_letters_op(
    context: dg.OpExecutionContext, config: ReplayConfig, settings: dg.ResourceParam[DagsterSettings]
):
    try:
        since = utc_moment(config.since) if config.since else None
    except ValueError as error:
        raise dg.Failure(description=f"config since: {error}") from None
    try:
        result = replay(settings, topic=config.topic, since=since, dry_run=config.dry_run)
    except UnknownTopic as error:  # a typo: said as the config's, not as a stack trace
        raise dg.Failure(description=f"config topic: {error}") from None
    context.log.info(
        f"{result.selected} selected, {result.replayed} replayed: {result.landed} taken in, "
        f"{result.still_failing} still failing" + (" (dry run)" if config.dry_run else "")
    )
    context.add_output_metadata(
        {
            "selected": result.selected,
            "replayed": result.replayed,
            "landed": result.landed,
            "still_failing": result.still_failing,
            "produced_to_kafka": result.produced_to_kafka,
            "by_topic": dg.MetadataValue.json(dict(result.by_topic)),
            "skipped": dg.MetadataValue.json(dict(result.skipped)),
        }
    )
    return result.still_failing


@dg.job(
    name=REPLAY_JOB,
    description="Replay dead letters (optionally one topic, since a time, or a dry run) after their cause was fixed; "
    "replaying twice counts nothing twice.",
)
def replay_dead_letters() -> None:
    replay_dead_letters_op()
