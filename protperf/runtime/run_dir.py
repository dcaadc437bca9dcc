"""Run directories: a fresh one per run, and the checkpoint a resumed run continues from.

``conf/hydra/default.yaml`` names run and sweep directories ``${protperf_unique_dir:...}``
(the resolver is registered by :mod:`protperf.cli.registry`):
the first free one of ``<name>``, ``<name>_1``, ``<name>_2``, ... is *claimed* by creating it
(``mkdir`` is atomic), so two runs started in the same second never share a directory.  The
value is cached per process (Hydra resolves it several times, and copies the cache into the
jobs of a sweep, a requeued SLURM job included).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from protperf.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

RESOLVER = "protperf_unique_dir"
_claimed: dict[str, str] = {}
_made_for: dict[str, list[Path]] = {}  # claimed dir -> the parent folders made for it


def claim_unique_dir(base: str) -> str:
    """Create and return the first of ``base``, ``base_1``, ``base_2``, ... that does not exist
    yet (the same answer for the same ``base`` within one process)."""
    if base in _claimed:
        return _claimed[base]
    parent = Path(base).parent
    missing = [folder for folder in (parent, *parent.parents) if not folder.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else f"{base}_{attempt}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        _claimed[base] = candidate
        _made_for[candidate] = missing  # deepest first
        return candidate
    raise RuntimeError(f"no free run directory next to {base} (tried 10000 names)")


#: What a run directory holds before the command did anything: Hydra's record of the config
#: and its log file, and the run lock.
SET_UP_ONLY = (".hydra", ".run.lock")


def discard_unused(run_dir: str | Path) -> bool:
    """Remove ``run_dir`` if this process claimed it (:func:`claim_unique_dir`) and it holds
    only what Hydra set up (``.hydra/``, ``*.log``, the run lock), then the parent folders made
    for it that are left empty: a refused config leaves no run folder behind. True if
    removed."""
    run_dir = Path(os.path.abspath(run_dir))
    claimed = {os.path.abspath(path): path for path in _claimed.values()}
    if str(run_dir) not in claimed:
        return False
    if not run_dir.is_dir() or any(entry.name not in SET_UP_ONLY and entry.suffix != ".log"
                                   for entry in run_dir.iterdir()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in _made_for.get(claimed[str(run_dir)], []):  # outputs/<name>/, outputs/
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break
    return True


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The most recently written ``last*.ckpt`` of ``<run_dir>/checkpoints`` (the full state
    at the latest step), else the most recent ``*.ckpt``; None if there is none.  Partial
    files of an interrupted write (``.<name>.tmp-<pid>``) are not checkpoints."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return None
    candidates = [p for p in directory.glob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    if not candidates:
        return None
    last = [p for p in candidates if p.name.startswith("last")]
    return max(last or candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))


def requeued() -> bool:
    """True in a SLURM job that was requeued (SLURM counts restarts in SLURM_RESTART_COUNT;
    submitit's requeue is a SLURM requeue too)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


#: ``ckpt_path`` values that mean "the newest checkpoint of this run directory".
RESUME_LAST = "last"
RESUME_LAST_OR_NEW = "last_or_new"


def _silent(*args: object) -> None:
    pass


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path,
                      quiet: bool = False) -> str | None:
    """The checkpoint to resume from (None: a fresh start).

    ``"last"``: the newest checkpoint of this run directory; none there is an error naming the
    folder searched (a mistyped ``hydra.run.dir``), except in a requeued SLURM job
    (``SLURM_RESTART_COUNT`` > 0), whose previous start may have been stopped before its first
    checkpoint: it starts from scratch, with a warning.
    ``"last_or_new"``: the newest checkpoint if there is one, else a fresh start (for job
    scripts that run the same command on every start).
    None: ``"last_or_new"`` in a requeued SLURM job, else a fresh start.  A path must exist.
    ``quiet``: the same answer and errors, without logging the choice.
    """
    info, warning = (_silent, _silent) if quiet else (log.info, log.warning)
    if ckpt_path is None and requeued():
        ckpt_path = RESUME_LAST_OR_NEW
        info("requeued SLURM job (SLURM_RESTART_COUNT=%s): resuming from the newest "
             "checkpoint of %s", os.environ.get("SLURM_RESTART_COUNT"), run_dir)
    if ckpt_path is None:
        return None
    if ckpt_path in (RESUME_LAST, RESUME_LAST_OR_NEW):
        newest = newest_checkpoint(run_dir)
        if newest is not None:
            info("ckpt_path=%s: resuming from %s", ckpt_path, newest)
            return str(newest)
        if ckpt_path == RESUME_LAST and not requeued():
            raise CheckpointError(
                f"ckpt_path=last: no checkpoint in {checkpoint_dir(run_dir)} (is hydra.run.dir "
                "the folder of the run to resume?); ckpt_path=last_or_new starts a new run "
                "there when it holds none")
        warning("ckpt_path=%s: no checkpoint in %s yet; starting from scratch", ckpt_path,
                checkpoint_dir(run_dir))
        return None
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return ckpt_path


def refuse_finished_run_dir(output_dir: str | Path) -> None:
    """A fresh run never writes into a directory that holds another run's results."""
    found = [name for name, present in (
        ("summary.json", Path(output_dir, "summary.json").is_file()),
        ("checkpoints", any(Path(output_dir, "checkpoints").glob("*.ckpt"))),
    ) if present]
    if found:
        raise ConfigError(
            f"output directory {output_dir} already holds a run ({', '.join(found)}): resume it "
            "with ckpt_path=last, or choose another hydra.run.dir"
        )
