"""Learning-rate schedule: linear warm-up then cosine / linear decay or constant."""

from __future__ import annotations

import math


def warmup_decay_factor(
    step: int, warmup_steps: int, total_steps: int, schedule: str, min_ratio: float
) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Rises linearly from 1/warmup to 1 over ``warmup_steps``, then decays to ``min_ratio`` at
    ``total_steps`` (``cosine`` or ``linear``) or stays at 1 (``constant``).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    if schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"optim.schedule={schedule!r} is not one of cosine, linear, constant")
    return min_ratio + (1.0 - min_ratio) * shape
