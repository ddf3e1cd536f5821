"""Optional hooks: every extra a task or a method may offer, each a small Protocol.

The harness looks for nothing that is not declared here or in core.py / control.py;
`loop_for(task)` is the one place that decides which loop of harness/loops/ runs a task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from harness.interface.core import Batch, LoopKind, ShiftConfig, Task


class Experience(Protocol):
    """One experience of a continual task: its own training stream and its own scores."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """An endless stream of this experience's training batches."""

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Accuracy (and loss) on this experience's "val" or "test" split."""


@runtime_checkable
class ContinualTask(Task, Protocol):
    """A task that is a sequence of experiences; harness/loops/continual.py trains through them in order.

    scenario: "class", "task" or "domain"-incremental (van de Ven & Tolias, 2019).
    regime: "sequential" (experience by experience) or "joint" (every phase draws from
      `train_batches`, the union of all experiences: the upper bound).
    `evaluate` scores all experiences together (the curve's validation metric).
    """

    experiences: Sequence[Experience]
    scenario: str
    regime: str


@runtime_checkable
class ExperienceAware(Protocol):
    """A method told where one experience of a continual task ends (EWC's consolidation).

    harness/loops/continual.py calls `end_experience()` after the last step of each
    experience of a sequential run (never in the joint regime, whose phase ends are only
    measurement points). A method that needs no boundary (fine-tuning, replay) does not
    implement it; one that does should do its work lazily in its next `step`, so the meter
    times it and its cost is counted, and return that step's `StepStats.kind` (None if the
    next step is an ordinary one): the meter probes a kind it never probed when told ahead,
    so a once-per-experience step gets its FLOPs counted.
    """

    def end_experience(self) -> str | None: ...


@runtime_checkable
class StagedMethod(Protocol):
    """A method whose update splits into contiguous ranges of blocks with messages only forward
    (local_learning, forward_only): harness/block_parallel.py runs each range in its own process.

    `stage_step(first, last, inputs, batch)` updates blocks first..last-1 from `inputs` (the
    previous range's output, or the batch's inputs for the first range) and returns the output
    to send on and the range's local loss (None when it has none)."""

    def stage_step(self, first: int, last: int, inputs: Tensor, batch: Batch) -> tuple[Tensor, float | None]: ...



@runtime_checkable
class SubsetEvaluableTask(Protocol):
    """A task that can score a fixed subset of a split (the suite key `eval_subset: N`).

    The harness validates on the subset between checkpoints and selects the state on it; the
    last validation also asks for the whole split (`whole=True`), so the whole split's metrics
    of the last state cost no second pass (harness/loops/supervised.py). The subset must be the
    same examples for every method and every cell seed (fixed by the task's own data seed, never
    by the cell seed), so every checkpoint of every cell is compared on the same images; a
    `size` at or above the split's size is the whole split.
    """

    def evaluate_subset(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device,
                        size: int, whole: bool = False) -> tuple[dict[str, float], dict[str, float] | None]:
        """(`evaluate`'s metrics on the split's fixed subset of `size` examples, and with `whole` the
        whole split's metrics from the same predictions plus those of the rest, else None)."""


@runtime_checkable
class ShiftableTask(Protocol):
    """A task that can score a model on shifted copies of its test set (`shift.enabled`)."""

    def evaluate_shifted(self, predict: Callable[[Tensor], Tensor], device: torch.device,
                         shift: ShiftConfig) -> dict[str, float]:
        """{"kind@severity": metric} for every shift and severity of `shift`."""


@runtime_checkable
class FetchableTask(Protocol):
    """A task class whose data `bench data NAME` can fetch (a classmethod)."""

    @classmethod
    def fetch_data(cls, data_dir: str | None = None, force: bool = False) -> dict[str, Any]:
        """Download or unpack the data into `data_dir`; what was written, for the user."""


@runtime_checkable
class MemoryOnlyTask(Protocol):
    """A task whose cells measure the memory of a few steps at scale instead of training.

    memory_only: True when this instance is such a task (a task class may offer both).
    variants: per method name, extra configurations measured beside the cell's own
      (e.g. backprop with checkpointing), as config overrides.
    """

    memory_only: bool
    variants: dict[str, list[dict[str, Any]]]


@runtime_checkable
class LMEvaluableTask(Protocol):
    """A language task lm-eval can score (harness/lm_eval_bridge.py); kind "lm".

    The model side: `encode`/`decode` between text and ids, `context` (the longest
    sequence) and `prefix_token` (what stands before the first token); the evaluation:
    which lm-eval tasks, where their YAML lives, and the metadata handed to them.
    """

    lm_eval_tasks: tuple[str, ...]
    lm_eval_limit: int | None
    lm_eval_batch_size: int
    lm_eval_include_path: Path
    context: int
    prefix_token: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int]) -> str: ...

    def lm_eval_metadata(self) -> dict[str, Any]: ...


@runtime_checkable
class FineTuningConfig(Protocol):
    """A task config that can start from another task's trained model.

    init_from: the label of the suite's pretraining task, or None; the suite's
      `pretrain_method` trains that task first (once, found in the store after that).
    """

    init_from: str | None



@runtime_checkable
class Describable(Protocol):
    """A method that describes itself for the record (e.g. what a control agent was told)."""

    def describe(self) -> dict[str, Any]: ...


class MemoryVariants(Protocol):
    """A method with cheaper-memory settings of itself that a memory claim must also try.

    memory_variants: config overrides, e.g. ({"checkpoint": True}, {"bf16": True}); a
      memory claim's baseline is the variant (or the plain config) with the least memory,
      so a method is never compared against a needlessly heavy baseline.
    """

    memory_variants: ClassVar[tuple[dict[str, Any], ...]]


def memory_variants(method_cls: type) -> tuple[dict[str, Any], ...]:
    """The configs a memory claim tries for `method_cls`: its own, then its `memory_variants`."""
    return ({}, *getattr(method_cls, "memory_variants", ()))  # the declared hook (inherited too), or none


def loop_for(task: Any) -> LoopKind:
    """Which loop runs `task`, by the protocol it declares: the one dispatch rule."""
    if task.kind == "control":
        return "control"
    if isinstance(task, MemoryOnlyTask) and task.memory_only:
        return "memory_only"
    if isinstance(task, ContinualTask):
        return "continual"
    return "supervised"
