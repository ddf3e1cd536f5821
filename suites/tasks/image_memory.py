"""Fashion-MNIST's ViT (or MLP) measured, not trained: the memory of a few training steps.

The same model, batches and methods as the `fashion_mnist` task, with `memory_only: true`:
harness/loops/memory_only.py runs each cell's steps on the meta device (on a CPU; for real too
with device=cuda) and records the simulated allocator peak, which counts forward activations
of no-grad passes and checkpointing's recomputation (the ledger does not). Memory claims read
that peak (quantity memory_ratio_peak): suites/vit-memory.yaml, claims local-learning-vit-memory*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.registry import register_task
from suites.tasks.image_classification import FashionMNISTTask, ImageTaskConfig


@dataclass(frozen=True)
class ImageMemoryConfig(ImageTaskConfig):
    memory_only: bool = True
    variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # {method: [config, ...]} measured beside

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.variants, dict) or not all(isinstance(v, list) for v in self.variants.values()):
            raise ValueError(f"variants must map a method name to a list of configs, got {self.variants!r}")


@register_task("fashion_mnist_memory")
class FashionMNISTMemoryTask(FashionMNISTTask):
    """Fashion-MNIST shapes for memory-only cells (the data gives one batch's shape)."""

    Config = ImageMemoryConfig

    def __init__(self, config: ImageMemoryConfig | None = None) -> None:
        super().__init__(config)
        self.memory_only = self.config.memory_only
        self.variants = self.config.variants
