"""The one unit of work every launcher ships, `execute(cell, results_dir)`, and the resume rule.

`execute` claims the cell (harness/locks.py), re-checks the store, trains it with
`runner.run_cell`, writes the record atomically and releases the claim. So any number of
workers, started by any launcher or by several `bench run` commands at once, can share
one results directory: each cell is trained once, a killed worker's cell is retried by
the next run, and a completed record is never rewritten.

Resume rule: a cell whose record is final (completed, diverged, unsupported) is skipped;
a failed or interrupted one runs again, once per `bench run`: when another process has
tried it since this run looked at the store (its record changed), it is not tried again
here, so N concurrent runs do not retry a failing cell N times (`split_by_store`, `Seen`).
It is apart from the launchers (harness/launch.py, harness/local_pool.py) because they all
run it, in this process or in workers, and it knows nothing of where it runs.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.interface import TaskDataError
from harness.locks import is_running, try_claim
from harness.loops.common import ProgressCallback, build_task
from harness.plan import Cell
from harness.record import Record, parse_record
from harness.runner import run_cell
from harness.store import Store, Version
from harness.typed_config import ConfigError


@dataclass(frozen=True)
class Seen:
    """The version of a cell's record when this run planned it (None: it had none)."""

    version: Version


@dataclass
class Split:
    """A plan divided by what the store already holds."""

    done: list[Cell] = field(default_factory=list)
    todo: list[Cell] = field(default_factory=list)
    retried: list[Cell] = field(default_factory=list)  # failed before: run again
    seen: dict[str, Seen] = field(default_factory=dict)  # run id -> its record's version at planning


def is_final(record: Record | None) -> bool:
    return record is not None and record.is_final


def split_by_store(cells: list[Cell], store: Store) -> Split:
    split = Split()
    for cell in cells:
        record = store.load(cell.suite, cell.run_id)
        split.seen[cell.run_id] = Seen(store.record_version(cell.suite, cell.run_id))
        if is_final(record):
            split.done.append(cell)
        else:
            split.todo.append(cell)
            if record is not None:
                split.retried.append(cell)
    return split


def cell_states(cells: list[Cell], store: Store) -> dict[tuple[str, str], dict[str, int]]:
    """(task, method) -> how many cells are completed / running / failed / ... / missing."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for cell in cells:
        record = store.load(cell.suite, cell.run_id)
        if is_running(store.record_path(cell.suite, cell.run_id).parent):
            state = "running"
        else:
            state = record.status if record else "missing"
        row = counts.setdefault((cell.task.label, cell.method.name), {})
        row[state] = row.get(state, 0) + 1
    return counts


def check_data(cells: list[Cell]) -> None:
    """Fail before any training when a task's data is missing (TaskDataError says how to get
    it) or does not fit its config (ConfigError, e.g. val_size larger than the training set)."""
    seen = set()
    for cell in cells:
        key = (cell.task.task, repr(cell.task.config))
        if key not in seen:
            seen.add(key)
            try:
                build_task(cell).check_available()
            except (TaskDataError, ConfigError):
                raise
            except (ValueError, TypeError) as exc:  # the task refuses its config once it sees the data
                raise ConfigError(f"tasks.{cell.task.label}: {exc}") from exc


def execute(cell: Cell, results_dir: Path, on_progress: ProgressCallback | None = None,
            seen: Seen | None = None) -> tuple[str, Record | None]:
    """Run one cell unless it is recorded or claimed: ("ran" | "done" | "busy", record).

    `seen`: the record's version when the caller planned the cell; a failed record written
    since then (by another process) is returned as "done" rather than tried again.
    """
    store = Store(Path(results_dir))
    record = store.load(cell.suite, cell.run_id)
    if is_final(record):
        return "done", record
    claim = try_claim(store.record_path(cell.suite, cell.run_id).parent)
    if claim is None:
        return "busy", None
    with claim:
        record = store.load(cell.suite, cell.run_id)  # another worker may have finished it meanwhile
        if is_final(record):
            return "done", record
        if record is not None and seen is not None and store.record_version(cell.suite, cell.run_id) != seen.version:
            return "done", record  # another process tried it since we looked: one try per round
        made = run_cell(cell, on_progress, store, lambda pretrain: pretrained_state(pretrain, store, on_progress))
        record = parse_record({**made, "worker": {"host": socket.gethostname(), "pid": os.getpid()}})
        store.write(cell.suite, cell.run_id, record)
    return "ran", record


PRETRAIN_POLL_S = 2.0


def pretrained_state(pretrain: Cell, store: Store, on_progress: ProgressCallback | None,
                     poll_seconds: float = PRETRAIN_POLL_S) -> dict[str, Any]:
    """The selected model state of `pretrain`, training it first when the store lacks it.

    When another worker holds the pretraining cell (a claim launches a fine-tuning cell beside
    the pretraining cell it starts from), wait for it rather than fail: its lock goes when it
    finishes or its process dies, and the fine-tuning cell then reads or trains it."""
    while (found := execute(pretrain, store.root, on_progress))[0] == "busy":
        time.sleep(poll_seconds)
    record = found[1]
    if record is None or not record.completed:
        status = None if record is None else f"{record.status}: {record.error}"
        raise RuntimeError(f"its pretraining cell {pretrain} ({pretrain.run_id}) did not complete ({status}).")
    state = store.load_model_state(pretrain.suite, pretrain.run_id)
    if state is None:
        raise RuntimeError(f"its pretraining cell {pretrain} has no {store.model_state_path(pretrain.suite, pretrain.run_id)}: "
                           "delete that cell's record.json and run again, so it is retrained and saved.")
    return state
