"""Long proteins: one protein of 5K / 20K / 50K residues embedded in one pass, exact vs Performer.

The model has ESM-2-8M's shape and architecture (6 layers, width 320, 20 heads, MLP 1280,
rotary positions, pre-LayerNorm, final LayerNorm, LM-head transform, token dropout) with
random weights: time and memory do not depend on the weight values, and no download is
needed. It is written once as an export directory and loaded through
``protperf.inference.load_model`` with ``model.attention.kind`` overridden, as
``protperf-embed checkpoint=DIR model.attention.kind=favor_relu`` would. Each cell runs in a
fresh process (CPU, 1 thread by default) under an address-space limit (``--memory-limit-gib``),
so a cell that does not fit fails alone instead of exhausting the machine; one forward pass
(``Embedder``, mean of the last layer, ``toks_per_batch`` = the protein). Cells that would take
too long are recorded as skipped with the reason (``--exact-max-length``), never estimated.

Columns: ``time_s`` wall time of the pass, ``cpu_s`` its CPU time, ``peak_mib`` peak RSS above
the process's baseline (model loaded), ``status`` ok / skipped (...) / failed (...). Appends
rows with provenance to ``benchmarks/long_proteins.csv`` (``--out-dir``).

``--old-commit REV`` also runs the Performer cells with the ``protperf`` package of that git
revision (``implementation`` column: ``new`` or its short hash), side by side in one run.

    python scripts/benchmark_long_proteins.py
    python scripts/benchmark_long_proteins.py --lengths 5000 --methods exact favor_relu
    python scripts/benchmark_long_proteins.py --lengths 50000 --methods favor_relu \
        --old-commit main
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_log import BENCHMARK_DIR, import_from, log_run, old_tree, provenance

#: ESM-2 8M (esm2_t6_8M_UR50D): 6 layers, width 320, 20 heads, MLP 4 x 320.
ESM2_8M = {"name": "esm2-8M-shape", "dim": 320, "num_heads": 20, "num_layers": 6,
           "ffn_dim": 1280, "dropout": 0.0, "position": "rotary", "max_position": 1026,
           "norm_placement": "pre", "final_norm": True, "lm_head_transform": True,
           "token_dropout": True}
METHODS = ("exact", "favor_relu", "favor_softmax")
ARCH = "ESM-2 8M shape (6 layers, D=320, 20 heads, ff=1280, rotary), random weights"


def esm2_config(num_features: int):
    """The model config: ESM-2 8M's shape with ESM-2's architecture knobs."""
    from protperf.attention import AttentionConfig
    from protperf.model.config import ModelConfig

    return ModelConfig(**ESM2_8M, attention=AttentionConfig(kind="exact",
                                                            num_features=num_features))


def write_model(directory: Path, num_features: int) -> Path:
    """A randomly initialised ESM-2-8M-shaped masked LM as an export directory."""
    from protperf.checkpoint.export_dir import write_export_dir
    from protperf.data.alphabet import ALPHABET
    from protperf.model.transformer import ProteinLanguageModel
    from protperf.structured import to_plain

    torch.manual_seed(0)
    config = esm2_config(num_features)
    network = ProteinLanguageModel(config, causal=False)
    hparams = {"model": to_plain(config), "task": {"objective": "mlm"},
               "alphabet": list(ALPHABET.tokens), "seed": 0}
    return write_export_dir(network, hparams, directory / "esm2-8M-shape")


def protein(length: int) -> str:
    """A deterministic residue string of ``length`` amino acids."""
    return "".join("ACDEFGHIKLMNPQRSTVWY"[(7 * i * i + 3 * i) % 20] for i in range(length))


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(model_dir: str, method: str, length: int, threads: int, memory_limit_gib: float,
            tree: Path | None, queue) -> None:
    """One cell, in its own process: load, embed one protein in one pass, report; ``tree``:
    a folder whose ``protperf`` it imports (None: this checkout's)."""
    import_from(tree)
    if memory_limit_gib > 0:
        limit = int(memory_limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(threads)
    from protperf.inference import Embedder, load_model

    model = load_model(model_dir, model_overrides={"attention": {"kind": method}})
    passes = []  # calls of the first block: one per forward pass
    model.blocks[0].register_forward_hook(lambda *_: passes.append(1))
    embedder = Embedder(model, layers=[-1], include=["mean"], toks_per_batch=length + 2)
    embedder.embed_one(protein(64))  # warm-up
    passes.clear()
    residues = protein(length)
    before = rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        result = embedder.embed_one(residues)
    except (RuntimeError, MemoryError) as error:
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else "no memory"
        queue.put({"status": f"failed ({type(error).__name__}: {reason})"})
        return
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    ok = (result.embedded_length == length and len(passes) == 1
          and bool(torch.isfinite(torch.from_numpy(result.mean[len(model.blocks)])).all()))
    queue.put({"status": "ok" if ok else "failed (not one pass, wrong length or non-finite)",
               "time_s": wall, "cpu_s": cpu, "peak_mib": peak,
               "residues_per_s": length / wall, "forward_passes": len(passes)})


def in_fresh_process(*args, tree: Path | None = None) -> dict:
    """One cell in a spawned process; ``tree``: a folder whose ``protperf`` it imports."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(*args, tree, queue))
    process.start()
    process.join()
    if not queue.empty():
        return queue.get()
    return {"status": f"failed (process exit {process.exitcode})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=[5000, 20000, 50000, 100000])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--num-features", type=int, default=256)
    parser.add_argument("--exact-max-length", type=int, default=20000,
                        help="longer exact cells are recorded as skipped (their O(L^2) time)")
    parser.add_argument("--memory-limit-gib", type=float, default=8.0,
                        help="address-space limit of each cell's process (0 = none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--old-commit", default=None, metavar="REV",
                        help="also run the Performer cells with the protperf package of this "
                             "git revision (e.g. main)")
    parser.add_argument("--out-dir", type=Path, default=BENCHMARK_DIR,
                        help="where long_proteins.csv and the generated README.md are")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(write_model(Path(tmp), args.num_features))
        implementations = [("new", None)]
        if args.old_commit:
            (Path(tmp) / "old").mkdir()
            implementations.append(old_tree(args.old_commit, Path(tmp) / "old"))
        for length in args.lengths:
            for method in args.methods:
                for implementation, tree in implementations:
                    if tree is not None and method == "exact":
                        continue  # exact attention is the same in both
                    row = {"method": method, "length": length, "implementation": implementation}
                    if method == "exact" and length > args.exact_max_length:
                        row["status"] = (f"skipped (exact attention is O(L^2) in time: beyond "
                                         f"--exact-max-length={args.exact_max_length})")
                    else:
                        row.update(in_fresh_process(model_dir, method, length, args.threads,
                                                    args.memory_limit_gib, tree=tree))
                    print(row, flush=True)
                    rows.append(row)
    table = pd.DataFrame(rows)
    table["m"] = [args.num_features if m != "exact" else "" for m in table["method"]]
    table["arch"] = ARCH
    output, _ = log_run("long_proteins", table, provenance(sys.argv[1:], threads=args.threads),
                        args.out_dir)
    shown = [c for c in ("method", "length", "implementation", "status", "time_s", "cpu_s",
                         "peak_mib")
             if c in table.columns]
    print(table[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"appended {len(table)} rows to {output}")


if __name__ == "__main__":
    main()
