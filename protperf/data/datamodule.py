"""``ProteinDataModule``: a prepared directory (or a FASTA file, prepared on first use) ->
train / valid / test DataLoaders of MLM or CLM batches (see :mod:`protperf.data.collate`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, default_collate

from protperf.data.collate import make_collator
from protperf.data.config import DataConfig
from protperf.data.dataset import ConcatenatedDataset, ProteinDataset
from protperf.data.preparation.cache import ensure_prepared
from protperf.data.resume import ResumePoint, SeededCollator, resume_point, start_of_pass
from protperf.data.shards import PreparedSplit, read_manifest
from protperf.errors import DataError

log = logging.getLogger(__name__)


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its dataset the epoch before each pass (for the shuffle) and
    can resume a pass part-way (``state_dict`` / ``load_state_dict``, which Lightning stores in
    and restores from checkpoints).

    The epoch comes from ``epoch_source()`` (the trainer's ``current_epoch``) or, without one,
    counts the passes.  The batches done in the current pass come from ``progress_source()``
    (the trainer's count of trained batches: the loader itself runs ahead by its prefetch) or,
    without one, count the batches this loader has yielded.  Masks are drawn per batch by a
    :class:`~protperf.data.resume.SeededCollator`, so a resumed pass gives the same batches.
    """

    def __init__(self, *args, epoch_source=None, progress_source=None, collate_seed: int = 0,
                 fixed_seed: int | None = None, **kwargs):
        kwargs["collate_fn"] = SeededCollator(kwargs.get("collate_fn") or default_collate,
                                              seed=collate_seed)
        super().__init__(*args, **kwargs)
        self._epoch_source = epoch_source
        self._progress_source = progress_source
        self._passes = 0
        self._epoch = 0
        self._yielded = 0
        self._fixed_seed = fixed_seed
        self._pending: dict | None = None

    def __iter__(self):
        if self._fixed_seed is not None:  # evaluation: the same masks on every pass
            self.generator.manual_seed(self._fixed_seed)
        epoch = self._epoch_source() if self._epoch_source is not None else None
        self._epoch = self._passes if epoch is None else epoch
        if self._fixed_seed is not None:
            self._epoch = 0
        self._passes += 1
        point = self._resume_point()
        self.dataset.set_epoch(self._epoch)
        self.dataset.resume_from(point, self.batch_size or 1)
        self.collate_fn.start_pass(self._epoch, point)
        self._yielded = sum(point.done)
        return self._counting(super().__iter__())

    def _counting(self, iterator):
        for batch in iterator:
            self._yielded += 1
            yield batch

    def _resume_point(self) -> ResumePoint:
        pending, self._pending = self._pending, None
        workers = max(self.num_workers, 1)
        if pending is None or pending["epoch"] != self._epoch:
            return start_of_pass(workers)
        layout = {"num_workers": self.num_workers, "batch_size": self.batch_size,
                  "world_size": getattr(self.dataset, "world_size", 1)}
        changed = [f"{key} {pending.get(key)} -> {value}" for key, value in layout.items()
                   if pending.get(key, value) != value]
        if changed:
            log.warning("resuming epoch %d after %d batches with a different data layout (%s): "
                        "the rest of the epoch is not exactly the interrupted run's",
                        self._epoch, pending["batches"], ", ".join(changed))
        return resume_point(self.batches_per_worker(), pending["batches"])

    def state_dict(self) -> dict:
        """Where the current pass stands: ``epoch``, ``batches`` done, and the data layout."""
        batches = self._progress_source() if self._progress_source is not None else None
        return {
            "epoch": self._epoch,
            "batches": self._yielded if batches is None else int(batches),
            "num_workers": self.num_workers,
            "batch_size": self.batch_size,
            "world_size": getattr(self.dataset, "world_size", 1),
        }

    def load_state_dict(self, state: dict) -> None:
        """The next pass continues the saved one (if it is of the same epoch)."""
        self._pending = dict(state)

    def batches_per_worker(self) -> list[int]:
        """Batches each worker makes per pass: it batches its own round-robin share of the
        rank's items, so ``num_workers`` workers can end with up to ``num_workers`` partial
        batches."""
        n_items = len(self.dataset)
        if self.batch_size is None:
            return [n_items]
        workers = max(self.num_workers, 1)
        shares = (len(range(w, n_items, workers)) for w in range(workers))
        return [-(-share // self.batch_size) for share in shares]

    def __len__(self) -> int:
        """Batches per pass, all of them: Lightning ends an epoch after ``len(dataloader)``
        batches, and the default count (``ceil(items / batch_size)``) would silently drop the
        extra partial batches of the workers."""
        return sum(self.batches_per_worker())


class ProteinDataModule(pl.LightningDataModule):
    """Batches for ``objective`` ``"mlm"`` (bidirectional) or ``"clm"`` (causal).

    ``rank`` / ``world_size`` default to the attached trainer's (1 process without one);
    pass them explicitly to simulate ranks.
    """

    def __init__(
        self,
        config: DataConfig | None = None,
        objective: str = "mlm",
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        self.config = config or DataConfig()
        self.config.validate()
        make_collator(objective)  # rejects an unknown objective now, not at the first batch
        self.objective = objective
        self._rank = rank
        self._world_size = world_size
        self.prepared_dir: Path | None = None
        self.manifest: dict | None = None
        self.splits: dict[str, PreparedSplit] = {}

    # -- preparation -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Prepare the FASTA file once (Lightning calls this on one process per node)."""
        self.prepared_dir, _ = ensure_prepared(self.config)

    def setup(self, stage: str | None = None) -> None:
        if self.prepared_dir is None:
            self.prepared_dir, _ = ensure_prepared(self.config)
        self.manifest = read_manifest(self.prepared_dir)
        for split in ("train", "valid", "test"):
            if split not in self.splits:
                self.splits[split] = PreparedSplit(self.prepared_dir, split)

    def check_splits(self, splits: list[str]) -> None:
        """Raise :class:`DataError` (one line, naming the prepared directory) if one of
        ``splits`` holds no sequence: training needs ``train`` and validates on ``valid``."""
        if self.manifest is None:
            self.setup()
        counts = {split: self.manifest["splits"][split]["sequences"] for split in self.splits}
        empty = [split for split in splits if counts[split] == 0]
        if not empty:
            return
        settings = self.manifest.get("settings", {})
        fractions = ", ".join(f"{key}={settings[key]}" for key in
                              ("valid_fraction", "test_fraction") if key in settings)
        raise DataError(
            f"{self.prepared_dir}: the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''}"
            f" hold{'' if len(empty) > 1 else 's'} no sequences (train {counts['train']}, valid "
            f"{counts['valid']}, test {counts['test']}; prepared with {fractions} from "
            f"{self.manifest['source']['path']}): give more sequences or raise "
            "data.prepare.valid_fraction / test_fraction")

    # -- ranks -----------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        if self._rank is not None:
            return self._rank
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        if self._world_size is not None:
            return self._world_size
        return self.trainer.world_size if self.trainer is not None else 1

    # -- datasets and loaders --------------------------------------------------------------
    def dataset(self, split: str, train: bool):
        if not self.splits:
            self.setup()
        c = self.config
        # DDP training needs equal batch counts per rank (see protperf.data.dataset)
        even = train and self.world_size > 1
        common = dict(train=train, seed=c.seed, rank=self.rank, world_size=self.world_size,
                      even_ranks=even)
        if c.concatenate:
            return ConcatenatedDataset(self.splits[split], c.window, **common)
        return ProteinDataset(self.splits[split], c.max_length, **common)

    def _loader(self, split: str, train: bool) -> DataLoader:
        c = self.config
        seed = c.seed + 7919 * self.rank
        generator = torch.Generator().manual_seed(seed)
        epoch_source = progress_source = None
        if self.trainer is not None:
            trainer = self.trainer
            epoch_source = lambda: trainer.current_epoch  # noqa: E731
            if train:  # batches trained in this epoch (what a checkpoint's weights have seen)
                progress_source = (  # noqa: E731
                    lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return EpochDataLoader(
            self.dataset(split, train),
            batch_size=c.batch_size,
            num_workers=c.num_workers,
            collate_fn=make_collator(self.objective, c.mask_prob, seed=seed,
                                     segments=not c.cross_protein_attention),
            generator=generator,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
            epoch_source=epoch_source,
            progress_source=progress_source,
            collate_seed=seed,
            fixed_seed=None if train else seed,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
