"""Pieces shared by the layer-local paradigms (predictive coding, local learning).

- `WeightOptimizer`: the weight-optimizer settings both methods expose (AdamW or SGD, the
  learning rate and its schedule), with `make_optimizer` and `set_lr`. The schedule is
  backprop's (`methods.backprop.lr_factor`: linear warm-up, cosine decay, driven by the
  fraction of the budget spent), so every paradigm decays its learning rate the same way.
- `block_shapes`: the per-example shape of the stem's and every block's output, read off
  one forward pass (a flat vector for the MLP, [tokens, dim] for the ViT).
- `seeded`: builds modules (auxiliary heads) from the method's generator alone.
- `has_parameters`: whether a module learns anything (the MLP's stem, a Flatten, does not);
  `num_classes`: the task's classes, checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from harness.interface import BlockModel, SetupContext
from methods.backprop import lr_factor


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
    params = list(params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, cfg: WeightOptimizer, fraction: float) -> None:
    """The scheduled learning rate at `fraction` of the budget (backprop's schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor(cfg, fraction)  # type: ignore[arg-type]  # same fields


def num_classes(ctx: SetupContext, method: str) -> int:
    """The task's number of classes; a ValueError when it has fewer than two."""
    classes = int(ctx.task.describe().get("num_classes", 0))
    if classes < 2:
        raise ValueError(f"{method} needs a task with 2+ classes; {ctx.task.name} describes num_classes={classes}")
    return classes


def has_parameters(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@torch.no_grad()
def block_shapes(model: BlockModel, input_shape: tuple[int, ...], device: torch.device) -> list[tuple[int, ...]]:
    """Per-example shapes of the stem's output and of every block's output (len = blocks + 1)."""
    was_training = model.training
    model.eval()
    outputs = model.block_outputs(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return [tuple(h.shape[1:]) for h in outputs]


@contextmanager
def seeded(generator: torch.Generator) -> Iterator[None]:
    """Modules built inside draw their initial weights from `generator` (through a private
    global RNG seeded from it), and the caller's global RNG is left untouched."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
