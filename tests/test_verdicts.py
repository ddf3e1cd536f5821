"""Verdicts nothing can talk into "supported": one regression test per defect of issue 17."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

from harness import claims as claims_mod
from harness.calibrate import rate, scenarios
from harness.claims import TUNING_SEED, ClaimCells, _looks, _verdict, load_claim, staleness, verify, write_verdict
from harness.cli import main
from harness.config import ConfigError
from harness.quantities import QUANTITIES, accuracy_resolution, per_seed
from harness.record import SupervisedFinal, parse_record
from harness.stats import ALPHA, Evidence, Relation, decide, look_alpha, one_sided_bound, seeds_to_decide
from harness.store import Store

TINY = {"suite": "vision-vit", "task": "mlp", "seeds": 3, "budget": {"steps": 40},
        "overrides": {"profile": "quick", "threads": 1}, "source": "test", "statement": "test",
        "method": {"name": "backprop", "config": {"optimizer": "adamw", "lr": 0.003}},
        "baseline": {"name": "backprop", "config": {"optimizer": "sgd", "lr": 0.0001, "momentum": 0.0},
                     "tune_lr": [0.0001, 0.01]},
        "quantity": "accuracy_gap", "relation": ">= 0.05"}


def _claim(directory: Path, **fields) -> Path:
    body = {**TINY, **fields}
    path = directory / f"{body['id']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """One small claim verified for real: its document, store, claim file and records."""
    root = tmp_path_factory.mktemp("tiny")
    path = _claim(root, id="tiny")
    store = Store(root / "results")
    document = verify(load_claim(path), ClaimCells(store, [("threads", 1)]), path)
    write_verdict(store, document)
    records = {c["role"] + str(c["seed"]): parse_record(store.load(c["suite"], c["run_id"]))
               for c in document["provenance"]["cells"]}
    return {"document": document, "store": store, "path": path, "records": records}


def _with_curve(record, points: list[tuple[float, float]], spent: float, status: str = "completed"):
    """A copy of a real record whose curve is [(examples, val metric)] and which spent `spent` examples."""
    curve = [{**record.curve[0], "examples": x, "seconds": x / 1000, "val_metric": v} for x, v in points]
    counters = dataclasses.replace(record.counters, examples=int(spent), seconds=spent / 1000)
    if status == "diverged":
        return dataclasses.replace(record, curve=curve, counters=counters, status="diverged", final=None,
                                   error="non-finite training loss")
    return dataclasses.replace(record, curve=curve, counters=counters)


# ------------------------------------------------------------------------ 1. provenance


@pytest.mark.parametrize("key, value", [("method", "evolution"), ("seeds", 2), ("budget.steps", 5),
                                        ("method.backprop.lr", 1.0), ("profile", "quick"), ("tasks.mlp.task", "x")])
def test_command_line_cannot_change_what_is_compared(key: str, value, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{key} cannot be overridden"):
        ClaimCells(Store(tmp_path), [(key, value)])
    code = main(["claims", "verify", "sanity-adamw-beats-slow-sgd", f"{key}={value}", f"results_dir={tmp_path}"])
    assert code == 2 and not list(tmp_path.rglob("record.json"))


@pytest.mark.parametrize("overrides", [{"method": "evolution"}, {"seeds": 1}, {"budget.steps": 5},
                                       {"method.backprop.lr": 0.1}])
def test_claim_file_overrides_cannot_change_what_is_compared(overrides: dict, tmp_path: Path) -> None:
    path = _claim(tmp_path, id="sneaky", overrides=overrides)
    with pytest.raises(ConfigError, match=f"{next(iter(overrides))} cannot be overridden"):
        load_claim(path)


def test_safe_overrides_are_accepted(tmp_path: Path) -> None:
    ClaimCells(Store(tmp_path), [("threads", 1), ("device", "cpu"), ("launcher.workers", 1), ("meter.probe_steps", 1),
                                 ("results_dir", str(tmp_path)), ("data_dir", str(tmp_path))])


def test_planned_cells_are_checked_against_the_claim(tmp_path: Path, monkeypatch) -> None:
    real_plan = claims_mod.plan

    def swapped(run):  # a planner that quietly trains another method
        return [dataclasses.replace(c, method=dataclasses.replace(c.method, name="evolution")) for c in real_plan(run)]

    monkeypatch.setattr(claims_mod, "plan", swapped)
    path = _claim(tmp_path, id="swap")
    with pytest.raises(ConfigError, match="not the claim's.*method evolution"):
        verify(load_claim(path), ClaimCells(Store(tmp_path / "r"), []), path)
    assert not list(tmp_path.rglob("record.json"))


def test_verdict_holds_its_provenance(tiny: dict) -> None:
    document, path = tiny["document"], tiny["path"]
    provenance = document["provenance"]
    assert provenance["claim_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["seeds"] == [0, 1, 2] and provenance["budget"] == {"steps": 40}
    # equal tuning: the method's lr is the one its own trials chose (around its configured 0.003)
    chosen = max((t for t in document["tuning"]["method"] if t["score"] is not None), key=lambda t: t["score"])
    assert provenance["method"]["config"]["optimizer"] == "adamw" and provenance["method"]["config"]["lr"] == chosen["lr"]
    assert len(document["tuning"]["method"]) == len(document["tuning"]["baseline"])
    assert provenance["baseline"]["config"]["optimizer"] == "sgd"
    assert provenance["overrides"]["command_line"] == {"threads": 1}
    assert "harness_commit" in provenance and provenance["profile"] == "quick"
    roles = {(c["role"], c["seed"]) for c in provenance["cells"]}
    assert {("method", s) for s in range(3)} | {("baseline", s) for s in range(3)} <= roles
    assert all(len(c["run_id"]) == 16 and c["record_sha256"] for c in provenance["cells"])
    json.dumps(document, allow_nan=False)


def test_stale_when_the_claim_file_or_a_record_changes(tiny: dict, tmp_path: Path) -> None:
    store, document = tiny["store"], tiny["document"]
    copy = tmp_path / "tiny.yaml"
    copy.write_bytes(tiny["path"].read_bytes())
    assert staleness(document, copy, store) is None
    copy.write_text(copy.read_text().replace(">= 0.05", ">= 0.01"))
    assert "claim file changed" in staleness(document, copy, store)
    copy.write_bytes(tiny["path"].read_bytes())
    cell = next(c for c in document["provenance"]["cells"] if c["role"] == "method")
    record_path = store.record_path(cell["suite"], cell["run_id"])
    original = record_path.read_text()
    try:
        data = json.loads(original)
        data["final"]["test"][data["final"]["metric"]] = 0.123
        record_path.write_text(json.dumps(data))
        assert "changed" in staleness(document, copy, store)
    finally:
        record_path.write_text(original)
    assert "provenance" in staleness({"verdict": "supported"}, copy, store)


def test_claims_list_marks_stale_verdicts(tiny: dict, tmp_path: Path, capsys) -> None:
    claims_dir = tmp_path / "claims"
    claims_dir.mkdir()
    (claims_dir / "tiny.yaml").write_text(tiny["path"].read_text().replace(">= 0.05", ">= 0.02"))
    main(["claims", "list", f"results_dir={tiny['store'].root}", "--claims-dir", str(claims_dir)])
    assert "stale" in capsys.readouterr().out


# ------------------------------------------------------------------------ 2. one error budget


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.949])
def test_confidence_cannot_loosen_the_error_budget(confidence: float, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loosen"):
        load_claim(_claim(tmp_path, id="loose", confidence=confidence))


def test_confidence_may_tighten_it(tmp_path: Path) -> None:
    assert load_claim(_claim(tmp_path, id="tight", confidence=0.99)).alpha == pytest.approx(0.01)
    assert load_claim(_claim(tmp_path, id="plain")).alpha == ALPHA


def test_two_seeds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 3 seeds"):
        load_claim(_claim(tmp_path, id="two", seeds=2))
    with pytest.raises(ValueError, match="at least 3"):
        decide(Evidence.exact([0.1, 0.2]), Relation.parse(">= 0"))


def test_directional_and_equivalence_decisions_use_the_same_printed_interval() -> None:
    evidence = Evidence.exact([0.004, 0.006, 0.005, 0.0055])
    directional = decide(evidence, Relation.parse(">= 0"))
    equivalence = decide(evidence, Relation.parse("within 0.01"))
    assert directional.interval == equivalence.interval
    assert directional.interval.confidence == pytest.approx(1 - 2 * look_alpha(1))
    low, high = equivalence.interval.low, equivalence.interval.high
    assert equivalence.verdict == ("supported" if -0.01 < low and high < 0.01 else "inconclusive")
    # an interval just inside the margin is supported; its mirror just outside is not
    assert decide(Evidence.exact([0.0, 0.0005, -0.0005]), Relation.parse("within 0.01")).verdict == "supported"
    assert decide(Evidence.exact([0.0125, 0.013, 0.0135]), Relation.parse("within 0.01")).verdict == "refuted"


def test_looks_spend_alpha_and_are_recorded() -> None:
    assert sum(look_alpha(k) for k in range(1, 60)) == pytest.approx(ALPHA)
    claim = load_claim(claims_mod.CLAIMS_DIR / "sanity-adamw-beats-slow-sgd.yaml")
    look, history = _looks(claim, None, 3)
    assert look == 1
    look, history = _looks(claim, {"looks": history}, 3)
    assert look == 1  # verifying the same seeds again is the same look
    look, history = _looks(claim, {"looks": history}, 5)
    assert look == 2 and list(history.values()) == [[3, 5]]
    look, _ = _looks(claim, {"looks": history}, 3)
    assert look == 2  # going back to fewer seeds is never looser
    evidence = Evidence.exact([0.011, 0.012, 0.014, 0.009, 0.013])
    first, second = decide(evidence, Relation.parse(">= 0"), look=1), decide(evidence, Relation.parse(">= 0"), look=2)
    assert second.interval.low < first.interval.low and second.alpha == first.alpha / 2


def test_seeds_to_decide_comes_from_the_t_distribution_at_80_percent_power() -> None:
    evidence = Evidence.exact([0.004, 0.016, 0.010])
    alpha = look_alpha(2)
    need = seeds_to_decide(evidence, Relation.parse(">= 0"), alpha)
    sd, d = float(np.std(evidence.value, ddof=1)), float(np.mean(evidence.value))

    def power(n: int) -> float:
        return float(scipy_stats.nct.sf(scipy_stats.t.ppf(1 - alpha, n - 1), n - 1, d / (sd / math.sqrt(n))))

    assert need is not None and power(need) >= 0.8 > power(need - 1)
    normal = math.ceil(((scipy_stats.norm.ppf(1 - alpha) + scipy_stats.norm.ppf(0.8)) * sd / d) ** 2)
    assert need > normal  # the t quantile at small n needs more seeds than the normal formula says
    smaller = Evidence.exact([0.002, 0.014, 0.008])  # same spread, smaller effect
    assert seeds_to_decide(smaller, Relation.parse(">= 0"), alpha) > need
    verdict = decide(Evidence.exact([0.01, -0.005, 0.02]), Relation.parse(">= 0"))
    assert verdict.verdict == "inconclusive" and verdict.seeds_to_decide > 3


# ------------------------------------------------------------------------ 3. discrete metrics


def test_identical_accuracy_gaps_on_a_small_test_set_are_not_a_zero_width_support() -> None:
    n = 300  # three seeds, each one test image better: a zero-width t interval would call it supported
    gaps = [1 / n] * 3
    assert decide(Evidence.exact(gaps), Relation.parse(">= 0")).verdict == "supported"  # exact: only for bytes
    step, shared = accuracy_resolution(0.9 + 1 / n, 0.9, n)
    verdict = decide(Evidence.exact(gaps, step, shared), Relation.parse(">= 0"))
    assert verdict.verdict == "inconclusive" and verdict.interval.high - verdict.interval.low > 2 * shared


def test_accuracy_verdicts_carry_step_and_test_set_error(tiny: dict) -> None:
    document = tiny["document"]
    assert "test examples" in document["reason"] and "resolution" in document["interval_method"]
    assert document["interval"][1] - document["interval"][0] > 0


# ------------------------------------------------------------------------ 4. bounds, ratios, divergence


def _cost_rows(tiny: dict, method_points, baseline_points, spent=(5000, 5000), quantity="samples_ratio",
               target=0.5, method_status="completed"):
    m0, b0 = tiny["records"]["method0"], tiny["records"]["baseline0"]
    method = {s: _with_curve(m0, method_points, spent[0], method_status) for s in range(3)}
    baseline = {s: _with_curve(b0, baseline_points, spent[1]) for s in range(3)}
    return per_seed(QUANTITIES[quantity], method, baseline, target)


def _decide(rows, quantity: str, relation: str) -> dict:
    return _verdict(rows, QUANTITIES[quantity], Relation.parse(relation), 1, ALPHA)


BASELINE_SHORT = ([(1000, 0.1), (2000, 0.6)], [(1000, 0.1), (2000, 0.2)])  # ratio in [1.25, inf): a lower bound
METHOD_SHORT = ([(1000, 0.1), (2000, 0.2)], [(1000, 0.1), (2000, 0.6)])  # ratio in [0, 0.8]: an upper bound


@pytest.mark.parametrize("who, relation, allowed", [
    ("baseline", "<= 4", {"inconclusive"}),   # a lower bound cannot support an upper limit (the reported bug)
    ("baseline", ">= 1", {"supported"}),      # ... but it can support a lower one
    ("baseline", ">= 4", {"inconclusive"}),   # ... and cannot refute it
    ("baseline", "<= 1", {"refuted"}),        # ... and can refute an upper limit below it
    ("method", ">= 0.3", {"inconclusive"}),   # an upper bound cannot support a lower limit
    ("method", "<= 1", {"supported"}),
    ("method", "<= 0.2", {"inconclusive"}),
    ("method", ">= 1", {"refuted"}),
    ("baseline", "within 0.5", {"inconclusive"}),
])
def test_every_bound_direction_and_relation(tiny: dict, who: str, relation: str, allowed: set) -> None:
    method_points, baseline_points = BASELINE_SHORT if who == "baseline" else METHOD_SHORT
    rows = _cost_rows(tiny, method_points, baseline_points, spent=(2500, 2500))
    assert all(r[f"{who}_reached"] is False for r in rows)
    document = _decide(rows, "samples_ratio", relation)
    assert document["verdict"] in allowed, document["reason"]
    assert "never reached" in document["reason"]


def test_ratio_orientation_is_baseline_over_method(tiny: dict) -> None:
    rows = _cost_rows(tiny, [(1000, 0.6)], [(1000, 0.1), (2000, 0.1), (3000, 0.1), (4000, 0.6)])
    assert rows[0]["value"] == pytest.approx(4.0) and rows[0]["low"] == pytest.approx(3.0)
    assert rows[0]["high"] == math.inf  # reached at its first evaluation: the method's cost could be ~0
    assert _decide(rows, "samples_ratio", ">= 2.5")["verdict"] == "supported"
    assert _decide(rows, "samples_ratio", "<= 2")["verdict"] == "refuted"


def test_ratio_equivalence_is_on_the_log_scale(tiny: dict) -> None:
    verdicts = set()
    for scale in (1.0, 1000.0):  # the same ratio 1.0 at any absolute cost
        rows = [{"seed": s, "method": scale * c, "baseline": scale * c, "value": 1.0, "low": 1.0, "high": 1.0}
                for s, c in enumerate((2.0, 3.0, 5.0))]
        verdicts.add(_decide(rows, "speedup", "within 0.1")["verdict"])
    assert verdicts == {"supported"}
    rows = [{"seed": s, "method": 1.0, "baseline": r, "value": r, "low": r, "high": r}
            for s, r in enumerate((1.2, 1.25, 1.22))]
    assert _decide(rows, "speedup", "within 0.1")["verdict"] == "refuted"


def test_a_diverging_method_is_refutable_and_named(tiny: dict) -> None:
    rows = _cost_rows(tiny, [(1000, 0.1)], [(1000, 0.6)], method_status="diverged")
    document = _decide(rows, "samples_ratio", ">= 1")
    assert document["verdict"] == "refuted" and "diverged in 3 of 3 seeds" in document["reason"]
    m, b = tiny["records"]["method0"], tiny["records"]["baseline0"]
    diverged = dataclasses.replace(m, status="diverged", final=None, error="nan loss")
    rows = per_seed(QUANTITIES["accuracy_gap"], {s: diverged for s in range(3)}, {s: b for s in range(3)}, None)
    assert all(r["method"] == 0.0 and r["method_diverged"] for r in rows)
    document = _decide(rows, "accuracy_gap", ">= 0")
    assert document["verdict"] == "refuted" and "diverged in 3 of 3" in document["reason"]
    json.dumps(document, allow_nan=False)


def test_one_diverged_seed_is_counted_not_dropped(tiny: dict) -> None:
    m, b = tiny["records"]["method0"], tiny["records"]["baseline0"]
    diverged = dataclasses.replace(m, status="diverged", final=None, error="nan loss")
    rows = per_seed(QUANTITIES["accuracy_gap"], {0: m, 1: m, 2: diverged}, {s: b for s in range(3)}, None)
    assert len(rows) == 3 and rows[2]["value"] < 0
    assert "diverged in 1 of 3" in _decide(rows, "accuracy_gap", ">= 0")["reason"]


@pytest.mark.parametrize("bad", [math.nan, None])
def test_non_finite_values_are_refused_with_a_reason(bad) -> None:
    rows = [{"seed": s, "method": 1.0, "baseline": 0.5, "value": v} for s, v in enumerate((0.5, bad, 0.4))]
    document = _decide(rows, "accuracy_gap", ">= 0")
    assert document["verdict"] == "not comparable" and "seed 1" in document["reason"]


@pytest.mark.parametrize("relation", [">= 0", "<= -1", ">= -2"])
def test_a_ratio_bound_that_is_not_positive_is_refused_clearly(relation: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a positive number"):
        load_claim(_claim(tmp_path, id="zero", quantity="memory_ratio_ledger", relation=relation))
    with pytest.raises(ValueError, match="must be a positive number"):
        decide(Evidence.exact([0.1, 0.2, 0.3]), Relation.parse(relation), log_scale=True)


def test_accuracy_gap_is_oriented_by_higher_is_better(tiny: dict) -> None:
    m, b = tiny["records"]["method0"], tiny["records"]["baseline0"]

    def bpb(record, value: float):
        final = SupervisedFinal(metric="bpb", best_step=1, val={"bpb": value}, test={"bpb": value},
                                higher_is_better=False)
        return dataclasses.replace(record, final=final)

    rows = per_seed(QUANTITIES["accuracy_gap"], {s: bpb(m, 3.0 + s / 100) for s in range(3)},
                    {s: bpb(b, 2.0) for s in range(3)}, None)  # the method is a full bit per byte worse
    assert all(r["value"] < -0.9 for r in rows)
    assert _decide(rows, "accuracy_gap", ">= 0")["verdict"] == "refuted"


def test_baseline_is_tuned_on_a_seed_the_comparison_does_not_use(tiny: dict) -> None:
    document = tiny["document"]
    assert {s["seed"] for s in document["baseline_sweep"]} == {TUNING_SEED}
    assert TUNING_SEED not in document["provenance"]["seeds"]
    tuning = [c for c in document["provenance"]["cells"] if c["role"] == "tuning"]
    assert len(tuning) == 4 and {c["seed"] for c in tuning} == {TUNING_SEED}  # 2 trials a side (equal tuning)


# ------------------------------------------------------------------------ 5. calibration


def test_false_support_is_at_most_5_percent_in_every_scenario() -> None:
    chosen = [s for s in scenarios() if s[1] in (3, 10)]
    for i, (name, seeds, relation, log_scale, draw) in enumerate(chosen):
        row = rate(400, 7 + i, draw, seeds, relation, log_scale)
        assert row.rate <= 0.05, f"{name}, {seeds} seeds: {row.rate:.1%} false support"
    for i, (name, seeds, relation, log_scale, draw) in enumerate(s for s in chosen if s[1] == 3):
        row = rate(400, 99 + i, draw, 6, relation, log_scale, looks=2)
        assert row.rate <= 0.05, f"{name}, two looks: {row.rate:.1%} false support"


def test_resolution_alone_widens_seeds_that_agree_exactly() -> None:
    """Three seeds with the same accuracy gap on 359 test images: the 1/359 step still leaves doubt."""
    low = one_sided_bound([0.01, 0.01, 0.01], "low", 0.025, step=1 / 359)
    high = one_sided_bound([0.01, 0.01, 0.01], "high", 0.025, step=1 / 359)
    assert low < 0.01 < high
    assert one_sided_bound([0.01, 0.01, 0.01], "low", 0.025) == pytest.approx(0.01)  # no step: exact


def test_two_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        decide(Evidence.exact([0.1, 0.2]), Relation.parse(">= 0"))


def test_a_continual_average_accuracy_gap_gets_the_resolution_of_its_test_images(tiny: dict) -> None:
    """A continual record's headline (average accuracy over experiences splitting the test set) moves in
    steps of its test images like an accuracy: three seeds agreeing exactly must not give a zero-width support."""
    from harness.quantities import resolution

    records = [dataclasses.replace(r, final=dataclasses.replace(r.final, metric="average_accuracy",
                                                               val={"average_accuracy": 0.5}, test={"average_accuracy": 0.5}))
               for r in tiny["records"].values() if r.completed][:2]
    step, shared, _ = resolution(QUANTITIES["accuracy_gap"], records[:1], records[1:])
    assert step > 0 and shared > 0


def _continual(record, matrix: list[list[float]], permuted: bool = False):
    """A copy of a real record as a 3-experience continual record with the given accuracy matrix, 100 test images each."""
    from harness.record import Continual, ContinualFinal

    t = len(matrix)
    continual = Continual(scenario="class", regime="sequential", experiences=t, budget_per_experience={"examples": 1},
                          phase_end_steps=list(range(1, t + 1)), matrix=matrix, val_matrix=matrix,
                          random_init=[0.1] * t, val_random_init=[0.1] * t, selection="last", forgetting=0.0,
                          average_accuracy=0.0, bwt=0.0, fwt=0.0)
    info = {**(record.task_info or {}), "n_test": 100 * t,
            "experiences": [{"n_test": 100, "permuted": permuted} for _ in range(t)]}
    scores = {"average_accuracy": 0.0, "forgetting": 0.0, "bwt": 0.0, "fwt": 0.0, "accuracy": 0.0}
    final = ContinualFinal(metric="average_accuracy", best_step=record.final.best_step, val=scores, test=scores)
    return dataclasses.replace(record, continual=continual, task_info=info, final=final)


def test_a_forgetting_gap_gets_the_test_set_error_of_its_experiences(tiny: dict) -> None:
    """Forgetting is read on each experience's few test images: a difference of one or two images must
    carry their sampling error. Both sides forgetting everything leaves almost none (the four
    accuracies pin each image down); sides that forget partly leave some, more when the experiences
    share their images (permuted) than when they split them."""
    from harness.quantities import forgetting_resolution, resolution

    record = next(r for r in tiny["records"].values() if r.completed)
    everything = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    almost = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.01, 0.0, 1.0]]
    step, shared, note = resolution(QUANTITIES["forgetting_gap"], [_continual(record, everything)] * 3,
                                    [_continual(record, almost)] * 3)
    assert step > 0 and 0 < shared < 0.01 and "sampling sd" in note
    partly = [[0.9, 0.0, 0.0], [0.6, 0.9, 0.0], [0.5, 0.6, 0.9]]
    split, _ = forgetting_resolution([_continual(record, partly)], [_continual(record, everything)])
    same_images, _ = forgetting_resolution([_continual(record, partly, permuted=True)],
                                           [_continual(record, everything, permuted=True)])
    assert 0.02 < split < same_images < 0.2
    without = dataclasses.replace(_continual(record, partly), task_info=record.task_info)
    assert forgetting_resolution([without], [_continual(record, everything)]) is None


def _shifted(record, clean: float, mean_shifted: float, n_test: int = 300):
    """A copy of a real record scored `clean` on its n_test test images and `mean_shifted` under shift."""
    from harness.record import Shift

    shift = Shift(gap=clean - mean_shifted, reason=None, clean=clean, shifted={"noise_0.5": mean_shifted},
                  mean_shifted=mean_shifted)
    config = {k: v for k, v in record.config.items() if k != "shift"}  # shifts scored on the whole test set
    return dataclasses.replace(record, final=dataclasses.replace(record.final, shift=shift), config=config,
                               task_info={**(record.task_info or {}), "n_test": n_test})


def test_a_retention_gap_carries_the_sampling_error_of_its_test_images(tiny: dict) -> None:
    """Three seeds whose retention ratios differ by the same two images on a 300-image test set
    are not a zero-width support of "more robust": the shared test set's error enters."""
    from harness.quantities import resolution

    record = next(r for r in tiny["records"].values() if r.completed)
    method = [_shifted(record, 0.80, 0.60 + 2 / 300)] * 3
    baseline = [_shifted(record, 0.80, 0.60)] * 3
    gaps = [(0.60 + 2 / 300) / 0.8 - 0.60 / 0.8] * 3
    assert decide(Evidence.exact(gaps), Relation.parse(">= 0")).verdict == "supported"  # what exact values say
    step, shared, note = resolution(QUANTITIES["shift_retention_gap"], method, baseline)
    assert step == pytest.approx(1 / (300 * 0.8)) and shared > 0 and "300 test images" in note
    assert decide(Evidence.exact(gaps, step, shared), Relation.parse(">= 0")).verdict == "inconclusive"
    # the same on a shift subset of 100 images: a coarser step, a wider error
    subset = [dataclasses.replace(r, config={**r.config, "shift": {"test_subset": 100}}) for r in (*method, *baseline)]
    step_100, shared_100, _ = resolution(QUANTITIES["shift_retention_gap"], subset[:3], subset[3:])
    assert step_100 == pytest.approx(3 * step) and shared_100 > shared


