"""Learning curve: the analysis over several checkpoints of one run (run_dir / checkpoints)."""

from __future__ import annotations

import pandas as pd
import pytest

from protperf.analysis.controls import PlantedConfig, planted_module, save_checkpoint
from protperf.analysis.curve import analyze_checkpoints, checkpoints_by_step, find_checkpoints
from protperf.analysis.report import analyze
from protperf.cli.compose import compose_config
from protperf.cli.registry import load_config


@pytest.fixture
def run_dir(tmp_path):
    """A run whose signal appears: beta = 0 at step 0, beta = 0.3 at step 100 (+ last.ckpt)."""
    folder = tmp_path / "run" / "checkpoints"
    save_checkpoint(planted_module(PlantedConfig(beta=0.0)), folder / "best-step000000.ckpt", 0)
    strong = planted_module(PlantedConfig(beta=0.3))
    save_checkpoint(strong, folder / "best-step000100.ckpt", 100)
    save_checkpoint(strong, folder / "last.ckpt", 100)
    return tmp_path / "run"


def test_checkpoints_by_step_sorts_and_prefers_named_over_last(run_dir):
    steps = checkpoints_by_step(find_checkpoints(run_dir))
    assert [(step, path.name) for step, path in steps] == [
        (0, "best-step000000.ckpt"), (100, "best-step000100.ckpt")]


def test_learning_curve_over_a_run_directory(run_dir, tmp_path):
    out = tmp_path / "curve"
    config = load_config("analyze", compose_config("analyze", [
        f"run_dir={run_dir}", f"output_dir={out}", "figures=false",
        "methods=[similarity,embedding]", "data.max_sequences=8", "data.max_length=256",
        "permutations=200", "progress=false"]))
    analyze_checkpoints(config)
    curve = pd.read_csv(out / "learning_curve.csv")
    assert list(curve["step"].unique()) == [0, 100]
    assert set(curve["method"]) == {"similarity", "similarity_best_head", "embedding"}
    pooled = curve[curve["method"] == "similarity"].set_index("step")
    assert pooled.loc[0, "pearson_offdiag_p"] > 0.05
    assert pooled.loc[100, "pearson_offdiag"] >= 0.9
    assert pooled.loc[100, "checkpoint"].endswith("best-step000100.ckpt")
    floors = curve.set_index(["method", "step"])["random_init_floor"]  # one set of random models
    assert floors.notna().all()
    assert floors["similarity", 0] == floors["similarity", 100]
    for step in ("step000000", "step000100"):
        assert (out / step / "summary.json").is_file()
    assert (out / "figures" / "learning_curve.png").is_file()


def test_run_dir_without_checkpoints_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \*\.ckpt file in .*empty"):
        find_checkpoints((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_checkpoints_and_run_dir_together_are_rejected(tmp_path):
    message = r"give checkpoints=\[\.\.\.\] or run_dir=\.\.\., not both"
    with pytest.raises(ValueError, match=message):
        load_config("analyze", compose_config("analyze", ["checkpoints=[a.ckpt]", "run_dir=run",
                                                  f"output_dir={tmp_path}"]))


def test_library_analyze_points_checkpoint_lists_to_the_curve(tmp_path):
    config = load_config("analyze", compose_config("analyze", ["checkpoints=[a.ckpt]",
                                                       f"output_dir={tmp_path}"]))
    with pytest.raises(ValueError, match="analyzed by protperf.analysis.curve.analyze_checkpoints"):
        analyze(config)


def test_paper_blosum_experiment_keeps_curve_checkpoints():

    config = load_config("train", compose_config("train", [
        "experiment=paper_blosum_performer_relu", "output_dir=o", "data.path=/data/uniref50"]))
    assert config.model.attention.kind == "favor_relu" and config.task.objective == "mlm"
    assert (config.model.num_layers, config.model.num_heads, config.model.dim) == (36, 8, 512)
    curve = config.callbacks["curve_checkpoints"]
    assert (curve["save_top_k"], curve["every_n_train_steps"]) == (-1, 25000)
    assert curve["dirpath"] == "o/checkpoints"
