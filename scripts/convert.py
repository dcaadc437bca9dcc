"""Convert an exact-attention protein LM into a Performer:
``python scripts/convert.py checkpoint=SRC output=OUT.ckpt data.path=my.fasta``.

The same as the ``protperf-convert`` command; options: ``protperf/conf/convert.yaml`` and
docs/convert.md.
"""

from protperf.cli.entries import convert as main

if __name__ == "__main__":
    main()
