"""The local worker pool (`launcher.workers` > 1): spawn processes that survive their workers.

A few spawn processes this module drives itself, one cell at a time each, each over its own
pipe, each running `execute` (harness/execute.py), so that:

- a worker that dies (SIGKILL from the OOM killer, a segfault) costs only its cell: the
  cell gets a `failed` record naming the signal and is retried up to
  `launcher.retries` times while the other workers go on;
- SIGINT or SIGTERM to the parent cancels the queue and stops the workers within
  seconds (harness/launch.py raises `Cancelled`; finished cells are recorded, the
  interrupted ones run next time);
- a worker exits when its parent dies: the Linux parent-death signal (prctl), and on
  every system the pipe it waits on for its next cell closes.

Which cell a free worker takes next is `CellQueue`'s rule: one cell of every (task, method)
first, in plan order, then the rest dearest first by what those cells took, so the run
does not end on a long cell started late while the other workers idle.

It is apart from harness/launch.py, which picks a launcher, because the process handling
here (pipes, signals, dead workers) is a piece of its own, read and tested on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from harness.execute import Seen, execute, is_final
from harness.locks import try_claim
from harness.loops.common import ProgressCallback, StepProgress
from harness.plan import Cell
from harness.record import Record, parse_record
from harness.runner import new_record
from harness.store import Store, StoreError

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # how long stopped workers get to exit on SIGTERM before SIGKILL
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
PROGRESS_EVERY_S = 0.5  # how often a worker tells the parent how far its cell is


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _stop_now(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: a record being written leaves no temp file


def _worker_main(conn: Connection, results_dir: str, parent: int, gpu: int | None = None) -> None:
    """A pool worker: run the cells the parent sends, one at a time, until it sends None or
    goes away. Interrupts are the parent's to decide; SIGTERM from it ends the worker.
    `gpu`: the one GPU this worker sees (CUDA initialises lazily, at the first cell, so
    setting CUDA_VISIBLE_DEVICES here pins every cell it runs to that device)."""
    _die_with_parent(parent)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
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
            message: tuple[Any, ...] = ("ok", *execute(cell, Path(results_dir), _progress_sender(conn), seen=seen))
        except Exception as exc:  # a store or lock error: the parent reports it and stops
            message = ("error", exc if isinstance(exc, StoreError) else StoreError(f"{type(exc).__name__}: {exc}"))
        try:
            conn.send(message)
        except (OSError, ValueError):
            return


def _progress_sender(conn: Connection, every_s: float = PROGRESS_EVERY_S) -> ProgressCallback:
    """Forward a cell's progress to the parent (its display and time-left estimate), at most
    every `every_s` seconds and at the end of the budget: a pipe write per step would cost
    more than a small step."""
    last = [float("-inf")]

    def send(progress: StepProgress) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and progress.fraction < 1.0:
            return
        last[0] = now
        with contextlib.suppress(OSError, ValueError):
            conn.send(("progress", progress))

    return send


class CellQueue:
    """The pool's queue: which cell a free worker takes next, dearest first.

    A pool run ends when its last cell does: a dear cell (an evolution ViT cell can cost 30
    cheap ones) started late leaves the other workers idle while it runs. The longest-first
    rule (Graham, 1969: within 4/3 of the best schedule) needs each cell's cost, which no
    config says (methods spend a step very differently); cells of one (task, method) differ
    only by seed and cost alike. So the queue hands out one cell of every (task, method) group
    first, in plan order, and then the others, the group with the longest measured cell time
    first (a group whose first cell is still running counts as the mean of its task's measured
    groups, else of all of them); ties keep plan order.
    """

    def __init__(self, cells: list[Cell]) -> None:
        self._order = {cell.run_id: i for i, cell in enumerate(cells)}
        self._cells: deque[Cell] = deque(cells)
        self._started: set[tuple[str, str]] = set()  # groups with a cell handed out
        self._seconds: dict[tuple[str, str], list[float]] = {}

    @staticmethod
    def group(cell: Cell) -> tuple[str, str]:
        return cell.task.label, cell.method.name

    def __len__(self) -> int:
        return len(self._cells)

    def peek(self) -> Cell:
        """The cell to hand out next (raises IndexError when empty)."""
        if not self._cells:
            raise IndexError("the queue is empty")
        fresh = [c for c in self._cells if self.group(c) not in self._started]
        if fresh:
            return fresh[0]
        return min(self._cells, key=lambda c: (-self._estimate(self.group(c)), self._order.get(c.run_id, 0)))

    def take(self, cell: Cell) -> None:
        """`cell` was handed out."""
        self._cells.remove(cell)
        self._started.add(self.group(cell))

    def put_back(self, cell: Cell) -> None:
        """A cell to run again (its worker died): back in the queue, at the end of its ties."""
        self._cells.append(cell)

    def finished(self, cell: Cell, seconds: float) -> None:
        """`cell` took `seconds` of wall time, start to record."""
        self._seconds.setdefault(self.group(cell), []).append(seconds)

    def _estimate(self, group: tuple[str, str]) -> float:
        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        if group in self._seconds:
            return mean(self._seconds[group])
        same_task = [mean(v) for g, v in self._seconds.items() if g[0] == group[0]]
        known = same_task or [mean(v) for v in self._seconds.values()]
        return mean(known) if known else 0.0


@dataclass
class _Worker:
    """One spawn process of the pool and the cell it is running (None when idle)."""

    process: SpawnProcess
    conn: Connection
    cell: Cell | None = None
    slot: int = 0  # its place in the pool's device slots
    given_at: float = 0.0  # when it got its cell (time.monotonic)

    @classmethod
    def start(cls, ctx: SpawnContext, results_dir: Path, slot: int = 0, gpu: int | None = None) -> _Worker:
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(theirs, str(results_dir), os.getpid(), gpu), daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours, slot=slot)

    def give(self, cell: Cell, seen: Seen | None) -> bool:
        try:
            self.conn.send((cell, seen))
        except (OSError, ValueError):  # died while idle
            return False
        self.cell, self.given_at = cell, time.monotonic()
        return True

    def receive(self) -> tuple[Any, ...] | None:
        """The worker's next message (progress, or its answer), or None when it died without one."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None


