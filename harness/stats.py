"""Statistics over seeds, and the rule that turns them into a claim's verdict.

Seeds are the unit of replication: a method and its baseline run with the same seeds
(same initialisation stream, same data order), so comparisons are *paired* by seed.
A claim's quantity is a difference (accuracy gap, forgetting gap; decided on its own
scale) or a ratio (speed-up, memory ratio; decided on the log scale, where "4x" and
"1/4x" are symmetric and "within m" means |log ratio| < log(1 + m)).

Every rule below closes a way to be talked into "supported":

- One error budget. ALPHA = 5% is the most a claim that is false (true value at the
  claimed boundary) can be supported, directional and equivalence claims alike, all looks
  at the data together. A claim file cannot loosen it (`confidence` may only tighten it).
- Looks. Adding seeds after a verdict is a new look at the same question. Look k
  (k = 1, 2, ...) is decided at alpha_k = ALPHA / 2**k (2.5%, 1.25%, 0.625%, ...): a
  Bonferroni split over an open-ended number of looks, so the false-support rate over all
  looks is at most sum(alpha_k) = ALPHA whatever the correlation between looks and however
  many there are. Pocock or O'Brien-Fleming boundaries spend alpha more efficiently, but
  they need the number and the timing of the looks fixed before the first run, which a user
  who adds seeds when a verdict is inconclusive does not give. Look 1 keeps the 95%
  interval the engine always printed.
- One interval, printed as used. Each decision uses the two-sided (1 - 2 alpha_k) interval
  whose ends are one-sided bounds at alpha_k: a directional claim is supported when the
  whole interval is on the claimed side (refuted: wholly on the other side); an equivalence
  claim is supported when the interval lies inside (-m, m), which is TOST (Schuirmann 1987)
  at alpha_k, and refuted when it lies wholly outside.
- Per-seed values are intervals [low, high]. An exact value has low == high; a cost to a
  target that is known only to an evaluation step, or never reached within the budget, is
  the range the truth can be in ((spent, inf) when never reached). The interval's lower
  end is computed from the lows and its upper end from the highs, so a bound can widen the
  interval but never move it towards the claim: every (bound direction x relation) pair is
  handled by the same two lines.
- Resolution. A value that moves in steps (accuracy on N test images moves by 1/N) adds
  step**2 / 4 to the per-seed variance, so seeds that agree exactly still give an interval
  of honest width; an error shared by all seeds (the test set's own sampling error) adds
  its variance undivided by n. Only exact quantities (ledger bytes, FLOPs) can have an
  interval of zero width.
- At least MIN_SEEDS = 3 seeds: two seeds give a t quantile of 12.7 at 95% and a spread
  estimated from one difference.
- Seeds to decide: the smallest n at which a one-sided t test at the *next* look's alpha
  has POWER = 80% for the observed effect and spread (power from the noncentral t; n is
  iterated because the t quantile shrinks with n). None when no number of seeds can decide
  it (a bound from an unreached target, or a shared test-set error larger than the effect).

Student-t rather than bootstrap intervals: with the 3-10 seeds a benchmark can afford,
percentile and BCa bootstrap intervals are too narrow and support false claims more often
than their nominal level (tests/test_stats.py measures this); they are reported alongside.
The calibration of the whole rule is measured by `bench claims calibrate` (harness/calibrate.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

VERDICTS = ("supported", "refuted", "inconclusive", "not comparable", "not testable")


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


ALPHA = 0.05  # false support, all looks together
POWER = 0.80  # of the seeds-to-decide figure
MIN_SEEDS = 3
MAX_SEEDS_TO_DECIDE = 1000


def look_alpha(look: int, total: float = ALPHA) -> float:
    """The one-sided alpha of look `look` (1-based): total / 2**look, summing to `total`."""
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look}")
    return total / 2 ** look


@dataclass(frozen=True)
class Evidence:
    """Per-seed values on the decision scale (a difference, or a log ratio) with what limits them.

    `low[i] <= value[i] <= high[i]`; infinite ends are bounds (never reached) or the worst
    outcome (diverged). `step` is the per-seed value's resolution, `shared_sd` the sd of an
    error common to every seed (0 for both: an exact quantity).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    value: tuple[float, ...]
    step: float = 0.0
    shared_sd: float = 0.0

    @classmethod
    def exact(cls, values: Sequence[float], step: float = 0.0, shared_sd: float = 0.0) -> Evidence:
        v = tuple(float(x) for x in values)
        return cls(v, v, v, step, shared_sd)

    def __post_init__(self) -> None:
        if not len(self.low) == len(self.high) == len(self.value):
            raise ValueError("low, high and value need one entry per seed")
        for name in ("low", "high", "value"):
            if any(math.isnan(x) for x in getattr(self, name)):
                raise ValueError(f"a per-seed {name} is NaN: refuse it before deciding")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("a per-seed low end is above its high end")
        if not (math.isfinite(self.step) and self.step >= 0 and math.isfinite(self.shared_sd) and self.shared_sd >= 0):
            raise ValueError(f"step and shared_sd must be finite and >= 0, got {self.step}, {self.shared_sd}")

    @property
    def n(self) -> int:
        return len(self.value)

    @property
    def exact_values(self) -> bool:
        return self.step == 0 and self.shared_sd == 0 and self.low == self.high


