"""MLM masking statistics and CLM targets."""

import pytest
import torch

from protperf.data.alphabet import ALPHABET as A
from protperf.data.batching import IGNORE_INDEX
from protperf.data.collate import CLMCollator, MLMCollator, make_collator


def _examples(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(50, 600, (1,), generator=g))
        residues = torch.randint(5, 30, (length,), generator=g)  # all 25 letters
        residues[::37] = A.unk_id  # a few <unk>: special, never chosen
        out.append(torch.cat([torch.tensor([A.bos_id]), residues, torch.tensor([A.eos_id])]))
    return out


def _within(count, n, p, sigmas=5.0):
    return abs(count - n * p) < sigmas * (n * p * (1 - p)) ** 0.5


def test_mlm_statistics_on_a_fixed_seed():
    examples = _examples()
    batch = MLMCollator(0.15, seed=1234)(examples)
    original = torch.nn.utils.rnn.pad_sequence(examples, batch_first=True, padding_value=0)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.dtype == labels.dtype == torch.int64 and mask.dtype == torch.bool
    assert torch.equal(mask, original != A.pad_id)

    candidates = original >= A.num_special
    selected = labels != IGNORE_INDEX
    # specials (pad, bos, eos, unk) are never chosen and never changed
    assert not (selected & ~candidates).any()
    assert torch.equal(ids[~candidates], original[~candidates])
    assert torch.equal(labels[selected], original[selected])
    n_cand, n_sel = int(candidates.sum()), int(selected.sum())
    assert _within(n_sel, n_cand, 0.15), (n_sel, n_cand)

    masked = int((ids[selected] == A.mask_id).sum())
    unchanged = int((ids[selected] == original[selected]).sum())
    replaced = n_sel - masked - unchanged
    # a random replacement equals the original with probability 1/20 (standard letters
    # only; letters X B Z U O in the input are never drawn as replacements)
    p_same = 0.1 * float((original[selected] < 25).float().mean()) / 20
    assert _within(masked, n_sel, 0.8)
    assert _within(unchanged, n_sel, 0.1 + p_same)
    assert _within(replaced, n_sel, 0.1 - p_same)
    replacements = ids[selected & (ids != original) & (ids != A.mask_id)]
    assert ((replacements >= 5) & (replacements < 25)).all()  # standard amino acids only
    # positions that were not selected are untouched
    assert torch.equal(ids[~selected], original[~selected])


def test_mlm_same_seed_same_masks_and_never_empty():
    examples = _examples(8)
    a, b = MLMCollator(seed=7)(examples), MLMCollator(seed=7)(examples)
    assert all(torch.equal(a[k], b[k]) for k in a)
    tiny = [torch.tensor([A.bos_id, 5, A.eos_id])]
    for seed in range(20):  # 0.15 per residue would often select nothing here
        assert (MLMCollator(seed=seed)(tiny)["labels"] != IGNORE_INDEX).sum() == 1


def test_mlm_reseed_replays_the_masks_of_a_seed():
    examples = _examples(8)
    collator = MLMCollator(seed=3)
    first = collator(examples)
    collator(examples)  # the generator moved on
    collator.reseed(3)
    again = collator(examples)
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_clm_targets_are_next_tokens_and_pad_is_ignored():
    examples = [torch.tensor([2, 5, 6, 7, 3]), torch.tensor([2, 8, 3])]
    batch = CLMCollator()(examples)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7, 3, -100], [8, 3, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[True] * 5, [True, True, True, False, False]]


def test_unknown_objective():
    with pytest.raises(ValueError, match="unknown objective 'lm'; expected 'mlm' or 'clm'"):
        make_collator("lm")
