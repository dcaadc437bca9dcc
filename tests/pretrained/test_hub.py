"""Models by name, offline: ``protperf-import facebook/esm2_...`` through a Hugging Face cache
and ``protperf-import esm2_t6_8M_UR50D`` through fair-esm's torch hub cache, both laid out
by the ``caches`` fixture (tiny models of the real libraries); nothing touches the network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from protperf.checkpoint.module import load_module
from protperf.cli.runner import argparse_status
from protperf.pretrained import convert
from tests.pretrained.conftest import MAIN, REPO_ID
from tests.pretrained.test_bad_input import run_import

REPO = Path(__file__).resolve().parents[2]


def same_weights(a, b) -> None:
    assert replace(a.config, name="") == replace(b.config, name="")
    assert a.state_dict.keys() == b.state_dict.keys()
    for name, tensor in a.state_dict.items():
        assert torch.equal(tensor, b.state_dict[name]), name


def test_a_repo_id_imports_the_cached_snapshot(caches, hf_esm_dirs, tmp_path):
    out = tmp_path / "esm.ckpt"
    assert argparse_status("protperf.app.import_model", [REPO_ID, "--out", str(out)]) == 0
    by_name = convert(REPO_ID)
    same_weights(by_name, convert(hf_esm_dirs["safetensors"]))
    assert by_name.kind == "hf-esm" and by_name.source == REPO_ID
    assert by_name.config.name == "esm2-esm2_tiny"
    saved = torch.load(out, weights_only=True)
    assert saved["protperf_import"]["source"] == REPO_ID
    assert load_module(out).model_config.position == "rotary"


def test_revision_pins_a_tag_or_a_commit(caches, bert_dir, hf_esm_dirs):
    tagged = convert(REPO_ID, revision="v1")
    assert tagged.kind == "hf-bert" and tagged.source == f"{REPO_ID}@v1"
    same_weights(tagged, convert(bert_dir))
    same_weights(convert(REPO_ID, revision=MAIN), convert(hf_esm_dirs["safetensors"]))


def test_a_fair_esm_name_imports_from_the_torch_hub_cache(caches, fair_esm_file):
    by_name = convert("esm2_t6_8M_UR50D")
    assert by_name.kind == "fair-esm" and by_name.source == "esm2_t6_8M_UR50D"
    same_weights(by_name, convert(fair_esm_file[0]))


def test_offline_and_not_cached_names_what_to_download_and_where(caches, tmp_path, capsys):
    folder = caches["hf_home"] / "hub" / "models--facebook--esm2_t6_8M_UR50D"
    assert run_import("facebook/esm2_t6_8M_UR50D", tmp_path / "out.ckpt", capsys) == (
        "error: facebook/esm2_t6_8M_UR50D is not in the Hugging Face cache and downloads are "
        "off (HF_HUB_OFFLINE, or no network): download it with `hf download "
        f"facebook/esm2_t6_8M_UR50D` (it goes to {folder})")
    assert "--revision v2" in run_import(REPO_ID, tmp_path / "out.ckpt", capsys,
                                         "--revision", "v2")
    target = caches["torch_home"] / "hub" / "checkpoints" / "esm2_t12_35M_UR50D.pt"
    assert run_import("esm2_t12_35M_UR50D", tmp_path / "out.ckpt", capsys) == (
        "error: esm2_t12_35M_UR50D is not in fair-esm's torch hub cache and downloads are off "
        "(HF_HUB_OFFLINE): download "
        f"https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t12_35M_UR50D.pt to {target}")


@pytest.mark.parametrize("source, message", [
    ("not-a-model", "not-a-model does not exist and is not a model name (a Hugging Face repo "
                    "id such as facebook/esm2_t6_8M_UR50D or a fair-esm name such as "
                    "esm2_t6_8M_UR50D)"),
    ("a/b/c", "a/b/c does not exist and is not a model name"),
    ("esm1b_t33_650M_UR50S", "esm1b_t33_650M_UR50S is a fair-esm model of an older "
                             "generation; protperf imports ESM-2 (esm2_t*_*_UR50D) only"),
])
def test_neither_a_path_nor_a_name(caches, tmp_path, capsys, source, message):
    assert run_import(source, tmp_path / "out.ckpt", capsys).startswith(f"error: {message}")


def test_revision_of_a_local_path_is_refused(caches, fair_esm_file, tmp_path, capsys):
    assert run_import(fair_esm_file[0], tmp_path / "out.ckpt", capsys, "--revision", "v1") == (
        f"error: --revision v1 applies to Hugging Face repo ids, not to the local path "
        f"{fair_esm_file[0]}")


def test_the_command_reads_the_environment(caches, tmp_path):
    """The console command in a fresh process, configured only by HF_HOME / HF_HUB_OFFLINE.
    Not slow-marked: only a fresh interpreter shows what huggingface_hub's lazy top level has
    not imported yet (``hub.errors`` once failed there while every in-process test passed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HOME": str(caches["hf_home"]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "esm.ckpt"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_model.py"), REPO_ID, "--revision", "v1",
         "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"imported {REPO_ID}@v1 (hf-bert) -> {out}" in result.stdout
    assert out.is_file()


def test_online_a_missing_fair_esm_file_is_downloaded_into_the_cache(caches, fair_esm_file,
                                                                     monkeypatch):
    """Online (HF_HUB_OFFLINE unset): fetched from fair-esm's URL into torch's hub cache (the
    download itself stands in for the network here)."""
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fetched = []

    def download(url, destination, progress=True):
        fetched.append(url)
        shutil.copy(fair_esm_file[0], destination)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    imported = convert("esm2_t12_35M_UR50D")
    assert fetched == ["https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t12_35M_UR50D.pt"]
    assert (caches["torch_home"] / "hub" / "checkpoints" / "esm2_t12_35M_UR50D.pt").is_file()
    same_weights(imported, convert(fair_esm_file[0]))


def test_online_an_unknown_repository_is_one_line(caches, monkeypatch, tmp_path, capsys):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(repo_id, filename, **kwargs):
        request = httpx.Request("GET", f"https://huggingface.co/{repo_id}/resolve/main/{filename}")
        raise RepositoryNotFoundError("404 Client Error", response=httpx.Response(404,
                                                                                  request=request))

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_found)
    assert run_import("someone/no-such-model", tmp_path / "out.ckpt", capsys) == (
        "error: someone/no-such-model is neither a local path nor a Hugging Face model "
        "repository (or it is private: log in with `hf auth login`)")
