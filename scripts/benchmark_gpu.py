"""GPU benchmark: attention fwd+bwd and training throughput of the concatenated Performer.

Three tables, one run (made to fit in ~8 minutes on one GPU: a time budget, per-cell
predictions from the previous length, and no longer lengths for a method after its first
out-of-memory):

1. attention: fwd+bwd in bf16, H = 8, d = 64, m = 256, B x L = --tokens (131072):
   SDPA causal / bidirectional, protperf torch (causal, bidirectional), protperf fla
   (causal, softmax and ReLU), and fla's chunk_simple_gla alone on the same feature tensors;
   ms + peak memory.
2. training: tokens/s and peak memory of the paper's concatenated model (8 heads, 6 layers,
   d_ff 2048, D 512, m 256, causal, rotary), bf16 autocast + AdamW, for exact,
   performer_softmax, performer_relu and identity attention; batch --train-tokens / L.
3. longest: the longest L (doubling) that trains at batch 1 for each model.

Appends the rows to ``<out-dir>/gpu.csv`` (default ``benchmarks/``) with provenance (commit,
date, machine + GPU name, torch, threads, arguments) and fla's version, and regenerates
``<out-dir>/README.md``. A cell that fails (out of memory, a Triton or fla assertion, out of
resources, a value error) is recorded with its status and the run carries on.
CPU smoke run, written to a new temporary folder (never to ``benchmarks/``):
``--device cpu --lengths 1024 --steps 1 --smoke``.

    python scripts/benchmark_gpu.py                     # on a GPU machine
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from benchmark_log import add_output_options, log_run, provenance

from protperf.attention import AttentionConfig
from protperf.attention.backends import attention_mode
from protperf.attention.ops.causal_fla import fla_available, fla_chunk_simple_gla
from protperf.attention.ops.exact import exact_attention
from protperf.attention.ops.feature_maps import draw_projection, performer_feature_maps
from protperf.attention.ops.linear import augment_values
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel

HEADS, HEAD_DIM, FEATURES = 8, 64, 256
MODELS = {"exact": "exact", "performer_softmax": "favor_softmax",
          "performer_relu": "favor_relu", "identity": "identity"}
OOM = "out of memory"


class Budget:
    """Wall-clock budget of the whole run; a cell runs only if its prediction fits."""

    def __init__(self, seconds: float, cell_seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.cell_seconds = cell_seconds

    def allows(self, predicted_s: float) -> bool:
        left = self.deadline - time.monotonic()
        return predicted_s <= min(self.cell_seconds, left)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], None], device: torch.device, steps: int) -> dict:
    """One warm-up step, then ``steps`` timed ones: median ms and peak memory (GiB)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    return {"ms": 1e3 * sorted(times)[len(times) // 2], "peak_gib": peak, "status": "ok"}


def guarded(run: Callable[[], dict], device: torch.device) -> dict:
    """run(), with any failure recorded as the cell's status instead of raised: CUDA out of
    memory, and everything else a kernel may throw (Triton or fla assertions, Triton's
    OutOfResources, value errors), so one cell never ends the run."""
    try:
        return run()
    except torch.OutOfMemoryError:
        return {"status": OOM}
    except Exception as error:  # recorded in the table, the run goes on
        if OOM in str(error).lower():
            return {"status": OOM}
        return {"status": "failed: " + failure_summary(error)}
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def failure_summary(error: BaseException, width: int = 160) -> str:
    """'Type: first non-empty line of the message', at most ``width`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = type(error).__name__ + (f": {lines[0]}" if lines else "")
    return text[:width]


# ------------------------------------------------------------------------------ attention
def attention_methods(device: torch.device) -> dict[str, Callable]:
    """name -> f(q, k, v, w) of heads (B, H, L, d), all under bf16 autocast."""
    def sdpa(causal):
        return lambda q, k, v, w: exact_attention(q, k, v, causal)

    def performer(causal, backend, kind="favor_softmax"):
        config = AttentionConfig(kind=kind, backend=backend, chunk_size=HEAD_DIM)

        def attention(q, k, v, w):
            return attention_mode(config, causal, q, None)(q, k, v, w, config)

        return attention

    methods = {"sdpa_causal": sdpa(True), "sdpa_bidirectional": sdpa(False),
               "protperf_torch_causal": performer(True, "torch"),
               "protperf_torch_bidirectional": performer(False, "torch")}
    if device.type == "cuda" and fla_available():
        methods["protperf_fla_causal"] = performer(True, "fla")
        methods["protperf_fla_causal_relu"] = performer(True, "fla", "favor_relu")
        methods["fla_kernel_alone_causal"] = None  # fla_kernel_step: features precomputed
    return methods


def fla_kernel_step(q, k, v, w) -> Callable[[], None]:
    """A step of fla's chunk_simple_gla alone on precomputed bf16 feature tensors and gates
    (the reference of the "within 1.3x of fla's kernel alone" goal)."""
    kernel = fla_chunk_simple_gla()
    with torch.no_grad():
        q_prime, k_prime, s = performer_feature_maps(q, k, w, "softmax", causal_keys=True)
    pad = -(HEAD_DIM + 1) % 16
    qf, kf = (x.bfloat16().transpose(1, 2).contiguous().requires_grad_()
              for x in (q_prime, k_prime))
    vf = torch.nn.functional.pad(augment_values(v.detach()), (0, pad)).bfloat16()
    vf = vf.transpose(1, 2).contiguous().requires_grad_()
    g = torch.nn.functional.pad(s[..., :-1] - s[..., 1:], (1, 0)).transpose(1, 2).contiguous()

    def step():
        out, _ = kernel(qf, kf, vf, g=g, scale=1.0)
        out.float().sum().backward()
        qf.grad = kf.grad = vf.grad = None

    return step


def attention_rows(args, device, budget: Budget) -> list[dict]:
    rows = []
    w = draw_projection("orthogonal", FEATURES, HEAD_DIM).to(device)
    for name, method in attention_methods(device).items():
        last = None
        for length in args.lengths:
            batch = max(1, args.tokens // length)
            row = {"table": "attention", "method": name, "length": length, "batch": batch}
            quadratic = name.startswith("sdpa")
            predicted = _predict(last, length, 2 if quadratic else 1)
            if last is not None and last["status"] == OOM:
                row["status"] = "skipped: OOM at a shorter length"
            elif not budget.allows(predicted * (args.steps + 1)):
                row["status"] = f"skipped: predicted {predicted:.1f} s per step"
            else:
                row.update(guarded(partial(_attention_cell, name, method, w, batch, length,
                                           args.steps, device), device))
                last = {**row, "length": length}
            rows.append(row)
            print(row, flush=True)
    return rows


def _attention_cell(name, method, w, batch, length, steps, device) -> dict:
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(batch, HEADS, length, HEAD_DIM, device=device, generator=gen,
                           dtype=torch.bfloat16).requires_grad_() for _ in range(3))
    if method is None:
        return measure(fla_kernel_step(q, k, v, w), device, steps)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = method(q, k, v, w)
        out.float().sum().backward()
        q.grad = k.grad = v.grad = None

    return measure(step, device, steps)


def _predict(last: dict | None, length: int, exponent: int) -> float:
    """Seconds per step at length from the last measured cell (B L fixed: L^(e-1) growth)."""
    if last is None or last.get("status") != "ok":
        return 0.0
    return last["ms"] / 1e3 * (length / last["length"]) ** max(exponent - 1, 0) * 1.2


# ------------------------------------------------------------------------------- training
# the paper's concatenated model: 8 heads, 6 layers, d_ff 2048, D 512 (m = 256)
ARCHITECTURE = {"dim": 512, "num_layers": 6, "ffn_dim": 2048}


def build_model(model: str, length: int, device: torch.device,
                num_layers: int) -> ProteinLanguageModel:
    attention = AttentionConfig(kind=MODELS[model], num_features=FEATURES)
    config = ModelConfig(name=model, num_heads=HEADS, dropout=0.0, position="rotary",
                         max_position=max(length, 8192), attention=attention,
                         **{**ARCHITECTURE, "num_layers": num_layers})
    return ProteinLanguageModel(config, causal=True).to(device)


def training_cell(model_name, length, batch, steps, device, num_layers) -> dict:
    torch.manual_seed(0)
    model = build_model(model_name, length, device, num_layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(4, 29, (batch, length + 1), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1),
                                                 tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    result = measure(step, device, steps)
    result["tokens_per_s"] = batch * length / (result["ms"] / 1e3)
    return result


def training_rows(args, device, budget: Budget) -> list[dict]:
    rows = []
    for model_name in MODELS:
        last = None
        for length in args.train_lengths:
            batch = max(1, args.train_tokens // length)
            row = {"table": "training", "method": model_name, "length": length,
                   "batch": batch}
            predicted = _predict(last, length, 2 if model_name == "exact" else 1)
            if last is not None and last["status"] == OOM:
                row["status"] = "skipped: OOM at a shorter length"
            elif not budget.allows(predicted * (args.steps + 1)):
                row["status"] = f"skipped: predicted {predicted:.1f} s per step"
            else:
                row.update(guarded(partial(training_cell, model_name, length, batch,
                                           args.steps, device, args.num_layers), device))
                last = {**row, "length": length}
            rows.append(row)
            print(row, flush=True)
    return rows


def longest_rows(args, device, budget: Budget) -> list[dict]:
    """Doubling L at batch 1 (one step each) until OOM, the budget, or --max-length."""
    rows = []
    for model_name in MODELS:
        longest, length, last, reason = None, args.longest_start, None, "max length reached"
        while length <= args.max_length:
            predicted = _predict(last, length, 2 if model_name == "exact" else 1) * 2
            if not budget.allows(predicted):
                reason = f"budget (next L = {length} predicted {predicted:.0f} s)"
                break
            result = guarded(partial(training_cell, model_name, length, 1, 1, device,
                                     args.num_layers), device)
            if result["status"] != "ok":
                reason = f"L = {length}: {result['status']}"
                break
            longest, last = {"length": length, **result}, {"length": length, **result}
            length *= 2
        row = {"table": "longest", "method": model_name, "batch": 1,
               "length": None if longest is None else longest["length"],
               "peak_gib": None if longest is None else longest["peak_gib"],
               "tokens_per_s": None if longest is None else longest["tokens_per_s"],
               "status": f"stopped: {reason}"}
        rows.append(row)
        print(row, flush=True)
    return rows


# ------------------------------------------------------------------------------ reporting
def fla_version() -> str:
    try:
        import fla

        return getattr(fla, "__version__", "installed")
    except Exception:  # not installed, or Triton unusable
        return "not available"


def write_outputs(rows: list[dict], device: torch.device, argv: list[str], out_dir: Path):
    """Append the rows, with provenance (the GPU name in ``machine``, fla's version in ``fla``),
    to ``<out_dir>/gpu.csv`` and regenerate ``<out_dir>/README.md``; returns the CSV path."""
    import pandas as pd

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    frame = pd.DataFrame(rows)
    frame["device"] = name or "cpu"
    frame["fla"] = fla_version()
    csv, _ = log_run("gpu", frame, provenance(argv, accelerator=name), out_dir)
    return csv


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[4096, 8192, 16384, 32768, 65536, 131072])
    parser.add_argument("--train-lengths", type=int, nargs="+", default=None,
                        help="training lengths (default: 8192 32768 131072; on CPU --lengths)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="B x L of the attention table (default 131072; CPU: max length)")
    parser.add_argument("--train-tokens", type=int, default=None,
                        help="B x L of the training table (default 65536: batch 8 at L = 8192;"
                             " CPU: max length)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per cell")
    parser.add_argument("--longest-start", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None,
                        help="cap of the longest-L search (default 2^20; CPU: max --lengths)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="whole run (the last cell may overrun it by its own time)")
    parser.add_argument("--cell-s", type=float, default=60.0, help="one cell (all its steps)")
    add_output_options(parser, "gpu.csv")
    parser.add_argument("--num-layers", type=int, default=ARCHITECTURE["num_layers"],
                        help="training model depth (tests: fewer; default the paper's 6)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    args.train_lengths = args.train_lengths or (args.lengths if cpu else [8192, 32768, 131072])
    args.tokens = args.tokens or (max(args.lengths) if cpu else 131072)
    args.train_tokens = args.train_tokens or (max(args.train_lengths) if cpu else 65536)
    args.max_length = args.max_length or (max(args.lengths) if cpu else 2**20)
    args.longest_start = args.longest_start or min(args.train_lengths)
    budget = Budget(args.budget_s, args.cell_s)
    print(f"device {device}, torch {torch.__version__}, fla {fla_version()}", flush=True)
    rows = attention_rows(args, device, budget)
    rows += training_rows(args, device, budget)
    rows += longest_rows(args, device, budget)
    argv = list(sys.argv[1:] if argv is None else argv)
    csv = write_outputs(rows, device, argv, args.out_dir)
    print(f"wrote {csv} and {csv.parent / 'README.md'}", flush=True)
    return csv


if __name__ == "__main__":
    main()
