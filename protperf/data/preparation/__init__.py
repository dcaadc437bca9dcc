"""Preparation: a FASTA file (plain or .gz) -> a directory of token shards and a manifest.

- :mod:`.pipeline`    ``prepare()``: the whole job, all-or-nothing, in one or several processes
- :mod:`.sources`     the input cut into chunks at record boundaries (plain byte ranges, gzip)
- :mod:`.records`     a chunk's records (vectorized splitter, biopython as the reference)
- :mod:`.chunk`       one chunk -> filtered records, one shard per split (``ChunkJob``)
- :mod:`.splits`      the split rule (a hash of the record id)
- :mod:`.duplicates`  duplicate record ids across the whole file
- :mod:`.writer`      shard files with their sizes and CRC-32
- :mod:`.target`      the output directory: lock, temporary name, publish
- :mod:`.validate`    checking a prepared directory against its manifest
- :mod:`.cache`       where a FASTA file's prepared directory lives (``ensure_prepared``)

The shard format and its reader are :mod:`protperf.data.shards`; docs/preparation.md is the
user guide.
"""
