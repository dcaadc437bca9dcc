"""The notebooks execute top to bottom (nbclient) and write their figures.

The first trains its own tiny checkpoint (no checkpoint given); the second analyzes that one;
``use_a_model`` trains its own tiny MLM and CLM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")  # the dev extra
nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]


def execute(name: str, workdir: Path) -> str:
    """Run the notebook; returns the text of its printed outputs."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return "".join(output.get("text", "") for cell in notebook.cells
                   for output in cell.get("outputs", []))


def test_notebooks_execute_and_write_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PROTPERF_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("PROTPERF_CHECKPOINT", raising=False)
    printed = execute("attention_heads.ipynb", tmp_path)
    assert "favor_relu 4 layers x 3 heads" in printed  # the blog's figure: 4 x 3 heads
    assert "BPT1_BOVIN_mature 58 residues" in printed
    checkpoint = tmp_path / "work" / "tiny-model" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    for suffix in ("png", "svg"):
        assert (tmp_path / "work" / "attention_heads" / f"attention_grid.{suffix}").is_file()
    monkeypatch.setenv("PROTPERF_CHECKPOINT", str(checkpoint))
    execute("blosum_similarity.ipynb", tmp_path)
    for stem in ("similarity_pooled", "scatter_pooled", "vig_similarity"):
        assert (tmp_path / "work" / "blosum_similarity" / f"{stem}.png").is_file()


def test_use_a_model_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PROTPERF_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("PROTPERF_MLM_CHECKPOINT", "PROTPERF_CLM_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    execute("use_a_model.ipynb", tmp_path)
    for objective in ("mlm", "clm"):
        assert (tmp_path / "work" / f"tiny-{objective}" / "checkpoints" / "last.ckpt").is_file()
    for suffix in ("png", "svg"):
        assert (tmp_path / "work" / "use_a_model" / f"embedding_pca.{suffix}").is_file()
