"""A config error or ``--help`` answers before the heavy stack is imported; each command's job
(and log file) is named after the command; embed / score / generate's ``--help`` shows their
own keys, not the training groups."""

from __future__ import annotations

import pytest

from tests.cli.helpers import error_line, run_command

# Runs a console entry point in-process and reports what it imported.
PROBE = """
import sys
from protperf.cli import entries
sys.argv = ["{name}", *sys.argv[1:]]
try:
    getattr(entries, "{name}")()
except SystemExit as stop:
    heavy = sorted(m for m in ("lightning", "torch", "protperf.app.{name}") if m in sys.modules)
    print("exit", stop.code, "heavy", heavy, file=sys.stderr)
"""


def _probe(name: str, args: list[str], cwd):
    result = run_command("", args, cwd, code=PROBE.format(name=name))
    return result, result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("name", "args", "message"), [
    ("train", ["model.dim=-1"], "error: model.dim=-1 must be positive"),
    ("train", ["+trainer.max_step=3"],
     "error: unknown config key trainer.max_step (did you mean trainer.max_steps?)"),
    ("embed", ["checkpoint=a.ckpt", "output_dir=o", "+layer=1"],
     "error: unknown config key layer (did you mean layers?)"),
    ("evaluate", ["checkpoints=[a.ckpt]", "split=x", "+finetune.step=1"],
     "error: unknown config key finetune.step (did you mean finetune.steps?)"),
    ("convert", ["checkpoint=a.ckpt", "output=b.ckpt", "convert.lr=-1"],
     "error: convert.lr=-1.0 must be positive"),
])
def test_config_error_imports_neither_torch_nor_lightning(name, args, message, tmp_path):
    result, last = _probe(name, [*args, "hydra.run.dir=run"], tmp_path)
    assert message in result.stderr.splitlines()
    assert last == "exit 2 heavy []"


@pytest.mark.parametrize("name", ["train", "embed", "score", "generate", "evaluate", "convert"])
def test_help_imports_neither_torch_nor_lightning(name, tmp_path):
    result, last = _probe(name, ["--help"], tmp_path)
    assert last == "exit 0 heavy []"
    assert "== Config ==" in result.stdout


@pytest.mark.parametrize("name", ["embed", "score", "generate"])
def test_inference_help_shows_only_its_own_keys(name, tmp_path):
    result = run_command(f"{name}.py", ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{name}: override any key below with key=value")
    assert "checkpoint: ???" in result.stdout
    for group in ("Configuration groups", "trainer:", "task:", "callbacks:", "experiment:"):
        assert group not in result.stdout


def test_train_help_lists_its_groups(tmp_path):
    result = run_command("train.py", ["--help"], tmp_path)
    assert "== Configuration groups ==" in result.stdout
    groups = dict(line.split(": ", 1) for line in result.stdout.splitlines()
                  if line.startswith(("data: ", "model: ", "trainer: ")))
    assert "gpu" in groups["trainer"].split(", ") and "sample" in groups["data"].split(", ")


@pytest.mark.parametrize(("name", "args"), [
    ("embed", ["checkpoint=a.ckpt", "output_dir=o"]),
    ("score", ["checkpoint=a.ckpt", "mutations=m.csv", "output=s.csv"]),
    ("generate", ["checkpoint=a.ckpt", "output=g.fasta"]),
])
def test_each_command_logs_to_its_own_file(name, args, tmp_path):
    result = run_command(f"{name}.py", [*args, "+bogus_key=1", "hydra.run.dir=run"], tmp_path)
    assert error_line(result).startswith("error: unknown config key bogus_key")
    logs = sorted(path.name for path in (tmp_path / "run").glob("*.log"))
    assert logs == [f"{name}.log"]
