"""Calibration: how often the verdict rule supports claims that are false, by simulation.

Each scenario draws claims whose truth sits exactly on the claimed boundary (the worst
case for false support: any "supported" is wrong) and runs them through the engine's own
decision (harness/stats.py, with the resolution of harness/quantities.py). Scenarios:

- accuracy gaps on a test set of a few hundred examples, drawn afresh per claim from a
  population of examples of varying difficulty; each seed's classifier gets each example
  right with that example's probability, so seeds agree on most examples and accuracies
  move in steps of 1/N (often identical across seeds);
- equivalence of accuracies at the margin;
- ratios of costs (lognormal seed noise) and their equivalence on the log scale;
- costs to a target seen on an evaluation grid, where the baseline sometimes never
  reaches the target within its budget (a lower bound), for ">=" and "<=" claims;
- seeds added in a second look (3 then 6 seeds): false if either look supports.

`bench claims calibrate [sims=N] [seed=S]` prints the table; tests/test_calibration.py
runs a smaller, seeded version.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from harness.quantities import accuracy_resolution
from harness.stats import Evidence, Relation, decide


@dataclass(frozen=True)
class Row:
    scenario: str
    seeds: str
    rate: float
    mc_error: float  # one standard error of the rate (binomial)


def _accuracy_claim(rng: np.random.Generator, seeds: int, n_test: int, gap: float, agreement: float,
                    ) -> Evidence:
    """Per-seed accuracy gaps on one fresh test set; the population gap is exactly `gap`."""
    # example difficulty: P(a seed's baseline is right) ~ Beta(0.9 k, 0.1 k); small k: seeds agree
    k = agreement
    r_base = rng.beta(0.9 * k, 0.1 * k, n_test)
    # the method is right a bit more often: r_m = r_b + gap * (1 - r_b) / 0.1 keeps E[r_m - r_b] = gap
    r_method = np.clip(r_base + gap * (1 - r_base) / 0.1, 0, 1) if gap >= 0 else r_base * (1 + gap / 0.9)
    m = (rng.random((seeds, n_test)) < r_method).mean(axis=1)
    b = (rng.random((seeds, n_test)) < r_base).mean(axis=1)
    step, shared = accuracy_resolution(float(m.mean()), float(b.mean()), n_test)
    return Evidence.exact(m - b, step, shared)


def _cost_to_target(rng: np.random.Generator, seeds: int, ratio: float, every: float, budget: float) -> Evidence:
    """Log ratios baseline/method of costs seen on an evaluation grid; true geometric-mean ratio `ratio`."""
    method = rng.lognormal(math.log(1000.0), 0.3, seeds)
    baseline = rng.lognormal(math.log(1000.0 * ratio), 0.3, seeds)
    lows, highs, values = [], [], []
    for m, b in zip(method, baseline):
        m_seen = math.ceil(m / every) * every
        m_lo = m_seen - every
        if b > budget:  # never reached: a lower bound
            b_seen, b_lo, b_hi = budget, budget, math.inf
        else:
            b_seen = math.ceil(b / every) * every
            b_lo, b_hi = b_seen - every, b_seen
        values.append(math.log(b_seen / m_seen))
        lows.append(math.log(b_lo / m_seen) if b_lo > 0 else -math.inf)
        highs.append(math.log(b_hi / m_lo) if m_lo > 0 else math.inf)
    return Evidence(tuple(lows), tuple(highs), tuple(values))


def scenarios() -> Iterator[tuple[str, int, Relation, bool, Callable[[np.random.Generator, int], Evidence]]]:
    """(name, seeds, relation, log scale, draw(rng, seeds)) with the truth on the boundary."""
    for seeds in (3, 5, 10):
        yield (f"accuracy gap >= 0, N=300, seeds agree", seeds, Relation.parse(">= 0"), False,
               lambda rng, n: _accuracy_claim(rng, n, 300, 0.0, 0.02))
        yield (f"accuracy gap >= 0.01, N=300", seeds, Relation.parse(">= 0.01"), False,
               lambda rng, n: _accuracy_claim(rng, n, 300, 0.01, 0.1))
        yield (f"accuracy gap <= -0.01, N=500", seeds, Relation.parse("<= -0.01"), False,
               lambda rng, n: _accuracy_claim(rng, n, 500, -0.01, 0.1))
        yield (f"accuracy within 0.02 (gap 0.02), N=300", seeds, Relation.parse("within 0.02"), False,
               lambda rng, n: _accuracy_claim(rng, n, 300, 0.02, 0.1))
        yield (f"accuracy within 0.01 (gap 0.01), N=20000", seeds, Relation.parse("within 0.01"), False,
               lambda rng, n: _accuracy_claim(rng, n, 20000, 0.01, 0.1))
        yield (f"ratio >= 4 (true 4)", seeds, Relation.parse(">= 4"), True,
               lambda rng, n: Evidence.exact(np.log(rng.lognormal(math.log(4.0), 0.2, n))
                                             - np.log(rng.lognormal(0.0, 0.2, n))))
        yield (f"ratio within 0.1 (true 1.1)", seeds, Relation.parse("within 0.1"), True,
               lambda rng, n: Evidence.exact(rng.normal(math.log(1.1), 0.03, n)))
        yield (f"to target >= 2 (true 2), baseline censored", seeds, Relation.parse(">= 2"), True,
               lambda rng, n: _cost_to_target(rng, n, 2.0, 250.0, 2200.0))
        yield (f"to target <= 2 (true 2), baseline censored", seeds, Relation.parse("<= 2"), True,
               lambda rng, n: _cost_to_target(rng, n, 2.0, 250.0, 2200.0))


def _two_looks(draw: Callable[[np.random.Generator, int], Evidence], relation: Relation, log_scale: bool,
               rng: np.random.Generator) -> bool:
    """Look 1 at 3 seeds; if not supported, 3 more seeds and look 2 at 6: supported at either?"""
    full = draw(rng, 6)
    first = Evidence(full.low[:3], full.high[:3], full.value[:3], full.step, full.shared_sd)
    if decide(first, relation, look=1, log_scale=log_scale, plan_seeds=False).verdict == "supported":
        return True
    return decide(full, relation, look=2, log_scale=log_scale, plan_seeds=False).verdict == "supported"


def rate(sims: int, seed: int, draw: Callable[[np.random.Generator, int], Evidence], seeds: int,
         relation: Relation, log_scale: bool, looks: int = 1) -> Row:
    rng = np.random.default_rng(seed)
    if looks == 2:
        hits = sum(_two_looks(draw, relation, log_scale, rng) for _ in range(sims))
    else:
        hits = sum(decide(draw(rng, seeds), relation, log_scale=log_scale, plan_seeds=False).verdict == "supported"
                   for _ in range(sims))
    p = hits / sims
    return Row("", "", p, math.sqrt(max(p * (1 - p), 1 / sims) / sims))


def table(sims: int = 20_000, seed: int = 0) -> list[Row]:
    rows = []
    for i, (name, seeds, relation, log_scale, draw) in enumerate(scenarios()):
        r = rate(sims, seed + i, draw, seeds, relation, log_scale)
        rows.append(Row(name, str(seeds), r.rate, r.mc_error))
    for j, (name, seeds, relation, log_scale, draw) in enumerate(scenarios()):
        if seeds != 3:
            continue
        r = rate(sims, seed + 1000 + j, draw, 6, relation, log_scale, looks=2)
        rows.append(Row(f"{name}, two looks", "3 then 6", r.rate, r.mc_error))
    return rows


def markdown(rows: list[Row], sims: int, seed: int) -> str:
    lines = [f"| scenario (truth on the boundary) | seeds | false support | MC error (1 sd) |",
             "|---|---|---|---|"]
    lines += [f"| {r.scenario} | {r.seeds} | {r.rate:.2%} | {r.mc_error:.2%} |" for r in rows]
    lines.append(f"\n`bench claims calibrate sims={sims} seed={seed}` (python -m harness.cli claims calibrate ...)")
    return "\n".join(lines)
