"""Run directories are never shared: two runs started at the same moment get two of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from protperf.cli.registry import register_schemas
from protperf.conf import CONF_DIR
from protperf.runtime.run_dir import claim_unique_dir, newest_checkpoint, resolve_ckpt_path
from tests.model.conftest import REPO, TINY


def test_claims_are_distinct_and_repeat_within_a_process(tmp_path, monkeypatch):
    monkeypatch.setattr("protperf.runtime.run_dir._claimed", {})
    base = str(tmp_path / "outputs" / "2026-01-01_00-00-00")
    first = claim_unique_dir(base)
    assert first == base and os.path.isdir(first)
    assert claim_unique_dir(base) == first  # Hydra resolves the directory several times
    monkeypatch.setattr("protperf.runtime.run_dir._claimed", {})  # another process
    assert claim_unique_dir(base) == base + "_1"


def test_default_run_and_sweep_dirs_are_claimed():
    register_schemas()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", return_hydra_config=True)
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert hydra["run"]["dir"].startswith("${protperf_unique_dir:outputs/${run_name}/${now:")
    assert hydra["sweep"]["dir"].startswith("${protperf_unique_dir:multirun/${now:")


def test_ckpt_path_last_picks_the_newest_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    assert resolve_ckpt_path("last_or_new", tmp_path) is None  # nothing yet: a fresh start
    for name, mtime in (("best-step000004.ckpt", 30), ("last.ckpt", 20), (".last.ckpt.tmp-1", 40)):
        (directory / name).write_bytes(b"x")
        os.utime(directory / name, (mtime, mtime))
    assert newest_checkpoint(tmp_path) == directory / "last.ckpt"
    assert resolve_ckpt_path(None, tmp_path) is None
    assert resolve_ckpt_path("last", tmp_path) == str(directory / "last.ckpt")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # a requeued job resumes by itself
    assert resolve_ckpt_path(None, tmp_path) == str(directory / "last.ckpt")


def _train_in_same_second(cwd) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline"}
    # the default pattern with the clock fixed: both runs want the same directory
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train.py"), *TINY, "trainer.max_steps=1",
         "trainer.val_check_interval=1", "hydra.run.dir=${protperf_unique_dir:outputs/same}"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_started_together_get_their_own_directories(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        processes = list(pool.map(lambda _: _train_in_same_second(tmp_path), range(2)))
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "outputs").iterdir())
    assert runs == ["same", "same_1"]
    for run in runs:
        summary = json.loads((tmp_path / "outputs" / run / "summary.json").read_text())
        assert summary["output_dir"] == str(tmp_path / "outputs" / run)
        assert (tmp_path / "outputs" / run / "checkpoints" / "last.ckpt").is_file()
