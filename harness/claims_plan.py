"""`bench claims verify ... --plan`: what verifying would train, and a projection of how long.

Nothing trains. One planning pass (harness/claims.py `plan_round`) gives the cells the store
lacks now (the tuning trials, and the compared seeds of claims that tune nothing) and how many
compared cells later rounds add once the trials are in (at most: some may be recorded, or
shared by claims). Each cell to train is projected from the store's own records of the same
suite, task and method: their recorded wall time (`timing.cell_seconds`; for records older
than the phase accounting, training plus evaluation seconds) per unit of what
they spent of the cell's budget kind (a record's counters hold every kind), times this
cell's budget; a cell's fixed costs (setup, the final evaluation) are scaled with it. A cell with no such
record is counted apart, never guessed; later-round cells are projected at the mean of the
projected cells of this round (they are the same methods on the same tasks, seeds apart).
It is a projection from what this store holds (recorded on whatever machine, at whatever
load), not a measurement; the verdict files then say what the cells took (`cost`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from harness.claim_files import Claim
from harness.claims import ClaimCells, cell_time, plan_round
from harness.plan import Cell
from harness.record import Record


@dataclass(frozen=True)
class ClaimsPlan:
    to_train: list[Cell]
    later: int  # compared cells the following rounds add, at most
    projected_seconds: float | None  # cell time of the projected cells (None: no cell could be projected)
    projected: int  # cells of `to_train` with a similar record to project from
    groups: dict[tuple[str, str, str, str], tuple[int, float | None]]  # (suite, task, method, budget) -> (cells, seconds)
    later_seconds: float | None  # the later cells at the mean projected cell time


def _rate(records: list[Record], cell: Cell) -> float | None:
    """Recorded seconds per unit of `cell`'s budget kind, the median over the store's completed
    cells of the same task and method (whatever their budget: a record's counters say how much
    of every kind it spent); None when there is none."""
    rates = []
    for r in records:
        spent = getattr(r.counters, cell.budget.kind, None) if r.counters is not None else None
        seconds, _ = cell_time(r)
        if (r.method == cell.method.name and r.task_label == cell.task.label and seconds
                and isinstance(spent, (int, float)) and spent > 0):
            rates.append(seconds / spent)
    return statistics.median(rates) if rates else None


def plan_claims(claims: list[tuple[Claim, Path]], runner: ClaimCells, robustness: bool = True) -> ClaimsPlan:
    cells, later = plan_round(claims, runner, robustness)
    by_suite: dict[str, list[Record]] = {}
    groups: dict[tuple[str, str, str, str], tuple[int, float | None]] = {}
    for cell in cells:
        if cell.suite not in by_suite:  # each suite's records read once
            by_suite[cell.suite] = [r for r in runner.store.records(cell.suite) if r.completed]
        rate = _rate(by_suite[cell.suite], cell)  # the same for every cell of a group (task, method)
        key = (cell.suite, cell.task.label, cell.method.name, str(cell.budget))
        count, total = groups.get(key, (0, 0.0))
        groups[key] = (count + 1, None if rate is None or total is None else total + rate * cell.budget.value)
    known = [(count, total) for count, total in groups.values() if total is not None]
    projected = sum(count for count, _ in known)
    seconds = sum(total for _, total in known) if known else None
    return ClaimsPlan(cells, later, seconds, projected, groups,
                      None if seconds is None else seconds / projected * later)
