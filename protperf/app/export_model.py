"""``protperf-export CHECKPOINT --out DIR``: a saved model as a self-describing directory.

    protperf-export outputs/run/checkpoints/last.ckpt --out my-model            # protperf format
    protperf-export outputs/run/checkpoints/last.ckpt --out my-esm --format esm  # transformers

``--format protperf`` (default) writes :mod:`protperf.checkpoint.export_dir` (config.json,
model.safetensors, vocab.txt, a model card), which every command takes as ``checkpoint=DIR``
with the outputs of the ``.ckpt``. ``--format esm`` writes a Hugging Face ``EsmForMaskedLM``
directory for models of ESM-2's architecture (:mod:`protperf.checkpoint.hf_export`), ``--format
bert`` a ``BertForMaskedLM`` one for BERT-family models; a Performer runs there as a Performer
after ``import protperf.hf``.
CHECKPOINT may itself be an export directory. OUT must be new or empty; an existing OUT needs
``--force``, which replaces only the files the export writes (other files there are kept).
The export is written beside OUT and renamed into place: OUT is complete or untouched.
The library function is :func:`protperf.checkpoint.export.export_model`. Errors: one line,
exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from protperf.checkpoint.export import FORMATS, export_model
from protperf.cli.command import report_user_errors


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="protperf-export", description=__doc__.split("\n")[0].strip("`: "))
    parser.add_argument("checkpoint", help="a .ckpt file or an export directory")
    parser.add_argument("--out", required=True, help="the directory to write")
    parser.add_argument("--format", default="protperf", choices=FORMATS,
                        help="protperf (config.json + model.safetensors), esm (transformers "
                             "EsmForMaskedLM) or bert (BertForMaskedLM); a Performer runs in "
                             "transformers after `import protperf.hf`")
    parser.add_argument("--as-exact", action="store_true",
                        help="esm / bert format: write a Performer's weights for exact "
                             "attention (outputs then differ from the Performer's)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing OUT, replacing only the files an export "
                             "writes (config, weights, vocabulary, model card)")
    return parser.parse_args(argv)


@report_user_errors
def run(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    out = export_model(args.checkpoint, args.out, args.format, args.as_exact, args.force)
    print(f"[protperf] exported {args.checkpoint} ({args.format} format) -> {out}", flush=True)
    return out


def main() -> None:
    """Console entry point (``protperf-export``)."""
    run()

