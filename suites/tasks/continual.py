"""Continual-learning tasks: digits and Fashion-MNIST as sequences of experiences.

Each task is a plain image task (suites/tasks/image_classification.py: data, splits,
normalisation, model and loss) cut into `experiences`, in one of three scenarios
(van de Ven & Tolias, 2019, "Three scenarios for continual learning"):

- class-incremental (split tasks, scenario=class): experience k holds classes
  {2k, 2k+1} (for 5 experiences); one 10-way head, scored on all ten logits.
- task-incremental (split tasks, scenario=task): the same experiences; at evaluation
  the logits are masked to the experience's classes (the task identity is given at
  test time). Training uses the task's plain loss over all ten outputs: masking the
  loss too (multi-head training) would help only the methods that minimise
  `task.loss`, not the paradigms that train by their own objectives, so it is left out.
- domain-incremental (permuted tasks, scenario=domain): experience k shows every image
  with a fixed pixel permutation, the first the identity (Goodfellow et al., 2013;
  Kirkpatrick et al., 2017); all ten classes in every experience.

The class order, the permutations (drawn from PERMUTATION_SEED) and the splits (by
`split_seed`) are fixed, so seeds differ only in initialisation and data order.
`regime: joint` makes the runner train on the union of all experiences (the upper
bound); harness/loops/continual.py reads `experiences` and `regime`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from harness.interface import Batch, BlockModel
from harness.registry import register_task
from suites.tasks.image_classification import (
    DigitsConfig,
    DigitsTask,
    FashionMNISTTask,
    ImageClassificationTask,
    ImageTaskConfig,
    epochs,
    score,
)

PERMUTATION_SEED = 0  # the permutations are part of the task, the same for every cell


@dataclass(frozen=True)
class ContinualConfig(ImageTaskConfig):
    """An image task's keys plus how it is cut into experiences and trained."""

    experiences: int = 5
    regime: Literal["sequential", "joint"] = "sequential"  # joint: train on the union (upper bound)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.experiences < 2:
            raise ValueError(f"experiences must be at least 2 (forgetting needs a second one), got {self.experiences}.")


@dataclass(frozen=True)
class SplitConfig(ContinualConfig):
    scenario: Literal["class", "task"] = "class"  # task: logits masked to the experience's classes


@dataclass(frozen=True)
class PermutedConfig(ContinualConfig):
    """Permuted tasks are domain-incremental: every experience holds every class."""


# Digits' defaults (patch 2, 180 validation images) with the continual keys: DigitsConfig
# comes first so that its defaults win over ImageTaskConfig's.
@dataclass(frozen=True)
class SplitDigitsConfig(DigitsConfig, SplitConfig):
    pass


@dataclass(frozen=True)
class PermutedDigitsConfig(DigitsConfig, PermutedConfig):
    pass


class ImageExperience:
    """One experience: a subset of the classes, or all of them under a pixel permutation."""

    def __init__(self, images: ImageClassificationTask, index: int, classes: tuple[int, ...],
                 permutation: Tensor | None, masked: bool) -> None:
        self.images, self.index, self.classes, self.permutation = images, index, classes, permutation
        self.mask = None
        if masked:  # task-incremental: only this experience's logits compete
            self.mask = torch.zeros(images.num_classes, dtype=torch.bool)
            self.mask[list(classes)] = True
        self._rows: dict[str, Tensor] = {}

    def _data(self, split: str) -> tuple[Tensor, Tensor]:
        s = self.images.splits
        return {"train": (s.train_x, s.train_y), "val": (s.val_x, s.val_y), "test": (s.test_x, s.test_y)}[split]

    def rows(self, split: str) -> Tensor:
        """Indices of this experience's examples in the dataset's `split` (train, val or test)."""
        if split not in self._rows:
            labels = self._data(split)[1]
            self._rows[split] = torch.isin(labels, torch.tensor(self.classes)).nonzero().flatten()
        return self._rows[split]

    def take(self, split: str, rows: Tensor) -> Batch:
        """Examples `rows` of `split`, as this experience shows them (permuted)."""
        x, y = self._data(split)
        inputs = x[rows]
        if self.permutation is not None:
            inputs = inputs.flatten(1)[:, self.permutation].view_as(inputs)
        return Batch(inputs, y[rows])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless batches of this experience's training examples, reshuffled each epoch."""
        rows = self.rows("train")
        return epochs(len(rows), batch_size, generator, lambda index: self.take("train", rows[index]))

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Accuracy and loss on this experience's `split` ("val" or "test"), masked when task-incremental."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
        data = self.take(split, self.rows(split))
        if data.size == 0:
            raise ValueError(f"experience {self.index} has no {split} examples; raise val_size.")
        mask = self.mask

        def scored(inputs: Tensor) -> Tensor:
            logits = predict(inputs)
            return logits if mask is None else logits.masked_fill(~mask.to(logits.device), float("-inf"))

        return score(scored, data.inputs, data.targets, device)

    def describe(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "permuted": self.permutation is not None,
                "masked": self.mask is not None, **{f"n_{s}": len(self.rows(s)) for s in ("train", "val", "test")}}


