"""Log figures (e.g. the attention / BLOSUM62 plots of ``scripts/analyze.py``) to wandb.

Offline by default like ``conf/logger/wandb.yaml``: the mode comes from ``mode``, else
``WANDB_MODE``, else ``offline``; an offline run is uploaded later with
``wandb sync <dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


def log_figures_to_wandb(
    figures: Mapping[str, Any] | list[str | Path],
    save_dir: str | Path,
    project: str = "protperf",
    name: str | None = None,
    group: str | None = None,
    config: Mapping[str, Any] | None = None,
    mode: str | None = None,
    run: Any = None,
) -> str:
    """Log ``figures`` as ``wandb.Image``s in one step and return the run's directory.

    figures: ``{key: matplotlib Figure or image path}``, or image paths (keyed by file stem,
        e.g. ``figures/blosum_similarity.png`` -> ``blosum_similarity``).
    run: an active wandb run to log into (e.g. ``WandbLogger.experiment``); if None a new run
        is started in ``save_dir`` with ``project``, ``name``, ``group``, ``config`` and
        finished afterwards.
    """
    import wandb

    if not isinstance(figures, Mapping):
        figures = {Path(p).stem: p for p in figures}
    images = {}
    for key, figure in figures.items():
        if isinstance(figure, (str, Path)):
            path = Path(figure)
            if not path.is_file():
                raise FileNotFoundError(f"figure {key!r}: no such file {path}")
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"figure {key!r}: {path} is not an image "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            figure = str(path)
        images[key] = wandb.Image(figure)
    own_run = run is None
    if own_run:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        run = wandb.init(project=project, name=name, group=group, dir=str(save_dir),
                         config=dict(config or {}),
                         mode=mode or os.environ.get("WANDB_MODE", "offline"))
    try:
        run.log(images)
        return str(run.dir)
    finally:
        if own_run:
            run.finish()


def log_analysis_figures(output_dir: str | Path, config: Mapping[str, Any] | None = None,
                         project: str = "protperf") -> str:
    """Log the PNG figures of a ``scripts/analyze.py`` run (``<output_dir>/figures/*.png``) to
    a wandb run stored in ``<output_dir>/wandb`` (group ``analysis``, named after the output
    directory), with the analysis config; returns the wandb run directory."""
    output_dir = Path(output_dir)
    figures = sorted((output_dir / "figures").glob("*.png"))
    if not figures:
        raise FileNotFoundError(f"no PNG figures in {output_dir / 'figures'}")
    return log_figures_to_wandb(figures, save_dir=output_dir, project=project,
                                name=f"analyze-{output_dir.name}", group="analysis",
                                config=config)


def main(argv: list[str] | None = None) -> int:
    """``python -m protperf.reporting.wandb_figures <dir> [--name N] [--project P]``: log every
    PNG in ``dir`` (e.g. the run directory of ``scripts/analyze.py``) to a wandb run stored
    in ``<dir>/wandb`` (offline unless ``WANDB_MODE`` says otherwise)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--project", default="protperf")
    parser.add_argument("--name", default=None)
    parser.add_argument("--group", default=None)
    args = parser.parse_args(argv)
    figures = sorted(args.directory.glob("*.png"))
    if not figures:
        print(f"error: no .png figures in {args.directory}", file=sys.stderr)
        return 2
    run_dir = log_figures_to_wandb(figures, save_dir=args.directory, project=args.project,
                                   name=args.name or args.directory.name, group=args.group)
    print(f"logged {len(figures)} figures to {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
