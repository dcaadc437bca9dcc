"""Size limits: small modules with one job, and a README that stays a user guide."""

from __future__ import annotations

from pathlib import Path

import protperf

PACKAGE = Path(protperf.__file__).parent
REPO = PACKAGE.parent
MAX_MODULE_LINES = 400
MAX_README_LINES = 400


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_is_over_400_lines():
    long = sorted(f"{p.relative_to(REPO)}: {line_count(p)}" for p in PACKAGE.rglob("*.py")
                  if line_count(p) > MAX_MODULE_LINES)
    assert not long, f"split by job (limit {MAX_MODULE_LINES} lines): {long}"


def test_the_readme_is_at_most_400_lines():
    lines = line_count(REPO / "README.md")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move detail to docs/"
