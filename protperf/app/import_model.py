"""``protperf-import`` / ``scripts/import_model.py``: a pretrained protein Transformer as an
ordinary protperf checkpoint.

    protperf-import esm2_t6_8M_UR50D.pt --out esm2_t6.ckpt          # fair-esm ESM-2 file
    protperf-import ./esm2_t6_8M_UR50D --out esm2_t6.ckpt           # HF EsmForMaskedLM dir
    protperf-import ./prot_bert --out prot_bert.ckpt                # HF BERT masked-LM dir
    protperf-import facebook/esm2_t6_8M_UR50D --out esm2_t6.ckpt    # a Hugging Face repo id
    protperf-import esm2_t6_8M_UR50D --out esm2_t6.ckpt             # a fair-esm name

A name is resolved through the Hugging Face cache (--revision pins a branch, tag or commit;
HF_HUB_OFFLINE=1 uses only the cache) or fair-esm's torch hub cache, downloading what is missing
when online.

Every command then takes OUT as its checkpoint; ``model.attention.kind=favor_softmax`` (or
``favor_relu``) ``model.attention.num_features=256`` runs it as a Performer. Errors are one
line with exit status 2 and nothing is written at OUT (--debug: traceback). docs/pretrained.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from protperf.errors import (
    CheckpointError,
    CheckpointWriteError,
    ConfigError,
    PretrainedSourceError,
    exit_status,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("source", help="a fair-esm ESM-2 .pt file or name (esm2_t6_8M_UR50D), an HF "
                   "model directory (EsmForMaskedLM, or a BERT-family masked LM with vocab.txt) "
                   "or its Hugging Face repo id (facebook/esm2_t6_8M_UR50D)")
    p.add_argument("--out", required=True, help="the protperf checkpoint to write (.ckpt)")
    p.add_argument("--vocab", default=None,
                   help="vocab.txt of an HF directory that has none of its own")
    p.add_argument("--revision", default=None,
                   help="the Hub revision (branch, tag or commit) of a repo id SOURCE")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    from protperf.pretrained import import_pretrained  # torch and friends: after --help

    return exit_status(
        lambda: import_pretrained(args.source, args.out, overwrite=args.force, vocab=args.vocab,
                                  revision=args.revision),
        (PretrainedSourceError, CheckpointError, CheckpointWriteError, ConfigError,
         FileNotFoundError, FileExistsError),
        debug=args.debug, code=2, interrupted="interrupted: nothing was written at --out")


def console() -> None:
    """Console entry point."""
    sys.exit(main())
