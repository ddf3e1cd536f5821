"""The weight optimizer and learning-rate schedule every gradient-using paradigm shares.

`WeightOptimizer` holds the keys (AdamW or SGD, learning rate, momentum/betas, weight
decay, schedule); method configs inherit it, so the keys are flat on the command line
(`method.lr=...`) and checked in one place. The schedule is a linear warm-up then a cosine
decay (Loshchilov & Hutter, 2017), driven by the fraction of the budget spent, so it works
for every budget kind and every paradigm decays its learning rate the same way: the
paradigms then differ in their learning rule, not in their schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class WeightOptimizer:
    """Weight-optimizer keys, inherited by the method configs (flat keys on the command line)."""

    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    beta1: float = 0.9  # AdamW only
    beta2: float = 0.999  # AdamW only
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup: float = 0.05  # fraction of the budget spent warming up linearly from 0
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio

    def check_optimizer(self) -> None:
        """Raise a ValueError naming the key of any impossible value (call from __post_init__)."""
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, got {self.schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the budget in [0, 1), got {self.warmup}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def make_optimizer(params: Iterable[nn.Parameter], cfg: WeightOptimizer) -> torch.optim.Optimizer:
    """AdamW or SGD over `params` with the config's settings (the schedule sets lr per step)."""
    params = list(params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, cfg: WeightOptimizer, fraction: float) -> None:
    """The scheduled learning rate at `fraction` of the budget (backprop's schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor(cfg, fraction)


def lr_factor(cfg: WeightOptimizer, fraction: float) -> float:
    """Multiplier of the base learning rate at `fraction` of the budget."""
    if cfg.warmup > 0 and fraction < cfg.warmup:
        return max(fraction / cfg.warmup, 1e-3)
    if cfg.schedule == "constant":
        return 1.0
    progress = (fraction - cfg.warmup) / max(1e-12, 1 - cfg.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine
