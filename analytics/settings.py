"""Reading the settings once, at the start of a command: flags over ANALYTICS_* variables over defaults."""

from __future__ import annotations

import difflib
import logging
import os
import sys

import click
from pydantic import ValidationError

from core.settings.composed import Settings


def load_settings(**flags) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    given = {name: value for name, value in flags.items() if value is not None}
    for warning in unknown_variables(os.environ):
        click.echo(f"Warning: {warning}", err=True)
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(_describe_problem(e, _flag_names(given)) for e in error.errors())
        raise click.UsageError(f"invalid settings: {problems}") from None


def _flag_names(given: dict) -> dict[str, str]:
    """The command line's name for each setting given by a flag: {'grpc_port': '--port'}.

    A flag is found by its value, the very object the command handed over (a setting's name and
    its flag's differ: `--port` is grpc_port in one command, kafka_port in another). Python shares
    small numbers, so of two flags given the same one, the one whose name ends the setting's is taken
    (`--workers 0` is grpc_workers, `--port 0` grpc_port); none such, no flag is named.
    """
    context = click.get_current_context(silent=True)
    if context is None:
        return {}
    names = {}
    for field, value in given.items():
        candidates = [
            param
            for param in context.command.params
            if param.name in context.params and context.params[param.name] is value and param.opts
        ]
        named = [param for param in candidates if field == param.name or field.endswith(f"_{param.name}")]
        chosen = candidates if len(candidates) == 1 else named[:1]
        if chosen:
            names[field] = chosen[0].opts[0]
    return names


def _describe_problem(error: dict, flags: dict[str, str]) -> str:
    """'ANALYTICS_GRPC_PORT: ...' for a field's error ('--port (ANALYTICS_GRPC_PORT): ...' when a flag
    gave it); the bare message for one across fields."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    field = str(error["loc"][0])
    variable = f"ANALYTICS_{'_'.join(map(str, error['loc'])).upper()}"
    return f"{flags[field]} ({variable}): {message}" if field in flags else f"{variable}: {message}"


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# ANALYTICS_* variables read outside the settings object: the tests' fault points, the dev script's.
READ_ELSEWHERE = ("ANALYTICS_FAULT_", "ANALYTICS_TEST_")


def unknown_variables(environ) -> list[str]:
    """A warning for each ANALYTICS_* variable no setting reads (a typo runs on the default
    unseen: ANALYTICS_GRCP_PORT=1 left the port at 50055), naming the setting it resembles."""
    known = {f"ANALYTICS_{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for name in sorted(environ):
        if not name.startswith("ANALYTICS_") or name in known or name.startswith(READ_ELSEWHERE):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} is not a setting of this version and is ignored{hint}")
    return warnings
