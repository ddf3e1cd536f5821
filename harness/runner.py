"""One cell from start to record: seed, build, train to the budget, select, test.

What the runner guarantees for every method alike:

- Randomness: the cell seed fixes Python, NumPy and torch's global generators, and
  three independent `torch.Generator`s: model initialisation, data order, and the
  method's own (handed over in `SetupContext.generator`).
- Measurement: every step runs inside the meter (harness/meter.py): time, FLOPs,
  memory ledger, measured peaks and energy, by the same rules for every method;
  validation and test are timed apart as `eval_seconds`.
- Shift: with `shift.enabled`, the selected state is also scored on shifted copies of
  the test set; the record holds clean and shifted metrics and the gap.
- Selection: the validation metric is computed every `eval_every` steps and at the
  end; the state with the best validation metric is kept (copied to CPU) and the
  test split is evaluated once, on that state only.
- Status: `completed`; `diverged` when a step reports a non-finite loss (the record
  keeps the curve up to there and no final metrics); `failed` when anything raises
  (the error and traceback are recorded, other cells go on); `unsupported` when the
  task's kind is not in the method's `supports`.
- Language models (task kind "lm"): the selected model state is saved as model.pt beside
  the record (so lm-eval can score the run later, and fine-tuning cells can start from
  it), and lm-eval runs on the selected state (harness/lm_eval_bridge.py); its scores are
  `final.lm_eval`. A fine-tuning cell (`cell.pretrain`) first has its pretraining cell
  trained, or found in the store, and starts from that cell's model.pt.
- Continual tasks (those with `experiences`) run in harness/continual.py on the same
  setup and loop (`start_cell`, `TrainLoop`): experiences in order, the accuracy
  matrix, and no selection (a continual learner keeps its last state).
- Control tasks (kind "control") run in harness/control.py: the harness steps the
  environment, the method acts and learns; scored online, last state.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import budget as budgets
from harness.environment import environment
from harness.interface import Batch, BlockModel, SetupContext, Task
from harness.meter import Meter
from harness.plan import Cell
from harness.registry import get_method, get_task
from harness.store import Store

RECORD_SCHEMA = 1


@dataclass(frozen=True)
class Progress:
    """What a progress display is told after every step."""

    cell: Cell
    counters: budgets.Counters
    fraction: float
    loss: float | None
    val_metric: float | None


ProgressCallback = Callable[[Progress], None]


def build_task(cell: Cell) -> Task:
    return get_task(cell.task.task)(cell.task.config)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _snapshot(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor cloned to CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


def _generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent generators for model init, data order and the method."""
    streams = np.random.SeedSequence(seed).spawn(3)
    return tuple(torch.Generator().manual_seed(int(s.generate_state(1)[0])) for s in streams)  # type: ignore[return-value]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    }


