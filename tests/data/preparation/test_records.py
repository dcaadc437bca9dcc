"""The vectorized record splitter agrees with biopython's SimpleFastaParser (the reference),
and prepare() gives the same output and the same errors with it as with the reference."""

import hashlib
import io
import random
import re
from pathlib import Path

import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser

import protperf.data.preparation.records as records_module
from protperf.data.config import PrepareConfig
from protperf.data.fasta import FastaFormatError
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.records import _record_ids, split_records
from protperf.data.preparation.splits import split_codes
from tests.data.preparation.conftest import sequences, split_of


def reference(data: bytes) -> list[tuple[str, str]]:
    return list(SimpleFastaParser(io.StringIO(data.decode("latin-1"), newline="\n")))


def fast(data: bytes) -> list[tuple[str, str]] | None:
    records = split_records(data, keep_titles=True)
    if records is None:
        return None
    assert len(records.titles) == len(records.lengths)
    if records.ids is not None:  # the bulk first words are the ids chunk.py would take
        assert [records.ids[i] for i in range(len(records.ids))] == _record_ids(records.titles)
        assert records.ids.text == "".join(f"{i}\n" for i in _record_ids(records.titles)).encode()
    return [(t.rstrip(), s) for t, s in zip(records.titles, sequences(records), strict=True)]


TRICKY = {
    "crlf": b">P1 x\r\nMKV\r\nLLA\r\n>P2\r\nWWY\r\n",
    "blank_lines": b">P1\n\nMKV\n\n\nLL\n>P2\n\n>P3\nA\n\n",
    "lowercase_and_stop": b">P1\nmkv\nlla*\n>P2\nMK*\n>P3\n*\n",
    "gt_inside_header": b">P1 a>b >c\nMKV\n>>P2\nAAA\n",
    "empty_records": b">E1\n>E2\n>P1\nMKV\n>E3\n",
    "last_without_newline": b">P1\nMKV\n>P2\nLLA",
    "last_header_without_newline": b">P1\nMKV\n>P2 desc",
    "spaces_in_sequences": b">P1\nMK V \n L L\n>P2\n  \n",
    "trailing_space_and_cr_in_header": b">P1 desc  \r\nMKV\n>P2\r\r\nAA\r\r\n",
    "empty_header": b">P1\nMKV\n>\nMKV\n>  \nA\n",
    "invalid_characters": b">P1\nMK-V\nM1.\n>P2\n#$%\n",
    "lone_cr_inside_sequence": b">P1\nMK\rV\n>P2\rx\nA\n",
    "only_header": b">P1",
}

FALLBACK = {
    "empty": b"",
    "leading_blank_line": b"\n>P1\nMKV\n",
    "leading_text": b"MKV\n>P1\nMKV\n",
    "tab_in_header": b">P1\tx\nMKV\n",
    "tab_in_sequence": b">P1\nMK\tV\n",
    "form_feed": b">P1\nMKV\x0c\n",
    "unit_separator": b">P1\x1fx\nMKV\n",
    "non_ascii": b">P1 caf\xe9\nMKV\n",
    "nbsp": b">P1\nMK\xa0V\n",
    "other_control_characters": b">P1\x01 x\nMK\x00V\x7f\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_splitter_matches_reference_on_tricky_input(name):
    data = TRICKY[name]
    assert fast(data) == reference(data)


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_splitter_defers_to_reference(name):
    assert split_records(FALLBACK[name]) is None


def _random_fasta(rng: random.Random) -> bytes:
    pieces = [b"M", b"k", b"ACDEFGHIKLMNPQRSTVWY", b"*", b" ", b"\r", b"-", b">", b"J", b"x"]
    out = []
    for _ in range(rng.randint(1, 12)):
        header = b">" + rng.choice([b"", b"id", b"UniRef50_Q6GZX4 n=1", b"a>b", b" lead"])
        header += rng.choice([b"", b" ", b"\r", b" \r"])
        lines = []
        for _ in range(rng.choice([0, 0, 1, 2, 5])):
            lines.append(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))))
        newline = rng.choice([b"\n", b"\r\n"])
        out.append(newline.join([header] + lines) + newline)
    data = b"".join(out)
    return data[:-1] if rng.random() < 0.3 else data


