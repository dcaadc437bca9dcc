"""The metrics of the last validation during ``fit``, so that a run whose final step was just
validated does not validate the same weights a second time."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn


class ValidationRecord(pl.Callback):
    """Keeps the ``val/*`` metrics of the latest validation in ``fit`` and its step."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.metrics: dict[str, float] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self.step = trainer.global_step
        self.metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                        if key.startswith("val/")}

    def metrics_at(self, step: int) -> dict[str, float] | None:
        """The recorded metrics if the latest validation ran at ``step``, else None."""
        return dict(self.metrics) if self.step == step and self.metrics else None
