"""Bad inputs to score / embed / evaluate: one line naming the file (and line or record),
exit 2, no traceback, before the model is loaded where the input can be read first."""

from __future__ import annotations

import numpy as np
import pytest

from protperf.checkpoint.module import read_checkpoint
from protperf.data.fasta import FastaFormatError, read_fasta
from protperf.errors import CheckpointError, InferenceInputError
from protperf.inference.embed import ProteinEmbedding
from protperf.inference.embed_io import EmbeddingWriter, load_means
from protperf.inference.mutations import parse_mutant, read_variants
from tests.cli.helpers import error_line, run_command

WT = "MKTAYIAKQRQISFVKSHFSRQA"  # A at position 23
NOT_UTF8 = b">sp|P1|caf\xe9 protein\nMKTAYIAKQR\n"


def _unread_checkpoint(folder) -> str:
    """A file named like a checkpoint that is none: read only if the inputs pass."""
    (folder / "unread.ckpt").write_bytes(b"not a checkpoint")
    return "unread.ckpt"


def _score(tmp_path, mutations: str | bytes, wildtype: str = f">wt\n{WT}\n", *extra: str):
    csv, fasta = tmp_path / "variants.csv", tmp_path / "wt.fasta"
    csv.write_bytes(mutations if isinstance(mutations, bytes) else mutations.encode())
    fasta.write_text(wildtype)
    # the checkpoint is no checkpoint: the inputs are read (and refused) before the model
    args = [f"checkpoint={_unread_checkpoint(tmp_path)}", f"mutations={csv}", f"wildtype={fasta}",
            f"output={tmp_path / 'scores.csv'}", "hydra.run.dir=run", *extra]
    return run_command("score.py", args, tmp_path), csv, fasta


def test_mutant_letter_that_is_no_amino_acid():
    with pytest.raises(ValueError, match=r"^mutant 'A23J': 'J' is not an amino-acid letter "
                                         r"\(one of ACDEFGHIKLMNPQRSTVWY or XBZUO\)$"):
        parse_mutant("A23J")


def test_score_mutant_a23j(tmp_path):
    result, csv, _ = _score(tmp_path, "mutant\nK2R\nA23J\n")
    assert error_line(result) == (f"error: {csv}: line 3: mutant 'A23J': 'J' is not an "
                                  "amino-acid letter (one of ACDEFGHIKLMNPQRSTVWY or XBZUO)")


def test_score_empty_csv(tmp_path):
    result, csv, _ = _score(tmp_path, b"")
    assert error_line(result) == (
        f"error: {csv}: empty file (expected a CSV with a 'mutant' column)")


def test_unreadable_csv(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b"mutant\n\xff\xfeK2R\n")
    with pytest.raises(InferenceInputError, match=rf"^{path}: not a readable CSV file \("):
        read_variants(path, WT)


def test_score_wildtype_with_two_records(tmp_path):
    two = f">wt\n{WT}\n>other\nMKT\n"
    result, _, fasta = _score(tmp_path, "mutant\nK2R\n", two)
    assert error_line(result) == (f"error: {fasta}: 2 records (wt, other); say which is the "
                                  "wild type with wildtype_id=<record id>")
    result, _, fasta = _score(tmp_path, "mutant\nK2R\n", two, "wildtype_id=nope")
    assert error_line(result) == (
        f"error: {fasta}: no record with id wildtype_id='nope' (ids: wt, other)")


def test_score_wildtype_id_picks_the_record(tmp_path):
    from protperf.app.score import read_wildtype

    path = tmp_path / "two.fasta"
    path.write_text(f">other\nMKT\n>wt\n{WT}*\n")
    assert read_wildtype(str(path), "wt") == WT
    assert read_wildtype(str(path), "other") == "MKT"


def test_embed_empty_fasta(tmp_path):
    (tmp_path / "empty.fasta").write_text("")
    result = run_command("embed.py", [f"checkpoint={_unread_checkpoint(tmp_path)}",
                                      "data.path=empty.fasta",
                                      "output_dir=emb", "hydra.run.dir=run"], tmp_path)
    assert error_line(result) == "error: empty.fasta: no FASTA records to embed"
    assert not (tmp_path / "emb").exists()


def test_embed_header_only_fasta_is_refused_before_any_bar_or_folder(tmp_path):
    (tmp_path / "header.fasta").write_text(">P1 a header, no residues\n")
    result = run_command("embed.py", [f"checkpoint={_unread_checkpoint(tmp_path)}",
                                      "data.path=header.fasta", "output_dir=emb"], tmp_path)
    assert error_line(result) == "error: header.fasta: record P1: empty sequence"
    assert "embed:" not in result.stderr  # no progress bar was started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["header.fasta", "unread.ckpt"]


def test_embed_header_that_is_not_utf8(tmp_path):
    (tmp_path / "latin1.fasta").write_bytes(b">ok\nMKT\n" + NOT_UTF8)
    result = run_command("embed.py", [f"checkpoint={_unread_checkpoint(tmp_path)}",
                                      "data.path=latin1.fasta",
                                      "output_dir=emb", "hydra.run.dir=run"], tmp_path)
    assert error_line(result) == (
        "error: latin1.fasta: line 3: header is not valid UTF-8 (byte 0xe9 at column 11)")


def test_read_fasta_keeps_utf8_headers_and_refuses_others(tmp_path):
    good = tmp_path / "utf8.fasta"
    good.write_bytes(">café\nMKT\n".encode())
    assert list(read_fasta(good)) == [("café", "MKT")]
    bad = tmp_path / "bad.fasta"
    bad.write_bytes(NOT_UTF8)
    with pytest.raises(FastaFormatError, match=r"bad.fasta: line 1: header is not valid UTF-8"):
        list(read_fasta(bad))


def test_evaluate_a_csv_instead_of_a_checkpoint(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("mutant,score\nK2R,0.1\n")
    expected = (f"checkpoint {path} is not a PyTorch checkpoint file (neither a zip archive "
                "nor a pickle; it starts with b'mutant,score\\nK2R')")
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert str(error.value) == expected
    result = run_command("evaluate.py", [f"checkpoints=[{path}]", "hydra.run.dir=run"],
                         tmp_path)
    assert error_line(result) == f"error: {expected}"


def _embedding(record_id: str, layers: dict[int, float]) -> ProteinEmbedding:
    return ProteinEmbedding(record_id=record_id, length=3, embedded_length=3,
                            mean={layer: np.full(4, value, np.float32)
                                  for layer, value in layers.items()},
                            per_tok={})


def test_load_means_takes_a_negative_layer(tmp_path):
    with EmbeddingWriter(tmp_path, num_layers=2) as writer:
        writer.write(_embedding("a", {0: 0.0, 2: 2.0}))
        writer.write(_embedding("b", {0: 1.0, 2: 3.0}))
    index, last = load_means(tmp_path, -1)
    assert index["id"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(last, load_means(tmp_path, 2)[1])
    np.testing.assert_array_equal(load_means(tmp_path, -3)[1], load_means(tmp_path, 0)[1])
    with pytest.raises(InferenceInputError, match=r"layer -4 is out of range for a 2-layer"):
        load_means(tmp_path, -4)