def test_splitter_matches_reference_on_random_input():
    rng = random.Random(0)
    checked = 0
    for _ in range(2000):
        data = _random_fasta(rng)
        result = fast(data)
        if result is not None:
            assert result == reference(data), data
            checked += 1
    assert checked > 1900  # the generator makes chunks the splitter accepts


def _digests(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def _prepare_both(path: Path, tmp_path: Path, monkeypatch, cfg: PrepareConfig, workers=1):
    """(output digests or error message) with the splitter, then with the reference only."""
    results = []
    for label in ("fast", "reference"):
        if label == "reference":
            monkeypatch.setattr(records_module, "split_records", lambda data: None)
        try:
            manifest = prepare(path, tmp_path / label, cfg, workers=workers)
            manifest["source"].pop("path")
            results.append((_digests(tmp_path / label), manifest))
        except FastaFormatError as exc:
            results.append(str(exc))
    return results


def _tricky_file(path: Path, seed: int, bad: bool) -> Path:
    rng = random.Random(seed)
    excluded = {"empty_header"} | (set() if bad else {"invalid_characters"})
    chunks = [TRICKY[name] for name in sorted(TRICKY) if name not in excluded]
    body = []
    for i in range(400):
        text = rng.choice(chunks).replace(b">P", b">R%d_P" % i).replace(b">E", b">R%d_E" % i)
        body.append(text if text.endswith(b"\n") else text + b"\n")
    path.write_bytes(b"".join(body))
    return path


@pytest.mark.parametrize("on_invalid", ["skip", "error"])
def test_prepare_same_with_splitter_and_reference(tmp_path, monkeypatch, on_invalid):
    path = _tricky_file(tmp_path / "tricky.fa", seed=1, bad=on_invalid == "skip")
    cfg = PrepareConfig(on_invalid=on_invalid, chunk_bytes=2048, valid_fraction=0.2,
                        test_fraction=0.1, min_residues=2, max_residues=12,
                        long_policy="truncate")
    fast_result, reference_result = _prepare_both(path, tmp_path, monkeypatch, cfg, workers=2)
    assert fast_result == reference_result
    assert isinstance(fast_result, tuple) and fast_result[1]["sequences_kept"] > 100


@pytest.mark.parametrize(
    "text, message",
    [
        (b">P1\nMKV\n>P2\r\nMK\r\nM K-V\r\n", r"line 306: record 'P2': invalid character '-'"),
        (b">P1\nMKV\n>  \r\nMKV\n", r"line 304: empty FASTA header"),
        (b">P1 x\nMK*V\n", r"line 303: record 'P1': invalid character '\*'"),
    ],
)
def test_errors_same_with_splitter_and_reference(tmp_path, monkeypatch, text, message):
    path = tmp_path / "in.fa"
    path.write_bytes(b">A\n" + b"ACDEFGHIKL\n" * 300 + text)  # the error is in the 2nd chunk
    cfg = PrepareConfig(chunk_bytes=1024)
    fast_result, reference_result = _prepare_both(path, tmp_path, monkeypatch, cfg)
    assert fast_result == reference_result
    assert re.search(message, fast_result), fast_result


def test_bulk_split_codes_match_split_of():
    rng = random.Random(2)
    ids = [f"UniRef50_{rng.getrandbits(40):X}" for _ in range(20000)]
    ids += ["sp|P1|X", "caf\xe9", "\u00e9\u4e2d", "a" * 300]
    for valid, test in ((0.05, 0.05), (0.1, 0.0), (0.0, 0.3), (0.0, 0.0)):
        cfg = PrepareConfig(valid_fraction=valid, test_fraction=test)
        names = ["train", "valid", "test"]
        assert [names[c] for c in split_codes(ids, cfg)[0]] == [split_of(i, valid, test)
                                                              for i in ids]
