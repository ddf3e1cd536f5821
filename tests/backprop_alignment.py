"""How far a layered-energy method's weight update is from backprop's gradient (issue 18).

`train` runs a method at its defaults for a number of steps on digits (its own schedule,
driven by the step count); `alignment` then takes one step on a fixed batch and compares,
layer by layer, the gradient the method hands its optimizer (summed over the step: iPC
hands one per inference step) with backprop's gradient of the same output loss at the same
weights: (cosine, norm ratio). The norm ratio includes any precision weighting, which
AdamW's per-parameter normalisation undoes; the cosine is what survives it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.interface import Batch, SetupContext
from methods._energy import LayeredEnergy
from suites.tasks.image_classification import DigitsConfig, DigitsTask
from suites.tasks.vision_models import MLPConfig

HIDDEN = (64, 64)  # digits: 64 pixels -> 64 -> 64 -> 10


def digits() -> DigitsTask:
    return DigitsTask(DigitsConfig(mlp=MLPConfig(hidden=HIDDEN)))


def train(method: object, config: object, steps: int, task: DigitsTask) -> object:
    """`method` set up on a fresh seeded model with `config`, after `steps` steps of batch 64."""
    progress = {"step": 0}
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task, config=config,
                              device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                              budget_fraction=lambda: progress["step"] / steps))
    batches = task.train_batches(64, torch.Generator().manual_seed(0))
    for step in range(steps):
        progress["step"] = step
        method.step(next(batches))
    return method


def fixed_batch(task: DigitsTask) -> Batch:
    return next(task.train_batches(64, torch.Generator().manual_seed(123)))


def _flat(parameters) -> Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in parameters])


def alignment(net: LayeredEnergy, batch: Batch) -> list[tuple[float, float]]:
    """Per layer (cosine, norm ratio) of the method's update gradient to backprop's; `net` is untouched."""
    net = copy.deepcopy(net)
    model = copy.deepcopy(net.model)
    outputs = model(batch.inputs)
    if net.cfg.output_energy == "se":  # the output energy per example, as the method's
        loss = 0.5 * (F.one_hot(batch.targets, outputs.shape[1]).to(outputs.dtype) - outputs).pow(2).sum(1).mean()
    else:
        loss = F.cross_entropy(outputs, batch.targets)
    loss.backward()
    layers = ([model.stem] if net.stem_is_layer else []) + [*model.blocks, model.head]
    backprop = [_flat(layer.parameters()) for layer in layers]
    update = [torch.zeros_like(g) for g in backprop]
    optimizer_step = net.optimizer.step

    def recording(*args, **kwargs):
        for total, layer in zip(update, net.layers):
            total += _flat(layer.parameters())
        return optimizer_step(*args, **kwargs)

    net.optimizer.step = recording
    net.step(batch)
    return [(F.cosine_similarity(u, g, dim=0).item(), (u.norm() / g.norm()).item()) for u, g in zip(update, backprop)]


def accuracy(method: object, task: DigitsTask) -> float:
    return task.evaluate(method.predict, "test", torch.device("cpu"))["accuracy"]


def report(name: str, numbers: list[tuple[float, float]], acc: float) -> str:
    layers = ", ".join(f"cos {c:.4f} norm x{r:.3g}" for c, r in numbers)
    return f"{name}: {layers}; digits test accuracy {acc:.4f}"
