"""Sample proteins: ``python scripts/generate.py checkpoint=CKPT num_samples=N max_length=L seed=S
output=FASTA`` (causal checkpoints). See ``protperf/conf/generate.yaml``.
"""

from protperf.cli.entries import generate as main

if __name__ == "__main__":
    main()
