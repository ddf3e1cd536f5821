"""The run's time-left estimate (harness/perf_eta.py) and the display that shows it (harness/cli_common.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness import cli_common
from harness.budget import Counters
from harness.loops.common import StepProgress
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


def test_one_long_cell_is_not_shared_between_workers() -> None:
    eta = RunEta(total=2, workers=2)
    eta.queued_groups = {"vit": 2}
    eta.progress("v1", "vit", 0.0, now=0.0)
    eta.progress("v1", "vit", 0.5, now=50.0)  # 50 s left
    eta.finished("skipped", "vit", now=50.0)
    left, _ = eta.remaining(now=50.0)
    assert left == pytest.approx(50.0)  # not 25: the second worker cannot help


def test_display_without_a_terminal_prints_a_progress_line(monkeypatch, capsys) -> None:
    """A logged run (stdout not a terminal) is not silent until its first cell ends."""
    monkeypatch.setattr(cli_common, "LOG_LINE_S", 0.0)
    cell = SimpleNamespace(run_id="a", task=SimpleNamespace(label="vit"))
    display = cli_common.Display([cell, SimpleNamespace(run_id="b", task=SimpleNamespace(label="vit"))], workers=2)
    display.on_progress(StepProgress(cell, Counters(steps=5), 0.5, 1.0, None))  # type: ignore[arg-type]
    assert "progress: 0/2 cells recorded, 1 running;" in capsys.readouterr().out
