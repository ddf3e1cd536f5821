"""The layered Gaussian energy and its relaxation, shared by predictive coding and the
continuous variant of active inference (methods/predictive_coding.py describes the algorithm
and its cost; methods/active_inference.py adds learned precisions).

The model is a chain of layers f_1..f_n (the stem when it has parameters, every block, the
head) with a value node x_k for the output of every layer but the last. Layer k's energy
term is pi_k * 1/2 ||x_k - f_k(x_{k-1})||^2 summed over the batch (the output's is the
squared error to the one-hot target, or the cross-entropy), with pi_k from `precision(k)`:
1 for predictive coding, exp(lambda_k) for active inference. `step` relaxes the nodes and
learns the weights (once after relaxing, or at every inference step for iPC); after every
learning sweep it hands each layer's energy to `learned`, the hook where a
subclass updates what else it learns (active inference: the precisions).

Locality is structural: every layer's prediction is built from a leaf value node, so its
autograd graph reaches one layer's parameters and that one input node; each term's gradient
for its prediction and its own node is written down in closed form (an error, e_k), and one
backward call per sweep carries the errors back through every layer at once, each graph
freed by it (tests/test_predictive_coding.py walks these graphs, and checks the weights
against differentiating each whole term on its own).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from methods._local import has_parameters, make_optimizer, num_classes, set_lr


def dense_layer(layer: nn.Module) -> tuple[nn.Linear, bool] | None:
    """(its Linear, whether a ReLU follows) for a Linear or a Linear -> ReLU; None otherwise."""
    if isinstance(layer, nn.Linear):
        return layer, False
    if (isinstance(layer, nn.Sequential) and len(layer) == 2 and isinstance(layer[0], nn.Linear)
            and type(layer[1]) is nn.ReLU):
        return layer[0], True
    return None


class LayeredEnergy:
    """Value nodes over a BlockModel's layers, relaxed by SGD with momentum (pcx's scheme).

    The config needs predictive coding's keys (PredictiveCodingConfig): inference_steps,
    inference_lr, inference_momentum, output_energy, incremental and the optimizer's."""

    name = "layered_energy"

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg, self.model = ctx, ctx.config, ctx.model
        self.num_classes = self.output_classes()  # the output node is one-hot
        # f_1..f_n: a stem without parameters (Flatten) is part of the clamped input instead.
        self.stem_is_layer = has_parameters(self.model.stem)
        self.layers: list[nn.Module] = ([self.model.stem] if self.stem_is_layer else []) + \
            [*self.model.blocks, self.model.head]
        self.optimizer = make_optimizer(self.model.parameters(), self.cfg)
        self.flop_share = self._flop_shares()
        self.nodes: list[Tensor] = []  # value nodes x_1..x_{n-1} of the last step
        self.velocity: list[Tensor] = []  # their momentum buffers
        self._onehot: tuple[Tensor, Tensor] | None = None  # (targets, their one-hot) of the last batch
        # A subclass that defines its own output energy (the language model's) is differentiated
        # by autograd there; the base class's output term has a closed-form gradient (output_term).
        self.closed_form_output = type(self).local_energy is LayeredEnergy.local_energy
        # Every layer a Linear, or a Linear -> ReLU (the MLP): its vector-Jacobian product is
        # written out (`_vjp_by_hand`) and no autograd graph is built at all (see `_sweep`).
        self.dense = [dense_layer(layer) for layer in self.layers]
        self.by_hand = self.closed_form_output and all(d is not None for d in self.dense)

    def output_classes(self) -> int:
        """Width of the output node (a classifier's classes; a language model's vocabulary)."""
        return num_classes(self.ctx, self.name)

    def probe_input(self) -> Tensor:
        """One all-zero input of the task's shape and dtype, for the shape and FLOP probes."""
        return torch.zeros(1, *self.ctx.task.describe()["input_shape"], device=self.ctx.device)

    @torch.no_grad()
    def _flop_shares(self) -> list[float]:
        """Each layer's share of the forward pass's FLOPs, for forward_equivalents."""
        h = self.probe_input()
        h = h if self.stem_is_layer else self.model.stem(h)
        counts = []
        for layer in self.layers:
            with FlopCounterMode(display=False) as counter:
                h = layer(h)
            counts.append(counter.get_total_flops())
        return [c / max(1, sum(counts)) for c in counts]

    # ------------------------------------------------------------ the energy

    def precision(self, k: int) -> float:
        """pi_k, the weight of layer k's energy term (a Python float: not differentiated)."""
        return 1.0

    def inference_scale(self, k: int) -> float:
        """Multiplies the inference rate of node x_k (1 here; active inference preconditions)."""
        return 1.0

    def learned(self, energies: list[Tensor | None]) -> None:
        """Called after every learning sweep with each layer's unweighted energy per example
        (1/2 ||e_k||^2 for a hidden layer; None where the sweep did not compute it)."""

    def local_energy(self, k: int, x_prev: Tensor, x_k: Tensor | None, targets: Tensor) -> Tensor:
        """Unweighted energy of layer k summed over the batch, from its input node and its own
        node (None for the output layer, whose node is clamped to the targets)."""
        prediction = self.layers[k](x_prev)
        if x_k is not None:
            return 0.5 * (x_k - prediction).pow(2).sum()
        if self.cfg.output_energy == "ce":
            return F.cross_entropy(prediction, targets, reduction="sum")
        onehot = F.one_hot(targets, self.num_classes).to(prediction.dtype)
        return 0.5 * (onehot - prediction).pow(2).sum()

    @torch.no_grad()
    def output_term(self, prediction: Tensor, targets: Tensor, energy: bool) -> tuple[Tensor | None, Tensor]:
        """(the output layer's unweighted energy summed over the batch, or None unless `energy`;
        its gradient with respect to the prediction), in closed form: `local_energy`'s output term."""
        if self._onehot is None or self._onehot[0] is not targets:  # once per batch
            self._onehot = (targets, F.one_hot(targets, self.num_classes).to(prediction.dtype))
        onehot = self._onehot[1]
        if self.cfg.output_energy == "ce":
            value = F.cross_entropy(prediction, targets, reduction="sum") if energy else None
            return value, prediction.softmax(1) - onehot
        error = prediction - onehot
        return (0.5 * error.pow(2).sum() if energy else None), error

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

    def prediction(self, k: int, x_prev: Tensor) -> Tensor:
        """f_k(x_{k-1}), with its autograd graph (the only graph a sweep builds)."""
        return self.layers[k](x_prev)

    def _sweep(self, x0: Tensor, targets: Tensor, infer: bool, learn: bool, first: bool) -> list[Tensor | None]:
        """One pass over the layers' energy terms: `infer` moves the value nodes one SGD step,
        `learn` accumulates the weight gradients. `first`: the hidden errors are still zero
        (the nodes were just initialised), so only the output term is differentiated.

        A hidden term pi_k/2 ||x_k - f_k(x_{k-1})||^2 has, in closed form, the gradient
        pi_k e_k for its own node x_k (e_k = x_k - f_k(x_{k-1})) and -pi_k e_k for the
        prediction f_k; the output term's gradient for its prediction is closed-form too
        (`output_term`). Autograd carries only these back through each layer (a
        vector-Jacobian product into x_{k-1} and W_k), where the graph of every term itself
        (subtract, square, sum, scale) used to be built and differentiated each sweep. All
        terms go through one backward call: each graph reaches one layer's weights and its
        input node only (leaves), so a weight's gradient comes from its own term alone, and a
        node's gradient is the sum of the two terms it enters: its own error (closed form)
        and the layer above's (the VJP). On the small MLP the per-call and per-node overhead
        of autograd was most of a sweep; the numbers are those of differentiating each term
        alone, to float rounding (tested against that reference in
        tests/test_predictive_coding.py).

        Returns each layer's unweighted energy per example, detached, where it is read: the
        output's in the first sweep (the step's loss), every layer's in learning sweeps (what
        `learned` reads); None elsewhere."""
        n, size = len(self.layers), x0.shape[0]
        energies: list[Tensor | None] = [None] * n
        errors: list[Tensor | None] = [None] * (n - 1)  # e_k of the hidden terms built
        roots: list[Tensor] = []
        root_grads: list[Tensor | None] = []
        inputs: list[Tensor] = []
        terms: list[tuple[int, Tensor, Tensor, Tensor]] = []  # by hand: (k, x_{k-1}, f_k, d(pi_k E_k/size)/d f_k)
        for k in range(n - 1, n) if first else range(n):
            x_prev = x0 if k == 0 else self.nodes[k - 1]
            needs = ([x_prev] if infer and k > 0 else []) + \
                ([p for p in self.layers[k].parameters() if p.requires_grad] if learn else [])
            inputs += needs
            if k == n - 1 and not self.closed_form_output:  # autograd through the whole term
                energy = self.local_energy(k, x_prev, None, targets)
                if needs:
                    roots.append(self.precision(k) * energy / size)  # weights descend the batch-mean energy
                    root_grads.append(None)
                energies[k] = energy.detach() / size
                continue
            if k == 0 and k < n - 1 and not learn:  # f_1(x_0) is fixed: no forward needed
                prediction = self.first_prediction
            else:
                with torch.set_grad_enabled(not self.by_hand):
                    prediction = self.prediction(k, x_prev)
            scale = self.precision(k) / size  # weights descend the batch-mean energy
            with torch.no_grad():
                if k == n - 1:  # the output energy: read for the loss (first sweep) and by `learned`
                    energy, gradient = self.output_term(prediction, targets, energy=first or learn)
                    energies[k] = None if energy is None else energy / size
                    gradient = gradient * scale if needs else None
                else:  # d E_k / d f_k = -e_k
                    error = errors[k] = self.nodes[k] - prediction
                    gradient = error * -scale if needs else None
                    if learn:
                        energies[k] = 0.5 * error.pow(2).sum() / size
            if needs and self.by_hand:
                terms.append((k, x_prev, prediction, gradient))
            elif needs:  # d(pi_k E_k / size) / d f_k
                roots.append(prediction)
                root_grads.append(gradient)
        if terms:
            self._vjp_by_hand(terms, infer, learn)
        elif inputs:  # nodes get x.grad * size below (per-example gradients of the summed energy)
            torch.autograd.backward(roots, root_grads, inputs=inputs)
        if infer:
            with torch.no_grad():
                m = self.cfg.inference_momentum
                for k, (x, v) in enumerate(zip(self.nodes, self.velocity)):
                    v.mul_(m)
                    if errors[k] is not None:  # its own term: d(pi_k E_k)/dx_k = pi_k e_k
                        v.add_(errors[k], alpha=self.precision(k))
                    if x.grad is not None:  # the layer above's term, through its VJP
                        v.add_(x.grad, alpha=size)
                        x.grad = None
                    x.sub_(v, alpha=self.cfg.inference_lr * self.inference_scale(k))
        return energies

    @torch.no_grad()
    def _vjp_by_hand(self, terms: list[tuple[int, Tensor, Tensor, Tensor]], infer: bool, learn: bool) -> None:
        """What autograd's backward does for Linear (-> ReLU) layers, written out: the gradient
        for f_k through the ReLU (zero where the output is zero, autograd's own rule), then
        into the input node (g W) and the weights (g^T x_{k-1}, bias: the sum over the batch).
        On the MLP this is the whole backward, without building or walking a graph."""
        for k, x_prev, prediction, gradient in terms:
            linear, relu = self.dense[k]  # type: ignore[misc]
            if relu:
                gradient = torch.ops.aten.threshold_backward(gradient, prediction, 0)
            grads = [(self.nodes[k - 1], gradient @ linear.weight)] if infer and k > 0 else []
            if learn:
                grads += [(linear.weight, gradient.T @ x_prev)]
                grads += [(linear.bias, gradient.sum(0))] if linear.bias is not None else []
            for x, g in grads:
                if x.requires_grad:
                    x.grad = g if x.grad is None else x.grad.add_(g)

    # ------------------------------------------------------------ the update

    def step(self, batch: Batch) -> StepStats:
        cfg = self.cfg
        set_lr(self.optimizer, cfg, self.ctx.budget_fraction())
        if not self.model.training:
            self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            x0 = batch.inputs if self.stem_is_layer else self.model.stem(batch.inputs)
        self._init_nodes(x0)
        loss = None
        for t in range(cfg.inference_steps):
            energies = self._sweep(x0, batch.targets, infer=True, learn=cfg.incremental, first=t == 0)
            loss = energies[-1] if t == 0 else loss  # the feedforward pass's output energy
            if cfg.incremental:  # iPC: the weights move with the nodes, at every step
                self.learned(energies)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        if not cfg.incremental:  # PC: learn once the nodes have relaxed
            energies = self._sweep(x0, batch.targets, infer=False, learn=True, first=False)
            self.learned(energies)
            self.optimizer.step()
        return StepStats(loss=float(loss), examples=batch.size, forward_equivalents=self.forward_equivalents())

    def forward_equivalents(self) -> float:
        """Cost of one step in forward passes (methods/predictive_coding.py derives it)."""
        T, c_1, c_n = self.cfg.inference_steps, self.flop_share[0], self.flop_share[-1]
        if self.cfg.incremental:
            return 1 + 3 * c_n + (T - 1) * (3 - c_1)
        return 1 + 2 * c_n + 2 * (T - 1) * (1 - c_1) + 2

    @torch.no_grad()
    @torch.no_grad()  # the feedforward pass alone: no graph to record (the same values, less time and memory)
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
