"""One error runner for every command: a user error is one line with exit status 2, before
the heavy imports where it can be, and leaves no run folder behind (docs/errors.md)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from protperf.analysis.summary import floor_text
from protperf.cli import entries
from protperf.cli.arguments import check_overrides
from protperf.cli.runner import argparse_status, run_command
from protperf.errors import ConfigError
from protperf.pretrained.sources import NAME_EXAMPLES

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("train", "evaluate", "analyze", "embed", "score", "generate", "prepare", "import",
            "export", "collect-runs", "convert")


def test_every_command_enters_through_cli_entries():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(scripts) == sorted(f"protperf-{name}" for name in COMMANDS)
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert module == "protperf.cli.entries" and callable(getattr(entries, name)), target


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_prepare_errors_exit_2_like_every_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    missing = tmp_path / "missing.fa"
    assert argparse_status("protperf.app.prepare", [str(missing), "--out",
                                                     str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == f"error: FASTA file not found: {missing}"


def test_collect_runs_errors_exit_2(tmp_path, capsys):
    assert argparse_status("protperf.app.collect_runs", [str(tmp_path)]) == 2
    assert _one_error_line(capsys).startswith(f"error: no runs in {tmp_path}")


def test_a_full_disk_is_a_user_error_and_a_bug_is_not(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def full(path="/data/out/x.npy"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    assert run_command(full) == 2
    assert _one_error_line(capsys) == "error: /data/out/x.npy: No space left on device"
    with pytest.raises(KeyError):  # a bug: its traceback, status 1
        run_command(lambda: {}["key"])
    with pytest.raises(OSError):  # --debug / HYDRA_FULL_ERROR=1: the traceback
        run_command(full, debug=True)


def test_ctrl_c_is_130_with_one_line(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert run_command(interrupted, interrupted="interrupted: nothing written") == 130
    assert capsys.readouterr().err == "interrupted: nothing written\n"


def test_a_group_option_that_does_not_exist_is_one_line():
    with pytest.raises(ConfigError) as error:
        check_overrides(["trainer=cpu"])
    assert str(error.value) == ("trainer=cpu: the trainer group has no option 'cpu' "
                                "(options: ddp, ddp_gpu, default, gpu)")
    with pytest.raises(ConfigError, match=r"^model=performer_rel,transformer: the model group "):
        check_overrides(["-m", "model=performer_rel,transformer"])
    check_overrides(["-m", "model=performer_relu,transformer", "experiment=null", "--cfg",
                     "job", "hydra/launcher=slurm", "+x=1", "~logger"])


def test_an_unquoted_non_ascii_value_says_to_quote_it():
    with pytest.raises(ConfigError) as error:
        check_overrides(["output_dir=émb_ü"])
    assert str(error.value) == ("output_dir=émb_ü: Hydra reads non-ASCII characters only in "
                                "quoted values: type 'output_dir=\"émb_ü\"' (quotes included)")
    check_overrides(["output_dir='émb_ü'"])


def test_analyze_says_when_the_random_init_floor_is_undefined():
    assert floor_text({"floor": 0.2134}, "floor") == ", random-init floor 0.213"
    assert floor_text({"floor": None}, "floor") == (
        ", no random-init floor: no random-init model gave a finite r")
    assert floor_text({}, "floor") == ""


PROBE = """
import sys
sys.argv = [sys.argv[0], *sys.argv[1:]]
from protperf.cli import entries
try:
    getattr(entries, "{command}")({argv})
except SystemExit as exit:
    print(f"status={{exit.code}} lightning={{'lightning' in sys.modules}} "
          f"torch={{'torch' in sys.modules}}")
"""


def _probe(command: str, args: list[str], cwd: Path, hydra: bool = True) -> tuple[str, str]:
    """Run entry ``command`` in a fresh interpreter: (its status line, its stderr)."""
    code = PROBE.format(command=command, argv="" if hydra else repr(args))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run([sys.executable, "-c", code, *(args if hydra else [])], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=120)
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_resume_without_a_checkpoint_is_refused_before_lightning_and_leaves_no_folder(tmp_path):
    status, err = _probe("train", ["ckpt_path=last", "trainer.max_steps=1"], tmp_path)
    assert status == "status=2 lightning=False torch=False", err
    assert err.startswith(f"error: ckpt_path=last: no checkpoint in {tmp_path}/outputs/"
                          "performer_relu-mlm/")
    assert not (tmp_path / "outputs").exists()  # the claimed run folder was removed


def test_a_bad_group_option_leaves_no_folder(tmp_path):
    status, err = _probe("train", ["trainer=cpu"], tmp_path)
    assert status == "status=2 lightning=False torch=False", err
    assert err == ("error: trainer=cpu: the trainer group has no option 'cpu' "
                   "(options: ddp, ddp_gpu, default, gpu)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_checkpoint_is_refused_before_torch(tmp_path):
    status, err = _probe("embed", ["checkpoint=gone.ckpt", "output_dir=emb"], tmp_path)
    assert (status, err) == ("status=2 lightning=False torch=False",
                             "error: checkpoint gone.ckpt does not exist\n")
    status, err = _probe("export", ["gone.ckpt", "--out", "x"], tmp_path, hydra=False)
    assert (status, err) == ("status=2 lightning=False torch=False",
                             "error: checkpoint gone.ckpt does not exist\n")
    status, err = _probe("import_model", ["gone.pt", "--out", "x.ckpt"], tmp_path, hydra=False)
    assert status == "status=2 lightning=False torch=False", err
    assert err == (f"error: gone.pt does not exist ({NAME_EXAMPLES}, or a local path)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_busy_run_directory_is_refused_before_lightning(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from protperf.runtime.run_lock import run_directory_lock\n"
         "with run_directory_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
         str(run_dir)], env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status, err = _probe("train", [f"hydra.run.dir={run_dir}"], tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert status == "status=2 lightning=False torch=False", err
    assert err.startswith(f"error: run directory {run_dir} is in use by pid {holder.pid} ")
