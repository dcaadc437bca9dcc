"""``protperf.pretrained.load.load_model(anything)``: protperf checkpoints and export
directories, HF directories and repo ids, fair-esm files and names, each the network
``protperf-import`` would write (nothing written), with ``model.attention.*`` overrides."""

from __future__ import annotations

import pytest
import torch

from protperf.checkpoint import load as checkpoint_load
from protperf.errors import PretrainedSourceError
from protperf.pretrained import import_pretrained
from protperf.pretrained.load import load_model
from tests.pretrained.conftest import REPO_ID

PERFORMER = {"kind": "favor_softmax", "num_features": 16}
IDS = torch.tensor([[2, 15, 13, 21, 1, 24, 12, 3], [2, 18, 19, 18, 12, 3, 0, 0]])
MASK = IDS != 0


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS, MASK)


@pytest.fixture(scope="module")
def imported(fair_esm_file, bert_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    import_pretrained(fair_esm_file[0], root / "esm.ckpt")
    import_pretrained(bert_dir, root / "bert.ckpt")
    return root


@pytest.mark.parametrize("attention", [None, PERFORMER, {"kind": "favor_relu"}])
def test_a_foreign_source_is_the_network_its_import_would_write(imported, fair_esm_file,
                                                                bert_dir, attention):
    overrides = {} if attention is None else {"attention": attention}
    for source, ckpt in ((fair_esm_file[0], "esm.ckpt"), (bert_dir, "bert.ckpt")):
        model = load_model(source, **overrides)
        assert not model.training
        assert model.config.attention.kind == (attention or {"kind": "exact"})["kind"]
        expected = checkpoint_load.load_model(imported / ckpt, model_overrides=overrides or None)
        assert torch.equal(logits(model), logits(expected)), source


def test_protperf_checkpoints_and_exports_are_loaded_as_they_are(imported, tmp_path):
    from protperf import export_model

    export = export_model(imported / "esm.ckpt", tmp_path / "export")
    for source in (imported / "esm.ckpt", export):
        model = load_model(source, attention=PERFORMER)
        expected = checkpoint_load.load_model(source, model_overrides={"attention": PERFORMER})
        assert torch.equal(logits(model), logits(expected))


def test_names_resolve_through_the_caches(caches, imported, hf_esm_dirs):
    by_repo_id = load_model(REPO_ID, attention=PERFORMER)
    assert torch.equal(logits(by_repo_id), logits(load_model(hf_esm_dirs["safetensors"],
                                                             attention=PERFORMER)))
    assert load_model(REPO_ID, revision="v1").config.position == "learned"  # the BERT tag
    by_name = load_model("esm2_t6_8M_UR50D")
    assert torch.equal(logits(by_name), logits(checkpoint_load.load_model(imported / "esm.ckpt")))


def test_an_unknown_name_is_one_line(caches):
    with pytest.raises(PretrainedSourceError, match=r"^not-a-model does not exist and is not "
                                                    r"a model name \(a Hugging Face repo id"):
        load_model("not-a-model")
