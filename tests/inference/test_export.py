"""Export directories (``protperf-export``) and the one Lightning-free ``load_model``: the
directory gives bit-identical outputs to its ``.ckpt`` in every command, overrides work on
it, and bad directories fail in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from protperf import export_model
from protperf.analysis.pipeline import AnalyzeConfig, analyzed_model
from protperf.app.embed import embed
from protperf.app.generate import generate
from protperf.app.score import score
from protperf.checkpoint.export_dir import WEIGHTS_FILE, read_config
from protperf.cli.compose import compose_config
from protperf.data.alphabet import Alphabet
from protperf.data.batching import BatchConverter
from protperf.errors import CheckpointError, CheckpointMismatchError, CheckpointWriteError
from protperf.inference import Embedder, Scorer, load_model, read_variants
from protperf.structured import to_plain
from tests.inference.conftest import REPO, tiny_model

WT = "MKTAYIAKQRQISFVKSHFSRQ"


def save_checkpoint(network, path: Path, objective: str = "mlm", seed: int = 0) -> Path:
    """What a training checkpoint holds for loading (hyper-parameters + "model."-prefixed
    weights), without training."""
    hparams = {"model": to_plain(network.config), "task": {"objective": objective},
               "alphabet": list(Alphabet().tokens), "seed": seed}
    state = {f"model.{key}": value for key, value in network.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path


@pytest.fixture
def exact_checkpoint(tmp_path) -> Path:
    network = tiny_model("exact", causal=False, dtype=torch.float32, weight_scale=1.0)
    return save_checkpoint(network, tmp_path / "exact.ckpt")


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two proteins of 9 and 6 tokens, the second padded: ids (2, 9), mask (2, 9)."""
    return BatchConverter()(["MKTAYIA", "QRQI"])


def _compose(name: str, overrides: list[str]):
    return OmegaConf.to_object(compose_config(name, overrides))