def run_pool(cells: list[Cell], results_dir: Path, workers: int, retries: int, seen: dict[str, Seen],
             note: Callable[[Cell, tuple[str, Record | None]], None],
             on_progress: ProgressCallback | None = None, slots: list[int | None] | None = None) -> None:
    """Run `cells` on up to `workers` spawn processes; `note` gets each cell's outcome and
    `on_progress` the progress the workers report (throttled, see `_progress_sender`).
    `slots` (one per worker, harness/launch.py `device_slots`): the GPU each worker is pinned
    to; a worker that dies is replaced on the same device."""
    slots = slots if slots is not None else [None] * workers
    ctx = get_context("spawn")
    queue = CellQueue(cells)
    deaths: dict[str, int] = {}
    pool: list[_Worker] = []
    try:
        while queue or pool:
            for worker in [w for w in pool if w.cell is None]:
                if not queue or not worker.give(queue.peek(), seen.get(queue.peek().run_id)):
                    _stop_idle(worker)
                    pool.remove(worker)
                    continue
                queue.take(worker.cell)  # type: ignore[arg-type]
            while queue and len(pool) < workers:
                free = min(set(range(workers)) - {w.slot for w in pool})
                worker = _Worker.start(ctx, results_dir, free, slots[free])
                pool.append(worker)
                if worker.give(queue.peek(), seen.get(queue.peek().run_id)):
                    queue.take(worker.cell)  # type: ignore[arg-type]
            busy = [w for w in pool if w.cell is not None]
            if not busy:
                continue
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                cell, message = worker.cell, worker.receive()
                assert cell is not None
                if message is not None and message[0] == "progress":
                    if on_progress is not None:
                        on_progress(message[1])
                    continue  # still busy with the cell
                worker.cell = None
                if message is None:  # it died with the cell
                    worker.process.join()
                    pool.remove(worker)
                    deaths[cell.run_id] = deaths.get(cell.run_id, 0) + 1
                    outcome = _mark_dead_worker(cell, results_dir, worker.process, deaths[cell.run_id], retries)
                    if outcome is None:
                        seen[cell.run_id] = Seen(Store(results_dir).record_version(cell.suite, cell.run_id))
                        queue.put_back(cell)
                    else:
                        note(cell, outcome)
                elif message[0] == "error":
                    raise message[1]
                else:
                    queue.finished(cell, time.monotonic() - worker.given_at)
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
