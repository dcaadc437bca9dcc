"""``protperf-generate``: sample proteins from a causal checkpoint into a FASTA file."""

from __future__ import annotations

from pathlib import Path

from protperf.checkpoint.atomic import atomic_open, check_writable
from protperf.cli.command import command
from protperf.cli.config import GenerateConfig
from protperf.errors import ConfigError
from protperf.inference import load_model
from protperf.inference.generate import Sampler, SamplingConfig, check_prompt


def generate(config: GenerateConfig) -> list[str]:
    """Sample ``num_samples`` proteins; writes ``output`` (FASTA, ids sample_0 ...) atomically,
    after checking the prompt and that its folder is writable (before the model loads)."""
    check_prompt(config.prompt)
    check_writable(Path(config.output).parent, "samples")
    model = load_model(config.checkpoint, config.device,
                       model_overrides=config.model.as_overrides())
    if not model.causal:
        raise ConfigError(
            f"checkpoint {config.checkpoint} is a masked LM (task.objective=mlm); generate "
            "needs a causal one (task.objective=clm)")
    sampling = SamplingConfig(config.temperature, config.top_k, config.top_p)
    sampler = Sampler(model, residues=config.residues)
    proteins = sampler.sample(config.num_samples, config.max_length, config.seed, sampling,
                              config.prompt, config.batch_size)
    with atomic_open(config.output, "w", "samples") as handle:
        for i, residues in enumerate(proteins):
            handle.write(f">sample_{i} length={len(residues)} seed={config.seed}\n")
            for start in range(0, len(residues), 60):
                handle.write(residues[start : start + 60] + "\n")
    print(f"[protperf] wrote {len(proteins)} proteins to {config.output}", flush=True)
    return proteins


main = command("generate")(generate)
