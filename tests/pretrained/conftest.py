"""Small random-initialised ESM-2 and BERT models built with the real libraries and saved in
their own formats, plus the padded batches both sides read."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch

from protperf.data.alphabet import ALPHABET as A
from protperf.data.alphabet import STANDARD_AMINO_ACIDS

#: Proteins of different lengths (a padded batch), with masked positions (0-based residues).
PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ", "WCYNPLRTEEVKAHILGDMSQF"]
MASKED = {0: [3, 10], 1: [0], 2: [5, 6, 7]}
# A ProtBert-like vocabulary (specials, residues in its order, one token protperf lacks)
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"LAGVESIKRDTPNQFYMHCWXBUZO",
              "[unused1]"]


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every parameter off its (often 0 / 1) initial value so every weight matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def batch(vocab: list[str], cls: str, eos: str, pad: str, mask: str):
    """(ids, attention_mask) in the source vocabulary and in protperf's, same positions."""
    length = max(len(p) for p in PROTEINS) + 2
    src = torch.full((len(PROTEINS), length), vocab.index(pad))
    ours = torch.full((len(PROTEINS), length), A.pad_id)
    for row, protein in enumerate(PROTEINS):
        residues = list(protein)
        for i in MASKED[row]:
            residues[i] = None
        src[row, : len(protein) + 2] = torch.tensor(
            [vocab.index(cls)] + [vocab.index(mask if r is None else r) for r in residues]
            + [vocab.index(eos)])
        ours[row, : len(protein) + 2] = torch.tensor(
            [A.cls_id] + [A.mask_id if r is None else A.tokens.index(r) for r in residues]
            + [A.eos_id])
    attention = ours != A.pad_id
    return src, ours, attention


def residue_positions(attention: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the residue positions (real, not <cls>/<eos>)."""
    positions = attention.clone()
    positions[:, 0] = False
    lengths = attention.sum(-1)
    positions[torch.arange(len(lengths)), lengths - 1] = False
    return positions


def amino_acid_columns(vocab: list[str]) -> tuple[list[int], list[int]]:
    """Logit columns of the 20 amino acids in the source and in protperf."""
    return ([vocab.index(a) for a in STANDARD_AMINO_ACIDS],
            [A.tokens.index(a) for a in STANDARD_AMINO_ACIDS])


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    """An HF BertForMaskedLM directory (safetensors) with a ProtBert-like vocab.txt."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=40,
                        pad_token_id=0)
    model = perturb(BertForMaskedLM(config), seed=1)
    directory = tmp_path_factory.mktemp("bert") / "prot_bert_tiny"
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    return directory


@pytest.fixture(scope="session")
def bert_bin_dir(bert_dir, tmp_path_factory) -> Path:
    """The same BERT as a pickled ``pytorch_model.bin`` (+ extra heads a masked LM ignores)."""
    from safetensors.torch import load_file

    directory = tmp_path_factory.mktemp("bert_bin") / "antibody_bert_tiny"
    directory.mkdir()
    state = load_file(bert_dir / "model.safetensors")
    state["cls.species.weight"] = torch.randn(6, 32)
    state["cls.species.bias"] = torch.zeros(6)
    state["bert.pooler.dense.weight"] = torch.randn(32, 32)
    state["bert.embeddings.position_ids"] = torch.arange(40)[None]
    torch.save(state, directory / "pytorch_model.bin")
    for name in ("config.json", "vocab.txt"):
        (directory / name).write_bytes((bert_dir / name).read_bytes())
    return directory


def fair_esm_model(token_dropout: bool = True):
    """fair-esm's own ESM2 class, tiny, perturbed."""
    from esm.model.esm2 import ESM2

    torch.manual_seed(0)
    model = ESM2(num_layers=2, embed_dim=32, attention_heads=4, alphabet="ESM-1b",
                 token_dropout=token_dropout)
    return perturb(model, seed=2)


