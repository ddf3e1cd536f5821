"""The one schedule rule: in every suite, every method gets the same schedule family.

A verdict that a learning-rate schedule decides is not a verdict about paradigms: the
"resists forgetting" claim was once supported only because active inference kept a cosine
decay while backprop ran at a constant rate. And exploration runs on absolute steps, so a
samples-to-target figure cannot move with the budget.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import available_suites, load_suite, resolve
from harness.interface import SetupContext
from harness.registry import get_method, get_task


def _family(config: object) -> str | None:
    """A method's schedule family: its `schedule` key, or "constant" for a method with a learning
    rate and no schedule (DQN, REINFORCE: Adam at a fixed rate); None when it has no rate."""
    fields = {f.name for f in dataclasses.fields(config)}
    if "schedule" in fields:
        return config.schedule
    return "constant" if "lr" in fields else None


def suites_and_profiles() -> list[tuple[str, str | None]]:
    cases = []
    for suite in available_suites():
        cases.append((suite, None))
        cases.extend((suite, profile) for profile in (load_suite(suite).get("profiles") or {}))
    return cases


@pytest.mark.parametrize(("suite", "profile"), suites_and_profiles())
def test_every_method_of_a_suite_gets_the_same_schedule_family(suite: str, profile: str | None) -> None:
    run = resolve([f"suite={suite}"] + ([f"profile={profile}"] if profile else []))  # its own methods
    kinds = {get_task(t.task).kind for t in run.tasks}
    trained = [m for m in run.methods if get_method(m.name).supports & kinds]  # the rest are `unsupported` cells
    families = {m.name: _family(m.config) for m in trained if _family(m.config) is not None}
    assert len(set(families.values())) <= 1, f"suite {suite} ({profile or 'default'}) mixes schedules: {families}"


def test_a_suite_schedule_rule_reaches_every_method_that_has_a_schedule(tmp_path) -> None:
    suite = tmp_path / "rule.yaml"
    suite.write_text("tasks: {mlp: {task: digits}}\nmethod: all\nseeds: 1\nbudget: {steps: 5}\n"
                     "schedule: {schedule: constant, warmup: 0.0}\n")
    run = resolve([f"suite={suite}"])
    scheduled = [m for m in run.methods if hasattr(m.config, "schedule")]
    assert len(scheduled) >= 5 and all(m.config.schedule == "constant" for m in scheduled)
    assert all(m.config.warmup == 0.0 for m in scheduled if hasattr(m.config, "warmup"))


def test_dqn_exploration_does_not_depend_on_the_budget() -> None:
    """Epsilon at environment step k is the same whatever fraction of the budget k is."""
    dqn_cls = get_method("dqn")
    epsilons = []
    for fraction in (0.1, 0.9):  # step 300 of a 3,000-step budget, or of a 333-step one
        agent = dqn_cls()
        agent.cfg = dqn_cls.Config()
        agent.ctx = SetupContext(model=None, task=None, config=agent.cfg, device=None, generator=None,  # type: ignore[arg-type]
                                 budget_fraction=lambda f=fraction: f)
        agent.steps = 300
        epsilons.append(agent.epsilon())
    assert epsilons[0] == epsilons[1], f"exploration follows the budget fraction: {epsilons}"
