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
offer is a small Protocol below (`ShiftableTask`, `SubsetEvaluableTask`, `FetchableTask`, `MemoryOnlyTask`,
`ContinualTask`, `ControlTask`, `LMEvaluableTask`, `FineTuningConfig`; `Describable`,
`MemoryVariants`, `ExperienceAware`, `StagedMethod` for methods), and the harness looks for nothing else. `loop_for(task)`
is the one place that decides which loop a task runs in. Task kinds are `TaskKind`.

Where each part lives (import everything from `harness.interface`):

    core.py      Batch, StepStats, BlockModel, Task, TaskKind, SetupContext, Method, ShiftConfig
    hooks.py     the optional task and method hooks above, and loop_for
    control.py   ControlTask, ControlEnv, ControlMethod, Transition, DiscreteModelSpec
"""

from harness.interface.control import (
    ControlEnv,
    ControlMethod,
    ControlTask,
    DiscreteModelSpec,
    Observation,
    Transition,
    one_hot,
)
from harness.interface.core import (
    TASK_KINDS,
    Batch,
    BlockModel,
    LoopKind,
    Method,
    REQUIRED_METHOD_MEMBERS,
    SetupContext,
    ShiftConfig,
    StepStats,
    Task,
    TaskDataError,
    TaskKind,
    added_later,
    optimizer_state_tensors,
    seeded_init,
)
from harness.interface.hooks import (
    ContinualTask,
    Describable,
    Experience,
    ExperienceAware,
    FetchableTask,
    FineTuningConfig,
    LMEvaluableTask,
    MemoryOnlyTask,
    MemoryVariants,
    ShiftableTask,
    StagedMethod,
    SubsetEvaluableTask,
    loop_for,
    memory_variants,
)

__all__ = [
    'TASK_KINDS',
    'added_later',
    'Batch',
    'BlockModel',
    'ContinualTask',
    'ControlEnv',
    'ControlMethod',
    'ControlTask',
    'Describable',
    'DiscreteModelSpec',
    'Experience',
    'ExperienceAware',
    'FetchableTask',
    'FineTuningConfig',
    'LMEvaluableTask',
    'LoopKind',
    'MemoryOnlyTask',
    'MemoryVariants',
    'Method',
    'Observation',
    'REQUIRED_METHOD_MEMBERS',
    'SetupContext',
    'ShiftConfig',
    'ShiftableTask',
    'StagedMethod',
    'StepStats',
    'SubsetEvaluableTask',
    'Task',
    'TaskDataError',
    'TaskKind',
    'Transition',
    'loop_for',
    'memory_variants',
    'one_hot',
    'optimizer_state_tensors',
    'seeded_init',
]
