"""Fault injection for writers: a real read-only or full file system where this machine can
mount one (root in a container here), else the test is skipped; writers that fail with ENOSPC
or EROFS through monkeypatching run everywhere."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _mounted(path: Path, options: str) -> Iterator[Path]:
    if not _mount_tmpfs(path, options):
        pytest.skip(f"cannot mount a tmpfs ({options}) here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


@pytest.fixture
def readonly_dir(tmp_path) -> Iterator[Path]:
    """A read-only file system (chmod does not stop root, a read-only mount does)."""
    yield from _mounted(tmp_path / "readonly", "ro,size=1m")


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """A 64 KiB file system: any model or output larger than that fills it."""
    yield from _mounted(tmp_path / "tiny_disk", "size=64k")


def raise_errno(code: int):
    """A stand-in for a write call that fails as a full / read-only disk would."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


ENOSPC, EROFS, EACCES = errno.ENOSPC, errno.EROFS, errno.EACCES


from tests.pretrained.conftest import hf_esm_dirs  # noqa: E402, F401  (a tiny HF ESM-2)