def test_a_verdict_says_what_its_cells_took(tiny: dict) -> None:
    """Every cell read for the verdict (tuning trials, every budget of the robustness check) is
    counted once, with the sum of the recorded wall times: what verifying it costs, measured."""
    cost = tiny["document"]["cost"]
    main = {c["run_id"] for c in tiny["document"]["provenance"]["cells"]}
    assert cost["cells"] > len(main) >= 6 and cost["cells_without_timing"] == 0
    seconds = sum(r.timing.cell_seconds for r in tiny["records"].values())
    assert cost["cell_seconds"] >= seconds > 0 and cost["cells_timed_by_training"] == 0


def test_a_record_older_than_the_phase_accounting_is_timed_by_its_training_and_evaluation() -> None:
    from types import SimpleNamespace

    from harness.claims import cell_time, cost

    def record(cell_seconds):
        return SimpleNamespace(timing=SimpleNamespace(cell_seconds=cell_seconds, train_seconds=2.5, eval_seconds=0.5))

    assert cell_time(record(4.0)) == (4.0, True)
    assert cell_time(record(None)) == (3.0, False)
    assert cell_time(SimpleNamespace(timing=None)) == (None, False) == cell_time(None)
    assert cost({"a": (4.0, True), "b": (3.0, False), "c": (None, False)}) == {
        "cells": 3, "cell_seconds": 7.0, "cells_without_timing": 1, "cells_timed_by_training": 1}
