"""Embed proteins: ``python scripts/embed.py checkpoint=CKPT data.path=FASTA output_dir=DIR``.

Writes ``DIR/embeddings/`` (``.npy`` chunks + ``index.csv``). The same as ``protperf-embed``;
options: ``protperf/conf/embed.yaml``.
"""

from protperf.cli.entries import embed as main

if __name__ == "__main__":
    main()
