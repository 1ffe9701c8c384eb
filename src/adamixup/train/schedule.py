"""Learning-rate schedules as per-step multipliers of the base rate (a LambdaLR stepped every batch)."""
from __future__ import annotations

import math
from typing import Sequence

import torch


def lr_factor(step: int, steps_per_epoch: int, epochs: int, schedule: str, milestones: Sequence[int] = (),
              gamma: float = 0.1, warmup_epochs: float = 0.0) -> float:
    """Multiplier of the base rate at optimizer step ``step`` (0-based).

    warm-up: linear from 1/warm-up-steps to 1 over the first ``warmup_epochs`` epochs, then
    "constant" (1), "step" (× gamma at each epoch in ``milestones``) or "cosine" (half a cosine from 1
    to 0 over the epochs after the warm-up).
    """
    epoch = step / steps_per_epoch
    warm = warmup_epochs * steps_per_epoch
    factor = 1.0
    if schedule == "step":
        factor = gamma ** sum(epoch >= m for m in milestones)
    elif schedule == "cosine":
        total = epochs * steps_per_epoch - warm
        progress = min(max(step - warm, 0) / max(total, 1), 1.0)
        factor = 0.5 * (1 + math.cos(math.pi * progress))
    if step < warm:
        factor *= (step + 1) / warm
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, config) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, steps_per_epoch, config.epochs, config.schedule, config.milestones,
                               config.gamma, config.warmup_epochs),
    )
