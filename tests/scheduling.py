"""A pytest plugin that runs the long test files first, so the xdist workers finish together.

`./dev test` hands whole files to the workers (`--dist loadfile`), a file or two at a time as each
worker gets free, and a file of half a minute picked up last keeps one worker busy while the others
have nothing left. Files marked `long_file(seconds)` (ten seconds or more of a worker's time, as
measured on the 2-core machine) are collected first, the longest first; the rest follow in their
usual order. xdist hands the files out in collection order only with `--no-loadscope-reorder`
(pyproject.toml's addopts): by default it reorders them by their number of tests, and a long file
of two tests ran last. Every worker sorts the same way, as xdist requires, and a test's own order
within its file is kept.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    def seconds(item) -> float:
        marker = item.get_closest_marker("long_file")
        return marker.args[0] if marker is not None else 0

    items.sort(key=lambda item: -seconds(item))  # stable: files and tests keep their order otherwise
