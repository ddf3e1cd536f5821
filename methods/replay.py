"""Experience replay: backprop on each batch together with a few remembered examples.

Papers: Chaudhry, A., Rohrbach, M., Elhoseiny, M., Ajanthan, T., Dokania, P. K., Torr,
P. H. S. & Ranzato, M. (2019). On Tiny Episodic Memories in Continual Learning.
arXiv:1902.10486 (ER with a reservoir buffer, Algorithm 1). Rolnick, D., Ahuja, A.,
Schwarz, J., Lillicrap, T. & Wayne, G. (2019). Experience Replay for Continual
Learning. NeurIPS.

One step on a batch B (size n), as in Chaudhry et al.'s Algorithm 1:
- draw a batch B_M of min(n, |M|) examples from the memory M, without replacement;
- one backprop update (methods/backprop.py, unchanged: same optimizer, schedule,
  options) on the concatenation B + B_M;
- then offer every example of B to M by reservoir sampling (Vitter, 1985): the k-th
  example of the stream is kept with probability buffer_size / k, in a uniformly chosen
  slot, so M is always a uniform sample of everything seen. No task boundaries are used.

Deviations: none in the rule; the optimizer and its defaults are backprop's (AdamW)
rather than the paper's plain SGD, so replay differs from the fine-tuning baseline only
by the memory. All randomness comes from the harness's generator (ctx.generator).

Counting: `examples` are the stream's examples only (n), so a budget gives replay the
same data as fine-tuning; `forward_equivalents` count the replayed ones too,
3 x (n + |B_M|) / n (4 x with checkpointing), as the model processes both. The buffer's
inputs and labels are declared to the memory ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from harness.interface import Batch, SetupContext, StepStats
from harness.registry import register_method
from methods.backprop import Backprop, BackpropConfig


@dataclass(frozen=True)
class ReplayConfig(BackpropConfig):
    buffer_size: int = 200  # examples remembered (a tiny memory: 20 per class for 10 classes)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {self.buffer_size}")


@register_method("replay")
class Replay(Backprop):
    supports = frozenset({"classify"})
    Config = ReplayConfig

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)
        self.memory_x: Tensor | None = None  # allocated at the first batch, when the shapes are known
        self.memory_y: Tensor | None = None
        self.filled = 0  # slots in use
        self.seen = 0  # stream examples offered so far

    def step(self, batch: Batch) -> StepStats:
        replayed = self._recall(batch.size)
        joint = batch if replayed is None else Batch(torch.cat([batch.inputs, replayed.inputs]),
                                                     torch.cat([batch.targets, replayed.targets]))
        stats = super().step(joint)
        self._remember(batch)
        return StepStats(loss=stats.loss, examples=batch.size,
                         forward_equivalents=stats.forward_equivalents * joint.size / batch.size,
                         kind="update" if replayed is None else "replay")  # the meter probes both sizes

    def _recall(self, n: int) -> Batch | None:
        if self.filled == 0:
            return None
        assert self.memory_x is not None and self.memory_y is not None
        index = torch.randperm(self.filled, generator=self.ctx.generator)[:n].to(self.memory_x.device)
        return Batch(self.memory_x[index], self.memory_y[index])

    @torch.no_grad()
    def _remember(self, batch: Batch) -> None:
        size = self.cfg.buffer_size
        if self.memory_x is None:
            self.memory_x = batch.inputs.new_empty((size, *batch.inputs.shape[1:]))
            self.memory_y = batch.targets.new_empty((size, *batch.targets.shape[1:]))
        assert self.memory_y is not None
        free = min(batch.size, size - self.filled)  # while the memory fills, every example is kept
        self.memory_x[self.filled : self.filled + free] = batch.inputs[:free]
        self.memory_y[self.filled : self.filled + free] = batch.targets[:free]
        self.filled += free
        self.seen += free
        rest = batch.size - free
        if rest == 0:
            return
        # The k-th stream example (1-based) takes slot j ~ U{0..k-1} when j < size (Vitter's algorithm R).
        counts = self.seen + torch.arange(1, rest + 1, dtype=torch.float64)
        slots = (torch.rand(rest, generator=self.ctx.generator, dtype=torch.float64) * counts).long()
        self.seen += rest
        for row, slot in zip((free + torch.nonzero(slots < size).flatten()).tolist(),
                             slots[slots < size].tolist()):  # in stream order: a later example wins a slot
            self.memory_x[slot] = batch.inputs[row]
            self.memory_y[slot] = batch.targets[row]

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        memory = [t for t in (self.memory_x, self.memory_y) if t is not None]
        return {**super().memory_buffers(), "replay_memory": memory}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory_x": self.memory_x, "memory_y": self.memory_y,
                "filled": self.filled, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.memory_x, self.memory_y = (None if t is None else t.to(self.ctx.device, copy=True)
                                        for t in (state["memory_x"], state["memory_y"]))
        self.filled, self.seen = state["filled"], state["seen"]
