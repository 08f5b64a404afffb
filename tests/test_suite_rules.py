"""Rules of the suite itself: under CI (CI=true) a skipped test is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), ("", "1 skipped")])
def test_a_skip_fails_under_ci(tmp_path, ci, outcome):
    (tmp_path / "test_skips.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no tool here')\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.ci_rules",
            "-q",
            str(tmp_path / "test_skips.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CI": ci, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert outcome in run.stdout, run.stdout
    if ci:
        assert "skipped under CI" in run.stdout and "no tool here" in run.stdout


def test_long_files_are_collected_first_longest_first(tmp_path):
    (tmp_path / "test_a_short.py").write_text("def test_one():\n    pass\n")
    for name, seconds in (("test_b_long", 60), ("test_c_longer", 90)):
        (tmp_path / f"{name}.py").write_text(
            f"import pytest\n\npytestmark = pytest.mark.long_file({seconds})\n\n"
            "def test_first():\n    pass\n\ndef test_second():\n    pass\n"
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.scheduling", "--collect-only", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [
        "test_c_longer.py::test_first",
        "test_c_longer.py::test_second",
        "test_b_long.py::test_first",
        "test_b_long.py::test_second",
        "test_a_short.py::test_one",
    ], run.stdout
