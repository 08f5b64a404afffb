"""Headless Chromium for the browser tests: Debian's package, never a downloaded browser."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (/usr/bin/chromium); browser tests skip without it (under CI a skip fails)."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("browser tests need chromium on PATH (apt-get install chromium)")
    return found
