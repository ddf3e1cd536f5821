"""What every loop shares: seeding, setting a cell up, the metered step loop, the record's measurements.

The rules, the same for every method and every loop:

- Randomness: the cell seed fixes Python, NumPy and torch's global generators, and three
  independent `torch.Generator`s: model initialisation, data order, and the method's own
  (handed over in `SetupContext.generator`).
- Measurement: every step runs inside the meter (harness/meter.py): time, FLOPs, memory
  ledger, measured peaks and energy; validation and test are timed apart as `eval_seconds`.
- Validation every `eval_every` steps and after the last one; a non-finite training loss
  ends the loop as diverged, with the curve kept up to there. With `eval_subset: N` (a task
  that declares `SubsetEvaluableTask`), those validations score a fixed subset of N validation
  examples, the same for every method and seed; each curve point says how many examples its
  validation metric is over (`val_examples`; None when the task does not say).
- Every second of a cell is accounted for (`timing.phase_seconds`, summing to
  `timing.cell_seconds`): setup (data, model, method), train (inside `Method.step`, the
  meter's clock), probe (setting up and reading a probe step's FLOP counter and ledger, and
  what the counter added to the probe step itself: a probe step is charged to train, and to a
  seconds budget, as the un-probed steps of its kind run; harness/meter.py),
  data (drawing and moving batches), val, test, shift, lm_eval, checkpoint (copying the
  selected state), progress (the display's callbacks), and other (what is left: the
  meter's and the loop's bookkeeping). `eval_seconds` stays val + test + shift + lm_eval.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness import budget as budgets
from harness.interface import Batch, BlockModel, SetupContext, SubsetEvaluableTask, Task
from harness.meter import Meter
from harness.plan import Cell
from harness.registry import get_task


@dataclass(frozen=True)
class StepProgress:
    """What a progress display is told after every step."""

    cell: Cell
    counters: budgets.Counters
    fraction: float
    loss: float | None
    val_metric: float | None


ProgressCallback = Callable[[StepProgress], None]


def build_task(cell: Cell) -> Task:
    """The cell's task object, built from its registered class and resolved config."""
    return get_task(cell.task.task)(cell.task.config)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cell_generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent generators for model init, data order and the method."""
    streams = np.random.SeedSequence(seed).spawn(3)
    return tuple(torch.Generator().manual_seed(int(s.generate_state(1)[0])) for s in streams)  # type: ignore[return-value]


def snapshot(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor cloned to CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


def start_cell(cell: Cell, task: Task, method_cls: type, budget: budgets.Budget,
               init_state: dict[str, Any] | None = None) -> tuple[Any, BlockModel, budgets.Counters, torch.Generator]:
    """Seed, build the model, set the method up: (method, model, counters, data generator).

    `budget` is what the method's `budget_fraction` and `planned_steps` refer to (the
    cell's budget; all experiences together in a continual cell). `init_state`: model
    weights to start from (fine-tuning) instead of the fresh initialisation.
    """
    task.check_available()
    if cell.threads is not None:
        torch.set_num_threads(cell.threads)
    seed_everything(cell.seed)
    init_gen, data_gen, method_gen = cell_generators(cell.seed)
    device = torch.device(cell.device)
    model = task.build_model(init_gen)
    if init_state is not None:
        try:
            model.load_state_dict(init_state)
        except RuntimeError as exc:
            raise RuntimeError(f"the pretrained state does not fit task {cell.task.label}'s model: give it the same "
                               f"model keys as the task it is initialised from ({exc})") from exc
    model = model.to(device)
    counters = budgets.Counters()
    method = method_cls()
    method.setup(
        SetupContext(
            model=model,
            task=task,
            config=cell.method.config,
            device=device,
            generator=method_gen,
            budget_fraction=lambda: budgets.spent_fraction(budget, counters),
            planned_steps=budgets.planned_steps(budget, cell.batch_size),
        )
    )
    return method, model, counters, data_gen


EVAL_PHASES: tuple[str, ...] = ("val", "test", "shift", "lm_eval")  # what `eval_seconds` sums


def measurement_fields(task: Any, counters: budgets.Counters, curve: list[dict[str, Any]],
                       measured: dict[str, Any], eval_seconds: float,
                       phases: dict[str, float] | None = None) -> dict[str, Any]:
    """The record's measurement fields, the same for every loop: `measured` is `Meter.report()`;
    `phases` (seconds per phase, summing to the cell's wall time) where the loop accounts for them."""
    timing: dict[str, Any] = {**measured["time"], "eval_seconds": eval_seconds}
    if phases is not None:
        timing["phase_seconds"] = dict(phases)
        timing["cell_seconds"] = sum(phases.values())
    return {
        "task_info": task.describe(),
        "counters": counters.as_dict(),
        "curve": curve,
        "timing": timing,
        "memory": {"ledger": measured["ledger"], "measured": measured["measured"]},
        "energy": measured["energy"],
        "flops": measured["flops"],
    }


class TrainLoop:
    """The step loop every cell runs: steps under the meter, counters, divergence, validation.

    `run` may be called several times (once per experience in a continual cell); the
    counters, the curve and the evaluation time carry on across calls.
    """

    def __init__(self, cell: Cell, task: Task, method: Any, meter: Meter, counters: budgets.Counters,
                 budget: budgets.Budget, on_progress: ProgressCallback | None) -> None:
        self.cell, self.task, self.method, self.meter = cell, task, method, meter
        self.counters, self.budget, self.on_progress = counters, budget, on_progress
        self.device = torch.device(cell.device)
        self.curve: list[dict[str, Any]] = []
        self.phases: dict[str, float] = {}  # seconds per phase (module docstring); see `results`
        self.last_val: float | None = None
        self.val_subset = cell.eval_subset if isinstance(task, SubsetEvaluableTask) else None
        self._whole_val: tuple[int | None] | None = None  # the task's n_val, read once (val_examples)
        self.last_whole_val: dict[str, float] | None = None  # see `validate`
        self._losses: list[float] = []
        self._born = time.perf_counter()

    @property
    def eval_seconds(self) -> float:
        return sum(self.phases.get(phase, 0.0) for phase in EVAL_PHASES)

    def add_phase(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def run(self, batches: Iterator[Batch], done: Callable[[], bool],
            on_validation: Callable[[dict[str, float]], None] | None = None) -> str | None:
        """Step until `done()`, validating every `eval_every` steps and after the last one.

        Returns None, or why training diverged (a non-finite loss ends the loop there).
        """
        counters = self.counters
        while not done():
            drawn = time.perf_counter()
            batch = next(batches).to(self.device)
            self.add_phase("data", time.perf_counter() - drawn)
            stats, cost = self.meter.step(lambda: self.method.step(batch))
            counters.add(stats.examples, stats.forward_equivalents, cost.seconds)
            counters.flops, counters.joules = self.meter.flops(), self.meter.joules()
            if stats.loss is not None and not math.isfinite(stats.loss):
                self.curve.append({**counters.as_dict(), "train_loss": None, "val_metric": None})
                counters.seconds += self.meter.flush(settle=True)
                return f"non-finite training loss ({stats.loss}) at step {counters.steps}"
            if stats.loss is not None:
                self._losses.append(stats.loss)
            if counters.steps % self.cell.eval_every == 0 or done():
                counters.seconds += self.meter.flush()  # deferred CUDA step times, read here
                val = self.timed(self.validate, done(), phase="val")
                self.last_val = val[self.task.metric]
                self.curve.append({
                    **counters.as_dict(),
                    "train_loss": statistics.fmean(self._losses) if self._losses else None,
                    "val_metric": self.last_val,
                    **{f"val_{k}": v for k, v in val.items() if k != self.task.metric},
                    "val_examples": self.val_examples(subset=True),
                })
                self._losses = []
                if on_validation is not None:  # keeps the best state: a copy, timed as checkpointing
                    self.timed(on_validation, val, phase="checkpoint")
            if self.on_progress is not None:
                fraction = budgets.spent_fraction(self.budget, counters)
                self.timed(self.on_progress, StepProgress(self.cell, counters, fraction, stats.loss, self.last_val),
                           phase="progress")
        counters.seconds += self.meter.flush(settle=True)  # and probes no un-probed step settled
        return None

    def validate(self, last: bool = False) -> dict[str, float]:
        """The current state's validation metrics: on the fixed subset (`val_subset`) when the
        cell sets `eval_subset` and the task can score one, else on the whole split. At the
        `last` validation the subset's pass is completed to the whole split, kept in
        `last_whole_val` (the selected state's whole-split metrics when the last state is selected)."""
        if self.val_subset is None:
            return self.task.evaluate(self.method.predict, "val", self.device)
        subset, whole = self.task.evaluate_subset(self.method.predict, "val", self.device,  # type: ignore[attr-defined]
                                                  self.val_subset, last)
        if last:
            self.last_whole_val = whole
        return subset

    def val_examples(self, subset: bool) -> int | None:
        """How many validation examples `validate()` (subset=True) or the whole split scores;
        None when the task's `describe()` gives no `n_val`."""
        if self._whole_val is None:  # describe() once: some tasks read files for it
            n_val = self.task.describe().get("n_val")
            self._whole_val = (n_val if isinstance(n_val, int) else None,)
        (whole,) = self._whole_val
        if not subset or self.val_subset is None:
            return whole
        return self.val_subset if whole is None else min(self.val_subset, whole)

    def timed(self, work: Callable[..., Any], *args: Any, phase: str = "val") -> Any:
        """`work(*args)`, its wall time added to `phase` (kept apart from training; the
        evaluation phases, EVAL_PHASES, make up `eval_seconds`)."""
        start = time.perf_counter()
        try:
            return work(*args)
        finally:
            self.add_phase(phase, time.perf_counter() - start)

    def results(self, setup_seconds: float = 0.0) -> dict[str, Any]:
        """The record's measurement fields; call once every timed phase is over (after the
        meter's `with` block has closed). `setup_seconds`: what the cell spent before this
        loop existed (start_cell). The wall time since the loop was made that no phase
        claims is `other`."""
        report = self.meter.report()
        phases = wall_phases(self.meter, report, setup_seconds, self._born, self.phases)
        return measurement_fields(self.task, self.counters, self.curve, report, self.eval_seconds, phases)


def wall_phases(meter: Any, report: dict[str, Any], setup_seconds: float, since: float,
                phases: dict[str, float] | None = None) -> dict[str, float]:
    """A cell's wall time by phase (module docstring), the same for every loop: setup, train
    (inside the steps), the probes' extra time, the loop's own `phases`, and `other`, the wall
    time since `since` (time.perf_counter(), after setup) that no phase claims."""
    timed = {"setup": setup_seconds, "train": report["time"]["train_seconds"],
             "probe": meter.probe_overhead_seconds, **(phases or {})}
    wall = time.perf_counter() - since
    timed["other"] = max(0.0, wall - sum(v for k, v in timed.items() if k != "setup"))
    return timed
