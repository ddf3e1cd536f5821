"""Image-classification tasks: Fashion-MNIST, MNIST, CIFAR-10 and scikit-learn digits.

One base class implements the `Task` protocol; each registered subclass only names its
dataset, image shape and config defaults. Choices that matter for comparisons:

- The validation set is carved from the official training split, stratified, by
  `split_seed` alone: every cell seed sees the same train/val/test examples, so seeds
  vary only the model init and the data order.
- Inputs are normalised per channel with the mean and std of the (post-carve) training
  examples, so no statistic leaks from validation or test.
- Data loads lazily (on `check_available`, `train_batches`, `evaluate` or `describe`)
  and is cached per process, so constructing tasks to plan a sweep costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.interface import Batch, BlockModel, ShiftConfig, TaskDataError
from harness.registry import register_task
from suites.tasks.image_data import load_image_data, stratified_holdout
from suites.tasks.image_shifts import shifted_sets
from suites.tasks.vision_models import MLPConfig, ViTConfig, build_mlp, build_vit, check_vit_fits

EVAL_CHUNK = 1000  # examples per `predict` call in `evaluate`


@dataclass(frozen=True)
class ImageTaskConfig:
    """What a suite may set for an image task (the defaults suit the 28x28 datasets)."""

    model: Literal["mlp", "vit"] = "mlp"
    mlp: MLPConfig = field(default_factory=MLPConfig)
    vit: ViTConfig = field(default_factory=ViTConfig)
    data_dir: str | None = None  # local directory with the dataset's files (or a data root)
    source: Literal["auto", "local", "huggingface"] = "auto"
    val_size: int = 5000  # validation examples carved from train, fixed across seeds
    split_seed: int = 0  # the carve is fixed by this seed, never by the cell seed

    def __post_init__(self) -> None:
        if self.model not in ("mlp", "vit"):
            raise ValueError(f"model must be 'mlp' or 'vit', got {self.model!r}.")
        if self.source not in ("auto", "local", "huggingface"):
            raise ValueError(f"source must be 'auto', 'local' or 'huggingface', got {self.source!r}.")
        if self.val_size < 0:
            raise ValueError(f"val_size must be 0 or more, got {self.val_size}.")


@dataclass(frozen=True)
class Cifar10Config(ImageTaskConfig):
    """32x32 images: patch 4 (64 tokens) is the usual small-ViT choice."""

    vit: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=4))


@dataclass(frozen=True)
class DigitsConfig(ImageTaskConfig):
    """8x8 images and 1,437 training examples: patch 2 (16 tokens), a 10% validation set."""

    vit: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=2))
    val_size: int = 180


@dataclass(frozen=True)
class ImageSplits:
    """Normalised float32 inputs [N, C, H, W] and int64 targets of the three splits."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str
    mean: Tensor  # per-channel normalisation statistics of the training split,
    std: Tensor  # kept so shifts can act in pixel space
    pixel_max: float  # full-scale pixel value (255, or 16 for digits)


