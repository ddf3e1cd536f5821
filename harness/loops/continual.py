"""One continual-learning cell: the experiences of a task in order, and the accuracy matrix.

The protocol (Lopez-Paz & Ranzato, 2017; Chaudhry et al., 2018), the same for every method:

- The method is set up once and sees experiences 0..T-1 in order, each for the cell's
  budget: the budget is per experience. Experience i ends at the first step boundary
  where the budgeted counter reaches (i + 1) x budget, so the whole run spends T x budget
  and overshoots by less than one step in all. `budget_fraction` (which drives the
  methods' schedules) runs over those T x budget: the method sees one stream, and no
  schedule restart announces a boundary. A method that declares `ExperienceAware`
  (harness/interface, e.g. EWC) is told `end_experience()` after each experience of a
  sequential run; it is the only boundary signal, and joint runs never send it.
- regime=joint (the upper bound): the same T phases of one budget each, every phase
  drawing from the union of all experiences; its matrix is read at the same points.
- Before training, and after each phase, the test and validation splits of every
  experience are scored: R[i][j] = test accuracy on experience j after phase i, and the
  fresh model's accuracies b[j] for forward transfer. Metrics: harness/continual_metrics.py.
- No validation-based selection of a state: a continual learner has only its last state,
  and picking an earlier one by validation on all experiences would peek at the future.
  The final metrics are those of the last state.
- Time, FLOPs, memory and energy come from the same meter, counters and step loop as
  every other cell (harness/loops/common.py `start_cell`, `TrainLoop`); the curve's validation
  metric is the mean accuracy over all experiences, with each one's in `val_accuracy_<j>`.
  The accuracy matrix's passes are timed under the phase of their split (`val`, `test`).
"""

from __future__ import annotations

from typing import Any

import torch

from harness import budget as budgets
from harness.continual_metrics import continual_metrics
from harness.interface import ContinualTask, ExperienceAware
from harness.meter import Meter
from harness.plan import Cell
from harness.loops.common import ProgressCallback, TrainLoop, start_cell
from harness.loops.supervised import shift_scores

SPLITS = ("test", "val")


def _accuracies(task: ContinualTask, method: Any, split: str, device: torch.device) -> list[float]:
    return [e.evaluate(method.predict, split, device)["accuracy"] for e in task.experiences]


def train_continual(cell: Cell, task: ContinualTask, method_cls: type,
                    on_progress: ProgressCallback | None) -> dict[str, Any]:
    """Train `method_cls` through `task.experiences`; the record's fields, `continual` among them."""
    n = len(task.experiences)
    total = budgets.Budget(cell.budget.kind, cell.budget.value * n)
    method, model, counters, data_gen = start_cell(cell, task, method_cls, total)
    device = torch.device(cell.device)
    matrix: dict[str, list[list[float]]] = {split: [] for split in SPLITS}
    phase_steps: list[int] = []
    diverged = None

    with Meter(device, model, method, cell.meter) as meter:
        loop = TrainLoop(cell, task, method, meter, counters, total, on_progress)
        random_init = {split: loop.timed(_accuracies, task, method, split, device, phase=split) for split in SPLITS}
        union = task.train_batches(cell.batch_size, data_gen) if task.regime == "joint" else None
        for i, experience in enumerate(task.experiences):
            phase_end = budgets.Budget(cell.budget.kind, cell.budget.value * (i + 1))
            batches = union if union is not None else experience.train_batches(cell.batch_size, data_gen)
            diverged = loop.run(batches, lambda end=phase_end: budgets.exhausted(end, counters))
            if diverged is not None:
                break
            phase_steps.append(counters.steps)
            if union is None and isinstance(method, ExperienceAware):
                if (kind := method.end_experience()) is not None:
                    meter.expect(kind)  # a once-per-experience step: probed the first time, FLOPs counted
            for split in SPLITS:
                matrix[split].append(loop.timed(_accuracies, task, method, split, device, phase=split))

    continual: dict[str, Any] = {
        "scenario": task.scenario, "regime": task.regime, "experiences": n,
        "budget_per_experience": {cell.budget.kind: cell.budget.value}, "phase_end_steps": phase_steps,
        "matrix": matrix["test"], "val_matrix": matrix["val"],
        "random_init": random_init["test"], "val_random_init": random_init["val"],
        "selection": "last state (continual learning keeps no validation-selected state)",
    }
    if diverged is not None:
        return {"status": "diverged", "error": diverged, "final": None, "continual": continual, **loop.results()}

    scores = {split: continual_metrics(matrix[split], random_init[split]) for split in SPLITS}
    continual.update(scores["test"])
    final: dict[str, Any] = {
        "metric": "average_accuracy",
        "best_step": counters.steps,  # the last state: no selection
        **{split: {**scores[split], "accuracy": scores[split]["average_accuracy"]} for split in SPLITS},
    }
    if cell.shift.enabled:
        final["shift"] = loop.timed(shift_scores, task, method, device, cell, final["test"]["accuracy"], phase="shift")
    return {"status": "completed", "final": final, "continual": continual, **loop.results()}  # after shift: its seconds count
