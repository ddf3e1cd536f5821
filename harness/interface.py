"""The contract between the harness and the things it compares.

Methods (paradigms) and tasks (data + model factories) see only this module and
`harness.registry`. The harness owns the training loop, the clock, the data order,
the budget and evaluation; a method owns exactly one update (`Method.step`), in the
spirit of AlgoPerf's submission API.

Shapes, in one place:

- A `Batch` is `inputs` and `targets` on the cell's device; `size` is the number of
  examples it carries (what the `examples` budget counts).
- A `BlockModel` is `stem -> blocks[0] -> ... -> blocks[-1] -> head`. Global methods
  call it as one module; local methods (forward-forward, predictive coding, local
  learning) read and train each block's output.
- A `Task` hands out batches, builds a fresh model for a seed, defines the training
  loss a global method minimises and the metric the harness reports.

The whole contract is here, optional parts included: every hook a task or a method may
offer is a small Protocol below (`ShiftableTask`, `FetchableTask`, `MemoryOnlyTask`,
`ContinualTask`, `ControlTask`, `LMEvaluableTask`, `FineTuningConfig`; `Describable`,
`MemoryVariants` for methods), and the harness looks for nothing else. `loop_for(task)`
is the one place that decides which loop a task runs in. Task kinds are `TaskKind`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class ShiftConfig:
    """`shift.*` keys: score the selected state on shifted copies of the test set too.

    Severities are lists, one evaluation each; a task that can shift its inputs
    implements `evaluate_shifted(predict, device, shift) -> {"kind@severity": metric}`.
    """

    enabled: bool = False
    noise: tuple[float, ...] = (0.1, 0.3)  # Gaussian noise std, in units of the full pixel range
    rotation: tuple[float, ...] = (15.0, 30.0)  # degrees
    translation: tuple[int, ...] = (2, 4)  # pixels, right and down
    seed: int = 0  # the noise is the same for every method and cell

    def __post_init__(self) -> None:
        if any(s < 0 for s in self.noise) or any(p < 0 for p in self.translation):
            raise ValueError("noise and translation severities must be >= 0")


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


Observation = tuple[int, ...]  # one outcome index per observation modality of a control task


@dataclass(frozen=True)
class Transition:
    """One environment step, as a control method is told about it after acting.

    terminated: the episode reached a terminal state (no value beyond it);
    truncated: the episode was cut by the task's time limit (the state itself goes on).
    """

    observation: Observation
    action: int
    reward: float
    next_observation: Observation
    terminated: bool
    truncated: bool

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class ControlEnv(Protocol):
    """One seeded environment; the harness alone calls it (methods never see it)."""

    def reset(self) -> Observation: ...

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        """(next observation, reward, terminated, truncated)."""


@dataclass(frozen=True)
class DiscreteModelSpec:
    """What a control task tells a model-based agent about itself, and nothing more.

    A POMDP over one hidden-state factor (pymdp's A, B, C, D; Da Costa et al. 2020). Only
    the parts the task declares known are handed over; a part given as None is unknown
    and must be learned from experience (the agent sees its shape, never its values).

    A: per observation modality, p(outcome | state) [outcomes, states], or None.
    B: p(next state | state, action) [states, states, actions], or None.
    C: per modality, log-preferences over outcomes (the agent's reading of reward).
    D: prior over the initial state [states].
    horizon: a planning depth that lets an agent see the end of an episode.
    notes: in words, what was given and why (for the record).
    """

    states: int
    A: tuple[Any, ...]
    B: Any
    C: tuple[Any, ...]
    D: Any
    horizon: int
    notes: str = ""


@runtime_checkable
class ControlTask(Protocol):
    """An environment with discrete observations and actions; harness/loops/control.py runs it.

    The harness owns the environment loop, the clock, the budget (`env_steps`) and the
    scoring; a method only acts and learns. Observations are tuples of outcome indices,
    one per modality (`observation_counts`); networks read them one-hot and concatenated
    (`build_model` builds such a network with `action_count` outputs).

    target_return: the moving-average return (over `window` episodes) that counts as
      solving the task; samples-to-target is the first environment step where it is met.
    """

    name: str
    kind: TaskKind  # "control"
    metric: str  # "return"
    higher_is_better: bool
    observation_counts: tuple[int, ...]
    action_count: int
    target_return: float
    window: int

    def check_available(self) -> None: ...

    def make_env(self, seed: int) -> ControlEnv: ...

    def build_model(self, generator: torch.Generator) -> BlockModel: ...

    def generative_model(self) -> DiscreteModelSpec: ...

    def describe(self) -> dict[str, Any]: ...


def one_hot(observation: Observation, counts: Sequence[int]) -> Tensor:
    """The network input of one observation: its modalities one-hot, concatenated."""
    out = torch.zeros(sum(counts))
    offset = 0
    for index, count in zip(observation, counts):
        out[offset + index] = 1.0
        offset += count
    return out


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


class ControlMethod(Protocol):
    """A method that learns by acting (task kind "control"), driven one env step at a time.

    Per environment step the harness calls `act` on the current observation, steps the
    environment, then `observe` with the transition (the method's update; its StepStats
    is the step the meter times). `reset` announces a new episode and its first
    observation. The method never sees the environment, the clock or the budget.
    """

    name: ClassVar[str]
    supports: ClassVar[frozenset[str]]
    Config: ClassVar[type]

    def setup(self, ctx: SetupContext) -> None: ...

    def reset(self, observation: Observation) -> None: ...

    def act(self, observation: Observation) -> int: ...

    def observe(self, transition: Transition) -> StepStats: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def memory_buffers(self) -> dict[str, Tensor | list[Tensor]]: ...


REQUIRED_METHOD_MEMBERS = ("supports", "Config", "setup", "state_dict", "load_state_dict", "memory_buffers")
"""What the registry checks a method class defines (plus `step`/`predict` or `act`/`observe`)."""


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
