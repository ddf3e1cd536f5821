"""Control: the env_steps budget, the harness-owned environment loop, baselines that learn, the table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness import registry
from harness.config import ConfigError, resolve
from harness.interface import TaskDataError
from harness.plan import plan
from harness.quantities import QUANTITIES, Missing, control_phases, first_crossing
from harness.record import parse_record
from harness.runner import run_cell
from harness.report.summary import render, summarise
from suites.tasks.control_continual import MOVED_GOAL, MovingGoalConfig, MovingGoalTask
from suites.tasks.control_envs import (GOAL, PIT_OUTCOME, ControlConfig, ControlTaskBase, FrozenLakeTask, MazeEnv,
                                       MazeTask, TMazeTask)

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BanditConfig(ControlConfig):
    window: int = 20


class BanditEnv:
    """One step per episode; action 1 pays 1, action 0 pays 0; the observation says nothing."""

    def reset(self):
        return (0,)

    def step(self, action):
        return (0,), float(action == 1), True, False


class BanditTask(ControlTaskBase):
    Config = BanditConfig
    observation_counts = (1,)
    action_count = 2

    def make_env(self, seed):
        return BanditEnv()


def _suite(tmp_path: Path, tasks: str, budget: int, methods: str = "[dqn, policy_gradient]", seeds: int = 1) -> str:
    path = tmp_path / "control_tiny.yaml"
    path.write_text(f"tasks: {tasks}\nmethod: {methods}\nseeds: {seeds}\nbudget: {{env_steps: {budget}}}\n"
                    "batch_size: 1\neval_every: 50\ndevice: cpu\nthreads: 1\n")
    return str(path)


def test_env_steps_budget_is_met_exactly_and_counted_as_steps_and_examples(tmp_path) -> None:
    (cell,) = plan(resolve([f"suite={_suite(tmp_path, '{maze: {task: t_maze}}', 251, 'dqn')}"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    counters = record["counters"]
    assert counters["env_steps"] == counters["steps"] == counters["examples"] == 251
    assert record["curve"][-1]["env_steps"] == 251
    control = record["control"]
    assert sum(1 for _ in control["episode_returns"]) == control["episodes"] == len(control["episode_end_steps"])
    assert control["episode_end_steps"][-1] <= 251
    if control["samples_to_target"] is None:  # 251 steps is about 125 trials: a window of 100 barely fits
        assert "target" in control["samples_to_target_reason"] or "episodes" in control["samples_to_target_reason"]
    timing = record["timing"]  # the cell's wall time by phase, as every loop keeps it (claims' `cost`, `--plan`)
    assert set(timing["phase_seconds"]) == {"setup", "train", "probe", "other"}
    assert timing["phase_seconds"]["train"] > 0 and timing["phase_seconds"]["setup"] > 0
    assert timing["cell_seconds"] == pytest.approx(sum(timing["phase_seconds"].values()))


def test_env_steps_budget_is_refused_for_tasks_without_an_environment(tiny_suite) -> None:
    with pytest.raises(ConfigError, match="not control tasks"):
        resolve([f"suite={tiny_suite()}", "budget.env_steps=100"])


def test_dqn_ppo_and_policy_gradient_learn_a_two_armed_bandit(tmp_path, monkeypatch) -> None:
    registry.discover()
    monkeypatch.setitem(registry._TASKS, "bandit_test", type("Bandit", (BanditTask,), {"name": "bandit_test"}))
    # exploration runs on absolute steps: over the first 120 of these 400 (the suite's 900 suit 3,000)
    suite = _suite(tmp_path, '{bandit: {task: bandit_test}}', 400, "[dqn, ppo, policy_gradient]")
    cells = plan(resolve([f"suite={suite}",
                          "method.dqn.exploration_steps=120"]))
    for cell in cells:
        record = run_cell(cell)
        assert record["status"] == "completed", record.get("traceback")
        returns = record["control"]["episode_returns"]
        assert sum(returns[:20]) / 20 < 0.85  # it starts by exploring
        assert sum(returns[-50:]) / 50 >= 0.9, cell.method.name  # and ends choosing the paying arm
        assert record["control"]["samples_to_target"] is not None


def test_frozen_lake_without_gymnasium_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(TaskDataError, match=r"pip install -e '\.\[control\]'"):
        FrozenLakeTask().check_available()


def test_t_maze_cue_is_valid_as_often_as_configured() -> None:
    env = TMazeTask(TMazeTask.Config(cue_validity=0.8)).make_env(0)
    valid = 0
    for _ in range(2000):
        env.reset()
        (_, _, cue), _, _, _ = env.step(1)
        valid += (cue - 1) == env.context
    assert 0.77 < valid / 2000 < 0.83


def test_bench_run_on_the_control_suite_prints_and_records_samples_to_target(tmp_path) -> None:
    results = tmp_path / "results"
    args = [sys.executable, "-m", "harness.cli", "run", "suite=control", "method=[active_inference,dqn,policy_gradient]",
            "tasks={t_maze: {task: t_maze, cue_validity: 0.95}}", "seeds=1", "budget.env_steps=250", "threads=1",
            f"results_dir={results}"]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "samples-to-target" in out.stdout and "environment steps to the target return" in out.stdout
    records = [json.loads(p.read_text()) for p in (results / "control").glob("*/record.json")]
    assert len(records) == 3
    ai = [r for r in records if r["method"] == "active_inference"]
    assert all(r["control"]["samples_to_target"] == 200 for r in ai)  # the model is given: the first full window
    assert all(r["control"]["agent"]["variant"] == "discrete" for r in ai)
    # the claim quantity reads the same number off the curve
    ratio = QUANTITIES["samples_ratio"]
    assert all(ratio.read(parse_record(r), 0.9).value == r["control"]["samples_to_target"] for r in ai)
    # and so does the episode-resolved one: the first full window of 100 two-step trials is its floor
    steps = QUANTITIES["env_steps_ratio"]
    assert all((steps.read(parse_record(r), 0.9).value, steps.read(parse_record(r), 0.9).low) == (200, 198) for r in ai)
    tables = render(summarise(records), "control")
    assert len(tables) == 3  # results, cost, control


def test_curves_are_reproducible_per_seed(tmp_path) -> None:
    (cell,) = plan(resolve([f"suite={_suite(tmp_path, '{grid: {task: grid_world}}', 120, 'policy_gradient')}"]))
    first, second = run_cell(cell), run_cell(cell)
    assert first["control"]["episode_returns"] == second["control"]["episode_returns"]
    assert [p["train_loss"] for p in first["curve"]] == [p["train_loss"] for p in second["curve"]]


def test_ppo_advantages_are_gae_cut_at_episode_ends_and_bootstrapped_past_truncation() -> None:
    """GAE (Schulman et al. 2016) by hand, with V(o) = the observation's index (a linear critic)."""
    ppo = registry.get_method("ppo")()
    ppo.cfg = ppo.Config(gamma=0.9, gae_lambda=0.5)
    ppo.value = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        ppo.value.weight.copy_(torch.tensor([[0.0, 1.0, 2.0]]))
    eye = torch.eye(3)
    # step 0: o=0 -> o=1, r=0; step 1: o=1 -> o=2, r=1, terminated; step 2: o=0 -> o=2, r=0, truncated;
    # step 3: o=1 -> o=1, r=0, the rollout ends mid-episode
    obs, next_obs = eye[[0, 1, 0, 1]], eye[[1, 2, 2, 1]]
    rewards = torch.tensor([0.0, 1.0, 0.0, 0.0])
    terminated, done = torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    advantages, returns = ppo._advantages(obs, rewards, next_obs, terminated, done)
    d0, d1, d2, d3 = 0 + 0.9 * 1 - 0, 1 + 0 - 1, 0 + 0.9 * 2 - 0, 0 + 0.9 * 1 - 1
    expected = torch.tensor([d0 + 0.45 * d1, d1, d2, d3])
    assert torch.allclose(advantages, expected), (advantages, expected)
    assert torch.allclose(returns, expected + torch.tensor([0.0, 1.0, 0.0, 1.0]))


