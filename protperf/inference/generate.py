"""Sampling proteins from a causal checkpoint: temperature, top-k, top-p, prompt, eos.

Every sequence starts with ``<cls>`` (the training bos) and the optional prompt; new tokens
are drawn from the 20 standard amino acids and ``<eos>`` only (``residues="all"`` adds the
non-standard letters X B Z U O; never pad, mask, cls or unk); a sequence ends at ``<eos>`` or
at ``max_length`` residues (prompt included). Performers decode in recurrent form, exact
models with a KV cache (``ProteinLanguageModel.step``, driven by
:mod:`protperf.inference.decoding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protperf.data.alphabet import ALPHABET, NONSTANDARD_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from protperf.errors import ConfigError
from protperf.inference.decoding import FullForwardDecoder, IncrementalDecoder
from protperf.model.transformer import ProteinLanguageModel

DECODERS = {"cache": IncrementalDecoder, "full": FullForwardDecoder}
RESIDUE_SETS = ("standard", "all")


def check_prompt(prompt: str) -> None:
    """A prompt holds amino-acid letters only (score's rule for mutant letters): ConfigError
    naming the first other character and its 1-based position."""
    letters = STANDARD_AMINO_ACIDS + NONSTANDARD_AMINO_ACIDS
    for position, letter in enumerate(prompt, start=1):
        if letter.upper() not in letters:
            raise ConfigError(
                f"prompt={prompt!r}: {letter!r} at position {position} is not an amino-acid "
                f"letter (one of {STANDARD_AMINO_ACIDS} or {NONSTANDARD_AMINO_ACIDS})")


@dataclass
class SamplingConfig:
    """How tokens are drawn. temperature 0 = greedy; top_k 0 = off; top_p 1.0 = off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits (B, V) with everything outside the top-k / the top-p nucleus set to -inf.

    The nucleus keeps the smallest set of most likely tokens whose probability reaches
    top_p (the most likely token always stays).
    """
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw_tokens(
    logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator
) -> torch.Tensor:
    """logits (B, V) -> sampled ids (B,); temperature 0 takes the argmax."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / sampling.temperature, sampling.top_k, sampling.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


class Sampler:
    """Draws proteins from a causal model.

    Args:
        model: a causal :class:`ProteinLanguageModel` (put in eval mode here).
        decoding: ``cache`` (recurrent state / KV cache, the default) or ``full``
            (rerun the whole prefix every token; a reference).
        residues: ``standard`` (the 20 amino acids, the default) or ``all`` (also the
            non-standard letters X B Z U O, which training data contain as unknown or
            ambiguous residues).
    """

    def __init__(
        self, model: ProteinLanguageModel, decoding: str = "cache", residues: str = "standard"
    ) -> None:
        if not model.causal:
            raise ConfigError(
                "generation needs a causal checkpoint (task.objective=clm); this model is "
                "bidirectional (mlm)"
            )
        if decoding not in DECODERS:
            raise ConfigError(f"decoding={decoding!r} is not one of {', '.join(DECODERS)}")
        if residues not in RESIDUE_SETS:
            raise ConfigError(f"residues={residues!r} is not one of {', '.join(RESIDUE_SETS)}")
        self.model, self.decoding = model.eval(), decoding
        self.alphabet = ALPHABET
        letters = ALPHABET.standard_ids if residues == "standard" else ALPHABET.residue_ids
        allowed = torch.full((model.config.vocab_size,), float("-inf"))
        allowed[letters + [self.alphabet.eos_id]] = 0.0
        self._allowed = allowed

    def _check_length(self, max_length: int) -> None:
        if max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length}")
        cfg = self.model.config
        if cfg.position == "learned" and max_length > cfg.max_position:
            raise ConfigError(
                f"max_length={max_length} is longer than the checkpoint's learned positional "
                f"table (model.max_position={cfg.max_position})"
            )

    @torch.no_grad()
    def sample_batch(
        self,
        batch_size: int,
        max_length: int,
        generator: torch.Generator,
        sampling: SamplingConfig | None = None,
        prompt: str = "",
    ) -> list[str]:
        """``batch_size`` proteins (residue strings, prompt included) decoded together."""
        sampling = sampling or SamplingConfig()
        self._check_length(max_length)
        a = self.alphabet
        check_prompt(prompt)
        prompt_ids = torch.from_numpy(a.encode(prompt).astype("int64"))
        if len(prompt_ids) >= max_length:
            raise ConfigError(
                f"the prompt has {len(prompt_ids)} residues, not fewer than max_length="
                f"{max_length}"
            )
        device = self.model.token_embedding.weight.device
        decoder = DECODERS[self.decoding](self.model, batch_size, max_length)
        start = torch.cat([torch.tensor([a.bos_id]), prompt_ids]).to(device)
        for token in start:
            logits = decoder.step(token.expand(batch_size))
        rows = [prompt_ids.tolist() for _ in range(batch_size)]
        finished = torch.zeros(batch_size, dtype=torch.bool)
        allowed = self._allowed.to(device)
        for length in range(len(prompt_ids), max_length):
            next_ids = draw_tokens(logits + allowed, sampling, generator).cpu()
            for row, (token, done) in enumerate(zip(next_ids.tolist(), finished.tolist(),
                                                    strict=True)):
                if not done and token != a.eos_id:
                    rows[row].append(token)
            finished |= next_ids == a.eos_id
            if bool(finished.all()) or length + 1 == max_length:
                break
            logits = decoder.step(next_ids.to(device))
        return [a.decode(row) for row in rows]

    def sample(
        self,
        num_samples: int,
        max_length: int,
        seed: int = 0,
        sampling: SamplingConfig | None = None,
        prompt: str = "",
        batch_size: int = 16,
    ) -> list[str]:
        """``num_samples`` proteins, ``batch_size`` at a time, reproducible for a seed."""
        if num_samples < 1 or batch_size < 1:
            raise ConfigError(
                f"num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}")
        generator = torch.Generator().manual_seed(seed)
        out: list[str] = []
        while len(out) < num_samples:
            size = min(batch_size, num_samples - len(out))
            out += self.sample_batch(size, max_length, generator, sampling, prompt)
        return out
