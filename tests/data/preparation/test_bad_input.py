"""Input that used to pass silently: no records, nucleotides, duplicate ids, headers that are
not UTF-8.  Every record read is kept or counted under a named reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protperf.data.config import PrepareConfig
from protperf.data.fasta import FastaFormatError
from protperf.data.preparation.chunk import nucleotide_like
from protperf.data.preparation.duplicates import SeenDigests, duplicate_mask
from protperf.data.preparation.pipeline import prepare
from protperf.data.shards import SPLITS, PreparedSplit
from protperf.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
PROTEIN = "MKVLAAGIVGLLLAWSPQEHRKDEFWY"


def _all_ids(directory: Path) -> list[str]:
    return [i for split in SPLITS for i in PreparedSplit(directory, split).ids()]


def _assert_invariant(manifest: dict) -> None:
    assert manifest["sequences_read"] == (manifest["sequences_kept"]
                                          + sum(manifest["skipped"].values()))
    assert manifest["sequences_kept"] == sum(s["sequences"] for s in manifest["splits"].values())
    assert manifest["residues"] == sum(s["residues"] for s in manifest["splits"].values())


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_no_records_is_an_error(fasta, tmp_path, text):
    path = fasta(text)
    with pytest.raises(DataError) as error:
        prepare(path, tmp_path / "out")
    assert str(error.value) == f"no records in {path}"
    assert not (tmp_path / "out").exists()


def test_no_records_from_the_script(fasta, tmp_path):
    path = fasta("")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_data.py"),
                             str(path), "--out", str(tmp_path / "out")], env=env,
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"error: no records in {path}\n")


def test_nucleotide_like_is_exact_per_record():
    text = b"ACGTACGTACGTN" + b"acgu" + b"ACGTACGTACGTACGTM" + b"MKV" + b"ACG*"
    lengths = np.array([13, 4, 17, 3, 0, 3])
    from protperf.data.preparation.records import CHUNK_TABLE
    tokens = np.frombuffer(text.translate(CHUNK_TABLE), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    expected = [True, True, False, False, False, True]  # empty: not nucleotide-like
    assert nucleotide_like(tokens, starts, lengths).tolist() == expected
    many = np.tile(lengths[:2], 40)  # mostly nucleotides: the bulk branch
    tokens2 = np.frombuffer((b"ACGTACGTACGTN" + b"acgu").translate(CHUNK_TABLE) * 40, np.uint8)
    starts2 = np.concatenate(([0], np.cumsum(many)[:-1]))
    assert nucleotide_like(tokens2, starts2, many).all()


def test_nucleotide_fasta_is_refused_unless_allowed(fasta, tmp_path):
    records = "".join(f">dna{i}\n{'ACGTTGCA' * (i + 2)}\n" for i in range(3))
    path = fasta(records + f">prot\n{PROTEIN}\n")
    with pytest.raises(FastaFormatError) as error:
        prepare(path, tmp_path / "out")
    assert str(error.value) == (
        f"{path}: line 1: record 'dna0' looks like a nucleotide sequence (only A/C/G/T/U/N), "
        "like 3 of the 4 records around it; expected protein FASTA (--allow-nucleotide / "
        "data.prepare.allow_nucleotide=true to prepare it anyway)")
    assert not (tmp_path / "out").exists()
    manifest = prepare(path, tmp_path / "out", PrepareConfig(allow_nucleotide=True))
    assert (manifest["nucleotide_like"], manifest["sequences_kept"]) == (3, 4)
    # a protein file with a few nucleotide-like records is prepared, and they are counted
    mixed = fasta(records + "".join(f">p{i}\n{PROTEIN}\n" for i in range(4)), name="mixed.fa")
    assert prepare(mixed, tmp_path / "mixed")["nucleotide_like"] == 3


def test_seen_digests_across_many_runs():
    rng = np.random.default_rng(0)
    seen = SeenDigests()
    reference: set[int] = set()
    for _ in range(40):
        digests = rng.integers(0, 500, size=rng.integers(1, 60)).astype(np.uint64)
        expected = []
        for d in digests.tolist():
            expected.append(d in reference)
            reference.add(d)
        assert duplicate_mask(digests, seen).tolist() == expected
    assert len(seen) == len(reference)


@pytest.mark.parametrize(("workers", "compress"), [(1, False), (2, False), (2, True)])
def test_duplicate_ids_are_counted_or_dropped_across_chunks(fasta, tmp_path, workers, compress):
    ids = [f"P{i % 150}" for i in range(400)]  # 250 repeats of earlier ids, in later chunks
    text = "".join(f">{rid} n={k}\n{PROTEIN[: 5 + k % 20]}\n" for k, rid in enumerate(ids))
    # one empty record: skipped before the duplicate check
    path = fasta(text + ">short\n\n", name="in.fa.gz" if compress else "in.fa",
                 compress=compress)
    base = dict(chunk_bytes=1024, valid_fraction=0.2, test_fraction=0.2)
    kept = prepare(path, tmp_path / "keep", PrepareConfig(**base), workers=workers)
    assert (kept["duplicate_ids"], kept["sequences_kept"]) == (250, 400)
    assert kept["skipped"]["duplicate_id"] == 0 and kept["skipped"]["empty"] == 1
    assert sorted(_all_ids(tmp_path / "keep")) == sorted(ids)
    dropped = prepare(path, tmp_path / "drop", PrepareConfig(**base, duplicate_ids="drop"),
                      workers=workers)
    assert dropped["duplicate_ids"] == 250 and dropped["skipped"]["duplicate_id"] == 250
    assert dropped["sequences_kept"] == 150
    assert sorted(_all_ids(tmp_path / "drop")) == sorted(set(ids))
    # the first occurrence is the one kept: P7 is record 7, 5 + 7 residues
    for split in SPLITS:
        part = PreparedSplit(tmp_path / "drop", split)
        for i, rid in enumerate(part.ids()):
            assert len(part[i]) == 5 + int(rid[1:]) % 20
    for manifest in (kept, dropped):
        _assert_invariant(manifest)
    from protperf.data.preparation.validate import verify_prepared
    assert verify_prepared(tmp_path / "drop", checksums=True) == dropped


def test_header_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_bytes(b">ok1\nMKV\n>ok2 caf\xc3\xa9\nMKV\n>bad caf\xe9\nMKV\n")
    with pytest.raises(FastaFormatError) as error:
        prepare(path, tmp_path / "out")
    assert str(error.value) == f"{path}: line 5: header is not valid UTF-8 (byte 0xe9 at column 9)"
    assert not (tmp_path / "out").exists()


def test_utf8_header_ids_are_kept_as_written(tmp_path):
    path = tmp_path / "utf8.fa"
    path.write_bytes(">caf\u00e9 x\nMKV\n>\u4e2d\nMKV\n".encode())
    prepare(path, tmp_path / "out", PrepareConfig(valid_fraction=0.0, test_fraction=0.0))
    assert PreparedSplit(tmp_path / "out", "train").ids() == ["caf\u00e9", "\u4e2d"]


def test_duplicate_ids_within_one_chunk_keep_the_first(fasta, tmp_path):
    path = fasta(">A\nMK\n>B\nMKV\n>A\nMKVL\n>C\nMKVLA\n>B\nMKVLAG\n")
    cfg = PrepareConfig(valid_fraction=0.0, test_fraction=0.0, duplicate_ids="drop")
    manifest = prepare(path, tmp_path / "out", cfg)
    assert (manifest["duplicate_ids"], manifest["skipped"]["duplicate_id"]) == (2, 2)
    train = PreparedSplit(tmp_path / "out", "train")
    assert train.ids() == ["A", "B", "C"]
    assert [len(train[i]) for i in range(3)] == [2, 3, 5]
    _assert_invariant(manifest)
