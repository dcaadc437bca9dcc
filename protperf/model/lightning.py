"""Lightning glue: loss/metrics, AdamW + warm-up schedule, random-feature redraw.

The module's hyper-parameters are plain dicts of primitives (the ``model``, ``task`` and
``optim`` config sections plus the alphabet), so checkpoints load with
``torch.load(..., weights_only=True)`` and carry everything needed to rebuild the model.

Resuming is exact: the global torch generator (dropout) is reseeded before every training
batch from ``(seed, epoch, batch, rank)`` and the epoch's running train metrics are saved in
the checkpoint, so a run resumed mid-epoch trains and logs what the uninterrupted run did.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from protperf import __version__
from protperf.data.alphabet import ALPHABET
from protperf.data.resume import batch_seed
from protperf.model.compat import check_compatible
from protperf.model.config import ModelConfig, OptimConfig, TaskConfig
from protperf.model.loss import token_loss_and_accuracy
from protperf.model.schedule import warmup_decay_factor
from protperf.model.transformer import ProteinLanguageModel
from protperf.structured import to_dataclass, to_plain

STAGES = ("train", "val", "test")
#: Checkpoint key of the running (epoch) train metric states.
METRIC_STATE_KEY = "protperf_train_metrics"


class ProteinLMModule(pl.LightningModule):
    """Trains :class:`ProteinLanguageModel` on MLM (``task.objective=mlm``) or CLM batches.

    Batches are dicts with ``input_ids`` (B, L) int64, ``labels`` (B, L) int64 (-100 =
    ignored) and ``attention_mask`` (B, L) bool.  Logged metrics, per step (train) and per
    epoch (all stages): ``{stage}/loss`` (mean NLL over labelled tokens), ``{stage}/acc`` and
    ``{stage}/ppl`` (exp of the token-weighted mean loss).

    ``model`` / ``task`` / ``optim`` are the config dataclasses (or their plain dicts, as a
    checkpoint holds them); the hyper-parameters are stored as plain primitives.
    """

    def __init__(
        self,
        model: ModelConfig | dict[str, Any],
        task: TaskConfig | dict[str, Any],
        optim: OptimConfig | dict[str, Any] | None = None,
        seed: int = 0,
        alphabet: list[str] | None = None,
        protperf_version: str = __version__,
    ) -> None:
        super().__init__()
        self.model_config: ModelConfig = to_dataclass(ModelConfig, model, "model")
        self.task_config: TaskConfig = to_dataclass(TaskConfig, task, "task")
        self.optim_config: OptimConfig = to_dataclass(OptimConfig, optim or {}, "optim")
        # Store the complete, validated configs as plain primitives (weights_only-loadable).
        model, task, optim = (
            to_plain(c) for c in (self.model_config, self.task_config, self.optim_config)
        )
        if alphabet is None:
            alphabet = list(ALPHABET.tokens)
        self.save_hyperparameters()
        self.model = ProteinLanguageModel(
            self.model_config, causal=self.task_config.causal
        )
        self.metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{name}": MeanMetric()
                for stage in STAGES
                for name in ("loss", "acc")
            }
        )
        self._last_redraw_step = -1

    # -- forward and loss -------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, L) ids -> (B, L, vocab) logits; ``segment_ids`` (B, L) keep attention within
        each protein of a packed window."""
        return self.model(input_ids, attention_mask, segment_ids=segment_ids)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch.get("attention_mask"), batch.get("segment_ids"))
        loss, correct, count = token_loss_and_accuracy(logits, batch["labels"])
        tokens = count.clamp(min=1).float()
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight=tokens)
        self.metrics[f"{stage}_acc"].update(correct.float() / tokens, weight=tokens)
        if stage == "train":
            batch_size = batch["input_ids"].shape[0]
            self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=batch_size)
            self.log("train/acc", correct.float() / tokens, on_step=True, batch_size=batch_size)
            self.log("train/ppl", loss.detach().exp(), on_step=True, batch_size=batch_size)
            self.log("train/tokens", count.float(), on_step=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        loss_metric, acc_metric = self.metrics[f"{stage}_loss"], self.metrics[f"{stage}_acc"]
        if not loss_metric.update_called:
            return
        # compute() already reduces over DDP ranks; sync_dist averages equal values (no-op)
        loss, accuracy = loss_metric.compute(), acc_metric.compute()
        suffix = "_epoch" if stage == "train" else ""
        for name, value in (("loss", loss), ("acc", accuracy), ("ppl", loss.exp())):
            self.log(f"{stage}/{name}{suffix}", value, prog_bar=stage != "train", sync_dist=True)
        loss_metric.reset()
        acc_metric.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- random features --------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # dropout (every device's generator): the same masks for this batch after a resume
        torch.manual_seed(batch_seed(int(self.hparams.seed), self.current_epoch, batch_idx,
                                     self.global_rank))
        interval = self.model_config.attention.redraw_interval
        step = self.global_step
        if interval > 0 and step > 0 and step % interval == 0 and step != self._last_redraw_step:
            self.redraw_features(step)
            self._last_redraw_step = step

    @torch.no_grad()
    def redraw_features(self, step: int) -> None:
        """Redraw every attention module's random features from a generator seeded by
        (seed, step): identical on every DDP rank and after resuming from a checkpoint."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.hparams.seed) * 1_000_003 + step)
            self.model.redraw_features()

    # -- optimizer --------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_config
        decay, no_decay = [], []
        for param in self.model.parameters():
            if param.requires_grad:
                (decay if param.dim() >= 2 else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=tuple(cfg.betas),
            eps=cfg.eps,
        )
        total = self.trainer.max_steps
        if total is None or total < 0:
            total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_decay_factor(
                step, cfg.warmup_steps, total, cfg.schedule, cfg.min_lr_ratio
            ),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"},
        }

    # -- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the running train metrics of the epoch (not part of the state_dict), of every
        DDP rank: ``(world_size,)`` tensors (every rank calls this; rank 0 writes)."""
        checkpoint[METRIC_STATE_KEY] = {
            name: {state: self._gather_ranks(getattr(self.metrics[name], state))
                   for state in self.metrics[name]._defaults}
            for name in ("train_loss", "train_acc")
        }

    def _gather_ranks(self, value: torch.Tensor) -> torch.Tensor:
        value = value.detach().reshape(1)
        if self.trainer.world_size > 1:
            value = self.all_gather(value).reshape(-1)
        return value.cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fail clearly if the checkpoint's alphabet or architecture differs from this model;
        restore this rank's running train metrics of the epoch (with another number of ranks,
        rank 0 takes their sum and the others start empty: the same epoch mean)."""
        check_compatible(checkpoint.get("hyper_parameters", {}), self.hparams, source="checkpoint")
        rank, world_size = self.global_rank, self.trainer.world_size if self._trainer else 1
        for name, states in checkpoint.get(METRIC_STATE_KEY, {}).items():
            metric = self.metrics[name]
            for state, saved in states.items():
                saved = saved.reshape(-1)
                if len(saved) == world_size:
                    value = saved[rank]
                else:
                    value = saved.sum() if rank == 0 else torch.zeros_like(saved[0])
                current = getattr(metric, state)
                value = value.to(current.device, current.dtype).reshape(current.shape)
                setattr(metric, state, value)
            metric._update_count = int(float(getattr(metric, "weight", torch.ones(()))) > 0)
