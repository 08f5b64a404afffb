"""Which optional dependencies (pyproject's extras) each command needs, and one line when they are missing.

`pip install workflow-analytics` brings the producer SDK and this command line; the parts of the
back end come with extras. A command imports its parts inside `requires(...)`: when one of that
extra's modules is missing, the command ends with one line naming the extra to install, not a
traceback. A missing module that belongs to no extra is a bug, and is raised as it is.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

import click

DISTRIBUTION = "workflow-analytics"

# The top-level modules each extra brings (only those a part imports itself).
EXTRA_MODULES = {
    "server": {"grpc", "grpc_health", "grpc_reflection", "google", "prometheus_client"},
    "embedded": {
        "chdb",
        "clickhouse_cityhash",
        "uvicorn",
        "httptools",
        "uvloop",
        "starlette",
        "multipart",
        "python_multipart",
        "anyio",
        "prometheus_client",
        "tenacity",
        "lz4",
        "zstandard",
    },
    "dbt": {"dbt", "clickhouse_connect"},
    "orchestration": {"dagster", "dagster_webserver", "dagster_dbt", "dbt", "clickhouse_connect"},
}
EXTRA_MODULES["stack"] = set().union(*EXTRA_MODULES.values())


def check_installed(*modules: str) -> None:
    """Raise ModuleNotFoundError for the first of ``modules`` not installed, importing none of them.

    For the parts that run as child processes (dbt, Dagster): importing them only to see that they
    are there would cost the command seconds and its process the memory they hold.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


class MissingExtra(click.ClickException):
    """A command's part is not installed: one line that says which extra brings it."""


@contextlib.contextmanager
def requires(extra: str, command: str) -> Iterator[None]:
    """Import a command's parts in this block; a missing module of ``extra`` becomes one clear line."""
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in EXTRA_MODULES[extra]:
            raise
        raise MissingExtra(
            f"`analytics {command}` needs the {extra!r} extra, which is not installed (no module {missing!r}): "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from None
