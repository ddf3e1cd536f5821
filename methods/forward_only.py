"""Forward-only: Hebbian and contrastive-predictive local rules, every update in closed form, no backward pass.

Papers: Illing, B., Ventura, J., Bellec, G. & Gerstner, W. (2021). Local plasticity rules can
learn deep representations using self-supervised contrastive predictions (CLAPP). NeurIPS 2021.
Journé, A., Rodriguez, H. G., Guo, Q. & Moraitis, T. (2023). Hebbian deep learning without
feedback (SoftHebb). ICLR 2023. Widrow, B. & Hoff, M. E. (1960): the delta rule.
Reference code read: none copied; CLAPP's rule from the paper (eq. 2-4), SoftHebb's as in
methods/_local.py (`hebbian_update`, shared with local_learning).

One step on a batch (x, y), under torch.no_grad(), block by block:
- block k runs once on the previous stage's output (the stem's, for k = 0); z_k is its
  output (the mean over tokens, for a ViT) and the block's trained Linear's input is kept;
- CLAPP, with the previous stage as the context and block k as the "future": a linear
  predictor P_k forecasts z_k from z_{k-1}, score s(i, j) = z_k[j] . P_k z_{k-1}[i]; every
  example i is paired with a positive partner j+ (same class) and a negative j- (other
  class), loss = hinge(1 - s(i, j+)) + hinge(1 + s(i, j-)), averaged over i;
- its gradient, for a single linear layer, in closed form: P_k gets (z_k[j] z_{k-1}[i]^T)
  times -1 (positive) or +1 (negative) where the hinge is active; block k gets the error
  dL/dz_k[j] = -+ P_k z_{k-1}[i] on its partners (the "future" side) and block k-1 the error
  dL/dz_{k-1}[i] = -+ P_k^T z_k[j] (the "context" side), so block k-1 waits for block k's
  forward and is then updated and its kept tensors dropped;
- a block's error becomes its trained Linear's gradient by the local chain rule of that one
  layer: delta = error * relu'(pre-activation) (MLP; for a ViT the layer writes into the
  residual stream, derivative 1, averaged over tokens), dW = delta^T input, db = sum delta;
- SoftHebb (soft winner-take-all Hebbian, tau) on each block's first Linear, minus its
  increment added to that gradient (scaled by `hebbian_weight`);
- the model's head: the delta rule, dW = (softmax(logits) - onehot(y))^T f / N on the
  features f its last Linear reads (the task's cross-entropy gradient of a linear layer).
One AdamW step with backprop's schedule applies every gradient. Prediction: the model's
forward pass (stem, blocks, head); the predictors are training-only.
With `context_error=false` block k-1 gets no context-side error (only the "future" side
learns): every message then goes forward, and `stage_step(first, last, ...)` can run a range
of blocks per process (harness/block_parallel.py, docs/block-parallel.md).

Which weights learn (a block that is not one Linear):
- MLP block (Linear -> ReLU): its Linear, with the CLAPP error and SoftHebb;
- ViT block (pre-norm attention + MLP): its MLP's second Linear (writes into the residual
  stream) with the CLAPP error, its MLP's first Linear with SoftHebb; attention (qkv,
  proj), the LayerNorms and the stem (patch and position embedding) stay at their init;
- the head's last Linear, by the delta rule; the ViT head's LayerNorm stays at its init.

Deviations (every one, with the reason):
- CLAPP pairs a context with its own future (a later frame, a patch below); a classification
  batch has no time, so the "future" is the next block's representation and the positive
  partner is another example of the same class (supervised pairing, as in supervised
  contrastive learning): the local signal then carries class identity, which CLAPP's
  self-supervised pairs would not. An example alone of its class in the batch is its own
  positive; an example in an all-one-class batch gets no negative.
- CLAPP's predictor maps a layer to itself; here P_k maps stage k-1 to block k (so every
  block is both a future and, but the last, a context) and starts at zero, so a block gets
  no future-side error until its predictor has learned something.
- SoftHebb's own adaptive learning rate and weight normalisation are replaced by adding its
  increment to the gradient of one AdamW step (as local_learning's option does).
- Attention, LayerNorms and the ViT stem are not trained: no closed-form single-layer rule
  reaches them without a backward pass through softmax attention; they are random features.
- AdamW with backprop's warm-up and cosine schedule rather than CLAPP's SGD, so paradigms
  differ in the learning rule, not in the optimiser.

forward_equivalents per step: the step's matrix-multiply FLOPs over a forward pass's, worked
out once in setup from the model's shapes (every term is linear in the batch): 1 forward, then
per block k the predictor's forecast and gradient (2 |P_k|, |P_k| = d_{k-1} d_k multiply-adds
per example) and, with context_error, the error it sends back to block k-1 (one more |P_k|,
k > 0), the CLAPP outer product on the pooled input and SoftHebb's over every token, and the
head's delta rule. It is what the meter's FLOP count says (tests/test_forward_only.py):
Fashion-MNIST MLP 784-256-256-10 5.22 (P_0 maps the 784 pixels to the first block: as large as
that layer; the MLP's one Linear per block gets both outer products), the vision-vit ViT 1.26
(the rules work on token means or one Linear per block; attention is never differentiated).
Until issue 23's perf pass it was declared 2 for every model (2.6x too few on the MLP, 1.6x
too many on the ViT). Nothing is kept for a backward pass: the ledger's saved activations are 0.

Results (one seed, defaults, CPU, 1 thread, 700 steps of 64 = the quick profile's 45,000
examples, without its schedule-by-examples runner; test accuracy, backprop lr 2e-3 wd 0.05
beside it): digits MLP 256x256 0.961 (backprop 0.972), head alone on the untrained blocks
(contrastive_weight=0 hebbian_weight=0, 300 steps) 0.891; digits ViT (patch 2, dim 64,
depth 2) 0.273 (backprop 0.925): with attention, LayerNorms and the patch embedding frozen,
mean-pooled random ViT features barely separate digits (head alone: 0.29), and the local
rules on the MLP Linears do not fix that. tests/test_forward_only.py checks the MLP.
Three seeds, `bench run suite=vision-vit method=forward_only profile=quick threads=1` (digits):
MLP 0.9693 +- 0.0128, ViT 0.2693 +- 0.0138 (backprop 0.9666 / 0.9322, local_learning 0.9647 /
0.9480 in the same run's suite). Fashion-MNIST, 5 epochs (the same without profile=quick): MLP
0.7757 +- 0.0021, ViT 0.5924 +- 0.0082 (backprop 0.8870 / 0.8802, local_learning 0.8874 / 0.8659).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method
from methods._local import WeightOptimizer, block_shapes, hebbian_update, make_optimizer, num_classes, set_lr


@dataclass(frozen=True)
class ForwardOnlyConfig(WeightOptimizer):
    lr: float = 2e-3  # backprop's in suites/vision-vit.yaml; not tuned (1e-2 did no better on the digits ViT)
    weight_decay: float = 0.05
    contrastive_weight: float = 1.0  # scale of the CLAPP error; 0 = SoftHebb and the head only
    hebbian_weight: float = 0.1  # scale of the SoftHebb increment; 0 = off
    hebbian_temperature: float = 1.0  # SoftHebb's softmax temperature tau
    margin: float = 1.0  # CLAPP's hinge: positives pushed above +margin, negatives below -margin
    # Block k-1 also learns as P_k's context (the error P_k^T-side, sent back from block k);
    # False: only the "future" side learns, every message goes forward (block-parallel training)
    context_error: bool = True

    def __post_init__(self) -> None:
        self.check_optimizer()
        for key in ("contrastive_weight", "hebbian_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.hebbian_temperature <= 0:
            raise ValueError(f"hebbian_temperature must be > 0, got {self.hebbian_temperature}")
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def block_layers(block: nn.Module, index: int) -> tuple[nn.Linear, nn.Linear, bool]:
    """(SoftHebb layer, CLAPP layer, whether a ReLU follows the CLAPP layer) of a block.

    Linear -> ReLU (the MLP's block): the Linear is both. A residual block whose last module
    is a Linear (the ViT's MLP output, writing into the residual stream): that Linear is the
    CLAPP layer and the Linear before it (the MLP's first) the SoftHebb layer."""
    leaves = [m for m in block.modules() if not list(m.children())]
    layers = linears(block)
    if len(leaves) == 2 and isinstance(leaves[0], nn.Linear) and isinstance(leaves[1], nn.ReLU):
        return leaves[0], leaves[0], True
    if len(layers) >= 2 and leaves[-1] is layers[-1]:
        return layers[-2], layers[-1], False
    raise ValueError(f"forward_only trains Linear -> ReLU blocks and residual blocks ending in a Linear; "
                     f"block {index} is {type(block).__name__} with leaves {[type(m).__name__ for m in leaves]}")


def pairs(targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(positive partner, negative partner, has a negative) per example, drawn from `generator`."""
    n = len(targets)
    draw = torch.rand(n, n, generator=generator, device=generator.device).to(targets.device)
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=targets.device)
    positive = same & ~eye
    positive = torch.where(positive.any(1, keepdim=True), positive, eye)  # alone of its class: itself
    negative = ~same
    pick = lambda mask: draw.masked_fill(~mask, -1.0).argmax(1)  # noqa: E731
    return pick(positive), pick(negative), negative.any(1)


def _add_grad(p: Tensor, left: Tensor | None, right: Tensor, scale: float) -> None:
    """p.grad += scale * left @ right (or scale * right when `left` is None): one GEMM that adds
    (addmm; the meter counts it, as it counts an in-place addmm_: harness/meter.py)."""
    if p.grad is None:
        g = right if left is None else left @ right  # a fresh tensor either way
        p.grad = g if scale == 1 else g.mul_(scale)
    elif left is None:
        p.grad.add_(right, alpha=scale)
    else:
        p.grad = torch.addmm(p.grad, left, right, alpha=scale)


@register_method("forward_only")
class ForwardOnly:
    supports = frozenset({"classify"})
    Config = ForwardOnlyConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg, self.model = ctx, ctx.config, ctx.model
        self.num_classes = num_classes(ctx, "forward_only")
        dims = [s[-1] for s in block_shapes(self.model, ctx.task.describe()["input_shape"], ctx.device)]
        self.layers = [block_layers(block, k) for k, block in enumerate(self.model.blocks)]
        self.head_layer = linears(self.model.head)[-1]
        # P_k forecasts block k's (pooled) output from stage k-1's; zero init (docstring).
        self.predictors = nn.ParameterList(nn.Parameter(torch.zeros(b, a, device=ctx.device))
                                           for a, b in zip(dims, dims[1:]))
        trained = {id(p): p for hebb, clapp, _ in self.layers for p in (hebb.weight, *clapp.parameters())}
        trained.update({id(p): p for p in (*self.head_layer.parameters(), *self.predictors)})
        self.optimizer = make_optimizer(trained.values(), self.cfg)
        self.fe_per_step = self._forward_equivalents(ctx.task.describe()["input_shape"])

    @torch.no_grad()
    def _forward_equivalents(self, input_shape: tuple[int, ...]) -> float:
        """A step's matrix-multiply FLOPs in forward passes of the model (module docstring): the
        forward (1), each predictor's forecast, gradient and context error, each trained
        Linear's outer products (SoftHebb's over every token), the head's delta rule; read off
        one probe example's shapes, since every term is linear in the batch."""
        was_training = self.model.training
        self.model.eval()
        with FlopCounterMode(display=False) as counter:
            h = self.model.stem(torch.zeros(1, *input_shape, device=self.ctx.device))
            rows = []  # per block: rows (tokens) of the SoftHebb layer's input for one example
            for k, block in enumerate(self.model.blocks):
                hebb, clapp, _ = self.layers[k]
                h, ((x, _), _) = self._run(block, h, [hebb, clapp])
                rows.append(x.numel() // hebb.in_features)
            self.model.head(h)
        self.model.train(was_training)
        forward, extra = counter.get_total_flops(), 0
        for k, ((hebb, clapp, _), predictor) in enumerate(zip(self.layers, self.predictors)):
            # P_k: the forecast, its gradient and (context_error, k > 0) the error sent back to block k-1
            extra += 2 * predictor.numel() * (2 + int(self.cfg.context_error and k > 0))
            if self.cfg.contrastive_weight > 0:  # delta^T x on the pooled input
                extra += 2 * clapp.in_features * clapp.out_features
            if self.cfg.hebbian_weight > 0:  # y^T x over every token
                extra += 2 * rows[k] * hebb.in_features * hebb.out_features
        extra += 2 * self.head_layer.in_features * self.head_layer.out_features
        return 1 + extra / forward

    # ---------------------------------------------------------------- pieces

    def _run(self, module: nn.Module, h: Tensor, watch: list[nn.Linear]) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """module(h) and the (input, output) of each watched Linear."""
        seen: dict[int, tuple[Tensor, Tensor]] = {}
        hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0], o)))
                 for k, m in enumerate(watch)]
        try:
            out = module(h)
        finally:
            for hook in hooks:
                hook.remove()
        return out, [seen[k] for k in range(len(watch))]

    def _apply_error(self, k: int, kept: dict[str, Tensor], error: Tensor) -> None:
        """Block k's gradients from dL/dz_k (`error`, [N, d_k]) and its SoftHebb term, summed into
        .grad by GEMMs that add (addmm), without weight-sized temporaries."""
        hebb, clapp, relu = self.layers[k]
        cw, hw = self.cfg.contrastive_weight, self.cfg.hebbian_weight
        a, o = kept["clapp"]
        if relu:  # z = relu(o): the ReLU's derivative
            delta, inputs = error * (o > 0), a
        else:  # z = mean over tokens of (... + o): each token gets error / T
            delta, inputs = error, a.mean(1)
        if cw > 0:
            _add_grad(clapp.weight, delta.T, inputs, cw)
            if clapp.bias is not None:
                _add_grad(clapp.bias, None, delta.sum(0), cw)
        if hw > 0:
            x, u = kept["hebb"]  # gradient descent: minus the Hebbian increment
            into = torch.zeros_like(hebb.weight) if hebb.weight.grad is None else hebb.weight.grad
            hebb.weight.grad = hebbian_update(hebb, x, u, "softhebb", self.cfg.hebbian_temperature, into=into, alpha=-hw)

    # ---------------------------------------------------------------- the update

    def step(self, batch: Batch) -> StepStats:
        _, loss = self.stage_step(0, len(self.model.blocks), batch.inputs, batch)
        return StepStats(loss=loss, examples=batch.size, forward_equivalents=self.fe_per_step)

    @torch.no_grad()
    def stage_step(self, first: int, last: int, inputs: Tensor, batch: Batch) -> tuple[Tensor, float | None]:
        """One update of blocks[first:last] (the stem's output when first == 0, the head when last
        is the end) on `inputs`, the raw batch or block first-1's output; returns block last-1's
        output and the head's loss (None when the head is elsewhere). `step` is the whole range;
        harness/block_parallel.py runs one range per process (AdamW skips gradient-less weights)."""
        cfg, targets, n = self.cfg, batch.targets, batch.size
        if cfg.context_error and first > 0:
            raise ValueError(f"forward_only with context_error=true sends block {first}'s error back to block "
                             f"{first - 1}, across a stage boundary; block-parallel training needs "
                             f"method.context_error=false")
        set_lr(self.optimizer, cfg, self.ctx.budget_fraction())
        if not self.model.training:
            self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        positive, negative, has_negative = pairs(targets, self.ctx.generator)
        h = self.model.stem(inputs) if first == 0 else inputs
        z_prev, pending = (h if h.dim() == 2 else h.mean(1)), None
        for k in range(first, last):
            hebb, clapp, _ = self.layers[k]
            h, seen = self._run(self.model.blocks[k], h, [hebb, clapp])
            kept = {"hebb": seen[0], "clapp": seen[1]}
            z = h if h.dim() == 2 else h.mean(1)
            # CLAPP: the forecast of z from the previous stage, scored against partners
            forecast, P = z_prev @ self.predictors[k].T, self.predictors[k]
            z_pos, z_neg = z[positive], z[negative]  # each example's partners' outputs
            s_pos, s_neg = (z_pos * forecast).sum(1), (z_neg * forecast).sum(1)
            on_pos = (s_pos < cfg.margin).float() / n  # d loss / d s: -on_pos (pos), +on_neg (neg)
            on_neg = (s_neg > -cfg.margin).float() * has_negative / n
            target = z_neg * on_neg[:, None] - z_pos * on_pos[:, None]  # d loss / d forecast
            P.grad = target.T @ z_prev
            future = torch.zeros_like(z)  # d loss / d z, on the partners' rows
            future.index_add_(0, positive, -on_pos[:, None] * forecast)
            future.index_add_(0, negative, on_neg[:, None] * forecast)
            if pending is not None:  # block k-1 was the context: its error is now complete
                self._apply_error(k - 1, pending[0], pending[1] + target @ P if cfg.context_error else pending[1])
            pending, z_prev = (kept, future), z
        if pending is not None:
            self._apply_error(last - 1, *pending)
        head_loss = None
        if last == len(self.model.blocks):  # the delta rule on the head's last Linear (cross-entropy's gradient)
            logits, ((f, _),) = self._run(self.model.head, h, [self.head_layer])
            error = (torch.softmax(logits, 1) - F.one_hot(targets, self.num_classes).to(logits.dtype)) / n
            self.head_layer.weight.grad, self.head_layer.bias.grad = error.T @ f.flatten(1), error.sum(0)
            head_loss = self.ctx.task.loss(logits, batch).item()
        self.optimizer.step()
        return h, head_loss

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        return self.model(inputs)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        predictors = [t for p in self.predictors for t in (p, p.grad) if t is not None]
        return {"optimizer_state": optimizer_state_tensors(self.optimizer), "predictors": predictors}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "predictors": self.predictors.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.predictors.load_state_dict(state["predictors"])
        self.optimizer.load_state_dict(state["optimizer"])
