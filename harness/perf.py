"""`bench perf`: what each method costs per forward-equivalent, and what a suite will take.

Two measurements, both from short probes of the suite's own cells (set up by
`harness.loops.common.start_cell` exactly as a run sets them up, one torch thread):

- Cost per forward-equivalent (`measure`): every method runs `warmup` untimed steps, then
  `repeats` rounds in which each method in turn runs `steps` timed steps (methods
  interleaved round by round, so drift on a shared machine hits them alike); the median
  over rounds of ms per step, divided by the method's forward-equivalents per step
  (`StepStats`), and that relative to backprop's on the same task (the cost model says
  ~1.0), from wall time and from the process's CPU time (less disturbed when other jobs
  share the cores). Batches are drawn before timing: the data pipeline is not measured.
  `flop fe` checks the declared count: one more (untimed) step's FLOPs over a forward
  pass's on the same batch, counted as the meter counts them (FlopCounterMode: matrix
  multiplies and attention; elementwise work, noise draws and the optimizer count 0), and
  `cpu/flop` is the CPU-time ratio per counted FLOP instead of per declared
  forward-equivalent. Backprop declares 3 forwards a step; its FLOPs are 2.25 on the
  784-256-256-10 MLP (no input gradient for the first layer, 3/4 of the model's FLOPs),
  3.0 on the ViT: on the MLP a method whose count is its FLOPs pays that 4/3 in `vs bp`.
  `eval share` is what evaluation will cost a cell of the suite (validation every
  `eval_every` steps, then test and the shifted test sets, each timed once here) over its
  training time at the budget.
- Projected wall time (`project`): per cell, setup + steps to the budget x ms per step +
  that evaluation; the suite's cells spread over the launcher's workers. It is a projection
  from a probe on this machine at its present load (`os.getloadavg` is printed beside it),
  not a measurement of the run.

glibc's malloc hands large freed blocks back to the system and faults them in again on the
next step; how often depends on the process's history, and it moves methods with large
activations (evolution's population) by up to 1.5x. MALLOC_MMAP_THRESHOLD_=268435456
MALLOC_TRIM_THRESHOLD_=268435456 in the environment takes it out (for a look at the
algorithmic cost alone); the default is what a cell sees.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, replace
from itertools import cycle, islice
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness import budget as budgets
from harness.config import resolve
from harness.interface import ShiftableTask
from harness.launch import local_workers
from harness.meter import Meter  # noqa: F401  (importing it registers CPU attention's FLOP formula)
from harness.loops.common import build_task, start_cell
from harness.plan import Cell, plan
from harness.registry import get_method
from harness.run_config import RunConfig

REFERENCE = "backprop"


@dataclass(frozen=True)
class Row:
    task: str
    method: str
    ms_per_step: float
    forward_equivalents: float
    ms_per_fe: float
    relative: float | None  # ms per forward-equivalent / backprop's (None without backprop)
    cpu_relative: float | None  # the same ratio from process CPU time (less hit by other jobs on the cores)
    flop_fe: float | None  # one step's counted FLOPs / one forward's on the same batch (None: not counted)
    cpu_per_flop: float | None  # CPU time per counted FLOP, relative to backprop's
    setup_s: float  # start_cell: data, model, method
    eval_s: float  # one validation pass, test and shift of a cell, as the suite would run them
    planned_steps: int | None  # steps the suite's budget allows (None: a seconds/joules budget)
    eval_share: float | None  # evaluation seconds / training seconds of a suite cell
    projected_s: float | None  # one cell of the suite: setup + training + evaluation


def suite_cells(args: list[str]) -> tuple[RunConfig, dict[tuple[str, str], Cell]]:
    """One cell (the first seed) per (task, method) of the suite the overrides name, on one
    CPU thread; methods that cannot serve a task are left out."""
    run = resolve([*args, "threads=1"])
    cells: dict[tuple[str, str], Cell] = {}
    for cell in plan(run):
        method = get_method(cell.method.name)
        if build_task(cell).kind in method.supports:
            cells.setdefault((cell.task.label, cell.method.name), cell)
    return run, cells


def _eval_seconds(cell: Cell, task: Any, method: Any, steps: int | None) -> tuple[float, float]:
    """(one validation pass, all evaluation of a cell with `steps` steps) in seconds."""
    device = torch.device(cell.device)
    start = time.perf_counter()
    task.evaluate(method.predict, "val", device)
    val = time.perf_counter() - start
    start = time.perf_counter()
    task.evaluate(method.predict, "test", device)
    test = time.perf_counter() - start
    shift = 0.0
    if cell.shift.enabled and isinstance(task, ShiftableTask):
        start = time.perf_counter()
        task.evaluate_shifted(method.predict, device, cell.shift)
        sets = len(cell.shift.noise) + len(cell.shift.rotation) + len(cell.shift.translation)
        # + one more set: the clean accuracy on the same subset (harness/loops/supervised.py)
        shift = (time.perf_counter() - start) * (1 + (cell.shift.test_subset is not None) / max(1, sets))
    checkpoints = 1 if steps is None else math.ceil(steps / cell.eval_every)
    # with eval_subset, checkpoints validate on that subset; the last pass covers the whole split
    n_val = task.describe().get("n_val")
    part = val * min(1.0, cell.eval_subset / n_val) if cell.eval_subset and n_val else val
    return val, (checkpoints - 1) * part + val + test + shift


def _planned_steps(cell: Cell, fe_per_step: float) -> int | None:
    kind, value = cell.budget.kind, cell.budget.value
    if kind == "forward_equivalents":
        return math.ceil(value / fe_per_step) if fe_per_step > 0 else None
    return budgets.planned_steps(cell.budget, cell.batch_size)


def measure(args: list[str], steps: int = 5, repeats: int = 3, warmup: int = 2,
            with_eval: bool = True) -> list[Row]:
    """The rows of every (task, method) of the suite named in `args` (module docstring)."""
    torch.set_num_threads(1)
    _, cells = suite_cells(args)
    state = {}
    setup: dict[tuple[str, str], float] = {}
    flop_fe: dict[tuple[str, str], float | None] = {}
    for key, cell in cells.items():
        cell = replace(cell, device="cpu") if cell.device == "auto" else cell
        start = time.perf_counter()
        task = build_task(cell)
        method, model, _, data_gen = start_cell(cell, task, get_method(cell.method.name), cell.budget)
        setup[key] = time.perf_counter() - start
        batches = list(islice(task.train_batches(cell.batch_size, data_gen), 8))
        state[key] = (cell, task, method, cycle(batches))
        for _ in range(warmup):
            method.step(next(state[key][3]))
        flop_fe[key] = _flop_forward_equivalents(model, method, next(state[key][3]))
    wall: dict[tuple[str, str], list[float]] = {key: [] for key in cells}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in cells}
    fes: dict[tuple[str, str], float] = {}
    for _ in range(repeats):
        for key, (_, _, method, batches) in state.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                stats = method.step(next(batches))
            wall[key].append((time.perf_counter() - start) / steps)
            cpu[key].append((time.process_time() - start_cpu) / steps)
            fes[key] = stats.forward_equivalents
    rows = []
    for key, (cell, task, method, _) in state.items():
        step_s = statistics.median(wall[key])
        fe = fes[key]
        planned = _planned_steps(cell, fe)
        eval_s = _eval_seconds(cell, task, method, planned)[1] if with_eval else 0.0
        train_s = None if planned is None else planned * step_s
        rows.append(Row(
            task=key[0], method=key[1], ms_per_step=1e3 * step_s, forward_equivalents=fe,
            ms_per_fe=1e3 * step_s / fe if fe else math.nan, relative=None,
            cpu_relative=statistics.median(cpu[key]) / fe if fe else None, flop_fe=flop_fe[key],
            cpu_per_flop=statistics.median(cpu[key]) / flop_fe[key] if flop_fe[key] else None,
            setup_s=setup[key], eval_s=eval_s,
            planned_steps=planned, eval_share=(eval_s / train_s) if (train_s and with_eval) else None,
            projected_s=None if train_s is None else setup[key] + train_s + eval_s))
    return _relative(rows)


def _flop_forward_equivalents(model: Any, method: Any, batch: Any) -> float | None:
    """FLOPs of one step of `method` over FLOPs of one forward of `model` on the same batch."""
    if not any(True for _ in model.parameters()):
        return None
    dtype = next(model.parameters()).dtype
    inputs = batch.inputs.to(dtype) if batch.inputs.is_floating_point() and dtype.is_floating_point else batch.inputs
    with torch.no_grad(), FlopCounterMode(display=False) as forward:
        model(inputs)
    with FlopCounterMode(display=False) as step:
        method.step(batch)
    total = forward.get_total_flops()
    return step.get_total_flops() / total if total else None


def _relative(rows: list[Row]) -> list[Row]:
    base = {r.task: r for r in rows if r.method == REFERENCE}
    out = []
    for r in rows:
        ref = base.get(r.task)

        def ratio(mine: float | None, theirs: float | None) -> float | None:
            return mine / theirs if ref and mine and theirs else None
        out.append(replace(
            r, relative=(r.ms_per_fe / ref.ms_per_fe) if ref else None,
            cpu_relative=ratio(r.cpu_relative, ref.cpu_relative if ref else None),
            cpu_per_flop=ratio(r.cpu_per_flop, ref.cpu_per_flop if ref else None)))
    return out


def project(run: RunConfig, rows: list[Row]) -> tuple[float | None, int]:
    """(projected wall seconds of the whole suite, workers): every seed of every cell, spread
    over the launcher's workers (a lower bound when the last cells leave a worker idle)."""
    workers = local_workers(run.launcher, plan(run))
    if any(r.projected_s is None for r in rows):
        return None, workers
    return sum(r.projected_s for r in rows) * len(run.seeds) / workers, workers  # type: ignore[misc]


def table(rows: list[Row]) -> str:
    """The cost table as text (a `bench perf` printout and the README's table come from it)."""
    header = (f"{'task':<6}{'method':<20}{'ms/step':>9}{'fe/step':>9}{'flop fe':>8}{'ms/fe':>8}{'vs bp':>7}"
              f"{'cpu vs bp':>10}{'cpu/flop':>9}{'steps':>7}{'eval share':>12}{'cell s':>9}")
    lines = [header]
    for r in rows:
        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)
        lines.append(f"{r.task:<6}{r.method:<20}{r.ms_per_step:>9.1f}{r.forward_equivalents:>9.1f}"
                     f"{num(r.flop_fe, '.2f'):>8}{num(r.ms_per_fe, '.2f'):>8}{num(r.relative, '.2f'):>7}"
                     f"{num(r.cpu_relative, '.2f'):>10}{num(r.cpu_per_flop, '.2f'):>9}"
                     f"{num(r.planned_steps, 'd'):>7}{num(r.eval_share, '.2f'):>12}{num(r.projected_s, '.0f'):>9}")
    return "\n".join(lines)


def load_average() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"
