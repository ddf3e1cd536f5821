"""<Paradigm name>: one line on what it is.

Copy this file to methods/<name>.py (the file name, the registered name, the results
and the report column are all <name>) and replace every <...>. Files starting with "_"
are not registered, so this template never shows up in `bench list methods`.

Paper: <Authors (year). Title. Venue. arXiv id>.
Reference code read: <repository>, <file> (learned from, not copied).

Deviations from the paper (every one, with the reason):
- <e.g. Adam instead of the paper's SGD, because ...>

forward_equivalents per step: <how a step's cost counts in full-model forward passes>.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method


@dataclass(frozen=True)
class TemplateConfig:
    """The paper's hyper-parameters as defaults; `__post_init__` rejects impossible values."""

    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@register_method("<name>")
class Template:
    supports = frozenset({"classify"})  # task kinds this paradigm can train (harness/interface.py TaskKind)
    Config = TemplateConfig
    # Optional hooks, each declared in harness/interface.py (delete what you do not need):
    # memory_variants = ({"checkpoint": True},)  # MemoryVariants: cheaper-memory settings a memory claim tries
    # def describe(self) -> dict[str, Any]: ...   # Describable: what the record says about this agent
    # Control methods (kind "control") define reset/act/observe instead of step/predict (ControlMethod).

    def setup(self, ctx: SetupContext) -> None:
        # ctx.model is a BlockModel (stem, blocks, head); ctx.generator is the only
        # randomness you may use; ctx.budget_fraction() drives schedules.
        self.ctx = ctx
        self.model = ctx.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=ctx.config.lr)

    def step(self, batch: Batch) -> StepStats:
        # One update on one batch: no loop over the data, no evaluation, no timing here.
        loss = self.ctx.task.loss(self.model(batch.inputs), batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return StepStats(loss=loss.item(), examples=batch.size, forward_equivalents=3.0)

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        return self.model(inputs)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        # Every tensor kept besides the model's parameters and gradients (optimizer state,
        # auxiliary heads, value nodes), so the memory ledger counts it. Required.
        return {"optimizer": optimizer_state_tensors(self.optimizer)}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
