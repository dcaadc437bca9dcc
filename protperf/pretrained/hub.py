"""Models by name: a Hugging Face repo id or a fair-esm model name -> a local file or folder.

- ``facebook/esm2_t6_8M_UR50D`` (any ``namespace/name`` repo id) resolves through
  ``huggingface_hub``: its cache, ``revision`` pinning (a branch, tag or commit) and
  ``HF_HUB_OFFLINE``. Only what the import reads is fetched: ``config.json``, ``vocab.txt`` and
  one weight format (``model.safetensors``, else ``pytorch_model.bin``, or their sharded
  ``*.index.json`` form).
- ``esm2_t6_8M_UR50D`` (fair-esm's names) resolves through fair-esm's torch hub cache,
  ``torch.hub.get_dir()/checkpoints/NAME.pt`` (``TORCH_HOME``), where ``esm.pretrained`` keeps
  what it downloads; a missing file is downloaded there from fair-esm's URL.

Offline (``HF_HUB_OFFLINE=1``, or no network) and not cached: one line naming what to
download and where it would go. Anything that is neither a local path nor a name: one line.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import types
from pathlib import Path

from protperf.checkpoint.load import first_line
from protperf.errors import PretrainedSourceError, require
from protperf.pretrained.sources import NAME_EXAMPLES, check_local_source

FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
#: fair-esm's model names (``esm.pretrained``): esm2_t6_8M_UR50D, esm1b_t33_650M_UR50S, ...
FAIR_ESM_NAME = re.compile(r"^esm[a-z0-9_]*?_t\d+_\d+[MB]_UR\d+[A-Z]?(_\d+)?$")
ESM2_NAME = re.compile(r"^esm2_t\d+_\d+[MB]_UR50D$")
#: A Hugging Face model repo id: ``namespace/name``.
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: The files an import reads, in the order tried (the first weight format found is used).
HF_OPTIONAL_FILES = ("vocab.txt",)
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")
TRUE = {"1", "on", "yes", "true"}


def offline() -> bool:
    """Whether downloads are off: ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` (read now)."""
    return any(os.environ.get(name, "").strip().lower() in TRUE
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_source(source: str | Path, revision: str | None = None) -> Path:
    """The local file or folder of ``source``: itself if it exists, else the cached (or
    downloaded) files of a model name. Raises :class:`PretrainedSourceError` (one line) or
    ``FileNotFoundError`` for a missing path."""
    path = Path(source).expanduser()
    text = str(source)
    if path.exists():
        if revision is not None:
            raise PretrainedSourceError(
                f"--revision {revision} applies to Hugging Face repo ids, not to the local "
                f"path {source}")
        return path
    check_local_source(source)
    if FAIR_ESM_NAME.match(text):
        if revision is not None:
            raise PretrainedSourceError(f"--revision applies to Hugging Face repo ids, not to "
                                        f"the fair-esm name {text}")
        return fair_esm_file(text)
    if REPO_ID.match(text) and ".." not in text:
        return hf_snapshot(text, revision)
    raise PretrainedSourceError(
        f"{text} does not exist and is not a model name ({NAME_EXAMPLES})")


def fair_esm_file(name: str) -> Path:
    """``torch.hub.get_dir()/checkpoints/NAME.pt``, downloaded from fair-esm if missing and
    online. Names of older generations (ESM-1, ESM-1b, ...) are refused."""
    if not ESM2_NAME.match(name):
        raise PretrainedSourceError(
            f"{name} is a fair-esm model of an older generation; protperf imports ESM-2 "
            "(esm2_t*_*_UR50D) only")
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"
    if path.is_file():
        return path
    url = FAIR_ESM_URL.format(name=name)
    if offline():
        raise PretrainedSourceError(
            f"{name} is not in fair-esm's torch hub cache and downloads are off "
            f"(HF_HUB_OFFLINE): download {url} to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
        os.replace(partial, path)
    except (OSError, ValueError) as error:  # urllib's URLError / HTTPError are OSErrors
        raise PretrainedSourceError(
            f"could not download {url} ({first_line(error)}): download it to {path}") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


#: the submodules of huggingface_hub used here: its top level loads them lazily, by name, and
#: has no attribute for them until something imports them
HUB_SUBMODULES = ("errors", "constants", "file_download")


def huggingface_hub(needed_for: str) -> types.ModuleType:
    """``huggingface_hub`` with :data:`HUB_SUBMODULES` imported (so ``hub.errors`` works in a
    fresh process), or one line naming the extra that installs it."""
    hub = require("huggingface_hub", needed_for)
    for name in HUB_SUBMODULES:
        importlib.import_module(f"huggingface_hub.{name}")
    return hub


def hf_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo_id`` in the Hugging Face cache holding config.json,
    vocab.txt and one weight format (fetched if missing and online)."""
    hub = huggingface_hub(f"resolving the model name {repo_id}")
    errors = hub.errors
    at = "" if revision is None else f"@{revision}"

    def fetch(filename: str) -> Path:
        return Path(hub.hf_hub_download(repo_id, filename, revision=revision,
                                        local_files_only=offline()))

    try:
        return _fetch_snapshot(hub, fetch, repo_id, revision)
    except errors.LocalEntryNotFoundError:
        raise _not_cached(hub, repo_id, revision) from None
    except errors.RevisionNotFoundError:
        raise PretrainedSourceError(
            f"{repo_id} has no revision {revision!r} on the Hugging Face Hub") from None
    except errors.GatedRepoError:
        raise PretrainedSourceError(
            f"{repo_id} is gated on the Hugging Face Hub: accept its terms there and log in "
            "with `hf auth login`") from None
    except errors.RepositoryNotFoundError:
        raise PretrainedSourceError(
            f"{repo_id} is neither a local path nor a Hugging Face model repository "
            "(or it is private: log in with `hf auth login`)") from None
    except errors.EntryNotFoundError:
        raise PretrainedSourceError(
            f"{repo_id}{at} has no config.json: not a transformers model repository") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as error:  # HFValidationError too
        raise PretrainedSourceError(
            f"could not resolve {repo_id}{at} on the Hugging Face Hub ({first_line(error)})"
        ) from None


def _fetch_snapshot(hub, fetch, repo_id: str, revision: str | None) -> Path:
    """config.json, then the optional files and the first weight format the repo has."""
    errors = hub.errors
    snapshot = fetch("config.json").parent
    for name in HF_OPTIONAL_FILES:
        _try_fetch(fetch, errors, name)
    for name in HF_WEIGHT_FILES:
        weights = _try_fetch(fetch, errors, name)
        if weights is None:
            continue
        if name.endswith(".index.json"):
            for shard in sorted(set(json.loads(weights.read_text())["weight_map"].values())):
                if _try_fetch(fetch, errors, shard) is None:
                    raise _not_cached(hub, repo_id, revision, shard)
        return snapshot
    if offline():
        raise _not_cached(hub, repo_id, revision, "its weights")
    at = "" if revision is None else f"@{revision}"
    raise PretrainedSourceError(
        f"{repo_id}{at} holds no PyTorch weights ({' or '.join(HF_WEIGHT_FILES[::2])})")


def _try_fetch(fetch, errors, name: str) -> Path | None:
    """``fetch(name)``, or None when the repository (or, offline, the cache) lacks it."""
    try:
        return fetch(name)
    except errors.EntryNotFoundError:  # remote 404, or offline and not cached
        return None


def _not_cached(hub, repo_id: str, revision: str | None, what: str = "") -> PretrainedSourceError:
    """The one line for a repo (or one of its files) that is not cached while offline."""
    folder = Path(hub.constants.HF_HUB_CACHE) / hub.file_download.repo_folder_name(
        repo_id=repo_id, repo_type="model")
    pinned = "" if revision is None else f" --revision {revision}"
    missing = f" ({what} missing)" if what else ""
    return PretrainedSourceError(
        f"{repo_id} is not in the Hugging Face cache{missing} and downloads are off "
        f"(HF_HUB_OFFLINE, or no network): download it with `hf download {repo_id}{pinned}` "
        f"(it goes to {folder})")
