"""Backpropagation: the reference baseline every other paradigm is held against.

End-to-end gradient descent on the task's loss (Rumelhart, Hinton & Williams, 1986)
with the ingredients of a strong modern baseline:

- AdamW (Loshchilov & Hutter, 2019) or SGD with (Nesterov-free) momentum;
- linear warm-up then cosine decay (Loshchilov & Hutter, 2017), driven by the
  fraction of the budget spent, so it works for every budget kind;
- decoupled weight decay, optional gradient-norm clipping;
- optional bf16 autocast (mixed precision) and per-block activation checkpointing
  (Chen et al., 2016). Memory claims are held against backprop with these on.

forward_equivalents per step: 3 (a backward pass costs about two forwards), 4 with
activation checkpointing (each block's forward is recomputed during backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method


@dataclass(frozen=True)
class BackpropConfig:
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    beta1: float = 0.9  # AdamW only
    beta2: float = 0.999  # AdamW only
    weight_decay: float = 0.01
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup: float = 0.05  # fraction of the budget spent warming up linearly from 0
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    bf16: bool = False  # autocast forward and backward in bfloat16
    checkpoint: bool = False  # recompute each block's activations in the backward pass

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the budget in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")


def lr_factor(cfg: BackpropConfig, fraction: float) -> float:
    """Multiplier of the base learning rate at `fraction` of the budget."""
    if cfg.warmup > 0 and fraction < cfg.warmup:
        return max(fraction / cfg.warmup, 1e-3)
    if cfg.schedule == "constant":
        return 1.0
    progress = (fraction - cfg.warmup) / max(1e-12, 1 - cfg.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine


@register_method("backprop")
class Backprop:
    supports = frozenset({"classify", "lm"})
    Config = BackpropConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx = ctx
        self.cfg: BackpropConfig = ctx.config
        self.model = ctx.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(
                params, lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2), weight_decay=self.cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                params, lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
            )

    def _autocast(self) -> Any:
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _forward(self, inputs: Tensor) -> Tensor:
        if not self.cfg.checkpoint:
            return self.model(inputs)
        h = self.model.stem(inputs)
        for block in self.model.blocks:
            h = checkpoint(block, h, use_reentrant=False)
        return self.model.head(h)

    def step(self, batch: Batch) -> StepStats:
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * lr_factor(self.cfg, self.ctx.budget_fraction())
        if not self.model.training:  # predict() switched to eval; train() walks every module
            self.model.train()
        with self._autocast():
            loss = self.ctx.task.loss(self._forward(batch.inputs), batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return StepStats(
            loss=loss.item(), examples=batch.size, forward_equivalents=4.0 if self.cfg.checkpoint else 3.0
        )

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        with self._autocast():
            return self.model(inputs).float()

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        return {"optimizer_state": optimizer_state_tensors(self.optimizer)}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