def _mean(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    if np.isposinf(x).any() and np.isneginf(x).any():
        return math.nan
    return float(x.mean())


def one_sided_bound(values: Sequence[float], side: str, alpha: float, step: float = 0.0,
                    shared_sd: float = 0.0) -> float:
    """The one-sided (1 - alpha) t bound on the mean of `values` ("low" or "high" side).

    The per-seed variance is the sample variance plus step**2 / 4 (resolution); the
    shared error's variance is added undivided by n. An infinite value makes the mean
    that infinity; +inf and -inf together leave the mean unknown (an unbounded bound).
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    unbounded = -math.inf if side == "low" else math.inf
    if n < 2:
        return unbounded
    mean = _mean(x)
    if math.isnan(mean):
        return unbounded
    if not math.isfinite(mean):
        return mean
    se = math.sqrt((float(x.var(ddof=1)) + step ** 2 / 4) / n + shared_sd ** 2)
    half = float(scipy_stats.t.ppf(1 - alpha, n - 1)) * se
    return mean - half if side == "low" else mean + half


@dataclass(frozen=True)
class Verdict:
    verdict: str
    interval: Interval | None  # on the claim's scale (ratios exponentiated): the interval the decision used
    reason: str
    seeds_to_decide: int | None = None
    alpha: float | None = None  # the one-sided alpha of this look
    look: int = 1


def boundaries(relation: Relation, log_scale: bool) -> tuple[float, ...]:
    """The relation's boundary (or +-margin) on the decision scale; a ratio bound must be positive."""
    if not log_scale:
        return (-relation.value, relation.value) if relation.op == "within" else (relation.value,)
    if relation.op == "within":
        return (-math.log1p(relation.value), math.log1p(relation.value))
    if relation.value <= 0 or not math.isfinite(relation.value):
        raise ValueError(f"a ratio is positive, so the bound of `{relation}` must be a positive number "
                         f"(e.g. '>= 4' for four times, '<= 0.5' for half), got {relation.value:g}")
    return (math.log(relation.value),)


def seeds_to_decide(evidence: Evidence, relation: Relation, alpha: float, log_scale: bool = False,
                    power: float = POWER) -> int | None:
    """The smallest number of seeds at which a one-sided t test at `alpha` (the next look's)
    has `power` to decide the relation, if the effect and spread stay as observed.

    Power from the noncentral t with the per-seed variance (plus resolution) over n and
    the shared variance undivided; n iterated from the current count, since the t quantile
    shrinks with n. None when seeds cannot decide it: a bound or a divergence made an end
    infinite, the estimate sits on the boundary, or the shared error alone is too large.
    """
    values = np.asarray(evidence.value, dtype=float)
    ends = np.asarray(evidence.low + evidence.high, dtype=float)
    if not np.isfinite(ends).all() or not np.isfinite(values).all():
        return None
    estimate = float(values.mean())
    distance = min(abs(estimate - b) for b in boundaries(relation, log_scale))
    if distance == 0:
        return None
    variance = max(float(np.var(evidence.low, ddof=1)), float(np.var(evidence.high, ddof=1)),
                   float(values.var(ddof=1))) + evidence.step ** 2 / 4

    def powered(n: int) -> bool:
        se = math.sqrt(variance / n + evidence.shared_sd ** 2)
        if se == 0:
            return True
        critical = float(scipy_stats.t.ppf(1 - alpha, n - 1))
        return float(scipy_stats.nct.sf(critical, n - 1, distance / se)) >= power

    # power grows with n (the t quantile shrinks, the standard error too): the smallest n by bisection
    low, high = evidence.n, MAX_SEEDS_TO_DECIDE
    if not powered(high):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if powered(middle) else (middle, high)
    return high


def decide(evidence: Evidence, relation: Relation, look: int = 1, log_scale: bool = False,
           total_alpha: float = ALPHA, plan_seeds: bool = True) -> Verdict:
    """The verdict of look `look` on per-seed `evidence` (log ratios when `log_scale`)."""
    if evidence.n < MIN_SEEDS:
        raise ValueError(f"{evidence.n} seeds: a verdict needs at least {MIN_SEEDS} (set `seeds: {MIN_SEEDS}` or more)")
    alpha = look_alpha(look, total_alpha)
    bounds = boundaries(relation, log_scale)
    low = one_sided_bound(evidence.low, "low", alpha, evidence.step, evidence.shared_sd)
    high = one_sided_bound(evidence.high, "high", alpha, evidence.step, evidence.shared_sd)
    estimate = _mean(evidence.value)
    level = 1 - 2 * alpha
    method = ("t on log ratio" if log_scale else "t") + ("" if evidence.exact_values else ", with resolution")
    if log_scale:
        interval = Interval(math.exp(estimate) if not math.isnan(estimate) else math.nan, math.exp(low),
                            math.exp(high), level, method)
    else:
        interval = Interval(estimate, low, high, level, method)
    shown = f"the {100 * level:.4g}% interval [{interval.low:.4g}, {interval.high:.4g}]"
    at = f" (look {look}: one-sided alpha {alpha:.4g} of the {100 * total_alpha:g}% budget)"

    def verdict(name: str, why: str, need: bool = False) -> Verdict:
        needed = (seeds_to_decide(evidence, relation, look_alpha(look + 1, total_alpha), log_scale)
                  if need and plan_seeds else None)
        return Verdict(name, interval, why + at, needed, alpha, look)

    if relation.op == "within":
        lower, upper = bounds
        margin = f"±{relation.value:g}" + (" (ratio within a factor " f"{1 + relation.value:g})" if log_scale else "")
        if lower < low and high < upper:
            return verdict("supported", f"{shown} lies within {margin} (TOST)")
        if low >= upper or high <= lower:
            return verdict("refuted", f"{shown} lies entirely outside {margin}")
        return verdict("inconclusive", f"{shown} overlaps the margin {margin}", need=True)
    (boundary,) = bounds
    if (low >= boundary) if relation.op == ">=" else (high <= boundary):
        return verdict("supported", f"{shown} is wholly {relation}")
    if (high < boundary) if relation.op == ">=" else (low > boundary):
        return verdict("refuted", f"{shown} is wholly on the other side of {relation.value:g}")
    return verdict("inconclusive", f"{shown} straddles {relation.value:g}", need=True)
