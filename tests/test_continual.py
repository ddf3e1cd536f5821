"""Continual learning: the metrics, the experiences, fine-tuning forgetting where joint training does not, and EWC."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from harness import registry
from harness.config import ConfigError, resolve
from harness.continual_metrics import continual_metrics
from harness.interface import Batch, SetupContext, StepStats
from harness.plan import plan
from harness.quantities import QUANTITIES, Missing
from harness.record import parse_record
from harness.runner import run_cell
from harness.report.summary import render, summarise
from methods.backprop import Backprop
from methods.ewc import EWC, EWCConfig
from methods.replay import Replay, ReplayConfig
from suites.tasks.continual import PermutedDigitsTask, SplitDigitsConfig, SplitDigitsTask

CPU = torch.device("cpu")


# ------------------------------------------------------------------------- metrics


def test_metrics_of_a_hand_made_matrix() -> None:
    matrix = [[0.9, 0.1, 0.0],
              [0.5, 0.8, 0.2],
              [0.3, 0.6, 0.7]]
    metrics = continual_metrics(matrix, random_init=[0.1, 0.1, 0.1])
    assert metrics["average_accuracy"] == pytest.approx((0.3 + 0.6 + 0.7) / 3)
    assert metrics["forgetting"] == pytest.approx(((0.9 - 0.3) + (0.8 - 0.6)) / 2)
    assert metrics["bwt"] == pytest.approx(((0.3 - 0.9) + (0.6 - 0.8)) / 2)
    assert metrics["fwt"] == pytest.approx(((0.1 - 0.1) + (0.2 - 0.1)) / 2)


def test_forgetting_counts_from_the_peak_and_bwt_from_the_end_of_training() -> None:
    # experience 0 peaked after experience 1 (0.9) and ended at 0.7: forgotten 0.2 from the
    # peak, yet 0.2 better than right after its own training (positive backward transfer)
    matrix = [[0.5, 0.0, 0.0],
              [0.9, 0.8, 0.0],
              [0.7, 0.9, 0.6]]
    metrics = continual_metrics(matrix, random_init=[0.0, 0.0, 0.0])
    assert metrics["forgetting"] == pytest.approx(((0.9 - 0.7) + (0.8 - 0.9)) / 2)
    assert metrics["bwt"] == pytest.approx(((0.7 - 0.5) + (0.9 - 0.8)) / 2)


def test_a_learner_that_never_forgets_scores_zero_and_bad_matrices_are_refused() -> None:
    perfect = [[1.0, 0.0], [1.0, 1.0]]
    metrics = continual_metrics(perfect, random_init=[0.0, 0.0])
    assert metrics["forgetting"] == 0.0 and metrics["bwt"] == 0.0 and metrics["average_accuracy"] == 1.0
    assert continual_metrics([[0.8]], random_init=[0.1])["forgetting"] is None  # not 0: undefined
    with pytest.raises(ValueError, match="square"):
        continual_metrics([[0.1, 0.2]], random_init=[0.0])


# ------------------------------------------------------------------------- tasks


def test_split_experiences_partition_the_classes_and_the_examples() -> None:
    task = SplitDigitsTask()
    classes = [e.classes for e in task.experiences]
    assert classes == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]  # fixed order, not seed-dependent
    labels = task.images.splits.train_y
    rows = torch.cat([e.rows("train") for e in task.experiences])
    assert len(rows) == len(labels) and len(set(rows.tolist())) == len(labels)
    for experience in task.experiences:
        batch = next(experience.train_batches(64, torch.Generator().manual_seed(0)))
        assert set(batch.targets.tolist()) <= set(experience.classes)
    union = next(task.train_batches(256, torch.Generator().manual_seed(0)))
    assert len(set(union.targets.tolist())) == 10  # the joint stream mixes every experience


def test_permuted_experiences_permute_pixels_the_same_way_every_time() -> None:
    task, again = PermutedDigitsTask(), PermutedDigitsTask()
    assert task.experiences[0].permutation is None  # the first experience is the plain task
    perms = [e.permutation for e in task.experiences[1:]]
    assert all(torch.equal(p, q) for p, q in zip(perms, (e.permutation for e in again.experiences[1:])))
    assert len({tuple(p.tolist()) for p in perms}) == len(perms)
    x = task.images.splits.test_x
    rows = torch.arange(5)
    for experience in task.experiences:
        shown = experience.take("test", rows).inputs.flatten(1)
        expected = x[:5].flatten(1) if experience.permutation is None else x[:5].flatten(1)[:, experience.permutation]
        assert torch.equal(shown, expected)
        assert torch.equal(shown.sort(dim=1).values, x[:5].flatten(1).sort(dim=1).values)  # same pixels


def test_task_incremental_evaluation_masks_logits_to_the_experience() -> None:
    def always_nine(inputs: torch.Tensor) -> torch.Tensor:  # the last class always wins, then 8, ...
        return torch.arange(10.0).expand(len(inputs), 10)

    class_il = SplitDigitsTask(SplitDigitsConfig(scenario="class"))
    task_il = SplitDigitsTask(SplitDigitsConfig(scenario="task"))
    class_acc = [e.evaluate(always_nine, "test", CPU)["accuracy"] for e in class_il.experiences]
    task_acc = [e.evaluate(always_nine, "test", CPU)["accuracy"] for e in task_il.experiences]
    assert class_acc[:4] == [0.0] * 4 and class_acc[4] > 0.4  # only class 9 is ever predicted
    assert all(0.4 < a < 0.6 for a in task_acc)  # within each pair the odd class is predicted
    with pytest.raises(ConfigError, match="scenario must be one of class, task"):
        resolve(["suite=continual", "tasks.split_digits.scenario=domain"])  # said before anything trains


# -------------------------------------------------------------------------- replay


def test_replay_memory_is_a_uniform_sample_of_the_stream() -> None:
    task = SplitDigitsTask()
    method = Replay()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                              config=ReplayConfig(buffer_size=200), device=CPU,
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.0))
    for start in range(0, 4000, 100):  # example k carries label k, so the memory tells what it kept
        method._remember(Batch(torch.zeros(100, 1, 8, 8), torch.arange(start, start + 100)))
    kept = method.memory_y.tolist()
    assert method.filled == 200 and method.seen == 4000 and len(set(kept)) == 200
    assert 1700 < sum(kept) / len(kept) < 2300  # uniform over 0..3999 (keep-the-first would give ~100)


# ---------------------------------------------------------------------- end to end


def _records(tiny_suite, *overrides: str) -> dict:
    """Records of class-incremental split digits, 40 steps per experience, the continual suite's settings."""
    args = [f"suite={tiny_suite(steps=40, eval_every=40)}", "tasks.mlp.task=split_digits",
            "tasks.mlp.mlp.hidden=[256,256]", "method=[backprop,replay]", "method.lr=0.001",
            "method.schedule=constant", "method.warmup=0.0", *overrides]
    return {cell.method.name: run_cell(cell) for cell in plan(resolve(args))}


