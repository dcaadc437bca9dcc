"""Files and folders that appear complete or not at all: the one home of protperf's writes.

Every file protperf writes is written under a temporary name beside its target and renamed
into place: one name scheme, ``.NAME.tmp-HOST-PID-TOKEN`` (:func:`temp_path`; a folder being
replaced is set aside as ``.NAME.old-...`` for the instant of the swap). A writer removes its
own temporary on any exit it can catch: an exception, Ctrl-C, SIGTERM / SIGHUP (during a write
they raise ``SystemExit(128 + signal)`` unless another handler is installed). The next writer
removes the leftovers of writers that died on this host (:func:`remove_dead_leftovers`). A full
disk, a read-only file system or a missing permission is :class:`OutputWriteError`, one line
naming the target (:func:`write_error`). :func:`atomic_path` / :func:`atomic_open` write a
file; :func:`atomic_directory` a folder (replacing one keeps the files the writer did not
write). Standard library only: every layer writes through this module.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from protperf.errors import OutputWriteError

log = logging.getLogger(__name__)

#: Kinds of temporaries: a file or folder being written, a folder set aside while replaced.
TEMP, ASIDE = "tmp", "old"
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?:(?P<host>[^-]+)-)?(?P<pid>\d+)(?:-[0-9a-f]{8})?$")
#: errno -> what a user is told.
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
#: Signals that end a process by default and can be caught while a write is under way.
CAUGHT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                       if hasattr(signal, name))


def host_name() -> str:
    return socket.gethostname()


def host_tag() -> str:
    """This host in temporary names (no ``-``, which separates the fields)."""
    return host_name().replace("-", "_") or "host"


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this host (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


# -- names ---------------------------------------------------------------------------------
def temp_path(target: str | Path, kind: str = TEMP) -> Path:
    """A new temporary name beside ``target``: ``.NAME.tmp-HOST-PID-TOKEN``."""
    target = Path(target)
    return target.with_name(
        f".{target.name}.{kind}-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True)
class Leftover:
    """A temporary found on disk: ``target`` is what it was written for."""

    path: Path
    target: Path
    kind: str
    host: str | None  # None: an old ``.NAME.tmp-PID`` name, written on this host
    pid: int

    @property
    def dead(self) -> bool:
        """Written on this host by a process that no longer runs."""
        same_host = self.host is None or self.host.split(".")[0] == host_tag().split(".")[0]
        return same_host and not pid_alive(self.pid)


def parse_leftover(path: str | Path) -> Leftover | None:
    """The :class:`Leftover` named by ``path``, or None if it is not a temporary's name."""
    path = Path(path)
    found = _LEFTOVER.match(path.name)
    if found is None:
        return None
    return Leftover(path, path.with_name(found["name"]), found["kind"], found["host"],
                    int(found["pid"]))


def leftovers(directory: str | Path, target: str | None = None) -> list[Leftover]:
    """The temporaries in ``directory`` (of the entry named ``target`` only, if given)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = f".{glob.escape(target)}.*-*" if target else ".*.*-*"
    found = (parse_leftover(p) for p in sorted(directory.glob(pattern)))
    return [item for item in found if item is not None
            and (target is None or item.target.name == target)]


def remove_dead_leftovers(directory: str | Path, target: str | None = None) -> list[Path]:
    """Remove the temporaries in ``directory`` (of ``target`` only, if given) that writers
    which died on this host left; a set-aside folder goes back to its place (or its files the
    new folder lacks move into it). Returns the paths dealt with."""
    done = []
    for item in leftovers(directory, target):
        if not item.dead or not item.path.exists():
            continue
        if item.kind == ASIDE and item.path.is_dir():
            restore_aside(item.path, item.target)
            log.warning("put back %s, set aside by a write that was interrupted", item.target)
        else:
            remove(item.path)
            log.warning("removed %s, left by a write that was interrupted", item.path)
        done.append(item.path)
    return done


def remove(path: Path) -> None:
    """Remove a file or a folder, if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# -- errors --------------------------------------------------------------------------------
