from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from protperf.data.config import SAMPLE_FASTA, PrepareConfig
from protperf.data.preparation.pipeline import prepare


def write_fasta(path: Path, text: str, compress: bool = False) -> Path:
    data = text.encode("latin-1")
    if compress:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def fasta(tmp_path):
    """fasta(text, name="in.fasta", compress=False) -> path of a new FASTA file."""

    def make(text: str, name: str = "in.fasta", compress: bool = False) -> Path:
        return write_fasta(tmp_path / name, text, compress)

    return make


@pytest.fixture(scope="session")
def sample_prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "prepared"
    prepare(SAMPLE_FASTA, out, PrepareConfig(valid_fraction=0.05, test_fraction=0.05))
    return out
