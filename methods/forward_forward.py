"""Forward-forward: every block learns by its own goodness objective, no backward pass between blocks.

Paper: Hinton, G. (2022). The Forward-Forward Algorithm: Some Preliminary Investigations.
arXiv:2212.13345. Supervised FF, section 3.3 (MNIST, 4 x 2000 ReLUs, 60 epochs: 1.36% test error).
Reference code read: loeweX/Forward-Forward (src/ff_model.py) for the normalisation, the
threshold and the label sweep (learned from, not copied).

The algorithm, one step on a batch (x, y):
- positive data is x with its true label y embedded, negative data x with a wrong label
  (uniformly random, or "hard": drawn in proportion to the model's own predicted
  probabilities of the wrong labels, which the paper suggests to speed training up);
- each block k sees the length-normalised, *detached* output of block k-1 (the stem's
  output with the label, for k = 0), so no gradient ever crosses a block boundary and a
  block cannot read the previous block's goodness off the length of its input;
- goodness g = sum of squared activities of the block's output vector (a ViT block: of
  each token's vector, averaged over the tokens); p(positive) = sigmoid(g - theta * width),
  so the block's loss is softplus(theta*w - g_pos) + softplus(g_neg - theta*w), each
  averaged over the batch (theta is given per unit, so one value serves every width);
- each block's loss is back-propagated inside that block only, right after its forward,
  so at most one block's activations are held for backward at a time. One optimizer
  updates all blocks (a block's gradients come from its own loss alone).
Prediction ("goodness", the paper's main rule): embed every candidate label, run the
blocks, and score each label by the goodness accumulated over all blocks but the first;
those sums are the logits. Option "linear": a softmax classifier (the model's head) on
the normalised last-block activities of one forward pass with the neutral label (every
entry value/num_classes: the paper's 0.1).

Deviations from the paper (every one, with the reason):
- The paper gives no theta: theta = 1 per unit (the paper's theta = the layer width, as in
  the reference code), the unit mean square the normalisation gives every layer's input.
- A ViT block's goodness is the per-token goodness averaged over tokens, not the sum over
  all tokens, whose sigmoid would be tokens-times sharper (the per-token form learned far
  better on digits). Option goodness=mean divides by the width too: a softer sigmoid that
  learned worse on both models.
- Length normalisation scales each vector (each token, for a ViT) to unit root-mean-square
  (length sqrt(width)) rather than length 1, so fresh layers see inputs of the usual scale;
  the direction, all that is passed up, is the same. The first block's input is normalised too.
- The paper gives no optimiser settings: AdamW with lr 5e-3 (chosen on the validation
  splits of Fashion-MNIST and digits among 3e-3, 5e-3, 7e-3; 1e-2 collapses on the MLP) and
  backprop's schedule (5% linear warm-up, cosine decay to 0), so the paradigms differ in
  their learning rule, not in their schedule.
- The "linear" rule uses the model's own head on the last block's normalised output (the
  paper: a softmax on all hidden layers but the first), so the parameters are the backprop
  model's. It is trained with the task's loss on detached activities.
- The harness standardises pixels, so the one-hot label that replaces the first
  num_classes inputs is label_value = 3 "on" (about a white pixel: (1 - mean)/std is 2.0 on
  Fashion-MNIST, 2.8 on MNIST) and 0 "off", not 1 and 0 in [0, 1]. On 8x8 digits these ten
  inputs overwrite part of the top rows; on 28x28 images they are border pixels, as in the paper.
- ViT (not in the paper): a learned label vector is added to every patch token after the
  stem and trained, with the stem, by the first block's loss. Added to every token rather
  than given as an extra token, so that every token's MLP sees the label directly and the
  token count, the model and per-block goodness stay those of the plain ViT. The blocks'
  own pre-norm LayerNorms stay; FF's length normalisation is applied between blocks on top.

forward_equivalents per step, with backprop's convention (a backward costs ~2 forwards):
a positive and a negative pass through all blocks, each with its local backward: 2 * 3 = 6;
plus 1 for the neutral-label pass that trains the linear head (rule "linear", whose logits
also supply hard negatives); plus num_classes for the label sweep that supplies hard
negatives under the "goodness" rule. Prediction's label sweep is evaluation, not a step; its
num_classes forwards run as few batched forwards (all labels in one on a GPU, cache-sized
groups on a CPU), with the per-label loop's result. On a flat first block that opens with a
Linear layer (the MLP) the label only swaps one weight column in, so that layer runs once for
all labels (label-free part + the label's column): the same goodness to float rounding, 2.3x
faster sweeps on vision-vit's MLP (192 -> 85 ms per 1,000 images, one thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import Batch, SetupContext, StepStats, optimizer_state_tensors
from harness.registry import register_method
from methods._labels import LabelEmbedding, wrong_labels
from methods._optim import WeightOptimizer, make_optimizer, set_lr


@dataclass(frozen=True)
class ForwardForwardConfig(WeightOptimizer):
    """The shared optimizer keys (methods/_optim.py; lr chosen as the docstring says) plus FF's own."""

    lr: float = 5e-3
    theta: float = 1.0  # goodness threshold per activity: the paper's theta is this times the width
    goodness: Literal["sum", "mean"] = "sum"  # mean: divided by the width, a softer sigmoid
    negatives: Literal["random", "hard"] = "random"
    predict: Literal["goodness", "linear"] = "goodness"
    skip_first: bool = True  # leave the first block's goodness out of the score (paper), when there are 2+
    label_value: float = 3.0  # the "on" entry of the one-hot label in a flat input (about a white pixel)
    label_std: float = 1.0  # init scale of the learned token label vectors (ViT)

    def __post_init__(self) -> None:
        if not self.theta > 0:
            raise ValueError(f"theta must be > 0: goodness, a sum of squares, cannot fall below 0; got {self.theta}")
        self.check_optimizer()
        if self.label_value <= 0:
            raise ValueError(f"label_value must be > 0 so the label shows in the input, got {self.label_value}")
        if self.label_std <= 0:
            raise ValueError(f"label_std must be > 0, got {self.label_std}")
        for key, allowed in (("goodness", ("sum", "mean")), ("negatives", ("random", "hard")),
                             ("predict", ("goodness", "linear"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")


# Label sweep on a CPU: labels per forward such that the repeated stem output holds at most this
# many elements (1 MB in float32; a block's widest activation is 3-4x that). Larger forwards
# leave the caches: on vision-vit's quick ViT all ten labels of a validation pass at once cost
# 1.4-1.6x the per-label loop (CPU time), while its MLP's small activations gain 35% from
# batching all ten (measured with tests/bench/method_cost.py's cells). GPUs get every label.
CPU_SWEEP_ELEMENTS = 2**18


NORM_EPS = 1e-8  # added to the root-mean-square before dividing by it


def normalise(h: Tensor, eps: float = NORM_EPS) -> Tensor:
    """FF length normalisation: each vector (the last dim) scaled to unit root-mean-square."""
    return h / (h.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)


@register_method("forward_forward")
class ForwardForward:
    supports = frozenset({"classify"})
    Config = ForwardForwardConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg, self.model = ctx, ctx.config, ctx.model
        self.num_classes = int(ctx.task.describe().get("num_classes", 0))
        if self.num_classes < 2:
            raise ValueError(f"forward_forward needs a task with 2+ classes; {ctx.task.name} describes "
                             f"num_classes={self.num_classes}")
        with torch.no_grad():  # the stem's output shape says flat vector (MLP) or tokens (ViT)
            probe = self.model.stem(torch.zeros(1, *ctx.task.describe()["input_shape"], device=ctx.device))
        if probe.dim() not in (2, 3):
            raise ValueError(f"forward_forward embeds labels in a flat [N, F] or token [N, T, D] stem output; "
                             f"this model's stem gives {list(probe.shape[1:])} per example")
        self.labels = LabelEmbedding(self.num_classes, self.cfg.label_value,
                                     probe.shape[-1] if probe.dim() == 3 else None,
                                     ctx.generator, self.cfg.label_std).to(ctx.device)
        n = len(self.model.blocks)
        self.scored = [k for k in range(n) if not (self.cfg.skip_first and n > 1 and k == 0)]
        params = [*self.model.stem.parameters(), *self.model.blocks.parameters(), *self.labels.parameters()]
        if self.cfg.predict == "linear":
            params += list(self.model.head.parameters())
        self.optimizer = make_optimizer(params, self.cfg)

    # ---------------------------------------------------------------- pieces

    def _goodness(self, out: Tensor) -> Tensor:
        """[N]: squared activities summed (or averaged) over a vector's units; a token
        block's goodness is the mean over its tokens of their goodness."""
        squares = out.pow(2)
        per_vector = squares.mean(-1) if self.cfg.goodness == "mean" else squares.sum(-1)
        return per_vector.flatten(1).mean(1) if per_vector.dim() > 1 else per_vector

    def _threshold(self, out: Tensor) -> float:
        return self.cfg.theta * (1 if self.cfg.goodness == "mean" else out.shape[-1])

    def _block_outputs(self, stem_out: Tensor, labels: Tensor | None, first: Tensor | None = None) -> list[Tensor]:
        """Every block's (unnormalised) output, each block fed the normalised previous one;
        `first`: the first block's output when it is already known (`_swept_first_block`)."""
        outputs = [] if first is None else [first]
        h = self.labels(stem_out, labels) if first is None else first
        for block in self.model.blocks[len(outputs):]:
            h = block(normalise(h))
            outputs.append(h)
        return outputs

    def _shared_first_layer(self, stem_out: Tensor) -> tuple[Tensor, Tensor, nn.Linear] | None:
        """What every candidate label shares in a flat first block that opens with a Linear layer
        (the MLP): the label replaces the first num_classes inputs with a one-hot of a fixed height,
        so the input's length (the normalisation) is the same for every label, and the layer's
        output is a label-free part plus the label's weight column, scaled. Returns (label-free
        pre-activation [N, H], the label column's scale [N, 1], the layer), or None for other
        models (the ViT's label is added to every token before its LayerNorm: nothing to share).
        Equal to the per-label forward up to float summation order (tests/test_forward_forward.py)."""
        block = self.model.blocks[0]
        if self.labels.table is not None or not (isinstance(block, nn.Sequential) and isinstance(block[0], nn.Linear)):
            return None
        labelled = self.labels(stem_out, torch.zeros(len(stem_out), dtype=torch.long, device=stem_out.device))
        scale = 1.0 / (labelled.pow(2).mean(dim=-1, keepdim=True).sqrt() + NORM_EPS)  # normalise()'s, for any label
        label_free = torch.cat([torch.zeros_like(labelled[:, :self.num_classes]), labelled[:, self.num_classes:]], 1)
        return block[0](label_free * scale), scale * self.labels.value, block[0]

    def _swept_first_block(self, shared: tuple[Tensor, Tensor, nn.Linear], first: int, k: int) -> Tensor:
        """The first block's output for labels first..first+k-1, rows label-major ([k * N, H])."""
        label_free, scale, layer = shared
        columns = layer.weight.T[first:first + k].unsqueeze(1)  # [k, 1, H]: each label's weight column
        pre = torch.addcmul(label_free.unsqueeze(0), scale.unsqueeze(0), columns)  # [k, N, H]
        return self.model.blocks[0][1:](pre.flatten(0, 1))

    @torch.no_grad()
    def _goodness_scores(self, inputs: Tensor) -> Tensor:
        """[N, num_classes]: goodness accumulated over the scored blocks, per candidate label.

        Candidate labels are batched: the stem's output (which does not see the label) is
        computed once and repeated label-major, rows [j*N, (j+1)*N) carrying the group's j-th
        label. The blocks treat rows independently, so this is the paper's per-label loop in
        fewer forwards: all labels at once on a GPU, on a CPU as many as keep the repeated
        stem output within CPU_SWEEP_ELEMENTS."""
        n, classes = inputs.shape[0], self.num_classes
        stem_out = self.model.stem(inputs)
        shared = self._shared_first_layer(stem_out)
        per_label = stem_out if shared is None else shared[0]  # what each label in a group repeats
        group = classes
        if stem_out.device.type == "cpu":
            group = max(1, min(classes, CPU_SWEEP_ELEMENTS // per_label.numel()))
        columns = []
        for first in range(0, classes, group):
            k = min(classes, first + group) - first
            labels = torch.arange(first, first + k, device=inputs.device).repeat_interleave(n)
            if shared is None:
                repeated = stem_out if k == 1 else stem_out.repeat(k, *([1] * (stem_out.dim() - 1)))
                outputs = self._block_outputs(repeated, labels)
            else:
                outputs = self._block_outputs(stem_out, labels, self._swept_first_block(shared, first, k))
            columns.append(sum(self._goodness(outputs[j]) for j in self.scored).view(k, n))
        return torch.cat(columns).T

    def _linear_logits(self, inputs: Tensor) -> Tensor:
        """The head's logits on the (detached) normalised last-block output, neutral label."""
        with torch.no_grad():
            features = normalise(self._block_outputs(self.model.stem(inputs), None)[-1])
        return self.model.head(features)

    # ---------------------------------------------------------------- the update

    def local_loss(self, block: torch.nn.Module, h: Tensor, positives: int) -> tuple[Tensor, Tensor]:
        """(block's FF loss, its detached output) for input `h`, whose first `positives`
        rows are positive data and the rest negative: the loss reaches this block (and,
        for the first block, the stem and label embedding that made `h`) and nothing else."""
        out = block(normalise(h))
        g, theta = self._goodness(out), self._threshold(out)
        loss = F.softplus(theta - g[:positives]).mean() + F.softplus(g[positives:] - theta).mean()
        return loss, out.detach()

    def step(self, batch: Batch) -> StepStats:
        cfg, x, y = self.cfg, batch.inputs, batch.targets
        set_lr(self.optimizer, cfg, self.ctx.budget_fraction())
        if not self.model.training:  # predict() switched to eval
            self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        forwards = 6.0

        scores = None
        if cfg.predict == "linear":  # the neutral pass trains the head and scores hard negatives
            logits = self._linear_logits(x)
            self.ctx.task.loss(logits, batch).backward()
            scores, forwards = logits, forwards + 1
        elif cfg.negatives == "hard":
            scores, forwards = self._goodness_scores(x), forwards + self.num_classes
        negative = wrong_labels(y, self.num_classes, self.ctx.generator,
                                scores if cfg.negatives == "hard" else None)

        # Positive and negative data as one batch of 2N; each block's graph is freed
        # by its own backward before the next block runs.
        stem_out, losses = self.model.stem(x), []
        h = self.labels(torch.cat([stem_out, stem_out]), torch.cat([y, negative]))
        for block in self.model.blocks:
            loss, h = self.local_loss(block, h, batch.size)
            loss.backward()
            losses.append(loss.item())
        self.optimizer.step()
        return StepStats(loss=sum(losses) / len(losses), examples=batch.size, forward_equivalents=forwards)

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        if self.cfg.predict == "linear":
            return self._linear_logits(inputs)
        return self._goodness_scores(inputs)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        label_tensors = [t for p in self.labels.parameters() for t in (p, p.grad) if t is not None]
        return {"optimizer_state": optimizer_state_tensors(self.optimizer), "label_embedding": label_tensors}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "labels": self.labels.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.labels.load_state_dict(state["labels"])
        self.optimizer.load_state_dict(state["optimizer"])
