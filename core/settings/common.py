"""What every component shares: where runtime data lives and how much it logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator

from core.networks import normalized

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _home_expanded(path: Path) -> Path:
    """``~/x`` as the home directory's x, as a shell writes it: set where no shell expands it (a
    systemd unit, an env file), it made a directory named '~' in the current one, and chDB, which
    expands it itself, looked for its data in the home directory."""
    try:
        return path.expanduser()
    except RuntimeError:
        raise ValueError(f"{path} starts with ~, but this user has no home directory (HOME is unset)") from None


def _a_directory(path: Path) -> Path:
    """A directory, or a path one can be made at: neither it nor a parent may be something else (a file)."""
    path = _home_expanded(path)
    for place in (path, *path.parents):
        try:
            if not (place.exists() or place.is_symlink()):
                continue
            if not place.is_dir():
                what = "it" if place == path else str(place)
                raise ValueError(f"{path} cannot be a directory: {what} is a file, not a directory")
        except OSError:  # unreadable (permissions): the component that makes it names that
            pass
        return path
    return path


def _not_empty(value: object) -> object:
    """An empty value (a variable set to nothing) is refused: as a path it read as the current
    directory, as an address as every interface."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: give a value, or unset the variable for the default")
    return value


# A directory the stack keeps data in, made when first needed.
Directory = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_a_directory)]
# An address a server listens on.
Host = Annotated[str, BeforeValidator(_not_empty)]
# A name or a file that must be given if set (a user, a certificate): empty, it read as the
# current directory, or as no user at all.
Given = Annotated[str, BeforeValidator(_not_empty)]
GivenPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_home_expanded)]

# Addresses and CIDR networks, comma-separated, kept in canonical form (core/networks.py).
NetworkList = Annotated[str, AfterValidator(normalized)]


class CommonSettings(BaseModel):
    data_dir: Directory = Field(Path(".analytics"), description="Root of all runtime data (chDB, Kafka, Dagster).")
    log_level: str = Field("INFO", description="Log level of every component: DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value.upper()
