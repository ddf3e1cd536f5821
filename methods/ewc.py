"""Elastic weight consolidation (online EWC): backprop plus a quadratic pull towards old weights.

Papers: Kirkpatrick, J., Pascanu, R., Rabinowitz, N., et al. (2017). Overcoming catastrophic
forgetting in neural networks. PNAS 114(13), 3521-3526 (EWC, eq. 3). Schwarz, J., Czarnecki,
W., Luketina, J., et al. (2018). Progress & Compress: A scalable framework for continual
learning. ICML (online EWC, eq. 7-8). Huszár, F. (2018). Note on the quadratic penalties in
elastic weight consolidation. PNAS 115(11) (why one running penalty is the right recursion).

The algorithm, as online EWC (Schwarz et al.):
- train on the current experience with the task's loss plus the penalty
      lambda / 2 * sum_i F_i (w_i - w*_i)^2
  (no penalty during the first experience, when F = 0);
- at the end of each experience (the continual loop's `end_experience`, the only boundary
  signal: harness/interface `ExperienceAware`), estimate the diagonal Fisher information of
  the model's predictive distribution on that experience's inputs,
      F_new,i = mean_x E_{y ~ p(y|x)} (d log p(y|x) / d w_i)^2,
  then F <- gamma * F + F_new and w* <- the current weights.
With gamma = 1 this is Huszár's corrected form of Kirkpatrick et al.'s sum of per-task
penalties: one running Fisher and one anchor, so memory does not grow with the experiences.

Deviations, each with its reason:
- Online EWC (one penalty, running Fisher) rather than Kirkpatrick et al.'s one penalty per
  task: constant memory, and Huszár (2018) shows the per-task sum double-counts old tasks.
- The Fisher is estimated from the last `fisher_samples` inputs of the experience the method
  saw in its own training stream (a method never reads the dataset), one label sampled per
  input from the model (the "true" Fisher, as Kirkpatrick et al.; not the empirical Fisher of
  the given labels, which Kunstner et al. 2019 show is a poor curvature estimate). The square
  is taken of each example's gradient (one backward pass each), never of a batch mean's.
- The weight optimizer is backprop's (methods/backprop.py, AdamW by default, under the suite's
  schedule rule) rather than the paper's SGD, so EWC differs from the fine-tuning baseline only
  by the penalty, as replay differs only by its memory.
- The consolidation runs lazily, inside the first `step` after the boundary, so the meter times
  it and its cost is counted (that step's kind is "consolidate").

Cost: 3 forward-equivalents per update (the penalty is element-wise); the consolidating step
adds 3 x fisher_samples / batch (one forward and backward per sampled example). Memory: the
Fisher, the anchor weights and the input buffer, all declared to the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from harness.interface import Batch, SetupContext, StepStats
from harness.registry import register_method
from methods.backprop import Backprop, BackpropConfig

CONSOLIDATE = "consolidate"  # the kind of the step that folds in a finished experience's Fisher

@dataclass(frozen=True)
class EWCConfig(BackpropConfig):
    ewc_lambda: float = 100.0  # penalty strength (the paper's lambda); the continual suite sets its tuned value
    gamma: float = 1.0  # decay of the old Fisher at each boundary (online EWC; 1 = keep it all)
    fisher_samples: int = 256  # inputs of the finished experience the Fisher is averaged over

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ewc_lambda < 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {self.ewc_lambda}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.fisher_samples < 1:
            raise ValueError(f"fisher_samples must be at least 1, got {self.fisher_samples}")


class _Penalised:
    """The task as EWC's update sees it: the same in every respect, but its loss carries the penalty."""

    def __init__(self, task: Any, penalty: Callable[[], Tensor | None]) -> None:
        self._task, self._penalty = task, penalty

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        loss = self._task.loss(outputs, batch)
        penalty = self._penalty()
        return loss if penalty is None else loss + penalty


