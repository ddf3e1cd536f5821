"""Where cells run: this process, a local process pool, Slurm through submitit, or Ray.

A launcher only decides where `execute(cell, results_dir)` runs; the unit of work is the
same everywhere: claim the cell (harness/locks.py), re-check the store, train it with
`runner.run_cell`, write the record atomically, release the claim. So any number of
workers, started by any launcher or by several `bench run` commands at once, can share
one results directory: each cell is trained once, a killed worker's cell is retried by
the next run, and a completed record is never rewritten.

Resume rule: a cell whose record is final (completed, diverged, unsupported) is skipped;
a failed or interrupted one runs again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness.config import LauncherConfig
from harness.locks import is_running, try_claim
from harness.loops.common import ProgressCallback, build_task
from harness.plan import Cell
from harness.record import Record, parse_record
from harness.runner import run_cell
from harness.store import Store

RecordCallback = Callable[[Cell, str, Record | None], None]


@dataclass
class Split:
    """A plan divided by what the store already holds."""

    done: list[Cell] = field(default_factory=list)
    todo: list[Cell] = field(default_factory=list)
    retried: list[Cell] = field(default_factory=list)  # failed before: run again


def is_final(record: Record | None) -> bool:
    return record is not None and record.is_final


def split_by_store(cells: list[Cell], store: Store) -> Split:
    split = Split()
    for cell in cells:
        record = store.load(cell.suite, cell.run_id)
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
    """Fail before any training when a task's data is missing (TaskDataError says how to get it)."""
    seen = set()
    for cell in cells:
        key = (cell.task.task, repr(cell.task.config))
        if key not in seen:
            seen.add(key)
            build_task(cell).check_available()


def execute(cell: Cell, results_dir: Path, on_progress: ProgressCallback | None = None) -> tuple[str, Record | None]:
    """Run one cell unless it is recorded or claimed: ("ran" | "done" | "busy", record)."""
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
        made = run_cell(cell, on_progress, store, lambda pretrain: pretrained_state(pretrain, store, on_progress))
        record = parse_record({**made, "worker": {"host": socket.gethostname(), "pid": os.getpid()}})
        store.write(cell.suite, cell.run_id, record)
    return "ran", record


def pretrained_state(pretrain: Cell, store: Store, on_progress: ProgressCallback | None) -> dict[str, Any]:
    """The selected model state of `pretrain`, training it first when the store lacks it."""
    outcome, record = execute(pretrain, store.root, on_progress)
    if outcome == "busy":
        raise RuntimeError(f"its pretraining cell {pretrain} ({pretrain.run_id}) is being trained by another worker; "
                           "run again when it has finished.")
    if record is None or not record.completed:
        status = None if record is None else f"{record.status}: {record.error}"
        raise RuntimeError(f"its pretraining cell {pretrain} ({pretrain.run_id}) did not complete ({status}).")
    state = store.load_model_state(pretrain.suite, pretrain.run_id)
    if state is None:
        raise RuntimeError(f"its pretraining cell {pretrain} has no {store.model_state_path(pretrain.suite, pretrain.run_id)}: "
                           "delete that cell's record.json and run again, so it is retrained and saved.")
    return state


def _execute_remote(cell: Cell, results_dir: str) -> tuple[str, Record | None]:
    """The function other processes run: pickles cleanly, returns the outcome."""
    return execute(cell, Path(results_dir))


def _with_threads(cells: Iterable[Cell], workers: int) -> list[Cell]:
    """Share the cores between pool workers unless the cells set their own thread count."""
    per_worker = max(1, (os.cpu_count() or 1) // workers)
    return [cell if cell.threads is not None else replace(cell, threads=per_worker) for cell in cells]


def launch(cells: list[Cell], results_dir: Path, config: LauncherConfig,
           on_progress: ProgressCallback | None = None, on_record: RecordCallback | None = None) -> dict[str, int]:
    """Run `cells` with the configured launcher; returns how many ran / were done / were busy."""
    outcomes = {"ran": 0, "done": 0, "busy": 0}

    def note(cell: Cell, outcome: tuple[str, Record | None]) -> None:
        outcomes[outcome[0]] += 1
        if on_record is not None:
            on_record(cell, *outcome)

    if config.kind == "local" and config.workers == 1:
        for cell in cells:
            note(cell, execute(cell, results_dir, on_progress))
    elif config.kind == "local":
        workers = config.workers or os.cpu_count() or 1
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_execute_remote, c, str(results_dir)): c for c in _with_threads(cells, workers)}
            for future in as_completed(futures):
                note(futures[future], future.result())
    elif config.kind == "submitit":
        _launch_submitit(cells, results_dir, config, note)
    else:
        _launch_ray(cells, results_dir, config, note)
    return outcomes


def _launch_submitit(cells: list[Cell], results_dir: Path, config: LauncherConfig,
                     note: Callable[[Cell, tuple[str, Record | None]], None]) -> None:
    try:
        import submitit
    except ImportError as exc:
        raise RuntimeError("launcher.kind=submitit needs submitit: pip install -e '.[sweeps]'") from exc
    executor = submitit.AutoExecutor(folder=Path(results_dir) / config.folder,
                                     cluster=None if config.cluster == "auto" else config.cluster)
    params: dict[str, Any] = {"timeout_min": config.timeout_min, "gpus_per_node": config.gpus_per_node,
                              "cpus_per_task": config.cpus_per_task, "mem_gb": config.mem_gb,
                              "slurm_array_parallelism": config.array_parallelism}
    if config.partition:
        params["slurm_partition"] = config.partition
    executor.update_parameters(**params)
    jobs = executor.map_array(_execute_remote, cells, [str(results_dir)] * len(cells))
    for cell, job in zip(cells, jobs):
        note(cell, job.result())


def _launch_ray(cells: list[Cell], results_dir: Path, config: LauncherConfig,
                note: Callable[[Cell, tuple[str, Record | None]], None]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("launcher.kind=ray needs ray: pip install -e '.[sweeps]'") from exc
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": config.workers or None, "include_dashboard": False, "log_to_driver": False}
        ray.init(address=config.address, **({} if config.address else local))
    try:
        remote = ray.remote(num_cpus=1)(_execute_remote)
        pending = {remote.remote(cell, str(results_dir)): cell for cell in cells}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                note(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()
