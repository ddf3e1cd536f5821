"""Claims as files: the cells a claim needs, run through the store, turned into a verdict.

A claim (suites/claims/<id>.yaml) names a method and a baseline, a suite and one of its
tasks, a budget, the number of seeds, a measured quantity (harness/quantities.py) and
the expected relation (`>= 4`, `<= 1`, `within 0.01`). `verify` plans the cells, runs
only those the store lacks, computes per-seed values and the verdict (harness/stats.py),
and writes `<results>/claims/<id>.json`.

Nothing but the claim file decides what is compared:
- `overrides:` in the file and `key=value` on the command line may set only what cannot
  change the comparison's meaning (SAFE_OVERRIDES: threads, device, results_dir, data_dir,
  launcher.*, meter.*); anything else is refused, naming the key. A claim file's
  `overrides: {profile: NAME}` is the older spelling of its `profile:` field (part of the
  claim, hashed with it); the command line cannot set it.
- After planning, every cell is checked against the claim: suite, task, method, the
  claim's config, budget and seed.
- The verdict file holds its provenance (the claim file's sha256, the resolved configs of
  both sides, budget, seeds, overrides, the run id and content hash of every record used,
  the harness commit); `staleness` says when the claim file or a record changed since.
- The error budget, the looks at the data and the intervals are harness/stats.py's; the
  seeds seen at each look are kept in the verdict file (`looks`) so that adding seeds
  later is spent from the same 5%.

The equal-tuning rule (AlgoPerf's external tuning ruleset):
- when either side names a search space (`tune: {key, values}` over any key of its
  method's Config, or `tune_lr: [...]` for the learning rate), both sides get the same
  number of trials: a side without its own is tuned over its method's default key (its
  `tune_key`, else lr) x 2^k around its configured value (harness/tuning.py). Trials
  run on TUNING_SEED, a seed the comparison never uses, under the same budget, and are
  chosen by the claim's own quantity where it reads a validation curve (the cost to the
  claim's target), else by the validation metric; the verdict file lists every trial.
- a baseline that diverges is not a strong baseline: the claim is not comparable until
  it is tuned. A method that diverges is counted as the worst outcome for it, named in
  the verdict ("diverged in k of n seeds"), so it can be refuted.
- the robustness check decides the claim again at x0.5 and x2 its budget (tuning included);
  a fine-tuning task's cells keep starting from the same checkpoint (the suite's
  `pretrain_budget`, else the claim's own budget): the budget scales the fine-tuning, not
  what it starts from. A claim worded generally ("on reinforcement learning tasks") names
  further tasks of its suite in `also_on`, and is decided on each at x1 as well; any
  verdict that differs makes the label fragile, naming where.
- memory quantities are also held against the baseline's declared `memory_variants`
  (harness/interface.py; backprop: activation checkpointing, bf16 autocast and both);
  the baseline is the variant with the least memory. The
  ledger is read from the meter's probe steps, so memory cells run a short budget
  (`MEMORY_STEPS` steps) whatever the claim's budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from harness import registry
from harness.config import ConfigError, resolve_overrides, suite_path
from harness.typed_config import build_dataclass
from harness.energy import EnergyMeter
from harness.environment import git_commit
from harness.interface import memory_variants
from harness.execute import split_by_store
from harness.launch import RecordCallback, launch
from harness.run_config import LauncherConfig
from harness.plan import Cell, plan, resolve_device
from harness.quantities import QUANTITIES, Missing, Quantity, per_seed, resolution
from harness.loops.common import ProgressCallback
from harness.record import Record
from harness.stats import POWER, Evidence, Relation, bootstrap_interval, decide
from harness.claim_files import (CLAIMS_DIR, Claim, NotComparable, Side, check_overrides, claim_paths, find_claim,
                                  load_claim, new_claim)
from harness.tuning import TUNING_SEED, tune_both
from harness.jsonable import canonical_json
from harness.store import Store

# The claim-file functions the command line and the Python API reach through this module.
__all__ = ["CLAIMS_DIR", "ClaimCells", "claim_paths", "find_claim", "load_claim", "new_claim", "prepare",
           "staleness", "verify", "write_verdict"]

MEMORY_STEPS = 5
RoundCallback = Callable[[list[Cell], int], None]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_sha256(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------- planning


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
    """The claim's cells of one side; each checked to be exactly what the claim says."""
    pairs: list[tuple[str, Any]] = [("suite", claim.suite), ("method", [side.name]), ("seeds", seeds)]
    if claim.suite_profile is not None:
        pairs.append(("profile", claim.suite_profile))
    pairs += [(k, v) for k, v in claim.overrides.items() if k != "profile"]
    if claim.budget:
        pairs += [(f"budget.{kind}", value) for kind, value in claim.budget.items()]
    pairs += [(f"method.{side.name}.{key}", value) for key, value in config.items()]
    pairs += extra
    cells = [c for c in plan(resolve_overrides(pairs)) if c.task.label == claim.task]
    if not cells:
        raise ConfigError(f"claim {claim.id}: suite {claim.suite} has no task labelled {claim.task!r}.")
    budget = dict(extra).get("budget.steps") if any(k == "budget.steps" for k, _ in extra) else None
    pretrain = {k.split(".", 1)[1]: float(v) for k, v in extra if k.startswith("pretrain_budget.")}
    for cell in cells:
        _check_cell(claim, side, config, seeds, cell, budget)
        if cell.pretrain is not None and pretrain and \
                {cell.pretrain.budget.kind: cell.pretrain.budget.value} != pretrain:
            raise ConfigError(f"claim {claim.id}: the pretraining cell of {cell} has budget {cell.pretrain.budget}, "
                              f"not the pinned {pretrain}; refusing to verify it on other cells.")
    return cells


