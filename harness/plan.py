"""A resolved suite run -> its cells (task x method x seed), each with a stable run id."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from harness.budget import Budget
from harness.energy import EnergyMeter
from harness.interface import FineTuningConfig, ShiftConfig
from harness.meter import MeterConfig
from harness.jsonable import run_id
from harness.run_config import MethodSpec, RunConfig, TaskSpec
from harness.typed_config import ConfigError


def config_identity(config: Any) -> dict[str, Any]:
    """A task's or method's config as it enters the run id: every field, except one declared
    `added_later` that holds its default (harness/interface: a knob added after records exist
    leaves their ids alone)."""
    values = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("run_id") == "when_not_default" and getattr(config, f.name) == f.default:
            values.pop(f.name)
    return values


@dataclass(frozen=True)
class Cell:
    """One unit of work: train `method` on `task` with `seed` under `budget`."""

    suite: str
    task: TaskSpec
    method: MethodSpec
    seed: int
    budget: Budget
    batch_size: int
    eval_every: int
    device: str  # resolved: "cpu" or "cuda"
    threads: int | None = None  # torch CPU threads; speed only, so not part of the run id
    meter: MeterConfig = MeterConfig()  # what is observed, not what is learned: not in the run id
    shift: ShiftConfig = ShiftConfig()  # extra evaluations: in the run id when enabled
    pretrain: Cell | None = None  # fine-tuning cells: the cell whose selected state they start from
    eval_subset: int | None = None  # validation on N fixed examples between checkpoints: in the run id when set

    def identity(self) -> dict[str, Any]:
        """Everything that can change the result; its hash is the run id.

        Left out: the data directory (where the same files live does not change what
        is learned from them), the thread count and the meter settings (they change
        speed and observation, not results). Shift evaluation is in when enabled: it
        adds results to the record. A fine-tuning cell carries the run id of its
        pretraining cell: a different checkpoint is a different run. `eval_subset` is in
        when set (selection on a subset can pick another state); unset, it stays out, so run
        ids made before it existed hold.
        """
        task_config = {k: v for k, v in config_identity(self.task.config).items() if k != "data_dir"}
        # shift.test_subset came later: unset (the whole test set) it stays out, so run ids made before it hold
        shift_config = {k: v for k, v in dataclasses.asdict(self.shift).items() if k != "test_subset" or v is not None}
        shift = {"shift": shift_config} if self.shift.enabled else {}
        pretrain = {"pretrain": self.pretrain.run_id} if self.pretrain is not None else {}
        subset = {"eval_subset": self.eval_subset} if self.eval_subset is not None else {}
        return {
            **shift,
            **pretrain,
            **subset,
            "suite": self.suite,
            "task_label": self.task.label,
            "task": self.task.task,
            "task_config": task_config,
            "method": self.method.name,
            "method_config": config_identity(self.method.config),
            "seed": self.seed,
            "budget": {self.budget.kind: self.budget.value},
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "device": self.device,
        }

    @property
    def run_id(self) -> str:
        return run_id(self.identity())

    def __str__(self) -> str:
        return f"{self.task.label}/{self.method.name}/seed{self.seed}"


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but torch sees no CUDA device; use device=cpu or device=auto.")
    return requested


def plan(run: RunConfig) -> list[Cell]:
    """Cells in a stable order: task, then method, then seed."""
    device = resolve_device(run.device)
    if run.budget.kind == "joules":
        energy = EnergyMeter(torch.device(device))
        if not energy.available:
            raise ConfigError(
                f"budget.joules needs measured energy, and this machine has none: {energy.reason}. "
                "Use budget.seconds (or budget.flops) here, or run on a GPU that NVML meters."
            )
    labels = {task.label: task for task in run.tasks}

    def cell(task: TaskSpec, method: MethodSpec, seed: int, budget: Budget | None = None) -> Cell:
        pretrain = None
        if isinstance(task.config, FineTuningConfig) and task.config.init_from is not None:
            # config.py checked the label, that the pretraining task is no fine-tune, and the method
            assert run.pretrain_method is not None
            pretrain = cell(labels[task.config.init_from], run.pretrain_method, seed, run.pretrain_budget)
        return Cell(run.suite, task, method, seed, budget or run.budget, run.batch_size, run.eval_every, device,
                    run.threads, run.meter, run.shift, pretrain, run.eval_subset)

    return [cell(task, method, seed) for task in run.tasks for method in run.methods for seed in run.seeds]
