"""Equal tuning for claims (AlgoPerf's external-tuning ruleset), over any key of a method's Config.

When a claim tunes either side, both sides get the same number of trials. A side is tuned over
its own search space (`tune: {key, values}`, or `tune_lr: [...]`, the shorthand for key `lr`),
else over its method's default space: the method's declared `tune_key` (a class attribute;
`lr` when it declares none) times 2^k around its configured value. Trials run on TUNING_SEED,
which no comparison uses, and are chosen by the claim's own quantity where it reads a
validation curve (the cost to the claim's target), else by the validation metric. A side with
nothing to tune means neither side is tuned (equal effort). Trials of one side that all come
out identical are flagged in the record: the key is then not read on this task (the discrete
active-inference agent ignores `lr`) or has no effect there, so that side was in effect untuned.
harness/claims.py supplies `run_trial` (train one cell of a side, through the store) and
records what this returns in the verdict file (`tuning`: the key and every trial per side).
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
from harness.typed_config import ConfigError, build_dataclass

TUNING_SEED = 10_000  # tuning trials run on a seed no comparison uses
DEFAULT_KEY = "lr"  # a method's default search key when it declares no `tune_key`
RunTrial = Callable[[Side, dict[str, Any]], Record | None]  # (side, its config) -> the TUNING_SEED record
TRIAL_FIELDS = ("key", "value", "seed", "val", "score", "status")


def _val_score(record: Record) -> float:
    """The validation metric oriented so that larger is better (bits per byte is lower-is-better)."""
    value = record.final_metric("val")
    if value is None or not math.isfinite(value):
        return -math.inf
    return value if record.higher_is_better else -value


def default_key(side: Side) -> str:
    """The key a side is tuned over when the claim names none: its method's `tune_key`, else lr."""
    return str(getattr(registry.get_method(side.name), "tune_key", DEFAULT_KEY))


def search_space(side: Side, trials: int) -> tuple[str, tuple[Any, ...]]:
    """(key, values) a side is tuned over: its own search space, else `trials` values of its
    default key spaced by factors of 2 around the configured (or default) value; no values when
    that key is not a positive number of its Config (nothing to tune)."""
    if side.search is not None:
        return side.search.key, tuple(side.search.values)
    key = default_key(side)
    fields = {f.name: f for f in dataclasses.fields(registry.get_method(side.name).Config)}
    if trials == 0 or key not in fields:
        return key, ()
    centre = side.config.get(key, fields[key].default)
    if isinstance(centre, bool) or not isinstance(centre, (int, float)) or centre <= 0:
        return key, ()
    space = tuple(float(centre) * 2.0 ** (k - (trials - 1) / 2) for k in range(trials))
    for value in space:  # a bounded key (a discount, a probability) can leave its range: say so before training
        try:
            build_dataclass(registry.get_method(side.name).Config, {**side.config, key: value}, side.name)
        except ConfigError as exc:
            raise NotComparable(f"{side.name}'s default search space for {key} ({key} x 2^k around {centre}: "
                                f"{[round(v, 6) for v in space]}) holds a value its Config refuses ({exc}); give "
                                f"the side its own `tune: {{key: {key}, values: [...]}}` in the claim file") from None
    return key, space


def _trial_score(claim: Claim, quantity: Quantity, record: Record) -> float:
    """What a tuning trial is chosen by: the claim's own quantity where it reads a validation
    curve (a cost to the claim's target: lower is better), else the validation metric."""
    if quantity.to_target and claim.target is not None:
        cost = quantity.read(record, claim.target).value
        return -cost if math.isfinite(cost) else -math.inf
    return _val_score(record)


def _trial(key: str, value: Any, **fields: Any) -> dict[str, Any]:
    """One trial's entry: the key and value, and the value under the key's own name too (`lr`)."""
    entry = {"key": key, "value": value, "seed": TUNING_SEED, **fields}
    return entry if key in TRIAL_FIELDS else {key: value, **entry}


def _tuned(claim: Claim, side: Side, key: str, space: tuple[Any, ...], run_trial: RunTrial,
           quantity: Quantity) -> tuple[dict[str, Any], list[dict[str, Any]], list[Record]]:
    """`side`'s config with the value of `key` that won on TUNING_SEED, every trial, and their records."""
    if not space:
        return dict(side.config), [], []
    trials, records = [], []
    for value in space:
        record = run_trial(side, {**side.config, key: value})
        if record is None or not record.completed:
            status = "missing" if record is None else f"{record.status}: {record.error}"
            trials.append(_trial(key, value, val=None, score=None, status=status))
            continue
        records.append(record)
        score = _trial_score(claim, quantity, record)
        trials.append(_trial(key, value, val=record.final_metric("val"),
                             score=score if math.isfinite(score) else None, status="completed"))
    finished = [t for t in trials if t["val"] is not None]
    if not finished:
        raise NotComparable(f"every tuning trial of {side.name} ({key} over {list(space)}) failed: {trials}")
    best = max(finished, key=lambda t: -math.inf if t["score"] is None else t["score"])
    return {**side.config, key: best["value"]}, trials, records


