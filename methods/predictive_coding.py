"""Predictive coding: value nodes relax to lower an energy of local prediction errors, then
each layer learns from its own error alone.

Papers: Whittington, J. C. R. & Bogacz, R. (2017). An approximation of the error
backpropagation algorithm in a predictive coding network with local Hebbian synaptic
plasticity. Neural Computation 29(5). Pinchetti, L. et al. (2024). Benchmarking Predictive
Coding Networks -- Made Simple (pcx). arXiv:2407.01163 (ICLR 2025). Incremental PC:
Salvatori, T. et al. (2024). A stable, fast, and fully automatic learning algorithm for
predictive coding networks. ICLR 2024.
Reference code read: liukidar/pcx, examples/discriminative_experiments/MLP/fmnist (PC_SE.py,
PC_CE.py and the tuned L_PC_SE / L_iPC_SE configs; learned from, not copied).

The model is a chain of layers f_1..f_n: the stem when it has parameters (the ViT's patch
embedding; the MLP's Flatten has none, so its output is the clamped input x_0), every block,
and the head. There is a value node x_k for the output of every layer but the last (a
flat vector for the MLP, [tokens, dim] for the ViT). The energy of one example is

    E = sum_{k<n} 1/2 ||x_k - f_k(x_{k-1})||^2  +  L_out(f_n(x_{n-1}), y),

with L_out the squared error 1/2 ||onehot(y) - f_n(x_{n-1})||^2 ("se", as Whittington &
Bogacz and pcx's PC-SE) or the cross-entropy of the logits ("ce", pcx's PC-CE): the output
node is clamped to the target. One step on a batch:
1. x_k start at the feedforward pass (pcx's init): only the output error is non-zero;
2. T inference steps: SGD with momentum on every value node along -dE/dx_k =
   -(e_k - J_{k+1}^T e_{k+1}) (e_k = x_k - f_k(x_{k-1})), each step per example;
3. the weights of layer k descend dE_k/dW_k, which uses its own error e_k and its own
   (detached) input x_{k-1} only: the local Hebbian-like rule of the paper (AdamW in pcx).
Incremental PC (`incremental=true`): the weights descend dE/dW at each of the T inference
steps, from the same errors the value nodes use (no separate learning phase).

Locality is structural: every energy term is built from leaf value nodes, so its autograd
graph reaches one layer's parameters and two value nodes, and each term is differentiated
and freed before the next (tests/test_predictive_coding.py walks these graphs). The errors
reach the lower layers only through the relaxation, one layer per inference step: with
T=1 only the top layers learn; with many small steps the updates approach backprop's.

Prediction is the feedforward pass, the standard PC prediction: with the output unclamped
the energy's minimum is at x_k = f_k(x_{k-1}), every error zero, which is the forward pass.

Defaults follow pcx's tuned PC-SE config for the Fashion-MNIST MLP (T=5, value-node SGD with
momentum 0.1, AdamW on the weights, 10% warm-up, cosine to 0.1x), with the two rates re-tuned
on this harness's validation split for its 5-epoch budget (see Results). At these small
inference rates the errors that reach layer k after T steps are small multiples of
backprop's gradient there and AdamW undoes the scale: PC then trains about as well as
backprop, an approximation built from local quantities (the test shows where it departs).

Deviations (every one, with the reason):
- lr 1e-3 and inference_lr 0.05 instead of pcx's ~3e-4 and 0.026 (tuned on validation for
  the harness's 5-epoch budget; suites/predictive-coding.yaml keeps pcx's values).
- The inference rate is per example: x-gradients are of the batch's *summed* energy, the
  weight gradients of its *mean*, so neither rate depends on the batch size.
- The learning-rate schedule is the harness's (linear warm-up from 0, cosine to
  lr * min_lr_ratio, driven by the budget fraction), not pcx's warm-up from 1.0x to 1.1x.
- The models are the harness's (ReLU MLP, pre-norm ViT), not pcx's 3x128 GELU MLP; the
  suite suites/predictive-coding.yaml uses pcx's widths; ReLU stays (vision_models fixes it).
- The first layer's prediction from the clamped input is computed once per batch and kept
  through the inference phase (it cannot change there); pcx recomputes it. Same numbers.
- ViT (not in the papers): value nodes are the stem's and every block's output tokens.
- Selection by validation accuracy (the harness's rule), where pcx reports the best test
  accuracy over epochs.

forward_equivalents per step, with backprop's convention (a forward pass 1, a backward pass
1 per kind of gradient it computes, to the inputs and to the weights: backprop 3). With c_1
and c_n the first and the output layer's shares of a forward pass's FLOPs (measured once in
setup): standard PC runs the initialising forward pass (1); the first inference step
differentiates the output term only (2 c_n: the hidden errors are still zero); T-1 more steps
run forward and back to the nodes through every layer but the first, whose prediction from
the clamped input is cached (2 (1 - c_1) each); the learning sweep runs forward and back to
the weights (2): 3 + 2 c_n + 2 (T-1)(1 - c_1), about 5 for the 784-256-256-10 MLP and 11 for
the ViT at T=5. iPC recomputes the first layer (its weights move) and differentiates nodes
and weights at every step: 1 + 3 c_n + (T-1)(3 - c_1). The measured FLOPs are in the record.

Results (test accuracy of the validation-selected state, mean +- std over 3 seeds, defaults,
CPU, threads=1; issue 6):
- digits (`bench run suite=vision-vit method=predictive_coding profile=quick threads=1`):
  MLP 0.9796 +- 0.0043 (backprop 0.9666 +- 0.0074), ViT 0.9276 +- 0.0028 (backprop 0.9322 +- 0.0113).
- Fashion-MNIST MLP, 5 epochs (the vision-vit budget; the command with
  `'tasks={mlp: {task: fashion_mnist, model: mlp, mlp: {hidden: [256, 256]}}}'`):
  0.8865 +- 0.0001 (backprop 0.8870 +- 0.0003, local_learning 0.8874 +- 0.0014).
- Fashion-MNIST ViT: not run (551 ms/step against backprop's 113 at depth 4, batch 128: about
  20 minutes per seed on the shared 2-core machine).
- suites/predictive-coding.yaml (pcx's 3x128 MLP and settings, 25 epochs, one seed): 0.8887
  (local_learning 0.8951, backprop 0.8882).
pcx reports, for its 3x128 MLP on Fashion-MNIST after 25 epochs, about 89% for PC-SE, PC-CE,
iPC and backprop alike (our recollection of its Table 1, not re-checked here: the table
could not be retrieved offline). suites/predictive-coding.yaml reproduces those settings.
Tuning (one seed, validation accuracy): Fashion-MNIST MLP lr 3e-4/1e-3/2e-3 at inference_lr
0.1: 0.886/0.888/0.888; inference_lr 0.05: 0.895, 0.3: 0.845 (unstable); output ce: 0.887.
Digits ViT lr 1e-3: inference_lr 0.3/0.1/0.05/0.025: 0.57/0.906/0.933/0.939; lr 2e-3: 0.74
(unstable); output ce: 0.41.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method
from methods._local import WeightOptimizer, has_parameters, make_optimizer, num_classes, set_lr


@dataclass(frozen=True)
class PredictiveCodingConfig(WeightOptimizer):
    inference_steps: int = 5  # T (pcx PC-SE Fashion-MNIST MLP: 5; iPC: 8)
    inference_lr: float = 0.05  # SGD rate of the value nodes, per example (pcx: 0.026)
    inference_momentum: float = 0.1  # pcx: 0.1
    output_energy: Literal["se", "ce"] = "se"
    incremental: bool = False  # iPC: a weight update at every inference step
    lr: float = 1e-3  # pcx: ~3e-4 over 25 epochs; 1e-3 tuned for 5
    weight_decay: float = 2e-3  # pcx: ~1.8e-3
    warmup: float = 0.1  # pcx: 10% warm-up
    min_lr_ratio: float = 0.1  # pcx: cosine down to 0.1x

    def __post_init__(self) -> None:
        self.check_optimizer()
        if self.inference_steps < 1:
            raise ValueError(f"inference_steps (T) must be >= 1, got {self.inference_steps}")
        if self.inference_lr <= 0:
            raise ValueError(f"inference_lr must be > 0, got {self.inference_lr}")
        if not 0 <= self.inference_momentum < 1:
            raise ValueError(f"inference_momentum must be in [0, 1), got {self.inference_momentum}")
        if self.output_energy not in ("se", "ce"):
            raise ValueError(f"output_energy must be se or ce, got {self.output_energy!r}")


@register_method("predictive_coding")
class PredictiveCoding:
    supports = frozenset({"classify"})
    Config = PredictiveCodingConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg, self.model = ctx, ctx.config, ctx.model
        self.num_classes = num_classes(ctx, "predictive_coding")  # the output node is one-hot
        # f_1..f_n: a stem without parameters (Flatten) is part of the clamped input instead.
        self.stem_is_layer = has_parameters(self.model.stem)
        self.layers: list[nn.Module] = ([self.model.stem] if self.stem_is_layer else []) + \
            [*self.model.blocks, self.model.head]
        self.optimizer = make_optimizer(self.model.parameters(), self.cfg)
        self.flop_share = self._flop_shares(ctx.task.describe()["input_shape"])
        self.nodes: list[Tensor] = []  # value nodes x_1..x_{n-1} of the last step
        self.velocity: list[Tensor] = []  # their momentum buffers

    @torch.no_grad()
    def _flop_shares(self, input_shape: tuple[int, ...]) -> list[float]:
        """Each layer's share of the forward pass's FLOPs, for forward_equivalents."""
        h = torch.zeros(1, *input_shape, device=self.ctx.device)
        h = h if self.stem_is_layer else self.model.stem(h)
        counts = []
        for layer in self.layers:
            with FlopCounterMode(display=False) as counter:
                h = layer(h)
            counts.append(counter.get_total_flops())
        return [c / max(1, sum(counts)) for c in counts]

    # ---------------------------------------------------------------- energy

    def local_energy(self, k: int, x_prev: Tensor, x_k: Tensor | None, targets: Tensor) -> Tensor:
        """Energy of layer k summed over the batch, from its input node and its own node
        (None for the output layer, whose node is clamped to the targets)."""
        prediction = self.layers[k](x_prev)
        if x_k is not None:
            return 0.5 * (x_k - prediction).pow(2).sum()
        if self.cfg.output_energy == "ce":
            return F.cross_entropy(prediction, targets, reduction="sum")
        onehot = F.one_hot(targets, self.num_classes).to(prediction.dtype)
        return 0.5 * (onehot - prediction).pow(2).sum()

    @torch.no_grad()
    def _init_nodes(self, x0: Tensor) -> None:
        """The feedforward pass: every node at its prediction, every hidden error zero.
        The first layer's prediction f_1(x_0) is kept: its input is clamped, so until the
        weights move (standard PC's inference phase) it is a constant."""
        self.nodes, h = [], x0
        for layer in self.layers[:-1]:
            h = layer(h)
            self.nodes.append(h.requires_grad_())
        self.first_prediction = self.nodes[0].detach().clone()
        self.velocity = [torch.zeros_like(x) for x in self.nodes]

    def _sweep(self, x0: Tensor, targets: Tensor, infer: bool, learn: bool, first: bool) -> float:
        """Differentiate every layer's energy term on its own (its graph is freed before the
        next is built); `infer` moves the value nodes one SGD step, `learn` accumulates the
        weight gradients. `first`: the hidden errors are still zero (the nodes were just
        initialised), so only the output term is differentiated.
        Returns the output energy per example."""
        n, size = len(self.layers), x0.shape[0]
        output_energy = 0.0
        for k in range(n - 1, n) if first else range(n):
            x_prev = x0 if k == 0 else self.nodes[k - 1]
            x_k = self.nodes[k] if k < n - 1 else None
            if k == 0 and not learn and x_k is not None:  # f_1(x_0) is fixed: no forward needed
                energy = 0.5 * (x_k - self.first_prediction).pow(2).sum()
            else:
                energy = self.local_energy(k, x_prev, x_k, targets)
            inputs = [x for x in (x_prev if k > 0 else None, x_k) if x is not None] if infer else []
            inputs += [p for p in self.layers[k].parameters() if p.requires_grad] if learn else []
            if inputs:  # weights descend the batch-mean energy; nodes get x.grad * size below
                (energy / size).backward(inputs=inputs)
            if k == n - 1:
                output_energy = energy.item() / size
        if infer:
            with torch.no_grad():
                for x, v in zip(self.nodes, self.velocity):
                    if x.grad is not None:  # per-example gradient of the summed energy
                        v.mul_(self.cfg.inference_momentum).add_(x.grad, alpha=size)
                        x.grad = None
                    else:
                        v.mul_(self.cfg.inference_momentum)
                    x.sub_(self.cfg.inference_lr * v)
        return output_energy

    # ---------------------------------------------------------------- the update

    def step(self, batch: Batch) -> StepStats:
        cfg = self.cfg
        set_lr(self.optimizer, cfg, self.ctx.budget_fraction())
        if not self.model.training:
            self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            x0 = batch.inputs if self.stem_is_layer else self.model.stem(batch.inputs)
        self._init_nodes(x0)
        loss = 0.0
        for t in range(cfg.inference_steps):
            energy = self._sweep(x0, batch.targets, infer=True, learn=cfg.incremental, first=t == 0)
            loss = energy if t == 0 else loss  # the feedforward pass's loss
            if cfg.incremental:  # iPC: the weights move with the nodes, at every step
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        if not cfg.incremental:  # PC: learn once the nodes have relaxed
            self._sweep(x0, batch.targets, infer=False, learn=True, first=False)
            self.optimizer.step()
        T, c_1, c_n = cfg.inference_steps, self.flop_share[0], self.flop_share[-1]
        if cfg.incremental:  # see the module docstring
            forwards = 1 + 3 * c_n + (T - 1) * (3 - c_1)
        else:
            forwards = 1 + 2 * c_n + 2 * (T - 1) * (1 - c_1) + 2
        return StepStats(loss=loss, examples=batch.size, forward_equivalents=forwards)

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        return self.model(inputs)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        first = [self.first_prediction] if self.nodes else []
        return {"optimizer_state": optimizer_state_tensors(self.optimizer), "value_nodes": list(self.nodes),
                "value_node_momentum": list(self.velocity), "first_layer_prediction": first}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
