"""Lint and types in CI (issue 13): ruff and mypy pass as pyproject.toml configures them.

Each tool runs from this interpreter's environment (the dev extra pins it), in the repository root, so that its
section of pyproject.toml applies. On failure the tool's own report is the assertion message. The layering
(import-linter) is tests/test_architecture.py.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "geocorr"


def run_tool(command: list[str], timeout: float) -> str:
    """Run `command` in the repository root; fail the test with the tool's output unless it exits 0."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(command[1:])}` exited {result.returncode}:\n{output}"
    return output


def test_ruff_finds_nothing():
    run_tool([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks", "examples"],
             timeout=120)


@pytest.mark.slow
def test_mypy_finds_nothing_in_the_whole_package():
    output = run_tool([sys.executable, "-m", "mypy"], timeout=600)  # cold cache: about a minute on 2 cores
    checked = re.search(r"no issues found in (\d+) source files", output)
    assert checked is not None, output
    # The package is checked, not a part of it (mypy also counts the data folders, as namespace packages).
    assert int(checked.group(1)) >= sum(1 for _ in PACKAGE.rglob("*.py")), output

