"""Runner: every cell ends in a record with an honest status, whatever the method does."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch

from harness import registry
from harness.config import resolve
from harness.typed_config import ConfigError
from harness.interface import Batch, SetupContext, StepStats
from harness.plan import plan
from harness.runner import run_cell


@dataclass(frozen=True)
class _NoConfig:
    pass


class _Broken:
    """A method that misbehaves on purpose: NaN loss, an exception, or no support."""

    supports: ClassVar[frozenset[str]] = frozenset({"classify"})
    Config = _NoConfig
    mode: ClassVar[str] = "nan"

    def setup(self, ctx: SetupContext) -> None:
        self.model = ctx.model

    def step(self, batch: Batch) -> StepStats:
        if self.mode == "raise":
            raise RuntimeError("boom in step")
        return StepStats(loss=math.nan, examples=batch.size, forward_equivalents=1.0)

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def memory_buffers(self) -> dict[str, Any]:
        return {}


def _cell(tiny_suite, monkeypatch, mode: str, supports: frozenset[str] = frozenset({"classify"})):
    cls = type(f"Broken_{mode}", (_Broken,), {"mode": mode, "supports": supports, "name": "broken"})
    registry.discover()
    monkeypatch.setitem(registry._METHODS, "broken", cls)
    (cell,) = plan(resolve([f"suite={tiny_suite()}", "method=broken"]))
    return cell


def test_nan_loss_ends_cell_as_diverged(tiny_suite, monkeypatch) -> None:
    record = run_cell(_cell(tiny_suite, monkeypatch, "nan"))
    assert record["status"] == "diverged"
    assert "non-finite" in record["error"] and record["counters"]["steps"] == 1
    assert record["final"] is None


def test_exception_ends_cell_as_failed_with_the_error(tiny_suite, monkeypatch) -> None:
    record = run_cell(_cell(tiny_suite, monkeypatch, "raise"))
    assert record["status"] == "failed"
    assert "boom in step" in record["error"] and "Traceback" in record["traceback"]


def test_unsupported_kind_is_recorded_with_the_reason(tiny_suite, monkeypatch) -> None:
    record = run_cell(_cell(tiny_suite, monkeypatch, "nan", supports=frozenset({"lm"})))
    assert record["status"] == "unsupported"
    assert "classify" in record["error"]


def test_backprop_learns_and_reports_validation_selected_test(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=120, eval_every=40)}"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("error")
    assert record["final"]["test"]["accuracy"] > 0.85  # chance is 0.1
    steps = [p["steps"] for p in record["curve"]]
    assert steps == [40, 80, 120]
    best = max(record["curve"], key=lambda p: p["val_metric"])
    assert record["final"]["best_step"] == best["steps"]
    assert record["final"]["val"]["accuracy"] == pytest.approx(best["val_metric"])


def test_examples_budget_stops_at_the_first_step_past_it(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite()}", "budget.examples=1000", "eval_every=1000"]))
    record = run_cell(cell)
    assert record["counters"]["examples"] >= 1000
    assert record["counters"]["examples"] - 64 < 1000  # overshoot below one batch
    per_step = record["counters"]["forward_equivalents"] / record["counters"]["steps"]
    assert 2 < per_step < 3  # backprop's counted FLOPs (no input gradient for the first layer)


def test_same_seed_same_result(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=30, eval_every=10)}"]))
    first, second = run_cell(cell), run_cell(cell)
    assert [p["train_loss"] for p in first["curve"]] == [p["train_loss"] for p in second["curve"]]
    assert first["final"]["test"] == second["final"]["test"]


def test_eval_subset_selects_on_a_fixed_subset_then_scores_the_whole_validation_split(tiny_suite) -> None:
    suite = tiny_suite(steps=120, eval_every=40)
    (cell,) = plan(resolve([f"suite={suite}", "eval_subset=60"]))  # digits: 180 validation images
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("error")
    assert [p["val_examples"] for p in record["curve"]] == [60, 60, 60]
    best = max(record["curve"], key=lambda p: p["val_metric"])
    val = record["final"]["val"]
    assert record["final"]["best_step"] == best["steps"]  # selected on the subset ...
    assert val["subset_accuracy"] == best["val_metric"] and val["subset_examples"] == 60
    assert round(val["accuracy"] * 180, 6).is_integer()  # ... then scored on all 180
    assert record["final"]["test"]["accuracy"] > 0.85
    assert record["config"]["eval_subset"] == 60

    (whole,) = plan(resolve([f"suite={suite}"]))  # unset: the whole split, and the run id made before the key
    assert "eval_subset" not in whole.identity() and whole.run_id != cell.run_id
    record = run_cell(whole)
    assert [p["val_examples"] for p in record["curve"]] == [180, 180, 180]
    assert "subset_examples" not in record["final"]["val"]


def test_eval_subset_is_refused_for_a_task_that_cannot_score_one(tmp_path) -> None:
    suite = tmp_path / "continual.yaml"
    suite.write_text("tasks: {split: {task: split_digits, model: mlp}}\nmethod: backprop\nbudget: {steps: 5}\n")
    with pytest.raises(ConfigError, match="eval_subset=100.*split.*eval_subset=null"):
        resolve([f"suite={suite}", "eval_subset=100"])
    with pytest.raises(ConfigError, match="eval_subset must be a positive"):
        resolve([f"suite={suite}", "eval_subset=0"])


def test_eval_subset_leaves_the_run_ids_of_suites_without_it_unchanged() -> None:
    """vision-vit's examples profile unsets eval_subset, so its cells keep the run ids (and resume the
    records) they had before the key existed (backprop, evolution, MeZO on the ViT, seed 0)."""
    cells = plan(resolve(["suite=vision-vit", "profile=examples", "task=vit", "seeds=1",
                          "method=[backprop,evolution,zeroth_order]"]))
    assert [c.run_id for c in cells] == ["558c14601ac678ae", "8b061195d1f4c066", "26a7f58448bc0087"]
    assert plan(resolve(["suite=vision-vit", "task=vit", "seeds=1", "method=backprop"]))[0].eval_subset == 1000
