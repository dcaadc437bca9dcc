"""``export_model``: a saved model (``.ckpt`` or export directory) written as a self-describing
directory, in protperf's format (:mod:`.export_dir`) or as a transformers ``EsmForMaskedLM`` /
``BertForMaskedLM`` (:mod:`.hf_formats`), with a model card. The command is ``protperf-export``
(:mod:`protperf.app.export_model`).

OUT must be new or empty; an existing one needs ``force``, which replaces only the files the
export writes (a user's other files stay). The export is written in a folder beside OUT and
renamed into place, so OUT is complete or untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protperf.checkpoint.export_dir import check_output_dir, write_export_dir
from protperf.checkpoint.load import build_model, read_saved_model, resolve_configs
from protperf.errors import ConfigError, require
from protperf.structured import to_plain

FORMATS = ("protperf", "esm", "bert")


USAGE = {
    "protperf": """```python
from protperf.inference import load_model, Embedder
model = load_model("path/to/this/directory")
```

Every protperf command takes the directory as `checkpoint=DIR` (`protperf-embed`,
`protperf-score`, `protperf-analyze`, `protperf-evaluate`, `protperf-train init_from=DIR`);
`model.attention.kind=favor_relu` runs exact-attention weights as a Performer.
Files: `config.json` (model, task, alphabet), `model.safetensors`, `vocab.txt` (the alphabet,
one token per line in id order).
""",
    "esm": """```python
from transformers import AutoTokenizer, EsmForMaskedLM
tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")
model = EsmForMaskedLM.from_pretrained("path/to/this/directory")
logits = model(**tokenizer(["MKTAYIAKQR"], return_tensors="pt")).logits
```

The vocabulary (`vocab.txt`) is protperf's alphabet in its id order, not facebook/esm2's: use
the tokenizer saved here. The contact head is not trained (zeros).
""",
    "bert": """```python
from transformers import AutoTokenizer, BertForMaskedLM
tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")
model = BertForMaskedLM.from_pretrained("path/to/this/directory")
logits = model(**tokenizer(["M K T A Y I A K Q R"], return_tensors="pt")).logits
```

The vocabulary (`vocab.txt`) is protperf's alphabet in its id order: use the tokenizer saved
here, with residues separated by spaces.
""",
}


def model_card(hyper_parameters: Mapping[str, Any], source: str, format: str = "protperf") -> str:
    """README.md of an export directory: metadata for the Hub and how to use the model."""
    hub = require("huggingface_hub", "protperf-export (the model card)")
    model, task = hyper_parameters["model"], hyper_parameters["task"]
    objective = {"mlm": "masked", "clm": "causal"}.get(task.get("objective"), "")
    library = "protperf" if format == "protperf" else "transformers"
    data = hub.ModelCardData(library_name=library,
                         tags=["protein-language-model", "protperf", model["attention"]["kind"]])
    return str(hub.ModelCard(f"""---
{data.to_yaml()}
---

# {model.get("name", "protperf model")}

A protein {objective} language model trained with protperf, exported from `{source}`:
{model["num_layers"]} layers, width {model["dim"]}, {model["num_heads"]} heads,
`{model["position"]}` positions, attention `{model["attention"]["kind"]}`.

{USAGE[format]}"""))


def export_model(checkpoint: str | Path, out: str | Path, format: str = "protperf",
                 as_exact: bool = False, force: bool = False) -> Path:
    """Export the model saved at ``checkpoint`` (.ckpt or export directory) to ``out``;
    ``as_exact``: write a Performer's weights for exact attention (``esm`` format);
    ``force``: write into an existing ``out``, replacing only the files an export writes."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    check_output_dir(out, force)
    saved = read_saved_model(checkpoint)
    if format in ("esm", "bert"):
        from protperf.checkpoint.hf_formats import export_transformers

        return export_transformers(
            saved, out, format, as_exact=as_exact,
            card=model_card(saved.hyper_parameters, Path(checkpoint).name, format), force=force)
    network = build_model(saved)
    model_config, task_config = resolve_configs(saved)
    hyper_parameters = {**saved.hyper_parameters, "model": to_plain(model_config),
                        "task": to_plain(task_config)}
    hyper_parameters.pop("protperf_version", None)
    return write_export_dir(network, hyper_parameters, out,
                            card=model_card(hyper_parameters, Path(checkpoint).name), force=force)
