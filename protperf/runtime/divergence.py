"""Non-finite and diverging training: stop (or skip the batch) before a weight goes bad, and
warn when the validation loss is worse than knowing nothing.

:class:`DivergenceGuard` checks every optimizer step before it is taken: a training loss or a
gradient norm that is NaN or inf skips the update (the gradients are dropped, so no weight
changes; the step still counts) while fewer than ``skip_nonfinite_batches`` batches were skipped
in the run, and otherwise stops the run with :class:`~protperf.errors.TrainingDivergedError`
naming the step (``error: ...``, exit 2).  With a loss scaler (``precision=16-mixed``)
non-finite gradients are the scaler's business (it skips that step and lowers the scale); only
the loss is checked.  The policy is ``divergence.*`` of the training config
(:class:`protperf.cli.config.DivergenceConfig`).  The checkpoint writer refuses non-finite
weights as well (:class:`~protperf.checkpoint.lightning_io.AtomicCheckpointIO`), so a finite
``last.ckpt`` or best checkpoint is never replaced by a diverged one.

A finite but diverging run is warned about at each validation: a model that outputs equal
logits for every token has loss ``ln(vocab_size)``; a validation loss more than
``warn_nats_above_uniform`` nats above that (perplexity more than ``e`` times that of uniform
guessing, with the default 1) is worse than knowing nothing about proteins.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
import torch

from protperf.errors import TrainingDivergedError
from protperf.runtime.run_dir import newest_checkpoint

log = logging.getLogger(__name__)


def uniform_loss(vocab_size: int) -> float:
    """Cross-entropy (nats) of a model that gives every one of ``vocab_size`` tokens equal
    probability."""
    return math.log(vocab_size)


def is_diverging(val_loss: float, vocab_size: int, margin_nats: float) -> bool:
    """True if ``val_loss`` is non-finite or more than ``margin_nats`` above uniform guessing."""
    return not math.isfinite(val_loss) or val_loss > uniform_loss(vocab_size) + margin_nats


def gradient_norm(module: torch.nn.Module) -> torch.Tensor:
    """The 2-norm of all gradients of ``module`` (0 without gradients)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False)


def what_next(run_dir: str | None) -> str:
    """What to do after a non-finite stop: resume from the run's newest checkpoint with a
    lower learning rate, or start again when none was written yet."""
    change = "lower optim.lr or set trainer.gradient_clip_val"
    newest = newest_checkpoint(run_dir) if run_dir else None
    if newest is None:
        return f"{change}, then start again (no checkpoint was written yet)"
    return f"{change}, then resume from {newest} (ckpt_path=last)"


class DivergenceGuard(pl.Callback):
    """Stop or skip on non-finite training numbers; warn on diverging validation (see module)."""

    def __init__(self, skip_nonfinite_batches: int = 0,
                 warn_nats_above_uniform: float = 1.0) -> None:
        self.skip_nonfinite_batches = skip_nonfinite_batches
        self.warn_nats_above_uniform = warn_nats_above_uniform
        self.skipped = 0  # batches skipped so far in this run (kept in checkpoints)
        self._bad_loss: float | None = None
        self._warned_step: int | None = None  # one warning per step (scheduled + final)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if not math.isfinite(value) and self._bad_loss is None:
            self._bad_loss = value

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        bad_loss, self._bad_loss = self._bad_loss, None
        what = None
        if bad_loss is not None:
            what = f"training loss is {bad_loss}"
        elif getattr(trainer.precision_plugin, "scaler", None) is None:
            norm = float(gradient_norm(pl_module))
            if not math.isfinite(norm):
                what = f"gradient norm is {norm}"
        if what is None:
            return
        step = trainer.global_step
        if self.skipped >= self.skip_nonfinite_batches:
            raise TrainingDivergedError(
                f"{what} at step {step}: stopping before any weight becomes non-finite "
                f"({self.skipped} of divergence.skip_nonfinite_batches="
                f"{self.skip_nonfinite_batches} bad batches skipped); "
                f"{what_next(getattr(trainer, 'default_root_dir', None))}")
        self.skipped += 1
        for param in pl_module.parameters():
            param.grad = None  # the optimizer skips parameters without a gradient
        log.warning("%s at step %d: batch skipped, no update (%d of "
                    "divergence.skip_nonfinite_batches=%d)", what, step, self.skipped,
                    self.skip_nonfinite_batches)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/loss" not in trainer.callback_metrics \
                or trainer.global_step == self._warned_step:
            return
        vocab_size = int(pl_module.model_config.vocab_size)
        val_loss = float(trainer.callback_metrics["val/loss"])
        if is_diverging(val_loss, vocab_size, self.warn_nats_above_uniform):
            self._warned_step = trainer.global_step
            log.warning(
                "training is diverging: val/loss=%.4g at step %d is more than %g nats above "
                "uniform guessing (ln %d = %.3f); lower optim.lr or set "
                "trainer.gradient_clip_val", val_loss, trainer.global_step,
                self.warn_nats_above_uniform, vocab_size, uniform_loss(vocab_size))

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
