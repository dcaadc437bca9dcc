"""MultiHeadAttention: kinds, masks, precision, checkpoints, random-feature lifecycle."""

import pytest
import torch

from protperf.attention import AttentionConfig, MultiHeadAttention

DIM, HEADS = 32, 4
PERFORMER_KINDS = ["favor_softmax", "favor_relu"]
ALL_KINDS = ["exact", "favor_softmax", "favor_relu", "identity"]


def make(kind, causal, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = AttentionConfig(kind=kind, num_features=kwargs.pop("num_features", 64), **kwargs)
    return MultiHeadAttention(DIM, HEADS, cfg, causal)


def inputs(batch=2, length=23, seed=1, scale=1.0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, length, DIM, generator=gen, dtype=dtype)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_padding_invariance(kind, causal):
    layer = make(kind, causal).double()
    x = inputs(batch=1, length=15, dtype=torch.float64)
    padded = torch.cat([x, 30.0 * inputs(batch=1, length=6, seed=2, dtype=torch.float64)], 1)
    mask = torch.zeros(1, 21, dtype=torch.bool)
    mask[:, :15] = True
    out = layer(x)
    out_padded = layer(padded, attention_mask=mask)
    torch.testing.assert_close(out_padded[:, :15], out, atol=1e-10, rtol=0)
    if kind != "identity":  # a batch mixing lengths: the short row equals its own run
        batch = torch.cat([padded, inputs(batch=1, length=21, seed=3, dtype=torch.float64)])
        out_batch = layer(batch, torch.cat([mask, torch.ones(1, 21, dtype=torch.bool)]))
        torch.testing.assert_close(out_batch[:1, :15], out, atol=1e-10, rtol=0)


def test_performer_error_vs_exact_decreases_with_num_features():
    x = inputs(batch=2, length=64)
    exact = make("exact", False)
    with torch.no_grad():
        reference = exact(x)
        errors = []
        for m in (16, 64, 256):
            per_seed = []
            for seed in range(3):
                layer = make("favor_softmax", False, seed=seed, num_features=m)
                layer.load_state_dict(exact.state_dict())
                per_seed.append(((layer(x) - reference).norm() / reference.norm()).item())
            errors.append(sum(per_seed) / 3)
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_rotary_is_applied_to_queries_and_keys():
    layer = make("favor_softmax", True)
    x = inputs()
    calls = []

    def rotary(q, k):
        calls.append((q.shape, k.shape))
        return q.flip(-1), k.flip(-1)

    q, k, v = layer.project(x, rotary)
    q0, k0, v0 = layer.project(x)
    assert calls[0] == ((2, HEADS, 23, DIM // HEADS),) * 2
    assert torch.equal(q, q0.flip(-1)) and torch.equal(k, k0.flip(-1)) and torch.equal(v, v0)
    assert not torch.allclose(layer(x, rotary=rotary), layer(x))


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_autocast_is_finite_for_large_norms(kind, causal, dtype):
    layer = make(kind, causal)
    x = inputs(scale=100.0).requires_grad_()  # |q|, |k| ~ 1e3
    with torch.autocast("cpu", dtype=dtype):
        out = layer(x)
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_checkpoints_load_across_kinds():
    exact = make("exact", True, seed=0)
    performer = make("favor_softmax", True, seed=1)
    drawn = performer.feature_projection.clone()
    performer.load_state_dict(exact.state_dict(), strict=True)  # no feature buffer in it
    assert torch.equal(performer.feature_projection, drawn)  # keeps its fresh draw
    assert torch.equal(performer.q_proj.weight, exact.q_proj.weight)
    relu = make("favor_relu", True, seed=2)
    relu.load_state_dict(performer.state_dict(), strict=True)
    assert torch.equal(relu.feature_projection, drawn)  # saved features win when present
    back = make("exact", True, seed=3)
    back.load_state_dict(relu.state_dict(), strict=True)  # extra buffer ignored
    x = inputs()
    torch.testing.assert_close(back(x), exact(x))
    # a wrapped module (prefixes) and a genuinely wrong key still fail loudly
    wrapped = torch.nn.Sequential(make("favor_relu", False))
    wrapped.load_state_dict(torch.nn.Sequential(make("exact", False)).state_dict(), strict=True)
    with pytest.raises(RuntimeError, match="Unexpected key.*bogus"):
        make("exact", False).load_state_dict({**exact.state_dict(), "bogus": torch.zeros(1)})


def test_feature_buffer_round_trips_through_a_checkpoint_file(tmp_path):
    layer = make("favor_softmax", False, seed=4)
    torch.save(layer.state_dict(), tmp_path / "ckpt.pt")
    other = make("favor_softmax", False, seed=5)
    assert not torch.equal(other.feature_projection, layer.feature_projection)
    other.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    x = inputs()
    torch.testing.assert_close(other(x), layer(x))


def test_redraw_changes_features_only_when_called_and_never_in_eval():
    layer = make("favor_softmax", False)
    before = layer.feature_projection.clone()
    layer.train()
    layer(inputs()).sum().backward()
    assert torch.equal(layer.feature_projection, before)  # forward/backward never redraw
    assert layer.redraw_features() is True
    after = layer.feature_projection.clone()
    assert not torch.equal(after, before)
    layer.eval()
    assert layer.redraw_features() is False
    assert torch.equal(layer.feature_projection, after)
    with torch.no_grad():
        first, second = layer(inputs()), layer(inputs())
    assert torch.equal(first, second)  # eval is deterministic
    assert make("exact", False).redraw_features() is False


def test_construction_and_redraw_are_deterministic_under_manual_seed():
    a, b = make("favor_softmax", False, seed=7), make("favor_softmax", False, seed=7)
    assert torch.equal(a.feature_projection, b.feature_projection)
    torch.manual_seed(11)
    a.redraw_features()
    torch.manual_seed(11)
    b.redraw_features()
    assert torch.equal(a.feature_projection, b.feature_projection)


@pytest.mark.parametrize("feature_type", ["iid", "simplex", "favorpp"])
def test_optional_feature_types_run_and_approximate_exact(feature_type):
    x = inputs(length=40)
    exact = make("exact", False)
    layer = make("favor_softmax", False, feature_type=feature_type, num_features=256)
    layer.load_state_dict(exact.state_dict())
    with torch.no_grad():
        err = (layer(x) - exact(x)).norm() / exact(x).norm()
    assert err < 0.5, err


def test_favorpp_is_refused_in_causal_mode_and_no_projection_relu_works():
    with pytest.raises(ValueError, match="'favorpp' is bidirectional only"):
        make("favor_softmax", True, feature_type="favorpp")
    layer = make("favor_relu", True, no_projection=True)
    assert "feature_projection" not in layer.state_dict()
    assert layer.random_projection is None
    q_prime, _ = layer.performer_features(inputs())
    assert q_prime.shape[-1] == DIM // HEADS


def test_bad_head_count_is_named():
    with pytest.raises(ValueError, match="num_heads=5 does not divide dim=32"):
        MultiHeadAttention(DIM, 5, AttentionConfig(), causal=False)
