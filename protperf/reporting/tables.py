"""Writing result tables (pandas) as CSV and GitHub markdown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protperf.checkpoint.atomic import atomic_path, write_text


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """GitHub-flavoured markdown of ``frame`` (no index); no optional `tabulate` dependency."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return ""
            return f"{value:.0f}" if abs(value) >= 1000 else float_format.format(value)
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (each atomically); returns both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv_path, "table") as partial:
        frame.to_csv(partial, index=False)
    write_text(md_path, markdown_table(frame), "table")
    return csv_path, md_path
