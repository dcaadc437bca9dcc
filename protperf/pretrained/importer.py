"""``import_pretrained``: detect what a source is, convert it, write a protperf checkpoint."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from protperf.checkpoint.imported import ImportedModel
from protperf.checkpoint.writer import write_imported
from protperf.errors import PretrainedSourceError
from protperf.pretrained.bert import import_bert
from protperf.pretrained.esm import import_fair_esm, import_hf_esm
from protperf.pretrained.hf import read_config
from protperf.pretrained.hub import resolve_source

log = logging.getLogger(__name__)
#: config.json ``model_type`` -> importer of that HF directory.
HF_IMPORTERS = {"esm": import_hf_esm, "bert": import_bert}
SUPPORTED_SOURCES = (
    "a fair-esm ESM-2 .pt file, an HF EsmForMaskedLM directory or an HF BERT-family masked-LM "
    "directory"
)


def convert(source: str | Path, vocab: str | Path | None = None,
            revision: str | None = None) -> ImportedModel:
    """The protperf model of ``source`` (see :data:`SUPPORTED_SOURCES`), not yet written.

    A name (``facebook/esm2_t6_8M_UR50D``, ``esm2_t6_8M_UR50D``) is resolved through the
    Hugging Face or fair-esm cache (:mod:`protperf.pretrained.hub`), ``revision`` pinning a
    Hub revision. vocab: the ``vocab.txt`` of an HF directory that keeps it elsewhere
    (AntiBERTy's wheel has it one folder up); None: the directory's own."""
    path = resolve_source(source, revision)
    imported = convert_local(path, None if vocab is None else Path(vocab))
    if not Path(source).exists():  # a name: record it (and the pinned revision), not the cache
        imported.source = str(source) + ("" if revision is None else f"@{revision}")
        family = imported.config.name.split("-", 1)[0]  # esm2-<folder> / bert-<folder>
        imported.config = replace(imported.config, name=f"{family}-{Path(source).name}")
    return imported


def convert_local(path: Path, vocab_file: Path | None = None) -> ImportedModel:
    """The protperf model of a local file or directory (see :func:`convert`)."""
    if path.is_dir():
        config = read_config(path)
        model_type = config.get("model_type")
        if model_type not in HF_IMPORTERS:
            raise PretrainedSourceError(
                f"{path / 'config.json'} has model_type={model_type!r}; protperf imports "
                f"model_type {' or '.join(map(repr, HF_IMPORTERS))} ({SUPPORTED_SOURCES})"
            )
        return HF_IMPORTERS[model_type](path, vocab_file)
    if path.is_file():
        return import_fair_esm(path)
    raise FileNotFoundError(f"{path} does not exist ({SUPPORTED_SOURCES})")


def import_pretrained(source: str | Path, out: str | Path, overwrite: bool = False,
                      vocab: str | Path | None = None,
                      revision: str | None = None) -> ImportedModel:
    """Convert ``source`` and write it to ``out`` as an ordinary protperf checkpoint; logs the
    tokens and tensors left out. ``vocab``, ``revision``: see :func:`convert`. Returns what
    was imported."""
    imported = convert(source, vocab, revision)
    write_imported(imported, Path(out), overwrite=overwrite)
    log.info("imported %s (%s) -> %s", imported.source, imported.kind, out)
    if imported.dropped_tokens:
        log.info("source tokens protperf has no id for (dropped): %s",
                 " ".join(imported.dropped_tokens))
    if imported.unpredicted_tokens:
        log.info("protperf tokens the source lacks (never predicted; as input they embed as "
                 "its unknown token): %s", " ".join(imported.unpredicted_tokens))
    if imported.ignored:
        log.info("source tensors not imported (not part of the masked LM): %s",
                 ", ".join(imported.ignored))
    log.info("as a Performer: protperf-convert checkpoint=%s output=PERFORMER.ckpt "
             "data.path=YOUR.fasta", out)
    log.info("fine-tune with: protperf-train init_from=%s", out)
    return imported
