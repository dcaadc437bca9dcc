"""protperf's export directory: a saved model any command loads like a ``.ckpt``.

::

    DIR/config.json        {"format": "protperf-model", "format_version": 1,
                            "protperf_version", "model": {...ModelConfig}, "task": {...},
                            "alphabet": [token of id 0, 1, ...], "seed", "optim",
                            "protperf_integrity": {"algorithm": "sha256",
                                                   "tensors": {name: digest}}}
    DIR/model.safetensors  the network's state dict (a tied LM head is stored once, as
                           token_embedding.weight); safetensors holds tensors only, no code
    DIR/vocab.txt          the alphabet, one token per line in id order (the vocabulary file
                           format of ``transformers.EsmTokenizer``)
    DIR/README.md          a model card (huggingface_hub ``ModelCard``)

Weights go through ``safetensors`` directly rather than huggingface_hub's
``PyTorchModelHubMixin``: loading must run protperf's own checks and overrides (alphabet,
shape-defining keys, ``model.attention.*``) before the weights are read, which the mixin's
``from_pretrained`` (config.json -> constructor keywords) would bypass, and the model class
stays free of hub code. A directory is pushed with ``huggingface_hub.upload_folder``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from protperf import __version__
from protperf.checkpoint.atomic import atomic_directory, check_writable
from protperf.checkpoint.integrity import INTEGRITY_KEY, integrity_record, verify_integrity
from protperf.errors import CheckpointError, CheckpointMismatchError, CheckpointWriteError

FORMAT = "protperf-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
CARD_FILE = "README.md"
#: config.json key marking a Hugging Face directory written by ``protperf-export --format esm``.
EXPORT_MARK = "protperf_export"


def tied_parameter_names(network: nn.Module) -> set[str]:
    """Names of parameters that share their tensor with an earlier name (a tied LM head)."""
    first: dict[int, str] = {}
    tied = set()
    for name, param in network.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied.add(name)
        first.setdefault(id(param), name)
    return tied


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_config(path: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of the export directory ``path``."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointMismatchError(
            f"{path} is a directory without {CONFIG_FILE}: not a protperf export "
            "(write one with protperf-export CHECKPOINT --out DIR)"
        )
    try:
        config = _read_json(config_path)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{config_path} is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        what = (f"model_type={config.get('model_type')!r}" if isinstance(config, dict)
                and "model_type" in config else f"format={_get(config, 'format')!r}")
        raise CheckpointMismatchError(
            f"{config_path} is not a protperf model config ({what}, expected "
            f"format={FORMAT!r})"
        )
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"{config_path} has format_version={config['format_version']}, newer than this "
            f"protperf reads ({FORMAT_VERSION}); update protperf"
        )
    missing = [key for key in ("model", "task", "alphabet") if key not in config]
    if missing:
        raise CheckpointMismatchError(f"{config_path} lacks the key(s) {', '.join(missing)}")
    return config


def _get(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict) else None


def read_export_dir(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper_parameters, state_dict)`` of an export directory (see the module docstring)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config = read_config(path)
    vocab = path / VOCAB_FILE
    if vocab.is_file() and vocab.read_text().splitlines() != list(config["alphabet"]):
        raise CheckpointMismatchError(
            f"{vocab} does not list the alphabet of {path / CONFIG_FILE} (token ids differ)"
        )
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"export directory {path} has no {WEIGHTS_FILE}")
    try:
        state_dict = load_file(weights, device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights} is truncated or corrupt ({error})") from None
    verify_integrity(state_dict, config.get(INTEGRITY_KEY), f"export directory {path}")
    hyper_parameters = {key: value for key, value in config.items()
                        if key not in ("format", "format_version", INTEGRITY_KEY)}
    return hyper_parameters, state_dict


def is_previous_export(path: str | Path) -> bool:
    """Whether the directory ``path`` was written by protperf-export (either format)."""
    try:
        config = _read_json(Path(path) / CONFIG_FILE)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and (config.get("format") == FORMAT or EXPORT_MARK in config)


def check_output_dir(out: str | Path, force: bool = False) -> None:
    """``out`` may be missing or an empty directory; an existing one needs ``force``
    (``--force``), and then only the files the export writes are replaced (others are kept).
    Anything else raises :class:`CheckpointWriteError` naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointWriteError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        what = "an earlier export" if is_previous_export(out) else "a non-empty directory"
        raise CheckpointWriteError(
            f"--out {out} is {what}; pass --force to replace the files an export writes "
            "there (other files are kept), or choose a new directory")


def state_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """The bytes of the tensors (an estimate of the space their files need)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def write_export_dir(
    network: nn.Module, hyper_parameters: Mapping[str, Any], out: str | Path,
    card: str | None = None, force: bool = False,
) -> Path:
    """Write ``network`` (a ProteinLanguageModel) and its hyper-parameters as an export
    directory at ``out`` (``force``: into an existing one, see :func:`check_output_dir`), with
    the sha256 of each tensor in config.json; written in a folder beside ``out`` and renamed,
    so ``out`` is complete or untouched (:func:`~protperf.checkpoint.atomic.atomic_directory`).
    """
    from safetensors.torch import save_file

    out = Path(out)
    check_output_dir(out, force)
    tied = tied_parameter_names(network)
    tensors = {name: tensor.detach().cpu().contiguous()
               for name, tensor in network.state_dict().items() if name not in tied}
    check_writable(out.parent, "export directory", need_bytes=state_bytes(tensors))
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "protperf_version": __version__, **hyper_parameters,
              INTEGRITY_KEY: integrity_record(tensors)}
    with atomic_directory(out, "export directory") as staging:
        save_file(tensors, staging / WEIGHTS_FILE, metadata={"format": "pt"})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (staging / VOCAB_FILE).write_text("\n".join(config["alphabet"]) + "\n")
        if card is not None:
            (staging / CARD_FILE).write_text(card)
    return out