def test_ppo_learns_the_grid_world(tmp_path) -> None:
    """Not a bandit: a 6-move path with a wall and slips, learned from the reward alone."""
    (cell,) = plan(resolve([f"suite={_suite(tmp_path, '{grid: {task: grid_world}}', 1500, 'ppo')}"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    returns = record["control"]["episode_returns"]
    assert sum(returns[:20]) / 20 < 0.5  # a random walk rarely finds the goal in 16 moves
    assert sum(returns[-20:]) / 20 >= 0.9


def test_steps_to_target_is_resolved_to_one_episode_and_interpolated_between_episode_ends() -> None:
    # window 2: averages 0 (end 10), 0.5 (end 15), 1.0 (end 20): 0.9 is crossed 4/5 of the way from 15 to 20
    assert first_crossing([0, 0, 1, 1], [5, 10, 15, 20], 2, 0.9) == (19.0, 15.0, 20.0)
    # the first full window already meets it: no earlier average, the floor (within the episode before it)
    assert first_crossing([1, 1, 1], [2, 4, 6], 2, 0.9) == (4.0, 2.0, 4.0)
    assert first_crossing([1, 0, 1, 0], [2, 4, 6, 8], 2, 0.9) is None


def _control_record(returns: list[float], ends: list[int], window: int, config: dict | None = None):
    """A completed control record with these episodes (the fields the quantities read)."""
    from types import SimpleNamespace

    control = SimpleNamespace(episode_returns=returns, episode_end_steps=ends, window=window)
    return SimpleNamespace(method="m", seed=0, task="t", control=control, task_info={"config": config or {}},
                           spent=lambda axis: float(ends[-1] if ends else 0), status="completed", completed=True)


def test_env_steps_ratio_reads_the_interpolated_crossing_and_a_lower_bound_when_never_reached() -> None:
    quantity = QUANTITIES["env_steps_ratio"]
    reached = quantity.read(_control_record([0, 0, 1, 1], [5, 10, 15, 20], 2), 0.9)
    assert (reached.value, reached.low, reached.high, reached.reached) == (19.0, 15.0, 20.0, True)
    never = quantity.read(_control_record([0, 0, 0], [16, 32, 48], 2), 0.9)
    assert (never.value, never.low, never.high, never.reached) == (48.0, 48.0, math.inf, False)


def test_moving_goal_moves_at_the_first_episode_start_past_each_phase() -> None:
    env = MovingGoalTask(MovingGoalConfig(slip=0.0, phase_steps=(10, 10))).make_env(0)
    env.reset()
    seen = []
    for _ in range(60):
        _, _, terminated, truncated = env.step(0)  # up, into the wall: every episode runs its 16 moves
        if terminated or truncated:
            env.reset()
            seen.append((env.steps, env.goal))
    assert seen == [(16, MOVED_GOAL), (32, GOAL), (48, GOAL)]
    with pytest.raises(ValueError, match="one length per phase"):
        MovingGoalConfig(phase_steps=(10,))
    with pytest.raises(ValueError, match="open cells"):
        MovingGoalConfig(goals=(15, 5, 15))  # 5 is a wall


def test_control_forgetting_reads_the_windows_around_the_phase_changes() -> None:
    # phases of 30 and 30 steps, episodes of 5 steps, window 2: A learned (1, 1), B never (0, 0), A kept half
    returns = [0, 1, 1, 1, 1, 1] + [0] * 6 + [1, 0, 1, 1]
    ends = [5 * (i + 1) for i in range(len(returns))]
    record = _control_record(returns, ends, 2, {"phase_steps": [30, 30]})
    phases = control_phases(record)
    assert (phases.phase1_end, phases.phase2_end, phases.phase3_start) == (1.0, 0.0, 0.5)
    assert QUANTITIES["control_forgetting_gap"].read(record, None).value == 0.5
    assert QUANTITIES["control_plasticity_gap"].read(record, None).value == 0.0
    with pytest.raises(Missing, match="fewer than 2 episodes"):
        control_phases(_control_record(returns[:13], ends[:13], 2, {"phase_steps": [30, 30]}))
    with pytest.raises(Missing, match="three phases"):
        control_phases(_control_record(returns, ends, 2))


def test_active_inference_follows_the_moving_goal_and_its_phases_are_read_from_the_record(tmp_path) -> None:
    """End to end, tiny: A for 300 steps, B for 300, A again; the agent learns A, then B (where the goal moved)."""
    tasks = "{moving: {task: grid_world_moving_goal, window: 5, phase_steps: [300, 300]}}"
    (cell,) = plan(resolve([f"suite={_suite(tmp_path, tasks, 700, 'active_inference')}"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    phases = control_phases(parse_record(record))
    assert phases.phase1_end >= 0.8 and phases.phase2_end >= 0.8, phases
    assert QUANTITIES["control_forgetting_gap"].read(parse_record(record), None).value == pytest.approx(
        phases.phase1_end - phases.phase3_start)


def test_maze_pits_end_the_episode_with_nothing_and_the_short_route_pays() -> None:
    env = MazeEnv(MazeTask.Config(slip=0.0), seed=0)
    assert env.reset() == (0, 0)
    for action in (1, 1, 1, 2, 2):  # right x3, down x2: one move from the goal
        observation, reward, terminated, truncated = env.step(action)
        assert (reward, terminated, truncated) == (0.0, False, False)
    assert env.step(2) == ((21, 1), 1.0, True, False)  # the shortest route: 6 moves
    env.reset()
    for action in (1, 1, 1, 2):
        env.step(action)
    assert env.step(1) == ((10, PIT_OUTCOME), 0.0, True, False)  # beside the route: a pit
    env.reset()
    for _ in range(MazeTask.Config().max_steps - 1):
        assert env.step(0)[2:] == (False, False)  # bumping the top wall
    assert env.step(0)[2:] == (False, True)  # the time limit truncates


def test_maze_gives_the_agent_positions_and_the_start_only() -> None:
    task = MazeTask(MazeTask.Config())
    spec = task.generative_model()
    assert spec.states == 36 == task.observation_counts[0] and task.observation_counts[1] == 3
    assert spec.B is None and spec.A[1] is None  # transitions and where goal and pits are: learned
    assert spec.D[0] == 1.0 and spec.horizon == 6


def test_forgetting_lets_the_agent_return_to_a_goal_it_learned_before(tmp_path) -> None:
    """A-B-A, tiny: with counts that never decay (pymdp's default) the agent keeps heading for B's
    goal when A's returns; with `retention` 0.9 (outcome counts decay toward their prior every
    episode) B's evidence fades and A's goal is found again (measured, seed 0: mean return in
    phase 3 0.31 without, 0.84 with; phase 1's last 100 steps 1.0 and 0.89: the price)."""
    tasks = "{moving: {task: grid_world_moving_goal, slip: 0.0, window: 5, phase_steps: [300, 300]}}"
    phase3 = {}
    for retention in (1.0, 0.9):
        (cell,) = plan(resolve([f"suite={_suite(tmp_path, tasks, 1200, 'active_inference')}",
                                f"method.retention={retention}"]))
        record = run_cell(cell)
        assert record["status"] == "completed", record.get("traceback")
        episodes = zip(record["control"]["episode_returns"], record["control"]["episode_end_steps"])
        returns = [r for r, end in episodes if end > 600 + 16]  # episodes that started in phase 3
        phase3[retention] = sum(returns) / len(returns)
    assert phase3[1.0] < 0.5 and phase3[0.9] >= phase3[1.0] + 0.3, phase3
