"""Hydra sweeps: basic and submitit launchers, SLURM launcher config, Optuna search, and
collecting a sweep's runs into tables and a figure."""

from __future__ import annotations

import runpy
import sys

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from protperf.cli.registry import register_schemas
from protperf.conf import CONF_DIR
from protperf.reporting.runs import collect_runs
from tests.scale.conftest import REPO, TINY, run_script

register_schemas()


def _compose(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_config_follows_the_trainer():
    """The README's paper sweep: a paper experiment (which picks trainer=gpu) on DDP GPUs."""
    cfg = _compose(["experiment=paper_bid_performer_relu", "data.path=/shared/prepared",
                    "hydra/launcher=slurm", "trainer=ddp_gpu", "trainer.devices=8",
                    "trainer.num_nodes=2", "hydra.launcher.partition=gpu",
                    "hydra.launcher.timeout_min=600", "hydra.launcher.array_parallelism=3"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 8  # one task per GPU
    assert launcher["nodes"] == 2
    assert (launcher["partition"], launcher["timeout_min"], launcher["array_parallelism"]) == (
        "gpu", 600, 3)
    assert launcher["mem_gb"] > 0 and launcher["cpus_per_task"] > 0
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.model.num_layers == 36 and cfg.trainer.devices == 8  # the experiment, on 8 GPUs
    # Hydra can build the launcher from it (submitting needs a cluster)
    assert type(instantiate(cfg.hydra.launcher)).__name__ == "SlurmLauncher"


def test_cfg_hydra_prints_the_submitit_settings(tmp_path, monkeypatch, capsys):
    """`python scripts/train.py hydra/launcher=slurm --cfg hydra -p hydra.launcher`, run
    in-process (the real entry point and Hydra's own printing, without a new interpreter)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "hydra/launcher=slurm",
                                      "hydra.launcher.partition=gpu", "--cfg", "hydra",
                                      "-p", "hydra.launcher"])
    runpy.run_path(str(REPO / "scripts" / "train.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert printed.startswith("# @package hydra.launcher")
    settings = yaml.safe_load(printed)
    assert settings["_target_"].endswith("SlurmLauncher")
    assert settings["partition"] == "gpu"
    assert {"gpus_per_node", "tasks_per_node", "timeout_min", "array_parallelism", "mem_gb",
            "cpus_per_task", "nodes"} <= set(settings)
    assert not list(tmp_path.iterdir())  # printing the config runs nothing


def test_optuna_search_config_tunes_lr_and_features():
    cfg = _compose(["+hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert set(sweeper.params) == {"optim.lr", "model.attention.num_features"}
    assert sweeper.direction == "minimize"


@pytest.mark.slow  # a submitit-local sweep of tiny runs: the slowest fixture of the suite
def test_submitit_local_sweep_runs_each_job(local_sweep):
    runs = sorted(p.name for p in local_sweep.iterdir() if (p / "summary.json").is_file())
    assert runs == ["0_transformer-clm", "1_performer_relu-clm"]
    assert list((local_sweep / ".submitit").iterdir())  # submitit's job folders
    for run in runs:
        assert (local_sweep / run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # needs the submitit-local sweep (collect-runs' errors are tested fast)
def test_collect_runs_tables_and_figure(local_sweep, tmp_path):
    curves, summary = collect_runs(local_sweep)
    assert sorted(summary["model"]) == ["performer_relu", "transformer"]
    assert set(summary["direction"]) == {"UNI"}
    assert set(curves["split"]) == {"train", "valid"}
    assert (summary["steps"] == 3).all()
    # the table's final validation values are the runs' own summary.json values
    for _, row in summary.iterrows():
        done = yaml.safe_load((local_sweep / row["run"] / "summary.json").read_text())
        assert row["val_loss"] == pytest.approx(done["val_loss"])
    train = curves[(curves["split"] == "train") & (curves["model"] == "transformer")]
    assert sorted(train["step"]) == [0, 1, 2]  # every logged training step, once

    result = run_script("collect_runs.py", [str(local_sweep), "--out", str(tmp_path / "out"),
                                            "--format", "svg"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out" / "runs_summary.csv")
    assert len(table) == 2
    assert (tmp_path / "out" / "runs_summary.md").read_text().startswith("| run |")
    assert len(pd.read_csv(tmp_path / "out" / "runs_curves.csv")) == len(curves)
    svg = (tmp_path / "out" / "runs_acc.svg").read_text()
    assert "<svg" in svg and "stroke-dasharray" in svg  # dashed training curves


def fake_run(run_dir, logged_steps: int, summary_step: int | None = None) -> None:
    """A run directory as training writes it: Lightning's CSV (its ``step`` column counts
    from 0: row s is logged after s + 1 optimizer steps), the hparams, maybe summary.json."""
    (run_dir / "csv").mkdir(parents=True)
    rows = ["epoch,step,train/loss,train/acc,val/loss,val/acc"]
    rows += [f"0,{step},3.0,0.1,," for step in range(logged_steps)]
    rows.append(f"0,{logged_steps - 1},,,2.9,0.2")
    (run_dir / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run_dir / "csv" / "hparams.yaml").write_text(
        "model: {name: transformer}\ntask: {objective: mlm}\n")
    if summary_step is not None:
        (run_dir / "summary.json").write_text(f'{{"step": {summary_step}, "val_loss": 2.9}}')


def test_collect_runs_counts_optimizer_steps(tmp_path):
    fake_run(tmp_path / "a_finished", logged_steps=3, summary_step=3)
    fake_run(tmp_path / "b_stopped", logged_steps=5)  # no summary.json: stopped early
    _, summary = collect_runs(tmp_path)
    assert summary.set_index("run")["steps"].to_dict() == {"a_finished": 3, "b_stopped": 5}
    # the validation after the last step is the best: named as its checkpoint (best-step3)
    assert summary.set_index("run")["best_step"].to_dict() == {"a_finished": 3, "b_stopped": 5}


def test_collect_runs_names_a_directory_without_runs(tmp_path):
    with pytest.raises(ValueError, match=f"no runs in {tmp_path}"):
        collect_runs(tmp_path)
    with pytest.raises(FileNotFoundError, match="sweep directory not found: .*missing"):
        collect_runs(tmp_path / "missing")


@pytest.mark.slow  # 6 tiny runs in one process: ~30-60 s on 2 shared cores
def test_basic_launcher_sweeps_models_and_tasks(tmp_path):
    """The README's sweep: 3 models x 2 tasks with the basic launcher (one process)."""
    result = run_script("train.py", [
        "-m", "model=transformer,performer_softmax,performer_relu", "task=mlm,clm",
        *TINY, "trainer.max_steps=2", "trainer.val_check_interval=2",
    ], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    _, summary = collect_runs(sweep)
    assert sorted(zip(summary["model"], summary["direction"], strict=True)) == [
        (m, d) for m in ("performer_relu", "performer_softmax", "transformer")
        for d in ("BID", "UNI")]
    assert summary["finished"].all()


@pytest.mark.slow  # 2 tiny trials: ~20-40 s on 2 shared cores
def test_optuna_two_trials(tmp_path):
    result = run_script("train.py", [
        "+hparams_search=optuna", "hydra.sweeper.n_trials=2", "model=performer_relu",
        *(o for o in TINY if not o.startswith("model.attention.num_features")),
        "trainer.max_steps=2", "trainer.val_check_interval=2", "hydra.sweep.dir=opt",
    ], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    best = yaml.safe_load((tmp_path / "opt" / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.lr", "model.attention.num_features"}
    assert 1e-4 <= best["best_params"]["optim.lr"] <= 3e-3
    assert best["best_params"]["model.attention.num_features"] in (32, 64, 128, 256)
    trials = [p for p in (tmp_path / "opt").iterdir() if (p / "summary.json").is_file()]
    assert len(trials) == 2


PAPER = sorted(p.stem for p in (CONF_DIR / "experiment").glob("paper_*.yaml")
               if p.stem != "paper_protein")


@pytest.mark.parametrize("experiment", PAPER)
def test_readme_paper_sweep_composes_for_every_experiment(experiment):
    """Each job of the README's SLURM sweep of the paper's protein experiments."""
    cfg = _compose([f"experiment={experiment}", "data.path=/shared/prepared/uniref50",
                    "trainer=ddp_gpu", "trainer.devices=4", "hydra/launcher=slurm",
                    "hydra.launcher.partition=gpu", "hydra.launcher.array_parallelism=6",
                    "logger=many_loggers"])
    assert cfg.run_name == experiment
    assert (cfg.trainer.strategy, cfg.trainer.devices) == ("ddp", 4)
    assert cfg.model.attention.num_features == 256
    assert cfg.data.num_workers + 1 <= cfg.hydra.launcher.cpus_per_task
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["tasks_per_node"] == 4
