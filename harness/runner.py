"""One cell from start to record: pick the loop the task's protocol calls for, and nothing else.

The loops live in harness/loops/ (common.py holds what they share: seeding, `start_cell`,
`TrainLoop`, the measurement fields); this module only builds the record's header, checks
that the method supports the task's kind, dispatches, and turns any exception into a
`failed` record, so a failing cell never takes the others down:

- control tasks (kind "control", `ControlTask`) -> loops/control.py: the harness steps the
  environment, the method acts and learns; scored online, last state;
- memory-only tasks (`MemoryOnlyTask`) -> loops/memory_only.py: the memory of a few steps at
  scale, on the meta device (and for real on a GPU);
- continual tasks (`ContinualTask`) -> loops/continual.py: experiences in order, the
  accuracy matrix, no selection;
- every other task -> loops/supervised.py: train, select on validation, test once.

Statuses: `completed`, `diverged` (a non-finite training loss), `failed` (anything raised;
the error and traceback are recorded), `unsupported` (the task's kind is not in the
method's `supports`).
"""

from __future__ import annotations

import traceback
from datetime import datetime, timezone
from typing import Any

import torch

from harness.environment import environment
from harness.interface import loop_for
from harness.loops.common import ProgressCallback, build_task
from harness.loops.continual import train_continual
from harness.loops.control import train_control
from harness.loops.memory_only import run_memory_cell
from harness.loops.supervised import PretrainedState, train_supervised
from harness.plan import Cell
from harness.record import RECORD_SCHEMA, RecordError, parse_record
from harness.registry import get_method
from harness.store import Store

__all__ = ["RECORD_SCHEMA", "build_task", "new_record", "run_cell"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_record(cell: Cell) -> dict[str, Any]:
    return {
        "schema": RECORD_SCHEMA,
        "run_id": cell.run_id,
        "suite": cell.suite,
        "task_label": cell.task.label,
        "task": cell.task.task,
        "method": cell.method.name,
        "seed": cell.seed,
        "status": None,
        "error": None,
        "config": cell.identity(),
        "env": environment(),
        "budget": {"kind": cell.budget.kind, "value": cell.budget.value},
        "threads": cell.threads or torch.get_num_threads(),
        "started_at": _now(),
        "final": None,
    }


def run_cell(cell: Cell, on_progress: ProgressCallback | None = None, store: Store | None = None,
             pretrained: PretrainedState | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; always returns a record (checked against harness/record.py,
    as the dict written to record.json), never raises on a bad method.

    `store`: where LM cells save their selected model state. `pretrained`: how a fine-tuning
    cell gets its pretraining cell's state (the launcher passes one that finds or trains it).
    """
    record = new_record(cell)
    try:
        task = build_task(cell)
        method_cls = get_method(cell.method.name)
        if task.kind not in method_cls.supports:
            record.update(
                status="unsupported",
                error=f"method {cell.method.name} supports {sorted(method_cls.supports)}, "
                f"not {task.kind!r} tasks like {cell.task.task}",
            )
        else:
            loop = loop_for(task)
            if loop == "control":
                record.update(train_control(cell, task, method_cls, on_progress))
            elif loop == "memory_only":
                record.update(run_memory_cell(cell, task, method_cls))
            elif loop == "continual":
                record.update(train_continual(cell, task, method_cls, on_progress))
            else:
                record.update(train_supervised(cell, task, method_cls, on_progress, store, pretrained))
    except Exception as exc:  # a failing cell must not take the others down
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["finished_at"] = _now()
    try:  # the record's shape is checked here, where it is made, not when someone reads it
        return parse_record(record).to_dict()
    except RecordError as exc:  # a loop wrote a malformed record: the cell failed, say why
        record = {**new_record(cell), "status": "failed", "finished_at": _now(),
                  "error": f"the harness built a malformed record ({exc}); please report it"}
        return parse_record(record).to_dict()
