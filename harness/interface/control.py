"""The control contract: environments with discrete observations and actions, and the
methods that learn by acting in them (harness/loops/control.py drives both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from harness.interface.core import BlockModel, SetupContext, StepStats, TaskKind


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
