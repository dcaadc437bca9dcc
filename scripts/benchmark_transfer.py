"""A pretrained protein masked LM as a Performer: zero-shot, then converted by protperf-convert.

By default the model is AntiBERTy (the optional extra ``transfer``: ``pip install
'protperf[transfer]'``), imported into a temporary protperf checkpoint; ``--checkpoint``
takes any exact-attention protperf MLM checkpoint instead. Scores two antibody sets, the
bundled test set (``--test-fasta``, PDB chains like the fine-tune set) and the held-out set of
another origin (``--heldout-fasta``, repertoire sequencing; scoring only), with exact
attention and FAVOR+ softmax / ReLU at every m and feature seed; then converts each
``--convert-kinds`` at each ``--convert-features`` with :func:`protperf.transfer.convert` (the
code path of ``protperf-convert``; ``convert.*`` defaults unless given) on the fine-tune set,
scoring both sets at ``--eval-steps`` with the training CPU time spent by then.

    python scripts/benchmark_transfer.py --threads 1       # about 25 CPU-min per conversion
    python scripts/benchmark_transfer.py --num-features 256 --feature-seeds 0 --steps 20

Appends to ``benchmarks/transfer.csv`` (rows with provenance), regenerates
``benchmarks/README.md`` and prints the tables (recovery = Performer / exact accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch
from benchmark_log import BENCHMARK_DIR, log_run, provenance

from protperf.errors import ConfigError
from protperf.reporting.tables import markdown_table
from protperf.transfer.antiberty import import_antiberty
from protperf.transfer.antibodies import (
    FINETUNE_FASTA,
    HELDOUT_FASTA,
    TEST_FASTA,
    read_antibodies,
)
from protperf.transfer.benchmark import (
    TransferBenchmarkConfig,
    curve_table,
    run_benchmark,
    zero_shot_table,
)
from protperf.transfer.settings import ConvertSettings

DEFAULTS = TransferBenchmarkConfig()
SETTINGS = ConvertSettings()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="an exact-attention protperf MLM checkpoint (default: AntiBERTy)")
    parser.add_argument("--train-fasta", type=Path, default=FINETUNE_FASTA)
    parser.add_argument("--test-fasta", type=Path, default=TEST_FASTA)
    parser.add_argument("--heldout-fasta", default=str(HELDOUT_FASTA),
                        help="a set of another origin, scored only ('' to skip)")
    parser.add_argument("--kinds", nargs="*", default=list(DEFAULTS.kinds))
    parser.add_argument("--num-features", type=int, nargs="*", default=list(DEFAULTS.num_features))
    parser.add_argument("--feature-seeds", type=int, nargs="*",
                        default=list(DEFAULTS.feature_seeds))
    parser.add_argument("--test-sequences", type=int, default=DEFAULTS.test_sequences)
    parser.add_argument("--mask-seed", type=int, default=DEFAULTS.mask_seed)
    parser.add_argument("--convert-kinds", nargs="*", default=list(DEFAULTS.convert_kinds))
    parser.add_argument("--convert-features", type=int, nargs="*",
                        default=list(DEFAULTS.convert_features))
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps)
    parser.add_argument("--eval-steps", type=int, nargs="+", default=list(DEFAULTS.eval_steps))
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    for name in ("trainable", "schedule"):
        parser.add_argument(f"--{name.replace('_', '-')}", default=getattr(SETTINGS, name))
    for name in ("lr", "min_lr_ratio"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                            default=getattr(SETTINGS, name))
    for name in ("warmup_steps", "polish_steps", "feature_seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=getattr(SETTINGS, name))
    parser.add_argument("--keep-dir", type=Path, default=None,
                        help="write the converted checkpoints (KIND-mM.ckpt) here and keep them")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=BENCHMARK_DIR,
                        help="where transfer.csv and the generated README.md are")
    parser.add_argument("--tmp-dir", type=Path, default=None,
                        help="a folder (made if missing) for a temporary folder where AntiBERTy is "
                             "imported and conversions are written (default: the system's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = dataclasses.replace(SETTINGS, **{
        name: getattr(args, name) for name in ("trainable", "schedule", "lr", "min_lr_ratio",
                                               "warmup_steps", "polish_steps", "feature_seed")})
    config = TransferBenchmarkConfig(
        kinds=tuple(args.kinds), num_features=tuple(args.num_features),
        feature_seeds=tuple(args.feature_seeds), test_sequences=args.test_sequences,
        mask_seed=args.mask_seed, convert_kinds=tuple(args.convert_kinds),
        convert_features=tuple(args.convert_features), steps=args.steps,
        eval_steps=tuple(args.eval_steps), batch_size=args.batch_size, settings=settings)
    stamp = provenance(argv, threads=args.threads)
    for folder in (args.tmp_dir, args.keep_dir):
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                print(f"error: cannot make {folder}: {error.strerror}", file=sys.stderr)
                return 2
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        try:
            settings.validate()
            checkpoint = args.checkpoint or import_antiberty(Path(tmp) / "antiberty.ckpt")
            sets = {"test": [s for _, s in read_antibodies(args.test_fasta)]}
            if args.heldout_fasta:
                sets["heldout"] = [s for _, s in read_antibodies(args.heldout_fasta)]
        except (FileNotFoundError, ValueError, ConfigError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        frame = run_benchmark(checkpoint, args.train_fasta, sets, config, args.keep_dir or tmp,
                              log=lambda line: print(line, flush=True))
    frame.insert(0, "model", "AntiBERTy" if args.checkpoint is None else args.checkpoint.stem)
    output, _ = log_run("transfer", frame, stamp, args.out_dir)
    print(markdown_table(zero_shot_table(frame)))
    if (frame["stage"] == "convert").any():
        print(markdown_table(curve_table(frame)))
    print(f"appended {len(frame)} rows to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