def _check_cell(claim: Claim, side: Side, config: dict[str, Any], seeds: list[int], cell: Cell,
                memory_steps: int | None) -> None:
    """Assert a planned cell is the claim's: a mismatch is a harness bug, never a verdict."""
    resolved = dataclasses.asdict(cell.method.config)
    problems = []
    if cell.suite != claim.suite or cell.task.label != claim.task:
        problems.append(f"suite/task {cell.suite}/{cell.task.label}")
    if cell.method.name != side.name:
        problems.append(f"method {cell.method.name}")
    problems += [f"{side.name}.{k} = {resolved.get(k)!r}, not {v!r}" for k, v in config.items() if resolved.get(k) != v]
    if cell.seed not in seeds:
        problems.append(f"seed {cell.seed}")
    wanted = {"steps": memory_steps} if memory_steps is not None else claim.budget
    if wanted and {cell.budget.kind: cell.budget.value} != {k: float(v) for k, v in wanted.items()}:
        problems.append(f"budget {cell.budget.kind} {cell.budget.value:g}")
    if problems:
        raise ConfigError(f"claim {claim.id}: a planned cell is not the claim's ({'; '.join(problems)}); "
                          "refusing to verify it on other cells.")


CellTime = tuple[float | None, bool]  # (wall seconds, whether they are the recorded cell_seconds)


