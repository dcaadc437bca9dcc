"""The notebooks execute top to bottom (nbclient), write their figures, show each figure once,
and run again -- alone or one after the other -- in the same folder.

Each notebook trains its own tiny checkpoint when none is given (``tiny-heads-model``,
``tiny-blosum-model``, ``tiny-mlm`` / ``tiny-clm``) and reuses it when it is already there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")  # the dev extra
nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("attention_heads.ipynb", "blosum_similarity.ipynb", "use_a_model.ipynb")


def execute(name: str, workdir: Path):
    """Run the notebook; returns it with its outputs."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


def printed(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells
                   for output in cell.get("outputs", []))


def images_per_cell(notebook) -> list[int]:
    return [sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))
            for cell in notebook.cells]


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PROTPERF_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    for name in ("PROTPERF_CHECKPOINT", "PROTPERF_MLM_CHECKPOINT", "PROTPERF_CLM_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_cell_displays_a_figure_twice(name):
    """The inline backend shows every figure a cell creates; a cell that also ends with the
    figure as its value showed it twice."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        body = ast.parse(cell.source).body
        last = body[-1] if body else None
        assert not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Name)
                    and last.value.id == "figure"), cell.source


def test_notebooks_train_into_folders_of_their_own():
    sources = {name: nbformat.read(REPO / "notebooks" / name, as_version=4) for name in NOTEBOOKS}
    folders = {name: [c.source for c in nb.cells if "tiny-" in c.source]
               for name, nb in sources.items()}
    assert 'WORK / "tiny-heads-model"' in "".join(folders["attention_heads.ipynb"])
    assert 'WORK / "tiny-blosum-model"' in "".join(folders["blosum_similarity.ipynb"])
    assert 'WORK / f"tiny-{objective}"' in "".join(folders["use_a_model.ipynb"])


@pytest.mark.slow  # executes every analysis notebook; use_a_model runs by default
def test_notebooks_execute_and_write_figures(notebook_env, monkeypatch):
    tmp_path = notebook_env
    notebook = execute("attention_heads.ipynb", tmp_path)
    assert "favor_relu 4 layers x 3 heads" in printed(notebook)  # the blog's figure: 4 x 3 heads
    assert "BPT1_BOVIN_mature 58 residues" in printed(notebook)
    assert images_per_cell(notebook)[4] == 1 and max(images_per_cell(notebook)) == 1
    checkpoint = tmp_path / "work" / "tiny-heads-model" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    for suffix in ("png", "svg"):
        assert (tmp_path / "work" / "attention_heads" / f"attention_grid.{suffix}").is_file()
    monkeypatch.setenv("PROTPERF_CHECKPOINT", str(checkpoint))
    notebook = execute("blosum_similarity.ipynb", tmp_path)
    assert "random-init floor" in printed(notebook)
    assert max(images_per_cell(notebook)) == 1
    for stem in ("similarity_pooled", "scatter_pooled"):
        assert (tmp_path / "work" / "blosum_similarity" / f"{stem}.png").is_file()
    vig = (tmp_path / "work" / "blosum_similarity" / "vig_similarity.png").is_file()
    assert vig != ("Vig et al. skipped:" in printed(notebook))  # the figure, or why not


@pytest.mark.slow
def test_notebooks_run_again_alone_and_one_after_the_other(notebook_env):
    tmp_path = notebook_env
    for name in ("attention_heads.ipynb", "blosum_similarity.ipynb", "attention_heads.ipynb",
                 "blosum_similarity.ipynb"):
        notebook = execute(name, tmp_path)  # raises on any failing cell
        assert max(images_per_cell(notebook)) == 1, name
    assert (tmp_path / "work" / "tiny-blosum-model" / "checkpoints" / "last.ckpt").is_file()


def test_use_a_model_notebook_executes(notebook_env):
    tmp_path = notebook_env
    notebook = execute("use_a_model.ipynb", tmp_path)
    assert images_per_cell(notebook)[5] == 1 and max(images_per_cell(notebook)) == 1
    for objective in ("mlm", "clm"):
        assert (tmp_path / "work" / f"tiny-{objective}" / "checkpoints" / "last.ckpt").is_file()
    for suffix in ("png", "svg"):
        assert (tmp_path / "work" / "use_a_model" / f"embedding_pca.{suffix}").is_file()


@pytest.mark.slow
def test_use_a_model_notebook_runs_twice(notebook_env):
    for _ in range(2):
        notebook = execute("use_a_model.ipynb", notebook_env)
        assert max(images_per_cell(notebook)) == 1
