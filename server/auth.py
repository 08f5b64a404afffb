"""Caller tokens: which bearer token reads which user's analytics.

Tokens come from ANALYTICS_GRPC_TOKENS (``TOKEN=USER_ID,...``) and from a file of
``TOKEN USER_ID`` lines; the user id ``*`` reads every user. Only digests of the tokens are
kept, so a lookup takes the same time whatever part of a token a caller guessed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ANY_USER = "*"
MIN_TOKEN_LENGTH = 16


class TokenError(ValueError):
    """A token list that cannot be used; the message says where and why."""


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """Token digests mapped to the user id each one may read (or ANY_USER)."""

    def __init__(self, users_by_token: dict[str, str]):
        self._users = {digest(token): user for token, user in users_by_token.items()}

    def __len__(self) -> int:
        return len(self._users)

    def user_of(self, token: str) -> str | None:
        return self._users.get(digest(token))


def _add(found: dict[str, str], token: str, user: str, where: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{where}: a token must have at least {MIN_TOKEN_LENGTH} characters")
    if not user:
        raise TokenError(f"{where}: the token has no user id")
    if any(character.isspace() for character in token + user):
        # Items put one a line (a secret rendered as a list) read as one token holding a line break.
        raise TokenError(f"{where}: a token or user id holds a space or line break (items are separated by commas)")
    if token in found and found[token] != user:
        raise TokenError(f"{where}: the same token is given to two users")
    found[token] = user


def parse_variable(text: str) -> dict[str, str]:
    """``TOKEN=USER_ID[,TOKEN=USER_ID...]`` (ANALYTICS_GRPC_TOKENS).

    A token may hold "=" (base64's padding: ``openssl rand -base64 32`` ends with one); a user id
    never does, so the last "=" of an item ends its token.
    """
    found: dict[str, str] = {}
    for number, item in enumerate(text.split(","), start=1):
        if not item.strip():
            continue
        token, separator, user = item.strip().rpartition("=")
        if not separator:
            raise TokenError(f"ANALYTICS_GRPC_TOKENS item {number} is not TOKEN=USER_ID")
        _add(found, token.strip(), user.strip(), f"ANALYTICS_GRPC_TOKENS item {number}")
    return found


def parse_file(path: Path) -> dict[str, str]:
    """One ``TOKEN USER_ID`` a line; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TokenError(f"cannot read the tokens file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:  # a binary file: it was a traceback
        raise TokenError(f"cannot read the tokens file {path}: it is not UTF-8 text (byte {error.start})") from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise TokenError(f"{path} line {number}: expected 'TOKEN USER_ID', found {len(fields)} fields")
        _add(found, fields[0], fields[1], f"{path} line {number}")
    return found


def load_tokens(variable: str | None, path: Path | None) -> Tokens | None:
    """The configured tokens; None when neither source is set (no authentication)."""
    if variable is None and path is None:
        return None
    found = parse_variable(variable or "")
    for token, user in (parse_file(path) if path is not None else {}).items():
        _add(found, token, user, str(path))
    if not found:
        raise TokenError("tokens are configured but none is given: every call would be refused")
    return Tokens(found)
