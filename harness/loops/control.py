"""One control cell: the harness runs the environment, the method acts and learns.

The protocol (the same for every method; harness/interface.py `ControlTask`, `ControlMethod`):

- The method is set up once (harness/loops/common.py `start_cell`: seeding, the task's network,
  the method's generator) and the environment is built from the cell seed alone, so every
  method meets the same sequence of environment randomness for a given seed.
- One step = `act(observation)`, the environment's step, `observe(transition)` (the update)
  and, when the episode ended, the environment's reset and `reset(first observation)`. The
  meter times and probes that whole unit: the tabular environments here step in
  microseconds, so the step time is the method's (environment time is not subtracted).
  Every step counts one environment step, one step and one example (harness/budget.py).
- The budget is normally `env_steps`; it is checked before each step, so a cell spends it
  exactly (an episode still running at the end is cut off and not scored).
- Scoring is online, as in the sample-efficiency literature: the return of every training
  episode. The curve's `val_metric` is the moving average of the last `task.window` episode
  returns (None until that many episodes have ended: one lucky early episode is not a
  solved task), recorded every `eval_every` environment steps, at the step where the
  target is first met, and at the end. There is no separate evaluation and no
  validation-based selection: an agent is scored by what it did.
- samples-to-target: the environment step at which the moving average first reaches
  `task.target_return`; null with the reason when it never does. It is in
  `final["test"]` and in `record["control"]`, with every episode's return and end step,
  so the curve can be redrawn with another window.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from typing import Any

import numpy as np
import torch

from harness import budget as budgets
from harness.interface import ControlTask, Describable, StepStats, Transition
from harness.meter import Meter
from harness.plan import Cell
from harness.loops.common import StepProgress, ProgressCallback, measurement_fields, start_cell, wall_phases


def env_seed(seed: int) -> int:
    """The environment's seed: derived from the cell seed, apart from the three torch streams."""
    return int(np.random.SeedSequence([seed, 0xC0]).generate_state(1)[0])


def train_control(cell: Cell, task: ControlTask, method_cls: type,
                  on_progress: ProgressCallback | None) -> dict[str, Any]:
    """Run `method_cls` on `task`'s environment for the cell's budget; the record's fields."""
    born = time.perf_counter()
    method, model, counters, _ = start_cell(cell, task, method_cls, cell.budget)
    device = torch.device(cell.device)
    env = task.make_env(env_seed(cell.seed))
    set_up = time.perf_counter()
    window: deque[float] = deque(maxlen=task.window)
    returns: list[float] = []
    ends: list[int] = []
    curve: list[dict[str, Any]] = []
    losses: list[float] = []
    reached_at: int | None = None
    best_average: float | None = None
    diverged: str | None = None
    state: dict[str, Any] = {"observation": env.reset(), "return": 0.0, "transition": None}
    method.reset(state["observation"])

    def moving_average() -> float | None:
        return statistics.fmean(window) if len(window) == task.window else None

    def point(**extra: Any) -> None:
        curve.append({**counters.as_dict(), "train_loss": statistics.fmean(losses) if losses else None,
                      "val_metric": moving_average(), "episodes": len(returns), **extra})
        losses.clear()

    def one_step() -> StepStats:
        """act, the environment's step, observe (and the next episode's start): the metered unit."""
        observation = state["observation"]
        action = int(method.act(observation))
        next_observation, reward, terminated, truncated = env.step(action)
        transition = Transition(observation, action, float(reward), tuple(next_observation),
                                bool(terminated), bool(truncated))
        state["transition"] = transition
        stats = method.observe(transition)
        if transition.done:
            state["observation"] = env.reset()
            method.reset(state["observation"])
        else:
            state["observation"] = transition.next_observation
        return stats

    with Meter(device, model, method, cell.meter) as meter:
        while not budgets.exhausted(cell.budget, counters):
            stats, cost = meter.step(one_step)
            transition = state["transition"]
            counters.add(1, stats.forward_equivalents, cost.seconds)
            counters.env_steps += 1
            counters.flops, counters.joules = meter.flops(), meter.joules()
            if stats.loss is not None and not math.isfinite(stats.loss):
                point()
                diverged = f"non-finite training loss ({stats.loss}) at environment step {counters.env_steps}"
                break
            if stats.loss is not None:
                losses.append(stats.loss)
            state["return"] += transition.reward
            if transition.done:
                returns.append(state["return"])
                ends.append(counters.env_steps)
                window.append(state["return"])
                state["return"] = 0.0
                average = moving_average()
                if average is not None:
                    best_average = average if best_average is None else max(best_average, average)
                    if reached_at is None and average >= task.target_return:
                        reached_at = counters.env_steps
                        point(target_reached=True)
            if counters.env_steps % cell.eval_every == 0 or budgets.exhausted(cell.budget, counters):
                point()
            if on_progress is not None:
                on_progress(StepProgress(cell, counters, budgets.spent_fraction(cell.budget, counters),
                                     stats.loss, moving_average()))
        counters.seconds += meter.flush(settle=True)  # a probe no un-probed step settled is charged its own time
    report = meter.report()  # no evaluation phase: scoring is online
    phases = wall_phases(meter, report, set_up - born, set_up)
    common = measurement_fields(task, counters, curve, report, eval_seconds=0.0, phases=phases)
    reason = None
    if reached_at is None:
        reason = (f"fewer than {task.window} episodes ended within {counters.env_steps} environment steps"
                  if best_average is None else
                  f"the moving average over {task.window} episodes peaked at {best_average:.3f} < target "
                  f"{task.target_return} within {counters.env_steps} environment steps")
    control = {
        "target_return": task.target_return, "window": task.window,
        "samples_to_target": reached_at, "samples_to_target_reason": reason,
        "episodes": len(returns), "episode_returns": returns, "episode_end_steps": ends,
        "agent": method.describe() if isinstance(method, Describable) else {"method": cell.method.name},
        "scoring": "online: training-episode returns; no separate evaluation, no selection (last state)",
    }
    if diverged is not None:
        return {"status": "diverged", "error": diverged, "final": None, "control": control, **common}
    final_average = moving_average()
    if final_average is None and returns:  # fewer episodes than the window: say so, use what there is
        final_average = statistics.fmean(returns)
    scores = {"return": final_average, "samples_to_target": reached_at, "samples_to_target_reason": reason,
              "episodes": len(returns), "window_full": len(window) == task.window}
    final = {"metric": "return", "best_step": counters.steps, "val": scores, "test": dict(scores)}
    return {"status": "completed", "final": final, "control": control, **common}

