"""Protein language models (Transformer / Performer) and their Lightning training."""

from protperf.model.config import ModelConfig, OptimConfig, TaskConfig, TrainConfig
from protperf.model.transformer import ProteinLanguageModel

__all__ = ["ModelConfig", "OptimConfig", "ProteinLanguageModel", "TaskConfig", "TrainConfig"]
