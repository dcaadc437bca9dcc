"""scripts/benchmark_log.py: appending rows with provenance and the generated README."""

from __future__ import annotations

import subprocess

import benchmark_log
import pandas as pd
import pytest
import torch
from benchmark_log import (
    PROVENANCE,
    append_rows,
    command_args,
    git_commit,
    latest_runs,
    main,
    provenance,
    read_log,
    render_report,
)


def run(args: str, date: str, commit: str = "abc1234") -> dict[str, object]:
    return {"commit": commit, "date": date, "machine": "Test CPU", "cores": 2,
            "torch": "2.13.0+cpu", "threads": 1, "args": args}


def test_command_args_leaves_out_where_results_go_and_quotes_the_rest():
    argv = ["--lengths", "512", "--out-dir", "/tmp/b", "--tmp-dir=/scratch",
            "--override", "data.path=a b"]
    assert command_args(argv) == "--lengths 512 --override 'data.path=a b'"


def test_provenance_has_every_column():
    prov = provenance(["--steps", "2"], accelerator="Test GPU")
    assert tuple(prov) == PROVENANCE
    assert prov["threads"] == torch.get_num_threads()
    assert prov["torch"] == torch.__version__
    assert prov["machine"].endswith(" + Test GPU")
    assert prov["args"] == "--steps 2"
    assert prov["date"].endswith("+00:00")  # UTC
    assert provenance([], threads="")["threads"] == ""


def test_git_commit_is_empty_outside_a_repository(tmp_path):
    assert git_commit(tmp_path) == ""


def test_git_commit_is_dirty_for_code_changes_not_for_appended_benchmark_rows(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t",
                               "-c", "user.email=t@example.org", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "data.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    head = git("rev-parse", "--short", "HEAD")
    (tmp_path / "benchmarks" / "data.csv").write_text("a\n1\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_append_keeps_earlier_cells_verbatim_and_adds_new_columns(tmp_path):
    first = pd.DataFrame({"method": ["exact"], "time_s": [0.1]})
    path = append_rows("attention", first, run("--a", "2026-01-01T00:00:00+00:00"), tmp_path)
    assert path == tmp_path / "attention.csv"
    second = pd.DataFrame({"method": ["favor_relu"], "time_s": [0.25], "note": ["x"]})
    append_rows("attention", second, run("--b", "2026-01-02T00:00:00+00:00"), tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == "method,time_s,note," + ",".join(PROVENANCE)
    assert lines[1] == "exact,0.1,,abc1234,2026-01-01T00:00:00+00:00,Test CPU,2,2.13.0+cpu,1,--a"
    assert lines[2].startswith("favor_relu,0.25,x,abc1234,2026-01-02")
    assert len(lines) == 3


def test_append_refuses_no_rows(tmp_path):
    with pytest.raises(ValueError, match=r"^no rows to append to data\.csv$"):
        append_rows("data", pd.DataFrame(), run("", "2026-01-01"), tmp_path)


def test_latest_run_per_argument_string_newest_first(tmp_path):
    rows = pd.DataFrame({"window": [1024, 2048]})
    for args, date in (("--a", "d1"), ("--b", "d2"), ("--a", "d3")):
        append_rows("training_throughput", rows, run(args, date), tmp_path)
    runs = latest_runs(read_log(tmp_path / "training_throughput.csv"))
    assert [(r["args"].iloc[0], r["date"].iloc[0], len(r)) for r in runs] == [
        ("--a", "d3", 2), ("--b", "d2", 2)]


def test_report_shows_latest_runs_with_provenance_and_how_to_rerun(tmp_path):
    old = pd.DataFrame({"input_mb": [100.2], "format": ["plain"], "seconds": [9.0]})
    new = pd.DataFrame({"input_mb": [100.2], "format": ["plain"], "seconds": [1.11]})
    append_rows("data", old, run("", "2026-01-01T00:00:00+00:00", "old0000"), tmp_path)
    append_rows("data", new, run("", "2026-01-02T00:00:00+00:00"), tmp_path)
    append_rows("custom", pd.DataFrame({"x": [1]}), run("--y", "2026-01-03"), tmp_path)
    text = render_report(tmp_path)
    lines = text.splitlines()
    data_at, custom_at = lines.index("## FASTA preparation throughput"), lines.index("## custom")
    assert data_at < custom_at  # known benchmarks first, then the others by name
    assert f"Rerun (appends a run to `data.csv`): `{benchmark_log.BENCHMARKS['data'].rerun}`" \
        in lines
    assert ("commit `abc1234`, 2026-01-02, Test CPU, 2 cores, torch 2.13.0+cpu, threads 1; "
            "arguments: `(defaults)`:") in lines
    assert "| 100.2 | plain | 1.11 |" in lines
    assert "old0000" not in text and "| 9 |" not in text  # superseded by the rerun
    assert "`data.csv`, 2 rows in all." in lines


def test_report_rejects_a_csv_without_provenance(tmp_path, capsys):
    (tmp_path / "stray.csv").write_text("a,b\n1,2\n")
    assert main(["--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'stray.csv'}: not a benchmark log, missing column(s) "
                   "commit, date, machine, cores, torch, threads, args\n")
    assert not (tmp_path / "README.md").exists()


def test_main_writes_the_readme(tmp_path, capsys):
    append_rows("data", pd.DataFrame({"seconds": [1.0]}), run("", "2026-01-01"), tmp_path)
    assert main(["--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'README.md'}\n"
    assert (tmp_path / "README.md").read_text().startswith("# Benchmarks\n")
    assert main(["--dir", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'} is not a directory\n"


def test_the_committed_benchmark_logs_parse_and_the_readme_is_current():
    directory = benchmark_log.BENCHMARK_DIR
    for path in directory.glob("*.csv"):
        frame = read_log(path)
        assert (frame["date"] != "").all() and (frame["machine"] != "").all(), path
    assert (directory / "README.md").read_text() == render_report(directory)


def test_attention_runs_are_shown_as_a_grid_of_time_and_memory(tmp_path):
    rows = pd.DataFrame({
        "method": ["exact", "exact", "favor_relu"], "mode": ["causal"] * 3,
        "length": [1024, 512, 512], "status": ["skipped", "ok", "ok"],
        "time_s": [float("nan"), 0.5, 0.25], "peak_mib": [float("nan"), 1024.0, 512.0],
        "note": ["predicted 200s, 9MiB", "", "shared cores"]})
    append_rows("attention", rows, run("--lengths 512 1024", "2026-01-01"), tmp_path)
    lines = render_report(tmp_path).splitlines()
    assert "| method | mode | length 512 | length 1024 |" in lines  # lengths in numeric order
    assert "| exact | causal | 0.5 s / 1 GiB | skipped |" in lines
    assert "| favor_relu | causal | 0.25 s / 0.5 GiB (shared cores) |  |" in lines