def _outcome(record: Record) -> tuple[Any, ...]:
    """What a trial learned, without its timings: every episode of a control run, else the curve's
    losses and metrics, and the final metrics."""
    if record.control is not None:
        learned: Any = (record.control.episode_returns, record.control.episode_end_steps)
    else:
        learned = [{k: v for k, v in point.items() if k.endswith(("loss", "metric"))} for point in record.curve or []]
    return learned, record.final_metric("val"), record.final_metric("test")


def identical(records: list[Record]) -> bool:
    """True when two or more trials learned exactly the same: the tuned key changed nothing."""
    return len(records) >= 2 and all(_outcome(r) == _outcome(records[0]) for r in records[1:])


def _on_edge(space: tuple[Any, ...], chosen: Any, records: list[Record]) -> float | None:
    """The chosen value when it is the smallest or largest of a numeric search space of three or
    more values whose trials did not all learn alike (an optimum there may lie outside), else None."""
    numbers = [v for v in space if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) < 3 or len(numbers) != len(space) or identical(records) or chosen not in numbers:
        return None
    return float(chosen) if chosen in (min(numbers), max(numbers)) else None


def tune_both(claim: Claim, run_trial: RunTrial, quantity: Quantity) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The equal-tuning rule (AlgoPerf's external tuning): both sides get the same number of
    trials, on TUNING_SEED's validation split, chosen by the claim's own quantity.

    Returns (method config, baseline config, the record of the tuning for the verdict file).
    A side that cannot be tuned means neither is: equal effort, said in the record.
    """
    assert claim.baseline is not None
    searches = [side.search for side in (claim.method, claim.baseline) if side.search is not None]
    trials = max((len(s.values) for s in searches), default=0)
    spaces = {"method": search_space(claim.method, trials), "baseline": search_space(claim.baseline, trials)}
    untunable = [f"{name} ({getattr(claim, name).name}: no positive {key} in its Config)"
                 for name, (key, space) in spaces.items() if trials and not space]
    if untunable:
        spaces = {name: (key, ()) for name, (key, _) in spaces.items()}
    tuned, problems = {}, []
    for name, side in (("method", claim.method), ("baseline", claim.baseline)):
        key, space = spaces[name]
        try:  # both sides' trials are asked for before either failure is raised (claims.prepare gathers them)
            tuned[name] = _tuned(claim, side, key, space, run_trial, quantity)
        except NotComparable as exc:
            problems.append(exc)
    if problems:
        raise problems[0]
    reasons = ([f"{', '.join(untunable)} has nothing to tune, so neither side is tuned (equal effort)"]
               if untunable else [])
    for name, (_, _, records) in tuned.items():
        if identical(records):
            side, key = getattr(claim, name), spaces[name][0]
            reasons.append(f"the {name}'s {len(records)} trials over {key} gave identical runs: {key} changes "
                           f"nothing {side.name} does on this task (not read, or without effect), so it was in "
                           f"effect untuned; name a key that matters (tune: {{key: ..., values: [...]}})")
    edges = {name: edge for name in tuned if (edge := _on_edge(spaces[name][1], tuned[name][0].get(spaces[name][0]),
                                                                 tuned[name][2]))}
    for name, value in edges.items():
        reasons.append(f"the {name}'s best {spaces[name][0]} ({value:g}) is at the edge of its search space "
                       f"{list(spaces[name][1])}: its optimum may lie beyond it; widen both sides' spaces alike")
    record = {"trials_per_side": len(spaces["method"][1]), "seed": TUNING_SEED,
              "on_edge": sorted(edges),
              "keys": {name: key for name, (key, space) in spaces.items() if space},
              "chosen_by": (f"cost to reach {claim.target} ({claim.quantity})"
                            if quantity.to_target and claim.target is not None else "validation metric"),
              "method": tuned["method"][1], "baseline": tuned["baseline"][1],
              "reason": "; ".join(reasons) or None}
    return tuned["method"][0], tuned["baseline"][0], record
