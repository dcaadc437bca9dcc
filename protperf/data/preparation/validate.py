"""Checking a prepared directory against its manifest before it is used.

:func:`verify_prepared` checks that every shard file the manifest lists exists with the size
it lists, that the counts add up, that each shard's offsets match its sequence and residue
counts, and that no shard file is there that the manifest does not list; with
``checksums=True`` it also compares each file's CRC-32 (reads every byte).  A damaged
directory raises :class:`~protperf.data.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from protperf.data.shards import FORMAT_VERSION, MANIFEST, SHARD_FILES, SPLITS
from protperf.errors import DataError

_AGAIN = "prepare it again (scripts/prepare_data.py ... --force)"


def load_manifest(directory: str | Path) -> dict:
    """The manifest of ``directory``, or a :class:`DataError` naming what is wrong with it."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory}: not a prepared dataset (no {MANIFEST}); run "
                        "scripts/prepare_data.py on a FASTA file first")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {_AGAIN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DataError(f"{path}: format {found!r}, expected {FORMAT_VERSION!r}; {_AGAIN}")
    return manifest


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def file_crc32(path: str | Path, block: int = 1 << 22) -> str:
    """CRC-32 of a file as 8 hex digits (what the manifest lists for shard files)."""
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def _check_shard(directory: Path, split: str, entry: dict, checksums: bool) -> None:
    base = directory / split / entry["name"]
    for suffix in SHARD_FILES:
        path = Path(f"{base}.{suffix}")
        expected = entry["files"][suffix]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{path}: missing (listed in {MANIFEST}); {_AGAIN}") from None
        if size != expected["bytes"]:
            raise DataError(f"{path}: {size} bytes, {MANIFEST} says {expected['bytes']} "
                            f"(truncated or replaced); {_AGAIN}")
        if checksums and file_crc32(path) != expected["crc32"]:
            raise DataError(f"{path}: CRC-32 differs from {MANIFEST} (corrupted); {_AGAIN}")
    offsets_path = Path(f"{base}.offsets.npy")
    try:
        offsets = np.load(offsets_path, mmap_mode="r")
    except ValueError as exc:
        raise DataError(f"{offsets_path}: not a valid .npy file ({exc}); {_AGAIN}") from None
    tokens = np.load(f"{base}.tokens.npy", mmap_mode="r")
    if (len(offsets) != entry["sequences"] + 1 or int(offsets[-1]) != entry["residues"]
            or len(tokens) != entry["residues"]):
        raise DataError(f"{offsets_path}: {len(offsets) - 1} sequences and {len(tokens)} "
                        f"tokens, {MANIFEST} says {entry['sequences']} and "
                        f"{entry['residues']}; {_AGAIN}")


def verify_prepared(directory: str | Path, checksums: bool = False) -> dict:
    """Check ``directory`` against its manifest (see the module docstring); returns the
    manifest.  Costs a few ``stat`` calls and two small reads per shard without
    ``checksums``; with them, a read of every file."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    where = directory / MANIFEST
    try:
        for split in SPLITS:
            info = manifest["splits"][split]
            listed = set()
            for entry in info["shards"]:
                _check_shard(directory, split, entry, checksums)
                listed.update(f"{entry['name']}.{suffix}" for suffix in SHARD_FILES)
            for key in ("sequences", "residues"):
                total = sum(entry[key] for entry in info["shards"])
                if total != info[key]:
                    raise DataError(f"{where}: split {split!r} lists {info[key]} {key} but "
                                    f"its shards hold {total}; {_AGAIN}")
            split_dir = directory / split
            extra = sorted(p.name for p in split_dir.iterdir() if p.name not in listed) \
                if split_dir.is_dir() else []
            if extra:
                raise DataError(f"{split_dir / extra[0]}: not listed in {MANIFEST} (a shard "
                                f"from another preparation?); {_AGAIN}")
    except (KeyError, TypeError) as exc:
        raise DataError(f"{where}: incomplete manifest (missing {exc}); {_AGAIN}") from None
    return manifest
