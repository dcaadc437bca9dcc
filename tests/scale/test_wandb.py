"""logger=wandb: offline by default, WANDB_MODE respected, metrics and config recorded."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from protperf.cli.registry import register_schemas  # noqa: E402
from protperf.conf import CONF_DIR
from protperf.reporting import wandb_figures  # noqa: E402
from protperf.reporting.wandb_figures import log_figures_to_wandb  # noqa: E402
from tests.scale import wandb_records  # noqa: E402
from tests.scale.conftest import TINY, run_script  # noqa: E402

register_schemas()


def _wandb_mode(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", value)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=["logger=wandb", "output_dir=x"])
    return cfg.logger.wandb.mode


def test_offline_unless_wandb_mode_says_otherwise(monkeypatch):
    assert _wandb_mode(monkeypatch, None) == "offline"
    assert _wandb_mode(monkeypatch, "online") == "online"
    assert _wandb_mode(monkeypatch, "disabled") == "disabled"


def _run_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return path


def test_training_logs_metrics_and_config_to_an_offline_run(local_sweep):
    """Each job of the submitit sweep (logger=many_loggers, WANDB_MODE unset) has an offline
    wandb run with its metrics and full config."""
    for job, model in (("0_transformer-clm", "transformer"),
                       ("1_performer_relu-clm", "performer_relu")):
        records = wandb_records.read_finished_run(_run_file(local_sweep / job))
        rows = wandb_records.history(records)
        train_steps = sorted(r["trainer/global_step"] for r in rows if "train/loss" in r)
        assert train_steps == [0, 1, 2]
        assert any("val/loss" in r and "val/ppl" in r for r in rows)
        config = wandb_records.config(records)
        assert config["model"]["name"] == model
        assert config["model"]["attention"]["num_features"] == 16
        assert config["trainer"]["max_steps"] == 3
        assert config["run_name"] == f"{model}-clm"
        assert (local_sweep / job / "csv" / "metrics.csv").is_file()  # many_loggers: csv too


def test_log_figures_to_an_offline_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    png = tmp_path / "blosum_similarity.png"
    figure.savefig(png)
    run_dir = log_figures_to_wandb({"attention/heads": figure, "blosum": png},
                                   save_dir=tmp_path / "wb", name="analysis")
    plt.close(figure)
    assert "offline-run-" in run_dir
    records = wandb_records.read_finished_run(_run_file(tmp_path / "wb"))
    (row,) = [r for r in wandb_records.history(records) if "blosum/_type" in r]
    assert row["blosum/_type"] == row["attention/heads/_type"] == "image-file"
    media = list((Path(run_dir) / "media" / "images").rglob("*.png"))
    assert len(media) == 2
    with pytest.raises(FileNotFoundError, match="figure 'x': no such file .*nope.png"):
        log_figures_to_wandb({"x": tmp_path / "nope.png"}, save_dir=tmp_path / "wb")


def test_figures_command_names_an_empty_directory(tmp_path, capsys):
    assert wandb_figures.main([str(tmp_path)]) == 2
    assert f"error: no .png figures in {tmp_path}" in capsys.readouterr().err


@pytest.mark.slow  # trains a tiny checkpoint, then analyze.py draws and logs its figures: ~60 s
def test_analyze_script_logs_its_figures_to_wandb(tmp_path):
    train = run_script("train.py", [*TINY, "model=performer_softmax", "trainer.max_steps=2",
                                    "trainer.val_check_interval=2", "hydra.run.dir=train"],
                       cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    result = run_script("analyze.py", [
        f"checkpoint={tmp_path / 'train' / 'checkpoints' / 'last.ckpt'}", "data.max_sequences=4",
        "data.max_length=32", "permutations=0", "grid_max_length=8", "progress=false",
        "wandb=true", "hydra.run.dir=analysis"], cwd=tmp_path, env={"WANDB_MODE": None})
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = sorted(p.stem for p in (tmp_path / "analysis" / "figures").glob("*.png"))
    records = wandb_records.read_finished_run(_run_file(tmp_path / "analysis"))
    (row,) = [r for r in wandb_records.history(records) if f"{pngs[0]}/_type" in r]
    assert {key.split("/")[0] for key in row if key.endswith("/_type")} == set(pngs)
    assert wandb_records.config(records)["wandb"] is True
