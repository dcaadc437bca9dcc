"""Training runtime: what makes a long run resumable and safe on a cluster.

Run directories and the checkpoint a resumed run continues from (:mod:`.run_dir`), one run per
directory (:mod:`.run_lock`), a clean stop on SLURM's and the terminal's signals
(:mod:`.preemption`), atomic checkpoint writes that never hold non-finite weights and whose
partial files are cleaned up (:mod:`.checkpoint_io`), non-finite and diverging training
(:mod:`.divergence`), ``save_top_k`` across resumes (:mod:`.best_checkpoints`), checks of how
DDP was launched (:mod:`.launch`) and per-rank batch records for debugging
sharding (:mod:`.batch_record`). The data position of exact resume is the stateful loader of
:mod:`protperf.data.resume`.
"""
