"""The language model itself: causality, padding, positions, rotary embedding."""

from __future__ import annotations

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.model.config import ModelConfig
from protperf.model.rotary import apply_rotary, rotary_angles
from protperf.model.transformer import ProteinLanguageModel

KINDS = ["exact", "favor_softmax", "favor_relu"]


def tiny_model(kind: str, causal: bool, position: str = "learned") -> ProteinLanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(
        name=kind, dim=16, num_heads=2, num_layers=2, ffn_dim=32, dropout=0.0,
        position=position, max_position=64,
        attention=AttentionConfig(kind=kind, num_features=16, chunk_size=4),
    )
    return ProteinLanguageModel(config, causal=causal).eval()


@pytest.mark.parametrize("position", ["learned", "rotary"])
@pytest.mark.parametrize("kind", KINDS)
def test_causal_logits_ignore_future_tokens(kind, position):
    model = tiny_model(kind, causal=True, position=position)
    ids = torch.randint(5, 25, (2, 20))
    changed = ids.clone()
    changed[:, 11:] = torch.randint(5, 25, (2, 9))
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :11], after[:, :11], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before[:, 11:], after[:, 11:], atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_logits_see_the_future(kind):
    model = tiny_model(kind, causal=False)
    ids = torch.randint(5, 25, (1, 20))
    changed = ids.clone()
    changed[0, -1] = 5 if ids[0, -1] != 5 else 6
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0, 0], model(changed)[0, 0], atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_real_positions(kind, causal):
    model = tiny_model(kind, causal=causal)
    ids = torch.randint(5, 25, (1, 12))
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 12), torch.zeros(1, 6)], dim=1).bool()
    with torch.no_grad():
        alone = model(ids, torch.ones(1, 12, dtype=torch.bool))
        with_pad = model(padded, mask)
    torch.testing.assert_close(alone, with_pad[:, :12], rtol=1e-5, atol=1e-5)


def test_lm_head_is_tied_to_the_embedding():
    model = tiny_model("exact", causal=False)
    assert model.lm_head.weight is model.token_embedding.weight


def test_input_longer_than_positional_table_is_rejected():
    model = tiny_model("exact", causal=False)
    with pytest.raises(ValueError, match=r"input length 65 .*model.max_position=64"):
        model(torch.randint(5, 25, (1, 65)))


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    angles = rotary_angles(40, 8, 10000.0)

    def score(i: int, j: int) -> torch.Tensor:
        return (apply_rotary(q, angles[i:i + 1]) * apply_rotary(k, angles[j:j + 1])).sum()

    torch.testing.assert_close(score(3, 1), score(33, 31), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2))
    # a rotation keeps the norm
    torch.testing.assert_close(apply_rotary(q, angles[7:8]).norm(), q.norm())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_without_cross_protein_attention_a_protein_ignores_its_neighbours(kind, causal):
    """data.cross_protein_attention=false: the collator's segment ids keep every protein's
    logits independent of the other proteins packed in its window."""
    from protperf.data.alphabet import ALPHABET
    from protperf.data.collate import make_collator

    model = tiny_model(kind, causal=causal)
    bos, eos = ALPHABET.bos_id, ALPHABET.eos_id
    first, second = torch.randint(5, 25, (7,)), torch.randint(5, 25, (9,))
    window = torch.cat([torch.tensor([bos]), first, torch.tensor([eos, bos]), second,
                        torch.tensor([eos])])
    changed = window.clone()
    changed[10:19] = torch.randint(5, 25, (9,))  # another second protein, same length
    batch = make_collator("clm", segments=True)([window, changed])
    assert batch["segment_ids"][0].tolist() == [0] * 9 + [1] * 11
    logits = model(batch["input_ids"], batch["attention_mask"], batch["segment_ids"])
    torch.testing.assert_close(logits[0, :9], logits[1, :9], atol=1e-5, rtol=0)
    mixed = model(batch["input_ids"], batch["attention_mask"])  # the paper's setting
    assert not torch.allclose(mixed[0, :9], mixed[1, :9], atol=1e-5) or causal
