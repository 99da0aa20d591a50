"""The CI entry point: a shell script that parses, and ends by running what the README says."""

from __future__ import annotations

import subprocess
from pathlib import Path

CI = Path(__file__).parents[2] / ".ci" / "run"


def test_the_ci_script_parses_and_runs_make_test() -> None:
    checked = subprocess.run(["bash", "-n", str(CI)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    commands = [
        line.strip()
        for line in CI.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[0] == "set -euo pipefail"
    assert commands[-1] == "make test"
