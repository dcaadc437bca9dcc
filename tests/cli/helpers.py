"""Running a command as a user does (a subprocess), and reading its one error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_command(script: str, args: list[str], cwd: Path, env: dict | None = None,
                code: str | None = None) -> subprocess.CompletedProcess:
    """``python scripts/<script> args`` (or ``python -c code args``) from ``cwd``."""
    environ = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    environ.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WANDB_MODE="offline",
                   **(env or {}))
    command = [sys.executable, str(REPO / "scripts" / script), *args]
    if code is not None:
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line of a run that failed with exit status 2, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]