class ImageClassificationTask:
    """The `Task` protocol for a labelled image dataset; subclasses name the dataset."""

    Config: ClassVar[type[ImageTaskConfig]] = ImageTaskConfig
    dataset: ClassVar[str]  # key of image_data.DATASETS
    input_shape: ClassVar[tuple[int, int, int]]  # (channels, height, width)
    num_classes: ClassVar[int] = 10
    kind = "classify"
    metric = "accuracy"
    higher_is_better = True

    def __init__(self, config: ImageTaskConfig | None = None) -> None:
        config = self.Config() if config is None else config
        if not isinstance(config, ImageTaskConfig):
            raise TypeError(f"{type(self).__name__} needs an ImageTaskConfig, got {type(config).__name__}.")
        if config.model == "vit":
            check_vit_fits(config.vit, self.input_shape)  # fail at construction, not mid-sweep
        self.config = config
        self._splits: ImageSplits | None = None

    # ------------------------------------------------------------------- data

    @property
    def splits(self) -> ImageSplits:
        """The prepared splits, loaded on first use (shared by same-config tasks in a process)."""
        if self._splits is None:
            c = self.config
            self._splits = prepare_splits(
                self.dataset, self.input_shape, c.data_dir, c.source, c.val_size, c.split_seed
            )
        return self._splits

    def check_available(self) -> None:
        """Load the data now, so a missing dataset raises TaskDataError before training."""
        _ = self.splits

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless CPU batches; each epoch is a fresh permutation drawn from `generator`,
        and its last partial batch is kept (so an epoch is exactly n_train examples)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        x, y = self.splits.train_x, self.splits.train_y  # load now, not at the first next()
        return epochs(len(y), batch_size, generator, lambda index: Batch(x[index], y[index]))

    # ------------------------------------------------------ model, loss, metric

    def build_model(self, generator: torch.Generator) -> BlockModel:
        """The configured model (mlp or vit) for this dataset's shape and classes."""
        if self.config.model == "vit":
            return build_vit(self.config.vit, self.input_shape, self.num_classes, generator)
        return build_mlp(self.config.mlp, self.input_shape, self.num_classes, generator)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(outputs, batch.targets)

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Accuracy and mean cross-entropy of `predict`'s logits on "val" or "test".

        The grad mode is left to the caller and to `predict`: methods that infer by
        iterative relaxation (predictive coding) need autograd inside `predict`.
        """
        x, y = self._split(split)
        return score(predict, x, y, device)

    def evaluate_subset(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device,
                        size: int, whole: bool = False) -> tuple[dict[str, float], dict[str, float] | None]:
        """`evaluate` on a fixed stratified subset of `size` examples of the split (`eval_subset`),
        drawn by the task's `split_seed` (never the cell seed), so every method, seed and checkpoint
        is scored on the same images; `size` at or above the split's size is the whole split. With
        `whole`, the rest of the split is scored too and the whole split's metrics come second
        (the same numbers `evaluate` gives, from one pass over the split), else None."""
        x, y = self._split(split)
        if size >= len(y):
            scores = score(predict, x, y, device)
            return scores, (scores if whole else None)
        held = subset_rows(y, size, self.config.split_seed)
        rows = torch.from_numpy(held)
        subset = totals(predict, x[rows], y[rows], device)
        if not whole:
            return means(subset, size), None
        rest = torch.from_numpy(np.setdiff1d(np.arange(len(y)), held, assume_unique=True))
        others = totals(predict, x[rest], y[rest], device)
        return means(subset, size), means((subset[0] + others[0], subset[1] + others[1]), len(y))

    def _split(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
        x, y = (self.splits.val_x, self.splits.val_y) if split == "val" else (self.splits.test_x, self.splits.test_y)
        if len(y) == 0:
            raise ValueError(f"the {split} split of {self.dataset} is empty; set val_size above 0.")
        return x, y

    def evaluate_shifted(self, predict: Callable[[Tensor], Tensor], device: torch.device,
                         shift: ShiftConfig) -> dict[str, float]:
        """Test accuracy under each configured shift (suites/tasks/image_shifts.py), on the
        first `shift.test_subset` test images when that is set."""
        s = self.splits
        n = len(s.test_y) if shift.test_subset is None else min(shift.test_subset, len(s.test_y))
        scale = s.pixel_max
        pixels01 = (s.test_x[:n] * s.std + s.mean) / scale
        sets = shifted_sets(pixels01, shift.noise, shift.rotation, shift.translation, shift.seed)
        return {name: score(predict, (images * scale - s.mean) / s.std, s.test_y[:n], device)["accuracy"]
                for name, images in sets.items()}

    def describe(self) -> dict[str, Any]:
        s = self.splits
        model_config = asdict(self.config.vit if self.config.model == "vit" else self.config.mlp)
        return {
            "dataset": self.dataset,
            "source": s.source,
            "n_train": len(s.train_y),
            "n_val": len(s.val_y),
            "n_test": len(s.test_y),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "model": self.config.model,
            "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in model_config.items()},
            "split_seed": self.config.split_seed,
        }


def score(predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, device: torch.device) -> dict[str, float]:
    """Accuracy and mean cross-entropy of `predict`'s logits on inputs `x`, labels `y`, in chunks."""
    return means(totals(predict, x, y, device), len(y))