def os_error_of(error: BaseException) -> OSError | None:
    """The OSError (disk full, read-only, permission) behind ``error`` or its causes."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return error
        error, seen = (error.__cause__ or error.__context__), seen + 1
    return None


def is_write_failure(error: BaseException) -> bool:
    """An OSError, or the RuntimeError torch's zip writer raises for one (``write failed``)."""
    return isinstance(error, OSError) or (isinstance(error, RuntimeError)
                                          and "write failed" in str(error))


def write_error(target: str | Path, error: BaseException, what: str = "",
                advice: str = "") -> OutputWriteError:
    """One line: ``cannot write [what ]TARGET: REASON[ (advice)]``."""
    if isinstance(error, OutputWriteError):
        return error
    cause = os_error_of(error)
    code = cause.errno if cause is not None else getattr(error, "errno", None)
    if cause is not None:
        reason = WRITE_ERRNOS[cause.errno]
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror.lower()
    elif "write failed" in str(error):  # torch's zip writer: the disk filled
        reason, code = WRITE_ERRNOS[errno.ENOSPC], errno.ENOSPC
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    full = (f"cannot write {what + ' ' if what else ''}{target}: {reason}"
            + (f" ({advice})" if advice and code in (errno.ENOSPC, errno.EDQUOT) else ""))
    return output_write_error(full, code)


def output_write_error(message: str, code: int | None = None) -> OutputWriteError:
    error = OutputWriteError(message)  # its text is the message alone, errno set aside
    error.errno = code
    return error


