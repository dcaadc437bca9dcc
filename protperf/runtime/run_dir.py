"""Run directories: a fresh one per run, and the checkpoint a resumed run continues from.

``conf/hydra/default.yaml`` names run and sweep directories ``${protperf_unique_dir:...}``:
the first free one of ``<name>``, ``<name>_1``, ``<name>_2``, ... is *claimed* by creating it
(``mkdir`` is atomic), so two runs started in the same second never share a directory.  The
value is cached per process (Hydra resolves it several times, and copies the cache into the
jobs of a sweep, a requeued SLURM job included).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

from protperf.errors import CheckpointError

log = logging.getLogger(__name__)

RESOLVER = "protperf_unique_dir"
_claimed: dict[str, str] = {}


def claim_unique_dir(base: str) -> str:
    """Create and return the first of ``base``, ``base_1``, ``base_2``, ... that does not exist
    yet (the same answer for the same ``base`` within one process)."""
    if base in _claimed:
        return _claimed[base]
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else f"{base}_{attempt}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        _claimed[base] = candidate
        return candidate
    raise RuntimeError(f"no free run directory next to {base} (tried 10000 names)")


def register_resolvers() -> None:
    """Make ``${protperf_unique_dir:path}`` available to configs (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, claim_unique_dir, use_cache=True)


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


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """The checkpoint to resume from (None: a fresh start).

    ``"last"``: the newest checkpoint of this run directory; none there is an error naming the
    folder searched (a mistyped ``hydra.run.dir``), except in a requeued SLURM job
    (``SLURM_RESTART_COUNT`` > 0), whose previous start may have been stopped before its first
    checkpoint: it starts from scratch, with a warning.
    ``"last_or_new"``: the newest checkpoint if there is one, else a fresh start (for job
    scripts that run the same command on every start).
    None: ``"last_or_new"`` in a requeued SLURM job, else a fresh start.  A path must exist.
    """
    if ckpt_path is None and requeued():
        ckpt_path = RESUME_LAST_OR_NEW
        log.info("requeued SLURM job (SLURM_RESTART_COUNT=%s): resuming from the newest "
                 "checkpoint of %s", os.environ.get("SLURM_RESTART_COUNT"), run_dir)
    if ckpt_path is None:
        return None
    if ckpt_path in (RESUME_LAST, RESUME_LAST_OR_NEW):
        newest = newest_checkpoint(run_dir)
        if newest is not None:
            log.info("ckpt_path=%s: resuming from %s", ckpt_path, newest)
            return str(newest)
        if ckpt_path == RESUME_LAST and not requeued():
            raise CheckpointError(
                f"ckpt_path=last: no checkpoint in {checkpoint_dir(run_dir)} (is hydra.run.dir "
                "the folder of the run to resume?); ckpt_path=last_or_new starts a new run "
                "there when it holds none")
        log.warning("ckpt_path=%s: no checkpoint in %s yet; starting from scratch", ckpt_path,
                    checkpoint_dir(run_dir))
        return None
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return ckpt_path
