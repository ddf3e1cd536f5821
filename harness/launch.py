"""Where cells run. For now: the local launcher, one cell after another in this process.

The launcher only ships cells; `runner.run_cell` trains and `Store.write` records,
whatever the launcher. A re-run resumes: a cell whose record is final (completed,
diverged, unsupported) is skipped, a failed or interrupted one is run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.plan import Cell
from harness.runner import ProgressCallback, build_task, run_cell
from harness.store import Store

FINAL_STATUSES = frozenset({"completed", "diverged", "unsupported"})


@dataclass
class Split:
    """A plan divided by what the store already holds."""

    done: list[Cell] = field(default_factory=list)
    todo: list[Cell] = field(default_factory=list)
    retried: list[Cell] = field(default_factory=list)  # failed before: run again


def split_by_store(cells: list[Cell], store: Store) -> Split:
    split = Split()
    for cell in cells:
        record = store.load(cell.suite, cell.run_id)
        if record is not None and record.get("status") in FINAL_STATUSES:
            split.done.append(cell)
        else:
            split.todo.append(cell)
            if record is not None:
                split.retried.append(cell)
    return split


def check_data(cells: list[Cell]) -> None:
    """Fail before any training when a task's data is missing (TaskDataError says how to get it)."""
    seen = set()
    for cell in cells:
        key = (cell.task.task, repr(cell.task.config))
        if key not in seen:
            seen.add(key)
            build_task(cell).check_available()


def run_local(
    cells: list[Cell],
    store: Store,
    on_progress: ProgressCallback | None = None,
    on_record: Callable[[Cell, dict[str, Any]], None] | None = None,
) -> None:
    """Run `cells` in order in this process, writing each record as soon as it ends."""
    for cell in cells:
        record = run_cell(cell, on_progress)
        store.write(cell.suite, cell.run_id, record)
        if on_record is not None:
            on_record(cell, record)

