"""Where cells run: this process, a local process pool, Slurm through submitit, or Ray.

A launcher only decides where `execute(cell, results_dir)` runs; the unit of work is the
same everywhere: claim the cell (harness/locks.py), re-check the store, train it with
`runner.run_cell`, write the record atomically, release the claim. So any number of
workers, started by any launcher or by several `bench run` commands at once, can share
one results directory: each cell is trained once, a killed worker's cell is retried by
the next run, and a completed record is never rewritten.

Resume rule: a cell whose record is final (completed, diverged, unsupported) is skipped;
a failed or interrupted one runs again, once per `bench run`: when another process has
tried it since this run looked at the store (its record changed), it is not tried again
here, so N concurrent runs do not retry a failing cell N times.

The local pool (`launcher.workers` > 1) is a few spawn processes this module drives
itself, one cell at a time each, each over its own pipe, so that:

- a worker that dies (SIGKILL from the OOM killer, a segfault) costs only its cell: the
  cell gets a `failed` record naming the signal and is retried up to
  `launcher.retries` times while the other workers go on;
- SIGINT or SIGTERM to the parent cancels the queue and stops the workers within
  seconds (`Cancelled`; finished cells are recorded, the interrupted ones run next time);
- a worker exits when its parent dies: the Linux parent-death signal (prctl), and on
  every system the pipe it waits on for its next cell closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

from harness.interface import TaskDataError
from harness.locks import is_running, try_claim
from harness.loops.common import ProgressCallback, build_task
from harness.plan import Cell
from harness.record import Record, parse_record
from harness.run_config import LauncherConfig
from harness.runner import new_record, run_cell
from harness.store import Store, StoreError, Version
from harness.typed_config import ConfigError

log = logging.getLogger(__name__)

RecordCallback = Callable[[Cell, str, Record | None], None]
STOP_GRACE_S = 5.0  # how long stopped workers get to exit on SIGTERM before SIGKILL
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Cancelled(Exception):
    """SIGTERM (or SIGINT) reached the launcher: the queue was cancelled and the workers stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


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


def _execute_remote(cell: Cell, results_dir: str, seen: Seen | None = None) -> tuple[str, Record | None]:
    """The function other processes run: pickles cleanly, returns the outcome."""
    return execute(cell, Path(results_dir), seen=seen)


