"""The knobs of imported architectures (post-LN, embedding LayerNorm, LM-head transform, token
dropout, token-type vector) leave protperf's own models exactly as they were."""

from __future__ import annotations

import pytest
import torch

from protperf.attention import AttentionConfig
from protperf.checkpoint.module import load_module
from protperf.data.alphabet import ALPHABET
from protperf.errors import ConfigError
from protperf.model.config import ModelConfig
from protperf.model.lightning import ProteinLMModule
from protperf.model.lm_head import token_dropout
from protperf.model.transformer import ProteinLanguageModel

# Losses of 3 AdamW steps of the default-architecture model below (dropout 0.1, seed 0),
# produced by the code before the knobs existed (protperf 9cc6dad, torch 2.13 CPU; they
# agree bit for bit there, rel 1e-6 leaves room for other BLAS builds).
PINNED_LOSSES = {
    ("learned", "exact"): [3.2263734340667725, 3.111454725265503, 2.8718254566192627],
    ("learned", "favor_relu"): [3.227688789367676, 3.1487321853637695, 2.9098851680755615],
    ("rotary", "exact"): [3.131683588027954, 3.1265056133270264, 2.8689584732055664],
    ("rotary", "favor_relu"): [3.140228509902954, 3.140377998352051, 2.9053075313568115],
}
BLOCK_KEYS = [
    "attn_norm.weight", "attn_norm.bias", "attn.q_proj.weight", "attn.q_proj.bias",
    "attn.k_proj.weight", "attn.k_proj.bias", "attn.v_proj.weight", "attn.v_proj.bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ffn_norm.weight", "ffn_norm.bias",
    "ffn.fc_in.weight", "ffn.fc_in.bias", "ffn.fc_out.weight", "ffn.fc_out.bias",
]


def default_model(position: str, kind: str) -> ProteinLanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(dim=16, num_heads=2, num_layers=2, ffn_dim=32, dropout=0.1,
                         position=position, max_position=64,
                         attention=AttentionConfig(kind=kind, num_features=16))
    return ProteinLanguageModel(config, causal=False)


@pytest.mark.parametrize(("position", "kind"), list(PINNED_LOSSES))
def test_default_architecture_trains_as_before(position, kind):
    model = default_model(position, kind)
    expected = ["token_embedding.weight"]
    expected += ["position_embedding.weight"] if position == "learned" else []
    expected += [f"blocks.{i}.{k}" for i in range(2) for k in BLOCK_KEYS]
    expected += [f"blocks.{i}.attn.feature_projection" for i in range(2)
                 if kind != "exact"]
    expected += ["final_norm.weight", "final_norm.bias", "lm_head.weight", "lm_head.bias"]
    assert sorted(model.state_dict()) == sorted(expected)
    ids = torch.randint(5, 25, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(ids, mask).flatten(0, 1), ids.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses == pytest.approx(PINNED_LOSSES[position, kind], rel=1e-6, abs=0)


def test_checkpoint_without_the_knob_keys_loads(tmp_path):
    """A checkpoint written before the knobs existed (its model config lacks them)."""
    module = ProteinLMModule(model=ModelConfig(dim=16, num_heads=2, num_layers=1, ffn_dim=32),
                             task={"objective": "mlm"})
    hparams = dict(module.hparams)
    hparams["model"] = {k: v for k, v in hparams["model"].items()
                        if k not in ("norm_placement", "embedding_norm", "final_norm",
                                     "token_type_vector", "token_dropout", "lm_head_transform")}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, path)
    loaded = load_module(path).model.eval()
    ids = torch.randint(5, 25, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), module.model.eval()(ids), rtol=0, atol=0)


def test_post_norm_block_is_layernorm_after_the_residual():
    torch.manual_seed(0)
    config = ModelConfig(dim=16, num_heads=2, num_layers=1, ffn_dim=32, dropout=0.0,
                         norm_placement="post", attention=AttentionConfig(kind="exact"))
    block = ProteinLanguageModel(config, causal=False).blocks[0].eval()
    x = torch.randn(1, 5, 16)
    h = block.attn_norm(x + block.attn(x))
    torch.testing.assert_close(block(x), block.ffn_norm(h + block.ffn(h)), rtol=0, atol=0)


def test_token_dropout_zeroes_masks_and_rescales_by_the_masked_fraction():
    mask_id = ALPHABET.mask_id
    ids = torch.tensor([[2, 5, mask_id, 6, 3, 0, 0, 0]])
    attention = ids != 0
    x = torch.ones(1, 8, 4)
    out = token_dropout(x, ids, mask_id, attention)
    assert out[0, 2].abs().sum() == 0
    # 1 of 5 real tokens masked: scale (1 - 0.12) / (1 - 0.2)
    torch.testing.assert_close(out[0, 1], torch.full((4,), 0.88 / 0.8))


def test_knob_values_are_checked():
    with pytest.raises(ConfigError, match="model.norm_placement='middle' is not one of pre, post"):
        ProteinLanguageModel(ModelConfig(norm_placement="middle"), causal=False)
