"""A fine-tuning claim's robustness check scales the fine-tuning budget, never the checkpoint
it starts from: every budget's cells start from the pretraining cell of the claim's own budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import claims as claims_mod
from harness.claims import CLAIMS_DIR, ClaimCells, load_claim
from harness.store import Store


def test_scaled_budgets_fine_tune_from_the_same_checkpoint(tmp_path: Path, monkeypatch) -> None:
    launched = []

    def plan_only(cells, *args, **kwargs):  # nothing trains: the planned cells are what is checked
        launched.extend(cells)
        return {"ran": 0}

    monkeypatch.setattr(claims_mod, "launch", plan_only)
    path = CLAIMS_DIR / "active-inference-lm-epochs.yaml"
    claim = load_claim(path)
    base = claims_mod.claim_budget(claim)
    claims_mod.prepare([(claim, path)], ClaimCells(Store(tmp_path / "results"), [("threads", 1)]))
    fine_tuning = [cell for cell in launched if cell.pretrain is not None]
    budgets = {cell.budget.value for cell in fine_tuning}
    (kind, value), = base.items()
    assert budgets == {value * 0.5, value, value * 2.0}, "the tuning trials of x0.5, x1 and x2 are planned"
    assert {(c.pretrain.budget.kind, c.pretrain.budget.value) for c in fine_tuning} == {(kind, value)}
    # one checkpoint per seed, whatever the fine-tuning budget
    per_seed = {}
    for cell in fine_tuning:
        per_seed.setdefault(cell.seed, set()).add(cell.pretrain.run_id)
    assert all(len(ids) == 1 for ids in per_seed.values()), per_seed


def test_each_round_announces_its_cells_and_those_the_later_rounds_will_add(tmp_path: Path, monkeypatch) -> None:
    """The progress display's total covers every round: round 1 (tuning trials) announces the
    compared seeds it will be followed by, so the time left is not the current round's only."""
    rounds = []
    monkeypatch.setattr(claims_mod, "launch", lambda cells, *a, **k: {"ran": 0})
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump({
        "id": "tuned", "source": "test", "statement": "test", "suite": "vision-vit", "task": "mlp", "seeds": 3,
        "budget": {"steps": 60}, "profile": "quick", "quantity": "accuracy_gap", "relation": ">= 0",
        "method": {"name": "backprop", "config": {"optimizer": "adamw"}},
        "baseline": {"name": "backprop", "config": {"optimizer": "sgd"}, "tune_lr": [0.01, 0.05]}}))
    claim = load_claim(path)
    runner = ClaimCells(Store(tmp_path / "results"), [("threads", 1)])
    runner.on_round = lambda cells, later: rounds.append((len(cells), later))
    claims_mod.prepare([(claim, path)], runner)
    trials = max(len(claim.method.tune_lr), len(claim.baseline.tune_lr))
    assert trials > 0
    # x1, x0.5 and x2: each tunes both sides, then runs both sides' seeds with the winners
    assert rounds[0] == (3 * 2 * trials, 3 * 2 * claim.seeds)


def test_the_display_counts_later_rounds_and_forgets_a_nested_pretraining_cell() -> None:
    from harness.budget import Counters
    from harness.cli_common import Display
    from harness.loops.common import StepProgress

    class Cell:  # the fields the display reads
        def __init__(self, run_id, label, pretrain=None):
            self.run_id, self.pretrain = run_id, pretrain
            self.task = type("Task", (), {"label": label})()

        def __str__(self):
            return self.run_id

    display = Display(None, workers=1)
    pretrain = Cell("p", "shakespeare")
    fine_tune = Cell("f", "milton", pretrain)
    display.on_round([fine_tune], later=6)
    assert display.eta.total == 7 and display.total_is_bound
    for cell in (pretrain, fine_tune):  # the worker trains the pretraining cell first, then the fine-tuning
        display.on_progress(StepProgress(cell, Counters(), 0.5, None, None))
    assert set(display.running) == {"p", "f"}
    display.on_record(fine_tune, "busy", None)
    assert display.running == {}, "the nested pretraining cell is no longer counted as running"


