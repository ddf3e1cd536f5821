"""Claims as files: the cells a claim needs, run through the store, turned into a verdict.

A claim (suites/claims/<id>.yaml) names a method and a baseline, a suite and one of its
tasks, a budget, the number of seeds, a measured quantity (harness/quantities.py) and
the expected relation (`>= 4`, `<= 1`, `within 0.01`). `verify` plans the cells, runs
only those the store lacks, computes per-seed values and the verdict (harness/stats.py),
and writes `<results>/claims/<id>.json`.

The strong-baseline rule:
- `baseline.tune_lr: [...]` sweeps the baseline's learning rate on the first seed under
  the same budget and keeps the best *validation* metric; all seeds then use it.
- memory quantities are also held against the baseline's declared `memory_variants`
  (harness/interface.py; backprop: activation checkpointing, bf16 autocast and both);
  the baseline is the variant with the least memory. The
  ledger is read from the meter's probe steps, so memory cells run a short budget
  (`MEMORY_STEPS` steps) whatever the claim's budget.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from harness import registry
from harness.config import SUITES_DIR, ConfigError, build_dataclass, resolve_overrides, suite_path
from harness.energy import EnergyMeter
from harness.interface import memory_variants
from harness.launch import LauncherConfig, RecordCallback, launch, split_by_store
from harness.plan import Cell, plan, resolve_device
from harness.quantities import QUANTITIES, Missing, per_seed
from harness.loops.common import ProgressCallback
from harness.stats import Relation, bootstrap_interval, decide
from harness.store import Store

CLAIMS_DIR = SUITES_DIR / "claims"
MEMORY_STEPS = 5


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a registered method and its settings."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    tune_lr: tuple[float, ...] = ()


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str
    method: Side
    suite: str
    task: str
    quantity: str
    relation: str
    baseline: Side | None = None
    seeds: int = 3
    budget: dict[str, float] | None = None
    target: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.95
    notes: str = ""

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}{registry.did_you_mean(self.quantity, list(QUANTITIES))}"
                             f" Quantities: {', '.join(QUANTITIES)}.")
        Relation.parse(self.relation)
        quantity = QUANTITIES[self.quantity]
        if quantity.kind != "value" and self.baseline is None:
            raise ValueError(f"quantity {self.quantity} compares with a baseline: add `baseline: {{name: ...}}`")
        if quantity.needs_target and self.target is None:
            raise ValueError(f"quantity {self.quantity} needs `target:` (the validation metric to reach)")
        if self.seeds < 2:
            raise ValueError(f"seeds must be >= 2 for an interval, got {self.seeds}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")


# ------------------------------------------------------------------------------ files


def claim_paths(claims_dir: Path = CLAIMS_DIR) -> list[Path]:
    return sorted(claims_dir.glob("*.yaml"))


def load_claim(path: Path) -> Claim:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"claim file {path} is not valid YAML: {exc}") from exc
    claim = build_dataclass(Claim, raw, f"claim {path.stem}")
    if claim.id != path.stem:
        raise ConfigError(f"claim file {path} has id {claim.id!r}; the id must equal the file name ({path.stem!r}).")
    return claim


def find_claim(claim_id: str, claims_dir: Path = CLAIMS_DIR) -> Path:
    path = claims_dir / f"{claim_id}.yaml"
    if not path.is_file():
        known = [p.stem for p in claim_paths(claims_dir)]
        raise ConfigError(f"no claim {claim_id!r} in {claims_dir}.{registry.did_you_mean(claim_id, known)} "
                          f"Claims: {', '.join(known) or 'none'} (or `bench claims new {claim_id}`).")
    return path


TEMPLATE = """\
# A claim the harness can check. Every key is validated; `bench claims verify {id}` runs it.
id: {id}
source: "Who made the claim, where (talk, paper, press release), and a link or reference."
statement: "The claim in the words it was made."
method: {{name: backprop, config: {{}}}}        # the paradigm the claim is about
baseline: {{name: backprop, config: {{}}, tune_lr: [0.0003, 0.001, 0.003]}}  # strongest reasonable baseline
suite: vision-vit                             # suites/<suite>.yaml
task: mlp                                     # a task label of that suite
quantity: accuracy_gap                        # {quantities}
relation: "within 0.01"                       # '>= X', '<= X' or 'within M' (equivalence margin M)
seeds: 3
budget: {{examples: 275000}}                    # null: the suite's budget
target: null                                  # validation metric to reach, for *-to-target quantities
overrides: {{}}                                 # extra suite keys, e.g. {{profile: quick}}
confidence: 0.95
notes: "How the words were mapped to this test, and what it does not cover."
"""


def new_claim(claim_id: str, claims_dir: Path = CLAIMS_DIR) -> Path:
    path = claims_dir / f"{claim_id}.yaml"
    if path.exists():
        raise ConfigError(f"claim {claim_id!r} already exists at {path}; edit it or choose another id.")
    path.write_text(TEMPLATE.format(id=claim_id, quantities=" | ".join(QUANTITIES)))
    return path


# ------------------------------------------------------------------------- planning


class NotComparable(Exception):
    """A required method, suite, task or measurement is missing; the message says which."""


def _check_prerequisites(claim: Claim, device: str) -> None:
    quantity = QUANTITIES[claim.quantity]
    if quantity.unavailable:
        raise NotComparable(quantity.unavailable)
    try:
        suite_path(claim.suite)
    except ConfigError as exc:
        raise NotComparable(f"suite {claim.suite!r} does not exist yet ({exc})") from None
    known = registry.method_names()
    for side in (claim.method, claim.baseline):
        if side is not None and side.name not in known:
            raise NotComparable(f"method {side.name!r} is not implemented (registered: {', '.join(known)})")
    if claim.quantity == "energy_ratio":
        energy = EnergyMeter(torch.device(device))
        if not energy.available:
            raise NotComparable(f"energy is not measured on this machine: {energy.reason}")
    if claim.quantity == "memory_ratio_measured" and device != "cuda":
        raise NotComparable("measured device memory needs a GPU; this machine has none (use memory_ratio_ledger)")


def _cells(claim: Claim, side: Side, config: dict[str, Any], seeds: list[int],
           extra: list[tuple[str, Any]]) -> list[Cell]:
    pairs: list[tuple[str, Any]] = [("suite", claim.suite), ("method", [side.name]), ("seeds", seeds)]
    pairs += list(claim.overrides.items())
    if claim.budget:
        pairs += [(f"budget.{kind}", value) for kind, value in claim.budget.items()]
    pairs += [(f"method.{side.name}.{key}", value) for key, value in config.items()]
    pairs += extra
    cells = [c for c in plan(resolve_overrides(pairs)) if c.task.label == claim.task]
    if not cells:
        raise ConfigError(f"claim {claim.id}: suite {claim.suite} has no task labelled {claim.task!r}.")
    return cells


@dataclass
class ClaimCells:
    """Runs the cells a claim needs through the store (resume: recorded cells are reused)."""

    store: Store
    extra: list[tuple[str, Any]]
    on_progress: ProgressCallback | None = None
    on_record: RecordCallback | None = None
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    ran: int = 0

    def records(self, cells: list[Cell]) -> dict[int, dict[str, Any]]:
        todo = split_by_store(cells, self.store).todo
        if todo:
            outcomes = launch(todo, self.store.root, self.launcher, self.on_progress, self.on_record)
            self.ran += outcomes["ran"]
        loaded = {c.seed: self.store.load(c.suite, c.run_id) for c in cells}
        return {seed: None if record is None else record.to_dict() for seed, record in loaded.items()}


def _incomplete(records: dict[int, dict[str, Any]], who: str) -> str | None:
    bad = {seed: r for seed, r in records.items() if r is None or r.get("status") != "completed"}
    if not bad:
        return None
    detail = "; ".join(f"seed {s}: {r.get('status') if r else 'missing'} ({(r or {}).get('error')})"
                       for s, r in bad.items())
    return f"{who} did not complete every seed: {detail}"


def _val(record: dict[str, Any]) -> float:
    return float(record["final"]["val"][record["final"]["metric"]])


def _val_score(record: dict[str, Any]) -> float:
    """The validation metric oriented so that larger is better (bits per byte is lower-is-better)."""
    return _val(record) if record["final"].get("higher_is_better", True) else -_val(record)


def _tuned_baseline(claim: Claim, runner: ClaimCells, seeds: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The baseline config with the learning rate that won the validation sweep."""
    side = claim.baseline
    assert side is not None
    if not side.tune_lr:
        return dict(side.config), []
    sweep = []
    for lr in side.tune_lr:
        config = {**side.config, "lr": lr}
        record = runner.records(_cells(claim, side, config, seeds[:1], runner.extra))[seeds[0]]
        if problem := _incomplete({seeds[0]: record}, f"baseline sweep lr={lr}"):
            sweep.append({"lr": lr, "val": None, "status": problem})
            continue
        sweep.append({"lr": lr, "val": _val(record), "score": _val_score(record), "status": "completed"})
    finished = [s for s in sweep if s["val"] is not None]
    if not finished:
        raise NotComparable(f"every learning rate of the baseline sweep failed: {sweep}")
    best = max(finished, key=lambda s: s["score"])
    return {**side.config, "lr": best["lr"]}, sweep


