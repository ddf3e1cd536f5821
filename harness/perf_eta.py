"""An honest time-left estimate for a run, from the first steps of each cell.

A progress bar's own estimate (rate of the last few updates) is wrong by orders of magnitude
for a suite: cells of one method on one task can cost 30x another's, and the rate jumps
whenever a cheap cell follows a dear one. This estimate instead projects each running cell
from its own first steps (elapsed / budget fraction spent, once `min_fraction` of it is
spent), takes finished cells at their measured wall time, and gives a queued cell the mean
projected time of the started cells of its task (of all started cells when none of its
task has started yet). Cells run `workers` at a time, so the run's time left is the sum of
what is left divided by `workers`, and never less than the longest running cell's time left
(still a lower bound when the last cells leave workers idle).

`remaining()` says what it is based on, and returns None until at least one cell has
spent `min_fraction` of its budget: no number is better than an invented one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _CellClock:
    group: str  # cells of one group (the task) are expected to cost alike
    started: float
    fraction: float = 0.0
    updated: float = 0.0
    finished: float | None = None

    def projected(self, min_fraction: float) -> float | None:
        """The cell's whole wall time: measured once finished, else elapsed / fraction."""
        if self.finished is not None:
            return self.finished - self.started
        if self.fraction < min_fraction:
            return None
        return (self.updated - self.started) / self.fraction


@dataclass
class RunEta:
    """Time left for `total` cells (None: unknown count, e.g. claims) run `workers` at a time."""

    total: int | None
    workers: int = 1
    min_fraction: float = 0.02  # the first ~2% of a cell's budget: past its probe step and warm-up
    cells: dict[str, _CellClock] = field(default_factory=dict)
    queued_groups: dict[str, int] = field(default_factory=dict)  # group -> cells not started yet (if known)

    def progress(self, run_id: str, group: str, fraction: float, now: float) -> None:
        clock = self.cells.get(run_id)
        if clock is None:
            clock = self.cells[run_id] = _CellClock(group, started=now, updated=now)
            if self.queued_groups.get(group, 0) > 0:
                self.queued_groups[group] -= 1
        clock.fraction, clock.updated = max(clock.fraction, fraction), now

    def finished(self, run_id: str, group: str, now: float) -> None:
        clock = self.cells.get(run_id)
        if clock is None:  # recorded without progress (unsupported, done meanwhile): takes no time
            clock = self.cells[run_id] = _CellClock(group, started=now, updated=now)
            if self.queued_groups.get(group, 0) > 0:
                self.queued_groups[group] -= 1
        clock.finished = now

    def cell_left(self, run_id: str, now: float) -> float | None:
        clock = self.cells.get(run_id)
        if clock is None or clock.finished is not None:
            return None
        total = clock.projected(self.min_fraction)
        return None if total is None else max(0.0, total - (now - clock.started))

    def remaining(self, now: float) -> tuple[float | None, str]:
        """(seconds left for the whole run, what the figure rests on)."""
        projected = {rid: c.projected(self.min_fraction) for rid, c in self.cells.items()
                     if c.finished is None or c.finished > c.started}  # skip cells that took no time
        known = {rid: t for rid, t in projected.items() if t is not None}
        if not known:
            return None, "waiting for the first steps of a cell"
        by_group: dict[str, list[float]] = {}
        for rid, t in known.items():
            by_group.setdefault(self.cells[rid].group, []).append(t)
        overall = sum(known.values()) / len(known)

        def mean(group: str) -> float:
            times = by_group.get(group)
            return sum(times) / len(times) if times else overall

        left, longest = 0.0, 0.0  # no cell is split between workers: the run lasts at least its longest
        for rid, clock in self.cells.items():
            if clock.finished is not None:
                continue
            cell_left = self.cell_left(rid, now)
            cell_left = cell_left if cell_left is not None else max(0.0, mean(clock.group) - (now - clock.started))
            left, longest = left + cell_left, max(longest, cell_left)
        started = len(self.cells)
        queued_known = sum(self.queued_groups.values())
        left += sum(n * mean(g) for g, n in self.queued_groups.items())
        if self.total is not None:
            left += max(0, self.total - started - queued_known) * overall
        basis = f"projected from the first steps of {len(known)} cell{'s' if len(known) != 1 else ''}"
        return max(longest, left / max(1, self.workers)), basis


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
