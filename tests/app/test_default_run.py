"""The default run validates its final weights once and prints each log line once."""

from __future__ import annotations

import logging

import lightning.pytorch as pl

from protperf.app.train import train
from protperf.cli.hydra_runtime import one_console_handler
from tests.model.conftest import compose_train


class CountValidations(pl.Callback):
    """Counts the validation runs (sanity checks excluded) of every Trainer it is given to."""

    runs = 0

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            CountValidations.runs += 1


def test_a_run_whose_last_step_was_validated_does_not_validate_again(tmp_path):
    CountValidations.runs = 0
    summary = train(compose_train(
        ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
         "+callbacks.count={_target_:tests.app.test_default_run.CountValidations}"],
        output_dir=tmp_path))
    assert CountValidations.runs == 1  # in fit, at step 2; its metrics are the summary's
    assert summary["step"] == 2 and summary["val_loss"] > 0


def test_the_final_weights_are_validated_when_fit_did_not(tmp_path):
    CountValidations.runs = 0
    summary = train(compose_train(
        ["trainer.max_steps=3", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
         "+callbacks.count={_target_:tests.app.test_default_run.CountValidations}"],
        output_dir=tmp_path))
    assert CountValidations.runs == 2  # step 2 in fit, then the final weights of step 3
    assert summary["step"] == 3


def test_lightning_prints_through_hydras_console_handler_only():
    root, lightning = logging.getLogger(), logging.getLogger("lightning")
    hydra_console, own = logging.StreamHandler(), logging.StreamHandler()
    root.addHandler(hydra_console)
    lightning.addHandler(own)
    try:
        one_console_handler()
        assert own not in lightning.handlers and lightning.propagate
        assert hydra_console in root.handlers
    finally:
        root.removeHandler(hydra_console)
        lightning.removeHandler(own)
