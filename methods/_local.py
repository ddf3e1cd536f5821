"""Pieces shared by the layer-local paradigms (predictive coding, local learning).

- `WeightOptimizer`, `make_optimizer`, `set_lr`: re-exported from methods/_optim.py, the
  optimizer keys and schedule every gradient-using paradigm shares (backprop's).
- `block_shapes`: the per-example shape of the stem's and every block's output, read off
  one forward pass (a flat vector for the MLP, [tokens, dim] for the ViT).
- `seeded`: builds modules (auxiliary heads) from the method's generator alone
  (harness.interface.seeded_init, re-exported).
- `has_parameters`: whether a module learns anything (the MLP's stem, a Flatten, does not);
  `num_classes`: the task's classes, checked.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from harness.interface import BlockModel, SetupContext
from harness.interface import seeded_init as seeded  # noqa: F401  (re-exported for the methods)
from methods._optim import WeightOptimizer, make_optimizer, set_lr  # noqa: F401  (re-exported)


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


def hebbian_update(layer: nn.Linear, x: Tensor, u: Tensor, rule: str, tau: float,
                   into: Tensor | None = None, alpha: float = 1.0) -> Tensor:
    """The Hebbian weight increment of `layer` for inputs x and pre-activations u = W x + b.
    `into`: returns into + alpha x the increment, from one GEMM that adds (addmm) and one fused
    pass over the weight's shape, instead of four weight-sized temporaries."""
    x, u = x.flatten(0, -2), u.flatten(0, -2)  # examples (and tokens) as rows
    w, n = layer.weight, x.shape[0]
    if rule == "oja":  # subspace rule: y x^T - y y^T W, y = u
        if into is None:
            return (u.T @ x - (u.T @ u) @ w) / n
        return torch.addmm(torch.addmm(into, u.T, x, alpha=alpha / n), u.T @ u, w, alpha=-alpha / n)
    y = torch.softmax(u / tau, dim=1)  # SoftHebb: soft winner-take-all over the neurons
    if into is None:
        return (y.T @ x - (y * u).sum(0).unsqueeze(1) * w) / n
    return torch.addmm(into, y.T, x, alpha=alpha / n).addcmul_((y * u).sum(0).unsqueeze(1), w, value=-alpha / n)
