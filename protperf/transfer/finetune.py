"""The math of converting a pretrained Transformer into a Performer: the losses and what trains.

The training loop is :func:`protperf.transfer.convert`'s (Lightning; ``protperf-convert``);
these are the pure pieces it calls.

Attention transfer (after LoLCATs, Zhang et al. 2024; Hedgehog, Zhang et al. 2024, trains
feature maps to mimic softmax attention): the same weights with exact attention are a frozen
teacher. One teacher pass records every attention layer's input and output
(:func:`protperf.transfer.conversion.attention_io`); each Performer attention layer, fed the
teacher's input, is trained to reproduce the teacher's output, layer by layer, with no labels
(:func:`attention_transfer_loss`: the relative squared error sum ||y - y_T||^2 / sum ||y_T||^2
over real tokens, averaged over layers). The layers learn independently from the teacher's
inputs (cheap: no backward pass through the feed-forward networks), so errors that compound
through the stack are not trained against unless ``logit_weight`` > 0 adds the KL divergence
of the Performer's output distribution from the teacher's (:func:`logit_distillation_loss`, a
whole student forward; still label-free).

What trains (:func:`trainable_parameters`): ``qk``, the query and key projections (all that
decides *where* a head looks; values and output projection say *what* it copies and stay the
teacher's); ``headmap``, an identity-initialised d x d map per head in front of the features
(:mod:`protperf.transfer.headmap`, folded into W_q / W_k afterwards, so the converted model
stays an ordinary checkpoint); ``qk_features``, q/k and the random feature projection itself
(a learned feature map after Hedgehog; it trains as a parameter, so DDP averages its gradient,
and :func:`freeze_feature_projections` turns it back into the ``feature_projection`` buffer the
checkpoint keeps); or ``all``.

The LM polish (:func:`mlm_loss`) is the source's own token loss on labelled batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from protperf.attention.layer import FEATURE_BUFFER
from protperf.model.loss import token_loss_and_accuracy
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer.conversion import attention_io
from protperf.transfer.headmap import add_head_maps

TRAINABLE = ("all", "qk", "qk_features", "headmap")


def trainable_parameters(model: ProteinLanguageModel, which: str) -> list[torch.Tensor]:
    """The tensors that train (``requires_grad`` is left to the caller): ``all`` parameters;
    ``qk``: the weights and biases of every query and key projection; ``qk_features``: those
    and every Performer's feature projection (made a parameter in place by
    :func:`train_feature_projections`; :func:`freeze_feature_projections` undoes it);
    ``headmap``: identity per-head maps added in front of the features (in place, see
    :mod:`protperf.transfer.headmap`; :func:`fold_head_maps` writes them into W_q / W_k)."""
    if which not in TRAINABLE:
        raise ValueError(f"trainable={which!r} is not one of {', '.join(TRAINABLE)}")
    if which == "all":
        return list(model.parameters())
    if which == "headmap":
        return add_head_maps(model)
    tensors = [p for attn in model.attention_modules()
               for p in (*attn.q_proj.parameters(), *attn.k_proj.parameters())]
    if which == "qk_features":
        tensors += train_feature_projections(model)
    return tensors


def train_feature_projections(model: ProteinLanguageModel) -> list[nn.Parameter]:
    """Turn every Performer layer's (m, head_dim) ``feature_projection`` buffer into a
    parameter of the same name (same state-dict key, same values) and return them: a
    parameter's gradient is averaged by DDP and its value is not overwritten by the buffer
    broadcast, so every rank trains the same features."""
    parameters = []
    for attn in model.attention_modules():
        if FEATURE_BUFFER in attn._buffers:
            parameter = nn.Parameter(attn._buffers.pop(FEATURE_BUFFER))
            attn.register_parameter(FEATURE_BUFFER, parameter)
        if isinstance(getattr(attn, FEATURE_BUFFER, None), nn.Parameter):
            parameters.append(getattr(attn, FEATURE_BUFFER))
    return parameters


def freeze_feature_projections(model: ProteinLanguageModel) -> None:
    """Undo :func:`train_feature_projections`: the trained values become the
    ``feature_projection`` buffers again (no gradient), as every Performer checkpoint has."""
    for attn in model.attention_modules():
        if FEATURE_BUFFER in attn._parameters:
            value = attn._parameters.pop(FEATURE_BUFFER).detach()
            attn.register_buffer(FEATURE_BUFFER, value)


def attention_transfer_loss(
    student: ProteinLanguageModel, teacher: ProteinLanguageModel,
    batch: dict[str, torch.Tensor], logit_weight: float = 0.0,
) -> torch.Tensor:
    """Mean over layers of sum ||y - y_T||^2 / sum ||y_T||^2 over real tokens, where y_T is the
    teacher layer's output and y the student layer's output on the teacher layer's input;
    plus ``logit_weight`` times :func:`logit_distillation_loss` (a whole student forward)."""
    teacher_logits, calls = attention_io(teacher, batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"][..., None].to(calls[0].output.dtype)
    losses = []
    for attn, call in zip(student.attention_modules(), calls, strict=True):
        out = attn(*call.args, **call.kwargs)
        error = ((out - call.output) ** 2 * real).sum()
        losses.append(error / (call.output ** 2 * real).sum().clamp_min(1e-12))
    loss = torch.stack(losses).mean()
    if logit_weight:
        loss = loss + logit_weight * logit_distillation_loss(student, teacher_logits, batch)
    return loss


def logit_distillation_loss(
    student: ProteinLanguageModel, teacher_logits: torch.Tensor, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """KL(teacher || student) of the output distributions, averaged over real tokens.

    teacher_logits: (B, L, V) of the exact model on ``batch["input_ids"]``."""
    logits = student(batch["input_ids"], attention_mask=batch["attention_mask"])
    real = batch["attention_mask"]
    return F.kl_div(logits[real].float().log_softmax(-1), teacher_logits[real].float()
                    .log_softmax(-1), log_target=True, reduction="batchmean")


def mlm_loss(student: ProteinLanguageModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The masked-LM cross-entropy (all tokens of the vocabulary, as in training)."""
    logits = student(batch["input_ids"], attention_mask=batch["attention_mask"])
    return token_loss_and_accuracy(logits, batch["labels"])[0]
