"""Evaluation on fixed masks, weights under another attention, the losses of a conversion."""

from __future__ import annotations

import math

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.data.batching import IGNORE_INDEX
from protperf.model.config import ModelConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer.antibodies import TEST_FASTA, read_antibodies
from protperf.transfer.conversion import attention_io, with_attention
from protperf.transfer.evaluation import masked_batches, masked_lm_nll
from protperf.transfer.finetune import attention_transfer_loss, mlm_loss, trainable_parameters

SEQUENCES = [s for _, s in read_antibodies(TEST_FASTA)][:12]


def tiny_exact_model(seed: int = 0, sharpness: float = 10.0) -> ProteinLanguageModel:
    """A random 2-layer exact-attention MLM whose q/k are scaled so attention is sharp."""
    torch.manual_seed(seed)
    config = ModelConfig(dim=32, num_heads=2, num_layers=2, ffn_dim=64, dropout=0.0,
                         max_position=160, attention=AttentionConfig(kind="exact"))
    model = ProteinLanguageModel(config, causal=False)
    with torch.no_grad():
        for attn in model.attention_modules():
            attn.q_proj.weight.mul_(sharpness)
            attn.k_proj.weight.mul_(sharpness)
    return model.eval()


def test_masked_lm_nll_matches_a_hand_computation():
    logits = torch.zeros(1, 3, 30)
    logits[0, 0, 5] = math.log(3.0)  # A: p = 3 / 22 among the 20 amino acids
    logits[0, 0, 1] = 50.0  # <mask> is not an amino acid: ignored
    logits[0, 1, 7] = 2.0  # D is the argmax at position 1
    labels = torch.tensor([[5, 6, IGNORE_INDEX]])  # A, C, ignored
    nll, correct, count = masked_lm_nll(logits, labels)
    expected = -math.log(3 / 22) - (0.0 - math.log(19 + math.exp(2.0)))
    assert float(nll) == pytest.approx(expected, rel=1e-6)
    assert int(correct) == 1 and int(count) == 2  # A right at 0 (argmax), C wrong at 1


def test_masks_are_fixed_by_their_seed():
    first, again = masked_batches(SEQUENCES, seed=3), masked_batches(SEQUENCES, seed=3)
    other = masked_batches(SEQUENCES, seed=4)
    pairs = zip(first, again, strict=True)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in pairs)
    assert not all(torch.equal(a["labels"], b["labels"]) for a, b in zip(first, other, strict=True))
    labelled = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in first)
    residues = sum(len(s) for s in SEQUENCES)
    assert 0.10 * residues < labelled < 0.20 * residues


def test_with_attention_keeps_weights_draws_seeded_features_and_leaves_global_rng():
    model = tiny_exact_model()
    state = torch.random.get_rng_state()
    a = with_attention(model, AttentionConfig(kind="favor_softmax", num_features=16), seed=1)
    b = with_attention(model, AttentionConfig(kind="favor_softmax", num_features=16), seed=1)
    c = with_attention(model, AttentionConfig(kind="favor_softmax", num_features=16), seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name, tensor in model.state_dict().items():
        assert torch.equal(a.state_dict()[name], tensor)
    features = [next(m.attention_modules()).feature_projection for m in (a, b, c)]
    assert torch.equal(features[0], features[1]) and not torch.equal(features[0], features[2])


def test_attention_io_records_each_layer_input_and_output():
    model = tiny_exact_model()
    batch = masked_batches(SEQUENCES[:4], seed=0)[0]
    logits, calls = attention_io(model, batch["input_ids"], batch["attention_mask"])
    assert len(calls) == 2
    assert torch.equal(logits, model(batch["input_ids"], attention_mask=batch["attention_mask"]))
    for attn, call in zip(model.attention_modules(), calls, strict=True):
        assert torch.equal(attn(*call.args, **call.kwargs), call.output)


def test_exact_copy_has_zero_transfer_loss_and_the_performer_does_not():
    model = tiny_exact_model()
    batch = masked_batches(SEQUENCES[:4], seed=0)[0]
    exact = with_attention(model, AttentionConfig(kind="exact"))
    performer = with_attention(model, AttentionConfig(kind="favor_softmax", num_features=16))
    with torch.no_grad():
        assert float(attention_transfer_loss(exact, model, batch)) == pytest.approx(0, abs=1e-10)
        assert float(attention_transfer_loss(performer, model, batch)) > 0.05


def train(student, loss_of, sequences, which, steps=30, lr=1e-2, batch_size=4):
    """A few AdamW steps on ``loss_of(batch)`` over masked batches of ``sequences``, training
    ``trainable_parameters(student, which)`` only (the conversion's loop is Lightning's)."""
    student.eval().requires_grad_(False)
    tensors = trainable_parameters(student, which)
    for tensor in tensors:
        tensor.requires_grad_(True)
    optimizer = torch.optim.AdamW(tensors, lr=lr, weight_decay=0.0)
    batches = masked_batches(sequences, seed=1, batch_size=batch_size)
    for step in range(steps):
        loss = loss_of(batches[step % len(batches)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for tensor in tensors:
        tensor.requires_grad_(False)
    return tensors


def test_attention_transfer_lowers_its_loss_trains_only_qk_and_leaves_the_teacher():
    teacher = tiny_exact_model()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = with_attention(teacher, AttentionConfig(kind="favor_softmax", num_features=16))
    batch = masked_batches(SEQUENCES[:8], seed=0, batch_size=8)[0]
    with torch.no_grad():
        first = float(attention_transfer_loss(student, teacher, batch))
    trained = train(student, lambda b: attention_transfer_loss(student, teacher, b), SEQUENCES,
                    "qk")
    with torch.no_grad():  # 0.70 -> 0.21 when written
        assert float(attention_transfer_loss(student, teacher, batch)) < 0.5 * first
    for name, tensor in teacher.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the teacher never changes
    trained = {id(p) for p in trained}
    for (name, p), t in zip(student.named_parameters(), teacher.parameters(),
                               strict=True):
        assert torch.equal(p, t) != (id(p) in trained), name  # only q/k moved


def test_mlm_loss_is_the_token_cross_entropy_and_trains_every_weight():
    teacher = tiny_exact_model()
    student = with_attention(teacher, AttentionConfig(kind="favor_relu", num_features=16))
    batch = masked_batches(SEQUENCES[:4], seed=0)[0]
    with torch.no_grad():
        logits = student(batch["input_ids"], attention_mask=batch["attention_mask"])
        expected = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
        assert float(mlm_loss(student, batch)) == pytest.approx(float(expected), rel=1e-5)
    train(student, lambda b: mlm_loss(student, b), SEQUENCES, "all", steps=2, lr=1e-3)
    pairs = zip(student.parameters(), teacher.parameters(), strict=True)
    assert all(not torch.equal(p, t) for p, t in pairs)


def test_an_unknown_trainable_set_is_refused():
    with pytest.raises(ValueError, match="trainable='lora' is not one of all, qk, qk_features, "
                                         "headmap"):
        trainable_parameters(tiny_exact_model(), "lora")
