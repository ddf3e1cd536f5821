"""The supervised loop: train to the budget, select on validation, test once (classification and LM).

- Selection: the validation metric is computed every `eval_every` steps and at the end; the
  state with the best validation metric is kept (copied to CPU) and the test split is
  evaluated once, on that state only.
- `eval_subset: N` (tasks that declare `SubsetEvaluableTask`): those validations, and so the
  selection, use a fixed subset of N validation examples (the same for every method, seed and
  checkpoint). The last validation pass goes on over the rest of the split, so the last state's
  whole-split metrics cost no extra pass; an earlier selected state is scored on the whole split
  once more. Selection sees validation data only; `final.val` holds the whole split's metrics of
  the selected state and, beside them, the subset's (`subset_<metric>`, `subset_examples`): the
  figures the selection was made on. Without it, `final.val` is the selected curve point's.
- Status: `completed`, or `diverged` when a step reports a non-finite loss (the record keeps
  the curve up to there and no final metrics).
- Shift: with `shift.enabled`, the selected state is also scored on shifted copies of the
  test set (tasks that declare `ShiftableTask`); the record holds clean and shifted metrics
  and the gap. With `shift.test_subset`, shifts (and the clean accuracy the gap is taken
  against) are scored on that fixed subset of the test set; `final.test` stays the whole set.
- Language models (task kind "lm"): the selected model state is saved through the store as
  the run's model checkpoint (so lm-eval can score the run later, and fine-tuning cells can
  start from it), and lm-eval runs on the selected state (harness/lm_eval_bridge.py); its
  scores are `final.lm_eval`. A fine-tuning cell (`cell.pretrain`) starts from the state
  that `pretrained(cell.pretrain)` returns: the launcher finds or trains that cell.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from harness import budget as budgets
from harness.interface import LMEvaluableTask, ShiftConfig, ShiftableTask, Task
from harness.loops.common import ProgressCallback, TrainLoop, snapshot, start_cell
from harness.meter import Meter
from harness.plan import Cell
from harness.store import Store

PretrainedState = Callable[[Cell], dict[str, Any]]  # a pretraining cell -> its selected model state


def train_supervised(cell: Cell, task: Task, method_cls: type, on_progress: ProgressCallback | None,
                     store: Store | None = None, pretrained: PretrainedState | None = None) -> dict[str, Any]:
    """Train `method_cls` on `task` to the cell's budget; the record's fields."""
    init_state = None
    if cell.pretrain is not None:
        if pretrained is None:
            raise RuntimeError("a fine-tuning cell needs its pretraining cell's state: run it through the launcher "
                               "(bench run), which finds or trains that cell in the results directory.")
        init_state = pretrained(cell.pretrain)
    born = time.perf_counter()
    method, model, counters, data_gen = start_cell(cell, task, method_cls, cell.budget, init_state)
    setup_seconds = time.perf_counter() - born
    device = torch.device(cell.device)
    best: tuple[float, int, dict[str, Any], dict[str, float]] | None = None
    sign = 1.0 if task.higher_is_better else -1.0

    def keep_best(val: dict[str, float]) -> None:
        nonlocal best
        if best is None or sign * val[task.metric] > sign * best[0]:
            best = (val[task.metric], counters.steps, snapshot(method.state_dict()), val)

    # CUDA steps timed by events read at evaluation boundaries, unless the budget is time or
    # energy, whose limit must be checked after every step (harness/meter.py)
    defer = cell.budget.kind not in ("seconds", "joules")
    with Meter(device, model, method, cell.meter, defer_timing=defer) as meter:
        loop = TrainLoop(cell, task, method, meter, counters, cell.budget, on_progress)
        diverged = loop.run(task.train_batches(cell.batch_size, data_gen),
                            lambda: budgets.exhausted(cell.budget, counters), keep_best)
    if diverged is not None:
        return {"status": "diverged", "error": diverged, "final": None, **loop.results(setup_seconds)}
    assert best is not None, "the loop always evaluates after its last step"
    _, best_step, best_state, best_val = best
    loop.timed(method.load_state_dict, best_state, phase="checkpoint")
    if loop.val_examples(subset=True) != loop.val_examples(subset=False):  # selected on a subset: the whole split
        whole = loop.last_whole_val if best_step == counters.steps else None  # the last state's came with its pass
        if whole is None:
            whole = loop.timed(task.evaluate, method.predict, "val", device, phase="val")
        best_val = {**whole, **{f"subset_{k}": v for k, v in best_val.items()},
                    "subset_examples": loop.val_examples(subset=True)}
    test = loop.timed(task.evaluate, method.predict, "test", device, phase="test")
    final = {"metric": task.metric, "best_step": best_step, "val": best_val, "test": test}
    if cell.shift.enabled:
        final["shift"] = loop.timed(shift_scores, task, method, device, cell, test[task.metric], phase="shift")
    if task.kind == "lm":
        final["higher_is_better"] = task.higher_is_better
        if store is not None:
            final["model_state"] = loop.timed(store.save_model_state, cell.suite, cell.run_id, model.state_dict(),
                                              phase="checkpoint")
        final["lm_eval"] = loop.timed(lm_eval_scores, task, method.predict, device, phase="lm_eval")
    return {"status": "completed", "final": final, **loop.results(setup_seconds)}


def lm_eval_scores(task: Task, predict: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> dict[str, Any]:
    """lm-eval's scores of the selected state, or why there are none."""
    if not isinstance(task, LMEvaluableTask):
        return {"tasks": {}, "reason": f"task {task.name} declares no lm-eval tasks"}
    # lm-eval is an optional extra ([lm]): imported for LM cells only, not to dodge a cycle
    from harness.lm_eval_bridge import evaluate_cell

    return evaluate_cell(task, predict, device)


def shift_scores(task: Task, method: Any, device: torch.device, cell: Cell, clean: float) -> dict[str, Any]:
    """Test metric of the selected state under each shift, and the gap to the clean one."""
    if not isinstance(task, ShiftableTask):
        return {"gap": None, "reason": f"task {cell.task.task} has no shift evaluation"}
    shifted = task.evaluate_shifted(method.predict, device, cell.shift)
    if cell.shift.test_subset is not None:
        # The gap compares like with like: clean accuracy on the same test subset, through the
        # task's own shift path with a zero-strength shift (Gaussian noise of std 0).
        identity = ShiftConfig(noise=(0.0,), rotation=(), translation=(), seed=cell.shift.seed,
                               test_subset=cell.shift.test_subset)
        (clean,) = task.evaluate_shifted(method.predict, device, identity).values()
    mean = statistics.fmean(shifted.values()) if shifted else None
    return {"clean": clean, "shifted": shifted, "mean_shifted": mean,
            "gap": None if mean is None else clean - mean, "reason": None}