# ------------------------------------------------------------------------- verdicts


def verify(claim: Claim, runner: ClaimCells) -> dict[str, Any]:
    """Run what the claim needs and return its verdict document (also written to the store)."""
    quantity = QUANTITIES[claim.quantity]
    relation = Relation.parse(claim.relation)
    seeds = list(range(claim.seeds))
    document: dict[str, Any] = {
        "claim": claim.id, "statement": claim.statement, "source": claim.source, "quantity": claim.quantity,
        "quantity_description": quantity.description, "relation": str(relation), "confidence": claim.confidence,
        "method": dataclasses.asdict(claim.method), "suite": claim.suite, "task": claim.task,
        "estimate": None, "interval": None, "per_seed": [], "baseline_used": None, "baseline_sweep": [],
        "seeds_to_decide": None, "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        device = resolve_device(str(dict(runner.extra).get("device", "auto")))
        _check_prerequisites(claim, device)
        memory = claim.quantity.startswith("memory")
        extra = runner.extra + ([("budget.steps", MEMORY_STEPS)] if memory else [])
        method = runner.records(_cells(claim, claim.method, claim.method.config, seeds, extra))
        if problem := _incomplete(method, f"method {claim.method.name}"):
            raise NotComparable(problem)
        baseline: dict[int, dict[str, Any]] = {}
        if claim.baseline is not None:
            # the learning rate changes no memory figure: memory claims skip the sweep
            config, document["baseline_sweep"] = ((dict(claim.baseline.config), []) if memory
                                                  else _tuned_baseline(claim, runner, seeds))
            variants = memory_variants(registry.get_method(claim.baseline.name)) if memory else ({},)
            candidates = []
            for variant in variants:
                records = runner.records(_cells(claim, claim.baseline, {**config, **variant}, seeds, extra))
                if problem := _incomplete(records, f"baseline {claim.baseline.name} {variant or ''}"):
                    raise NotComparable(problem)
                candidates.append(({**config, **variant}, records))
            # the leanest baseline variant by the claim's own measure of memory
            key = (lambda c: statistics.fmean(quantity.read(r, claim.target) for r in c[1].values()))
            chosen = min(candidates, key=key) if memory else candidates[0]
            document["baseline_used"] = {"name": claim.baseline.name, "config": chosen[0],
                                         "variants_tried": [c[0] for c in candidates]}
            baseline = chosen[1]
        rows = per_seed(quantity, method, baseline, claim.target)
    except (NotComparable, Missing) as exc:
        document.update(verdict="not comparable", reason=str(exc))
        return document
    document["per_seed"] = rows
    document.update(_verdict(rows, quantity.kind, relation, claim.confidence))
    return document


def _verdict(rows: list[dict[str, Any]], kind: str, relation: Relation, confidence: float) -> dict[str, Any]:
    values = [r["value"] for r in rows]
    if kind == "ratio":
        result = decide([r["baseline"] for r in rows], relation, confidence, log_scale=True,
                        baseline=[r["method"] for r in rows])
    else:
        result = decide(values, relation, confidence)
    interval = result.interval
    verdict, reason = result.verdict, result.reason
    # a side that never reached the target contributes a bound, not a value: a verdict that
    # the bound could have produced on its own is not trusted
    method_short = [r["seed"] for r in rows if r.get("method_reached") is False]
    baseline_short = [r["seed"] for r in rows if r.get("baseline_reached") is False]
    if verdict == "supported" and method_short:
        verdict, reason = "inconclusive", (f"the method never reached the target in seeds {method_short}, so its "
                                           "figures are bounds that flatter it; raise the budget")
    if verdict == "refuted" and baseline_short:
        verdict, reason = "inconclusive", (f"the baseline never reached the target in seeds {baseline_short}, so "
                                           "its figures are bounds that flatter it; raise the budget")
    boot = bootstrap_interval(values, confidence=confidence) if len(values) > 1 else None
    return {
        "verdict": verdict, "reason": reason,
        "estimate": interval.estimate if interval else None,
        "interval": [interval.low, interval.high] if interval else None,
        "interval_method": interval.method if interval else None,
        "bootstrap_interval": [boot.low, boot.high] if boot else None,
        "seeds_to_decide": result.seeds_to_decide,
    }


def write_verdict(store: Store, document: dict[str, Any]) -> Path:
    return store.write_verdict(document["claim"], document)
