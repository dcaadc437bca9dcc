"""A pretrained protein masked LM as a Performer: zero-shot, then two ways to recover.

By default the model is AntiBERTy (the optional extra ``transfer``: ``pip install
'protperf[transfer]'``), imported into a temporary protperf checkpoint; ``--checkpoint``
takes any exact-attention protperf MLM checkpoint instead. Scores the bundled antibody test
set (``protperf/resources/antibody_test.fasta.gz``) with exact attention and FAVOR+ softmax /
ReLU at every m and feature seed, then fine-tunes each ``--finetune-kinds`` at
``--finetune-features`` on the fine-tune set with each recipe (``mlm``: masked-LM loss, all
weights; ``transfer``: attention transfer from the exact model, q/k projections; see
``protperf/transfer/finetune.py``), scoring every ``--eval-every`` steps.

    python scripts/benchmark_transfer.py                # 44 min on one busy CPU core
    python scripts/benchmark_transfer.py --num-features 256 --feature-seeds 0 --steps 20

Appends to ``benchmarks/transfer.csv`` (rows with provenance), regenerates
``benchmarks/README.md`` and prints the headline table (accuracy / perplexity).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from benchmark_log import BENCHMARK_DIR, log_run, provenance

from protperf.inference import load_model
from protperf.reporting.tables import markdown_table
from protperf.transfer.antiberty import import_antiberty
from protperf.transfer.antibodies import FINETUNE_FASTA, TEST_FASTA, read_antibodies
from protperf.transfer.benchmark import TransferBenchmarkConfig, headline_table, run_benchmark

DEFAULTS = TransferBenchmarkConfig()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="an exact-attention protperf MLM checkpoint (default: AntiBERTy)")
    parser.add_argument("--train-fasta", type=Path, default=FINETUNE_FASTA)
    parser.add_argument("--test-fasta", type=Path, default=TEST_FASTA)
    parser.add_argument("--kinds", nargs="+", default=list(DEFAULTS.kinds))
    parser.add_argument("--num-features", type=int, nargs="+", default=list(DEFAULTS.num_features))
    parser.add_argument("--feature-seeds", type=int, nargs="+",
                        default=list(DEFAULTS.feature_seeds))
    parser.add_argument("--test-sequences", type=int, default=DEFAULTS.test_sequences)
    parser.add_argument("--mask-seed", type=int, default=DEFAULTS.mask_seed)
    parser.add_argument("--finetune-kinds", nargs="*", default=list(DEFAULTS.finetune_kinds))
    parser.add_argument("--finetune-features", type=int, default=DEFAULTS.finetune_features)
    parser.add_argument("--recipes", nargs="*", default=list(DEFAULTS.recipes))
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--eval-every", type=int, default=DEFAULTS.eval_every)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=BENCHMARK_DIR,
                        help="where transfer.csv and the generated README.md are")
    parser.add_argument("--tmp-dir", type=Path, default=None,
                        help="where AntiBERTy is imported (default: a temporary directory)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TransferBenchmarkConfig(
        kinds=tuple(args.kinds), num_features=tuple(args.num_features),
        feature_seeds=tuple(args.feature_seeds), test_sequences=args.test_sequences,
        mask_seed=args.mask_seed, finetune_kinds=tuple(args.finetune_kinds),
        finetune_features=args.finetune_features, recipes=tuple(args.recipes),
        steps=args.steps, batch_size=args.batch_size, eval_every=args.eval_every)
    stamp = provenance(argv, threads=args.threads)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        try:
            checkpoint = args.checkpoint or import_antiberty(Path(tmp) / "antiberty.ckpt")
            teacher = load_model(checkpoint)
            train = [s for _, s in read_antibodies(args.train_fasta)]
            test = [s for _, s in read_antibodies(args.test_fasta)]
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        frame = run_benchmark(teacher, train, test, config,
                              log=lambda line: print(line, flush=True))
    frame.insert(0, "model", "AntiBERTy" if args.checkpoint is None else args.checkpoint.stem)
    output, _ = log_run("transfer", frame, stamp, args.out_dir)
    print(markdown_table(headline_table(frame)))
    print(f"appended {len(frame)} rows to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
