"""Writing result tables (pandas) as CSV and GitHub markdown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
    """Write ``<stem>.csv`` and ``<stem>.md``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    frame.to_csv(csv_path, index=False)
    md_path.write_text(markdown_table(frame))
    return csv_path, md_path
