import numpy as np
import pytest

from protperf.data.alphabet import ENCODE_TABLE, INVALID_TOKEN, Alphabet
from protperf.data.batching import BatchConverter


def test_encode_decode_round_trip_all_letters():
    a = Alphabet()
    letters = "ACDEFGHIKLMNPQRSTVWYXBZUO"
    ids = a.encode(letters)
    assert ids.tolist() == list(range(5, 30))
    assert a.decode(ids) == letters
    with_special = BatchConverter().encode(letters)
    assert with_special[0] == a.bos_id and with_special[-1] == a.eos_id
    assert a.decode(with_special) == letters
    assert a.decode(with_special, strip_special=False) == "<cls>" + letters + "<eos>"


def test_lowercase_is_uppercased_and_j_is_unknown():
    a = Alphabet()
    assert a.encode("mkvl").tolist() == a.encode("MKVL").tolist()
    assert a.encode("J").tolist() == [a.unk_id]


@pytest.mark.parametrize("bad, pos", [("MK1L", 2), ("MK-", 2), ("M*K", 1), ("MÄ", 1)])
def test_encode_rejects_non_letters(bad, pos):
    with pytest.raises(ValueError, match=f"invalid residue .* at position {pos}"):
        Alphabet().encode(bad)


def test_encode_table_covers_only_letters():
    table = np.frombuffer(ENCODE_TABLE, dtype=np.uint8)
    valid = {chr(i) for i in range(256) if table[i] != INVALID_TOKEN}
    letters = set("ACDEFGHIKLMNPQRSTVWYXBZUOJ")
    assert valid == letters | {c.lower() for c in letters}
