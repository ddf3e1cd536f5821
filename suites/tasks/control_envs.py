"""Control tasks with discrete observations: the T-maze, a small grid world, a maze, FrozenLake.

Every task implements `ControlTask` (harness/interface.py): `make_env(seed)` gives a seeded
environment whose observations are tuples of outcome indices, one per modality; networks
read them one-hot (`build_model`: an MLP with one output per action); a model-based agent
may ask for `generative_model()`, which hands over only what the task declares known.
Rewards and the target return are the same for every method.

- t_maze: the classic active-inference T-maze (Friston et al. 2015; pymdp's `TMazeEnv`,
  Heins et al. 2022). Locations centre, cue, left arm, right arm; a hidden context (which
  arm is rewarded) drawn 50/50 per episode. At the cue location the cue shows the context
  with probability `cue_validity` (else the other one). Entering an arm ends the episode:
  reward 1 and outcome "reward" in the rewarded arm, 0 and "loss" in the other. Two moves
  per episode, so the informed policy is cue then arm (expected return = cue_validity);
  guessing scores 0.5; running out of moves ends the trial (terminated, return 0). Differences from pymdp: there the cue is exact and the arms pay
  with probability 0.98; here the cue is noisy and the arms are exact (so `cue_validity`
  is the best achievable success rate), and arms end the episode.
  Modalities: location (4), outcome (none, reward, loss), cue (none, left, right).
- grid_world: a 4x4 room with an L-shaped wall, start top-left, goal bottom-right (6 moves);
  a move goes astray to a random other direction with probability `slip`; reward 1 at
  the goal (terminal). Modalities: position (16), outcome (none, goal).
- maze: a 6x6 maze (29 open cells), three pits that end the episode with 0, dead ends and
  `slip`; start top-left; the shortest route to the goal is 6 moves and passes beside a pit,
  a safer one 8. Modalities: position (36), outcome (none, goal, pit). The grid world's env
  with another layout (`GridWorldEnv.grid`).
- frozen_lake: gymnasium's FrozenLake-v1 (4x4; `slippery` false by default: the slippery
  lake's best success rate is ~0.74). Reward 1 at the goal; holes end the episode with 0.
  Modalities: position (16), outcome (none, goal, hole), the outcome read from gymnasium's
  reward and termination. Needs `pip install -e '.[control]'`.

What the generative models give an active-inference agent (the rest it learns):
- t_maze: the location and cue likelihoods and the transitions (the maze's layout and the
  cue's meaning), and by default (`outcome_model: given`, pymdp's demo setting) which arm
  pays in which context: the agent then only has to infer the context, and learns D.
  With `outcome_model: learned` the outcome likelihood starts flat: an arm entered without
  the cue leaves the context at 50/50, so its counts are smeared over both contexts, and
  seeds that guess before they look learn "each arm pays half the time" and stop using the
  cue (measured: some seeds solve it at once, others stay at ~0.5). Without a known cue
  meaning the two contexts are symmetric and no learning could break the tie.
  Preferences: reward +3, loss -6, not pymdp's -3: with arms that end the episode and plain
  (not sophisticated) policy evaluation, a 50/50 guess must look worse than a step spent
  at the cue, or the agent guesses (measured with -3: success ~0.6).
- grid_world, maze, frozen_lake: that positions are observed exactly (A of the position
  modality is the identity) and the start position; the transitions (walls, slips,
  holes, pits) and where the outcomes occur are learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from harness.interface import BlockModel, DiscreteModelSpec, Observation, TaskDataError
from harness.registry import register_task
from suites.tasks.vision_models import MLPConfig, build_mlp


@dataclass(frozen=True)
class ControlConfig:
    """Keys every control task has: the network for the methods that learn one, and scoring."""

    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=(64,)))
    target_return: float = 0.9  # moving-average return that counts as solved
    window: int = 20  # episodes in the moving average
    max_steps: int = 20  # episode time limit (truncation)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 episode, got {self.window}.")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}.")


class ControlTaskBase:
    """Shared by the tasks: scoring keys, the one-hot MLP, the description."""

    Config: ClassVar[type[ControlConfig]] = ControlConfig
    kind = "control"
    metric = "return"
    higher_is_better = True
    observation_counts: tuple[int, ...]
    action_count: int

    def __init__(self, config: ControlConfig | None = None) -> None:
        self.config = self.Config() if config is None else config
        self.target_return = self.config.target_return
        self.window = self.config.window

    def check_available(self) -> None:
        """Tabular environments written here need nothing."""

    def build_model(self, generator: torch.Generator) -> BlockModel:
        """An MLP over the concatenated one-hot observation, one output per action."""
        return build_mlp(self.config.mlp, (sum(self.observation_counts), 1, 1), self.action_count, generator)

    def describe(self) -> dict[str, Any]:
        return {"observation_counts": list(self.observation_counts), "action_count": self.action_count,
                "target_return": self.target_return, "window": self.window, "max_steps": self.config.max_steps,
                "config": {k: v for k, v in vars(self.config).items() if k != "mlp"}}


# ------------------------------------------------------------------------------ T-maze

CENTRE, CUE, LEFT, RIGHT = range(4)
NONE, REWARD, LOSS = range(3)


@dataclass(frozen=True)
class TMazeConfig(ControlConfig):
    cue_validity: float = 0.95  # p(cue shows the rewarded arm)
    outcome_model: Literal["given", "learned"] = "given"  # what a model-based agent is told (see above)
    window: int = 100
    max_steps: int = 2  # two moves: cue, then an arm

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.5 <= self.cue_validity <= 1.0:
            raise ValueError(f"cue_validity must be in [0.5, 1] (0.5: an uninformative cue), got {self.cue_validity}.")


class TMazeEnv:
    def __init__(self, config: TMazeConfig, seed: int) -> None:
        self.config, self.rng = config, np.random.default_rng(seed)

    def reset(self) -> Observation:
        self.location, self.context, self.t = CENTRE, int(self.rng.integers(2)), 0  # context 0: left pays
        return (CENTRE, NONE, 0)

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        if not 0 <= action < 4:
            raise ValueError(f"T-maze actions are 0..3 (go to centre, cue, left, right), got {action}.")
        self.t += 1
        self.location = action
        cue, outcome, reward, terminated = 0, NONE, 0.0, False
        if action == CUE:
            valid = self.rng.random() < self.config.cue_validity
            cue = 1 + (self.context if valid else 1 - self.context)
        elif action in (LEFT, RIGHT):
            paid = (action - LEFT) == self.context
            outcome, reward, terminated = (REWARD, 1.0, True) if paid else (LOSS, 0.0, True)
        # the trial ends after its moves: the limit is part of the task (observations carry no
        # clock), so it terminates rather than truncates, and no learner bootstraps past it
        return (action, outcome, cue), reward, terminated or self.t >= self.config.max_steps, False


@register_task("t_maze")
class TMazeTask(ControlTaskBase):
    Config = TMazeConfig
    observation_counts = (4, 3, 3)
    action_count = 4

    def make_env(self, seed: int) -> TMazeEnv:
        return TMazeEnv(self.config, seed)

    def generative_model(self) -> DiscreteModelSpec:
        """States: location x context (8); location, cue and transitions given, outcomes learned."""
        v = self.config.cue_validity
        states = 8  # s = 2 * location + context
        a_location = np.zeros((4, states))
        a_cue = np.zeros((3, states))
        b = np.zeros((states, states, 4))
        for s in range(states):
            location, context = divmod(s, 2)
            a_location[location, s] = 1.0
            if location == CUE:
                a_cue[1 + context, s], a_cue[2 - context, s] = v, 1 - v
            else:
                a_cue[0, s] = 1.0
            for u in range(4):
                target = location if location in (LEFT, RIGHT) else u  # arms end the episode: absorbing
                b[2 * target + context, s, u] = 1.0
        a_outcome = np.zeros((3, states))
        for s in range(states):
            location, context = divmod(s, 2)
            outcome = NONE if location in (CENTRE, CUE) else (REWARD if location - LEFT == context else LOSS)
            a_outcome[outcome, s] = 1.0
        d = np.zeros(states)
        d[[2 * CENTRE, 2 * CENTRE + 1]] = 0.5
        given = self.config.outcome_model == "given"
        return DiscreteModelSpec(
            states=states, A=(a_location, a_outcome if given else None, a_cue), B=b,
            C=(np.zeros(4), np.array([0.0, 3.0, -6.0]), np.zeros(3)), D=d, horizon=2,
            notes="given: location and cue likelihoods, transitions, initial state"
                  + (", and where reward and loss occur (pymdp's T-maze demo)" if given else
                     "; learned: where reward and loss occur (A of the outcome modality)")
                  + ". Preferences: reward +3, loss -6.")


# -------------------------------------------------------------------------- grid world

GRID = ("S...",
        ".##.",
        ".#..",
        "...G")
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left
GOAL = "".join(GRID).index("G")
GOAL_OUTCOME, PIT_OUTCOME = 1, 2  # outcome modality: none, goal, pit (the grid world has no pits)


@dataclass(frozen=True)
class GridWorldConfig(ControlConfig):
    slip: float = 0.1  # p(the move goes in a random other direction)
    max_steps: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.slip < 1:
            raise ValueError(f"slip must be in [0, 1), got {self.slip}.")


class GridWorldEnv:
    grid: tuple[str, ...] = GRID  # rows of the layout: S start, G goal, # wall, O pit (a subclass may change it)

    def __init__(self, config: GridWorldConfig, seed: int) -> None:
        self.config, self.rng = config, np.random.default_rng(seed)
        self.size = len(self.grid)
        self.goal = "".join(self.grid).index("G")  # the cell that pays and ends the episode (a subclass may move it)
        self.start = "".join(self.grid).index("S")

    def reset(self) -> Observation:
        self.position, self.t = self.start, 0
        return (self.start, 0)

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        if not 0 <= action < 4:
            raise ValueError(f"grid-world actions are 0..3 (up, right, down, left), got {action}.")
        self.t += 1
        if self.rng.random() < self.config.slip:
            action = int(self.rng.choice([a for a in range(4) if a != action]))
        row, col = divmod(self.position, self.size)
        r, c = row + MOVES[action][0], col + MOVES[action][1]
        if 0 <= r < self.size and 0 <= c < len(self.grid[r]) and self.grid[r][c] != "#":
            self.position = r * self.size + c
        goal = self.position == self.goal
        pit = self.grid[row := self.position // self.size][self.position - row * self.size] == "O"
        outcome = GOAL_OUTCOME if goal else (PIT_OUTCOME if pit else NONE)
        truncated = not (goal or pit) and self.t >= self.config.max_steps
        return (self.position, outcome), float(goal), goal or pit, truncated


@register_task("grid_world")
class GridWorldTask(ControlTaskBase):
    Config = GridWorldConfig
    observation_counts = (16, 2)
    action_count = 4

    def make_env(self, seed: int) -> GridWorldEnv:
        return GridWorldEnv(self.config, seed)

    def generative_model(self) -> DiscreteModelSpec:
        return _positional_model(16, 2, np.array([0.0, 3.0]), horizon=6)


# -------------------------------------------------------------------------------- maze

MAZE = ("S...#.",
        ".##.O.",
        ".O..#.",
        ".#.G..",
        "...#.O",
        "#.....")


@dataclass(frozen=True)
class MazeConfig(GridWorldConfig):
    max_steps: int = 24


class MazeEnv(GridWorldEnv):
    grid = MAZE


@register_task("maze")
class MazeTask(ControlTaskBase):
    """The harder world: 36 cells (29 open), three pits that end the episode with 0, slips, dead
    ends; the shortest route is 6 moves and passes a pit (a slip there falls in with p = slip / 3),
    a safer one is 8. The agent learns 4 x 36 transition columns and 36 outcome columns."""

    Config = MazeConfig
    observation_counts = (36, 3)
    action_count = 4

    def make_env(self, seed: int) -> MazeEnv:
        return MazeEnv(self.config, seed)

    def generative_model(self) -> DiscreteModelSpec:
        return _positional_model(36, 3, np.array([0.0, 3.0, -3.0]), horizon=6)


def _positional_model(positions: int, outcomes: int, preferences: np.ndarray, horizon: int) -> DiscreteModelSpec:
    """Positions observed exactly and the start known; transitions and outcomes learned."""
    d = np.zeros(positions)
    d[0] = 1.0
    return DiscreteModelSpec(
        states=positions, A=(np.eye(positions), None), B=None, C=(np.zeros(positions), preferences), D=d,
        horizon=horizon, notes="given: positions are observed exactly, the start position; learned: transitions "
                               "(walls, slips, holes) and where outcomes occur. Preference for the goal: +3.")


# ------------------------------------------------------------------------- FrozenLake


@dataclass(frozen=True)
class FrozenLakeConfig(ControlConfig):
    slippery: bool = False
    max_steps: int = 100  # gymnasium's limit for the 4x4 map


class FrozenLakeEnv:
    """gymnasium's FrozenLake-v1 with the outcome modality (none, goal, hole) added."""

    def __init__(self, config: FrozenLakeConfig, seed: int) -> None:
        import gymnasium

        self.env = gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=config.slippery,
                                  max_episode_steps=config.max_steps)
        self.seed: int | None = seed

    def reset(self) -> Observation:
        position, _ = self.env.reset(seed=self.seed)  # seeded once; later resets continue its stream
        self.seed = None
        return (int(position), NONE)

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        position, reward, terminated, truncated, _ = self.env.step(action)
        outcome = (1 if reward > 0 else 2) if terminated else 0
        return (int(position), outcome), float(reward), bool(terminated), bool(truncated)


@register_task("frozen_lake")
class FrozenLakeTask(ControlTaskBase):
    Config = FrozenLakeConfig
    observation_counts = (16, 3)
    action_count = 4

    def check_available(self) -> None:
        try:
            import gymnasium  # noqa: F401
        except ImportError:
            raise TaskDataError("frozen_lake needs gymnasium, which is not installed: pip install -e '.[control]' "
                                "(the t_maze and grid_world tasks need nothing).") from None

    def make_env(self, seed: int) -> FrozenLakeEnv:
        self.check_available()
        return FrozenLakeEnv(self.config, seed)

    def generative_model(self) -> DiscreteModelSpec:
        return _positional_model(16, 3, np.array([0.0, 3.0, -3.0]), horizon=6)
