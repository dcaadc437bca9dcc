"""Mutation parsing and checks, and the scores against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from protperf.data.alphabet import ALPHABET as A
from protperf.errors import InferenceInputError
from protperf.inference.mutations import Substitution, parse_mutant, read_variants
from protperf.inference.score import Scorer, spearman_by_method
from tests.inference.conftest import tiny_model

WT = "MKTAYIAKQR"


def test_parse_single_and_multi_mutants():
    assert parse_mutant("A23G") == [Substitution("A", 23, "G")]
    assert parse_mutant("A23G:K45R") == [Substitution("A", 23, "G"), Substitution("K", 45, "R")]


@pytest.mark.parametrize(("text", "message"), [
    ("A23", r"'A23' is not a substitution like 'A23G'"),
    ("A23G;K45R", r"is not a substitution"),
    ("A0G", r"positions are 1-based, got 0"),
    ("A2G:A2K", r"a position is mutated twice"),
])
def test_bad_mutant_strings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mutant(text)


def _csv(tmp_path, text: str):
    path = tmp_path / "variants.csv"
    path.write_text(text)
    return path


def test_wildtype_mismatch_names_the_line(tmp_path):
    path = _csv(tmp_path, "mutant\nK2R\nA5G\n")
    with pytest.raises(InferenceInputError, match=r"variants.csv: line 3: mutant 'A5G': the "
                       r"wild type has 'Y' at position 5, not 'A'"):
        read_variants(path, WT)
    path = _csv(tmp_path, "mutant\nR11G\n")
    with pytest.raises(InferenceInputError, match=r"line 2: .*position 11 is past the end"):
        read_variants(path, WT)


def test_mutated_sequence_column_gives_the_wildtype(tmp_path):
    path = _csv(tmp_path, "mutant,mutated_sequence\nK2R,MRTAYIAKQR\nM1A:R10K,AKTAYIAKQK\n")
    variants = read_variants(path)
    assert variants.wildtype == WT
    assert variants.sequences == ["MRTAYIAKQR", "AKTAYIAKQK"]
    bad = _csv(tmp_path, "mutant,mutated_sequence\nK2R,MRTAYIAKQR\nT3A,MKTAYIAKQR\n")
    with pytest.raises(InferenceInputError, match=r"line 3: mutant 'T3A': mutated_sequence is "
                       r"not the wild type with these substitutions"):
        read_variants(bad)


def _log_probs(model, residues: str, mask_at: int | None = None) -> torch.Tensor:
    ids = torch.tensor([[A.cls_id, *[A.tokens.index(c) for c in residues], A.eos_id]])
    if mask_at is not None:
        ids[0, mask_at + 1] = A.mask_id
    with torch.no_grad():
        return torch.log_softmax(model(ids)[0], -1)


def test_masked_and_wildtype_marginals_equal_hand_computation(tmp_path):
    model = tiny_model(causal=False, weight_scale=2.0)
    variants = read_variants(_csv(tmp_path, "mutant\nK2R\nK2R:Y5W\n"), WT)
    scores = Scorer(model, batch_size=1).score_variants(variants, ["masked_marginal",
                                                                   "wt_marginal"])
    r, k, w, y = (A.tokens.index(c) for c in "RKWY")
    at2, at5 = _log_probs(model, WT, 1)[2], _log_probs(model, WT, 4)[5]
    single = float(at2[r] - at2[k])
    double = single + float(at5[w] - at5[y])
    np.testing.assert_allclose(scores["masked_marginal"], [single, double], rtol=0, atol=1e-10)
    plain = _log_probs(model, WT)
    wt_single = float(plain[2, r] - plain[2, k])
    wt_double = wt_single + float(plain[5, w] - plain[5, y])
    np.testing.assert_allclose(scores["wt_marginal"], [wt_single, wt_double], rtol=0,
                               atol=1e-10)
    assert abs(single - wt_single) > 1e-3  # masking changes the score: the test can fail


def test_pseudo_log_likelihood_equals_hand_computation(tmp_path):
    model = tiny_model(causal=False, weight_scale=2.0)
    variants = read_variants(_csv(tmp_path, "mutant\nK2R\n"), WT)
    scores = Scorer(model, batch_size=4).score_variants(variants, ["pll"])
    mutated = "MRTAYIAKQR"
    pll = sum(float(_log_probs(model, mutated, i)[i + 1, A.tokens.index(c)])
              for i, c in enumerate(mutated))
    np.testing.assert_allclose(scores["pll"], [pll], rtol=0, atol=1e-10)
    np.testing.assert_allclose(scores["pseudo_ppl"], [math.exp(-pll / 10)], rtol=1e-12)


def test_clm_log_likelihood_ratio_equals_hand_computation(tmp_path):
    model = tiny_model(causal=True, weight_scale=2.0)
    variants = read_variants(_csv(tmp_path, "mutant,DMS_score\nK2R,1.0\nT3A,2.0\nY5W,3.0\n"),
                             WT)
    scores = Scorer(model, batch_size=2).score_variants(variants)
    assert list(scores.columns) == ["llr", "log_likelihood", "perplexity"]

    def log_likelihood(residues):
        lp = _log_probs(model, residues)
        targets = [A.tokens.index(c) for c in residues] + [A.eos_id]
        return sum(float(lp[t, target]) for t, target in enumerate(targets))

    expected = [log_likelihood(s) for s in variants.sequences]
    np.testing.assert_allclose(scores["log_likelihood"], expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(scores["llr"], np.array(expected) - log_likelihood(WT), rtol=0,
                               atol=1e-10)
    rho = spearman_by_method(variants.table, scores)
    assert rho["llr"] == pd.Series(scores["llr"]).corr(
        pd.Series([1.0, 2.0, 3.0]), method="spearman")


def test_method_of_the_other_objective_is_refused(tmp_path):
    from protperf.errors import ConfigError

    variants = read_variants(_csv(tmp_path, "mutant\nK2R\n"), WT)
    with pytest.raises(ConfigError, match=r"'llr' is not available for a mlm checkpoint"):
        Scorer(tiny_model(causal=False)).score_variants(variants, ["llr"])
