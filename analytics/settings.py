"""Reading the settings once, at the start of a command: flags over ANALYTICS_* variables over defaults."""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError

from core.settings.composed import Settings


def load_settings(**flags) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(_describe_problem(e) for e in error.errors())
        raise click.UsageError(f"invalid settings: {problems}") from None


def _describe_problem(error: dict) -> str:
    """'ANALYTICS_GRPC_PORT: ...' for a field's error; the bare message for one across fields."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    return f"ANALYTICS_{'_'.join(map(str, error['loc'])).upper()}: {message}"


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
