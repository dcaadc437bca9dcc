"""Inference benchmark: generation and embedding, Performer vs exact, at 1K / 8K / 32K.

1. Generation: one sequence decoded token by token (greedy, no eos) to N tokens with the
   Performer's recurrent state vs the exact Transformer's KV cache (same architecture):
   tokens/s over the whole run (wall and CPU time), ms per token over the first and the
   last 10% of tokens (flat = constant time per token; CPU time on CPU), and the peak
   memory the decoding adds on top of the model (CPU: peak RSS of a fresh process minus its
   RSS before; GPU: max allocated).
2. Embedding: one protein of L residues through ``protperf.inference.Embedder`` (mean of the
   last layer), bidirectional Performer vs exact: residues/s (wall and CPU time) and the
   peak memory it adds.

Every measurement runs in a fresh process. The model is ARCH (rotary positions, so no
positional table caps the length). Appends rows with provenance (commit, date, machine,
torch, threads, args) to ``benchmarks/inference.csv`` (``--out-dir``), regenerates
``benchmarks/README.md`` and prints a table.

    python scripts/benchmark_inference.py                      # 1K, 8K, 32K, both parts
    python scripts/benchmark_inference.py --gen-lengths 1024 8192 --embed-lengths 1024 8192
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from benchmark_log import BENCHMARK_DIR, log_run, provenance

REPO = Path(__file__).resolve().parents[1]
ARCH = {"dim": 128, "num_heads": 4, "num_layers": 2, "ffn_dim": 512, "dropout": 0.0,
        "position": "rotary"}
KINDS = {"performer_softmax": "favor_softmax", "performer_relu": "favor_relu",
         "transformer": "exact"}


# Per-token times: CPU time of this process on CPU (robust to other users of a shared
# machine), wall time on GPU; the per_s columns are wall time, per_cpu_s CPU time.
CLOCK = {"cpu": time.process_time, "cuda": time.perf_counter}


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def build_model(kind: str, causal: bool, num_features: int, device: str):
    from protperf.attention import AttentionConfig
    from protperf.model.config import ModelConfig
    from protperf.model.transformer import ProteinLanguageModel

    torch.manual_seed(0)
    config = ModelConfig(**ARCH, max_position=8, attention=AttentionConfig(
        kind=KINDS[kind], num_features=num_features))
    return ProteinLanguageModel(config, causal=causal).to(device).eval()


def _memory_start(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return rss_mib()


def _memory_peak(device: str, before: float) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20 - before
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before


def measure_generation(kind: str, length: int, num_features: int, device: str, threads: int,
                       queue) -> None:
    from protperf.inference.decoding import IncrementalDecoder

    torch.set_num_threads(threads)
    model = build_model(kind, True, num_features, device)
    token = torch.tensor([2], device=device)  # <cls>
    before = _memory_start(device)
    decoder = IncrementalDecoder(model, 1, length)
    tenth = max(1, length // 10)
    first = last = 0.0  # running sums: no per-token list that would grow with the length
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for t in range(length):
            t0 = CLOCK[device]()
            logits = decoder.step(token)
            token = logits.argmax(-1)
            if device == "cuda":
                torch.cuda.synchronize()
            elapsed = CLOCK[device]() - t0
            if t < tenth:
                first += elapsed
            if t >= length - tenth:
                last += elapsed
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    queue.put({"task": "generate", "model": kind, "length": length,
               "per_s": length / total, "per_cpu_s": length / cpu,
               "first_ms": 1e3 * first / tenth, "last_ms": 1e3 * last / tenth,
               "peak_mib": _memory_peak(device, before),
               "state_mib": decoder.state_bytes() / 2**20, "time_s": total})


def measure_embedding(kind: str, length: int, num_features: int, device: str, threads: int,
                      queue) -> None:
    from protperf.inference.embed import Embedder

    torch.set_num_threads(threads)
    model = build_model(kind, False, num_features, device)
    residues = "".join("ACDEFGHIKLMNPQRSTVWY"[(7 * i * i + 3 * i) % 20] for i in range(length))
    embedder = Embedder(model, toks_per_batch=length + 2)
    embedder.embed_one(residues[:64])  # warm-up
    before = _memory_start(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    embedder.embed_one(residues)
    if device == "cuda":
        torch.cuda.synchronize()
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    queue.put({"task": "embed", "model": kind, "length": length, "per_s": length / total,
               "per_cpu_s": length / cpu, "peak_mib": _memory_peak(device, before),
               "time_s": total})


def in_fresh_process(target, *args) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        return {"status": f"failed (exit {process.exitcode})"}
    return {"status": "ok", **queue.get()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gen-lengths", type=int, nargs="*", default=[1024, 8192, 32768])
    parser.add_argument("--embed-lengths", type=int, nargs="*", default=[1024, 8192, 32768])
    parser.add_argument("--models", nargs="*", default=["performer_softmax", "transformer"],
                        choices=list(KINDS))
    parser.add_argument("--num-features", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out-dir", type=Path, default=BENCHMARK_DIR,
                        help="where inference.csv and the generated README.md are")
    args = parser.parse_args()
    rows = []
    for task, lengths, target in (("generate", args.gen_lengths, measure_generation),
                                  ("embed", args.embed_lengths, measure_embedding)):
        for length in lengths:
            for kind in args.models:
                row = in_fresh_process(target, kind, length, args.num_features, args.device,
                                       args.threads)
                row.update(task=task, model=kind, length=length)
                print(row, flush=True)
                rows.append(row)
    table = pd.DataFrame(rows)
    table["arch"] = (f"D={ARCH['dim']} H={ARCH['num_heads']} layers={ARCH['num_layers']} "
                     f"ff={ARCH['ffn_dim']} m={args.num_features} rotary")
    accelerator = torch.cuda.get_device_name() if args.device == "cuda" else None
    output, _ = log_run("inference", table, provenance(sys.argv[1:], threads=args.threads,
                                                       accelerator=accelerator), args.out_dir)
    shown = [c for c in ("task", "model", "length", "per_s", "per_cpu_s", "first_ms", "last_ms",
                         "peak_mib", "state_mib", "status") if c in table.columns]
    print(table[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"appended {len(table)} rows to {output}")


if __name__ == "__main__":
    main()
