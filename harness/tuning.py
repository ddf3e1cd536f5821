"""Equal tuning for claims (AlgoPerf's external-tuning ruleset, on the learning rate).

When a claim tunes either side, both sides get the same number of trials: a side's own
`tune_lr`, or its lr x 2^k around its configured value (the method's default space). Trials
run on TUNING_SEED, which no comparison uses, and are chosen by the claim's own quantity where
it reads a validation curve (the cost to the claim's target), else by the validation metric.
A side with no learning rate means neither side is tuned. harness/claims.py supplies
`run_trial` (train one cell of a side, through the store) and records what this returns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from harness import registry
from harness.claim_files import Claim, NotComparable, Side
from harness.quantities import Quantity
from harness.record import Record

TUNING_SEED = 10_000  # tuning trials run on a seed no comparison uses
RunTrial = Callable[[Side, dict[str, Any]], Record | None]  # (side, its config) -> the TUNING_SEED record


def _val_score(record: Record) -> float:
    """The validation metric oriented so that larger is better (bits per byte is lower-is-better)."""
    value = record.final_metric("val")
    if value is None or not math.isfinite(value):
        return -math.inf
    return value if record.higher_is_better else -value


def search_space(side: Side, trials: int) -> tuple[float, ...]:
    """The learning rates a side is tuned over: its own `tune_lr`, else `trials` rates spaced by
    factors of 2 around its configured (or default) lr, the method's declared default space."""
    if side.tune_lr:
        return tuple(side.tune_lr)
    fields = {f.name: f for f in dataclasses.fields(registry.get_method(side.name).Config)}
    if trials == 0 or "lr" not in fields:
        return ()
    centre = float(side.config.get("lr", fields["lr"].default))
    return tuple(centre * 2.0 ** (k - (trials - 1) / 2) for k in range(trials))


def _trial_score(claim: Claim, quantity: Quantity, record: Record) -> float:
    """What a tuning trial is chosen by: the claim's own quantity where it reads a validation
    curve (a cost to the claim's target: lower is better), else the validation metric."""
    if quantity.to_target and claim.target is not None:
        cost = quantity.read(record, claim.target).value
        return -cost if math.isfinite(cost) else -math.inf
    return _val_score(record)


def _tuned(claim: Claim, side: Side, space: tuple[float, ...], run_trial: RunTrial,
           quantity: Quantity) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`side`'s config with the learning rate that won on TUNING_SEED, and every trial."""
    if not space:
        return dict(side.config), []
    trials = []
    for lr in space:
        record = run_trial(side, {**side.config, "lr": lr})
        if record is None or not record.completed:
            status = "missing" if record is None else f"{record.status}: {record.error}"
            trials.append({"lr": lr, "seed": TUNING_SEED, "val": None, "score": None, "status": status})
            continue
        score = _trial_score(claim, quantity, record)
        trials.append({"lr": lr, "seed": TUNING_SEED, "val": record.final_metric("val"),
                       "score": score if math.isfinite(score) else None, "status": "completed"})
    finished = [t for t in trials if t["val"] is not None]
    if not finished:
        raise NotComparable(f"every tuning trial of {side.name} failed: {trials}")
    best = max(finished, key=lambda t: -math.inf if t["score"] is None else t["score"])
    return {**side.config, "lr": best["lr"]}, trials


def tune_both(claim: Claim, run_trial: RunTrial, quantity: Quantity) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The equal-tuning rule (AlgoPerf's external tuning): both sides get the same number of
    trials, on TUNING_SEED's validation split, chosen by the claim's own quantity.

    Returns (method config, baseline config, the record of the tuning for the verdict file).
    A side that cannot be tuned (no `lr`) means neither is: equal effort, said in the record.
    """
    assert claim.baseline is not None
    trials = max(len(claim.method.tune_lr), len(claim.baseline.tune_lr))
    spaces = {"method": search_space(claim.method, trials), "baseline": search_space(claim.baseline, trials)}
    untunable = [name for name, space in spaces.items() if trials and not space]
    if untunable:
        spaces = {"method": (), "baseline": ()}
    tuned, problems = {}, []
    for name, side in (("method", claim.method), ("baseline", claim.baseline)):
        try:  # both sides' trials are asked for before either failure is raised (claims.prepare gathers them)
            tuned[name] = _tuned(claim, side, spaces[name], run_trial, quantity)
        except NotComparable as exc:
            problems.append(exc)
    if problems:
        raise problems[0]
    (method_config, method_trials), (baseline_config, baseline_trials) = tuned["method"], tuned["baseline"]
    record = {"trials_per_side": len(spaces["method"]), "seed": TUNING_SEED,
              "chosen_by": (f"cost to reach {claim.target} ({claim.quantity})"
                            if quantity.to_target and claim.target is not None else "validation metric"),
              "method": method_trials, "baseline": baseline_trials,
              "reason": (f"{', '.join(untunable)} has no learning rate to tune, so neither side is tuned (equal effort)"
                         if untunable else None)}
    return method_config, baseline_config, record
