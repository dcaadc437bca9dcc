"""Mixed precision with inputs of large norm: 20 training steps of every model x task give
finite losses and gradients.

bf16: Lightning's ``precision="bf16-mixed"`` on CPU.  fp16: Lightning turns ``"16-mixed"``
into bf16 on CPU, so float16 is tested with ``torch.autocast("cpu", torch.float16)`` and a
``GradScaler`` directly on the module (the GPU issue runs ``16-mixed`` through Lightning).
The token embeddings are scaled by :data:`SCALE` (a forward hook), so every block sees
activations of norm ~1e2-1e3 instead of ~0.1.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from protperf.data.collate import make_collator
from protperf.model.lightning import ProteinLMModule

SCALE = 1000.0
STEPS = 20
MODELS = {
    "transformer": {"name": "transformer", "attention": {"kind": "exact"}},
    "performer_softmax": {"name": "performer_softmax", "attention": {"kind": "favor_softmax"}},
    "performer_relu": {"name": "performer_relu", "attention": {"kind": "favor_relu"}},
}
TINY = {"dim": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32, "max_position": 64,
        "dropout": 0.0}


def _module(model: str, task: str) -> ProteinLMModule:
    config = {**TINY, **MODELS[model]}
    config["attention"] = {**config["attention"], "num_features": 16}
    module = ProteinLMModule(model=config, task={"objective": task},
                             optim={"lr": 1e-3, "warmup_steps": 1})
    module.model.token_embedding.register_forward_hook(lambda mod, args, out: out * SCALE)
    return module


def _batches(task: str, n: int = STEPS):
    generator = torch.Generator().manual_seed(0)
    examples = [torch.randint(4, 24, (int(torch.randint(10, 40, (1,), generator=generator)),),
                              generator=generator) for _ in range(4 * n)]
    return DataLoader(examples, batch_size=4, collate_fn=make_collator(task, seed=0))


class FiniteCheck(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.bad_gradients: list[str] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.bad_gradients += [name for name, p in pl_module.named_parameters()
                               if p.grad is not None and not torch.isfinite(p.grad).all()]


@pytest.mark.parametrize("task", ["mlm", "clm"])
@pytest.mark.parametrize("model", list(MODELS))
def test_bf16_mixed_training_stays_finite(model, task):
    check = FiniteCheck()
    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=STEPS,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[check], gradient_clip_val=0.5)
    torch.manual_seed(0)
    trainer.fit(_module(model, task), train_dataloaders=_batches(task))
    assert len(check.losses) == STEPS
    assert all(torch.isfinite(torch.tensor(check.losses))), check.losses
    assert not check.bad_gradients


@pytest.mark.parametrize("task", ["mlm", "clm"])
@pytest.mark.parametrize("model", list(MODELS))
def test_fp16_autocast_training_stays_finite(model, task):
    torch.manual_seed(0)
    module = _module(model, task)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu")
    losses = []
    for batch in _batches(task):
        with torch.autocast("cpu", dtype=torch.float16):
            logits = module(batch["input_ids"], batch["attention_mask"])
            loss = torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        for name, p in module.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert len(losses) == STEPS and all(torch.isfinite(torch.tensor(losses))), losses
