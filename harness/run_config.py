"""The resolved run: what a suite plus its overrides say to run, as frozen dataclasses.

`RunConfig` (with its `TaskSpec`s, `MethodSpec`s and `LauncherConfig`) is what
harness/config.py resolves a suite into and what the planner, the launchers and the commands
read; `describe` turns it back into plain data for records and `bench run --dry-run`. The
types are apart from the resolution rules so that their readers need not import how a suite
file is read and checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.budget import Budget
from harness.interface import ShiftConfig
from harness.meter import MeterConfig


@dataclass(frozen=True)
class TaskSpec:
    label: str
    task: str
    config: Any  # the registered task's Config dataclass


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config: Any  # the registered method's Config dataclass


@dataclass(frozen=True)
class LauncherConfig:
    """`launcher.*` keys. Launchers change where cells run, never what they compute."""

    kind: Literal["local", "submitit", "ray"] = "local"
    workers: int = 1  # local: processes (1 = this process, with a live progress display); 0 = one per core
    retries: int = 1  # local pool: how often a cell whose worker died (e.g. OOM-killed) is tried again
    # local: run N cells side by side on each device (GPU cells: N per visible GPU, each worker pinned to one;
    # CPU cells: N on the CPU, sharing its cores); set, it decides the number of workers instead of `workers`
    cells_per_device: int | None = None
    folder: str = ".submitit"  # submitit: logs and pickles, relative to the results directory
    cluster: Literal["auto", "slurm", "local", "debug"] = "auto"  # submitit: "local" runs jobs as local processes
    partition: str | None = None  # submitit (Slurm)
    timeout_min: int = 120
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 16
    array_parallelism: int = 64
    address: str | None = None  # ray: address of a running cluster; None starts a local instance

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per core), got {self.workers}")
        if self.cells_per_device is not None and self.cells_per_device < 1:
            raise ValueError(f"cells_per_device must be >= 1 (or null: use workers), got {self.cells_per_device}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        for key in ("timeout_min", "cpus_per_task", "mem_gb", "array_parallelism"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved and validated suite run."""

    suite: str
    description: str
    tasks: tuple[TaskSpec, ...]
    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]
    budget: Budget
    batch_size: int
    eval_every: int
    device: str
    threads: int | None
    meter: MeterConfig
    launcher: LauncherConfig
    shift: ShiftConfig
    results_dir: Path
    profile: str | None = None
    overrides: tuple[str, ...] = field(default=())
    pretrain_method: MethodSpec | None = None  # trains the `init_from` task of fine-tuning tasks
    # the pretraining cells' budget when it is not `budget` (claims pin it: scaling a fine-tuning claim's
    # budget must not change the checkpoint it starts from); None: the suite's `budget`
    pretrain_budget: Budget | None = None
    notes: tuple[str, ...] = field(default=())  # what resolution changed, for the user (duplicates dropped)
    eval_subset: int | None = None  # validation examples scored between checkpoints (None: the whole split)



def describe(run: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data, for records and `bench run --dry-run`."""
    return {
        "suite": run.suite,
        "profile": run.profile,
        "tasks": {t.label: {"task": t.task, **dataclasses.asdict(t.config)} for t in run.tasks},
        "methods": {m.name: dataclasses.asdict(m.config) for m in run.methods},
        "seeds": list(run.seeds),
        "budget": {run.budget.kind: run.budget.value},
        "batch_size": run.batch_size,
        "eval_every": run.eval_every,
        "eval_subset": run.eval_subset,
        "device": run.device,
        "threads": run.threads,
        "meter": dataclasses.asdict(run.meter),
        "launcher": dataclasses.asdict(run.launcher),
        "shift": dataclasses.asdict(run.shift),
        "results_dir": str(run.results_dir),
    }
