"""Local learning: every block trained by its own auxiliary head, no backward pass between blocks.

Papers: Belilovsky, E., Eickenberg, M. & Oyallon, E. (2019). Greedy layerwise learning can
scale to ImageNet. ICML 2019; (2020) Decoupled greedy learning of CNNs. ICML 2020.
Nøkland, A. & Eidnes, L. H. (2019). Training neural networks with local error signals.
ICML 2019 (the "pred" and "sim" losses). Journé, A., Rodriguez, H. G., Guo, Q. & Moraitis, T.
(2023). Hebbian deep learning without feedback (SoftHebb). ICLR 2023. Oja, E. (1982, 1989):
the (subspace) Oja rule.
Reference code read: none; written from the papers.

One step on a batch (x, y), block by block (decoupled greedy learning, run sequentially):
- block k reads the *detached* output of block k-1 (block 0 reads the stem's output, and
  its loss trains the stem too), and its auxiliary head predicts y from its output:
  cross-entropy ("pred"); with `sim_weight` = beta, Nøkland & Eidnes' predsim loss
  (1 - beta) * pred + beta * sim, sim being the MSE between the cosine-similarity matrices
  of the (flattened) block outputs and of the one-hot labels, across the batch;
- with `next_weight` > 0, a linear predictor from block k's output also regresses block
  k+1's (detached) output: block k learns to carry what the next block makes of it;
- the block's loss is back-propagated through that block (and its heads) only, right
  after its forward, and its graph freed, so at most one block's activations (two with
  `next_weight`) are held for backward at any time: the memory the claim is about;
- with `hebbian` = "oja" or "softhebb", the first Linear layer of every block also gets a
  Hebbian term added to its gradient (scaled by `hebbian_weight`): Oja's subspace rule
  dW = y x^T - y y^T W, or SoftHebb's dW_ij = softmax(u / tau)_i (x_j - u_i W_ij), u = W x,
  both averaged over examples (and tokens);
- the model's own head (the final classifier, and `predict`'s) is trained with
  cross-entropy on the last block's detached output. One AdamW step updates everything.
Auxiliary heads: a Linear for flat outputs (MLP); LayerNorm, mean over tokens, Linear for
tokens (ViT), the shape of the model's head. They and their optimizer state are declared to
the memory ledger (`memory_buffers`).

Prediction: the model's forward pass (stem, blocks, head); the auxiliary heads are not used.
`stage_step(first, last, ...)` updates a range of blocks (`step` is the whole range), so
harness/block_parallel.py can run one range per process, sending activations forward only
(next_weight must be 0 there: it regresses the next block's output, a message backwards).

Deviations (every one, with the reason):
- Blocks are trained simultaneously on each batch, each on its predecessor's current output
  (Belilovsky et al. 2020's decoupled/sequential variant), not stage after stage (2019).
- Auxiliary heads are single linear maps (on pooled tokens for the ViT), where Belilovsky
  et al. use small CNNs, so the heads stay cheap next to the blocks.
- Nøkland & Eidnes compute sim on a learned conv projection of conv features; here on the
  block output itself (flattened tokens for the ViT), as they do for fully connected layers.
- The Hebbian term is added to the local gradient before the AdamW step instead of being
  applied with the papers' own (adaptive) rates; it is off by default.
- AdamW with the harness's warm-up and cosine schedule (backprop's) instead of the papers' SGD.
- The final classifier is the model's own head, trained on the last block's detached output,
  besides the last block's auxiliary head (Belilovsky et al. use the last auxiliary head), so
  `predict` runs exactly the model backprop trains, with the same parameters.
- The Hebbian layer is each block's first Linear (the MLP's only one, the ViT's qkv).

forward_equivalents per step, with backprop's convention (a backward costs ~2 forwards):
one forward and one backward through every block, 3, as backprop (the next-block targets
reuse the next block's forward). The auxiliary heads' and the Hebbian terms' small cost is
in the measured FLOPs, not in this count; LL skips the gradient with respect to each block's
input, so its measured FLOPs are those of backprop or fewer.

Results (test accuracy of the validation-selected state, mean +- std over 3 seeds, defaults,
CPU, threads=1; issue 6):
- digits (`bench run suite=vision-vit method=local_learning profile=quick threads=1`):
  MLP 0.9647 +- 0.0016 (backprop 0.9666 +- 0.0074), ViT 0.9480 +- 0.0032 (backprop 0.9322 +- 0.0113).
- Fashion-MNIST, 5 epochs (`bench run suite=vision-vit method=local_learning threads=1`):
  MLP 0.8874 +- 0.0014 (backprop 0.8870 +- 0.0003), ViT 0.8659 +- 0.0059 (backprop 0.8802 +-
  0.0007 in README.md, untuned lr 2e-3).
- suites/predictive-coding.yaml (pcx's 3x128 MLP, 25 epochs, one seed): 0.8951
  (predictive coding 0.8887, backprop 0.8882).
Tuning (one seed, validation accuracy): digits ViT lr 2e-3/4e-3: 0.944/0.961, sim_weight 0.5:
0.956, next_weight 1: 0.833, softhebb (weight 0.1): 0.956; Fashion-MNIST ViT lr 2e-3/4e-3:
0.867/0.872.
Memory ledger, one probe step, ViT (patch 7, dim 64, batch 128, Fashion-MNIST shape),
saved activations / total MiB: depth 2: 7.00 / 8.12 (backprop 13.06 / 14.16), depth 4:
7.00 / 9.17 (25.19 / 27.31), depth 8: 7.00 / 11.26 (49.44 / 53.60); tests/test_local_learning.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method
from methods._local import (WeightOptimizer, block_shapes, hebbian_update, make_optimizer, num_classes, seeded,
                            set_lr)


@dataclass(frozen=True)
class LocalLearningConfig(WeightOptimizer):
    lr: float = 4e-3  # tuned on validation (ViT: digits and Fashion-MNIST)
    weight_decay: float = 0.05
    sim_weight: float = 0.0  # beta of predsim (Nøkland & Eidnes: 0.99); 0 = pred only (DGL)
    next_weight: float = 0.0  # weight of predicting the next block's output; 0 = off
    hebbian: Literal["none", "oja", "softhebb"] = "none"
    hebbian_weight: float = 1.0  # scale of the Hebbian term added to the gradient
    hebbian_temperature: float = 1.0  # SoftHebb's softmax temperature tau

    def __post_init__(self) -> None:
        self.check_optimizer()
        if not 0 <= self.sim_weight <= 1:
            raise ValueError(f"sim_weight is predsim's beta in [0, 1], got {self.sim_weight}")
        if self.next_weight < 0:
            raise ValueError(f"next_weight must be >= 0, got {self.next_weight}")
        if self.hebbian not in ("none", "oja", "softhebb"):
            raise ValueError(f"hebbian must be none, oja or softhebb, got {self.hebbian!r}")
        if self.hebbian_weight <= 0:
            raise ValueError(f"hebbian_weight must be > 0, got {self.hebbian_weight}")
        if self.hebbian_temperature <= 0:
            raise ValueError(f"hebbian_temperature must be > 0, got {self.hebbian_temperature}")


class TokenMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)


def aux_head(shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A Linear on a flat output; LayerNorm, mean over tokens, Linear on [tokens, dim]."""
    if len(shape) == 1:
        return nn.Linear(shape[0], num_classes)
    return nn.Sequential(nn.LayerNorm(shape[-1]), TokenMean(), nn.Linear(shape[-1], num_classes))


