"""`./dev`'s choice of interpreter: the interpreter itself, never a launcher in front of it.

Given a launcher's path (a pyenv shim, say), uv takes the existing virtual environment for another
interpreter's and creates it again on every `./dev` command, compiling every dependency's bytecode
again with it (about 12 s here).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def find_python_function() -> str:
    script = (REPO / "dev").read_text()
    match = re.search(r"^find_python\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert match, "dev has no find_python function"
    return match.group(0)


def test_a_launcher_first_on_path_gives_the_interpreter_behind_it(tmp_path):
    launcher = tmp_path / "python3.13"  # the first name find_python tries
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    launcher.chmod(0o755)
    chosen = subprocess.run(
        ["bash", "-c", f"{find_python_function()}\nfind_python"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert chosen == sys.executable
    assert chosen != str(launcher)
