"""The output directory of a preparation: what it holds, our temporaries beside it, the lock.

A prepared directory ``DIR`` is written as a hidden sibling ``.DIR.tmp-HOST-PID-RANDOM`` and
renamed to ``DIR`` when complete (its ``manifest.json`` written last, then every file and
folder fsynced, so that after a crash ``DIR`` is either absent or whole).
While one process prepares ``DIR`` it holds an ``fcntl.flock`` on ``.DIR.lock``: another
process preparing the same ``DIR`` waits, then finds it prepared.  A temporary whose process
is gone (killed, node crash) is removed by the next preparation of ``DIR``; one whose process
is alive, or that was written on another host, is reported and left alone.

A folder that is not empty and holds no valid manifest is never deleted or replaced.  Replacing
a prepared directory (``--force``) replaces only what preparation wrote there (the manifest and
the shard files it lists): other files in it are moved into the new directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from protperf.checkpoint.atomic import fsync_path, leftovers, temp_path
from protperf.data.shards import FORMAT_VERSION, MANIFEST, SHARD_FILES, SPLITS
from protperf.errors import DataError

log = logging.getLogger(__name__)
_FORMAT_PREFIX = FORMAT_VERSION.rsplit("-", 1)[0] + "-"  # "protperf-shards-": any version


def temporary_name(out_dir: Path) -> Path:
    """A new temporary sibling of ``out_dir``: ``.NAME.tmp-HOST-PID-RANDOM``
    (:func:`protperf.checkpoint.atomic.temp_path`, the one name scheme)."""
    return temp_path(out_dir)


def lock_path(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.lock")


def is_prepared(directory: Path) -> bool:
    """``directory`` holds a ``manifest.json`` of ours (any format version)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith(
        _FORMAT_PREFIX)


def check_source_outside(source: Path, out_dir: Path) -> None:
    """Refuse to prepare into a folder that holds the input (``--force`` would replace it)."""
    if source.resolve().is_relative_to(out_dir.resolve()):
        raise DataError(f"{source}: the input lies inside the output directory {out_dir}; "
                        "move it out or choose another --out")


def check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse an ``out_dir`` that may hold a user's files: an existing non-directory, or a
    non-empty directory that is not prepared.  A prepared one needs ``overwrite``
    (``--force``) unless the caller accepts it as it is (checked before this)."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a directory; choose another --out")
    if is_prepared(out_dir):
        if not overwrite:
            raise DataError(f"{out_dir}: already prepared from another input, with other "
                            "settings or an older format; pass --force (overwrite=True) to "
                            "replace it")
        check_split_folders(out_dir)
        return
    if any(out_dir.iterdir()):
        raise DataError(f"{out_dir}: not empty and not a prepared directory (no valid "
                        f"{MANIFEST}); refusing to replace it, choose another --out")


def _is_shard_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(tuple(f".{suffix}" for suffix in SHARD_FILES))


def written_files(directory: Path) -> list[Path]:
    """What preparation wrote in the prepared ``directory``: its manifest and the shard files
    of its split folders (those a manifest lists, and stale ones of the same form)."""
    found = [directory / MANIFEST] if (directory / MANIFEST).is_file() else []
    for split in SPLITS:
        if (directory / split).is_dir():
            found += [p for p in sorted((directory / split).iterdir()) if _is_shard_file(p)]
    return found


def foreign_entries(directory: Path) -> list[str]:
    """Names of the top-level entries of the prepared ``directory`` that preparation did not
    write (anything but the manifest and the split folders)."""
    return [p.name for p in sorted(directory.iterdir())
            if p.name != MANIFEST and not (p.name in SPLITS and p.is_dir())]


def check_split_folders(directory: Path) -> None:
    """Refuse to replace a prepared ``directory`` whose split folders hold other files than
    shards (they would be deleted with the old shards)."""
    for split in SPLITS:
        if (directory / split).is_dir():
            other = [p for p in sorted((directory / split).iterdir()) if not _is_shard_file(p)]
            if other:
                raise DataError(f"{other[0]}: not a shard file, in a split folder of the "
                                "prepared directory being replaced; move it away first")


def remove_written(directory: Path) -> list[Path]:
    """Delete what preparation wrote in ``directory`` (the manifest last), then the folders
    left empty; returns the entries left (not written by preparation)."""
    for path in sorted(written_files(directory), key=lambda p: p.name == MANIFEST):
        path.unlink(missing_ok=True)
    for split in SPLITS:
        with contextlib.suppress(OSError):
            (directory / split).rmdir()  # only if empty
    left = sorted(directory.iterdir())
    if not left:
        directory.rmdir()
    return left


def leftover_temporaries(out_dir: Path) -> tuple[list[Path], list[Path]]:
    """Our temporaries beside ``out_dir``: ``(stale, live)``; stale ones belong to a process
    of this host that no longer runs, live ones to a running process or another host
    (:func:`protperf.checkpoint.atomic.leftovers`)."""
    stale, live = [], []
    for item in leftovers(out_dir.parent, out_dir.name):
        (stale if item.dead else live).append(item.path)
    return stale, live


def clean_leftovers(out_dir: Path) -> None:
    """Remove stale temporaries of ``out_dir``; log the ones left alone.  Of a stale replaced
    directory (``.old-``) only what preparation wrote is removed (the files of a prepared
    directory are known by its manifest, so a user's files are kept where the generic
    :func:`protperf.checkpoint.atomic.remove_dead_leftovers` would merge shard folders)."""
    stale, live = leftover_temporaries(out_dir)
    for path in stale:
        log.warning("removing %s, left by a preparation that did not finish", path)
        if ".old-" in path.name and path.is_dir():
            if remove_written(path):
                log.warning("%s holds files that preparation did not write: left for you to "
                            "move", path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path in live:
        if path.exists():
            log.warning("leaving %s alone: written by a running process or another host "
                        "(remove it by hand if no preparation runs)", path)


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``.NAME.lock`` beside ``out_dir`` (waits for it)."""
    blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise DataError(f"{out_dir}: cannot be created, {blocking} is a file, not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(out_dir), "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: go on, unlocked
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            log.warning("cannot lock %s (%s): concurrent preparations are not excluded",
                        handle.name, exc.strerror)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def publish(tmp: Path, out_dir: Path) -> None:
    """fsync every file and folder of the complete ``tmp`` and rename it to ``out_dir``
    (checked by :func:`check_target`), replacing an empty or prepared directory; the old one
    is renamed aside first, the files preparation did not write are moved from it into the new
    directory, and the rest of it is removed."""
    foreign = foreign_entries(out_dir) if out_dir.is_dir() and is_prepared(out_dir) else []
    for path in sorted(tmp.rglob("*"), key=lambda p: (p.is_dir(), str(p))):
        fsync_path(path)  # files first, then their folders
    fsync_path(tmp)
    aside = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            aside = out_dir.with_name(tmp.name.replace(".tmp-", ".old-", 1))
            os.replace(out_dir, aside)
        else:
            out_dir.rmdir()
    os.replace(tmp, out_dir)
    fsync_path(out_dir.parent)
    if aside is not None:
        for name in foreign:  # the new directory holds only the manifest and split folders
            os.replace(aside / name, out_dir / name)
        remove_written(aside)
