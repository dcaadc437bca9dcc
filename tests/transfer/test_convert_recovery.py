"""A conversion recovers what zero-shot FAVOR+ loses, on a model whose accuracy needs its
attention: an exact MLM trained to fill masked residues of proteins made of a repeated motif
(the answer sits one period away), then converted with few random features."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from protperf.checkpoint.load import load_model
from protperf.cli.compose import compose_config
from protperf.data.config import DataConfig
from protperf.training import train
from protperf.transfer import convert
from protperf.transfer.settings import ConvertSettings

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def repeats_fasta(path: Path, records: int = 800, motif: int = 8, copies: int = 4) -> Path:
    rng = random.Random(0)
    with open(path, "w") as handle:
        for index in range(records):
            unit = "".join(rng.choice(AMINO_ACIDS) for _ in range(motif))
            handle.write(f">rep{index}\n{unit * copies}\n")
    return path


@pytest.mark.slow
def test_conversion_recovers_over_zero_shot(tmp_path):
    fasta = repeats_fasta(tmp_path / "repeats.fasta")
    data = [f"data.path={fasta}", f"data.cache_dir={tmp_path / 'cache'}", "data.max_length=48",
            "data.num_workers=0"]
    summary = train(compose_config("train", [
        "model=transformer", "model.dim=32", "model.num_heads=2", "model.num_layers=2",
        "model.ffn_dim=64", "model.max_position=64", "model.dropout=0.0", *data,
        "data.batch_size=16", "trainer.max_steps=300", "trainer.val_check_interval=300",
        "optim.lr=3e-3", "optim.warmup_steps=20", "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar", "trainer.enable_model_summary=false",
        f"output_dir={tmp_path / 'exact'}"]))
    assert summary["val_acc"] > 0.6  # the exact model uses its attention
    result = convert(summary["checkpoint"], tmp_path / "performer.ckpt",
                     DataConfig(path=str(fasta), cache_dir=str(tmp_path / "cache"),
                                max_length=48, batch_size=4, num_workers=0),
                     {"kind": "favor_softmax", "num_features": 16},
                     ConvertSettings(target_recovery=None),
                     trainer={"max_steps": 100, "val_check_interval": 25})
    zero_shot = result.zero_shot.accuracy / result.exact.accuracy
    assert zero_shot < 0.6  # sharp attention, 16 features: FAVOR+ alone loses most of it
    assert result.recovery > zero_shot + 0.2
    assert result.best.step > 0
    # the same conversion in bf16 mixed precision (what a GPU run uses; Lightning's CPU
    # autocast here): as good as float32, and the output holds float32 weights
    bf16 = convert(summary["checkpoint"], tmp_path / "performer_bf16.ckpt",
                   DataConfig(path=str(fasta), cache_dir=str(tmp_path / "cache"),
                              max_length=48, batch_size=4, num_workers=0),
                   {"kind": "favor_softmax", "num_features": 16},
                   ConvertSettings(target_recovery=None),
                   trainer={"max_steps": 100, "val_check_interval": 25,
                            "precision": "bf16-mixed"})
    assert bf16.recovery > zero_shot + 0.2
    assert abs(bf16.recovery - result.recovery) < 0.1, (bf16.recovery, result.recovery)
    weights = load_model(tmp_path / "performer_bf16.ckpt").state_dict()
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
    float32 = load_model(tmp_path / "performer.ckpt").state_dict()
    name = "blocks.0.attn.q_proj.weight"  # trained under autocast: not float32's steps
    assert bf16.best.step > 0 and not torch.equal(weights[name], float32[name])
