"""Active inference as a language-model fine-tuner: the free-energy learner on a decoder.

The continuous variant of methods/active_inference.py (the hierarchical Gaussian model of
Friston 2005/2008 under the Laplace approximation, learned precisions as in Bogacz 2017) on
the Llama-shaped decoder of suites/tasks/language_models.py, reading (a) of issue 20. Same
energy, same relaxation, same precision rule, same code (methods/_energy.py's LayeredEnergy,
active_inference's PrecisionWeightedEnergy); this file adds only what a decoder changes.

Papers: Friston, K. (2008). Hierarchical models in the brain. PLoS Comput. Biol. 4(11);
Friston, K. (2010). The free-energy principle: a unified brain theory? Nat. Rev. Neurosci.
11 (perception and learning as descent on one variational free energy); Bogacz, R. (2017). A
tutorial on the free-energy framework. J. Math. Psychol. 76 (the variance rule); Millidge,
B., Tschantz, A. & Buckley, C. (2022). Predictive coding approximates backprop along
arbitrary computation graphs. Neural Computation 34 (value nodes on a transformer's
computation graph); Pinchetti, L. et al. (2022). Predictive coding beyond Gaussian
distributions. NeurIPS (a categorical output likelihood for transformers; the output term
here). Equation numbers not re-checked offline.

The generative model of a window of T bytes, layer by layer (stem = token embedding, the
decoder blocks, head = final RMSNorm + linear to the 256 byte logits):

    x_1 = E[tokens] + w_1,   x_k = block_k(x_{k-1}) + w_k,   w_k ~ N(0, pi_k^-1 I)
    next bytes ~ Categorical(softmax(head(x_n)))

x_k: one value node per block output, [T, dim] per window (the residual stream at every
position); pi_k = exp(lambda_k) one learned precision per layer. The free energy of a window:

    F = sum_k 1/2 (pi_k ||x_k - f_k(x_{k-1})||^2 - n_k lambda_k) + CE(head(x_n), next bytes),

n_k = T * dim. One step on a batch of windows is active_inference's: nodes start at the
forward pass, T_inf relaxation steps on F (precision-preconditioned SGD with momentum), then
every layer's weights descend their own precision-weighted prediction error (AdamW), then
each lambda_k descends dF/dlambda_k with the Laplace variance term. Every energy term is a
leaf-node graph of one layer: the update of block k reads x_{k-1}, x_k and pi_k only.
Causality holds: block_k is causal, so a position's prediction error reaches only the nodes
of itself and earlier positions through the relaxation, as backprop's gradient does.

Deviations (beside active_inference's own list, which applies unchanged):
- The output term is the categorical likelihood (cross-entropy, summed over the window's
  bytes), not a Gaussian on one-hot bytes: a byte is a category (Pinchetti et al. 2022);
  output_energy must be "ce" (a Gaussian output is refused with the fix), so only the
  hidden precisions learn.
- A window (T positions) is the "example" of the per-example inference rate and of the
  precision rule (n_k = T * dim); positions share a precision per layer.
- No precision on attention internals: a block (attention + MLP, both residual) is one
  layer, as the ViT's blocks are in the classify variant. Finer nodes (per sub-layer,
  Millidge et al. 2022) would cost more relaxation per step; not tried.
- Rotary tables and RMSNorm are parts of the layer functions f_k, not nodes.
- No value node on the embedding's output: f_1 is the embedding followed by the first
  block. The embedding's output is tiny (std 0.02) and the block RMS-normalises it, so the
  block's Jacobian there is ~1/rms(x) ~ 30-50 and the Gauss-Newton preconditioner's J^T J ~ I
  (active_inference's Deviations) fails: with that node the relaxed weight gradients pointed
  nowhere near backprop's (quick lm model after pretraining, one batch, T=5, rate 0.01,
  cosine per layer 0.20 / -0.13 / 0.97 / 1.0) and fine-tuning wrecked the model (val bpb
  3.38 -> 4.1-4.7 in 25-100 steps). Block outputs are residual streams (J = I + branch), where
  J^T J ~ I is a fair guess: without the node, 0.997 / 0.991 / 1.0 at rate 0.01, 0.983 /
  0.963 / 0.998 at 0.03 (the suite's), 0.61 / 0.28 / 0.98 at 0.1 (/tmp/lmc/cos.py in the
  issue-20 note). The embedding still learns, from the first block's local error.
- 5 inference steps at rate 0.03 (suites/lm.yaml), not 20 at 0.1: 0.1 is past the stable
  rate here (the head's curvature through the CE summed over a window), and 5 steps at
  0.03 already give the gradients above; 20 would cost ~2.7x more per step on a shared
  2-core machine. The Laplace approximation is then taken nearer the feedforward pass
  than at the mode.

Cost in forward-equivalents: as the continuous variant's (methods/_energy.py), with the
layer FLOP shares measured on one window; the suite sets the inference steps (suites/lm.yaml).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import SetupContext
from methods._energy import LayeredEnergy


class DecoderEnergy:
    """Mixed in before active_inference's PrecisionWeightedEnergy (methods/active_inference.py):
    token probes, the vocabulary as the output node, the categorical output term over every
    position. A mixin, so this file imports nothing from active_inference (no cycle)."""

    name = "active_inference"

    def setup(self, ctx: SetupContext) -> None:
        info = ctx.task.describe()
        self.window = int(info.get("context") or info.get("seq_len") or 0)  # positions per example
        self.vocab = int(info.get("vocab_size") or 0)
        if self.window < 1 or self.vocab < 2:
            raise ValueError(f"active_inference on task kind 'lm' needs the task to describe its window ('context' or "
                             f"'seq_len') and 'vocab_size'; {ctx.task.name} describes {sorted(info)}.")
        if ctx.config.output_energy != "ce":
            raise ValueError("active_inference on a language model predicts bytes, a categorical variable: set "
                             "output_energy=ce (a Gaussian on one-hot bytes is not a likelihood of text).")
        LayeredEnergy.setup(self, ctx)
        # No value node on the embedding's output (see Deviations): f_1 = first block after the embedding.
        model = self.model
        self.layers = [nn.Sequential(model.stem, model.blocks[0]), *model.blocks[1:], model.head]
        self.flop_share = self._flop_shares()
        # The precisions' own setup probes image shapes; the same, on tokens:
        with torch.no_grad():  # units per window of every layer's output (the output: the logits)
            h = self.probe_input()
            self.units = []
            for layer in self.layers:
                h = layer(h)
                self.units.append(h[0].numel())
        self.log_precision = torch.zeros(len(self.layers), dtype=torch.float64)  # lambda_k: pi_k = 1 at the start
        self.pi = [1.0] * len(self.layers)

    def output_classes(self) -> int:
        return self.vocab

    def probe_input(self) -> Tensor:
        return torch.zeros(1, self.window, dtype=torch.long, device=self.ctx.device)

    def local_energy(self, k: int, x_prev: Tensor, x_k: Tensor | None, targets: Tensor) -> Tensor:
        if x_k is not None:
            return super().local_energy(k, x_prev, x_k, targets)  # type: ignore[misc]
        logits = self.layers[k](x_prev)  # [B, T, vocab]: -ln p(next bytes), summed over the positions
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="sum")
