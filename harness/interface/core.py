"""The core of the contract: batches, step statistics, the block model, tasks and methods.

See harness/interface/__init__.py for the whole contract and where each part lives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

import torch
from torch import Tensor, nn


TaskKind = Literal["classify", "lm", "control"]
"""What sort of problem a task is; a method's `supports` names the kinds it can train."""
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)

LoopKind = Literal["supervised", "continual", "control", "memory_only"]
"""Which loop of harness/loops/ runs a task (see `loop_for`)."""


@dataclass(frozen=True)
class Batch:
    """One minibatch: model inputs and the targets the task scores against."""

    inputs: Tensor
    targets: Tensor

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True))


@dataclass(frozen=True)
class StepStats:
    """What one update reports back to the harness.

    loss: the method's own training objective for this step (None when the method
      has none, e.g. a pure Hebbian update); a non-finite value ends the cell as
      `diverged`.
    examples: training examples consumed by this update.
    forward_equivalents: cost in forward passes of the full model over this batch
      (backprop ~3: forward + backward at ~2x; MeZO 2; an ES population of P: P).
    kind: which sort of step this was, for methods whose steps differ in cost
      (e.g. "inference" and "learning" phases); the meter counts FLOPs per kind.
    """

    loss: float | None
    examples: int
    forward_equivalents: float
    kind: str = "update"


class BlockModel(nn.Module):
    """A model as an ordered list of blocks between a stem and a head.

    `stem` maps raw inputs to the first block's input (flatten, patch embedding,
    token embedding), `blocks` are the units local learning rules train one by one,
    and `head` maps the last block's output to logits. `forward` is the plain
    composition, so global methods can treat the model as one module.
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def block_outputs(self, x: Tensor) -> list[Tensor]:
        """Outputs of the stem and of every block, in order (len = len(blocks) + 1)."""
        outputs = [self.stem(x)]
        for block in self.blocks:
            outputs.append(block(outputs[-1]))
        return outputs


@runtime_checkable
class Task(Protocol):
    """Data splits, a model factory, a loss and a metric for one problem.

    kind: what sort of problem this is ("classify", "lm", "control", ...); methods
      declare the kinds they support.
    metric: name of the headline metric `evaluate` returns (e.g. "accuracy");
      `higher_is_better` says which way model selection goes.
    """

    name: str
    kind: TaskKind
    metric: str
    higher_is_better: bool

    def check_available(self) -> None:
        """Raise a `TaskDataError` saying how to get the data, before any training."""

    def build_model(self, generator: torch.Generator) -> BlockModel:
        """A freshly initialised model; all randomness comes from `generator`."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """An endless stream of training batches, reshuffled each epoch by `generator`."""

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """The training loss a global method minimises (e.g. cross-entropy)."""

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Metrics of `predict` on split "val" or "test"; includes `self.metric`."""

    def describe(self) -> dict[str, Any]:
        """Sizes of the splits, input shape, number of classes: for the record."""


@dataclass(frozen=True)
class ShiftConfig:
    """`shift.*` keys: score the selected state on shifted copies of the test set too.

    Severities are lists, one evaluation each; a task that can shift its inputs
    implements `evaluate_shifted(predict, device, shift) -> {"kind@severity": metric}`.
    `test_subset`: score the shifts on the first N test examples only (a fixed subset, the
    same for every method; the gap is then taken against clean accuracy on those same N).
    """

    enabled: bool = False
    noise: tuple[float, ...] = (0.1, 0.3)  # Gaussian noise std, in units of the full pixel range
    rotation: tuple[float, ...] = (15.0, 30.0)  # degrees
    translation: tuple[int, ...] = (2, 4)  # pixels, right and down
    seed: int = 0  # the noise is the same for every method and cell
    test_subset: int | None = None  # None: the whole test set

    def __post_init__(self) -> None:
        if any(s < 0 for s in self.noise) or any(p < 0 for p in self.translation):
            raise ValueError("noise and translation severities must be >= 0")
        if self.test_subset is not None and self.test_subset < 1:
            raise ValueError(f"test_subset must be a positive number of test examples (or null: all), "
                             f"got {self.test_subset}")


class TaskDataError(RuntimeError):
    """The data a task needs is not present; the message says how to get it."""


@dataclass
class SetupContext:
    """Everything a method may know when it is set up, in one small object.

    generator: the method's only source of randomness (zeroth-order and evolution
      methods replay perturbations from it); seeded by the harness per cell.
    budget_fraction: returns how much of the cell's budget is spent, in [0, 1];
      schedules should follow it so they work for every budget kind.
    planned_steps: the number of steps the budget allows when it is known in
      advance (steps and examples budgets), else None.
    """

    model: BlockModel
    task: Task
    config: Any
    device: torch.device
    generator: torch.Generator
    budget_fraction: Callable[[], float]
    planned_steps: int | None = None


class Method(Protocol):
    """One learning paradigm, driven step by step by the harness.

    Implementations are registered with `@register_method("name")`, carry a frozen
    dataclass `Config` of their hyper-parameters (the paper's values as defaults),
    and a `supports` set of task kinds. They never own the loop, the clock, the data
    order or evaluation.
    """

    name: ClassVar[str]
    supports: ClassVar[frozenset[str]]
    Config: ClassVar[type]

    def setup(self, ctx: SetupContext) -> None: ...

    def step(self, batch: Batch) -> StepStats: ...

    def predict(self, inputs: Tensor) -> Tensor:
        """Logits (or an action distribution) for `inputs`, without learning."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def memory_buffers(self) -> dict[str, Tensor | list[Tensor]]:
        """Every tensor the method keeps besides the model's parameters and gradients
        (optimizer state, value nodes, perturbation seeds, auxiliary heads), so the memory
        ledger counts it. Required: the registry refuses a method without it."""


def added_later(default: Any) -> Any:
    """A Config field added after records exist (`x: float = added_later(1.0)`): at its default
    it stays out of the cell's run id (harness/plan.py), so adding a knob keeps the id, and the
    records, of every cell that does not set it; set to any other value, it is in."""
    return field(default=default, metadata={"run_id": "when_not_default"})


REQUIRED_METHOD_MEMBERS = ("supports", "Config", "setup", "state_dict", "load_state_dict", "memory_buffers")
"""What the registry checks a method class defines (plus `step`/`predict` or `act`/`observe`)."""


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every tensor an optimizer keeps per parameter (momenta, second moments, steps)."""
    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)]


@contextmanager
def seeded_init(generator: torch.Generator) -> Iterator[None]:
    """Modules built inside draw their initial weights from `generator` alone.

    nn.Module initialisers draw from the global RNG; a seed drawn from `generator` seeds a
    forked copy of it (CPU only: models are built on the CPU and moved later), so the
    caller's global state is left untouched. The seed is drawn on the CPU explicitly, so
    this also works inside a `torch.device("meta")` context.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device="cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
