"""Learning-curve figure of a sweep, laid out like the Performer paper's protein figure:
one panel per direction (UNI / BID), one colour per model, training dashed, validation solid."""

from __future__ import annotations

import pandas as pd
import seaborn as sns

from protperf.reporting.runs import METRICS

METRIC_LABELS = {"acc": "accuracy (%)", "loss": "cross-entropy (nats)", "ppl": "perplexity"}


def plot_curves(curves: pd.DataFrame, metric: str = "acc", smooth: int = 1):
    """Seaborn ``relplot`` of ``metric`` against step.

    curves: the long table of :func:`protperf.reporting.runs.collect_runs`.
    smooth: rolling-mean window (in logged points) applied to the noisy per-step training
        values of each run; validation points are drawn as logged.
    Runs sharing model and direction (e.g. seeds) are drawn as mean with a band.
    Returns the ``FacetGrid`` (``grid.savefig(path)``).
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
    if curves.empty:
        raise ValueError("no curves to plot")
    data = curves.copy()
    if metric == "acc":
        data["acc"] = 100 * data["acc"]  # percent, as in the paper
    if smooth > 1:
        train = data["split"] == "train"
        data.loc[train, metric] = (
            data[train].sort_values("step").groupby("run")[metric]
            .transform(lambda s: s.rolling(smooth, min_periods=1).mean())
        )
    data["split"] = pd.Categorical(data["split"], ["valid", "train"])
    directions = [d for d in ("UNI", "BID") if d in set(data["direction"])]
    directions += sorted(set(data["direction"]) - set(directions))
    grid = sns.relplot(
        data=data, x="step", y=metric, hue="model", style="split",
        dashes={"valid": "", "train": (4, 2)}, col="direction", col_order=directions,
        kind="line", facet_kws={"sharey": False}, height=3.5, aspect=1.3,
        hue_order=sorted(set(data["model"])),
    )
    grid.set_axis_labels("training step", METRIC_LABELS[metric])
    grid.set_titles("{col_name}")
    return grid