# -- signals -------------------------------------------------------------------------------
_guard_lock = threading.Lock()
_guard_depth = 0
_saved_handlers: dict[int, Any] = {}


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM / SIGHUP raise ``SystemExit(128 + signal)`` (so ``finally``
    blocks remove temporaries) where they would have killed the process outright; a handler
    someone else installed (Lightning, SLURM requeue) is left in charge."""
    global _guard_depth
    main = threading.current_thread() is threading.main_thread()
    with _guard_lock:
        if main and _guard_depth == 0:
            for signum in CAUGHT_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    _saved_handlers[signum] = signal.signal(signum, _exit_on_signal)
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if main and _guard_depth == 0:
                for signum, handler in _saved_handlers.items():
                    signal.signal(signum, handler)
                _saved_handlers.clear()


# -- files ---------------------------------------------------------------------------------
def make_parent(target: Path, what: str = "") -> list[Path]:
    """Create the folder of ``target`` (a failure is :class:`OutputWriteError`); returns the
    folders created, outermost first (removed again if the write fails: :func:`unmake`)."""
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()][::-1]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return created
    except FileExistsError:
        raise output_write_error(
            f"cannot write {what + ' ' if what else ''}{target}: {target.parent} (or a "
            "folder above it) is a file") from None
    except OSError as error:
        raise write_error(target, error, what) from None


def unmake(created: list[Path]) -> None:
    """Remove the folders :func:`make_parent` created, innermost first, while empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path, what: str = "", advice: str = "",
                fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; renamed to ``target`` when the block
    ends, removed on any exception (Ctrl-C and SIGTERM included); dead writers' leftovers of
    ``target`` are removed first. A failed write raises
    :class:`OutputWriteError` naming ``target`` (``what``: e.g. ``checkpoint``; ``advice``:
    added for a full disk)."""
    target = Path(target)
    created = make_parent(target, what)
    remove_dead_leftovers(target.parent, target.name)
    temp = temp_path(target)
    with signals_raise():
        try:
            yield temp
            if fsync:
                fsync_path(temp)
            os.replace(temp, target)
        except BaseException as error:
            remove(temp)
            unmake(created)
            if is_write_failure(error):
                raise write_error(target, error, what, advice) from None
            raise


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", what: str = "",
                **kwargs: Any) -> Iterator[IO]:
    """``open`` for writing ``target`` atomically (see :func:`atomic_path`)."""
    with atomic_path(target, what) as temp, open(temp, mode, **kwargs) as handle:
        yield handle


def write_text(target: str | Path, text: str, what: str = "") -> Path:
    with atomic_open(target, "w", what, encoding="utf-8") as handle:
        handle.write(text)
    return Path(target)


def check_writable(directory: str | Path, what: str = "", need_bytes: int = 0) -> Path:
    """Write, fsync and remove a 4 KiB probe in ``directory`` (or, if it does not exist yet, in
    the nearest folder above it, where it would be created), so that a read-only, unwritable or
    full file system fails now, before any work (one line naming ``directory``); nothing is
    created. ``need_bytes``: also refuse when the file system has less free space."""
    directory = Path(directory)
    existing = next((p for p in (directory, *directory.absolute().parents) if p.exists()),
                    Path("/"))
    if not existing.is_dir():
        raise output_write_error(f"cannot write {what + ' ' if what else ''}{directory}: "
                                 f"{existing} is a file, not a folder")
    probe = temp_path(existing / "write-probe")
    try:
        with signals_raise():
            try:
                with open(probe, "wb") as handle:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                    os.fsync(handle.fileno())
            finally:
                remove(probe)
        free = shutil.disk_usage(existing).free
    except OSError as error:
        raise write_error(directory, error, what) from None
    if need_bytes > free:
        raise output_write_error(
            f"cannot write {what + ' ' if what else ''}{directory}: it needs about "
            f"{need_bytes / 1e6:.1f} MB, the file system has {free / 1e6:.1f} MB free",
            errno.ENOSPC)
    return directory


# -- folders -------------------------------------------------------------------------------
def merge_into(old: Path, new: Path) -> None:
    """Move the entries of ``old`` that ``new`` lacks into ``new`` (recursing into folders
    both hold), then remove what is left of ``old`` (what ``new`` replaced)."""
    for entry in sorted(old.iterdir()):
        there = new / entry.name
        if not there.exists() and not there.is_symlink():
            os.replace(entry, there)
        elif entry.is_dir() and there.is_dir() and not entry.is_symlink():
            merge_into(entry, there)
    remove(old)


def restore_aside(aside: Path, target: Path) -> None:
    """Put a folder set aside for a swap back: renamed to ``target`` if the swap did not
    happen, else merged into the new ``target`` (:func:`merge_into`)."""
    if target.exists() or target.is_symlink():
        merge_into(aside, target)
    else:
        os.replace(aside, target)


def publish_directory(staging: Path, out: Path) -> None:
    """Rename the complete ``staging`` folder to ``out``. An existing ``out`` is set aside,
    replaced, and the entries the new folder does not hold are moved from it into the new one:
    only what the writer wrote is replaced. A crash between the renames is repaired by
    :func:`remove_dead_leftovers`."""
    if not out.exists():
        os.replace(staging, out)
        return
    aside = temp_path(out, ASIDE)
    os.replace(out, aside)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(aside, out)
        raise
    merge_into(aside, out)


@contextlib.contextmanager
def atomic_directory(out: str | Path, what: str = "", advice: str = "") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out`` to write; it becomes ``out`` when the
    block ends (:func:`publish_directory`: files of an existing ``out`` that the writer did not
    write are kept), and is removed on any exception (Ctrl-C and SIGTERM included). Dead
    writers' leftovers of ``out`` are removed first. Whether ``out`` may be replaced is the
    caller's decision."""
    out = Path(out)
    created = make_parent(out, what)
    remove_dead_leftovers(out.parent, out.name)
    staging = temp_path(out)
    with signals_raise():
        try:
            staging.mkdir()
            yield staging
            for path in sorted(staging.rglob("*"), key=lambda p: (p.is_dir(), str(p))):
                if not path.is_symlink():
                    fsync_path(path)  # files first, then their folders
            publish_directory(staging, out)
            with contextlib.suppress(OSError):
                fsync_path(out.parent)
        except BaseException as error:
            remove(staging)
            unmake(created)
            if is_write_failure(error):
                raise write_error(out, error, what, advice) from None
            raise