def similarity(h: Tensor) -> Tensor:
    """Cosine similarities between the (centred, flattened) examples of a batch [N, N]."""
    h = h.flatten(1)
    h = h - h.mean(dim=1, keepdim=True)
    return F.normalize(h, dim=1) @ F.normalize(h, dim=1).T


@register_method("local_learning")
class LocalLearning:
    supports = frozenset({"classify"})
    Config = LocalLearningConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg, self.model = ctx, ctx.config, ctx.model
        self.num_classes = num_classes(ctx, "local_learning")
        shapes = block_shapes(self.model, ctx.task.describe()["input_shape"], ctx.device)[1:]
        with seeded(ctx.generator):
            self.aux = nn.ModuleList(aux_head(s, self.num_classes) for s in shapes)
            self.predictors = nn.ModuleList(nn.Linear(a[-1], b[-1]) for a, b in zip(shapes, shapes[1:])) \
                if self.cfg.next_weight > 0 else nn.ModuleList()
        self.aux.to(ctx.device)
        self.predictors.to(ctx.device)
        self.hebb_layers = [next(m for m in block.modules() if isinstance(m, nn.Linear))
                            for block in self.model.blocks] if self.cfg.hebbian != "none" else []
        self.optimizer = make_optimizer([*self.model.parameters(), *self.aux.parameters(),
                                         *self.predictors.parameters()], self.cfg)

    # ---------------------------------------------------------------- pieces

    def _aux_loss(self, k: int, out: Tensor, targets: Tensor) -> Tensor:
        pred = F.cross_entropy(self.aux[k](out), targets)
        if self.cfg.sim_weight == 0:
            return pred
        onehot = F.one_hot(targets, self.num_classes).float()
        sim = F.mse_loss(similarity(out), similarity(onehot))
        return (1 - self.cfg.sim_weight) * pred + self.cfg.sim_weight * sim

    def _capture(self, first: int, last: int) -> tuple[dict[int, tuple[Tensor, Tensor]], list[Any]]:
        """Forward hooks recording (input, pre-activation) of blocks[first:last]'s Hebbian layers."""
        seen: dict[int, tuple[Tensor, Tensor]] = {}
        hooks = [layer.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0].detach(), o.detach())))
                 for k, layer in enumerate(self.hebb_layers) if first <= k < last]
        return seen, hooks

    # ---------------------------------------------------------------- the update

    def step(self, batch: Batch) -> StepStats:
        _, loss = self.stage_step(0, len(self.model.blocks), batch.inputs, batch)
        return StepStats(loss=loss, examples=batch.size, forward_equivalents=3.0)

    def stage_step(self, first: int, last: int, inputs: Tensor, batch: Batch) -> tuple[Tensor, float | None]:
        """One update of blocks[first:last] (and the stem when first == 0, the model's head when
        last is the end) on `inputs`, the raw batch or block first-1's output; returns the
        detached output of block last-1 and the head's loss (None when the head is elsewhere).

        `step` is the whole range; harness/block_parallel.py runs one range per process. The
        AdamW step skips every parameter without a gradient, so a range moves only its own."""
        cfg, targets, blocks = self.cfg, batch.targets, self.model.blocks
        if cfg.next_weight > 0 and last < len(blocks):
            raise ValueError(f"local_learning with next_weight={cfg.next_weight} regresses block {last}'s output "
                             f"from block {last - 1}'s: a message backwards across a stage boundary; "
                             f"block-parallel training needs next_weight=0")
        set_lr(self.optimizer, cfg, self.ctx.budget_fraction())
        if not self.model.training:
            self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        seen, hooks = self._capture(first, last)
        h, pending = (self.model.stem(inputs) if first == 0 else inputs), None
        for k in range(first, last):
            out = blocks[k](h)  # h is detached (block 0: the stem's output, trained by this loss)
            loss = self._aux_loss(k, out, targets)
            if pending is not None:  # the previous block's loss waited for this block's output
                prev_loss, prev_out = pending
                target = out.detach()
                (prev_loss + cfg.next_weight * F.mse_loss(self.predictors[k - 1](prev_out), target)).backward()
            if cfg.next_weight > 0 and k < len(blocks) - 1:
                pending = (loss, out)
            else:
                loss.backward()
                pending = None
            h = out.detach()
        for hook in hooks:
            hook.remove()
        for k, (x, u) in seen.items():  # gradient descent: minus the increment
            layer = self.hebb_layers[k]
            layer.weight.grad -= cfg.hebbian_weight * hebbian_update(layer, x, u, cfg.hebbian,
                                                                       cfg.hebbian_temperature)
        head_loss = None
        if last == len(blocks):
            loss = self.ctx.task.loss(self.model.head(h), batch)
            loss.backward()
            head_loss = loss.item()
        self.optimizer.step()
        return h, head_loss

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        return self.model(inputs)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        heads = [t for p in [*self.aux.parameters(), *self.predictors.parameters()] for t in (p, p.grad) if t is not None]
        return {"optimizer_state": optimizer_state_tensors(self.optimizer), "aux_heads": heads}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "aux": self.aux.state_dict(), "predictors": self.predictors.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.aux.load_state_dict(state["aux"])
        self.predictors.load_state_dict(state["predictors"])
        self.optimizer.load_state_dict(state["optimizer"])
