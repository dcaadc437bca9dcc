"""The output directory: a user's folder is never replaced, a killed preparation leaves nothing
that passes for prepared, two preparations of one directory end with one valid result, and a
write error leaves nothing behind.  Real subprocesses of scripts/prepare_data.py."""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import protperf.data.preparation.writer as writer
from protperf.data.config import SAMPLE_FASTA, PrepareConfig
from protperf.data.preparation.pipeline import prepare
from protperf.data.preparation.target import leftover_temporaries, lock_path, locked, temporary_name
from protperf.data.preparation.validate import verify_prepared
from protperf.data.shards import MANIFEST
from protperf.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = str(ROOT / "scripts" / "prepare_data.py")
TINY_CHUNKS = ["--chunk-mb", "0.001"]  # ~650 chunks of the sample: a few seconds


def script(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROTPERF_CACHE=str(cwd / "cache"))
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, SCRIPT, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    process = script(*args, cwd=cwd)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def plain_sample(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "sample.fasta"
    path.write_bytes(gzip.decompress(SAMPLE_FASTA.read_bytes()))
    return path


def _tree(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_users_folder_is_refused_and_kept(tmp_path, plain_sample):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):
        result = run_script(str(plain_sample), "--out", str(folder), *extra, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr == (
            f"error: {folder}: not empty and not a prepared directory (no valid {MANIFEST}); "
            "refusing to replace it, choose another --out\n")
        assert _tree(folder) == {"notes.txt": b"mine"}
    (folder / MANIFEST).write_text('{"format": "something else"}')  # not ours either
    assert run_script(str(plain_sample), "--out", str(folder), "--force",
                      cwd=tmp_path).returncode == 2
    assert sorted(_tree(folder)) == [MANIFEST, "notes.txt"]
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    result = run_script(str(plain_sample), "--out", str(afile), cwd=tmp_path)
    assert result.stderr == f"error: {afile}: exists and is not a directory; choose another --out\n"
    assert afile.read_text() == "x"


def test_empty_folder_is_used_and_force_replaces_only_a_prepared_one(tmp_path, plain_sample):
    out = tmp_path / "out"
    out.mkdir()
    assert run_script(str(plain_sample), "--out", str(out), cwd=tmp_path).returncode == 0
    first = _tree(out)
    again = run_script(str(plain_sample), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("already prepared")
    other = run_script(str(plain_sample), "--out", str(out), "--valid-fraction", "0.2",
                       cwd=tmp_path)
    assert other.returncode == 2 and "already prepared from another input" in other.stderr
    assert _tree(out) == first
    forced = run_script(str(plain_sample), "--out", str(out), "--valid-fraction", "0.2",
                        "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert verify_prepared(out)["settings"]["valid_fraction"] == 0.2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []  # no lock


def test_killed_preparation_leaves_nothing_prepared_and_is_cleaned_up(tmp_path, plain_sample):
    out = tmp_path / "out"
    process = script(str(plain_sample), "--out", str(out), "--workers", "1", *TINY_CHUNKS,
                     cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob(".out.tmp-*/train/00010.ids.txt")):  # well under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    (leftover,) = tmp_path.glob(".out.tmp-*")
    assert not (leftover / MANIFEST).exists()
    assert leftover_temporaries(out) == ([leftover], [])  # its process is gone
    with pytest.raises(DataError, match="not a prepared dataset"):
        verify_prepared(out)
    result = run_script(str(plain_sample), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"warning: removing {leftover}, left by a preparation that did not finish" in (
        result.stderr)
    assert not leftover.exists()
    assert verify_prepared(out, checksums=True)["sequences_read"] == 2100


def test_two_preparations_at_once_end_with_one_directory(tmp_path, plain_sample):
    args = (str(plain_sample), "--workers", "1", "--chunk-mb", "0.01")
    processes = [script(*args, cwd=tmp_path) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    (prepared,) = (p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert list((tmp_path / "cache").glob(".*")) == []  # no lock file or temporary left
    assert verify_prepared(prepared, checksums=True)["sequences_kept"] == 2100
    outputs = [out.split("\n", 1)[1].rsplit("time", 1)[0] for out, _ in results]
    assert outputs[0] == outputs[1]  # the same summary, output directory included


def test_the_waiting_preparation_accepts_the_winners_directory(tmp_path, plain_sample):
    out = tmp_path / "out"
    cfg = PrepareConfig(valid_fraction=0.05, test_fraction=0.05)
    with locked(out):  # we are the winner, still writing
        waiting = script(str(plain_sample), "--out", str(out), "--valid-fraction", "0.05",
                         "--test-fraction", "0.05", "--chunk-mb", "64", cwd=tmp_path)
        inode = f":{lock_path(out).stat().st_ino} "
        deadline = time.monotonic() + 60
        while not any("->" in line and inode in line
                      for line in Path("/proc/locks").read_text().splitlines()):
            assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
            time.sleep(0.01)
        prepare(plain_sample, tmp_path / "winner", cfg)
        os.rename(tmp_path / "winner", out)
        mtime = (out / MANIFEST).stat().st_mtime_ns
    stdout, stderr = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, stderr
    assert f"output      {out}" in stdout
    assert (out / MANIFEST).stat().st_mtime_ns == mtime  # accepted, not redone


def test_disk_full_leaves_nothing_and_names_the_file(tmp_path, plain_sample, monkeypatch):
    written = []

    def full_disk(path, pieces):
        written.append(path)
        if len(written) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write_file(path, pieces)

    real_write_file = writer.write_file
    monkeypatch.setattr(writer, "write_file", full_disk)
    out = tmp_path / "out"
    with pytest.raises(DataError) as error:
        prepare(plain_sample, out, PrepareConfig(chunk_bytes=64 * 1024))
    assert str(error.value) == (f"{written[3]}: No space left on device (while preparing {out}; "
                                "nothing was left there)")
    assert written[3].parent.parent.name.startswith(".out.tmp-")
    assert list(tmp_path.iterdir()) == []  # no temporary, no lock file


def test_unwritable_output_and_bad_inputs_are_one_line(tmp_path, plain_sample):
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    result = run_script(str(plain_sample), "--out", str(afile / "sub"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"error: {afile / 'sub'}: cannot be created, {afile} is a file, "
                             "not a directory\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run_script(str(folder), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2, f"error: {folder}: is a directory, not a FASTA file\n")
    fifo = tmp_path / "pipe.fa"
    os.mkfifo(fifo)
    result = run_script(str(fifo), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2, f"error: {fifo}: not a regular file (a FIFO, socket or device); the input is read "
           "more than once, so save it to a file first\n")
    assert not (tmp_path / "o").exists()
    debug = run_script(str(folder), "--out", str(tmp_path / "o"), "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "DataError" in debug.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="1")
    full = subprocess.run([sys.executable, SCRIPT, str(folder), "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True)
    assert full.returncode == 1 and "Traceback" in full.stderr


def test_verify_checksums_of_an_existing_directory(tmp_path, plain_sample):
    out = tmp_path / "out"
    assert run_script(str(plain_sample), "--out", str(out), cwd=tmp_path).returncode == 0
    path = out / "train" / "00000.tokens.npy"
    data = bytearray(path.read_bytes())
    data[200] ^= 1
    path.write_bytes(bytes(data))
    plain = run_script(str(plain_sample), "--out", str(out), cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.startswith("already prepared")
    checked = run_script(str(plain_sample), "--out", str(out), "--verify-checksums",
                         cwd=tmp_path)
    assert (checked.returncode, checked.stderr) == (
        2, f"error: {path}: CRC-32 differs from manifest.json (corrupted); prepare it again "
           "(scripts/prepare_data.py ... --force)\n")


def test_temporaries_of_a_running_process_are_left_alone(tmp_path, plain_sample):
    out = tmp_path / "out"
    alive = temporary_name(out)  # ours: this process runs
    alive.mkdir()
    other_host = out.with_name(".out.tmp-otherhost-1-abcd1234")
    other_host.mkdir()
    assert leftover_temporaries(out) == ([], sorted([alive, other_host]))
    prepare(plain_sample, out)
    assert alive.is_dir() and other_host.is_dir() and (out / MANIFEST).is_file()


def test_lock_excludes_a_second_holder(tmp_path):
    out = tmp_path / "out"
    with locked(out), open(lock_path(out)) as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_during_preparation_removes_its_temporary(tmp_path, plain_sample, workers):
    out = tmp_path / "out"
    process = script(str(plain_sample), "--out", str(out), "--workers", workers, *TINY_CHUNKS,
                     cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob(".out.tmp-*/train/00010.ids.txt")):  # well under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM  # exited, after its clean-up
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
