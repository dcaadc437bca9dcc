"""FASTA reading and every kind of bad input, through prepare() as users meet them."""

import gzip
import re

import numpy as np
import pytest

from protperf.data.config import PrepareConfig
from protperf.data.fasta import FastaFormatError, read_fasta
from protperf.data.preparation.pipeline import prepare
from protperf.data.shards import PreparedSplit

ALL_TRAIN = dict(valid_fraction=0.0, test_fraction=0.0)
GOOD = ">sp|P1 first protein\nMKV\nLLA*\n>P2\nmkw\n"


def _prepare(path, tmp_path, **kwargs):
    return prepare(path, tmp_path / "out", PrepareConfig(**{**ALL_TRAIN, **kwargs}))


def test_reads_ids_from_first_word_and_strips_stop(fasta, tmp_path):
    path = fasta(GOOD)
    assert list(read_fasta(path)) == [("sp|P1", "MKVLLA*"), ("P2", "mkw")]
    manifest = _prepare(path, tmp_path)
    split = PreparedSplit(tmp_path / "out", "train")
    assert split.ids() == ["sp|P1", "P2"]
    assert [split[i].tolist() for i in range(2)] == [
        [15, 13, 22, 14, 14, 5],  # MKVLLA, '*' stripped
        [15, 13, 23],  # lowercase uppercased
    ]
    assert manifest["residues"] == 9


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.fasta"
    with pytest.raises(FileNotFoundError, match=f"FASTA file not found: {re.escape(str(missing))}"):
        _prepare(missing, tmp_path)


def test_content_before_first_header(fasta, tmp_path):
    path = fasta("\n\nMKV\n>P1\nMKV\n")
    with pytest.raises(FastaFormatError, match=r"in\.fasta: line 3: content before the first '>'"):
        _prepare(path, tmp_path)


def test_empty_records_are_counted(fasta, tmp_path):
    manifest = _prepare(fasta(">E1\n>P1\nMKV\n>E2\n*\n>E3\n\n"), tmp_path)
    assert manifest["sequences_read"] == 4
    assert manifest["sequences_kept"] == 1
    assert manifest["skipped"]["empty"] == 3


def test_empty_header_names_line(fasta, tmp_path):
    with pytest.raises(FastaFormatError, match=r"line 3: empty FASTA header"):
        _prepare(fasta(">P1\nMKV\n>\nMKV\n"), tmp_path)


def test_invalid_character_error_names_record_and_line(fasta, tmp_path):
    path = fasta(">P1\nMKV\n>P2 desc\nMKVLL\nMK1V\n")
    with pytest.raises(
        FastaFormatError,
        match=r"in\.fasta: line 5: record 'P2': invalid character '1' .*data\.on_invalid=skip",
    ):
        _prepare(path, tmp_path)


def test_invalid_character_error_line_in_later_chunk(fasta, tmp_path):
    records = "".join(f">R{i}\n{'ACDEFGHIKL' * 30}\n" for i in range(100))
    path = fasta(records + ">BAD\nMKV\nM-V\n")
    with pytest.raises(FastaFormatError, match=r"line 203: record 'BAD': invalid character '-'"):
        _prepare(path, tmp_path, chunk_bytes=4096)


def test_invalid_character_skip_is_counted(fasta, tmp_path):
    manifest = _prepare(fasta(">P1\nMK1V\n>P2\nMKV\n>P3\nM.K\n"), tmp_path, on_invalid="skip")
    assert manifest["skipped"]["invalid_characters"] == 2
    assert manifest["sequences_kept"] == 1


def test_truncated_gzip(fasta, tmp_path):
    data = gzip.compress(("".join(f">P{i}\n{'MKV' * 50}\n" for i in range(2000))).encode())
    path = tmp_path / "cut.fasta.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FastaFormatError, match=r"cut\.fasta\.gz: truncated or corrupt gzip"):
        _prepare(path, tmp_path)


def test_crlf_and_gzip_give_the_same_tokens(fasta, tmp_path):
    text = ">P1 x\nMKV\nLLA\n>P2\nWWY\n"
    outs = []
    for name, body, gz in [("lf.fa", text, False), ("crlf.fa", text.replace("\n", "\r\n"), False),
                           ("lf.fa.gz", text, True), ("crlf.fa.gz", text.replace("\n", "\r\n"),
                                                      True)]:
        path = fasta(body, name=name, compress=gz)
        out = tmp_path / f"out-{name}"
        prepare(path, out, PrepareConfig(**ALL_TRAIN))
        split = PreparedSplit(out, "train")
        outs.append((split.ids(), [split[i].tolist() for i in range(len(split))]))
    assert all(o == outs[0] for o in outs)
    assert outs[0][0] == ["P1", "P2"]


def test_length_filters_and_truncation(fasta, tmp_path):
    text = ">S\nMK\n>M\nMKVLA\n>L\nMKVLAMKVLA\n"
    manifest = _prepare(fasta(text), tmp_path, min_residues=3, max_residues=6)
    assert manifest["skipped"]["too_short"] == 1 and manifest["skipped"]["too_long"] == 1
    assert manifest["sequences_kept"] == 1
    out2 = prepare(fasta(text, name="b.fa"), tmp_path / "out2",
                   PrepareConfig(**ALL_TRAIN, min_residues=3, max_residues=6,
                                 long_policy="truncate"))
    assert out2["truncated"] == 1 and out2["skipped"]["too_long"] == 0
    lengths = PreparedSplit(tmp_path / "out2", "train").lengths
    assert np.array_equal(lengths, [5, 6])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(valid_fraction=0.6, test_fraction=0.5), "valid_fraction \\+ data.prepare.test_f"),
        (dict(long_policy="crop"), "data.prepare.long_policy must be 'skip' or 'truncate'"),
        (dict(on_invalid="ignore"), "data.prepare.on_invalid must be 'error' or 'skip'"),
        (dict(min_residues=10, max_residues=5), "data.prepare.max_residues \\(5\\) must be >="),
    ],
)
def test_bad_settings_name_the_key(fasta, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare(fasta(GOOD), tmp_path / "out", PrepareConfig(**kwargs))


@pytest.mark.parametrize(
    "titles",
    [["a b", "c d e", "UniRef50_Q6GZX4 Putative n=1"], ["a\tb", " lead", "x\xa0y", "p|q r"]],
)
def test_record_ids_match_first_whitespace_word(titles):
    from protperf.data.preparation.records import _record_ids

    assert _record_ids(titles) == [t.split()[0] for t in titles]


def test_only_one_trailing_stop_is_stripped(fasta, tmp_path):
    manifest = _prepare(fasta(">A\nMK*\n>B\nMK**\n>C\nM*K\n>D\n*\n"), tmp_path,
                        on_invalid="skip")
    assert manifest["sequences_kept"] == 1
    assert manifest["skipped"]["invalid_characters"] == 2
    assert manifest["skipped"]["empty"] == 1
    assert PreparedSplit(tmp_path / "out", "train").ids() == ["A"]
