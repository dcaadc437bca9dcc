"""Score variants:
``python scripts/score.py checkpoint=CKPT mutations=CSV wildtype=FASTA output=CSV``.

One column per method; Spearman rho printed when the CSV has ``DMS_score``. See
``protperf/conf/score.yaml``.
"""

from protperf.cli.entries import score as main

if __name__ == "__main__":
    main()
