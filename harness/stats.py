"""Statistics over seeds, and the rule that turns them into a claim's verdict.

Seeds are the unit of replication: a method and its baseline run with the same seeds
(same initialisation stream, same data order), so comparisons are *paired* by seed.

- Differences (accuracy gaps, forgetting, shift gaps): the mean paired difference with
  a Student-t interval. With the 3-10 seeds a benchmark can afford, percentile and
  BCa bootstrap intervals are too narrow (they ignore the t correction and the
  bias of the plug-in variance) and support false claims more often than their
  nominal level; the calibration test (tests/test_stats.py) measures this. Bootstrap
  intervals are computed and reported alongside, for many-seed runs.
- Ratios (speed-ups, memory and FLOP ratios): the t interval of the mean paired log
  ratio, exponentiated: a geometric-mean ratio whose interval is symmetric on the
  log scale, the natural scale for "4x faster".
- Equivalence ("comparable accuracy, within +-m"): TOST (Schuirmann, 1987), i.e. the
  (1 - 2 alpha) interval lies inside (-m, m).

The verdict rule, for an expected relation `>= x`, `<= x` or `within m`:

    supported      the interval lies entirely on the claimed side (TOST for `within`);
    refuted        the interval lies entirely on the other side (for `within`: entirely
                   outside (-m, m));
    inconclusive   the interval straddles the boundary; the verdict says roughly how
                   many seeds would decide it;
    not comparable decided before any statistics: a method, suite or measurement is
                   missing (the reason says which).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

VERDICTS = ("supported", "refuted", "inconclusive", "not comparable")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float
    method: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Relation:
    """An expected relation parsed from a claim: `>= 4`, `<= 0.5`, `within 0.01`."""

    op: str  # ">=", "<=", "within"
    value: float

    @classmethod
    def parse(cls, text: str) -> Relation:
        match = re.fullmatch(r"\s*(>=|<=|within)\s*(?:±|\+-|\+/-)?\s*(-?\d*\.?\d+(?:[eE][+-]?\d+)?)\s*", str(text))
        if not match:
            raise ValueError(f"relation {text!r} is not one of '>= X', '<= X', 'within M'")
        op, value = match.group(1), float(match.group(2))
        if op == "within" and value <= 0:
            raise ValueError(f"an equivalence margin must be positive, got {value}")
        return cls(op, value)

    def __str__(self) -> str:
        return f"within ±{self.value:g}" if self.op == "within" else f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    interval: Interval | None
    reason: str
    seeds_to_decide: int | None = None


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with a Student-t interval; exact width 0 when the seeds agree exactly."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, -math.inf, math.inf, confidence, "t (one seed: unbounded)")
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, confidence, "t")


def log_ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                       confidence: float = 0.95) -> Interval:
    """Geometric-mean ratio numerator/denominator over paired seeds, t interval on logs."""
    logs = np.log(np.asarray(numerators, float)) - np.log(np.asarray(denominators, float))
    inner = t_interval(logs, confidence)
    return Interval(math.exp(inner.estimate), math.exp(inner.low), math.exp(inner.high), confidence, "t on log ratio")


def bootstrap_interval(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                       confidence: float = 0.95, n_resamples: int = 10_000, method: str = "BCa",
                       seed: int = 0) -> Interval:
    """Bootstrap interval over seeds (percentile or BCa, via scipy), reported alongside."""
    x = np.asarray(values, dtype=float)
    estimate = float(statistic(x))
    if len(x) < 2 or np.all(x == x[0]):
        return Interval(estimate, estimate if len(x) > 1 else -math.inf, estimate if len(x) > 1 else math.inf,
                        confidence, f"bootstrap {method} (degenerate)")
    result = scipy_stats.bootstrap((x,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                                   method=method, random_state=np.random.default_rng(seed), vectorized=False)
    low, high = result.confidence_interval
    return Interval(estimate, float(low), float(high), confidence, f"bootstrap {method}")


def tost(differences: Sequence[float], margin: float, alpha: float = 0.05) -> tuple[bool, float, Interval]:
    """Two one-sided tests of |mean difference| < margin: (equivalent, p value, 1-2 alpha interval)."""
    x = np.asarray(differences, dtype=float)
    interval = t_interval(x, 1 - 2 * alpha)
    n = len(x)
    if n < 2:
        return False, 1.0, interval
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    if sem == 0:
        inside = -margin < float(x.mean()) < margin
        return inside, 0.0 if inside else 1.0, interval
    p_low = 1 - scipy_stats.t.cdf((x.mean() + margin) / sem, n - 1)
    p_high = scipy_stats.t.cdf((x.mean() - margin) / sem, n - 1)
    p = float(max(p_low, p_high))
    return p < alpha, p, interval


def seeds_to_decide(interval: Interval, boundary: float, seeds: int) -> int | None:
    """Seeds needed for the interval to clear `boundary`, if the spread stays as it is."""
    distance = abs(interval.estimate - boundary)
    if distance == 0 or not math.isfinite(interval.half_width) or interval.half_width == 0:
        return None
    return max(seeds + 1, math.ceil(seeds * (interval.half_width / distance) ** 2))


def decide(values: Sequence[float], relation: Relation, confidence: float = 0.95,
           log_scale: bool = False, baseline: Sequence[float] | None = None) -> Verdict:
    """Verdict for per-seed `values` (or ratios values/baseline when `log_scale`)."""
    n = len(values)
    if log_scale:
        if baseline is None:
            raise ValueError("a ratio needs baseline values")
        interval = log_ratio_interval(values, baseline, confidence)
        boundary = math.log(relation.value)
        log_interval = Interval(math.log(interval.estimate), math.log(interval.low) if interval.low > 0 else -math.inf,
                                math.log(interval.high) if math.isfinite(interval.high) else math.inf,
                                confidence, interval.method)
    else:
        interval = t_interval(values, confidence)
        boundary = relation.value
        log_interval = interval

    if relation.op == "within":
        equivalent, p, inner = tost(values, relation.value, alpha=(1 - confidence))
        if equivalent:
            return Verdict("supported", interval, f"TOST p = {p:.3g}: the {100 * (2 * confidence - 1):.0f}% "
                           f"interval [{inner.low:.4g}, {inner.high:.4g}] lies within ±{relation.value:g}")
        if interval.low > relation.value or interval.high < -relation.value:
            return Verdict("refuted", interval, f"the interval lies entirely outside ±{relation.value:g}")
        need = seeds_to_decide(inner, relation.value if inner.estimate >= 0 else -relation.value, n)
        return Verdict("inconclusive", interval, f"TOST p = {p:.3g}: the interval overlaps the margin ±{relation.value:g}",
                       need)

    claimed_above = relation.op == ">="
    if (log_interval.low >= boundary) if claimed_above else (log_interval.high <= boundary):
        return Verdict("supported", interval, f"the whole interval is {relation}")
    if (log_interval.high < boundary) if claimed_above else (log_interval.low > boundary):
        return Verdict("refuted", interval, f"the whole interval is on the other side of {relation.value:g}")
    return Verdict("inconclusive", interval, f"the interval straddles {relation.value:g}",
                   seeds_to_decide(log_interval, boundary, n))
