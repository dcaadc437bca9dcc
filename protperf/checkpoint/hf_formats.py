"""``protperf-export --format esm|bert``: which transformers class a model is written as.

The format is chosen by the user, not guessed; a model of the other family is refused in one
line naming the keys that do not fit and the format that does.
"""

from __future__ import annotations

from pathlib import Path

from protperf.checkpoint.hf_bert_export import BERT_FAMILY
from protperf.checkpoint.hf_export import ESM_FAMILY, HfFamily, export_hf
from protperf.checkpoint.load import SavedModel, resolve_configs
from protperf.errors import ConfigError

FAMILIES: dict[str, HfFamily] = {"esm": ESM_FAMILY, "bert": BERT_FAMILY}


def export_transformers(saved: SavedModel, out: str | Path, format: str,
                        as_exact: bool = False, card: str | None = None,
                        force: bool = False) -> Path:
    """Write ``saved`` as the transformers masked LM of ``format`` (:data:`FAMILIES`)."""
    family = FAMILIES[format]
    model_config, task_config = resolve_configs(saved)
    problems = family.incompatibilities(model_config, task_config, as_exact)
    fitting = [name for name, other in FAMILIES.items()
               if not other.incompatibilities(model_config, task_config, as_exact)]
    if problems and fitting:
        raise ConfigError(f"{saved.source} cannot be exported as {family.class_name}: "
                          + "; ".join(problems) + f" (it fits --format {fitting[0]})")
    return export_hf(saved, out, family, as_exact, card, force)
