"""Every registered method, on a tiny real task: the contract holds (benchopt-style).

A new method is covered the moment it registers: finite losses, the budget respected,
honest counters, a state_dict that round-trips, and the same seed giving the same result.
"""

from __future__ import annotations

import math

import pytest
import torch

from harness import registry
from harness.config import resolve
from harness.plan import plan
from harness.runner import build_task, run_cell

METHODS = registry.method_names()
MODELS = ("mlp", "vit")


def _cell(tiny_suite, method: str, model: str, steps: int = 12):
    args = [f"suite={tiny_suite(steps=steps, eval_every=4)}", f"method={method}", f"tasks.mlp.model={model}",
            "tasks.mlp.vit.patch_size=4", "tasks.mlp.vit.dim=16", "tasks.mlp.vit.depth=2", "tasks.mlp.vit.heads=2"]
    (cell,) = plan(resolve(args))
    return cell


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_method_honours_the_contract(method: str, model: str, tiny_suite) -> None:
    cell = _cell(tiny_suite, method, model)
    record = run_cell(cell)
    if record["status"] == "unsupported":
        pytest.skip(record["error"])
    assert record["status"] == "completed", record.get("traceback") or record.get("error")
    counters = record["counters"]
    assert counters["steps"] == 12  # a steps budget is met exactly
    assert counters["examples"] == 12 * 64
    assert counters["forward_equivalents"] > 0
    losses = [p["train_loss"] for p in record["curve"] if p["train_loss"] is not None]
    assert all(math.isfinite(loss) for loss in losses)
    assert 0.0 <= record["final"]["test"]["accuracy"] <= 1.0
    def learning(curve):  # everything but the clock
        return [{k: v for k, v in point.items() if k != "seconds"} for point in curve]

    assert learning(run_cell(cell)["curve"]) == learning(record["curve"]), "the same seed must give the same curve"


@pytest.mark.parametrize("method", METHODS)
def test_state_dict_round_trips(method: str, tiny_suite) -> None:
    from harness.interface import SetupContext

    cell = _cell(tiny_suite, method, "mlp")
    task = build_task(cell)
    cls = registry.get_method(method)
    if task.kind not in cls.supports:
        pytest.skip(f"{method} does not support {task.kind}")

    def make(seed: int):
        generator = torch.Generator().manual_seed(seed)
        model = task.build_model(generator)
        instance = cls()
        instance.setup(SetupContext(model=model, task=task, config=cell.method.config, device=torch.device("cpu"),
                                    generator=torch.Generator().manual_seed(seed), budget_fraction=lambda: 0.5))
        return instance

    trained, fresh = make(0), make(1)
    batches = task.train_batches(64, torch.Generator().manual_seed(0))
    for _ in range(3):
        trained.step(next(batches))
    inputs = next(batches).inputs
    fresh.load_state_dict(trained.state_dict())
    assert torch.allclose(trained.predict(inputs), fresh.predict(inputs))


CONTROL_SUITE = """tasks: {maze: {task: t_maze}}
method: backprop
seeds: 1
budget: {env_steps: 40}
batch_size: 1
eval_every: 10
device: cpu
threads: 1
"""


@pytest.mark.parametrize("method", METHODS)
def test_control_method_honours_the_contract(method: str, tmp_path) -> None:
    """Methods that support "control": the env_steps budget met exactly, finite losses, same seed same run."""
    path = tmp_path / "control.yaml"
    path.write_text(CONTROL_SUITE)
    (cell,) = plan(resolve([f"suite={path}", f"method={method}"]))
    record = run_cell(cell)
    if record["status"] == "unsupported":
        pytest.skip(record["error"])
    assert record["status"] == "completed", record.get("traceback") or record.get("error")
    assert record["counters"]["env_steps"] == record["counters"]["steps"] == 40
    losses = [p["train_loss"] for p in record["curve"] if p["train_loss"] is not None]
    assert all(math.isfinite(loss) for loss in losses)
    again = run_cell(cell)
    assert again["control"]["episode_returns"] == record["control"]["episode_returns"]
    assert [p["train_loss"] for p in again["curve"]] == [p["train_loss"] for p in record["curve"]]
