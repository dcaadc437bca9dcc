"""Data: from FASTA files to model inputs.  Imports no model, analysis, inference or app code.

- ``alphabet``     token ids and the one module-level ``ALPHABET``
- ``fasta``        streaming FASTA reading (plain or gzipped), errors naming file and line
- ``preparation/`` FASTA -> a directory of token shards and a manifest (run once per input)
- ``shards``       the shard format and memory-mapped reading of a prepared split
- ``proteins``     proteins read one by one (a FASTA file or a prepared split)
- ``batching``     ``BatchConverter``: sequences -> padded tokens + key mask (specials, crops),
                   the ``IGNORE_INDEX`` and key-mask rules
- ``collate``      training batches: MLM masking and CLM labels
- ``dataset``      per-protein and concatenated-window datasets, sharded over ranks x workers
- ``resume``       where a pass stopped, per worker, and per-batch mask seeds (exact resume)
- ``datamodule``   the Lightning data module and its resumable loader
- ``config``       ``DataConfig`` / ``PrepareConfig``
"""
