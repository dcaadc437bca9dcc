"""``BatchRecorder``: a debugging callback that records, per DDP rank, what each training batch
contained and which checkpoint files that rank actually wrote.

Use it to check sharding on a real multi-process run (no data is duplicated across ranks) and
that only rank 0 writes checkpoints::

    python scripts/train.py trainer=ddp \\
        '+callbacks.batch_record={_target_:protperf.runtime.batch_record.BatchRecorder,dirpath:batch_records}'

Each rank writes ``<dirpath>/rank<global rank>.jsonl``: one line per training batch
(``{"kind": "batch", "rank", "epoch", "step", "rows": [sha1 of each row's real tokens],
"tokens": [real tokens per row]}``) and one per checkpoint file written by that rank
(``{"kind": "checkpoint_write", "rank", "path"}``).  Rows are identified by the SHA-1 of their
unpadded original token ids (for ``task=mlm`` the masked positions are restored from the
labels), so the same example hashes the same on every rank and epoch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch


def row_digests(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[str]:
    """SHA-1 hex digest of each row's real (unpadded) tokens.

    ``input_ids, attention_mask: (B, L)`` -> B digests."""
    digests = []
    for ids, mask in zip(input_ids.cpu(), attention_mask.cpu(), strict=True):
        tokens = ids[mask].to(torch.int64).numpy()
        digests.append(hashlib.sha1(tokens.tobytes()).hexdigest())
    return digests


class BatchRecorder(pl.Callback):
    """Append one JSON line per training batch and per checkpoint write to
    ``<dirpath>/rank<global rank>.jsonl`` (see the module docstring)."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._file is not None:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        self._file = open(self.dirpath / f"rank{rank}.jsonl", "a")  # noqa: SIM115 - kept open
        checkpoint_io = trainer.strategy.checkpoint_io
        save = checkpoint_io.save_checkpoint

        def recording_save(checkpoint, path, storage_options=None):
            self._write({"kind": "checkpoint_write", "rank": rank, "path": str(path)})
            return save(checkpoint, path, storage_options=storage_options)

        checkpoint_io.save_checkpoint = recording_save  # instance attribute: this run only

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        mask, tokens = batch["attention_mask"], batch["input_ids"]
        task = getattr(pl_module, "task_config", None)
        if getattr(task, "objective", None) == "mlm":  # undo the masking: labelled = original
            labels = batch["labels"]
            tokens = torch.where(labels >= 0, labels, tokens)
        self._write({
            "kind": "batch",
            "rank": trainer.global_rank,
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "rows": row_digests(tokens, mask),
            "tokens": mask.sum(dim=1).tolist(),
        })


def read_records(dirpath: str | Path) -> list[dict[str, Any]]:
    """All records of all ranks in ``dirpath`` (``rank*.jsonl``)."""
    records = []
    for path in sorted(Path(dirpath).glob("rank*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return records
