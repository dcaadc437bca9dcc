"""Recipe options of attention transfer: head maps that fold into W_q / W_k, a trainable
feature projection and the end-to-end logit term."""

from __future__ import annotations

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.transfer.conversion import with_attention
from protperf.transfer.evaluation import masked_batches
from protperf.transfer.finetune import (
    attention_transfer_loss,
    freeze_feature_projections,
    logit_distillation_loss,
    train_feature_projections,
    trainable_parameters,
)
from protperf.transfer.headmap import add_head_maps, fold_head_maps, has_head_maps
from tests.transfer.test_transfer import SEQUENCES, tiny_exact_model, train


def performer(teacher, kind="favor_softmax"):
    return with_attention(teacher, AttentionConfig(kind=kind, num_features=16))


def test_head_maps_start_as_identity_and_fold_exactly_into_the_projections():
    teacher = tiny_exact_model()
    student = performer(teacher)
    batch = masked_batches(SEQUENCES[:4], seed=0)[0]
    args = (batch["input_ids"],)
    kwargs = {"attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        before = student(*args, **kwargs)
        maps = add_head_maps(student)
        assert len(maps) == 4 and maps[0].shape == (2, 16, 16) and has_head_maps(student)
        assert torch.allclose(student(*args, **kwargs), before, atol=1e-6)
        for head_map in maps:  # any maps: the folded model must compute the same
            head_map.add_(0.3 * torch.randn_like(head_map))
        mapped = student(*args, **kwargs)
        assert not torch.allclose(mapped, before, atol=1e-3)
        fold_head_maps(student)
        assert not has_head_maps(student)
        assert set(student.state_dict()) == set(teacher.state_dict()) | {
            f"blocks.{i}.attn.feature_projection" for i in range(2)}
        assert torch.allclose(student(*args, **kwargs), mapped, atol=1e-5)
        attn, first = next(student.attention_modules()), next(teacher.attention_modules())
        expected = torch.block_diag(*maps[0]) @ first.q_proj.weight  # A_h W_q,h per head
        assert torch.allclose(attn.q_proj.weight, expected, atol=1e-6)
        assert torch.allclose(attn.q_proj.bias, torch.block_diag(*maps[0]) @ first.q_proj.bias,
                              atol=1e-6)


def test_headmap_recipe_trains_only_the_maps_and_leaves_a_plain_checkpoint():
    teacher = tiny_exact_model()
    student = performer(teacher)
    batches = masked_batches(SEQUENCES[:8], seed=0, batch_size=8)
    with torch.no_grad():
        first = float(attention_transfer_loss(student, teacher, batches[0]))
    train(student, lambda b: attention_transfer_loss(student, teacher, b), SEQUENCES, "headmap")
    assert has_head_maps(student)
    fold_head_maps(student)
    with torch.no_grad():
        assert float(attention_transfer_loss(student, teacher, batches[0])) < 0.7 * first
    moved = {name for (name, p), t in zip(student.named_parameters(), teacher.parameters(),
                                           strict=True) if not torch.equal(p, t)}
    qk = {f"blocks.{i}.attn.{w}_proj.{t}" for i in range(2) for w in "qk"
          for t in ("weight", "bias")}
    assert {n for n in qk if n.endswith("weight")} <= moved <= qk  # (zero biases stay zero)


def test_qk_features_trains_the_feature_projection_as_a_parameter_then_gives_a_buffer_back():
    teacher = tiny_exact_model()
    student = performer(teacher)
    keys = list(student.state_dict())
    drawn = [a.feature_projection.clone() for a in student.attention_modules()]
    tensors = trainable_parameters(student, "qk_features")
    assert len(tensors) == 2 * 4 + 2
    names = {n for n, _ in student.named_parameters()}
    assert {f"blocks.{i}.attn.feature_projection" for i in range(2)} <= names  # DDP averages it
    assert sorted(student.state_dict()) == sorted(keys)  # same checkpoint keys while training
    assert train_feature_projections(student) == tensors[-2:]  # idempotent
    train(student, lambda b: attention_transfer_loss(student, teacher, b), SEQUENCES,
          "qk_features", steps=5)
    freeze_feature_projections(student)
    for attn, before in zip(student.attention_modules(), drawn, strict=True):
        assert "feature_projection" in dict(attn.named_buffers())
        assert not torch.equal(attn.feature_projection, before)
        assert not attn.feature_projection.requires_grad
    assert list(student.state_dict()) == keys


def test_logit_term_is_the_kl_to_the_teacher_and_zero_for_an_exact_copy():
    teacher = tiny_exact_model()
    batch = masked_batches(SEQUENCES[:4], seed=0)[0]
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        target = teacher(ids, attention_mask=mask)
        exact = with_attention(teacher, AttentionConfig(kind="exact"))
        assert float(logit_distillation_loss(exact, target, batch)) == pytest.approx(0, abs=1e-6)
        student = performer(teacher)
        kl = float(logit_distillation_loss(student, target, batch))
        p, q = target[mask].log_softmax(-1), student(ids, attention_mask=mask)[mask].log_softmax(-1)
        assert kl == pytest.approx(float((p.exp() * (p - q)).sum(-1).mean()), rel=1e-4)
        layer_only = float(attention_transfer_loss(student, teacher, batch))
        both = float(attention_transfer_loss(student, teacher, batch, logit_weight=2.0))
        assert both == pytest.approx(layer_only + 2 * kl, rel=1e-4)