class ContinualImageTask:
    """The `ContinualTask` protocol (harness/interface.py) over experiences of one image dataset."""

    Config: ClassVar[type[ContinualConfig]]  # SplitConfig or PermutedConfig (or their digits variants)
    images_task: ClassVar[type[ImageClassificationTask]]  # the plain task: data, model, loss
    kind = "classify"
    metric = "accuracy"  # of the curve's validation: the mean over all experiences
    higher_is_better = True

    def __init__(self, config: ContinualConfig | None = None) -> None:
        config = self.Config() if config is None else config
        if not isinstance(config, ContinualConfig):
            raise TypeError(f"{type(self).__name__} needs a ContinualConfig, got {type(config).__name__}.")
        self.config = config
        self.scenario = getattr(config, "scenario", "domain")  # only split tasks choose
        self.regime = config.regime
        self.images = self.images_task(config)
        n_classes, t = self.images.num_classes, config.experiences
        if self.scenario == "domain":
            generator = torch.Generator().manual_seed(PERMUTATION_SEED)
            pixels = int(np.prod(self.images.input_shape))
            permutations = [None] + [torch.randperm(pixels, generator=generator) for _ in range(t - 1)]
            self.experiences = [ImageExperience(self.images, k, tuple(range(n_classes)), p, masked=False)
                                for k, p in enumerate(permutations)]
        else:
            if t > n_classes:
                raise ValueError(f"experiences={t} leaves some without a class: {n_classes} classes to split.")
            groups = np.array_split(np.arange(n_classes), t)  # fixed order: {0,1}, {2,3}, ...
            self.experiences = [ImageExperience(self.images, k, tuple(int(c) for c in g), None,
                                                masked=self.scenario == "task") for k, g in enumerate(groups)]

    def check_available(self) -> None:
        self.images.check_available()

    def build_model(self, generator: torch.Generator) -> BlockModel:
        return self.images.build_model(generator)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return self.images.loss(outputs, batch)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless batches from the union of every experience's training examples (regime=joint)."""
        rows = [e.rows("train") for e in self.experiences]
        offsets = torch.tensor(list(itertools.accumulate((len(r) for r in rows), initial=0)))

        def take(index: Tensor) -> Batch:
            owner = torch.searchsorted(offsets, index, right=True) - 1
            inputs = torch.empty(len(index), *self.images.input_shape)
            targets = torch.empty(len(index), dtype=torch.int64)
            for k in owner.unique().tolist():
                mine = owner == k
                part = self.experiences[k].take("train", rows[k][index[mine] - offsets[k]])
                inputs[mine], targets[mine] = part.inputs, part.targets
            return Batch(inputs, targets)

        return epochs(int(offsets[-1]), batch_size, generator, take)

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Mean accuracy and loss over all experiences, and each experience's accuracy."""
        scores = [e.evaluate(predict, split, device) for e in self.experiences]
        return {"accuracy": float(np.mean([s["accuracy"] for s in scores])),
                "loss": float(np.mean([s["loss"] for s in scores])),
                **{f"accuracy_{k}": s["accuracy"] for k, s in enumerate(scores)}}

    def describe(self) -> dict[str, Any]:
        return {**self.images.describe(), "scenario": self.scenario, "regime": self.regime,
                "permutation_seed": PERMUTATION_SEED if self.scenario == "domain" else None,
                "experiences": [e.describe() for e in self.experiences]}


@register_task("split_digits")
class SplitDigitsTask(ContinualImageTask):
    """scikit-learn digits in 5 experiences of 2 classes (class- or task-incremental)."""

    Config = SplitDigitsConfig
    images_task = DigitsTask


@register_task("permuted_digits")
class PermutedDigitsTask(ContinualImageTask):
    """scikit-learn digits under 5 fixed pixel permutations (domain-incremental)."""

    Config = PermutedDigitsConfig
    images_task = DigitsTask


@register_task("split_fashion_mnist")
class SplitFashionMNISTTask(ContinualImageTask):
    """Fashion-MNIST in 5 experiences of 2 classes (class- or task-incremental)."""

    Config = SplitConfig
    images_task = FashionMNISTTask


@register_task("permuted_fashion_mnist")
class PermutedFashionMNISTTask(ContinualImageTask):
    """Fashion-MNIST under 5 fixed pixel permutations (domain-incremental)."""

    Config = PermutedConfig
    images_task = FashionMNISTTask
