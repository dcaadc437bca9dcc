"""Weight files: sharded HF checkpoints, and the optional libraries of the ``pretrained``
extra (never needed to import protperf; a missing one is one line naming the extra)."""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import protperf
from protperf.errors import ConfigError
from protperf.pretrained import convert
from protperf.pretrained.weights import read_hf_weights

# safetensors is a core dependency: every command reads export directories (model.safetensors)
EXTRA_LIBRARIES = {"transformers", "esm", "huggingface_hub"}


def test_sharded_safetensors_read_like_one_file(bert_dir, tmp_path):
    directory = tmp_path / "sharded"
    shutil.copytree(bert_dir, directory)
    state = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, directory / shard)
    (directory / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}))
    read, name = read_hf_weights(directory)
    assert name == "model.safetensors.index.json"
    assert read.keys() == state.keys()
    assert all(torch.equal(read[k], state[k]) for k in state)
    single, sharded = convert(bert_dir), convert(directory)
    assert all(torch.equal(single.state_dict[k], sharded.state_dict[k])
               for k in single.state_dict)


def test_no_module_imports_an_extra_library_directly():
    """Importing protperf never needs the ``pretrained`` extra: its libraries are imported
    only through ``protperf.errors.require`` when a source needs them."""
    root = Path(protperf.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}: {n}" for n in names
                      if n.split(".")[0] in EXTRA_LIBRARIES]
    assert found == []


@pytest.mark.parametrize(("library", "source"), [("safetensors", "bert"), ("esm", "esm")])
def test_a_missing_library_is_one_line_naming_the_extra(library, source, bert_dir,
                                                        fair_esm_file, monkeypatch):
    for name in list(sys.modules):
        if name == library or name.startswith(library + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, library, None)
    path = bert_dir if source == "bert" else fair_esm_file[0]
    package = "fair-esm" if library == "esm" else library
    with pytest.raises(ConfigError, match=rf"needs the '{package}' library: "
                                          r"pip install 'protperf\[pretrained\]'$"):
        convert(path)
