"""Where cells run: this process, a local process pool, Slurm through submitit, or Ray.

A launcher only decides where `execute(cell, results_dir)` (harness/execute.py: the unit of
work and the resume rule) runs; the work is the same everywhere, so any launcher, or several
`bench run` commands at once, can share one results directory. `launch` picks the launcher
from `LauncherConfig`: this process (`launcher.workers` = 1, with a live progress display),
the local pool (harness/local_pool.py), submitit or Ray; SIGTERM to it raises `Cancelled`
once the workers have stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from harness.execute import Seen, execute
from harness.local_pool import run_pool
from harness.loops.common import ProgressCallback
from harness.plan import Cell
from harness.record import Record
from harness.run_config import LauncherConfig

__all__ = ("Cancelled", "RecordCallback", "device_slots", "launch", "local_workers")

RecordCallback = Callable[[Cell, str, Record | None], None]


class Cancelled(BaseException):
    """SIGTERM (or SIGINT) reached the launcher: the queue was cancelled and the workers stopped.

    A BaseException, as KeyboardInterrupt is: with one worker the cell runs in this process,
    and the runner turns every Exception of a cell into a `failed` record and goes on with the
    next cell, so an Exception here cancelled only the running cell, not the queue."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _execute_remote(cell: Cell, results_dir: str, seen: Seen | None = None) -> tuple[str, Record | None]:
    """The function other processes run: pickles cleanly, returns the outcome."""
    return execute(cell, Path(results_dir), seen=seen)


def _with_threads(cells: Iterable[Cell], workers: int) -> list[Cell]:
    """Share the cores between pool workers unless the cells set their own thread count."""
    per_worker = max(1, (os.cpu_count() or 1) // workers)
    return [cell if cell.threads is not None else replace(cell, threads=per_worker) for cell in cells]


def local_workers(config: LauncherConfig, cells: Iterable[Cell] = ()) -> int:
    """How many cells run at once on this machine (1 for the cluster launchers, whose
    cells report no progress here): `launcher.workers`, 0 meaning one per core, or with
    `launcher.cells_per_device` that many per device (`device_slots`)."""
    if config.kind != "local":
        return 1
    if config.cells_per_device is not None:
        return len(device_slots(config.cells_per_device, _gpus_for(cells)))
    return config.workers or os.cpu_count() or 1


def device_slots(cells_per_device: int, gpus: int) -> list[int | None]:
    """The device each pool worker is pinned to: GPUs taken round-robin, so the first
    cells spread over the devices before any device gets a second; None (no pinning)
    for every worker when the cells run on the CPU (`gpus` = 0)."""
    if gpus == 0:
        return [None] * cells_per_device
    return [slot % gpus for slot in range(gpus * cells_per_device)]


def _gpus_for(cells: Iterable[Cell]) -> int:
    """Visible GPUs when any of the cells runs on CUDA, else 0."""
    if not any(str(cell.device).startswith("cuda") for cell in cells):
        return 0
    return torch.cuda.device_count()


def launch(cells: list[Cell], results_dir: Path, config: LauncherConfig,
           on_progress: ProgressCallback | None = None, on_record: RecordCallback | None = None,
           seen: dict[str, Seen] | None = None) -> dict[str, int]:
    """Run `cells` with the configured launcher; returns how many ran / were done / were busy.

    `seen` (from `split_by_store`): each cell's record version when planned, so a failure
    recorded meanwhile by another process is not retried here. SIGTERM raises `Cancelled`
    (SIGINT KeyboardInterrupt) once the workers have stopped.
    """
    outcomes = {"ran": 0, "done": 0, "busy": 0}
    seen = seen or {}

    def note(cell: Cell, outcome: tuple[str, Record | None]) -> None:
        outcomes[outcome[0]] += 1
        if on_record is not None:
            on_record(cell, *outcome)

    with _cancel_on_sigterm():
        if config.kind == "local" and local_workers(config, cells) == 1:
            for cell in cells:
                note(cell, execute(cell, results_dir, on_progress, seen.get(cell.run_id)))
        elif config.kind == "local":
            workers = local_workers(config, cells)
            slots = device_slots(config.cells_per_device, _gpus_for(cells)) if config.cells_per_device else None
            run_pool(_with_threads(cells, workers), Path(results_dir), workers, config.retries, seen, note, on_progress,
                     slots)
        elif config.kind == "submitit":
            _launch_submitit(cells, results_dir, config, note, seen)
        else:
            _launch_ray(cells, results_dir, config, note, seen)
    return outcomes


@contextlib.contextmanager
def _cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into `Cancelled` in the main thread for the duration (SIGINT already
    raises KeyboardInterrupt), so the launcher stops its workers instead of orphaning them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def cancel(signum: int, frame: Any) -> None:
        raise Cancelled(signum)

    previous = signal.signal(signal.SIGTERM, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _launch_submitit(cells: list[Cell], results_dir: Path, config: LauncherConfig,
                     note: Callable[[Cell, tuple[str, Record | None]], None], seen: dict[str, Seen]) -> None:
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
    jobs = executor.map_array(_execute_remote, cells, [str(results_dir)] * len(cells),
                              [seen.get(c.run_id) for c in cells])
    for cell, job in zip(cells, jobs):
        note(cell, job.result())


def _launch_ray(cells: list[Cell], results_dir: Path, config: LauncherConfig,
                note: Callable[[Cell, tuple[str, Record | None]], None], seen: dict[str, Seen]) -> None:
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
        pending = {remote.remote(cell, str(results_dir), seen.get(cell.run_id)): cell for cell in cells}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                note(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()
