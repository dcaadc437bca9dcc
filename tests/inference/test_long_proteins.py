"""Long proteins: an ESM-2-architecture (rotary) model run as a Performer embeds a protein of
tens of thousands of residues in one forward pass; scripts/benchmark_long_proteins.py writes
its rows (its timings are not checked)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from protperf import export_model
from protperf.inference import Embedder, load_model
from tests.inference.conftest import REPO
from tests.inference.test_export import save_checkpoint

BENCHMARK = REPO / "scripts" / "benchmark_long_proteins.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_long_proteins", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def esm2_like_directory(tmp_path_factory):
    """A tiny exact-attention model of ESM-2's architecture, exported."""
    from protperf.attention import AttentionConfig
    from protperf.model.config import ModelConfig
    from protperf.model.transformer import ProteinLanguageModel

    torch.manual_seed(0)
    config = ModelConfig(dim=32, num_heads=4, num_layers=2, ffn_dim=64, dropout=0.0,
                         position="rotary", max_position=1026, norm_placement="pre",
                         final_norm=True, lm_head_transform=True, token_dropout=True,
                         attention=AttentionConfig(kind="exact", num_features=32))
    root = tmp_path_factory.mktemp("long")
    checkpoint = save_checkpoint(ProteinLanguageModel(config, causal=False), root / "esm.ckpt")
    return export_model(checkpoint, root / "esm-exported")


def embed_in_one_pass(directory, kind: str, length: int):
    model = load_model(directory, model_overrides={"attention": {"kind": kind}})
    passes = []
    model.blocks[0].register_forward_hook(lambda *_: passes.append(1))
    residues = load_benchmark().protein(length)
    embedding = Embedder(model, layers=[-1], include=["mean", "per_tok"],
                         toks_per_batch=4096).embed_one(residues)
    return embedding, len(passes)


@pytest.mark.parametrize("kind", ["favor_relu", "favor_softmax"])
def test_performer_embeds_50000_residues_in_one_pass(esm2_like_directory, kind):
    """A second or two per kind with a tiny model (linear time and memory in L)."""
    embedding, passes = embed_in_one_pass(esm2_like_directory, kind, 50_000)
    assert passes == 1
    assert embedding.embedded_length == embedding.length == 50_000
    assert embedding.per_tok[2].shape == (50_000, 32) and np.isfinite(embedding.per_tok[2]).all()


class ListQueue(list):
    put = list.append


def test_benchmark_cell_in_process(tmp_path):
    benchmark = load_benchmark()
    directory = benchmark.write_model(tmp_path, num_features=16)
    config = load_model(directory).config
    assert (config.dim, config.num_heads, config.num_layers, config.ffn_dim) == (320, 20, 6, 1280)
    rows = ListQueue()
    threads = torch.get_num_threads()
    try:
        for method in ("exact", "favor_relu"):
            benchmark.measure(str(directory), method, 300, 1, 0, rows)
    finally:
        torch.set_num_threads(threads)
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert all(row["forward_passes"] == 1 and row["time_s"] > 0 for row in rows)
