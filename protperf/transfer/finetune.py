"""Two ways to recover a Performer converted from a pretrained Transformer.

``mlm``: fine-tune every weight of the Performer on the masked-LM loss (labels needed).

``transfer`` (attention transfer, after LoLCATs, Zhang et al. 2024; Hedgehog, Zhang et al.
2024, trains feature maps to mimic softmax attention): the same weights with exact attention
are a frozen teacher. One teacher pass records every attention layer's input and output
(:func:`protperf.transfer.conversion.attention_io`); each Performer attention layer, fed the
teacher's input, is trained to reproduce the teacher's output, layer by layer, with no labels.
The loss is the relative squared error sum ||y - y_T||^2 / sum ||y_T||^2 over real tokens,
averaged over layers. Only the query and key projections train: they are all that decides
*where* a head looks (values and output projection say *what* it copies, and stay the
teacher's), and a learned linear map in front of the fixed random features, phi(W' W_q x),
folds into W_q, so the converted model stays an ordinary checkpoint. The layers learn
independently from the teacher's inputs (cheap: no backward pass through the feed-forward
networks), so errors that compound through the stack are not trained against.

Random features stay fixed while training (no redraw) and are the ones evaluated; dropout is
off in both recipes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from protperf.data.collate import MLMCollator
from protperf.errors import ConfigError, config_key
from protperf.model.loss import token_loss_and_accuracy
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer.conversion import attention_io
from protperf.transfer.evaluation import encode_sequences, masked_lm_score

RECIPES = ("mlm", "transfer")
TRAINABLE = ("all", "qk")


@dataclass
class RecoveryConfig:
    """recipe: ``mlm`` or ``transfer``; trainable: ``all`` weights or the ``qk`` projections
    (None: the recipe's own, ``all`` for mlm and ``qk`` for transfer); lr: AdamW learning
    rate after a linear warm-up of ``warmup_steps`` (None: 1e-4 for mlm, 1e-3 for transfer);
    eval_every: score the test batches every this many steps (and at 0 and the end)."""

    recipe: str = "transfer"
    steps: int = 100
    batch_size: int = 4
    lr: float | None = None
    warmup_steps: int = 10
    eval_every: int = 25
    trainable: str | None = None
    seed: int = 0

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`ConfigError` naming the full key of an invalid value."""
        if self.recipe not in RECIPES:
            raise ConfigError(f"{config_key(prefix, 'recipe')}={self.recipe!r} is not one of "
                              f"{', '.join(RECIPES)}")
        if self.trainable is not None and self.trainable not in TRAINABLE:
            raise ConfigError(f"{config_key(prefix, 'trainable')}={self.trainable!r} is not one "
                              f"of {', '.join(TRAINABLE)}")
        for name, least in (("steps", 0), ("batch_size", 1), ("eval_every", 1)):
            if getattr(self, name) < least:
                raise ConfigError(f"{config_key(prefix, name)} must be >= {least}, "
                                  f"got {getattr(self, name)}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else {"mlm": 1e-4, "transfer": 1e-3}[self.recipe]

    @property
    def trained(self) -> str:
        return self.trainable or {"mlm": "all", "transfer": "qk"}[self.recipe]


@dataclass(frozen=True)
class CurvePoint:
    """The student after ``step`` optimizer steps: test accuracy / perplexity, the mean
    training loss of the steps since the previous point, and the training seconds so far."""

    step: int
    accuracy: float
    perplexity: float
    train_loss: float
    train_s: float


def trainable_parameters(model: ProteinLanguageModel, which: str) -> list[torch.nn.Parameter]:
    """``all`` parameters, or the weights and biases of every query and key projection."""
    if which == "all":
        return list(model.parameters())
    return [p for attn in model.attention_modules()
            for p in (*attn.q_proj.parameters(), *attn.k_proj.parameters())]


def attention_transfer_loss(
    student: ProteinLanguageModel, teacher: ProteinLanguageModel, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Mean over layers of sum ||y - y_T||^2 / sum ||y_T||^2 over real tokens, where y_T is the
    teacher layer's output and y the student layer's output on the teacher layer's input."""
    _, calls = attention_io(teacher, batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"][..., None].to(calls[0].output.dtype)
    losses = []
    for attn, call in zip(student.attention_modules(), calls, strict=True):
        out = attn(*call.args, **call.kwargs)
        error = ((out - call.output) ** 2 * real).sum()
        losses.append(error / (call.output ** 2 * real).sum().clamp_min(1e-12))
    return torch.stack(losses).mean()


def mlm_loss(student: ProteinLanguageModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The masked-LM cross-entropy (all tokens of the vocabulary, as in training)."""
    logits = student(batch["input_ids"], attention_mask=batch["attention_mask"])
    return token_loss_and_accuracy(logits, batch["labels"])[0]


def training_batches(sequences: Sequence[str], config: RecoveryConfig):
    """Endless masked batches of ``sequences`` in a seeded random order (epoch by epoch)."""
    tokens = encode_sequences(sequences)
    collate = MLMCollator(seed=config.seed + 1)
    generator = torch.Generator().manual_seed(config.seed)
    while True:
        order = torch.randperm(len(tokens), generator=generator).tolist()
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            yield collate([tokens[i] for i in order[start:start + config.batch_size]])


def finetune(
    student: ProteinLanguageModel,
    teacher: ProteinLanguageModel | None,
    train_sequences: Sequence[str],
    eval_batches: Sequence[dict[str, torch.Tensor]],
    config: RecoveryConfig,
) -> list[CurvePoint]:
    """Train ``student`` in place with ``config.recipe`` (``teacher``: the exact-attention
    model, needed by ``transfer``, never changed) and return its learning curve."""
    config.validate()
    if config.recipe == "transfer" and teacher is None:
        raise ValueError("recipe='transfer' needs the exact-attention teacher")
    if teacher is not None:
        teacher.eval().requires_grad_(False)
    student.eval()  # dropout off, features fixed
    student.requires_grad_(False)
    parameters = trainable_parameters(student, config.trained)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps)))
    batches = training_batches(train_sequences, config)

    def point(step: int, losses: list[float], seconds: float) -> CurvePoint:
        score = masked_lm_score(student, eval_batches)
        loss = sum(losses) / len(losses) if losses else float("nan")
        return CurvePoint(step, score.accuracy, score.perplexity, loss, seconds)

    curve, losses, seconds = [point(0, [], 0.0)], [], 0.0
    for step in range(1, config.steps + 1):
        batch = next(batches)
        start = time.perf_counter()
        loss = (attention_transfer_loss(student, teacher, batch) if config.recipe == "transfer"
                else mlm_loss(student, batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - start
        losses.append(loss.detach().item())
        if step % config.eval_every == 0 or step == config.steps:
            curve.append(point(step, losses, seconds))
            losses = []
    student.requires_grad_(True)
    return curve
