"""Pretrained Transformer -> Performer: zero-shot conversion, fine-tuning and attention
transfer, and how well each recovers the model's masked-LM quality.

``antibodies``: the bundled antibody variable-domain sets; ``antiberty``: AntiBERTy's weights
from the optional ``transfer`` extra; ``evaluation``: masked-LM accuracy and perplexity on
fixed masks; ``conversion``: the same weights under another attention and the per-layer
attention inputs/outputs of a teacher; ``finetune``: the two recovery recipes (masked-LM loss,
attention transfer); ``benchmark``: the table of ``scripts/benchmark_transfer.py``.
"""
