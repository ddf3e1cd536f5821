"""Labels as part of the input, for methods that score (input, label) pairs.

Forward-forward (Hinton, 2022) and other energy- or goodness-based paradigms judge an
input *together with* a candidate label: the label goes into the input, wrong labels
make negative data, and prediction tries every label. The pieces live here once:

- `LabelEmbedding`: puts a label into the stem's output. A flat vector ([N, F], the
  MLP's flattened image) gets the paper's rule: its first `num_classes` entries are
  replaced by a one-hot label scaled to `value`. Tokens ([N, T, D], the ViT) get a
  learned per-class vector added to every token.
- `wrong_labels`: a uniformly random wrong label per example, or (with scores) a wrong
  label drawn in proportion to the model's own predicted probabilities ("hard" negatives).

All randomness comes from the generator passed in (the method's `ctx.generator`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LabelEmbedding(nn.Module):
    """Label -> input: one-hot into the first entries of a flat vector, or a learned
    vector added to every token. `labels=None` embeds the neutral label (the average
    of all labels: entries of value/num_classes, as the paper's 0.1 for ten classes)."""

    def __init__(self, num_classes: int, value: float, token_dim: int | None,
                 generator: torch.Generator, init_std: float = 1.0) -> None:
        super().__init__()
        self.num_classes, self.value = num_classes, value
        self.table = None
        if token_dim is not None:  # tokens: a learned table, initialised from the method's generator
            self.table = nn.Parameter(torch.randn(num_classes, token_dim, generator=generator) * init_std)

    def forward(self, h: Tensor, labels: Tensor | None) -> Tensor:
        if self.table is not None:
            vectors = self.table.mean(0).expand(h.shape[0], -1) if labels is None else self.table[labels]
            return h + vectors.unsqueeze(1)
        if h.shape[1] < self.num_classes:
            raise ValueError(f"a flat input of {h.shape[1]} values cannot hold a one-hot label of "
                             f"{self.num_classes} classes")
        if labels is None:
            code = h.new_full((h.shape[0], self.num_classes), self.value / self.num_classes)
        else:
            code = nn.functional.one_hot(labels, self.num_classes).to(h.dtype) * self.value
        return torch.cat([code, h[:, self.num_classes:]], dim=1)


def wrong_labels(labels: Tensor, num_classes: int, generator: torch.Generator,
                 scores: Tensor | None = None) -> Tensor:
    """One wrong label per example: uniform, or drawn from softmax(scores) with the
    true label's probability set to zero (hard negatives)."""
    cpu_labels = labels.cpu()
    if scores is None:
        shift = torch.randint(1, num_classes, cpu_labels.shape, generator=generator)
        return ((cpu_labels + shift) % num_classes).to(labels.device)
    logits = scores.detach().float().cpu().clone()
    logits[torch.arange(len(cpu_labels)), cpu_labels] = float("-inf")
    probs = torch.softmax(logits, dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(labels.device)
