"""``ProteinDataModule``: a prepared directory (or a FASTA file, prepared on first use) ->
train / valid / test DataLoaders of MLM or CLM batches (see :mod:`protperf.data.batching`)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from protperf.data.batching import make_collator
from protperf.data.cache import ensure_prepared
from protperf.data.config import DataConfig
from protperf.data.dataset import ConcatenatedDataset, ProteinDataset
from protperf.data.shards import PreparedSplit, read_manifest


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its dataset the epoch before each pass (for the shuffle).

    The epoch comes from ``epoch_source()`` (the trainer's ``current_epoch``, so resuming a
    run reproduces its order) or, without one, counts the passes.
    """

    def __init__(self, *args, epoch_source=None, fixed_seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._epoch_source = epoch_source
        self._passes = 0
        self._fixed_seed = fixed_seed

    def __iter__(self):
        if self._fixed_seed is not None:  # evaluation: the same masks on every pass
            self.generator.manual_seed(self._fixed_seed)
            collate_generator = getattr(self.collate_fn, "generator", None)
            if collate_generator is not None:
                collate_generator.manual_seed(self._fixed_seed)
        epoch = self._epoch_source() if self._epoch_source is not None else None
        self.dataset.set_epoch(self._passes if epoch is None else epoch)
        self._passes += 1
        return super().__iter__()

    def __len__(self) -> int:
        """Batches per pass.  Each worker batches its own round-robin share of the rank's
        items, so ``num_workers`` workers can end with up to ``num_workers`` partial batches;
        count them all: Lightning ends an epoch after ``len(dataloader)`` batches, and the
        default count (``ceil(items / batch_size)``) would silently drop the extra ones."""
        n_items = len(self.dataset)
        if self.batch_size is None:
            return n_items
        workers = max(self.num_workers, 1)
        shares = (len(range(w, n_items, workers)) for w in range(workers))
        return sum(-(-share // self.batch_size) for share in shares)


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
        epoch_source = None
        if self.trainer is not None:
            epoch_source = lambda: self.trainer.current_epoch  # noqa: E731
        return EpochDataLoader(
            self.dataset(split, train),
            batch_size=c.batch_size,
            num_workers=c.num_workers,
            collate_fn=make_collator(self.objective, c.mask_prob, seed=seed),
            generator=generator,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
            epoch_source=epoch_source,
            fixed_seed=None if train else seed,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
