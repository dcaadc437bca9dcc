"""Shard files: written from lists of pieces exactly as np.save / one text would write them, and
the same in a background thread; a write error in the background is raised, not lost."""

import io
import zlib

import numpy as np
import pytest

from protperf.data.preparation.writer import ShardWriter, write_shard


def _files(directory) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_pieces_are_written_like_np_save(tmp_path):
    tokens = np.arange(1000, dtype=np.uint8) % 25 + 5
    pieces = [memoryview(tokens)[:10], memoryview(tokens)[10:999], tokens[999:]]
    entry = write_shard(tmp_path / "train", "00000", pieces, [10, 989, 1], [b"A\nB\n", b"C\n"])
    files = entry.pop("files")
    assert entry == {"name": "00000", "sequences": 3, "residues": 1000}
    expected = io.BytesIO()
    np.save(expected, tokens)
    assert (tmp_path / "train" / "00000.tokens.npy").read_bytes() == expected.getvalue()
    for suffix, info in files.items():  # the manifest's size and sha256 of each file
        data = (tmp_path / "train" / f"00000.{suffix}").read_bytes()
        assert info == {"bytes": len(data), "crc32": f"{zlib.crc32(data):08x}"}
    assert (tmp_path / "train" / "00000.ids.txt").read_bytes() == b"A\nB\nC\n"
    offsets = np.load(tmp_path / "train" / "00000.offsets.npy")
    assert offsets.tolist() == [0, 10, 999, 1000]


def test_background_writer_writes_the_same_files(tmp_path):
    rng = np.random.default_rng(0)
    shards = []
    for k in range(7):
        lengths = rng.integers(0, 50, size=20)
        tokens = rng.integers(5, 30, size=int(lengths.sum()), dtype=np.uint8)
        ids = "".join(f"P{k}_{i}\n" for i in range(20)).encode()
        shards.append((f"{k:05d}", [tokens[:7], tokens[7:]], lengths, ids))
    entries = {}
    for label, background in (("sync", False), ("thread", True)):
        with ShardWriter(background=background) as writer:
            entries[label] = [writer.write(tmp_path / label / "train", *shard) for shard in shards]
    assert entries["sync"] == entries["thread"]
    assert _files(tmp_path / "sync") == _files(tmp_path / "thread")
    assert len(_files(tmp_path / "thread")) == 7 * 3


def test_background_write_error_is_raised(tmp_path):
    (tmp_path / "train").write_text("a file where the split folder should be")
    with pytest.raises(FileExistsError), ShardWriter(background=True) as writer:
        writer.write(tmp_path / "train", "00000", [b"\x05"], [1], b"P1\n")
