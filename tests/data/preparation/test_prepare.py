"""Preparing: manifest, split rule, shard round-trip, byte-identical output, the script."""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protperf.data.alphabet import ALPHABET
from protperf.data.config import SAMPLE_FASTA, PrepareConfig
from protperf.data.fasta import read_fasta
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.sources import chunk_starts
from protperf.data.shards import SPLITS, PreparedSplit, read_manifest
from protperf.errors import DataError
from tests.data.preparation.conftest import split_of

ROOT = Path(__file__).resolve().parents[3]


def _tree_digest(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_sample_manifest_counts(sample_prepared):
    m = read_manifest(sample_prepared)
    assert m["sequences_read"] == 2100 and m["sequences_kept"] == 2100
    assert m["residues"] == 682_583 - 2_099  # the file's letters minus stripped stop codons
    assert sum(m["splits"][s]["sequences"] for s in SPLITS) == 2100
    assert sum(m["splits"][s]["residues"] for s in SPLITS) == m["residues"]
    assert m["source"]["sha256"] == hashlib.sha256(SAMPLE_FASTA.read_bytes()).hexdigest()
    assert m["alphabet"]["tokens"] == list(ALPHABET.tokens)
    assert m["alphabet"]["version"] == "protperf-alphabet-1"


def test_shard_round_trip_matches_fasta(sample_prepared):
    a = ALPHABET
    expected = {rid: seq.rstrip("*").upper() for rid, seq in read_fasta(SAMPLE_FASTA)}
    seen = 0
    for split_name in SPLITS:
        split = PreparedSplit(sample_prepared, split_name)
        for i, rid in enumerate(split.ids()):
            assert a.decode(split[i]) == expected[rid]
            assert split_of(rid, 0.05, 0.05) == split_name
            seen += 1
    assert seen == len(expected)


def test_split_is_deterministic_and_follows_fractions():
    ids = [f"UniRef50_A{i:07d}" for i in range(40_000)]
    first = [split_of(i, 0.1, 0.05) for i in ids]
    assert first == [split_of(i, 0.1, 0.05) for i in ids]
    n = len(ids)
    for name, p in (("valid", 0.1), ("test", 0.05), ("train", 0.85)):
        count = first.count(name)
        # binomial: within 5 standard deviations
        assert abs(count - n * p) < 5 * (n * p * (1 - p)) ** 0.5, (name, count)
    # a fixed id has a fixed split (pins the hash rule across machines and versions)
    u = int.from_bytes(hashlib.blake2b(b"UniRef50_Q6GZX4", digest_size=8).digest(), "big") / 2**64
    expected = "test" if u < 0.05 else "valid" if u < 0.15 else "train"
    assert split_of("UniRef50_Q6GZX4", 0.1, 0.05) == expected
    # growing valid_fraction only moves train ids into valid
    grown = [split_of(i, 0.2, 0.05) for i in ids]
    assert all(b == a or (a, b) == ("train", "valid") for a, b in zip(first, grown, strict=False))


def test_byte_identical_across_runs_processes_and_compression(tmp_path):
    plain = tmp_path / "sample.fasta"
    plain.write_bytes(gzip.decompress(SAMPLE_FASTA.read_bytes()))
    cfg = PrepareConfig(chunk_bytes=128 * 1024)
    assert len(chunk_starts(plain, cfg.chunk_bytes)) == 8
    prepare(plain, tmp_path / "a", cfg, workers=1)
    prepare(plain, tmp_path / "b", cfg, workers=1)
    prepare(plain, tmp_path / "c", cfg, workers=2)
    a, b, c = (_tree_digest(tmp_path / x) for x in "abc")
    assert a == b == c
    # the gzipped file holds the same proteins in the same splits
    prepare(SAMPLE_FASTA, tmp_path / "gz", cfg)
    for split in SPLITS:
        x, y = PreparedSplit(tmp_path / "a", split), PreparedSplit(tmp_path / "gz", split)
        assert x.ids() == y.ids()
        assert all(np.array_equal(x[i], y[i]) for i in range(len(x)))


def test_chunk_starts_are_record_starts(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b"".join(b">R%d\n%s\n" % (i, b"MKV" * (i % 50 + 1)) for i in range(3000)))
    data = path.read_bytes()
    starts = chunk_starts(path, 4096)
    assert starts[0] == 0 and len(starts) > 10 and starts == sorted(set(starts))
    assert all(data[s : s + 1] == b">" and data[s - 1 : s] == b"\n" for s in starts[1:])


def test_refuses_to_overwrite_without_force(sample_prepared):
    message = (f"{sample_prepared}: already prepared from another input, with other settings "
               "or an older format; pass --force (overwrite=True) to replace it")
    with pytest.raises(DataError) as error:
        prepare(SAMPLE_FASTA, sample_prepared, PrepareConfig(valid_fraction=0.1))  # not 0.05
    assert str(error.value) == message


def test_same_input_and_settings_are_accepted_as_prepared(sample_prepared):
    before = (sample_prepared / "manifest.json").stat().st_mtime_ns
    cfg = PrepareConfig(valid_fraction=0.05, test_fraction=0.05)
    assert prepare(SAMPLE_FASTA, sample_prepared, cfg) == read_manifest(sample_prepared)
    assert (sample_prepared / "manifest.json").stat().st_mtime_ns == before


def test_prepare_data_script_default_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROTPERF_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, str(ROOT / "scripts" / "prepare_data.py")]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "read        2,100 sequences" in first.stdout
    assert "kept        2,100 sequences, 680,484 residues" in first.stdout
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "already prepared" in second.stdout
    manifests = list((tmp_path / "cache").glob("*/manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["settings"]["valid_fraction"] == 0.05
    bad = subprocess.run(cmd + ["missing.fa"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert "error: FASTA file not found: missing.fa" in bad.stderr
