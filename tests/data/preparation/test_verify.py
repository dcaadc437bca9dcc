"""verify_prepared: a damaged prepared directory is an error naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from protperf.data.config import DataConfig
from protperf.data.preparation.cache import ensure_prepared
from protperf.data.preparation.validate import verify_prepared
from protperf.data.shards import read_manifest
from protperf.errors import DataError

AGAIN = "prepare it again (scripts/prepare_data.py ... --force)"


@pytest.fixture
def prepared(sample_prepared, tmp_path):
    copy = tmp_path / "prepared"
    shutil.copytree(sample_prepared, copy)
    return copy


def _edit_manifest(directory, edit) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _message(directory, checksums=False) -> str:
    with pytest.raises(DataError) as error:
        verify_prepared(directory, checksums=checksums)
    return str(error.value)


def test_intact_directory_passes(prepared):
    assert verify_prepared(prepared, checksums=True) == read_manifest(prepared)


def test_truncated_shard(prepared):
    path = prepared / "train" / "00000.tokens.npy"
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 10)
    assert _message(prepared) == (f"{path}: {size - 10} bytes, manifest.json says {size} "
                                  f"(truncated or replaced); {AGAIN}")


def test_missing_shard_and_extra_shard(prepared):
    path = prepared / "valid" / "00000.ids.txt"
    moved = prepared / "valid" / "00001.ids.txt"
    path.rename(moved)
    assert _message(prepared) == f"{path}: missing (listed in manifest.json); {AGAIN}"
    shutil.copy(moved, path)
    assert _message(prepared) == (f"{moved}: not listed in manifest.json (a shard from another "
                                  f"preparation?); {AGAIN}")


def test_manifest_that_does_not_match_its_shards(prepared):
    def more_sequences(manifest):
        manifest["splits"]["test"]["sequences"] += 1

    _edit_manifest(prepared, more_sequences)
    split = read_manifest(prepared)["splits"]["test"]
    assert _message(prepared) == (
        f"{prepared / 'manifest.json'}: split 'test' lists {split['sequences']} sequences but "
        f"its shards hold {split['sequences'] - 1}; {AGAIN}")

    def shard_too(manifest):
        manifest["splits"]["test"]["shards"][0]["sequences"] += 1

    _edit_manifest(prepared, shard_too)
    n = split["sequences"] - 1
    assert _message(prepared) == (
        f"{prepared / 'test' / '00000.offsets.npy'}: {n} sequences and {split['residues']} "
        f"tokens, manifest.json says {n + 1} and {split['residues']}; {AGAIN}")


def test_corrupted_byte_is_found_with_checksums_only(prepared):
    path = prepared / "train" / "00000.tokens.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert verify_prepared(prepared)["sequences_read"] == 2100
    assert _message(prepared, checksums=True) == (
        f"{path}: CRC-32 differs from manifest.json (corrupted); {AGAIN}")


def test_old_format_and_broken_manifest(prepared):
    _edit_manifest(prepared, lambda m: m.update(format="protperf-shards-1"))
    assert _message(prepared) == (f"{prepared / 'manifest.json'}: format 'protperf-shards-1', "
                                  f"expected 'protperf-shards-2'; {AGAIN}")
    _edit_manifest(prepared, lambda m: m.update(format="protperf-shards-2", splits={}))
    assert _message(prepared) == (f"{prepared / 'manifest.json'}: incomplete manifest "
                                  f"(missing 'train'); {AGAIN}")


def test_setup_checks_a_prepared_directory(prepared):
    (prepared / "test" / "00000.tokens.npy").unlink()
    with pytest.raises(DataError, match=r"00000\.tokens\.npy: missing"):
        ensure_prepared(DataConfig(path=str(prepared)))
