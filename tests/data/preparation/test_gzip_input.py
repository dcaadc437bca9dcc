"""Gzipped input: decompressed in blocks, cut into the same chunks as its plain copy, and
prepared into byte-identical shards (1 and 2 processes); multi-member files and zero padding
read as Python's gzip module reads them; truncated or corrupt files give a clear error."""

import functools
import gzip
import hashlib
import json
import random
import re
import signal
import zlib
from pathlib import Path

import pytest

from protperf.data.config import SAMPLE_FASTA, PrepareConfig
from protperf.data.fasta import FastaFormatError
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.sources import chunk_starts, cut_chunks, gunzip_blocks, gzip_chunks
from protperf.errors import DataError


def _random_fasta(seed: int, records: int = 600) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(records):
        newline = b"\r\n" if rng.random() < 0.2 else b"\n"
        residues = bytes(rng.choice(b"ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(0, 400)))
        lines = [residues[j : j + 60] for j in range(0, len(residues), 60)]
        out.append(newline.join([b">R%d desc" % i, *lines]) + newline)
    return b"".join(out)


def _outputs(directory: Path) -> tuple[dict, dict]:
    """(sha256 of every shard file, manifest without its source)."""
    digests = {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.pop("source")
    return digests, manifest


def _chunks_of(text: bytes, chunk_bytes: int, piece: int) -> list[tuple[int, bytes]]:
    pieces = (text[i : i + piece] for i in range(0, len(text), piece))
    return [(start, bytes(data)) for start, data in cut_chunks(pieces, chunk_bytes)]


@pytest.mark.parametrize("chunk_bytes", [1000, 1024, 5000, 1 << 20])
def test_stream_is_cut_where_the_plain_file_is_cut(tmp_path, chunk_bytes):
    # records of exactly 100 bytes: a "\n>" sits right at the targets of chunk_bytes=1000
    text = _random_fasta(0, records=300)
    text += b"".join(b">E%04d\n%s\n" % (i, b"M" * 93) for i in range(100))
    plain = tmp_path / "x.fa"
    plain.write_bytes(text)
    starts = chunk_starts(plain, chunk_bytes)
    # pieces of 1 and 2 bytes split "\n>" at every possible place
    for piece in (1, 2, 7, 4096, len(text)):
        chunks = _chunks_of(text, chunk_bytes, piece)
        assert [start for start, _ in chunks] == starts, piece
        assert all(text[start : start + len(data)] == data for start, data in chunks)
        assert b"".join(data for _, data in chunks) == text
    assert (len(starts) > 50) == (chunk_bytes < 2000)


def test_stream_cut_edge_cases(tmp_path):
    assert _chunks_of(b"", 1024, 10) == [(0, b"")]  # an empty file is one empty chunk
    # records longer than a chunk (the next target moves past them), text before the first
    # '>' (stays in the first chunk, the parser reports it)
    texts = [b">A\n" + b"M" * 5000 + b"\n>B\nKV\n>C\nW\n>D\n" + b"K" * 1000 + b"\n>E\n",
             b"junk\n>A\nM\n>B\n" + b"W" * 2000 + b"\n" + b">C\nM\n" * 700]
    for text in texts:
        plain = tmp_path / "x.fa"
        plain.write_bytes(text)
        for piece in (1, 3, 100, 1 << 20):
            chunks = _chunks_of(text, 1024, piece)
            assert [s for s, _ in chunks] == chunk_starts(plain, 1024)
            assert b"".join(data for _, data in chunks) == text
    assert len(chunk_starts(plain, 1024)) == 6


def test_gzip_chunks_read_the_whole_file(tmp_path):
    text = _random_fasta(3)
    packed = tmp_path / "x.fa.gz"
    packed.write_bytes(gzip.compress(text, mtime=0))
    for block in (5, 1 << 22):
        assert b"".join(gunzip_blocks(packed, block)) == text
    assert b"".join(data for _, data in gzip_chunks(packed, 2048)) == text


@pytest.mark.parametrize("workers", [1, 2])
def test_gz_prepares_to_the_same_bytes_as_plain(tmp_path, workers):
    plain = tmp_path / "sample.fasta"
    plain.write_bytes(gzip.decompress(SAMPLE_FASTA.read_bytes()))
    cfg = PrepareConfig(chunk_bytes=128 * 1024, valid_fraction=0.05, test_fraction=0.05)
    prepare(plain, tmp_path / "plain", cfg, workers=workers)
    prepare(SAMPLE_FASTA, tmp_path / "gz", cfg, workers=workers)  # 2 workers: a pool
    digests, manifest = _outputs(tmp_path / "gz")
    assert len(digests) == 8 * 9  # 8 chunks x 3 splits x 3 files
    assert (digests, manifest) == _outputs(tmp_path / "plain")


@pytest.mark.parametrize("layout", ["members", "padding", "empty_member", "empty_file"])
def test_multi_member_gzip_reads_like_the_gzip_module(tmp_path, layout):
    text = _random_fasta(1, records=300)
    third = len(text) // 3
    cut1 = text.index(b"\n>", third) + 1
    cut2 = text.index(b"\n>", 2 * third) + 1
    parts = [gzip.compress(text[:cut1], mtime=0), gzip.compress(text[cut1:cut2], mtime=0),
             gzip.compress(text[cut2:], mtime=0)]
    if layout == "padding":
        parts.insert(2, b"\0" * 5000)
        parts.append(b"\0" * 3)
    elif layout == "empty_member":
        parts.insert(1, gzip.compress(b"", mtime=0))
    elif layout == "empty_file":
        text, parts = b"", [gzip.compress(b"", mtime=0)]
    packed = tmp_path / "x.fa.gz"
    packed.write_bytes(b"".join(parts))
    assert gzip.decompress(packed.read_bytes()) == text  # the reference reader agrees
    assert b"".join(gunzip_blocks(packed, block=1000)) == text
    plain = tmp_path / "x.fa"
    plain.write_bytes(text)
    cfg = PrepareConfig(chunk_bytes=4096)
    if layout == "empty_file":  # no records: an error for both, nothing written
        for path, out in ((plain, "plain"), (packed, "gz")):
            with pytest.raises(DataError) as error:
                prepare(path, tmp_path / out, cfg)
            assert str(error.value) == f"no records in {path}"
            assert not (tmp_path / out).exists()
        return
    prepare(plain, tmp_path / "plain", cfg)
    prepare(packed, tmp_path / "gz", cfg)
    assert _outputs(tmp_path / "gz") == _outputs(tmp_path / "plain")


@functools.lru_cache(maxsize=1)
def _compressed_fasta() -> bytes:
    return gzip.compress(_random_fasta(2, records=3000), mtime=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_gzip_in_a_later_chunk(tmp_path, workers):
    data = _compressed_fasta()
    path = tmp_path / "cut.fasta.gz"
    path.write_bytes(data[: len(data) * 3 // 4])  # chunks before the cut are complete
    with pytest.raises(FastaFormatError,
                       match=r"cut\.fasta\.gz: truncated or corrupt gzip file \(the file ends "
                             r"inside a gzip member"):
        prepare(path, tmp_path / "out", PrepareConfig(chunk_bytes=1 << 16), workers=workers)
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_a_failing_pool_stops_under_a_parent_sigterm_handler(tmp_path):
    """A parent that handles SIGTERM itself (training's "save, then stop", a notebook): its
    forked pool workers still die on ``Pool.terminate`` when a later chunk fails (they kept the
    inherited handler and the parent waited for them forever)."""
    data = _compressed_fasta()
    path = tmp_path / "cut.fasta.gz"
    path.write_bytes(data[: len(data) * 3 // 4])
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        with pytest.raises(FastaFormatError, match=r"truncated or corrupt gzip file"):
            prepare(path, tmp_path / "out", PrepareConfig(chunk_bytes=1 << 16), workers=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "out").exists()


def test_corrupt_gzip(tmp_path):
    data = bytearray(_compressed_fasta())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path = tmp_path / "bad.fasta.gz"
    path.write_bytes(bytes(data))
    with pytest.raises((zlib.error, gzip.BadGzipFile)):
        gzip.decompress(bytes(data))  # the reference reader fails as well
    with pytest.raises(FastaFormatError, match=r"bad\.fasta\.gz: truncated or corrupt gzip file"):
        prepare(path, tmp_path / "out", PrepareConfig(chunk_bytes=1 << 16))


def test_garbage_after_a_member(tmp_path):
    path = tmp_path / "tail.fasta.gz"
    path.write_bytes(gzip.compress(b">P1\nMKV\n", mtime=0) + b"not gzip")
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(path.read_bytes())
    with pytest.raises(FastaFormatError, match=r"tail\.fasta\.gz: truncated or corrupt gzip"):
        prepare(path, tmp_path / "out")


@pytest.mark.parametrize(
    "tail, tail_line, message",
    [
        (b">P1\nMKV\n>  \nMKV\n", 3, r"line {}: empty FASTA header"),
        (b">P1\nMK-V\n", 2, r"line {}: record 'P1': invalid character '-'"),
        (b">P1\tx\nMK-V\n", 2, r"line {}: record 'P1': invalid character '-'"),  # tab: biopython
    ],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_gz_errors_name_the_same_line_as_plain(tmp_path, tail, tail_line, message, workers):
    head = _random_fasta(4, records=60)  # several chunks, compressed > chunk_bytes / 4: a pool
    text = head + tail
    line = head.count(b"\n") + tail_line
    errors = []
    for name, data in (("in.fa", text), ("in.fa.gz", gzip.compress(text, mtime=0))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FastaFormatError) as caught:
            prepare(tmp_path / name, tmp_path / f"out_{name}", PrepareConfig(chunk_bytes=1024),
                    workers=workers)
        errors.append(str(caught.value).replace(str(tmp_path / name), "FILE"))
    assert errors[0] == errors[1]
    assert re.search(message.format(line), errors[1]), errors[1]


def test_gz_content_before_the_first_header(tmp_path):
    path = tmp_path / "in.fa.gz"
    path.write_bytes(gzip.compress(b"\nMKV\n>P1\nMKV\n", mtime=0))
    with pytest.raises(FastaFormatError,
                       match=r"in\.fa\.gz: line 2: content before the first '>' header: 'MKV'"):
        prepare(path, tmp_path / "out")