def test_fine_tuning_forgets_where_joint_training_and_replay_do_not(tiny_suite) -> None:
    sequential = _records(tiny_suite)
    joint = _records(tiny_suite, "tasks.mlp.regime=joint", "method=backprop")["backprop"]
    for record in (*sequential.values(), joint):
        assert record["status"] == "completed", record.get("traceback") or record.get("error")
        continual = record["continual"]
        assert len(continual["matrix"]) == 5 and all(len(row) == 5 for row in continual["matrix"])
        assert continual["forgetting"] == pytest.approx(
            continual_metrics(continual["matrix"], continual["random_init"])["forgetting"])
        assert record["final"]["metric"] == "average_accuracy"
        assert record["final"]["test"]["accuracy"] == record["final"]["test"]["average_accuracy"]
        assert record["counters"]["steps"] == 5 * 40  # the budget is per experience
    fine_tuning, replay = sequential["backprop"], sequential["replay"]
    # seeds 0-3 gave forgetting 0.94-0.99 (fine-tuning), 0.14-0.20 (replay), -0.01-0.01 (joint)
    assert fine_tuning["continual"]["forgetting"] > 0.8  # class-incremental: the old classes are lost
    assert joint["continual"]["forgetting"] < 0.1
    assert replay["continual"]["forgetting"] < fine_tuning["continual"]["forgetting"] - 0.5
    assert joint["final"]["test"]["average_accuracy"] > fine_tuning["final"]["test"]["average_accuracy"] + 0.5

    gap = QUANTITIES["forgetting_gap"]
    assert gap.read(parse_record(fine_tuning), None).value == fine_tuning["continual"]["forgetting"]
    with pytest.raises(Missing, match="continual"):
        gap.read(parse_record(joint_without_section(fine_tuning)), None)

    rows = summarise([*sequential.values(), joint])
    assert all(row.continual and row.continual["forgetting"] is not None for row in rows)
    assert len(render(rows, "test")) == 3  # results, cost, and the continual table


