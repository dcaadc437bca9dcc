"""The analysis summary: JSON-safe records, the best heads, and the one terminal line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import pandas as pd


class Summarized(Protocol):
    """What :func:`summary_line` reads (an :class:`~protperf.analysis.pipeline.AnalysisResult`)."""

    summary: dict[str, Any]


def head_summary(head_table: pd.DataFrame) -> dict:
    """best_heads (top 5 by pearson_offdiag, with their p / q values) and the number of heads
    with q < 0.05."""
    heads = head_table[head_table["kind"] == "head"]
    best = heads.head(5)[["layer", "head", "pearson_offdiag", "spearman_offdiag"]
                         + [c for c in heads.columns if c.startswith("pearson_offdiag_")
                            and not c.endswith("parametric")]]
    return {
        "best_heads": [json_record(r) for r in best.to_dict(orient="records")],
        "heads_significant_q05": int((heads["pearson_offdiag_q"] < 0.05).sum())
        if "pearson_offdiag_q" in heads else None,
    }


def json_floats(values: Iterable[Any]) -> list[float | None]:
    """JSON-safe list: floats, None for NaN / missing."""
    out = []
    for value in values:
        value = None if value is None else float(value)
        out.append(value if value is not None and np.isfinite(value) else None)
    return out


def json_record(record: dict) -> dict:
    """JSON-safe: numpy scalars to Python, NaN to None."""
    out = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
            value = None
        out[key] = value
    return out


def _fmt(value: Any) -> str:
    return "nan" if value is None else f"{value:.3g}"


def summary_line(result: Summarized, output_dir: str) -> str:
    """One line for the terminal: pooled and Vig correlations with BLOSUM62, output folder."""
    stats = result.summary["data"]["stats"]
    parts = ["[protperf analyze]", f"proteins={stats.get('analyzed', 0)}"]
    similarity = result.summary.get("similarity")
    if similarity:
        pooled = similarity["pooled"]
        parts.append(
            f"pooled pearson_offdiag={_fmt(pooled.get('pearson_offdiag'))} "
            f"(p={_fmt(pooled.get('pearson_offdiag_p'))}{_floor(similarity, 'pooled_floor')})"
        )
        best = similarity["best_heads"][0]
        parts.append(
            f"best head L{best['layer']}H{best['head']}={_fmt(best.get('pearson_offdiag'))} "
            f"(q={_fmt(best.get('pearson_offdiag_q'))}{_floor(similarity, 'best_head_floor')}; "
            f"{similarity['heads_significant_q05']} heads q<0.05)"
        )
    vig = result.summary.get("vig")
    if vig and "skipped" in vig:
        parts.append(f"vig {vig['skipped'].split(':')[0]} ({vig['heads_used']} heads usable)")
    elif vig:
        parts.append(
            f"vig pearson_offdiag={_fmt(vig.get('pearson_offdiag'))} "
            f"(p={_fmt(vig.get('pearson_offdiag_p'))}{_floor(vig, 'floor')})"
        )
    embedding = result.summary.get("embedding")
    if embedding:
        parts.append(
            f"embedding pearson_offdiag={_fmt(embedding.get('pearson_offdiag'))} "
            f"(p={_fmt(embedding.get('pearson_offdiag_p'))}{_floor(embedding, 'floor')})"
        )
    return " ".join(parts) + f" -> {output_dir}"


def _floor(section: dict, key: str) -> str:
    """``, random-init floor 0.21`` when the analysis ran null models (summary key present)."""
    return f", random-init floor {_fmt(section[key])}" if key in section else ""