def test_the_plan_projects_each_cell_from_recorded_cells_of_its_task_and_method(tmp_path: Path, monkeypatch) -> None:
    """`bench claims verify --plan`: nothing trains; a cell to train is projected from the store's
    records of the same task and method (their seconds per unit of the cell's budget kind), a
    cell with no such record is counted apart, and later rounds at the mean projected cell."""
    from types import SimpleNamespace

    from harness.claims_plan import plan_claims

    monkeypatch.setattr(claims_mod, "launch", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump({
        "id": "tuned", "source": "test", "statement": "test", "suite": "vision-vit", "task": "mlp", "seeds": 3,
        "budget": {"steps": 60}, "profile": "quick", "quantity": "accuracy_gap", "relation": ">= 0",
        "method": {"name": "forward_forward"},
        "baseline": {"name": "backprop", "config": {"optimizer": "sgd"}, "tune_lr": [0.01, 0.05]}}))
    recorded = SimpleNamespace(completed=True, method="backprop", task_label="mlp",
                               counters=SimpleNamespace(steps=30), timing=SimpleNamespace(cell_seconds=3.0))
    store = Store(tmp_path / "results")
    monkeypatch.setattr(store, "records", lambda suite=None, set_aside=True: [recorded])
    plan = plan_claims([(load_claim(path), path)], ClaimCells(store, [("threads", 1)]))
    assert len(plan.to_train) == 2 * 2 * 3 and plan.later == 2 * 3 * 3
    # backprop's 6 trials at 30, 60 and 120 steps (x0.5, x1, x2), at 0.1 s a step; forward_forward has no record
    assert plan.projected == 6 and plan.projected_seconds == pytest.approx(0.1 * 2 * (30 + 60 + 120))
    assert plan.later_seconds == pytest.approx(plan.projected_seconds / 6 * 18)
    assert sorted(count for count, seconds in plan.groups.values() if seconds is None) == [2, 2, 2]
    # a record older than the phase accounting (no cell_seconds) is read by its training and evaluation seconds
    from harness.claims_plan import _rate

    old = SimpleNamespace(completed=True, method="backprop", task_label="mlp", counters=SimpleNamespace(steps=30),
                          timing=SimpleNamespace(cell_seconds=None, train_seconds=2.4, eval_seconds=0.6))
    backprop_cell = next(cell for cell in plan.to_train if cell.method.name == "backprop")
    assert _rate([old], backprop_cell) == pytest.approx(0.1)


def test_plan_on_the_command_line_trains_nothing(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump({
        "id": "tuned", "source": "test", "statement": "test", "suite": "vision-vit", "task": "mlp", "seeds": 3,
        "budget": {"steps": 60}, "profile": "quick", "quantity": "accuracy_gap", "relation": ">= 0",
        "method": {"name": "backprop"}, "baseline": {"name": "backprop", "tune_lr": [0.01, 0.05]}}))
    assert main(["claims", "verify", "tuned", "--plan", "--claims-dir", str(tmp_path),
                 f"results_dir={tmp_path / 'r'}", "threads=1"]) == 0
    out = capsys.readouterr().out
    assert "cells to train now" in out and "no projection" in out
    assert not list((tmp_path / "r").rglob("record.json")) and not (tmp_path / "r" / "claims").exists()


def test_a_claim_without_a_baseline_cannot_name_a_search_space(tmp_path: Path) -> None:
    path = tmp_path / "alone.yaml"
    path.write_text(yaml.safe_dump({
        "id": "alone", "source": "test", "statement": "test", "suite": "stability", "task": "d8_w32", "seeds": 3,
        "quantity": "loss_spike_rate", "relation": "<= 0.05",
        "method": {"name": "local_learning", "tune_lr": [0.001, 0.002]}}))
    with pytest.raises(Exception, match="no baseline"):
        load_claim(path)


def test_a_tuning_winner_on_the_edge_of_its_space_is_flagged() -> None:
    """A side whose best value is the smallest or largest it tried may have its optimum outside
    the space: the verdict says so (the RL claims' winners all sat on an edge)."""
    from harness.tuning import _on_edge

    assert _on_edge((1e-3, 2e-3, 4e-3), 4e-3, []) == pytest.approx(4e-3)
    assert _on_edge((0.5, 1.0, 2.0), 0.5, []) == pytest.approx(0.5)
    assert _on_edge((1e-3, 2e-3, 4e-3), 2e-3, []) is None  # an interior winner
    assert _on_edge((1e-3, 4e-3), 4e-3, []) is None  # two values have no interior
    assert _on_edge(("adamw", "sgd", "lion"), "sgd", []) is None  # not an ordered space
