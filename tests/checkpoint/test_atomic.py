"""The one atomic writer: complete or absent, its own temporary removed on any catchable exit
(exception, Ctrl-C, SIGTERM), dead writers' leftovers removed by the next writer, and a full
or read-only disk as one line naming the target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protperf.checkpoint import atomic
from protperf.checkpoint.atomic import (
    atomic_directory,
    atomic_open,
    atomic_path,
    check_writable,
    host_tag,
    parse_leftover,
    remove_dead_leftovers,
    temp_path,
    write_text,
)
from protperf.errors import CheckpointWriteError, OutputWriteError
from tests.checkpoint.conftest import EACCES, ENOSPC, EROFS, raise_errno

REPO = Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_one_name_scheme_parsed_back(tmp_path):
    temp = temp_path(tmp_path / "last.ckpt")
    assert temp.name.startswith(f".last.ckpt.tmp-{host_tag()}-{os.getpid()}-")
    item = parse_leftover(temp)
    assert (item.target, item.kind, item.pid, item.dead) == (tmp_path / "last.ckpt", "tmp",
                                                            os.getpid(), False)
    old_form = parse_leftover(tmp_path / ".model.ckpt.tmp-123")  # import's name before
    assert (old_form.target.name, old_form.host, old_form.pid) == ("model.ckpt", None, 123)
    assert parse_leftover(tmp_path / "model.ckpt") is None


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "scores.csv", "old\n")
    with pytest.raises(ValueError, match="boom"), atomic_open(target) as handle:
        handle.write("half")
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as handle:
        handle.write("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n" and hidden(tmp_path) == []
    write_text(target, "new\n")
    assert target.read_text() == "new\n" and hidden(tmp_path) == []


@pytest.mark.parametrize(("code", "reason"), [
    (ENOSPC, "no space left on the device"), (EROFS, "the file system is read-only"),
    (EACCES, "permission denied")])
def test_os_errors_are_one_line_naming_the_target(tmp_path, monkeypatch, code, reason):
    target = tmp_path / "out" / "scores.csv"
    with pytest.raises(OutputWriteError) as error, atomic_path(target, "scores") as partial:
        partial.write_text("x")
        raise_errno(code)()
    assert str(error.value) == f"cannot write scores {target}: {reason}"
    assert isinstance(error.value, CheckpointWriteError)  # every runner: one line, exit 2
    assert error.value.errno == code
    assert list(tmp_path.iterdir()) == []  # no temporary, and the folder it created is gone
    target.parent.mkdir()
    monkeypatch.setattr(atomic.os, "replace", raise_errno(code))  # fails at the rename
    with pytest.raises(OutputWriteError, match=f"^cannot write {target}: {reason}$"):
        write_text(target, "x")
    assert list(target.parent.iterdir()) == []  # a folder that was there stays


def test_torch_zip_writer_failure_reads_as_a_full_disk(tmp_path):
    with pytest.raises(OutputWriteError, match=r": no space left on the device \(free it\)$"), \
            atomic_path(tmp_path / "a.ckpt", "checkpoint", "free it"):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter "
                           "failed writing file data/3: file write failed")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaced_keeps_what_the_writer_did_not_write(tmp_path):
    out = tmp_path / "export"
    with atomic_directory(out) as staging:
        (staging / "config.json").write_text("1")
        (staging / "weights").write_text("1")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError), atomic_directory(out) as staging:
        (staging / "config.json").write_text("half")
        raise ValueError
    assert (out / "config.json").read_text() == "1" and hidden(tmp_path) == []
    with atomic_directory(out) as staging:
        (staging / "config.json").write_text("2")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "config.json": "2", "weights": "1", "notes.txt": "mine"}
    assert hidden(tmp_path) == []


def test_dead_writers_leftovers_are_removed_live_ones_kept(tmp_path):
    dead, here = dead_pid(), host_tag()
    names = {f".last.ckpt.tmp-{here}-{dead}-0123abcd": False, f".model.ckpt.tmp-{dead}": False,
             f".last.ckpt.tmp-{here}-{os.getpid()}-0123abcd": True,  # a live writer
             f".last.ckpt.tmp-otherhost-{dead}": True, "last.ckpt": True, ".hidden": True}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".export.tmp-{here}-{dead}-0123abcd").mkdir()  # a folder being written
    removed = remove_dead_leftovers(tmp_path)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, k in names.items() if k)


def test_a_folder_set_aside_by_a_dead_writer_is_put_back(tmp_path):
    dead, here = dead_pid(), host_tag()
    aside = tmp_path / f".export.old-{here}-{dead}-0123abcd"  # killed between the renames
    aside.mkdir()
    (aside / "notes.txt").write_text("mine")
    remove_dead_leftovers(tmp_path, "export")
    assert (tmp_path / "export" / "notes.txt").read_text() == "mine" and hidden(tmp_path) == []
    aside.mkdir()  # killed after the swap: the user's file moves into the new folder
    (aside / "notes2.txt").write_text("mine too")
    (aside / "notes.txt").write_text("replaced by the new folder")
    remove_dead_leftovers(tmp_path, "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["notes.txt", "notes2.txt"]
    assert (tmp_path / "export" / "notes.txt").read_text() == "mine"


WRITER = """
import sys, time
from pathlib import Path
from protperf.checkpoint.atomic import atomic_directory, atomic_path
target = Path(sys.argv[1])
writer = atomic_directory if sys.argv[2] == "dir" else atomic_path
with writer(target) as partial:
    if sys.argv[2] == "dir":
        (partial / "weights").write_bytes(b"x" * 1000)
    else:
        partial.write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)
"""


def default_signal_dispositions() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("kind", ["file", "dir"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_write_removes_the_temporary(tmp_path, kind, signum):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # a shell's background job (`pytest ... &`) inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt for it: give the writer the disposition a terminal gives
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "out"), kind],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_signal_dispositions)
    assert child.stdout.readline() == "writing\n"
    assert len(hidden(tmp_path)) == 1  # the temporary exists while writing
    child.send_signal(signum)
    child.wait(timeout=30)
    assert child.returncode == (128 + signum if signum == signal.SIGTERM else -signum)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_refuses_a_read_only_file_system(readonly_dir):
    with pytest.raises(OutputWriteError, match=f"^cannot write embeddings {readonly_dir}/out: "
                                               "the file system is read-only$"):
        check_writable(readonly_dir / "out", "embeddings")


def test_a_full_file_system_is_one_line_and_leaves_nothing(tiny_disk):
    target = tiny_disk / "big.bin"
    with pytest.raises(OutputWriteError,
                       match=f"^cannot write {target}: no space left on the device$"), \
            atomic_open(target, "wb") as handle:
        handle.write(b"x" * 1024 * 1024)
    assert list(tiny_disk.iterdir()) == []
    with pytest.raises(OutputWriteError, match=r"needs about 10.0 MB, the file system has"):
        check_writable(tiny_disk, need_bytes=10_000_000)


def test_signal_handlers_are_restored_after_a_write(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    write_text(tmp_path / "a", "x")
    assert signal.getsignal(signal.SIGTERM) is before
    time.sleep(0)  # nothing pending
