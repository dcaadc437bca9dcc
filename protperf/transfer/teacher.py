"""The exact-attention teacher of a converted Performer, without a second copy of the model.

:func:`exact_teacher` builds a :class:`ProteinLanguageModel` with exact attention whose every
module *is* the student's module (embeddings, LayerNorms, feed-forward networks, value and
output projections, LM head: the same objects, so the same memory and the same device),
except the attention submodules that own a parameter the student trains: those are frozen
copies taken before training (with the q/k recipe, the query and key projections: 2 D^2 of a
block's ~12 D^2 weights). The teacher's network skeleton is built on the ``meta`` device and
never allocates memory of its own.

Why frozen q/k copies rather than an identity-initialised map in front of the random features
that folds into W_q / W_k at save time: with rotary positions (ESM-2) the rotation sits
between the projection and the features, so such a map does not fold into W_q exactly, and the
recipe of :mod:`protperf.transfer.finetune` trains the projections themselves
(:func:`~protperf.transfer.finetune.trainable_parameters`), which the converted checkpoint then
holds as ordinary weights.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from protperf.attention import AttentionConfig
from protperf.model.transformer import ProteinLanguageModel


def exact_teacher(
    student: ProteinLanguageModel, trained: Iterable[nn.Parameter]
) -> tuple[ProteinLanguageModel, nn.ModuleList]:
    """``(teacher, frozen)``: the student's network with exact attention (eval mode) and the
    frozen copies it holds of the student's attention submodules that own a parameter of
    ``trained``. Register ``frozen`` in the caller's module so that it moves with it between
    devices; everything else of the teacher moves with the student."""
    trained_ids = {id(p) for p in trained}
    config = dataclasses.replace(student.config, attention=AttentionConfig(kind="exact"))
    with torch.device("meta"):
        teacher = ProteinLanguageModel(config, student.causal)
    share_children(teacher, student, skip={"blocks"})
    frozen = nn.ModuleList()
    for teacher_block, student_block in zip(teacher.blocks, student.blocks, strict=True):
        share_children(teacher_block, student_block, skip={"attn"})
        teacher_attn, student_attn = teacher_block.attn, student_block.attn
        for name, child in student_attn.named_children():
            if any(id(p) in trained_ids for p in child.parameters()):
                child = copy.deepcopy(child).requires_grad_(False)
                frozen.append(child)
            setattr(teacher_attn, name, child)
    left = [name for name, t in (*teacher.named_parameters(), *teacher.named_buffers())
            if t.is_meta]
    if left:
        raise ValueError(f"internal: the teacher does not share {left[0]} with the student")
    return teacher.eval(), frozen


def share_children(target: nn.Module, source: nn.Module, skip: set[str]) -> None:
    """Make ``target``'s direct children, parameters and buffers ``source``'s own objects
    (not those named in ``skip``)."""
    for name, child in source.named_children():
        if name not in skip:
            setattr(target, name, child)
    for name, parameter in source.named_parameters(recurse=False):
        setattr(target, name, parameter)
    for name, buffer in source.named_buffers(recurse=False):
        target.register_buffer(name, buffer)
