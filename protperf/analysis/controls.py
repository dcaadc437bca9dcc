"""Planted positive controls: language models whose attention follows BLOSUM62 by construction.

A one-layer model whose first attention layer has, for every head h, the exact logits

    q_i . k_j / sqrt(d_h) = beta * BLOSUM62[a_i, a_j] + gamma * BLOSUM62[c_h, a_j] + noise_h(i, j)

(optionally with BLOSUM62's diagonal set to 0 in the first term, ``plant_diagonal=False``)

where a_i is the amino acid at position i, c_h a "prototype" amino acid per head (head h cycles
through ``AMINO_ACIDS``) and noise_h(i, j) = sigma * (random low-rank form of the two positions).
beta plants the pairwise signal that the attention-mass similarity (``methods=[similarity]``)
looks for; gamma plants the per-head key preference that the Vig et al. procedure
(``methods=[vig]``) looks for; sigma is positional noise that carries no residue information.
beta = gamma = 0 is the positional-only null model.

Construction (D = num_heads * head_dim; all token and position vectors have mean 0 and the same
norm, so the pre-attention LayerNorm is the same scalar factor for every position):

* token embedding of amino acid a: ``[u_a, w_a e_a, -u_a, -w_a e_a, 0...]`` with u_a the rows of
  the Cholesky factor of the shifted BLOSUM62 (B + shift I = U U^T) and w_a filling every norm
  up to the same value; so the cosine similarity of two amino-acid embeddings is exactly
  B[a, b] / const off the diagonal (the positive control of ``methods=[embedding]``);
* other tokens (specials, X B Z U O): the same norm in a dedicated pair of dimensions;
* learned position i: ``[c_i, -c_i]`` in its own dimensions, c_i a random unit vector;
* q/k projections: the amino-acid block is mapped by U^{-1} to one-hot and then to the rows of
  V |L|^(1/2) (queries) and V |L|^(1/2) sign(L) (keys), with B = V L V^T, so that
  q_a . k_b = B[a, b]; a constant query component (the q bias) against the key component
  B[c_h, b] gives the key preference; random position maps give the noise.

The other weights (values, output, feed-forward, LM head) keep the usual random init: they do not
affect the first layer's attention.  :func:`save_planted_checkpoint` writes the model in the
project's checkpoint format (``protperf.checkpoint.module.load_module`` reads it back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protperf.analysis.blosum import blosum62
from protperf.analysis.residues import NUM_AMINO_ACIDS
from protperf.checkpoint.writer import write_checkpoint
from protperf.data.alphabet import ALPHABET

SHIFT = 24.0  # BLOSUM62's smallest eigenvalue is -22.92: B + 24 I is positive definite
SPECIAL_BLOCK = 4 * NUM_AMINO_ACIDS  # first of the two dimensions of non-amino-acid tokens
POSITION_BLOCK = SPECIAL_BLOCK + 2  # first of the 2 R dimensions of the positions


@dataclass
class PlantedConfig:
    """A planted model.

    beta: strength of the pairwise logit beta * BLOSUM62[a_i, a_j].
    plant_diagonal: False plants beta * BLOSUM62 for pairs of different amino acids only (logit
        0 for same-residue pairs): the off-diagonal signal the correlations measure, with queries
        and keys of about half the squared norm (max |q_a|^2 8.2 instead of 14.6), which FAVOR+
        softmax estimates with much lower variance.
    gamma: strength of the per-head key preference gamma * BLOSUM62[c_h, a_j].
    sigma: standard deviation (approximately) of the positional noise logits.
    attention_kind: exact | favor_softmax | favor_relu (the checkpoint's attention).
    num_features: Performer m.
    num_heads, head_dim: head_dim >= 21 + position_rank.
    position_rank: rank R of the positional noise (dimensions of c_i).
    causal: a causal (clm) model instead of a bidirectional (mlm) one.
    """

    beta: float = 0.3
    plant_diagonal: bool = True
    gamma: float = 0.0
    sigma: float = 0.5
    attention_kind: str = "exact"
    num_features: int = 256
    num_heads: int = 4
    head_dim: int = 32
    position_rank: int = 2
    max_position: int = 512
    causal: bool = False
    seed: int = 0

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim

    def validate(self) -> None:
        if self.head_dim < NUM_AMINO_ACIDS + 1 + self.position_rank:
            raise ValueError(
                f"head_dim={self.head_dim} must be >= 21 + position_rank={self.position_rank}"
            )
        if self.dim < SPECIAL_BLOCK + 2 + 2 * self.position_rank:
            raise ValueError(
                f"num_heads * head_dim = {self.dim} must be >= {SPECIAL_BLOCK + 2} + "
                f"2 * position_rank"
            )
        if min(self.beta, self.gamma, self.sigma) < 0:
            raise ValueError("beta, gamma and sigma must be >= 0")


def planted_matrix(plant_diagonal: bool = True) -> np.ndarray:
    """BLOSUM62 (20 x 20, ``AMINO_ACIDS`` order), with a zero diagonal if not plant_diagonal."""
    matrix = blosum62().to_numpy().copy()
    if not plant_diagonal:
        np.fill_diagonal(matrix, 0.0)
    return matrix


def blosum_factors(
    plant_diagonal: bool = True, shift: float = SHIFT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BLOSUM62 factorised for the planted model.

    Returns (U, Q, K), each (20, 20): U the lower Cholesky factor of B + shift I (rows = token
    embedding blocks; always the full BLOSUM62), Q = V |L|^(1/2) and K = V |L|^(1/2) sign(L)
    from P = V L V^T with P = :func:`planted_matrix`, so that Q K^T = P exactly (rows = query /
    key vectors of each amino acid).
    """
    chol = np.linalg.cholesky(blosum62().to_numpy() + shift * np.eye(NUM_AMINO_ACIDS))
    values, vectors = np.linalg.eigh(planted_matrix(plant_diagonal))
    root = vectors * np.sqrt(np.abs(values))
    return chol, root, root * np.sign(values)


def token_embeddings(chol: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """(vocab, dim) token embeddings, all of mean 0 and squared norm 2 * target; returns them
    and target.  Amino acid a: ``[u_a, w_a e_a, -u_a, -w_a e_a]`` (u_a = chol[a], w_a filling
    |u_a|^2 up to target); every other token: +-sqrt(target) in the two SPECIAL_BLOCK dims."""
    n = NUM_AMINO_ACIDS
    norms = (chol**2).sum(1)
    target = float(norms.max()) + 1.0
    private = np.sqrt(target - norms)
    embedding = np.zeros((ALPHABET.vocab_size, dim))
    for index, token_id in enumerate(ALPHABET.standard_ids):
        embedding[token_id, :n] = chol[index]
        embedding[token_id, n + index] = private[index]
        embedding[token_id, 2 * n : 4 * n] = -embedding[token_id, : 2 * n]
    others = [i for i in range(ALPHABET.vocab_size) if i not in ALPHABET.standard_ids]
    embedding[others, SPECIAL_BLOCK] = np.sqrt(target)
    embedding[others, SPECIAL_BLOCK + 1] = -np.sqrt(target)
    return embedding, target


def position_embeddings(config: PlantedConfig, rng: np.random.Generator) -> np.ndarray:
    """(max_position, dim): ``[c_i, -c_i]`` after SPECIAL_BLOCK + 2, c_i random unit
    R-vectors (mean 0, squared norm 2)."""
    rank, start = config.position_rank, POSITION_BLOCK
    directions = rng.standard_normal((config.max_position, rank))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    positions = np.zeros((config.max_position, config.dim))
    positions[:, start : start + rank] = directions
    positions[:, start + rank : start + 2 * rank] = -directions
    return positions


def planted_state(config: PlantedConfig, state: dict[str, torch.Tensor]) -> dict:
    """Overwrite embeddings, LayerNorm and q/k projections of layer 0 in ``state`` (a
    ``ProteinLanguageModel`` state dict, keys without the ``model.`` prefix); returns it."""
    from protperf.model.config import ModelConfig

    config.validate()
    rng = np.random.default_rng(config.seed)
    n, dim, dh, rank = NUM_AMINO_ACIDS, config.dim, config.head_dim, config.position_rank
    chol, query_rows, key_rows = blosum_factors(config.plant_diagonal)
    embedding, target = token_embeddings(chol, dim)
    positions = position_embeddings(config, rng)
    # every token + position has mean 0 and |x|^2 = 2 target + 2: LayerNorm(x) = x * scale
    scale = 1.0 / np.sqrt((2 * target + 2) / dim + ModelConfig().layer_norm_eps)
    to_one_hot = np.linalg.inv(chol).T  # (20, 20): to_one_hot @ u_a = one-hot(a)
    weight_q, weight_k = np.zeros((dim, dim)), np.zeros((dim, dim))
    bias_q = np.zeros(dim)
    matrix = blosum62().to_numpy()
    pair = np.sqrt(config.beta * np.sqrt(dh))  # (pair Q[a]).(pair K[b]) / sqrt(dh) = beta P_ab
    prefer = np.sqrt(config.gamma * np.sqrt(dh))
    # (noise G c_i).(noise H c_j) / sqrt(dh), G, H standard normal R x R: std sigma
    noise = np.sqrt(config.sigma * np.sqrt(dh) / np.sqrt(rank))
    position_cols = slice(POSITION_BLOCK, POSITION_BLOCK + rank)
    for head in range(config.num_heads):
        rows = slice(head * dh, head * dh + n)  # q = pair Q[a], k = pair K[b]
        weight_q[rows, :n] = pair * query_rows.T @ to_one_hot / scale
        weight_k[rows, :n] = pair * key_rows.T @ to_one_hot / scale
        column = head * dh + n  # constant query . B[c_h, b]
        bias_q[column] = prefer
        weight_k[column, :n] = prefer * matrix[head % n] @ to_one_hot / scale
        noise_rows = slice(head * dh + n + 1, head * dh + n + 1 + rank)
        weight_q[noise_rows, position_cols] = noise * rng.standard_normal((rank, rank)) / scale
        weight_k[noise_rows, position_cols] = noise * rng.standard_normal((rank, rank)) / scale
    updates = {
        "token_embedding.weight": embedding,
        "position_embedding.weight": positions,
        "blocks.0.attn_norm.weight": np.ones(dim),
        "blocks.0.attn_norm.bias": np.zeros(dim),
        "blocks.0.attn.q_proj.weight": weight_q,
        "blocks.0.attn.q_proj.bias": bias_q,
        "blocks.0.attn.k_proj.weight": weight_k,
        "blocks.0.attn.k_proj.bias": np.zeros(dim),
    }
    for key, value in updates.items():
        state[key] = torch.as_tensor(value, dtype=state[key].dtype)
    return state


def planted_hparams(config: PlantedConfig) -> dict:
    """The ``model`` and ``task`` sections of a one-layer planted model."""
    attention = {"kind": config.attention_kind, "num_features": config.num_features}
    model = {
        "name": f"planted_{config.attention_kind}", "dim": config.dim,
        "num_heads": config.num_heads, "num_layers": 1, "ffn_dim": 4, "dropout": 0.0,
        "position": "learned", "max_position": config.max_position, "tie_embeddings": False,
        "attention": attention,
    }
    return {"model": model, "task": {"objective": "clm" if config.causal else "mlm"}}


def planted_module(config: PlantedConfig):
    """The planted :class:`protperf.model.lightning.ProteinLMModule` (random features and the
    remaining weights drawn from ``config.seed``)."""
    from protperf.model.lightning import ProteinLMModule

    torch.manual_seed(config.seed)
    hparams = planted_hparams(config)
    module = ProteinLMModule(model=hparams["model"], task=hparams["task"], seed=config.seed)
    state = planted_state(config, module.model.state_dict())
    module.model.load_state_dict(state)
    return module.eval()


def save_checkpoint(module, path: str | Path, global_step: int = 0) -> Path:
    """Write ``module``'s network in the training checkpoint format (the one checkpoint
    writer, :func:`protperf.checkpoint.writer.write_checkpoint`: atomic, with a content
    hash, loadable with ``weights_only=True``)."""
    return write_checkpoint(module.model, module.model_config, path, task=module.task_config,
                            optim=module.optim_config, seed=module.hparams.get("seed", 0),
                            global_step=global_step)


def save_planted_checkpoint(config: PlantedConfig, path: str | Path) -> Path:
    """Build the planted model of ``config`` and save it as a checkpoint at ``path``."""
    return save_checkpoint(planted_module(config), path)
