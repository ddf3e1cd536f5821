"""A decoder-only LM on a synthetic token stream: for tests, and for memory at scale.

The stream is a fixed random Markov chain: each token has `branching` possible successors
with Dirichlet-drawn probabilities (fixed by `split_seed`), so next-token prediction is
learnable (the best achievable loss is the chain's entropy rate, well below log(vocab))
without any dataset on disk. The model is suites/tasks/language_models.py's decoder,
either a small shape (`decoder`) or a named one (`preset: 1b` is TinyLlama-1.1B's).

`memory_only: true` marks a cell that measures memory instead of training to a metric:
harness/loops/memory_only.py runs it (on the meta device on a CPU, for real on a GPU), and
`variants` names extra configurations of a method to measure beside the cell's own (so
one suite run prints mixed-precision and checkpointed backprop next to plain backprop).

Batches: inputs are tokens [B, T], targets the next tokens [B, T]; the loss is mean
next-token cross-entropy; `evaluate` reports it as `loss` (the headline metric, lower is
better) with `accuracy` and `perplexity`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.interface import Batch, BlockModel
from harness.registry import register_task
from suites.tasks.language_models import DecoderConfig, build_decoder, decoder_parameter_count, decoder_preset

EVAL_CHUNK = 16  # sequences per `predict` call


@dataclass(frozen=True)
class SyntheticLMConfig:
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(dim=64, depth=2, heads=4, context=32))
    preset: str | None = None  # a named decoder shape (language_models.DECODER_PRESETS); overrides `decoder`
    vocab_size: int = 64
    seq_len: int = 32
    branching: int = 3  # successors per token in the chain
    n_train: int = 512  # sequences per split
    n_val: int = 64
    n_test: int = 64
    split_seed: int = 0  # fixes the chain and the splits, never the cell seed
    memory_only: bool = False
    variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # memory_only: {method: [config, ...]}

    def __post_init__(self) -> None:
        if self.preset is not None:
            decoder_preset(self.preset)  # raises with the known names
        if self.vocab_size < 2 or not 1 <= self.branching <= self.vocab_size:
            raise ValueError(f"need vocab_size >= 2 and 1 <= branching <= vocab_size, got {self.vocab_size}, "
                             f"{self.branching}")
        if self.seq_len < 1 or self.seq_len > self.model.context:
            raise ValueError(f"seq_len={self.seq_len} must be in [1, decoder context {self.model.context}]")
        if min(self.n_train, self.n_val, self.n_test) < 1:
            raise ValueError("n_train, n_val and n_test must be >= 1")
        if not isinstance(self.variants, dict) or not all(isinstance(v, list) for v in self.variants.values()):
            raise ValueError(f"variants must map a method name to a list of configs, got {self.variants!r}")

    @property
    def model(self) -> DecoderConfig:
        return decoder_preset(self.preset) if self.preset is not None else self.decoder


@register_task("synthetic_lm")
class SyntheticLMTask:
    """A Llama-shaped decoder on a random Markov-chain token stream (offline; any size)."""

    Config = SyntheticLMConfig
    kind = "lm"
    metric = "loss"
    higher_is_better = False

    def __init__(self, config: SyntheticLMConfig | None = None) -> None:
        self.config = config or SyntheticLMConfig()
        self.memory_only = self.config.memory_only
        self.variants = self.config.variants
        self._splits: dict[str, Tensor] | None = None

    @property
    def splits(self) -> dict[str, Tensor]:
        if self._splits is None:
            c = self.config
            g = torch.Generator().manual_seed(c.split_seed)
            successors = torch.stack([torch.randperm(c.vocab_size, generator=g)[:c.branching]
                                      for _ in range(c.vocab_size)]) if c.vocab_size <= 4096 else \
                torch.randint(0, c.vocab_size, (c.vocab_size, c.branching), generator=g)
            probs = -torch.log(torch.rand(c.vocab_size, c.branching, generator=g))  # Dirichlet(1) via exponentials
            probs = probs / probs.sum(1, keepdim=True)
            total = c.n_train + c.n_val + c.n_test
            tokens = torch.empty(total, c.seq_len + 1, dtype=torch.int64)
            tokens[:, 0] = torch.randint(0, c.vocab_size, (total,), generator=g)
            for t in range(c.seq_len):
                choice = torch.multinomial(probs[tokens[:, t]], 1, generator=g).squeeze(1)
                tokens[:, t + 1] = successors[tokens[:, t], choice]
            self._splits = {"train": tokens[:c.n_train], "val": tokens[c.n_train:c.n_train + c.n_val],
                            "test": tokens[c.n_train + c.n_val:]}
            self.entropy_rate = float(-(probs * probs.log()).sum(1).mean())
        return self._splits

    def check_available(self) -> None:
        _ = self.splits

    def build_model(self, generator: torch.Generator) -> BlockModel:
        return build_decoder(self.config.model, self.config.vocab_size, generator)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        data = self.splits["train"]
        while True:
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(data), batch_size):
                rows = data[order[start:start + batch_size]]
                yield Batch(rows[:, :-1], rows[:, 1:])

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(outputs.flatten(0, 1).float(), batch.targets.flatten())

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
        data = self.splits[split]
        total, correct, count = 0.0, 0, 0
        for start in range(0, len(data), EVAL_CHUNK):
            rows = data[start:start + EVAL_CHUNK].to(device)
            logits = predict(rows[:, :-1]).float()
            targets = rows[:, 1:]
            total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
            correct += int((logits.argmax(-1) == targets).sum())
            count += targets.numel()
        loss = total / count
        return {"loss": loss, "accuracy": correct / count, "perplexity": math.exp(min(loss, 50.0))}

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"vocab_size": c.vocab_size, "seq_len": c.seq_len, "preset": c.preset,
                "parameters": decoder_parameter_count(c.model, c.vocab_size),
                "n_train": c.n_train, "n_val": c.n_val, "n_test": c.n_test, "memory_only": c.memory_only}
