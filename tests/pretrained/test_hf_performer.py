"""Performers out to transformers: ``protperf-export --format esm|bert`` of a FAVOR+ model
writes an ``EsmForMaskedLM`` / ``BertForMaskedLM`` directory that transformers runs *as a
Performer* after ``import protperf.hf`` (logits equal protperf's), refuses without it, and
that ``protperf-import`` reads back as the same Performer. The exact path is unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from protperf import export_model
from protperf.attention import AttentionConfig
from protperf.checkpoint.layouts import ATTN_IMPLEMENTATION
from protperf.errors import ConfigError
from protperf.inference import load_model
from protperf.model.config import ModelConfig
from tests.inference.test_export import save_checkpoint
from tests.pretrained.test_esm_export import (
    ESM2_TINY,
    assert_equal_amino_acid_logits,
    batch_with_masks,
    random_model,
)

transformers = pytest.importorskip("transformers")
import protperf.hf  # noqa: E402, F401  (registers the attention with transformers)

BERT_TINY = ModelConfig(
    name="bert-tiny", dim=32, num_heads=4, num_layers=2, ffn_dim=64, dropout=0.0,
    position="learned", max_position=40, layer_norm_eps=1e-12, norm_placement="post",
    embedding_norm=True, final_norm=False, token_type_vector=True, lm_head_transform=True,
    tie_embeddings=False, attention=AttentionConfig(kind="exact"))
FAMILIES = {"esm": (ESM2_TINY, "EsmForMaskedLM"), "bert": (BERT_TINY, "BertForMaskedLM")}


def performer_checkpoint(tmp_path: Path, family: str, kind: str) -> Path:
    config, _ = FAMILIES[family]
    attention = AttentionConfig(kind=kind, num_features=16)
    network = random_model(dataclasses.replace(config, attention=attention))
    return save_checkpoint(network, tmp_path / f"{family}-{kind}.ckpt")


def hf_logits(directory: Path, family: str, ids, mask, **kwargs) -> torch.Tensor:
    hf_class = getattr(transformers, FAMILIES[family][1])
    hf_model = hf_class.from_pretrained(directory, local_files_only=True, **kwargs)
    with torch.no_grad():
        return hf_model.eval()(input_ids=ids, attention_mask=mask.long()).logits


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
@pytest.mark.parametrize("family", ["esm", "bert"])
def test_transformers_runs_the_export_as_the_same_performer(tmp_path, family, kind):
    checkpoint = performer_checkpoint(tmp_path, family, kind)
    directory = export_model(checkpoint, tmp_path / "hf", format=family)
    ids, mask = batch_with_masks()
    with torch.no_grad():
        performer = load_model(checkpoint)(ids, mask)
        exact = load_model(checkpoint, model_overrides={"attention": {"kind": "exact"}})(ids, mask)
    actual = hf_logits(directory, family, ids, mask)
    assert_equal_amino_acid_logits(performer, actual, mask)
    assert (actual[mask] - exact[mask]).abs().max() > 1e-2  # not exact attention
    config = json.loads((directory / "config.json").read_text())
    assert config["attn_implementation"] == ATTN_IMPLEMENTATION
    assert config["protperf_attention"]["kind"] == kind
    assert config["protperf_attention"]["num_features"] == 16
    weights = load_file(directory / "model.safetensors")
    projections = [name for name in weights if name.endswith(".feature_projection")]
    assert len(projections) == 2 and weights[projections[0]].shape == (16, 8)
    assert "import protperf.hf" in (directory / "README.md").read_text()


def test_it_imports_back_as_the_same_performer(tmp_path):
    from protperf.pretrained import import_pretrained

    checkpoint = performer_checkpoint(tmp_path, "esm", "favor_softmax")
    directory = export_model(checkpoint, tmp_path / "hf", format="esm")
    imported = import_pretrained(directory, tmp_path / "imported.ckpt")
    assert imported.config.attention.kind == "favor_softmax"
    assert imported.ignored == ["esm.contact_head.*"]  # the projections were taken
    ids, mask = batch_with_masks()
    with torch.no_grad():
        before = load_model(checkpoint)(ids, mask)
        after = load_model(tmp_path / "imported.ckpt")(ids, mask)
    assert_equal_amino_acid_logits(before, after, mask)


def test_without_the_registration_transformers_refuses_naming_pip_install(tmp_path,
                                                                           monkeypatch):
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    directory = export_model(performer_checkpoint(tmp_path, "esm", "favor_relu"),
                             tmp_path / "hf", format="esm")
    for interface in (AttentionInterface, AttentionMaskInterface):
        monkeypatch.delitem(interface._global_mapping, ATTN_IMPLEMENTATION)
    with pytest.raises(ValueError, match=r"protperf_favor \(pip install protperf, then import "
                                         r"protperf\.hf\)\"` is not supported"):
        transformers.EsmForMaskedLM.from_pretrained(directory, local_files_only=True)


@pytest.mark.slow
def test_without_protperf_loading_fails_naming_pip_install(tmp_path):
    """A fresh process where protperf cannot be imported at all."""
    directory = export_model(performer_checkpoint(tmp_path, "bert", "favor_softmax"),
                             tmp_path / "hf", format="bert")
    code = ("import sys\nsys.modules['protperf'] = None  # not installed\n"
            "from transformers import AutoModelForMaskedLM\n"
            f"AutoModelForMaskedLM.from_pretrained({str(directory)!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    assert "pip install protperf" in result.stderr.strip().splitlines()[-1]


def test_bert_family_exact_export_and_tokenizer(tmp_path):
    checkpoint = save_checkpoint(random_model(BERT_TINY), tmp_path / "bert.ckpt")
    directory = export_model(checkpoint, tmp_path / "hf", format="bert")
    ids, mask = batch_with_masks()
    with torch.no_grad():
        expected = load_model(checkpoint)(ids, mask)
    assert_equal_amino_acid_logits(expected, hf_logits(directory, "bert", ids, mask), mask)
    assert "attn_implementation" not in json.loads((directory / "config.json").read_text())
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    encoded = tokenizer(["M K T [MASK] Y", "Q R"], padding=True)
    assert encoded["input_ids"] == [[2, 15, 13, 21, 1, 24, 3], [2, 18, 19, 3, 0, 0, 0]]


def test_a_model_of_the_other_family_is_refused_naming_the_keys_and_format(tmp_path):
    checkpoint = save_checkpoint(random_model(ESM2_TINY), tmp_path / "esm.ckpt")
    with pytest.raises(ConfigError, match=r"cannot be exported as BertForMaskedLM: "
                                          r"model.position='rotary' \(BERT learns absolute "
                                          r"positions\); model.norm_placement='pre' .*"
                                          r"\(it fits --format esm\)$"):
        export_model(checkpoint, tmp_path / "hf", format="bert")
    assert not (tmp_path / "hf").exists()
    checkpoint = save_checkpoint(random_model(BERT_TINY), tmp_path / "bert.ckpt")
    with pytest.raises(ConfigError, match=r"EsmForMaskedLM: model.position='learned' .*"
                                          r"\(it fits --format bert\)$"):
        export_model(checkpoint, tmp_path / "hf", format="esm")


#: sha256 of each file of the exact ESM export of the fixed-seed models below, written by the
#: code before Performers could be exported (transformers 5.25.0). README.md, the model card,
#: is left out: its wording belongs to the export command, not to the weights' path.
GOLDEN_TRANSFORMERS = "5.25.0"
GOLDEN = {
    "esm2": {
        "config.json": "491d2cf35a673b57f01511a7ec90fde1beb647bf002dbb926c84eaf5d7a63ba4",
        "model.safetensors": "ee0337a8467a5362f6d6382278dab046b8346605668bc9a41323f44065b67ff0",
        "tokenizer_config.json":
            "30b84ea50bd2aa46ac4551a9e2cd9373e283c11aecd6fa1c3e603ed1edb575a5",
        "vocab.txt": "79804062d0306dfc1be9ebc81d3a3d704fb64d578ecf97a8a65c278105413d4c",
    },
    "variant": {
        "config.json": "133d58ec722448e18680ee3390576af0611f58459a917fe9479deda5a7a08547",
        "model.safetensors": "42ccce5dfc1ba9dd97e25d6f4641519cee76e5f5c0dc5a1673e5fbef2237e9fd",
        "tokenizer_config.json":
            "30b84ea50bd2aa46ac4551a9e2cd9373e283c11aecd6fa1c3e603ed1edb575a5",
        "vocab.txt": "79804062d0306dfc1be9ebc81d3a3d704fb64d578ecf97a8a65c278105413d4c",
    },
}


@pytest.mark.parametrize("variant, knobs", [
    ("esm2", {}),
    ("variant", {"tie_embeddings": False, "embedding_norm": True, "token_dropout": False}),
])
def test_the_exact_export_is_byte_identical_to_before(tmp_path, variant, knobs):
    if transformers.__version__ != GOLDEN_TRANSFORMERS:
        pytest.skip(f"golden hashes were written with transformers {GOLDEN_TRANSFORMERS}")
    checkpoint = save_checkpoint(random_model(dataclasses.replace(ESM2_TINY, **knobs)),
                                 tmp_path / "model.ckpt")
    directory = export_model(checkpoint, tmp_path / "esm", format="esm")
    hashes = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
              for path in sorted(directory.iterdir()) if path.name != "README.md"}
    assert hashes == GOLDEN[variant]


def test_an_export_transformers_would_run_otherwise_is_refused(tmp_path, monkeypatch):
    """If the installed transformers computed something else (here: its exact SDPA in place
    of the registered attention), the Performer export stops and writes nothing."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    monkeypatch.setitem(AttentionInterface._global_mapping, ATTN_IMPLEMENTATION,
                        lambda module, q, k, v, mask, **kw: sdpa_attention_forward(
                            module, q, k, v, None, **kw))
    checkpoint = performer_checkpoint(tmp_path, "esm", "favor_softmax")
    with pytest.raises(ConfigError, match=r"does not run the exported Performer as protperf "
                                          r"does \(largest logit difference .*\); export it "
                                          r"--as-exact, or use transformers 5$"):
        export_model(checkpoint, tmp_path / "hf", format="esm")
    assert not (tmp_path / "hf").exists()
    assert not list(tmp_path.glob(".hf.tmp-*"))
