"""Statistics: the verdict rule is calibrated (false support <= 5%) and has power."""

from __future__ import annotations

import numpy as np
import pytest

from harness.stats import Evidence, Relation, bootstrap_interval, t_interval
from harness.stats import decide as decide_evidence


def decide(values, relation, log_scale=False, baseline=None, **kwargs):
    """The old call shape: per-seed values (or numerators over `baseline` for ratios), exact."""
    values = np.asarray(values, float)
    if log_scale:
        values = np.log(values) - np.log(np.asarray(baseline, float))
    return decide_evidence(Evidence.exact(values), relation, log_scale=log_scale, **kwargs)

DRAWS = 2000


def _support_rate(draw, relation: Relation, seeds: int, **kwargs) -> float:
    rng = np.random.default_rng(0)
    verdicts = [decide(*draw(rng, seeds), relation, **kwargs).verdict for _ in range(DRAWS)]
    return verdicts.count("supported") / DRAWS


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_false_support_at_the_boundary_is_at_most_5_percent(seeds: int) -> None:
    # truth exactly at the claimed bound: any "supported" is a false support
    def draw(rng, n):
        return (rng.normal(0.0, 0.01, n),)

    assert _support_rate(draw, Relation.parse(">= 0"), seeds) <= 0.05
    assert _support_rate(draw, Relation.parse("<= 0"), seeds) <= 0.05


@pytest.mark.parametrize("seeds", [3, 5])
def test_false_support_of_a_ratio_claim_is_at_most_5_percent(seeds: int) -> None:
    # true speed-up exactly 4x, multiplicative noise per seed
    def draw(rng, n):
        baseline = rng.lognormal(np.log(4.0), 0.2, n)
        return baseline, {"baseline": rng.lognormal(0.0, 0.2, n), "log_scale": True}

    rng = np.random.default_rng(1)
    supported = 0
    for _ in range(DRAWS):
        values, kwargs = draw(rng, seeds)
        supported += decide(values, Relation.parse(">= 4"), **kwargs).verdict == "supported"
    assert supported / DRAWS <= 0.05


@pytest.mark.parametrize("seeds", [3, 5])
def test_tost_false_equivalence_is_at_most_5_percent(seeds: int) -> None:
    # true gap exactly at the margin: "comparable" would be a false support
    def draw(rng, n):
        return (rng.normal(0.01, 0.005, n),)

    assert _support_rate(draw, Relation.parse("within 0.01"), seeds) <= 0.05


def test_clear_effects_are_decided() -> None:
    rng = np.random.default_rng(2)
    assert decide(rng.normal(0.05, 0.005, 3), Relation.parse(">= 0")).verdict == "supported"
    assert decide(rng.normal(-0.05, 0.005, 3), Relation.parse(">= 0")).verdict == "refuted"
    assert decide(rng.normal(0.0, 0.002, 5), Relation.parse("within 0.02")).verdict == "supported"
    assert decide(rng.normal(0.1, 0.002, 5), Relation.parse("within 0.02")).verdict == "refuted"
    ratio = decide([1.0, 1.1, 0.95], Relation.parse(">= 4"), log_scale=True, baseline=[1.0, 1.0, 1.0])
    assert ratio.verdict == "refuted" and ratio.interval.estimate == pytest.approx(1.014, abs=0.01)


def test_inconclusive_says_how_many_seeds_would_decide() -> None:
    verdict = decide([0.01, -0.005, 0.02], Relation.parse(">= 0"))
    assert verdict.verdict == "inconclusive"
    assert verdict.seeds_to_decide is not None and verdict.seeds_to_decide > 3


def test_bootstrap_undercovers_with_few_seeds_which_is_why_verdicts_use_t() -> None:
    rng = np.random.default_rng(3)
    samples = [rng.normal(0.0, 1.0, 3) for _ in range(300)]
    t_miss = np.mean([not (t.low <= 0 <= t.high) for t in map(t_interval, samples)])
    boot_miss = np.mean([not (b.low <= 0 <= b.high) for b in
                         (bootstrap_interval(s, method="percentile", n_resamples=500) for s in samples)])
    assert t_miss <= 0.08 and boot_miss > 0.15


def test_identical_seeds_give_an_exact_answer_only_for_exact_quantities() -> None:
    verdict = decide([2.0, 2.0, 2.0], Relation.parse(">= 4"), log_scale=True, baseline=[1.0, 1.0, 1.0])
    assert verdict.verdict == "refuted" and verdict.interval.low == verdict.interval.high == pytest.approx(2.0)
    assert decide([0.001, 0.001, 0.001], Relation.parse("within 0.01")).verdict == "supported"


@pytest.mark.parametrize("text", ["> 4", "== 1", "within -1", "about 3"])
def test_bad_relations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        Relation.parse(text)