def run_cell(cell: Cell, on_progress: ProgressCallback | None = None,
             results_dir: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; always returns a record, never raises on a bad method.

    `results_dir`: where the store is; LM cells save their model state there, and
    fine-tuning cells find (or train) their pretraining cell there.
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
        elif task.kind == "control":  # an environment: the method acts, the harness steps it
            from harness.control import train_control  # it builds on this module's setup

            record.update(train_control(cell, task, method_cls, on_progress))
        elif getattr(task, "memory_only", False):  # memory at scale: meta-device ledger, GPU peaks
            from harness.scale_memory import run_memory_cell

            record.update(run_memory_cell(cell, task, method_cls))
        elif hasattr(task, "experiences"):  # a continual task: a sequence of experiences
            from harness.continual import train_continual  # it builds on this module's loop

            record.update(train_continual(cell, task, method_cls, on_progress))
        else:
            record.update(_train(cell, task, method_cls, on_progress, results_dir))
    except Exception as exc:  # a failing cell must not take the others down
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["finished_at"] = _now()
    return record


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
    init_gen, data_gen, method_gen = _generators(cell.seed)
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
        self.eval_seconds = 0.0
        self.last_val: float | None = None
        self._losses: list[float] = []

    def run(self, batches: Iterator[Batch], done: Callable[[], bool],
            on_validation: Callable[[dict[str, float]], None] | None = None) -> str | None:
        """Step until `done()`, validating every `eval_every` steps and after the last one.

        Returns None, or why training diverged (a non-finite loss ends the loop there).
        """
        counters = self.counters
        while not done():
            batch = next(batches).to(self.device)
            stats, cost = self.meter.step(lambda: self.method.step(batch))
            counters.add(stats.examples, stats.forward_equivalents, cost.seconds)
            counters.flops, counters.joules = self.meter.flops(), self.meter.joules()
            if stats.loss is not None and not math.isfinite(stats.loss):
                self.curve.append({**counters.as_dict(), "train_loss": None, "val_metric": None})
                return f"non-finite training loss ({stats.loss}) at step {counters.steps}"
            if stats.loss is not None:
                self._losses.append(stats.loss)
            if counters.steps % self.cell.eval_every == 0 or done():
                val = self.timed(self.task.evaluate, self.method.predict, "val", self.device)
                self.last_val = val[self.task.metric]
                self.curve.append({
                    **counters.as_dict(),
                    "train_loss": statistics.fmean(self._losses) if self._losses else None,
                    "val_metric": self.last_val,
                    **{f"val_{k}": v for k, v in val.items() if k != self.task.metric},
                })
                self._losses = []
                if on_validation is not None:
                    on_validation(val)
            if self.on_progress is not None:
                fraction = budgets.spent_fraction(self.budget, counters)
                self.on_progress(Progress(self.cell, counters, fraction, stats.loss, self.last_val))
        return None

    def timed(self, evaluate: Callable[..., Any], *args: Any) -> Any:
        """`evaluate(*args)`, its wall time added to `eval_seconds` (kept apart from training)."""
        start = time.perf_counter()
        try:
            return evaluate(*args)
        finally:
            self.eval_seconds += time.perf_counter() - start

    def results(self) -> dict[str, Any]:
        """The record's measurement fields; call after the meter's `with` block has closed."""
        measured = self.meter.report()
        return {
            "task_info": self.task.describe(),
            "counters": self.counters.as_dict(),
            "curve": self.curve,
            "timing": {**measured["time"], "eval_seconds": self.eval_seconds},
            "memory": {"ledger": measured["ledger"], "measured": measured["measured"]},
            "energy": measured["energy"],
            "flops": measured["flops"],
        }


def _train(cell: Cell, task: Task, method_cls: type, on_progress: ProgressCallback | None,
           results_dir: Path | None = None) -> dict[str, Any]:
    init_state = None if cell.pretrain is None else pretrained_state(cell.pretrain, results_dir, on_progress)
    method, model, counters, data_gen = start_cell(cell, task, method_cls, cell.budget, init_state)
    device = torch.device(cell.device)
    best: tuple[float, int, dict[str, Any], dict[str, float]] | None = None
    sign = 1.0 if task.higher_is_better else -1.0

    def keep_best(val: dict[str, float]) -> None:
        nonlocal best
        if best is None or sign * val[task.metric] > sign * best[0]:
            best = (val[task.metric], counters.steps, _snapshot(method.state_dict()), val)

    with Meter(device, model, method, cell.meter) as meter:
        loop = TrainLoop(cell, task, method, meter, counters, cell.budget, on_progress)
        diverged = loop.run(task.train_batches(cell.batch_size, data_gen),
                            lambda: budgets.exhausted(cell.budget, counters), keep_best)
    common = loop.results()
    if diverged is not None:
        return {"status": "diverged", "error": diverged, "final": None, **common}
    assert best is not None, "the loop always evaluates after its last step"
    _, best_step, best_state, best_val = best
    method.load_state_dict(best_state)
    test = loop.timed(task.evaluate, method.predict, "test", device)
    final = {"metric": task.metric, "best_step": best_step, "val": best_val, "test": test}
    if cell.shift.enabled:
        final["shift"] = loop.timed(shift_scores, task, method, device, cell, test[task.metric])
    if task.kind == "lm":
        final["higher_is_better"] = task.higher_is_better
        if results_dir is not None:
            final["model_state"] = save_model_state(model, Store(results_dir).record_path(cell.suite, cell.run_id).parent)
        from harness.lm_eval_bridge import evaluate_cell  # lm-eval is imported only for LM cells

        final["lm_eval"] = loop.timed(evaluate_cell, task, method.predict, device)
    common["timing"]["eval_seconds"] = loop.eval_seconds
    return {"status": "completed", "final": final, **common}


MODEL_STATE = "model.pt"


def save_model_state(model: BlockModel, directory: Path) -> str:
    """The model's weights (the selected state) as DIRECTORY/model.pt, written through a rename."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{MODEL_STATE}.{os.getpid()}.tmp"
    torch.save({k: v.detach().to("cpu") for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, directory / MODEL_STATE)
    return MODEL_STATE


def pretrained_state(pretrain: Cell, results_dir: Path | None,
                     on_progress: ProgressCallback | None) -> dict[str, Any]:
    """The selected model state of `pretrain`, training it first when the store lacks it."""
    if results_dir is None:
        raise RuntimeError("a fine-tuning cell needs a results directory to find or train its pretraining cell in.")
    from harness.launch import execute  # launch imports this module

    outcome, record = execute(pretrain, Path(results_dir), on_progress)
    if outcome == "busy":
        raise RuntimeError(f"its pretraining cell {pretrain} ({pretrain.run_id}) is being trained by another worker; "
                           "run again when it has finished.")
    if record is None or record.get("status") != "completed":
        status = None if record is None else f"{record.get('status')}: {record.get('error')}"
        raise RuntimeError(f"its pretraining cell {pretrain} ({pretrain.run_id}) did not complete ({status}).")
    path = Store(Path(results_dir)).record_path(pretrain.suite, pretrain.run_id).parent / MODEL_STATE
    if not path.is_file():
        raise RuntimeError(f"its pretraining cell {pretrain} has no {path}: delete that cell's record.json and "
                           "run again, so it is retrained and saved.")
    return torch.load(path, map_location="cpu", weights_only=True)


def shift_scores(task: Task, method: Any, device: torch.device, cell: Cell, clean: float) -> dict[str, Any]:
    """Test metric of the selected state under each shift, and the gap to the clean one."""
    evaluate = getattr(task, "evaluate_shifted", None)
    if evaluate is None:
        return {"gap": None, "reason": f"task {cell.task.task} has no shift evaluation"}
    shifted = evaluate(method.predict, device, cell.shift)
    mean = statistics.fmean(shifted.values()) if shifted else None
    return {"clean": clean, "shifted": shifted, "mean_shifted": mean,
            "gap": None if mean is None else clean - mean, "reason": None}