def _with_threads(cells: Iterable[Cell], workers: int) -> list[Cell]:
    """Share the cores between pool workers unless the cells set their own thread count."""
    per_worker = max(1, (os.cpu_count() or 1) // workers)
    return [cell if cell.threads is not None else replace(cell, threads=per_worker) for cell in cells]


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
        if config.kind == "local" and config.workers == 1:
            for cell in cells:
                note(cell, execute(cell, results_dir, on_progress, seen.get(cell.run_id)))
        elif config.kind == "local":
            workers = config.workers or os.cpu_count() or 1
            _launch_pool(_with_threads(cells, workers), Path(results_dir), workers, config.retries, seen, note)
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


# --------------------------------------------------------------------------- local pool


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _stop_now(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: a record being written leaves no temp file


def _worker_main(conn: Connection, results_dir: str, parent: int) -> None:
    """A pool worker: run the cells the parent sends, one at a time, until it sends None or
    goes away. Interrupts are the parent's to decide; SIGTERM from it ends the worker."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_now)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        cell, seen = task
        try:
            message: tuple[Any, ...] = ("ok", *execute(cell, Path(results_dir), seen=seen))
        except Exception as exc:  # a store or lock error: the parent reports it and stops
            message = ("error", exc if isinstance(exc, StoreError) else StoreError(f"{type(exc).__name__}: {exc}"))
        try:
            conn.send(message)
        except (OSError, ValueError):
            return


@dataclass
class _Worker:
    """One spawn process of the pool and the cell it is running (None when idle)."""

    process: SpawnProcess
    conn: Connection
    cell: Cell | None = None

    @classmethod
    def start(cls, ctx: SpawnContext, results_dir: Path) -> _Worker:
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(theirs, str(results_dir), os.getpid()), daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)

    def give(self, cell: Cell, seen: Seen | None) -> bool:
        try:
            self.conn.send((cell, seen))
        except (OSError, ValueError):  # died while idle
            return False
        self.cell = cell
        return True

    def receive(self) -> tuple[Any, ...] | None:
        """The worker's answer, or None when it died without one."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None


def _launch_pool(cells: list[Cell], results_dir: Path, workers: int, retries: int, seen: dict[str, Seen],
                 note: Callable[[Cell, tuple[str, Record | None]], None]) -> None:
    ctx = get_context("spawn")
    queue = deque(cells)
    deaths: dict[str, int] = {}
    pool: list[_Worker] = []
    try:
        while queue or pool:
            for worker in [w for w in pool if w.cell is None]:
                if not queue or not worker.give(queue[0], seen.get(queue[0].run_id)):
                    _stop_idle(worker)
                    pool.remove(worker)
                    continue
                queue.popleft()
            while queue and len(pool) < workers:
                worker = _Worker.start(ctx, results_dir)
                pool.append(worker)
                if worker.give(queue[0], seen.get(queue[0].run_id)):
                    queue.popleft()
            busy = [w for w in pool if w.cell is not None]
            if not busy:
                continue
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                cell, message = worker.cell, worker.receive()
                assert cell is not None
                worker.cell = None
                if message is None:  # it died with the cell
                    worker.process.join()
                    pool.remove(worker)
                    deaths[cell.run_id] = deaths.get(cell.run_id, 0) + 1
                    outcome = _mark_dead_worker(cell, results_dir, worker.process, deaths[cell.run_id], retries)
                    if outcome is None:
                        seen[cell.run_id] = Seen(Store(results_dir).record_version(cell.suite, cell.run_id))
                        queue.append(cell)
                    else:
                        note(cell, outcome)
                elif message[0] == "error":
                    raise message[1]
                else:
                    note(cell, (message[1], message[2]))
    finally:
        _stop_all(pool)


def _mark_dead_worker(cell: Cell, results_dir: Path, process: SpawnProcess, death: int,
                      retries: int) -> tuple[str, Record | None] | None:
    """Record why a worker died with `cell`; None when the cell should be tried again,
    else the outcome to report (the failed record, or the record it finished after all)."""
    store = Store(results_dir)
    record = store.load(cell.suite, cell.run_id)
    if is_final(record):  # it wrote its record, then died
        return "ran", record
    code = process.exitcode or 0
    how = (f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
           else f"exited with code {code}")
    if code == -signal.SIGKILL:
        how += " (as the out-of-memory killer does: check the machine's memory, or run fewer workers)"
    error = f"its worker (pid {process.pid}) {how} while training it; try {death} of {retries + 1}"
    log.warning("cell %s: %s%s", cell, error, "; trying it again" if death <= retries else "; giving up")
    claim = try_claim(store.run_dir(cell.suite, cell.run_id))
    if claim is None:  # another process took the cell over meanwhile
        return "busy", None
    with claim:
        header = new_record(cell)
        failed = parse_record({**header, "status": "failed", "error": error, "finished_at": header["started_at"],
                               "worker": {"host": socket.gethostname(), "pid": process.pid or 0}})
        store.write(cell.suite, cell.run_id, failed)
    return None if death <= retries else ("ran", failed)


def _stop_idle(worker: _Worker) -> None:
    with contextlib.suppress(OSError, ValueError):
        worker.conn.send(None)
    worker.conn.close()


def _stop_all(pool: list[_Worker]) -> None:
    """Idle workers are told to go; busy ones get SIGTERM, then SIGKILL after STOP_GRACE_S."""
    for worker in pool:
        if worker.cell is None:
            _stop_idle(worker)
        elif worker.process.is_alive():
            with contextlib.suppress(OSError):
                worker.process.terminate()
    for worker in pool:
        worker.process.join(STOP_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()


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