def test_loading_for_inference_imports_no_lightning(trained_checkpoints, tmp_path):
    directory = export_model(trained_checkpoints["mlm"], tmp_path / "exported")
    code = (
        "import sys, protperf.inference as inference\n"
        f"for path in ({str(trained_checkpoints['mlm'])!r}, {str(directory)!r}):\n"
        "    model = inference.load_model(path)\n"
        "    inference.Embedder(model).embed_one('MKTAYIAK')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'torchmetrics')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_export_directory_files(trained_checkpoints, tmp_path):
    out = export_model(trained_checkpoints["mlm"], tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "vocab.txt"]
    config = read_config(out)
    assert config["format"] == "protperf-model" and config["format_version"] == 1
    assert config["task"] == {"objective": "mlm"}
    assert config["model"]["attention"]["kind"] == "favor_softmax"
    assert config["alphabet"] == list(Alphabet().tokens) == (out / "vocab.txt").read_text().split()
    assert "library_name: protperf" in (out / "README.md").read_text()
    assert not list(tmp_path.glob(".exported*"))  # no staging directory left behind


def test_directory_gives_bit_identical_embed_score_and_generate(trained_checkpoints, tmp_path):
    mutations, wildtype = tmp_path / "variants.csv", tmp_path / "wt.fasta"
    wildtype.write_text(f">wt\n{WT}\n")
    mutations.write_text("mutant,DMS_score\nK2R,0.1\nT3A:Y5W,0.7\nQ9E,0.4\n")
    for objective in ("mlm", "clm"):
        checkpoint = trained_checkpoints[objective]
        directory = export_model(checkpoint, tmp_path / f"{objective}-exported")
        ids, mask = padded_batch()
        with torch.no_grad():
            expected = load_model(checkpoint)(ids, mask)
            assert torch.equal(load_model(directory)(ids, mask), expected)
        outputs = {}
        for name, source in (("ckpt", checkpoint), ("dir", directory)):
            embed(_compose("embed", [f"checkpoint={source}", f"output_dir={tmp_path / name}",
                                     "include=[mean,per_tok]", "layers=[0,-1]",
                                     "progress=false"]))
            score(_compose("score", [f"checkpoint={source}", f"mutations={mutations}",
                                     f"wildtype={wildtype}",
                                     f"output={tmp_path / name / 'scores.csv'}"]))
            outputs[name] = tmp_path / name
        arrays = sorted((outputs["ckpt"] / "embeddings").glob("*.npy"))
        assert arrays
        for array in arrays:
            again = outputs["dir"] / "embeddings" / array.name
            assert array.read_bytes() == again.read_bytes(), array.name
        assert (outputs["ckpt"] / "scores.csv").read_text() == \
            (outputs["dir"] / "scores.csv").read_text()
    clm = {name: generate(_compose("generate", [
        f"checkpoint={source}", "num_samples=3", "max_length=20", "seed=1",
        f"output={tmp_path / name / 'samples.fasta'}"]))
        for name, source in (("ckpt", trained_checkpoints["clm"]),
                             ("dir", tmp_path / "clm-exported"))}
    assert clm["ckpt"] == clm["dir"]


def test_attention_overrides_work_on_a_directory(exact_checkpoint, tmp_path):
    """Exact weights run as a Performer: the same network (features drawn from the saved seed)
    from the .ckpt and from its export, and the same embeddings and scores."""
    directory = export_model(exact_checkpoint, tmp_path / "exported")
    overrides = {"attention": {"kind": "favor_relu", "num_features": 64}}
    from_ckpt = load_model(exact_checkpoint, model_overrides=overrides)
    from_dir = load_model(directory, model_overrides=overrides)
    assert from_dir.config.attention.kind == "favor_relu"
    assert from_dir.blocks[0].attn.config.num_features == 64
    for (name, a), (_, b) in zip(from_ckpt.state_dict().items(),
                                 from_dir.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.equal(from_ckpt(ids, mask), from_dir(ids, mask))
        assert not torch.equal(from_dir(ids, mask), load_model(directory)(ids, mask))
    assert np.array_equal(Embedder(from_ckpt).embed_one(WT).mean[2],
                          Embedder(from_dir).embed_one(WT).mean[2])
    (tmp_path / "variants.csv").write_text("mutant\nK2R\nT3A:Y5W\n")
    variants = read_variants(tmp_path / "variants.csv", WT)
    pd.testing.assert_frame_equal(Scorer(from_ckpt).score_variants(variants, ["wt_marginal"]),
                                  Scorer(from_dir).score_variants(variants, ["wt_marginal"]))
    analyzed = analyzed_model(AnalyzeConfig(checkpoint=str(directory)))
    assert torch.equal(analyzed.lm_head.weight, from_dir.lm_head.weight)


def test_shape_defining_override_fails_on_a_directory(exact_checkpoint, tmp_path):
    directory = export_model(exact_checkpoint, tmp_path / "exported")
    with pytest.raises(CheckpointMismatchError,
                       match=r"^export directory .*exported has a different architecture: "
                             r"model.dim=32 in the export directory .* but 64 here$"):
        load_model(directory, model_overrides={"dim": 64})


def test_reexport_needs_force_and_keeps_other_files(exact_checkpoint, tmp_path):
    out = export_model(exact_checkpoint, tmp_path / "exported")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointWriteError,
                       match=f"^--out {out} is an earlier export; pass --force to replace the "
                             r"files an export writes there \(other files are kept\), or "
                             "choose a new directory$"):
        export_model(out, out)
    export_model(out, out, force=True)  # a directory is a source too
    assert read_config(out)["model"]["attention"]["kind"] == "exact"
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exact.ckpt", "exported"]


def test_bad_output_directory_is_left_alone(exact_checkpoint, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointWriteError,
                       match=f"^--out {out} is a non-empty directory; pass --force"):
        export_model(exact_checkpoint, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_bad_directories_fail_in_one_line(exact_checkpoint, tmp_path):
    directory = export_model(exact_checkpoint, tmp_path / "exported")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    weights = (directory / WEIGHTS_FILE).read_bytes()

    config_path.write_text(json.dumps({"model_type": "esm", "vocab_size": 33}))
    with pytest.raises(CheckpointMismatchError,
                       match=r"config.json is not a protperf model config \(model_type='esm', "
                             r"expected format='protperf-model'\)$"):
        load_model(directory)
    config_path.write_text(json.dumps({**config, "model": {**config["model"], "ffn_dim": 128}}))
    with pytest.raises(CheckpointMismatchError,
                       match=r"^export directory .*: tensor blocks.0.ffn.fc_in.weight has shape "
                             r"\(64, 32\) but the model built from its config needs \(128, 32\)$"):
        load_model(directory)
    config_path.write_text(json.dumps(config))
    (directory / WEIGHTS_FILE).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors is truncated or corrupt"):
        load_model(directory)
    (directory / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"^export directory .* has no model.safetensors$"):
        load_model(directory)
    config_path.unlink()
    with pytest.raises(CheckpointMismatchError, match=r"is a directory without config.json: "
                                                      r"not a protperf export"):
        load_model(directory)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "export_model.py"), "gone.ckpt", "--out", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: checkpoint gone.ckpt does not exist"
    assert not (tmp_path / "out").exists()
