"""The run's time-left estimate (harness/perf_eta.py): projected from each cell's first steps."""

from __future__ import annotations

import pytest

from harness.perf_eta import RunEta, format_seconds


def test_no_estimate_before_a_cell_has_spent_its_first_steps() -> None:
    eta = RunEta(total=4, workers=2)
    eta.queued_groups = {"vit": 4}
    eta.progress("a", "vit", 0.001, now=0.0)
    eta.progress("a", "vit", 0.01, now=1.0)
    left, basis = eta.remaining(now=1.0)
    assert left is None and "first steps" in basis


def test_running_and_queued_cells_are_projected_from_their_own_task() -> None:
    eta = RunEta(total=4, workers=2)
    eta.queued_groups = {"vit": 2, "mlp": 2}
    eta.progress("v1", "vit", 0.0, now=0.0)
    eta.progress("m1", "mlp", 0.0, now=0.0)
    eta.progress("v1", "vit", 0.25, now=25.0)  # a vit cell: 100 s in all, 75 s left
    eta.progress("m1", "mlp", 0.5, now=5.0)  # an mlp cell: 10 s in all
    eta.finished("m1", "mlp", now=10.0)
    left, basis = eta.remaining(now=25.0)
    # running v1: 75 s; queued: one vit (100 s) and one mlp (10 s); two workers
    assert left == pytest.approx((75 + 100 + 10) / 2)
    assert "2 cells" in basis
    assert eta.cell_left("v1", now=25.0) == pytest.approx(75.0)


def test_a_cell_recorded_without_progress_costs_nothing() -> None:
    eta = RunEta(total=2, workers=1)
    eta.queued_groups = {"vit": 2}
    eta.finished("skipped", "vit", now=3.0)  # unsupported: recorded at once
    eta.progress("v1", "vit", 0.0, now=3.0)
    eta.progress("v1", "vit", 0.5, now=13.0)
    left, _ = eta.remaining(now=13.0)
    assert left == pytest.approx(10.0)


def test_format_seconds() -> None:
    assert format_seconds(None) == "?"
    assert format_seconds(3725.4) == "1:02:05"