@dataclass
class ClaimCells:
    """Runs the cells a claim needs through the store (resume: recorded cells are reused).

    `extra` is the command line's key=value list: only SAFE_OVERRIDES (checked here).
    """

    store: Store
    extra: list[tuple[str, Any]]
    on_progress: ProgressCallback | None = None
    on_record: RecordCallback | None = None
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    ran: int = 0
    used: list[dict[str, Any]] = field(default_factory=list)  # provenance of the cells read since `reset`
    collecting: bool = False  # `prepare`: cells the store lacks are gathered in `pending`, not trained
    pending: dict[str, Cell] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)  # launched by `prepare`: not gathered again (a failure stays)
    # `prepare`: compared cells a later round will ask for once this round's tuning trials are in
    # (an upper bound: some may be recorded already, or shared by claims); see `on_round`
    later: int = 0
    touched: dict[str, CellTime] = field(default_factory=dict)  # run id -> its wall seconds (`cell_time`)
    all_touched: dict[str, CellTime] = field(default_factory=dict)  # the same, over every claim verified
    on_round: RoundCallback | None = None  # (this round's cells, cells expected in later rounds)

    def __post_init__(self) -> None:
        check_overrides(self.extra, "command line")
        chosen = {str(k).split(".", 1)[1]: v for k, v in self.extra if str(k).startswith("launcher.")}
        if chosen:  # launcher.kind=ray launcher.workers=8 ...: where the claims' cells run
            self.launcher = build_dataclass(LauncherConfig, chosen, "launcher")

    def records(self, cells: list[Cell], role: str) -> dict[int, Record | None]:
        todo = split_by_store(cells, self.store).todo
        if todo and self.collecting:
            self.pending.update({c.run_id: c for c in todo if c.run_id not in self.attempted})
        elif todo:
            outcomes = launch(todo, self.store.root, self.launcher, self.on_progress, self.on_record)
            self.ran += outcomes["ran"]
        out: dict[int, Record | None] = {}
        for cell in cells:
            record = self.store.load(cell.suite, cell.run_id)  # checked on read; a bad one is set aside
            self.used.append({"role": role, "seed": cell.seed, "suite": cell.suite, "run_id": cell.run_id,
                              "method": cell.method.name, "status": None if record is None else record.status,
                              "record_sha256": None if record is None else record_sha256(record.to_dict())})
            out[cell.seed] = record
            self.touched[cell.run_id] = self.all_touched[cell.run_id] = cell_time(record)
        return out


def cell_time(record: Record | None) -> CellTime:
    """A record's wall seconds and whether they are its recorded `cell_seconds` (True) or, for a
    record older than the phase accounting, its training plus evaluation seconds, which leave out
    only setup (False); (None, False) when it has neither (memory-only cells: nothing trains)."""
    timing = None if record is None else record.timing
    if timing is None:
        return None, False
    if timing.cell_seconds:
        return timing.cell_seconds, True
    return (timing.train_seconds + timing.eval_seconds) or None, False


def plan_round(claims: list[tuple[Claim, Path]], runner: ClaimCells, robustness: bool = True) -> tuple[list[Cell], int]:
    """Plan every claim without training: (the cells the store lacks now, how many compared
    cells later rounds are expected to add once this round's tuning trials are in, at most)."""
    was, runner.collecting = runner.collecting, True
    runner.pending, runner.later = {}, 0
    try:
        for claim, path in claims:
            verify(claim, runner, path, robustness)
        return list(runner.pending.values()), runner.later
    finally:
        runner.collecting, runner.pending = was, {}


def prepare(claims: list[tuple[Claim, Path]], runner: ClaimCells, robustness: bool = True) -> int:
    """Train every cell the claims need, all claims at once, through the configured launcher.

    Each round plans every claim without training (`plan_round`: the cells the store lacks)
    and launches them together, so a cluster runs a round in the time of its slowest cell.
    Rounds repeat because some cells depend on others (the comparison cells on the tuning
    trials' winner); a cell launched once is not launched again (a failure is a failure).
    Returns the number of rounds; `verify` then finds every cell in the store.
    """
    rounds = 0
    while True:
        cells, later = plan_round(claims, runner, robustness)  # never a cell launched before (`records`)
        if not cells:
            return rounds
        runner.attempted |= {cell.run_id for cell in cells}
        if runner.on_round is not None:
            runner.on_round(cells, later)
        outcomes = launch(cells, runner.store.root, runner.launcher, runner.on_progress, runner.on_record)
        runner.ran += outcomes["ran"]
        rounds += 1


def _incomplete(records: dict[int, Record | None], who: str, allow_diverged: bool) -> str | None:
    bad = {seed: r for seed, r in records.items()
           if r is None or not (r.completed or (allow_diverged and r.status == "diverged"))}
    if not bad:
        return None
    detail = "; ".join(f"seed {s}: {r.status if r else 'missing'} ({r.error if r else None})" for s, r in bad.items())
    return f"{who} did not complete every seed: {detail}"


# ------------------------------------------------------------------------- verdicts