@register_method("ewc")
class EWC(Backprop):
    supports = frozenset({"classify"})
    Config = EWCConfig

    def setup(self, ctx: SetupContext) -> None:
        super().setup(replace(ctx, task=_Penalised(ctx.task, self._penalty)))
        self.cfg: EWCConfig = ctx.config
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.fisher: dict[str, Tensor] | None = None  # None until the first experience ends
        self.anchor: dict[str, Tensor] | None = None
        self.recent: Tensor | None = None  # the latest inputs of the current experience (a ring)
        self.recent_filled = 0  # inputs in the ring since the last boundary
        self.pending = False  # an experience ended: consolidate at the next step

    def end_experience(self) -> str:
        self.pending = True
        return CONSOLIDATE

    def _penalty(self) -> Tensor | None:
        if self.fisher is None or self.anchor is None or self.cfg.ewc_lambda == 0:
            return None
        total = sum(((self.fisher[n] * (p - self.anchor[n]) ** 2).sum() for n, p in self.params.items()),
                    torch.zeros((), device=self.ctx.device))
        return 0.5 * self.cfg.ewc_lambda * total

    def step(self, batch: Batch) -> StepStats:
        consolidated = self._consolidate() if self.pending else 0
        stats = super().step(batch)
        self._keep(batch.inputs)
        if not consolidated:
            return stats
        return replace(stats, forward_equivalents=stats.forward_equivalents + 3.0 * consolidated / batch.size,
                       kind=CONSOLIDATE)

    @torch.no_grad()
    def _keep(self, inputs: Tensor) -> None:
        """Remember the latest `fisher_samples` inputs of the current experience, oldest overwritten."""
        size = self.cfg.fisher_samples
        if self.recent is None:
            self.recent = inputs.new_empty((size, *inputs.shape[1:]))
        inputs = inputs[-size:]
        slots = (self.recent_filled + torch.arange(len(inputs), device=inputs.device)) % size
        self.recent[slots] = inputs
        self.recent_filled += len(inputs)

    def _consolidate(self) -> int:
        """Fold the finished experience's Fisher into the running one and re-anchor; the examples used."""
        self.pending = False
        if self.recent is None or self.recent_filled == 0:
            return 0
        inputs = self.recent[: min(self.recent_filled, self.cfg.fisher_samples)]
        new = self._fisher(inputs)
        self.fisher = new if self.fisher is None else {n: self.cfg.gamma * self.fisher[n] + new[n] for n in new}
        self.anchor = {n: p.detach().clone() for n, p in self.params.items()}
        self.recent_filled = 0  # the next experience's Fisher reads only its own inputs
        return len(inputs)

    def _fisher(self, inputs: Tensor) -> dict[str, Tensor]:
        """Diagonal Fisher of p(y|x) at the current weights, labels sampled from the model.

        One backward pass per example (a loop, not torch.func's vmap, which refuses the
        meter's saved-tensor hooks): the square is of each example's gradient.
        """
        was_training = self.model.training
        self.model.eval()  # the predictive distribution the learner ends the experience with
        names, params = list(self.params), list(self.params.values())
        fisher = [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            probs = torch.softmax(self.model(inputs).float(), dim=-1)
        labels = torch.multinomial(probs.cpu(), 1, generator=self.ctx.generator).squeeze(1).tolist()
        for x, y in zip(inputs, labels):
            log_p = torch.log_softmax(self.model(x.unsqueeze(0)).float(), dim=-1)[0, y]
            for f, g in zip(fisher, torch.autograd.grad(log_p, params, allow_unused=True)):
                if g is not None:
                    f += g.detach() ** 2
        self.model.train(was_training)
        return {n: f / len(inputs) for n, f in zip(names, fisher)}

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        ewc = [*(self.fisher or {}).values(), *(self.anchor or {}).values()]
        return {**super().memory_buffers(), "ewc_fisher_and_anchor": ewc,
                "ewc_input_buffer": [] if self.recent is None else [self.recent]}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fisher": self.fisher, "anchor": self.anchor, "recent": self.recent,
                "recent_filled": self.recent_filled, "pending": self.pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        device = self.ctx.device
        self.fisher, self.anchor = ({n: t.to(device, copy=True) for n, t in d.items()} if d is not None else None
                                    for d in (state["fisher"], state["anchor"]))
        self.recent = None if state["recent"] is None else state["recent"].to(device, copy=True)
        self.recent_filled, self.pending = state["recent_filled"], state["pending"]
