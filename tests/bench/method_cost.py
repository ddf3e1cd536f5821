"""Cost per forward-equivalent of each method against backprop, and what its evaluation costs.

    python tests/bench/method_cost.py [--task mlp|vit] [--steps N] [--repeats R] [--methods a,b+key=value]

The cells are vision-vit's quick profile (digits, batch 64, the suite's method options), set
up by `harness.runner.start_cell` exactly as a run would set them up. For each task, every
method runs `--warmup` untimed steps, then `--repeats` rounds in which each method in turn
runs `--steps` timed steps (methods interleaved round by round, so drift on a shared machine
hits them alike); the table gives the median over rounds. Batches are drawn before timing
(the data pipeline is not measured); one torch thread, as the suite's cells.

Columns: ms per step; forward-equivalents per step (the method's own `StepStats`); ms per
forward-equivalent, and that relative to backprop's on the same task (the cost model says
~1.0), from wall time (what the harness records) and from the process's CPU time (less
disturbed when other jobs share the cores); ms of one `task.evaluate(method.predict, "val")`;
and `eval share`, the evaluation time a quick cell spends (a validation pass every
`eval_every` steps, then test and the shifted test sets, each about test/val as long as a
validation pass) over its training time.

glibc's malloc hands large freed blocks back to the system and faults them in again on the
next step; how often depends on the process's history, and it moves methods with large
activations (evolution's population) by up to 1.5x. MALLOC_MMAP_THRESHOLD_=268435456
MALLOC_TRIM_THRESHOLD_=268435456 in the environment takes it out (for a look at the
algorithmic cost alone); the default is what a cell sees.

Importable: `measure(task_label, methods, steps, repeats, warmup)` returns the rows.
Reports only; it asserts nothing (timings on a shared machine are noise for a test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path

import torch

if __name__ == "__main__":  # run as a script: this checkout's code, not an installed copy's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.config import resolve
from harness.plan import plan
from harness.registry import get_method
from harness.loops.common import build_task, start_cell

METHODS = ("backprop", "evolution", "zeroth_order", "forward_forward")


@dataclass(frozen=True)
class Row:
    method: str
    ms_per_step: float
    forward_equivalents: float
    ms_per_fe: float
    relative: float | None  # ms per forward-equivalent / backprop's (None without backprop)
    cpu_relative: float | None  # the same ratio from process CPU time (less hit by other jobs on the cores)
    eval_ms: float  # one validation pass
    eval_share: float  # evaluation seconds / training seconds of a quick cell


def _cells(task_label: str, methods: tuple[str, ...]) -> dict[str, object]:
    """The quick profile's cell of each method; a spec "name+key=value+..." sets method options."""
    cells = {}
    for spec in methods:
        name, *options = spec.split("+")
        (cell,) = [c for c in plan(resolve(["suite=vision-vit", "profile=quick", "seeds=1", "threads=1", "device=cpu",
                                            f"method={name}", *(f"method.{o}" for o in options)]))
                   if c.task.label == task_label]
        cells[spec] = cell
    return cells


def measure(task_label: str = "mlp", methods: tuple[str, ...] = METHODS, steps: int = 10,
            repeats: int = 5, warmup: int = 3) -> list[Row]:
    torch.set_num_threads(1)
    cells = _cells(task_label, methods)
    state = {}
    for name, cell in cells.items():
        task = build_task(cell)
        method, _, _, data_gen = start_cell(cell, task, get_method(cell.method.name), cell.budget)
        batches = list(islice(task.train_batches(cell.batch_size, data_gen), 16))
        state[name] = (cell, task, method, cycle(batches))
        for _ in range(warmup):
            method.step(next(state[name][3]))
    seconds: dict[str, list[float]] = {name: [] for name in cells}
    cpu: dict[str, list[float]] = {name: [] for name in cells}
    fes: dict[str, float] = {}
    evals: dict[str, list[float]] = {name: [] for name in cells}
    for _ in range(repeats):
        for name, (cell, task, method, batches) in state.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                stats = method.step(next(batches))
            seconds[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
            fes[name] = stats.forward_equivalents
            start = time.perf_counter()
            task.evaluate(method.predict, "val", torch.device("cpu"))
            evals[name].append(time.perf_counter() - start)
    rows = []
    base = base_cpu = None
    for name, (cell, task, _, _) in state.items():
        step_s, eval_s = statistics.median(seconds[name]), statistics.median(evals[name])
        per_fe, cpu_per_fe = step_s / fes[name], statistics.median(cpu[name]) / fes[name]
        if name == "backprop":
            base, base_cpu = 1e3 * per_fe, cpu_per_fe
        info = task.describe()
        planned = cell.budget.value // cell.batch_size  # an examples budget, as the quick profile's
        shifted = sum(len(v) for v in (cell.shift.noise, cell.shift.rotation, cell.shift.translation)) \
            if cell.shift.enabled else 0
        eval_total = eval_s * (planned / cell.eval_every + 1 + (1 + shifted) * info["n_test"] / info["n_val"])
        rows.append(Row(name, 1e3 * step_s, fes[name], 1e3 * per_fe, None, cpu_per_fe, 1e3 * eval_s,
                        eval_total / (planned * step_s)))
    return [Row(**{**r.__dict__, "relative": (r.ms_per_fe / base) if base else None,
                   "cpu_relative": (r.cpu_relative / base_cpu) if base_cpu else None}) for r in rows]


def table(task_label: str, rows: list[Row]) -> str:
    lines = [f"task {task_label} (vision-vit quick profile, batch 64, 1 thread)",
             f"{'method':<24}{'ms/step':>9}{'fe/step':>9}{'ms/fe':>8}{'vs bp':>7}{'cpu vs bp':>10}{'eval ms':>9}"
             f"{'eval share':>12}"]
    for r in rows:
        rel = f"{r.relative:.2f}" if r.relative is not None else "-"
        cpu_rel = f"{r.cpu_relative:.2f}" if r.cpu_relative is not None else "-"
        lines.append(f"{r.method:<24}{r.ms_per_step:>9.1f}{r.forward_equivalents:>9.0f}{r.ms_per_fe:>8.2f}{rel:>7}"
                     f"{cpu_rel:>10}{r.eval_ms:>9.1f}{r.eval_share:>12.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("mlp", "vit", "both"), default="both")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, methods interleaved")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated; backprop is the reference; name+key=value sets an option")
    args = parser.parse_args()
    methods = tuple(args.methods.split(","))
    for label in (("mlp", "vit") if args.task == "both" else (args.task,)):
        print(table(label, measure(label, methods, args.steps, args.repeats, args.warmup)))
        print()


if __name__ == "__main__":
    main()