def _finite(x: float | None) -> float | None:
    """JSON holds no infinities: an unbounded end is written as null (the reason says why)."""
    return x if x is not None and math.isfinite(x) else None


def _looks(claim: Claim, previous: Any, n: int) -> tuple[int, dict[str, list[int]]]:
    """(this look's number, the seed counts looked at per claim design, this one included).

    A look is a verification with a seed count not seen before for the same design; the
    k-th distinct count is decided at alpha / 2**k (harness/stats.py). Verifying again with
    a count already seen reuses the latest look number, which is never looser.
    """
    key = hashlib.sha256(canonical_json(claim.design()).encode()).hexdigest()[:16]
    history: dict[str, list[int]] = {}
    if isinstance(previous, dict) and isinstance(previous.get("looks"), dict):
        history = {str(k): [int(x) for x in v] for k, v in previous["looks"].items() if isinstance(v, list)}
    seen = history.setdefault(key, [])
    if n not in seen:
        seen.append(n)
    return len(seen), history


BUDGET_SCALES = (0.5, 2.0)  # the robustness check: the claim decided again at these multiples of its budget


def verify(claim: Claim, runner: ClaimCells, claim_path: Path | None = None,
           robustness: bool = True) -> dict[str, Any]:
    """Run what the claim needs and return its verdict document (write it with `write_verdict`).

    With `robustness`, the claim is also decided at x0.5 and x2 its budget (every cell those
    need is trained, the tuning trials included) and the verdict is labelled `robust` when all
    three agree, else `fragile` with the budget that flips it. A fragile "supported" is never
    the headline: it becomes "inconclusive", saying at which budget it does not hold.
    """
    runner.touched = {}
    start = pretraining_budget(claim)  # every budget fine-tunes the same checkpoint
    document = _verify_once(claim, runner, claim_path, start)
    if robustness:
        document["robustness"] = _robustness(claim, runner, claim_path, document, start)
    else:
        document["robustness"] = {"label": "unchecked", "reason": "verified with --no-robustness"}
    document["cost"] = cost(runner.touched)
    if not robustness:
        return as_stated(claim, document)
    if document["verdict"] == "supported" and document["robustness"]["label"] == "fragile":
        document.update(verdict="inconclusive", reason=f"supported at this budget but fragile: "
                        f"{document['robustness']['reason']}; {document['reason']}")
    return as_stated(claim, document)


def cost(touched: dict[str, CellTime]) -> dict[str, Any]:
    """What a verdict's cells took: their number and the sum of their wall times (`cell_time`:
    `timing.cell_seconds`, setup to last evaluation, else training plus evaluation seconds for
    records older than the phase accounting, counted in `cells_timed_by_training`; a fine-tuning
    cell's pretraining is its own cell, not counted here). Shared cells count in every claim
    that reads them."""
    known = [(seconds, recorded) for seconds, recorded in touched.values() if seconds is not None]
    return {"cells": len(touched), "cell_seconds": round(sum(seconds for seconds, _ in known), 1),
            "cells_without_timing": len(touched) - len(known),
            "cells_timed_by_training": sum(not recorded for _, recorded in known)}


def as_stated(claim: Claim, document: dict[str, Any]) -> dict[str, Any]:
    """A claim whose statement no run here can test (`not_testable:`) gets that verdict; what was
    measured stays beside it as `proxy` (its own verdict, reason, estimate and interval)."""
    if not claim.not_testable:
        return document
    proxy = {key: document.get(key) for key in ("verdict", "reason", "estimate", "interval")}
    proxy["measures"] = f"{claim.quantity} {claim.relation} ({claim.method.name}, {claim.suite}/{claim.task})"
    return {**document, "verdict": "not testable", "proxy": proxy,
            "reason": f"not testable as stated: {claim.not_testable}. Proxy, {proxy['measures']}: "
                      f"{proxy['verdict']} ({proxy['reason']})"}


def _suite_run(claim: Claim) -> Any:
    pairs: list[tuple[str, Any]] = [("suite", claim.suite)]
    if claim.suite_profile is not None:
        pairs.append(("profile", claim.suite_profile))
    return resolve_overrides(pairs)


