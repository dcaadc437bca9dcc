"""protperf: protein language modeling with Performers (FAVOR+ linear attention)."""

__version__ = "0.1.0"
