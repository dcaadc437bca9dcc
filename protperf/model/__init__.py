"""The protein language model (Transformer / Performer) and its Lightning training module."""

from typing import TYPE_CHECKING

from protperf.model.config import ModelConfig, OptimConfig, TaskConfig

if TYPE_CHECKING:
    from protperf.model.transformer import ProteinLanguageModel


def __getattr__(name: str):
    """``ProteinLanguageModel`` is imported on first use: reading a config needs no torch."""
    if name == "ProteinLanguageModel":
        from protperf.model.transformer import ProteinLanguageModel

        return ProteinLanguageModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ModelConfig", "OptimConfig", "ProteinLanguageModel", "TaskConfig"]
