"""The protein language model (Transformer / Performer) and its Lightning training module."""

from protperf.model.config import ModelConfig, OptimConfig, TaskConfig
from protperf.model.transformer import ProteinLanguageModel

__all__ = ["ModelConfig", "OptimConfig", "ProteinLanguageModel", "TaskConfig"]
