"""Training runtime: what makes a long run resumable and safe on a cluster.

Run directories and the checkpoint a resumed run continues from (:mod:`.run_dir`), a clean
stop on SLURM's signals (:mod:`.preemption`), atomic checkpoint writes (:mod:`.checkpoint_io`),
checks of how DDP was launched (:mod:`.launch`) and per-rank batch records for debugging
sharding (:mod:`.batch_record`). The data position of exact resume is the stateful loader of
:mod:`protperf.data.resume`.
"""
