"""Continual control: the grid world whose goal moves between phases (A, then B, then A again).

The A-B-A design of continual reinforcement learning (Wolczyk et al. 2021, "Continual World",
NeurIPS, measure forgetting as the drop of a task's performance after training on later ones):
- phase 1 (world A): the goal is the grid world's usual bottom-right cell (15), for
  `phase_steps[0]` environment steps;
- phase 2 (world B): the goal moves to cell 4 (second row, first column: one move from the
  start, five from A's goal), for `phase_steps[1]` steps. Far from A's goal on purpose: with
  B's goal at cell 10, two moves from A's, a model-free policy that heads for 10 and wanders
  on from there (10 no longer ends the episode) found A's goal by chance within the 16-move
  limit, and A's return after B measured the geometry more than retention (measured: PPO
  0.85-1.0 on A again in every seed, DQN 0.05-1.0, the active-inference agent, which stays
  where it believes the goal is, 0.25-0.55);
  (2,000 steps each by default: DQN, exploring over its first 900, reaches the grid world's
  target after ~1,500 on average; with 1,200 it had not learned A when A ended)
- phase 3 (world A again) until the budget ends.
The world changes at the first episode start after a phase's steps are spent, never inside an
episode; observations do not say which phase it is (the agent must notice the change).

Forgetting (harness/quantities.py `control_phases`): the moving-average return of the last
`window` episodes of phase 1 minus that of the first `window` episodes of phase 3, the return
on A's world just after phase 1 against after phase 2. Scoring is online, as everywhere in the
control suite: the agent keeps learning in phase 3, so its first episodes there measure what
phase 2 left of A (and how fast it is recovered within `window` episodes), not a frozen
evaluation, which the control contract has no hook for (the active-inference agent infers its
state inside `observe`). Phase 2's last window is the plasticity guard: a method that never
leaves A's goal forgets nothing and fails B.

What the active-inference agent is given is the grid world's (control_envs.py): positions
observed exactly and the start; transitions and where the goal is are learned, by Dirichlet
counts that keep accumulating over phases (no forgetting factor: pymdp's default).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.interface import Observation
from harness.registry import register_task
from suites.tasks.control_envs import GOAL, GRID, GridWorldConfig, GridWorldEnv, GridWorldTask

MOVED_GOAL = 4


@dataclass(frozen=True)
class MovingGoalConfig(GridWorldConfig):
    goals: tuple[int, ...] = (GOAL, MOVED_GOAL, GOAL)  # the goal cell of each phase
    phase_steps: tuple[int, ...] = (2000, 2000)  # environment steps of every phase but the last

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "goals", tuple(int(g) for g in self.goals))  # YAML gives lists
        object.__setattr__(self, "phase_steps", tuple(int(n) for n in self.phase_steps))
        if len(self.phase_steps) != len(self.goals) - 1:
            raise ValueError(f"phase_steps needs one length per phase but the last: {len(self.goals)} goals "
                             f"need {len(self.goals) - 1} lengths, got {list(self.phase_steps)}.")
        if any(n < 1 for n in self.phase_steps):
            raise ValueError(f"phase_steps must be positive environment-step counts, got {list(self.phase_steps)}.")
        open_cells = [i for i, c in enumerate("".join(GRID)) if c != "#" and i != 0]
        bad = [g for g in self.goals if g not in open_cells]
        if bad:
            raise ValueError(f"goals must be open cells other than the start (0): {open_cells}; got {bad}.")

    def boundaries(self) -> list[int]:
        """The environment steps at which each phase after the first may begin."""
        ends, total = [], 0
        for n in self.phase_steps:
            total += n
            ends.append(total)
        return ends


class MovingGoalEnv(GridWorldEnv):
    """The grid world; at an episode start past a phase boundary, the goal moves."""

    def __init__(self, config: MovingGoalConfig, seed: int) -> None:
        super().__init__(config, seed)
        self.moving = config
        self.steps, self.phase = 0, 0
        self.goal = config.goals[0]

    def reset(self) -> Observation:
        boundaries = self.moving.boundaries()
        while self.phase < len(boundaries) and self.steps >= boundaries[self.phase]:
            self.phase += 1
        self.goal = self.moving.goals[self.phase]
        return super().reset()

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        self.steps += 1
        return super().step(action)


@register_task("grid_world_moving_goal")
class MovingGoalTask(GridWorldTask):
    """The grid world's observations, actions and generative model; the goal moves by phase."""

    Config = MovingGoalConfig

    def make_env(self, seed: int) -> MovingGoalEnv:
        return MovingGoalEnv(self.config, seed)
