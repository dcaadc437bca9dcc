"""Sampling: logit filters, greedy decoding, prompts, eos, and refused inputs."""

from __future__ import annotations

import math

import pytest
import torch

from protperf.data.alphabet import ALPHABET as A
from protperf.errors import ConfigError
from protperf.inference.generate import Sampler, SamplingConfig, draw_tokens, filter_logits
from tests.inference.conftest import tiny_model


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    out = filter_logits(logits, top_k=2)
    assert out[0].tolist() == [-math.inf, 4.0, 3.0, -math.inf]


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = filter_logits(probs.log(), top_p=0.8)  # 0.5 + 0.3 reaches 0.8: two kept
    assert torch.isfinite(out[0]).tolist() == [True, True, False, False]
    out = filter_logits(probs.log(), top_p=0.81)
    assert torch.isfinite(out[0]).tolist() == [True, True, True, False]
    out = filter_logits(probs.log(), top_p=0.1)  # the most likely token always stays
    assert torch.isfinite(out[0]).tolist() == [True, False, False, False]


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    out = draw_tokens(logits, SamplingConfig(temperature=0.0), torch.Generator())
    assert out.tolist() == [1, 0]


def test_greedy_generation_follows_the_argmax_of_the_full_forward():
    model = tiny_model("favor_softmax")
    sample = Sampler(model).sample(1, 12, sampling=SamplingConfig(temperature=0.0))[0]
    tokens = [A.bos_id]
    allowed = A.standard_ids + [A.eos_id]
    expected = ""
    for _ in range(12):
        with torch.no_grad():
            logits = model(torch.tensor([tokens]))[0, -1]
        best = allowed[int(logits[allowed].argmax())]
        if best == A.eos_id:
            break
        expected += A.tokens[best]
        tokens.append(best)
    assert sample == expected


def test_samples_stop_at_eos_and_never_contain_specials():
    model = tiny_model("favor_relu", weight_scale=1.0)
    with torch.no_grad():  # make <eos> likely: every sequence should end early
        model.lm_head.bias[A.eos_id] = 4.0
    samples = Sampler(model).sample(8, 50, seed=0)
    assert all(len(s) < 50 for s in samples)
    assert all(set(s) <= set(A.standard) for s in samples)


def biased_to_nonstandard() -> torch.nn.Module:
    """A tiny causal model whose every step prefers X B Z U O by far (and never ends)."""
    model = tiny_model("favor_relu", weight_scale=1.0)
    nonstandard = [A.tokens.index(letter) for letter in A.nonstandard]
    with torch.no_grad():
        model.lm_head.bias[nonstandard] = 20.0
        model.lm_head.bias[A.eos_id] = -20.0
    return model


def test_samples_hold_only_the_20_standard_amino_acids_by_default():
    samples = Sampler(biased_to_nonstandard()).sample(10, 100, seed=0)
    residues = "".join(samples)
    assert len(residues) == 1000
    assert set(residues) <= set(A.standard)


def test_residues_all_allows_the_nonstandard_letters():
    samples = Sampler(biased_to_nonstandard(), residues="all").sample(2, 50, seed=0)
    assert set("".join(samples)) & set(A.nonstandard)
    with pytest.raises(ConfigError, match=r"^residues='rare' is not one of standard, all$"):
        Sampler(biased_to_nonstandard(), residues="rare")


def test_prompt_and_lengths():
    samples = Sampler(tiny_model("exact")).sample(3, 10, seed=1, prompt="mkv")
    assert all(s.startswith("MKV") and len(s) <= 10 for s in samples)


def test_refused_inputs_name_the_key():
    with pytest.raises(ConfigError, match=r"causal checkpoint \(task.objective=clm\)"):
        Sampler(tiny_model(causal=False))
    sampler = Sampler(tiny_model(position="learned", max_position=16))
    with pytest.raises(ConfigError, match=r"max_length=20 is longer .*model.max_position=16"):
        sampler.sample(1, 20)
    with pytest.raises(ConfigError, match=r"^prompt='M1': '1' at position 2 is not an amino-acid "
                                          r"letter \(one of ACDEFGHIKLMNPQRSTVWY or XBZUO\)$"):
        sampler.sample(1, 10, prompt="M1")
    with pytest.raises(ConfigError, match=r"^prompt='MKJ': 'J' at position 3 is not an amino-acid "
                                          r"letter"):  # J encodes as <unk>: it was dropped
        sampler.sample(1, 10, prompt="MKJ")
    with pytest.raises(ConfigError, match=r"top_p must be in \(0, 1\], got 0"):
        SamplingConfig(top_p=0)
