"""Backpropagation: the reference baseline every other paradigm is held against.

End-to-end gradient descent on the task's loss (Rumelhart, Hinton & Williams, 1986)
with the ingredients of a strong modern baseline:

- AdamW (Loshchilov & Hutter, 2019) or SGD with (Nesterov-free) momentum;
- linear warm-up then cosine decay (Loshchilov & Hutter, 2017), driven by the
  fraction of the budget spent, so it works for every budget kind;
- decoupled weight decay, optional gradient-norm clipping;
- optional bf16 autocast (mixed precision) and per-block activation checkpointing
  (Chen et al., 2016). Memory claims are held against backprop with these on.

forward_equivalents per step: the step's FLOPs in forward passes, counted once in setup on
one probe example (FlopCounterMode, as the meter counts): a forward (1), the weight gradients
(1) and the gradients to each layer's input (1), except the first layer's, whose input is the
data; with activation checkpointing each block's forward once more. "A backward costs two
forwards" gives 3 (4); the count gives 2.25 on the vision-vit MLP (784-256-256-10: the first
layer is 3/4 of its FLOPs) and ~3 on the ViT (a small patch embedding). Counted, backprop is
budgeted as the methods whose counts are their FLOPs (predictive coding, forward_only, MeZO,
ES) are, so a forward-equivalent budget gives each side the same compute. Tasks without a
float input shape (language models: an embedding lookup has no FLOPs) keep 3 (4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method
from methods._optim import WeightOptimizer, lr_factor, make_optimizer, set_lr  # noqa: F401  (lr_factor: old import path)


@dataclass(frozen=True)
class BackpropConfig(WeightOptimizer):
    """The shared optimizer keys (methods/_optim.py) plus backprop's own."""

    weight_decay: float = 0.01
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    bf16: bool = False  # autocast forward and backward in bfloat16
    checkpoint: bool = False  # recompute each block's activations in the backward pass

    def __post_init__(self) -> None:
        self.check_optimizer()
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")


@register_method("backprop")
class Backprop:
    supports = frozenset({"classify", "lm"})
    Config = BackpropConfig
    # MemoryVariants: a memory claim against backprop also tries it with checkpointing, with bf16
    # autocast and with both, and compares against the variant with the least memory
    memory_variants = ({"checkpoint": True}, {"bf16": True}, {"checkpoint": True, "bf16": True})

    def setup(self, ctx: SetupContext) -> None:
        self.ctx = ctx
        self.cfg: BackpropConfig = ctx.config
        self.model = ctx.model
        self.optimizer = make_optimizer((p for p in self.model.parameters() if p.requires_grad), self.cfg)
        self.fe_per_step = self._forward_equivalents()

    def _forward_equivalents(self) -> float:
        """Counted FLOPs of a forward and the gradients to every trained weight, over a forward's
        (module docstring), on one all-zero example in eval mode: nothing the step sees changes
        (no .grad is written, no normalisation statistic moves, no random number is drawn)."""
        shape = self.ctx.task.describe().get("input_shape")
        if not shape:
            return 4.0 if self.cfg.checkpoint else 3.0
        probe = torch.zeros(1, *shape, device=self.ctx.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        was_training = self.model.training
        self.model.eval()
        try:
            with FlopCounterMode(display=False) as forward, torch.no_grad():
                self.model(probe)
            with FlopCounterMode(display=False) as step:
                torch.autograd.grad(self._forward(probe).float().sum(), params, allow_unused=True)
        finally:
            self.model.train(was_training)
        return step.get_total_flops() / max(1, forward.get_total_flops())

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
        set_lr(self.optimizer, self.cfg, self.ctx.budget_fraction())
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
            loss=loss.item(), examples=batch.size, forward_equivalents=self.fe_per_step
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