def claim_budget(claim: Claim) -> dict[str, float]:
    """The claim's budget, or its suite's (with the claim's profile) when the claim names none."""
    if claim.budget:
        return dict(claim.budget)
    budget = _suite_run(claim).budget
    return {budget.kind: budget.value}


def pretraining_budget(claim: Claim) -> dict[str, float]:
    """What the claim's fine-tuning cells start from: the suite's own `pretrain_budget` when it
    sets one (with the claim's profile), else the claim's budget; never scaled with it."""
    budget = _suite_run(claim).pretrain_budget
    return {budget.kind: budget.value} if budget is not None else claim_budget(claim)


def _robustness(claim: Claim, runner: ClaimCells, claim_path: Path | None, main: dict[str, Any],
                pretrain_budget: dict[str, float]) -> dict[str, Any]:
    if claim.quantity.startswith("memory"):
        return {"label": "robust", "reason": "memory is measured over a fixed number of steps: the budget does not "
                "enter it", "verdicts": {}}
    used = list(runner.used)  # the main verdict's provenance stays its own
    base = claim_budget(claim)
    settings = [(f"x{scale:g}", dataclasses.replace(claim, budget={k: v * scale for k, v in base.items()}))
                for scale in BUDGET_SCALES]
    settings += [(f"on {other.task}", other) for other in claim.elsewhere()]  # general wording: at x1
    verdicts, estimates = {"x1": main["verdict"]}, {"x1": _estimate(main)}
    for name, variant in settings:
        decided = _verify_once(variant, runner, claim_path, pretrain_budget)
        verdicts[name], estimates[name] = decided["verdict"], _estimate(decided)
    runner.used = used
    flips = [f"{verdict} {'at ' + name + ' budget' if name.startswith('x') else name}"
             for name, verdict in verdicts.items() if verdict != main["verdict"]]
    agreed = f"the same verdict at x{BUDGET_SCALES[0]:g} and x{BUDGET_SCALES[1]:g} the budget" + (
        f" and on {', '.join(e.task for e in claim.also_on)}" if claim.also_on else "")
    return {"label": "fragile" if flips else "robust", "verdicts": verdicts, "estimates": estimates, "budget": base,
            "reason": ", ".join(flips) if flips else agreed}


def _estimate(document: dict[str, Any]) -> dict[str, Any]:
    """A setting's estimate and interval beside its verdict (null where it was not comparable)."""
    return {"estimate": document.get("estimate"), "interval": document.get("interval")}


