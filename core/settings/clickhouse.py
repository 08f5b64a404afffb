"""Reaching ClickHouse (any client), and the embedded ClickHouse that `analytics clickhouse` serves."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from core.ports import url_host
from core.settings.common import CommonSettings, Directory, Given, Host, NetworkList


@dataclasses.dataclass(frozen=True)
class ClickHouseConnection:
    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    secure: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{url_host(self.host)}:{self.port}"


class ClickHouseSettings(BaseModel):
    """Where and how clients reach ClickHouse: a server's URL, else the embedded server's address."""

    clickhouse_host: Host = Field("127.0.0.1", description="Address the embedded ClickHouse listens on.")
    clickhouse_http_port: int = Field(8123, ge=1, le=65535, description="HTTP port of the embedded ClickHouse.")
    clickhouse_user: Given = Field("default", description="ClickHouse user (embedded server and clients).")
    clickhouse_password: SecretStr = Field(SecretStr(""), description="ClickHouse password.")
    clickhouse_url: str | None = Field(
        None, description="ClickHouse to use in server mode, e.g. https://ch.example:8443 [default: the embedded one]."
    )
    clickhouse_secure: bool = Field(False, description="Use HTTPS to reach ClickHouse (server mode).")

    @field_validator("clickhouse_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        """http(s)://[USER[:PASSWORD]@]HOST[:PORT], checked here so every command refuses it alike."""
        if not url:
            return url
        parts = urlsplit(url)
        # The URL as an error shows it: without its password.
        shown = (
            parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
            if parts.password
            else url
        )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"the port of {shown!r} is not a number from 1 to 65535") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise ValueError(f"{shown!r} is not http(s)://HOST[:PORT]")
        return url

    @property
    def resolved_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        host = "127.0.0.1" if self.clickhouse_host in ("0.0.0.0", "::") else self.clickhouse_host
        return f"http://{url_host(host)}:{self.clickhouse_http_port}"

    @property
    def clickhouse_connection(self) -> ClickHouseConnection:
        """Where and how clients reach ClickHouse: the URL's parts, else the embedded server's settings."""
        url = urlsplit(self.resolved_clickhouse_url)
        secure = url.scheme == "https" or self.clickhouse_secure
        return ClickHouseConnection(
            host=url.hostname or "127.0.0.1",
            port=url.port or (8443 if secure else 8123),
            user=unquote(url.username) if url.username else self.clickhouse_user,
            password=unquote(url.password) if url.password else self.clickhouse_password.get_secret_value(),
            secure=secure,
        )


class EmbeddedClickHouseSettings(CommonSettings, ClickHouseSettings):
    """The embedded ClickHouse: chDB behind the ClickHouse HTTP interface."""

    clickhouse_data_dir: Directory | None = Field(
        None, description="chDB data directory [default: DATA_DIR/clickhouse]."
    )
    clickhouse_max_concurrent_queries: int = Field(
        64, ge=1, le=10_000, description="Queries the embedded server runs at once."
    )
    clickhouse_async_insert: bool = Field(
        False,
        description="Join small inserts from every sender, as async_insert=1 in a ClickHouse server's default "
        "profile does; a request's own async_insert still decides for it.",
    )
    clickhouse_allow_file_access: bool = Field(
        False,
        description="Let SQL sent to the embedded ClickHouse read and write the server's files and reach the network "
        "(file(), url(), INTO OUTFILE, File/URL/S3 engines), as clickhouse-local does.",
    )

    clickhouse_allowed_networks: NetworkList | None = Field(
        None,
        description="Addresses and CIDR networks, comma-separated, the embedded ClickHouse serves (loopback always); "
        "unset: every address that reaches it.",
    )

    @model_validator(mode="after")
    def _check_chdb_path(self) -> EmbeddedClickHouseSettings:
        # chDB reads a '?' in its path as the start of its options: the tables went to the path before
        # it, outside the directory given and its lock.
        if "?" in str(self.resolved_clickhouse_data_dir):
            variable = "ANALYTICS_CLICKHOUSE_DATA_DIR" if self.clickhouse_data_dir else "ANALYTICS_DATA_DIR"
            given = self.clickhouse_data_dir or self.data_dir
            raise ValueError(
                f"{variable}: {given} holds a '?', which the embedded ClickHouse (chDB) reads as the start of "
                "its options: choose a directory without one"
            )
        return self

    @property
    def resolved_clickhouse_data_dir(self) -> Path:
        return self.clickhouse_data_dir or self.data_dir / "clickhouse"