def totals(predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, device: torch.device) -> tuple[int, float]:
    """(correct predictions, summed cross-entropy) of `predict`'s logits on `x`, `y`, in chunks."""
    correct, total_loss = 0, 0.0
    for start in range(0, len(y), EVAL_CHUNK):
        inputs = x[start : start + EVAL_CHUNK].to(device)
        targets = y[start : start + EVAL_CHUNK].to(device)
        logits = predict(inputs).detach().float()
        total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
        correct += int((logits.argmax(dim=-1) == targets).sum())
    return correct, total_loss


def means(sums: tuple[int, float], n: int) -> dict[str, float]:
    """`totals` -> accuracy and mean loss over `n` examples."""
    return {"accuracy": sums[0] / n, "loss": sums[1] / n}


def subset_rows(labels: Tensor, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a stratified subset of `size` of a split's `labels`, fixed by `seed`."""
    return stratified_holdout(labels.numpy(), size, seed)[1]


def epochs(n: int, batch_size: int, generator: torch.Generator, take: Callable[[Tensor], Batch]) -> Iterator[Batch]:
    """Endless batches of `n` examples: `take(rows)` for each slice of a fresh permutation per epoch."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield take(order[start : start + batch_size])


@lru_cache(maxsize=4)
def prepare_splits(
    dataset: str,
    input_shape: tuple[int, int, int],
    data_dir: str | None,
    source: str,
    val_size: int,
    split_seed: int,
) -> ImageSplits:
    """Load, carve a stratified validation set of `val_size` by `split_seed`, normalise."""
    data = load_image_data(dataset, data_dir, source)
    if data.train_x.shape[1:] != input_shape or data.test_x.shape[1:] != input_shape:
        raise TaskDataError(
            f"{dataset} from {data.source} has images of shape {data.train_x.shape[1:]} "
            f"(test {data.test_x.shape[1:]}), expected {input_shape}."
        )
    if val_size >= len(data.train_y):
        raise ValueError(
            f"val_size={val_size} leaves no training examples: {dataset} has {len(data.train_y)} "
            "training examples to carve the validation set from."
        )
    keep, held = stratified_holdout(data.train_y, val_size, split_seed)
    train_x = torch.from_numpy(data.train_x[keep].astype(np.float32))
    # Per-channel statistics of the training examples only.
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)

    def normalise(images: np.ndarray) -> Tensor:
        return (torch.from_numpy(images.astype(np.float32)) - mean) / std

    def labels(values: np.ndarray) -> Tensor:
        return torch.tensor(values, dtype=torch.int64)

    return ImageSplits(
        train_x=train_x.sub_(mean).div_(std),
        train_y=labels(data.train_y[keep]),
        val_x=normalise(data.train_x[held]),
        val_y=labels(data.train_y[held]),
        test_x=normalise(data.test_x),
        test_y=labels(data.test_y),
        source=data.source,
        mean=mean,
        std=std,
        pixel_max=float(max(data.train_x.max(), 1)),
    )


@register_task("fashion_mnist")
class FashionMNISTTask(ImageClassificationTask):
    """Zalando's Fashion-MNIST: 60k/10k 28x28 grey clothing images, 10 classes."""

    dataset = "fashion_mnist"
    input_shape = (1, 28, 28)


@register_task("mnist")
class MNISTTask(ImageClassificationTask):
    """LeCun's MNIST: 60k/10k 28x28 grey handwritten digits."""

    dataset = "mnist"
    input_shape = (1, 28, 28)


@register_task("cifar10")
class Cifar10Task(ImageClassificationTask):
    """CIFAR-10: 50k/10k 32x32 colour images, 10 classes."""

    Config = Cifar10Config
    dataset = "cifar10"
    input_shape = (3, 32, 32)


@register_task("digits")
class DigitsTask(ImageClassificationTask):
    """scikit-learn's 8x8 digits (1,797 images, shipped with sklearn): the offline smoke task.

    `data_dir` is ignored (a suite-wide data_dir may reach every task); `source` cannot
    be huggingface, as this data comes only from scikit-learn.
    """

    Config = DigitsConfig
    dataset = "digits"
    input_shape = (1, 8, 8)

    def __init__(self, config: ImageTaskConfig | None = None) -> None:
        super().__init__(config)
        if self.config.source == "huggingface":
            raise ValueError("source='huggingface' is not available for digits: it ships with scikit-learn; "
                             "use source=auto.")
