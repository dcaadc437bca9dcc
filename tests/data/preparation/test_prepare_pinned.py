"""Pins the prepared output of the bundled sample: any change to ids, splits, tokens, offsets
or chunking shows up here.  The hashes were recorded with the pipeline as merged for issue 2
(biopython parser only), before the vectorized splitter existed; if a change is intended,
bump ALPHABET_VERSION / FORMAT_VERSION as appropriate and record the new hashes."""

import gzip
import hashlib
import json
import zlib
from pathlib import Path

import pytest

from protperf.data.config import SAMPLE_FASTA, PrepareConfig
from protperf.data.preparation.pipeline import prepare

SAMPLE_SHARDS = {
    "test/00000.ids.txt": "5ba54431b45157e44d017dac65a966736fe5c265e95a42a2db52d561e1e530c3",
    "test/00000.offsets.npy": "f584e6a090392e862b3f8f5dc04a822a2ccf7e68fc79ed144e5a097712e9fe91",
    "test/00000.tokens.npy": "de897f83d75502edbe8856439cf968005e3bdb6b6e268f314d2be37a5865dd96",
    "train/00000.ids.txt": "b53f8ac2def497acc1c8a47047b1ffa7296f23a7bff8370a9bd9b4ee52308529",
    "train/00000.offsets.npy": "21f8dbac805d25f01eb3dff375a8253b3af4a95e50c2f7b88bd35cafd670ad3b",
    "train/00000.tokens.npy": "898accfcbfd044a42fbdab3872b16c242c9b110057fc92b970355e033b65cfcc",
    "valid/00000.ids.txt": "6364e0bdf0acd4d4caf25df779f4e968b69ac4e6b9ff7d4ca2f1da1740f24091",
    "valid/00000.offsets.npy": "99006de0ae664fe4588577faf4500c29399d2eca1c6fe3bf253c0bf0acd34444",
    "valid/00000.tokens.npy": "8b40e231f0da9f07b61527c4d9eb29be74234b2121792e1b0c31fb14f3f5022d",
}
#: sha256 of the manifest (sorted JSON) without ``source.path``, for the .gz and plain inputs.
#: Recorded for format protperf-shards-2 (file sizes and CRC-32, duplicate-id and nucleotide
#: counters, two new settings); without those additions they hash to the format-1 pins
#: 0f12694b... (gz) and 4b85596b... (plain).
SAMPLE_MANIFEST = {
    "gz": "3e4f80c3f33c95e78b3fdaa7469ac40589e4e5a00beb23259b791afdeee8c26e",
    "plain": "22aac9255f579212a5a6c47707431ae127c62c67b92cbd8e86bdab786c336c7d",
}
#: sha256 of the "path sha256" listing of all shard files, plain sample cut in 128 KiB chunks
SAMPLE_PLAIN_128K = "b1608888a6993045e7228f3449715bc23935df17f682eaf27f72700bfc434c0d"


def _shard_digests(directory: Path) -> dict:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "manifest.json"
    }


def _manifest_digest(directory: Path) -> str:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["source"].pop("path")
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def test_sample_gz_output_is_pinned(sample_prepared):
    assert _shard_digests(sample_prepared) == SAMPLE_SHARDS
    assert _manifest_digest(sample_prepared) == SAMPLE_MANIFEST["gz"]
    manifest = json.loads((sample_prepared / "manifest.json").read_text())
    listed = {f"{split}/{entry['name']}.{suffix}": info
              for split, part in manifest["splits"].items() for entry in part["shards"]
              for suffix, info in entry["files"].items()}
    assert sorted(listed) == sorted(SAMPLE_SHARDS)
    for name, info in listed.items():
        data = (sample_prepared / name).read_bytes()
        assert info == {"bytes": len(data), "crc32": f"{zlib.crc32(data):08x}"}


@pytest.mark.parametrize("workers", [1, 2])
def test_sample_plain_output_is_pinned(tmp_path, workers):
    plain = tmp_path / "sample.fasta"
    plain.write_bytes(gzip.decompress(SAMPLE_FASTA.read_bytes()))
    cfg = PrepareConfig(valid_fraction=0.05, test_fraction=0.05)
    prepare(plain, tmp_path / "one", cfg, workers=workers)  # one chunk
    assert _shard_digests(tmp_path / "one") == SAMPLE_SHARDS
    assert _manifest_digest(tmp_path / "one") == SAMPLE_MANIFEST["plain"]
    cfg.chunk_bytes = 128 * 1024
    prepare(plain, tmp_path / "many", cfg, workers=workers)  # 8 chunks
    listing = "".join(f"{k} {v}\n" for k, v in _shard_digests(tmp_path / "many").items())
    assert hashlib.sha256(listing.encode()).hexdigest() == SAMPLE_PLAIN_128K