def test_a_diverging_method_ends_the_cell_with_the_matrix_so_far(tiny_suite, monkeypatch) -> None:
    class Diverges(Backprop):  # a finite loss for 25 steps, then NaN: dies in the second experience
        def step(self, batch: Batch) -> StepStats:
            self.steps = getattr(self, "steps", 0) + 1
            stats = super().step(batch)
            return stats if self.steps <= 25 else dataclasses.replace(stats, loss=math.nan)

    registry.discover()
    monkeypatch.setitem(registry._METHODS, "diverges", type("Diverges", (Diverges,), {"name": "diverges"}))
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=20)}", "tasks.mlp.task=split_digits", "method=diverges"]))
    record = run_cell(cell)
    assert record["status"] == "diverged" and "step 26" in record["error"]
    assert record["final"] is None and len(record["continual"]["matrix"]) == 1  # only the first experience ended


def joint_without_section(record: dict) -> dict:
    """A record of a supervised (non-continual) cell: what forgetting_gap cannot read."""
    out = {k: v for k, v in record.items() if k != "continual"}
    return {**out, "final": {**record["final"], "val": {"accuracy": 0.5}, "test": {"accuracy": 0.5},
                             "metric": "accuracy"}}


# -------------------------------------------------------------------------- EWC


def test_ewc_penalty_starts_at_the_first_boundary_and_pulls_towards_the_anchor() -> None:
    task = PermutedDigitsTask()
    method = EWC()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                              config=EWCConfig(ewc_lambda=10.0, fisher_samples=16), device=CPU,
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.0))
    batch = next(task.experiences[0].train_batches(32, torch.Generator().manual_seed(0)))
    assert method.step(batch).kind == "update" and method._penalty() is None  # no penalty in experience 0
    assert method.end_experience() == "consolidate"
    assert method.step(batch).kind == "consolidate" and method.step(batch).kind == "update"
    fisher, anchor = method.fisher, method.anchor
    assert fisher is not None and anchor is not None and all((f >= 0).all() for f in fisher.values())
    assert sum(float(f.sum()) for f in fisher.values()) > 0
    # the penalty is lambda/2 sum F (w - w*)^2, so its gradient is lambda F (w - w*)
    method.model.zero_grad()
    method._penalty().backward()
    for name, p in method.params.items():
        assert torch.allclose(p.grad, 10.0 * fisher[name] * (p.detach() - anchor[name]), atol=1e-6)
    with pytest.raises(ValueError, match="ewc_lambda"):
        EWCConfig(ewc_lambda=-1.0)


def test_ewc_forgets_less_than_fine_tuning_on_permuted_digits(tiny_suite) -> None:
    """Domain-incremental permuted digits, 40 steps per experience: the case EWC was made for.

    Seeds 0-2 gave forgetting 0.33-0.37 (fine-tuning) and 0.02-0.06 (EWC, lambda 1000), with
    the same average accuracy (0.59-0.62 both): EWC keeps the old permutations without
    giving up the new ones."""
    args = [f"suite={tiny_suite(steps=40, eval_every=40)}", "tasks.mlp.task=permuted_digits",
            "tasks.mlp.mlp.hidden=[256,256]", "method=[backprop,ewc]", "method.lr=0.001",
            "method.schedule=constant", "method.warmup=0.0", "method.ewc.ewc_lambda=1000",
            "method.ewc.fisher_samples=64"]
    records = {cell.method.name: run_cell(cell) for cell in plan(resolve(args))}
    for record in records.values():
        assert record["status"] == "completed", record.get("traceback") or record.get("error")
    fine_tuning, ewc = records["backprop"], records["ewc"]
    assert ewc["continual"]["forgetting"] < fine_tuning["continual"]["forgetting"] - 0.15
    assert ewc["final"]["test"]["average_accuracy"] > 0.45  # it still learns every permutation
    assert ewc["flops"]["per_step"].keys() == {"update", "consolidate"}  # the rare step was probed and counted
    assert ewc["flops"]["total"] is not None
    assert ewc["memory"]["ledger"]["bytes"]["ewc_fisher_and_anchor"] > 0
    # joint training has no experience boundary: no consolidation, so EWC is exactly fine-tuning there
    joint = {cell.method.name: run_cell(cell) for cell in plan(resolve([*args, "tasks.mlp.regime=joint",
                                                                         "budget.steps=10"]))}
    assert "consolidate" not in joint["ewc"]["flops"]["steps_per_kind"]
    assert joint["ewc"]["continual"]["matrix"] == joint["backprop"]["continual"]["matrix"]
