"""``protperf-export CHECKPOINT --out DIR``: a saved model as a self-describing directory.

    protperf-export outputs/run/checkpoints/last.ckpt --out my-model            # protperf format
    protperf-export outputs/run/checkpoints/last.ckpt --out my-esm --format esm  # transformers

``--format protperf`` (default) writes :mod:`protperf.checkpoint.export_dir` (config.json,
model.safetensors, vocab.txt, a model card), which every command takes as ``checkpoint=DIR``
with the outputs of the ``.ckpt``. ``--format esm`` writes a Hugging Face ``EsmForMaskedLM``
directory for models of ESM-2's architecture (:mod:`protperf.checkpoint.hf_export`).
CHECKPOINT may itself be an export directory. OUT must be new, empty or an earlier export
(replaced); nothing is written there unless the export succeeds. Errors: one line, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from protperf.checkpoint.paths import check_saved_model
from protperf.errors import ConfigError, require

FORMATS = ("protperf", "esm")


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
                 as_exact: bool = False) -> Path:
    """Export the model saved at ``checkpoint`` (.ckpt or export directory) to ``out``;
    ``as_exact``: write a Performer's weights for exact attention (``esm`` format)."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    from protperf.checkpoint.export_dir import check_output_dir, write_export_dir
    from protperf.checkpoint.load import build_model, read_saved_model, resolve_configs
    from protperf.structured import to_plain

    out = Path(out)
    check_output_dir(out)
    saved = read_saved_model(checkpoint)
    if format == "esm":
        from protperf.checkpoint.hf_export import export_esm

        return export_esm(saved, out, as_exact=as_exact,
                          card=model_card(saved.hyper_parameters, Path(checkpoint).name, "esm"))
    network = build_model(saved)
    model_config, task_config = resolve_configs(saved)
    hyper_parameters = {**saved.hyper_parameters, "model": to_plain(model_config),
                        "task": to_plain(task_config)}
    hyper_parameters.pop("protperf_version", None)
    return write_export_dir(network, hyper_parameters, out,
                            card=model_card(hyper_parameters, Path(checkpoint).name))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="protperf-export", description=__doc__.split("\n")[0].strip("`: "))
    parser.add_argument("checkpoint", help="a .ckpt file or an export directory")
    parser.add_argument("--out", required=True, help="the directory to write")
    parser.add_argument("--format", default="protperf", choices=FORMATS,
                        help="protperf (config.json + model.safetensors) or esm "
                             "(transformers EsmForMaskedLM)")
    parser.add_argument("--as-exact", action="store_true",
                        help="esm format: write a Performer's weights for exact attention "
                             "(transformers' ESM has no Performer; outputs then differ)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    check_saved_model(args.checkpoint)  # at once, before torch loads
    out = export_model(args.checkpoint, args.out, args.format, args.as_exact)
    print(f"[protperf] exported {args.checkpoint} ({args.format} format) -> {out}", flush=True)
    return out

