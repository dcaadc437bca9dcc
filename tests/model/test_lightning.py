"""LightningModule: loss/metrics, optimisation, feature redraw, schedule."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from protperf.model.lightning import ProteinLMModule
from protperf.model.loss import token_loss_and_accuracy
from protperf.model.schedule import warmup_decay_factor

TINY_MODEL = {"dim": 32, "num_heads": 2, "num_layers": 2, "ffn_dim": 64, "dropout": 0.0,
              "max_position": 64}


def mlm_batch(seed: int = 0, batch: int = 4, length: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 25, (batch, length), generator=g)
    masked = torch.rand(batch, length, generator=g) < 0.3
    masked[:, 0] = True
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    inputs = torch.where(masked, torch.ones_like(ids), ids)
    return {"input_ids": inputs, "labels": labels,
            "attention_mask": torch.ones(batch, length, dtype=torch.bool)}


def test_loss_and_accuracy_match_reference():
    logits = torch.randn(2, 5, 30)
    labels = torch.tensor([[7, -100, 9, -100, 3], [-100, -100, 12, 5, -100]])
    loss, correct, count = token_loss_and_accuracy(logits, labels)
    keep = labels != -100
    reference = F.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(loss, reference)
    assert count.item() == 5
    assert correct.item() == (logits[keep].argmax(-1) == labels[keep]).sum().item()


def test_loss_without_labels_is_zero_and_differentiable():
    logits = torch.randn(1, 4, 30, requires_grad=True)
    loss, correct, count = token_loss_and_accuracy(logits, torch.full((1, 4), -100))
    loss.backward()
    assert loss.item() == 0.0 and count.item() == 0 and correct.item() == 0


def test_warmup_then_cosine_schedule():
    assert warmup_decay_factor(0, 10, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert warmup_decay_factor(9, 10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert warmup_decay_factor(10, 10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert warmup_decay_factor(55, 10, 100, "cosine", 0.1) == pytest.approx(0.55)
    assert warmup_decay_factor(100, 10, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert warmup_decay_factor(55, 10, 100, "linear", 0.0) == pytest.approx(0.5)
    assert warmup_decay_factor(80, 10, 100, "constant", 0.0) == 1.0


@pytest.mark.parametrize("kind,objective", [("exact", "mlm"), ("favor_relu", "clm")])
def test_tiny_model_overfits_one_batch(kind, objective):
    """Loss on a single repeated batch falls at least 5x within 150 steps."""
    torch.manual_seed(0)
    module = ProteinLMModule(
        model={**TINY_MODEL, "attention": {"kind": kind, "num_features": 32,
                                           "redraw_interval": 0}},
        task={"objective": objective},
        optim={"lr": 3e-3, "warmup_steps": 5, "weight_decay": 0.0, "schedule": "constant"},
    )
    batch = mlm_batch()
    if objective == "clm":
        ids = batch["labels"].clamp(min=5)  # real tokens everywhere
        batch = {"input_ids": ids, "attention_mask": batch["attention_mask"],
                 "labels": torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)}
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    module.train()
    with torch.no_grad():
        first, _, _ = token_loss_and_accuracy(module(batch["input_ids"]), batch["labels"])
    for _ in range(150):
        loss, _, _ = token_loss_and_accuracy(
            module(batch["input_ids"], batch["attention_mask"]), batch["labels"]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first.item() > math.log(20) * 0.9  # starts near chance
    assert loss.item() < first.item() / 5, (first.item(), loss.item())


class CountingRedraws(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_train_start(self, trainer, pl_module) -> None:
        original = pl_module.model.redraw_features

        def counted() -> None:
            self.steps.append(trainer.global_step)
            original()

        pl_module.model.redraw_features = counted


def fit(module: pl.LightningModule, steps: int, callbacks=(), **kwargs) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
        **kwargs,
    )
    batches = [mlm_batch(seed) for seed in range(4)]
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return trainer


def test_features_are_redrawn_on_schedule():
    module = ProteinLMModule(
        model={**TINY_MODEL, "attention": {"kind": "favor_softmax", "num_features": 8,
                                           "redraw_interval": 3}},
        task={"objective": "mlm"},
    )
    counter = CountingRedraws()
    fit(module, steps=10, callbacks=[counter])
    assert counter.steps == [3, 6, 9]


def test_redraw_is_deterministic_in_seed_and_step():
    module = ProteinLMModule(model=TINY_MODEL, task={"objective": "mlm"}, seed=7)
    draws = []
    module.model.redraw_features = lambda: draws.append(torch.rand(3))
    module.redraw_features(step=1000)
    torch.rand(5)  # consuming the global RNG does not matter
    module.redraw_features(step=1000)
    module.redraw_features(step=2000)
    torch.testing.assert_close(draws[0], draws[1])
    assert not torch.allclose(draws[0], draws[2])


def test_no_redraw_when_interval_is_zero():
    module = ProteinLMModule(
        model={**TINY_MODEL, "attention": {"kind": "favor_relu", "redraw_interval": 0}},
        task={"objective": "mlm"},
    )
    counter = CountingRedraws()
    fit(module, steps=4, callbacks=[counter])
    assert counter.steps == []


def test_learning_rate_follows_warmup_and_decay():
    module = ProteinLMModule(
        model=TINY_MODEL, task={"objective": "mlm"},
        optim={"lr": 1e-3, "warmup_steps": 4, "schedule": "linear", "min_lr_ratio": 0.0},
    )
    trainer = fit(module, steps=8)
    optimizer = trainer.optimizers[0]
    # after 8 steps of an 8-step linear schedule the factor is (8 - 4) / 4 decayed -> 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert optimizer.param_groups[0]["weight_decay"] == 0.1
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert optimizer.defaults["betas"] == (0.9, 0.98)


def test_unigram_baseline_against_direct_computation():
    from protperf.reporting.baseline import label_counts, unigram_scores

    train_batch = {"labels": torch.tensor([[5, 5, 5, 6, -100], [7, 5, -100, -100, -100]])}
    eval_batch = {"labels": torch.tensor([[5, 6, 8, -100]])}
    train_counts = label_counts([train_batch], 30)
    eval_counts = label_counts([eval_batch], 30)
    assert train_counts[5].item() == 4 and train_counts.sum().item() == 6
    ppl, acc = unigram_scores(train_counts, eval_counts, smoothing=1.0)
    # support {5, 6, 7, 8}: smoothed counts 5, 2, 2, 1 over 10
    expected = math.exp(-(math.log(0.5) + math.log(0.2) + math.log(0.1)) / 3)
    assert ppl == pytest.approx(expected)
    assert acc == pytest.approx(1 / 3)
