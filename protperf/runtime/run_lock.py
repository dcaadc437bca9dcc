"""One training process per run directory: an ``fcntl.flock`` on ``<run dir>/.run.lock``.

The launching process (global rank 0; DDP ranks started by Lightning, SLURM or torchrun share
its lock) holds the lock for the whole run.  A second run on the same directory fails with one
line naming the holder (``pid``, ``host``, start time, written into the lock file by the
holder).  The kernel releases the lock when its holder dies, so the lock of a killed run is
taken over by the next one; the pid/host it left in the file are then just overwritten.
A requeued SLURM job waits up to :data:`REQUEUE_WAIT_S` for the lock of its previous
incarnation (a crashed node's lock on a network file system is released only when its lease
runs out).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from protperf.checkpoint.atomic import check_writable, host_name, pid_alive
from protperf.errors import RunDirectoryBusyError

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
#: Seconds a requeued job waits for its previous incarnation's lock (NFSv4 leases: ~90 s).
REQUEUE_WAIT_S = 180.0
#: Seconds to wait when the recorded holder is dead on this host (its forked loader workers
#: may still hold the lock while they notice and exit).
DEAD_HOLDER_WAIT_S = 15.0
#: Environment variables a launcher sets to a process's (global, node or local) rank.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK",
                  "JSM_NAMESPACE_RANK")


def is_launching_process() -> bool:
    """False in a DDP rank other than 0 (any rank variable of a launcher set and non-zero)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


def read_holder(lock_file: Path) -> dict:
    """The ``pid`` / ``host`` / ``since`` the holder wrote ({} if unreadable or not written)."""
    try:
        holder = json.loads(lock_file.read_text() or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process (it has not recorded its pid yet)"
    text = f"pid {holder['pid']} on host {holder.get('host', '?')}"
    if holder.get("since"):
        text += f" (since {holder['since']})"
    if holder.get("host") == host_name() and not pid_alive(int(holder["pid"])):
        text += ", which has exited: its child processes still hold the lock; retry shortly"
    return text


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def run_directory_lock(run_dir: str | Path, wait_s: float = 0.0) -> Iterator[Path | None]:
    """Hold ``<run_dir>/.run.lock`` while the block runs (yields its path; None when not taken:
    a DDP rank other than 0, or a file system without locks, which is logged).

    Raises :class:`RunDirectoryBusyError` naming the holder if another live process holds it
    after ``wait_s`` seconds."""
    if not is_launching_process():
        yield None
        return
    run_dir = Path(run_dir)
    check_writable(run_dir, "run directory")  # read-only or full: one line, before any work
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_file = run_dir / LOCK_NAME
    with open(lock_file, "a+") as handle:
        try:
            taken = _try_lock(handle)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            log.warning("cannot lock %s (%s): a second run on this directory is not excluded",
                        lock_file, exc.strerror)
            yield None
            return
        deadline = time.monotonic() + wait_s
        while not taken:
            holder = read_holder(lock_file)
            dead_here = holder.get("host") == host_name() and holder.get("pid") and \
                not pid_alive(int(holder["pid"]))
            limit = max(deadline, time.monotonic() + DEAD_HOLDER_WAIT_S) if dead_here \
                else deadline
            if time.monotonic() >= limit:
                raise RunDirectoryBusyError(
                    f"run directory {run_dir} is in use by {describe_holder(holder)}: "
                    "one run per directory (wait for it to end, or choose another "
                    "hydra.run.dir)")
            time.sleep(0.5)
            taken = _try_lock(handle)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": host_name(),
                                 "since": datetime.now().isoformat(timespec="seconds")}))
        handle.flush()
        try:
            yield lock_file
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
