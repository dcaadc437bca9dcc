"""Token ids are part of every checkpoint: this pins them."""

from protperf.data.alphabet import Alphabet


def test_token_ids_are_pinned():
    alphabet = Alphabet()
    assert alphabet.tokens[:5] == ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")
    special_ids = (alphabet.pad_id, alphabet.mask_id, alphabet.cls_id, alphabet.eos_id)
    assert special_ids + (alphabet.unk_id,) == (0, 1, 2, 3, 4)
    assert alphabet.bos_id == alphabet.cls_id
    assert "".join(alphabet.tokens[5:25]) == "ACDEFGHIKLMNPQRSTVWY"
    assert "".join(alphabet.tokens[25:]) == "XBZUO"
    assert alphabet.vocab_size == 30
    assert alphabet.standard_ids == list(range(5, 25))