def _verify_once(claim: Claim, runner: ClaimCells, claim_path: Path | None = None,
                 pretrain_budget: dict[str, float] | None = None) -> dict[str, Any]:
    """One verdict of `claim` at its own budget; fine-tuning cells start from a checkpoint
    trained on `pretrain_budget` (default: the claim's budget)."""
    quantity = QUANTITIES[claim.quantity]
    relation = Relation.parse(claim.relation)
    seeds = list(range(claim.seeds))
    runner.used = []
    path = claim_path if claim_path is not None else CLAIMS_DIR / f"{claim.id}.yaml"
    document: dict[str, Any] = {
        "claim": claim.id, "statement": claim.statement, "source": claim.source, "quantity": claim.quantity,
        "quantity_description": quantity.description, "relation": str(relation), "confidence": None,
        "alpha_total": claim.alpha, "method": dataclasses.asdict(claim.method), "suite": claim.suite,
        "task": claim.task, "estimate": None, "interval": None, "per_seed": [], "baseline_used": None,
        "baseline_sweep": [], "tuning": None, "seeds_to_decide": None,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "provenance": {
            "claim_file": str(path), "claim_sha256": file_sha256(path) if path.is_file() else None,
            "harness_commit": git_commit(), "design": claim.design(), "seeds": seeds, "tuning_seed": TUNING_SEED,
            "budget": claim.budget, "profile": claim.suite_profile,
            "overrides": {"claim": dict(claim.overrides), "command_line": dict(runner.extra)},
            "method": None, "baseline": None, "cells": runner.used,
        },
    }
    try:
        device = resolve_device(str(dict(runner.extra).get("device", "auto")))
        _check_prerequisites(claim, device)
        memory = claim.quantity.startswith("memory")
        # fine-tuning cells start from the same checkpoint at every budget (`pretraining_budget`):
        # a pretraining scaled with the budget would change the starting point
        pinned = [] if memory else [(f"pretrain_budget.{kind}", value)
                                    for kind, value in (pretrain_budget or pretraining_budget(claim)).items()]
        trial_extra = runner.extra + pinned
        document["provenance"]["pretrain_budget"] = {k.split(".", 1)[1]: v for k, v in pinned} or None
        extra = trial_extra + ([("budget.steps", MEMORY_STEPS)] if memory else [])
        method_config, baseline_config = dict(claim.method.config), dict(claim.baseline.config) if claim.baseline else {}
        if claim.baseline is not None and not memory:  # the learning rate changes no memory figure
            def run_trial(side: Side, config: dict[str, Any]) -> Record | None:
                return runner.records(_cells(claim, side, config, [TUNING_SEED], trial_extra), "tuning")[TUNING_SEED]

            waiting = len(runner.pending)
            try:
                method_config, baseline_config, document["tuning"] = tune_both(claim, run_trial, quantity)
            except NotComparable:
                if runner.collecting and len(runner.pending) > waiting:  # trials to come, then both sides' seeds
                    runner.later += 2 * len(seeds)
                raise
            document["baseline_sweep"] = document["tuning"]["baseline"]
        method_cells = _cells(claim, claim.method, method_config, seeds, extra)
        document["provenance"]["method"] = _resolved(method_cells[0], method_config)
        method = runner.records(method_cells, "method")
        method_problem = _incomplete(method, f"method {claim.method.name}", allow_diverged=True)
        baseline: dict[int, Record | None] = {}
        if claim.baseline is not None:
            try:  # the baseline's cells are asked for even when the method's are missing (claims.prepare)
                config = baseline_config
                variants = memory_variants(registry.get_method(claim.baseline.name)) if memory else ({},)
                candidates = []
                asked = [(variant, _cells(claim, claim.baseline, {**config, **variant}, seeds, extra))
                         for variant in variants]
                asked = [(variant, cells, runner.records(cells, "baseline")) for variant, cells in asked]
                for variant, cells, records in asked:
                    if problem := _incomplete(records, f"baseline {claim.baseline.name} {variant or ''}",
                                              allow_diverged=False):
                        diverged = [s for s, r in records.items() if r is not None and r.status == "diverged"]
                        raise NotComparable(problem + (f". The baseline diverged in {len(diverged)} of {len(seeds)} "
                                                       "seeds: it is not a strong baseline; tune it (tune_lr) or "
                                                       "change its config" if diverged else ""))
                    candidates.append(({**config, **variant}, records, cells[0]))
                # the leanest baseline variant by the claim's own measure of memory
                key = (lambda c: statistics.fmean(quantity.read(r, claim.target).value for r in c[1].values()))
                chosen = min(candidates, key=key) if memory else candidates[0]
                document["baseline_used"] = {"name": claim.baseline.name, "config": chosen[0],
                                             "variants_tried": [c[0] for c in candidates]}
                document["provenance"]["baseline"] = _resolved(chosen[2], chosen[0])
                baseline = chosen[1]
            except NotComparable:
                if method_problem is None:
                    raise
        if method_problem is not None:
            raise NotComparable(method_problem)
        rows = per_seed(quantity, method, baseline, claim.target)
        step, shared, note = resolution(quantity, [r for r in method.values() if r],
                                        [r for r in baseline.values() if r])
    except (NotComparable, Missing) as exc:
        document.update(verdict="not comparable", reason=str(exc))
        return document
    look, history = _looks(claim, runner.store.read_verdicts().get(claim.id), len(rows))
    document["looks"] = history
    document["per_seed"] = [{k: (_finite(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    document.update(_verdict(rows, quantity, relation, look, claim.alpha, step, shared, note))
    return document


def _resolved(cell: Cell, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": cell.method.name, "config": dataclasses.asdict(cell.method.config), "set": dict(config),
            "budget": {cell.budget.kind: cell.budget.value}, "task": dataclasses.asdict(cell.task.config)}


def _log(x: float) -> float:
    return -math.inf if x == 0 else math.log(x)


def _verdict(rows: list[dict[str, Any]], quantity: Quantity, relation: Relation, look: int, total_alpha: float,
             step: float = 0.0, shared: float = 0.0, note: str = "") -> dict[str, Any]:
    """The verdict of per-seed rows (value, low, high: see harness/quantities.py)."""
    ratio = quantity.kind == "ratio"
    for row in rows:
        for name in ("value", "low", "high"):
            x = row.get(name, row["value"])
            if x is None or (isinstance(x, float) and math.isnan(x)):
                return {"verdict": "not comparable",
                        "reason": f"seed {row['seed']}: the {name} of {quantity.name} is {x}, not a number"}
    scale = _log if ratio else float
    evidence = Evidence(tuple(scale(r.get("low", r["value"])) for r in rows),
                        tuple(scale(r.get("high", r["value"])) for r in rows),
                        tuple(scale(r["value"]) for r in rows), step if not ratio else 0.0, shared if not ratio else 0.0)
    try:
        result = decide(evidence, relation, look=look, log_scale=ratio, total_alpha=total_alpha)
    except ValueError as exc:
        return {"verdict": "not comparable", "reason": str(exc)}
    notes = []
    diverged = [r["seed"] for r in rows if r.get("method_diverged")]
    if diverged:
        notes.append(f"the method diverged in {len(diverged)} of {len(rows)} seeds ({diverged}), each counted as "
                     "its worst outcome")
    for side in ("method", "baseline"):
        short = [r["seed"] for r in rows if r.get(f"{side}_reached") is False and not r.get(f"{side}_diverged")]
        if short:
            notes.append(f"the {side} never reached the target in seeds {short}: its cost there is a lower bound "
                         "(raise the budget to pin it down)")
    if note:
        notes.append(note)
    interval = result.interval
    finite = [v for v in evidence.value if math.isfinite(v)]
    boot = bootstrap_interval(finite, confidence=interval.confidence) if len(finite) == len(rows) else None
    if boot is not None and ratio:
        boot = dataclasses.replace(boot, estimate=math.exp(boot.estimate), low=math.exp(boot.low),
                                   high=math.exp(boot.high))
    return {
        "verdict": result.verdict, "reason": "; ".join([result.reason, *notes]),
        "estimate": _finite(interval.estimate),
        "interval": [_finite(interval.low), _finite(interval.high)],
        "confidence": interval.confidence, "alpha": result.alpha, "look": result.look,
        "interval_method": interval.method,
        "bootstrap_interval": [boot.low, boot.high] if boot else None,
        "seeds_to_decide": result.seeds_to_decide, "seeds_to_decide_power": POWER,
        "diverged": {"seeds": diverged, "of": len(rows)},
    }


def write_verdict(store: Store, document: dict[str, Any]) -> Path:
    return store.write_verdict(document["claim"], document)


def staleness(document: Any, claim_path: Path, store: Store) -> str | None:
    """Why a verdict no longer speaks for its claim (the file or a record behind it changed), or None."""
    if not isinstance(document, dict):
        return None
    provenance = document.get("provenance")
    if not isinstance(provenance, dict) or not provenance.get("claim_sha256"):
        return "written before verdicts held their provenance: verify again"
    if not claim_path.is_file():
        return f"the claim file {claim_path} is gone"
    if file_sha256(claim_path) != provenance["claim_sha256"]:
        return "the claim file changed since"
    for cell in provenance.get("cells") or []:
        try:
            record = store.load(cell["suite"], cell["run_id"])
        except (KeyError, ValueError):
            return "the verdict names a cell that is not a record"
        if record is None or record_sha256(record.to_dict()) != cell.get("record_sha256"):
            return f"the record of {cell.get('role')} seed {cell.get('seed')} ({cell.get('run_id')}) changed or is gone"
    return None
