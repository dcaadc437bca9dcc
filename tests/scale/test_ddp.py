"""trainer=ddp: two real CPU processes (gloo) through scripts/train.py."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import torch

from protperf.data.config import DataConfig, PrepareConfig
from protperf.data.datamodule import ProteinDataModule
from protperf.runtime.batch_record import read_records, row_digests
from tests.scale.conftest import TINY, run_script

WINDOW = 256
RECORDER = ("+callbacks.batch_record={_target_:protperf.runtime.batch_record.BatchRecorder,"
            "dirpath:batch_records}")


def _small_fasta(path, n=120):
    """n random proteins of 20-80 residues (about 20 windows of 256 tokens)."""
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    path.write_text("".join(
        f">P{i}\n{''.join(rng.choice(letters, size=int(rng.integers(20, 80))))}\n"
        for i in range(n)))
    return path


def test_ddp_two_processes_split_one_epoch_and_write_checkpoints_once(tmp_path):
    """One full epoch of packed windows over 2 ranks x 2 dataloader workers: the ranks see
    disjoint windows that together are the epoch's windows minus fewer than 2 (the even_ranks
    cut), and only rank 0 writes checkpoint files."""
    fasta = _small_fasta(tmp_path / "small.fasta")
    data = [f"data.path={fasta}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.prepare.valid_fraction=0.1", "data.prepare.test_fraction=0.0"]
    result = run_script("train.py", [*data,
        *TINY, "trainer=ddp", "task=clm", "model=performer_relu",
        "data.concatenate=true", f"data.window={WINDOW}", f"model.max_position={WINDOW}",
        "data.batch_size=2", "data.num_workers=2",
        "trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.val_check_interval=1.0",
        "trainer.check_val_every_n_epoch=1", "trainer.limit_val_batches=1",
        "callbacks.last_checkpoint.every_n_train_steps=2",
        RECORDER, "hydra.run.dir=run",
    ], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    records = read_records(tmp_path / "batch_records")
    batches = [r for r in records if r["kind"] == "batch"]
    by_rank = {rank: [r for r in batches if r["rank"] == rank] for rank in (0, 1)}
    assert len(by_rank[0]) == len(by_rank[1]) > 0  # equal steps per rank (no DDP hang)
    assert {r["epoch"] for r in batches} == {0}
    rows = {rank: Counter(d for r in rs for d in r["rows"]) for rank, rs in by_rank.items()}

    # the epoch's windows, built independently on one process (seed and epoch as in training)
    config = DataConfig(path=str(fasta), cache_dir=str(tmp_path / "cache"),
                        prepare=PrepareConfig(valid_fraction=0.1, test_fraction=0.0),
                        concatenate=True, window=WINDOW, num_workers=0)
    datamodule = ProteinDataModule(config, "clm")
    datamodule.setup()
    dataset = datamodule.dataset("train", train=True)
    dataset.set_epoch(0)
    windows = torch.stack(list(dataset))
    expected = Counter(row_digests(windows, windows != 0))  # pad id 0
    assert len(windows) == dataset.num_windows
    assert sum(expected.values()) == len(expected)  # all windows distinct

    seen = rows[0] + rows[1]
    assert not (set(rows[0]) & set(rows[1]))  # the ranks' data is disjoint
    assert max(seen.values()) == 1  # nothing seen twice
    assert set(seen) <= set(expected)  # only real windows of this epoch
    missing = set(expected) - set(seen)
    assert len(missing) == dataset.num_windows % 2 < 2
    tokens = sum(t for r in batches for t in r["tokens"])
    assert dataset.total_tokens - WINDOW < tokens <= dataset.total_tokens

    # checkpoints: written by rank 0 only, one file per name
    writes = [r for r in records if r["kind"] == "checkpoint_write"]
    assert writes and {w["rank"] for w in writes} == {0}
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and len(checkpoints) == 2, checkpoints  # + best
    steps = len(by_rank[0])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == steps
    metrics = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")
    assert metrics["step"].max() == steps - 1 or metrics["step"].max() == steps

