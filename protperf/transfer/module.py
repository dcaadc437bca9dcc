"""Lightning glue of a conversion: the student Performer, its exact teacher, the two stages,
and validation against the teacher. The math is :mod:`protperf.transfer.finetune`'s.

Training steps ``0 .. max_steps - polish_steps - 1`` minimise
:func:`~protperf.transfer.finetune.attention_transfer_loss` (label-free); the last
``convert.polish_steps`` minimise the source objective's token loss
(:func:`~protperf.transfer.finetune.mlm_loss`: cross-entropy on the batch's labels, masked
residues for MLM sources, next tokens for causal ones). Only
:func:`~protperf.transfer.finetune.trainable_parameters` train. The student stays in eval
mode (no dropout, random features fixed) and uses no randomness of its own, so a resumed run
(``ckpt_path``) continues exactly.

Validation scores the Performer on the validation batches (``val/loss``, ``val/acc``,
``val/ppl``: token-level, as training and ``protperf-evaluate`` report them), the exact
teacher once (``val/exact_acc``, ``val/exact_ppl``, kept in checkpoints) and
``val/recovery`` = Performer accuracy / exact accuracy. The best validated step's trained
weights are kept (in memory and in checkpoints) for the output; reaching
``convert.target_recovery`` stops training.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from protperf.model.loss import token_loss_and_accuracy
from protperf.model.schedule import warmup_decay_factor
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer.finetune import attention_transfer_loss, mlm_loss, trainable_parameters
from protperf.transfer.settings import ConvertSettings
from protperf.transfer.teacher import exact_teacher

#: Checkpoint key of the conversion's state (exact score, zero-shot and best step).
STATE_KEY = "protperf_convert"


@dataclass
class Score:
    """Token accuracy and perplexity on the validation split at ``step`` (train CPU seconds
    spent by then: ``cpu_s``)."""

    step: int
    accuracy: float
    perplexity: float
    cpu_s: float = 0.0


class ConversionModule(pl.LightningModule):
    """Trains ``model`` (a Performer holding an exact model's weights) to match that exact
    model (see the module docstring). ``model.config`` is the Performer's architecture;
    ``hyper_parameters``: what its checkpoints record (as a training checkpoint's: ``model``,
    ``task``, ``alphabet``, ``seed``, ...), so that a run's ``last.ckpt`` loads like any."""

    def __init__(self, model: ProteinLanguageModel, settings: ConvertSettings,
                 hyper_parameters: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters(hyper_parameters)
        self.model = model
        self.model_config = model.config  # what the runtime's callbacks read
        self.settings = settings
        model.requires_grad_(False)
        for parameter in trainable_parameters(model, settings.trainable):
            parameter.requires_grad_(True)
        trained = [p for p in model.parameters() if p.requires_grad]
        teacher, self.frozen = exact_teacher(model, trained)
        self.__dict__["teacher"] = teacher  # not a submodule: its weights are the student's
        self.metrics = torch.nn.ModuleDict({name: MeanMetric() for name in
                                            ("loss", "acc", "exact_loss", "exact_acc")})
        self.exact: Score | None = None
        self.zero_shot: Score | None = None
        self.best: Score | None = None
        self.best_state: dict[str, torch.Tensor] = {}
        self.latest: Score | None = None
        self.target_reached = False
        self.train_cpu_s = 0.0
        self._batch_cpu_start = 0.0

    # -- training ---------------------------------------------------------------------------
    def stage(self, step: int) -> str:
        """``transfer`` or ``polish`` at optimizer step ``step``."""
        total = self.trainer.max_steps
        return "polish" if 0 < total - self.settings.polish_steps <= step else "transfer"

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.model.eval()  # Lightning sets train mode after validation: no dropout, no redraw
        self._batch_cpu_start = time.process_time()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.stage(self.global_step) == "transfer":
            loss = attention_transfer_loss(self.model, self.teacher, batch)
        else:
            loss = mlm_loss(self.model, batch)
        self.log("train/loss", loss, on_step=True, prog_bar=True,
                 batch_size=batch["input_ids"].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.train_cpu_s += time.process_time() - self._batch_cpu_start

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.settings
        optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                      lr=s.lr, weight_decay=0.0)
        total = self.trainer.max_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_decay_factor(step, s.warmup_steps, total, s.schedule,
                                                        s.min_lr_ratio))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"}}

    # -- validation -------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._update("", self.model, batch)
        if self.exact is None:
            self._update("exact_", self.teacher, batch)

    def _update(self, prefix: str, network: ProteinLanguageModel,
                batch: dict[str, torch.Tensor]) -> None:
        logits = network(batch["input_ids"], attention_mask=batch["attention_mask"])
        loss, correct, count = token_loss_and_accuracy(logits, batch["labels"])
        tokens = count.clamp(min=1).float()
        self.metrics[f"{prefix}loss"].update(loss, weight=tokens)
        self.metrics[f"{prefix}acc"].update(correct.float() / tokens, weight=tokens)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.metrics["loss"].update_called:
            return
        step = self.global_step
        if self.exact is None:
            self.exact = self._compute("exact_", step)
        score = self._compute("", step)
        recovery = score.accuracy / self.exact.accuracy if self.exact.accuracy > 0 else math.nan
        values = {"loss": math.log(score.perplexity), "acc": score.accuracy,
                  "ppl": score.perplexity, "exact_acc": self.exact.accuracy,
                  "exact_ppl": self.exact.perplexity, "recovery": recovery}
        for name, value in values.items():
            self.log(f"val/{name}", value, prog_bar=name in ("acc", "recovery"))
        self.latest = score
        if step == 0 and self.zero_shot is None:
            self.zero_shot = score
        if self.best is None or score.accuracy > self.best.accuracy:
            self.best = score
            self.best_state = {name: p.detach().cpu().clone()
                               for name, p in self.model.named_parameters() if p.requires_grad}
        target = self.settings.target_recovery
        if step > 0 and target is not None and recovery >= target:
            self.target_reached = True
            self.trainer.should_stop = True

    def _compute(self, prefix: str, step: int) -> Score:
        loss, accuracy = self.metrics[f"{prefix}loss"], self.metrics[f"{prefix}acc"]
        score = Score(step, float(accuracy.compute()), math.exp(float(loss.compute())),
                      self.train_cpu_s)
        with torch.inference_mode(False):  # fresh states usable by fit's validation too
            loss.reset()
            accuracy.reset()
        return score

    def recovery(self, score: Score | None) -> float:
        """``score``'s accuracy / the exact accuracy (nan before both are known)."""
        if score is None or self.exact is None or self.exact.accuracy <= 0:
            return math.nan
        return score.accuracy / self.exact.accuracy

    @torch.no_grad()
    def load_best(self) -> None:
        """Put the best validated step's trained weights into the model."""
        parameters = dict(self.model.named_parameters())
        for name, value in self.best_state.items():
            parameters[name].copy_(value.to(parameters[name]))

    # -- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STATE_KEY] = {
            "exact": _plain(self.exact), "zero_shot": _plain(self.zero_shot),
            "best": _plain(self.best), "best_state": dict(self.best_state),
            "train_cpu_s": self.train_cpu_s,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(STATE_KEY, {})
        self.exact, self.zero_shot, self.best = (
            _score(state.get(name)) for name in ("exact", "zero_shot", "best"))
        self.best_state = dict(state.get("best_state", {}))
        self.train_cpu_s = float(state.get("train_cpu_s", 0.0))


def _plain(score: Score | None) -> dict[str, float] | None:
    return None if score is None else dict(vars(score))


def _score(values: dict[str, float] | None) -> Score | None:
    return None if values is None else Score(int(values["step"]), float(values["accuracy"]),
                                             float(values["perplexity"]),
                                             float(values.get("cpu_s", 0.0)))
