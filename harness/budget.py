"""Budgets: how much training a cell gets, and the counters every record carries.

Rules (the same for every method):

- A *step* is one call to `Method.step` on one batch from the harness.
- *examples* are the training examples the method reports consuming (`StepStats.examples`).
- *env_steps* (control tasks only, harness/loops/control.py): environment transitions, one per
  `act` + environment step + `observe`. A control cell counts one step and one example per
  environment step whatever the method does inside (a DQN replaying 128 stored transitions
  has still drawn one new sample), so steps = examples = env_steps there.
- *forward_equivalents* are the method's own count of full-model forward passes over
  its batch (`StepStats.forward_equivalents`); backprop counts ~3 per step.
- *seconds* are wall seconds spent inside `Method.step` only (device-synchronised);
  evaluation, checkpoint copies and logging are not counted. A step run under the
  meter's FLOP probe is charged as the un-probed steps of its kind run (their median,
  once the first is seen; its own time only when none ever runs): the probe's slowdown
  is the meter's, so it never eats a seconds budget (harness/meter.py); the excess is
  recorded apart as `timing.phase_seconds["probe"]`.
- *flops* are counted FLOPs per step kind (from the meter's probes) times the steps
  of that kind; *joules* are measured energy inside steps (harness/meter.py). A
  joules budget is refused where no energy counter exists.
- The budget is checked *before* each step: training stops at the first step boundary
  where the budgeted counter has reached its limit. The last step may overshoot by
  less than one step; the record holds the exact counters, never the nominal budget.
- Every record carries all counters whatever the budget kind, so any comparison can
  be redrawn on another axis.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BUDGET_KINDS: tuple[str, ...] = ("steps", "examples", "forward_equivalents", "seconds", "flops", "joules", "env_steps")


@dataclass(frozen=True)
class Budget:
    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise ValueError(f"unknown budget kind {self.kind!r}; use one of {', '.join(BUDGET_KINDS)}")
        if not (self.value > 0 and math.isfinite(self.value)):
            raise ValueError(f"budget.{self.kind} must be a positive number, got {self.value!r}")

    def __str__(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{value} {self.kind}"


@dataclass
class Counters:
    """What a cell has spent so far; updated by the runner after every step."""

    steps: int = 0
    examples: int = 0
    forward_equivalents: float = 0.0
    seconds: float = 0.0
    flops: float | None = 0.0  # None while a step kind awaits its FLOP probe
    joules: float | None = None  # None where energy is not measured
    env_steps: int = 0  # environment transitions (control cells; 0 elsewhere)

    def add(self, examples: int, forward_equivalents: float, seconds: float) -> None:
        self.steps += 1
        self.examples += int(examples)
        self.forward_equivalents += float(forward_equivalents)
        self.seconds += float(seconds)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def spent_fraction(budget: Budget, counters: Counters) -> float:
    """Share of the budget spent, clipped to [0, 1]; schedules follow this.

    A counter that is momentarily unknown (FLOPs awaiting a probe) counts as the
    steps' share so far being unknown: the fraction stays where it was last known.
    """
    spent = getattr(counters, budget.kind)
    return 0.0 if spent is None else min(1.0, spent / budget.value)


def exhausted(budget: Budget, counters: Counters) -> bool:
    spent = getattr(counters, budget.kind)
    return spent is not None and spent >= budget.value


def planned_steps(budget: Budget, batch_size: int) -> int | None:
    """Steps the budget allows when that is known before training, else None."""
    if budget.kind == "steps":
        return int(math.ceil(budget.value))
    if budget.kind == "examples":
        return int(math.ceil(budget.value / batch_size))
    if budget.kind == "env_steps":  # one step per environment step
        return int(math.ceil(budget.value))
    return None