def fair_esm_file_data(model) -> dict:
    """What a fair-esm ESM-2 .pt file holds: stored names under ``encoder.``, the config as
    ``cfg["model"]`` (an argparse.Namespace) and no ``args``."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("contact_head.regression"):
            continue  # shipped in a separate -contact-regression.pt file
        prefix = "encoder." if name.startswith("lm_head.") else "encoder.sentence_encoder."
        state[prefix + name] = tensor
    cfg = argparse.Namespace(encoder_layers=model.num_layers, encoder_embed_dim=model.embed_dim,
                             encoder_attention_heads=model.attention_heads,
                             token_dropout=model.token_dropout, encoder_ffn_embed_dim=128)
    return {"model": state, "cfg": {"model": cfg}, "args": None}


@pytest.fixture(scope="session")
def fair_esm_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    model = fair_esm_model()
    path = tmp_path_factory.mktemp("fair_esm") / "esm2_t2_tiny.pt"
    torch.save(fair_esm_file_data(model), path)
    return path, model


def esm_vocab() -> list[str]:
    """fair-esm's ESM-1b / ESM-2 alphabet (33 tokens), which HF ESM-2's vocab.txt lists."""
    from esm.data import Alphabet as EsmAlphabet

    return list(EsmAlphabet.from_architecture("ESM-1b").all_toks)


@pytest.fixture(scope="session")
def hf_esm_dirs(tmp_path_factory) -> dict[str, Path]:
    """An HF EsmForMaskedLM (rotary, token dropout) saved as safetensors and as .bin."""
    from transformers import EsmConfig, EsmForMaskedLM

    vocab = esm_vocab()
    torch.manual_seed(0)
    config = EsmConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                       position_embedding_type="rotary", token_dropout=True,
                       emb_layer_norm_before=False, layer_norm_eps=1e-5,
                       mask_token_id=vocab.index("<mask>"), pad_token_id=vocab.index("<pad>"))
    model = perturb(EsmForMaskedLM(config), seed=3)
    root = tmp_path_factory.mktemp("hf_esm")
    dirs = {"safetensors": root / "esm2_tiny", "bin": root / "esm2_tiny_bin"}
    model.save_pretrained(dirs["safetensors"])
    dirs["bin"].mkdir()
    torch.save(model.state_dict(), dirs["bin"] / "pytorch_model.bin")
    (dirs["bin"] / "config.json").write_bytes((dirs["safetensors"] / "config.json").read_bytes())
    for directory in dirs.values():
        (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return dirs


MAIN, TAGGED = "a" * 40, "b" * 40  # commit hashes of the two snapshots
REPO_ID = "facebook/esm2_tiny"


def lay_out_hf_cache(hub_cache: Path, repo_id: str, snapshots: dict[str, Path],
                     refs: dict[str, str]) -> None:
    """huggingface_hub's cache layout: models--ns--name/{refs/REF, snapshots/COMMIT/files}."""
    folder = hub_cache / ("models--" + repo_id.replace("/", "--"))
    for commit, source in snapshots.items():
        shutil.copytree(source, folder / "snapshots" / commit)
    (folder / "refs").mkdir(parents=True)
    for ref, commit in refs.items():
        (folder / "refs" / ref).write_text(commit)


@pytest.fixture
def caches(tmp_path, monkeypatch, hf_esm_dirs, bert_dir, fair_esm_file):
    """Offline Hugging Face and torch hub caches under tmp_path: the HF repo's main branch is
    the tiny ESM-2, its tag v1 the tiny BERT; fair-esm's cache holds esm2_t6_8M_UR50D.pt."""
    import huggingface_hub.constants as constants

    hf_home, torch_home = tmp_path / "hf", tmp_path / "torch"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    # huggingface_hub reads its environment once, at import: point it at the new home too
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    lay_out_hf_cache(hf_home / "hub", REPO_ID,
                     {MAIN: hf_esm_dirs["safetensors"], TAGGED: bert_dir},
                     {"main": MAIN, "v1": TAGGED})
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(fair_esm_file[0], checkpoints / "esm2_t6_8M_UR50D.pt")
    return {"hf_home": hf_home, "torch_home": torch_home}
