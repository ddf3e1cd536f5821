"""What a claim measures, read off the records of a method and its baseline, seed by seed.

Each quantity reads one figure per record and says whether the comparison is a
difference (method - baseline, e.g. an accuracy gap) or a ratio (baseline / method,
oriented so that "4x faster" and "10x less memory" read as 4 and 10).

A figure is a `Reading`: the value and the range [low, high] the truth can be in.
- Exact figures (ledger bytes, FLOPs over the budget) have low == value == high.
- A cost to a target is known to one evaluation step: the truth is in (the previous
  evaluation, the one that first met the target]. A run that never met the target within
  its budget has a cost in (spent, inf): a lower bound.
- A diverged run is counted as the worst outcome for its side: a cost of inf, accuracy 0
  (an unbounded metric such as bits per byte: the worst is inf), forgetting 1; its memory
  is what it measured before diverging.
The verdict (harness/stats.py) computes the lower end of its interval from the lows and the
upper end from the highs, so a bound never moves a verdict towards the claim.

`accuracy_gap` is oriented by the task's `higher_is_better`: it is how much better the
method scores, in the metric's units (for bits per byte, baseline minus method).

A quantity whose number a record does not carry (energy on a CPU, forgetting of a
non-continual task, a null score) yields `Missing` with the reason; the claim is then
"not comparable", never computed from a stand-in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.record import ContinualFinal, Record, SupervisedFinal


class Missing(Exception):
    """The record lacks what the quantity needs; the message says what and why."""


@dataclass(frozen=True)
class Reading:
    """One record's figure: `value`, within [low, high] (bounds, evaluation steps)."""

    value: float
    low: float
    high: float
    reached: bool | None = None  # costs to a target: met it within the budget
    diverged: bool = False

    @classmethod
    def exact(cls, value: float, reached: bool | None = None) -> Reading:
        return cls(value, value, value, reached)


@dataclass(frozen=True)
class Quantity:
    name: str
    kind: str  # "difference" (method - baseline), "ratio" (baseline / method), "value" (method alone)
    read: Callable[[Record, float | None], Reading]
    description: str
    needs_target: bool = False
    to_target: bool = False  # reads the cost to reach `target` when one is given
    unavailable: str | None = None  # why no record can carry it yet (checked before any run)
    worst: Callable[[Record, Record | None], Reading] | None = None  # a diverged run; None: read it as usual
    oriented: bool = False  # a difference of the task's metric: sign by its higher_is_better
    # (step, shared sd, note) of the per-seed value from the records of both sides: what a finite
    # test set (or count) adds to the seeds' spread (see `resolution`); None: values are exact
    resolution: Callable[[Sequence[Record], Sequence[Record]], tuple[float, float, str]] | None = None


def _finite(value: float | None, what: str, record: Record) -> float:
    if value is None:
        raise Missing(f"{record.method} seed {record.seed}: the record's {what} is null")
    value = float(value)
    if not math.isfinite(value):
        raise Missing(f"{record.method} seed {record.seed}: the record's {what} is {value}, not a finite number")
    return value


# --------------------------------------------------------------------------- scores


def _score(record: Record, target: float | None) -> Reading:
    """The test metric of the validation-selected state (per_seed orients the difference)."""
    return Reading.exact(_finite(record.final_metric("test"), "test metric", record))


def _worst_score(record: Record, partner: Record | None) -> Reading:
    """A diverged run's test metric: 0 for an accuracy (the worst there is), else the unbounded
    worst (inf for a lower-is-better metric such as bits per byte)."""
    if partner is None or partner.final is None:
        raise Missing(f"{record.method} seed {record.seed} diverged and its partner has no metric to orient it")
    if partner.final.metric == "accuracy" and partner.higher_is_better:
        value = 0.0
    else:
        value = -math.inf if partner.higher_is_better else math.inf
    return Reading(value, value, value, diverged=True)


def _forgetting(record: Record, target: float | None) -> Reading:
    if record.continual is None:
        raise Missing(f"the record of task {record.task} has no accuracy matrix: forgetting needs a "
                      "continual task (suite continual)")
    if record.continual.forgetting is None:
        raise Missing("the continual record has no forgetting (it did not train through every experience)")
    return Reading.exact(_finite(record.continual.forgetting, "forgetting", record))


def _shift_gap(record: Record, target: float | None) -> Reading:
    shift = record.final.shift if isinstance(record.final, (SupervisedFinal, ContinualFinal)) else None
    if shift is None or shift.gap is None:
        why = (shift.reason if shift else None) or "the suite ran without shift evaluation: set shift.enabled=true"
        raise Missing(f"the record has no shift gap ({why})")
    return Reading.exact(_finite(shift.gap, "shift gap", record))


def _shift_retention(record: Record, target: float | None) -> Reading:
    """Mean shifted test accuracy / clean test accuracy: robustness that a method cannot gain by
    being worse on clean data (a shift gap shrinks as clean accuracy falls; this ratio does not)."""
    shift = record.final.shift if isinstance(record.final, (SupervisedFinal, ContinualFinal)) else None
    if shift is None or shift.mean_shifted is None or shift.clean is None:
        why = (shift.reason if shift else None) or "the suite ran without shift evaluation: set shift.enabled=true"
        raise Missing(f"the record has no shifted accuracy ({why})")
    clean = _finite(shift.clean, "clean test accuracy", record)
    if clean <= 0:
        raise Missing(f"{record.method} seed {record.seed}: clean test accuracy is 0, so no retention ratio")
    return Reading.exact(_finite(shift.mean_shifted, "mean shifted accuracy", record) / clean)


def _worst_retention(record: Record, partner: Record | None) -> Reading:
    """A diverged run keeps nothing under shift: retention 0."""
    return Reading(0.0, 0.0, 0.0, diverged=True)


def _worst_accuracy_drop(record: Record, partner: Record | None) -> Reading:
    """Forgetting and shift gaps are accuracy drops: the worst is 1 (everything lost)."""
    return Reading(1.0, 1.0, 1.0, diverged=True)


# --------------------------------------------------------------------------- costs


def _spent(record: Record, axis: str) -> float:
    value = record.spent(axis)
    if value is None:
        source = record.energy if axis == "joules" else record.flops
        why = source.reason if source is not None else None
        raise Missing(f"the record has no {axis} ({why or 'not measured'})")
    return _finite(value, f"{axis} spent", record)


def _cost_to(record: Record, target: float, axis: str) -> Reading:
    """The `axis` counter at the first evaluation whose validation metric meets `target`.

    The truth lies after the previous evaluation: (previous, this]. A run that never
    meets it has a cost in (everything spent, inf).
    """
    previous = 0.0
    for point in record.curve or []:
        if record.meets(point.get("val_metric"), target):
            if point.get(axis) is None:
                raise Missing(f"the record's curve has no {axis} at the point that reached the target")
            value = _finite(point[axis], f"{axis} at the target", record)
            if value <= 0:
                raise Missing(f"{record.method} seed {record.seed} met the target at {axis} 0, before training")
            return Reading(value, previous, value, reached=True)
        if point.get(axis) is not None:
            previous = float(point[axis])
    spent = _spent(record, axis)
    return Reading(spent, spent, math.inf, reached=False)


def _to_target(axis: str) -> Callable[[Record, float | None], Reading]:
    def read(record: Record, target: float | None) -> Reading:
        if target is None:
            return Reading.exact(_spent(record, axis))
        return _cost_to(record, target, axis)

    return read


def _worst_cost(record: Record, partner: Record | None) -> Reading:
    """A diverged run never gets there: its cost is inf (for the whole budget as for a target)."""
    return Reading(math.inf, math.inf, math.inf, reached=False, diverged=True)


def _memory(view: str) -> Callable[[Record, float | None], Reading]:
    def read(record: Record, target: float | None) -> Reading:
        if record.memory is None:
            raise Missing(f"{record.method} seed {record.seed}: the record has no memory section")
        if view == "ledger":
            return Reading.exact(_finite(record.memory.ledger.total_bytes, "ledger bytes", record))
        measured = record.memory.measured
        value = measured.get("cuda_max_allocated_bytes")
        if value is None and view == "peak":
            value = measured.get("meta_simulated_peak_bytes")
            if value is None:
                raise Missing("peak memory is CUDA max allocated on a GPU, or the meta device's simulated "
                              "allocator peak for memory-at-scale cells (suite scale-1b); this record has "
                              f"neither (it ran on {record.device}): use memory_*_ledger")
        if value is None:
            raise Missing("measured device memory exists only for cells run on a GPU (this record ran on "
                          f"{record.device}); use memory: ledger, or run on a GPU")
        return Reading.exact(_finite(value, "measured bytes", record))

    return read


def resolution(quantity: Quantity, method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, float, str]:
    """(step, shared sd, note) of the per-seed value: (0, 0, "") for a quantity read exactly.

    A figure read on a finite test set moves in steps (1/N for an accuracy on N examples), so
    seeds can agree exactly while their training differs: the step enters the per-seed
    variance. The test set is one sample from the task's distribution, shared by every seed:
    its sampling sd enters as shared sd. Each quantity says how (its `resolution`).
    """
    return (0.0, 0.0, "") if quantity.resolution is None else quantity.resolution(method, baseline)


def _test_size(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[int | None, str]:
    """(N, "") when every completed record was scored on the same N test examples, else (None, why)."""
    sizes = {r.task_info.get("n_test") for r in (*method, *baseline) if r.completed and r.task_info}
    if len(sizes) != 1 or not isinstance(n := next(iter(sizes)), int) or n <= 0:
        return None, "test-set size unknown: resolution and test-set sampling error not included"
    return n, ""


def _mean_test(records: Sequence[Record]) -> float:
    done = [r.final_metric("test") or 0.0 for r in records if r.completed]
    return statistics.fmean(done) if done else 0.0


def _accuracy_gap_resolution(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, float, str]:
    """A difference of test accuracies: the paired difference of two accuracies on one test set
    of N has variance (q - d**2) / N, with d the accuracy difference and q the share of examples
    on which exactly one side is right. q is not recorded, so its largest value given both
    accuracies is used: min(pm, 1 - pb) + min(pb, 1 - pm)."""
    done = [r for r in (*method, *baseline) if r.completed]
    # a continual record's headline, average_accuracy, is the mean of per-experience accuracies over
    # experiences that split the test set: a proportion of the same n_test images, to good approximation
    if not done or done[0].final is None or done[0].final.metric not in ("accuracy", "average_accuracy"):
        return 0.0, 0.0, "test-set sampling error not included (the metric is not a proportion)"
    n, why = _test_size(method, baseline)
    if n is None:
        return 0.0, 0.0, why
    step, shared = accuracy_resolution(_mean_test(method), _mean_test(baseline), n)
    return step, shared, (f"accuracy on {n} test examples: step 1/{n}, test-set sampling sd {shared:.3g} "
                          "(largest given both accuracies), shared by every seed")


def _shift_gap_resolution(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, float, str]:
    n, why = _test_size(method, baseline)
    if n is None:
        return 0.0, 0.0, why
    return 1 / n, 0.0, f"step 1/{n} (test set of {n}); test-set sampling error not included"


def _forgetting_gap_resolution(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, float, str]:
    n, _ = _test_size(method, baseline)
    if n is None or (bound := forgetting_resolution(method, baseline)) is None:
        return _shift_gap_resolution(method, baseline)  # the step alone (or why there is none)
    shared, experiences = bound
    return 1 / n, shared, (f"forgetting on {experiences} experiences' test images: step 1/{n}, test-set "
                           f"sampling sd {shared:.3g} (largest given the four accuracies of each experience), "
                           "shared by every seed")


def _retention_resolution(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, float, str]:
    """A difference of retention ratios R = S / C (mean shifted over clean accuracy), both read on
    the same n test images (the shift subset, or the whole test set) for both sides.

    To first order, R_m - R_b moves with the paired differences of the shifted accuracies (over
    C) and of the clean ones (times S / C**2). Each paired difference gets `accuracy_resolution`'s
    largest sd given its two accuracies (a mean over shift sets on the same images varies no more
    than one set: E[z**2] <= E|z| <= the mean of the sets' disagreement bounds); the two are
    added as sds (the largest their correlation allows) with the smaller clean accuracy as C.
    """
    shifts = [[r.final.shift for r in side if r.completed and isinstance(r.final, (SupervisedFinal, ContinualFinal))
               and r.final.shift is not None and r.final.shift.clean and r.final.shift.mean_shifted is not None]
              for side in (method, baseline)]
    if not all(shifts):
        return 0.0, 0.0, ""
    subsets = {((r.config or {}).get("shift") or {}).get("test_subset") for r in (*method, *baseline) if r.completed}
    n, why = _test_size(method, baseline)
    if len(subsets) == 1 and isinstance(subset := next(iter(subsets)), int) and n is not None:
        n = min(n, subset)
    elif len(subsets) != 1:
        n, why = None, "the two sides' shifts were scored on different test subsets"
    if n is None:
        return 0.0, 0.0, why
    (sm, cm), (sb, cb) = ((statistics.fmean(x.mean_shifted for x in side), statistics.fmean(x.clean for x in side))
                          for side in shifts)
    c = min(cm, cb)
    shared = (accuracy_resolution(sm, sb, n)[1] / c + max(sm, sb) / c ** 2 * accuracy_resolution(cm, cb, n)[1])
    return 1 / (n * c), shared, (f"shifted and clean accuracy on {n} test images: step 1/({n} x clean), "
                                 f"test-set sampling sd {shared:.3g} (largest given the four accuracies), "
                                 "shared by every seed")


QUANTITIES: dict[str, Quantity] = {q.name: q for q in [
    Quantity("accuracy_gap", "difference", _score,
             "how much better the method's test metric is than the baseline's (validation-selected states): "
             "method - baseline, or baseline - method for lower-is-better metrics such as bits per byte",
             worst=_worst_score, oriented=True, resolution=_accuracy_gap_resolution),
    Quantity("speedup", "ratio", _to_target("seconds"),
             "baseline training seconds / method training seconds, to `target` validation metric "
             "when one is given, else over the whole matched budget", to_target=True, worst=_worst_cost),
    Quantity("samples_ratio", "ratio", _to_target("examples"),
             "baseline examples / method examples to reach `target` (epochs-to-target is the same ratio)",
             needs_target=True, to_target=True, worst=_worst_cost),
    Quantity("flops_ratio", "ratio", _to_target("flops"), "baseline FLOPs / method FLOPs (to `target` if given)",
             to_target=True, worst=_worst_cost),
    Quantity("energy_ratio", "ratio", _to_target("joules"), "baseline joules / method joules (to `target` if given)",
             to_target=True, worst=_worst_cost),
    Quantity("memory_ratio_ledger", "ratio", _memory("ledger"), "baseline ledger peak bytes / method ledger bytes"),
    Quantity("memory_ratio_measured", "ratio", _memory("measured"),
             "baseline CUDA max allocated bytes / method's (GPU cells only)"),
    Quantity("memory_bytes_ledger", "value", _memory("ledger"), "the method's ledger peak bytes, alone"),
    Quantity("memory_ratio_peak", "ratio", _memory("peak"),
             "baseline peak bytes / method's: CUDA max allocated on a GPU, else the meta device's simulated "
             "allocator peak (memory-at-scale cells); unlike the ledger it counts transient no-grad activations "
             "and recomputation"),
    Quantity("memory_bytes_peak", "value", _memory("peak"), "the method's peak bytes, alone (as memory_ratio_peak)"),
    Quantity("forgetting_gap", "difference", _forgetting,
             "method forgetting minus baseline forgetting (Chaudhry et al. 2018; continual suite records)",
             worst=_worst_accuracy_drop, resolution=_forgetting_gap_resolution),
    Quantity("shift_gap", "difference", _shift_gap,
             "method clean-minus-shifted test accuracy gap minus the baseline's (needs shift.enabled)",
             worst=_worst_accuracy_drop, resolution=_shift_gap_resolution),
    Quantity("shift_retention_gap", "difference", _shift_retention,
             "method's shifted/clean test accuracy ratio minus the baseline's: OOD robustness at matched clean "
             "accuracy, which being worse on clean data cannot buy (needs shift.enabled)",
             worst=_worst_retention, resolution=_retention_resolution),
]}


def read(quantity: Quantity, record: Record, target: float | None, partner: Record | None = None) -> Reading:
    """`record`'s figure; a diverged record's is the worst outcome (when the quantity has one)."""
    if record.status == "diverged" and quantity.worst is not None:
        return quantity.worst(record, partner)
    if not record.completed and record.status != "diverged":
        raise Missing(f"{record.method} seed {record.seed} is {record.status}: {record.error}")
    return quantity.read(record, target)


def _div(numerator: float, denominator: float) -> float:
    """A ratio of non-negative costs, with 0 and inf where a bound or a divergence puts them."""
    if math.isinf(numerator) and math.isinf(denominator):
        return math.nan
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


def per_seed(quantity: Quantity, method: dict[int, Record], baseline: dict[int, Record],
             target: float | None) -> list[dict]:
    """[{seed, method, baseline, value, low, high, ...}] over the claim's seeds (raises Missing).

    For costs to a target, `method_reached` / `baseline_reached` say whether each side got
    there within the budget; `method_diverged` names a seed counted as the worst outcome.
    """
    rows = []
    for seed in sorted(method):
        partner = baseline.get(seed)
        m = read(quantity, method[seed], target, partner)
        flags: dict = {"method_diverged": m.diverged}
        if m.reached is not None:
            flags["method_reached"] = m.reached
        if quantity.kind == "value":
            rows.append({"seed": seed, "method": m.value, "baseline": None, "value": m.value, "low": m.low,
                         "high": m.high, **flags})
            continue
        assert partner is not None
        b = read(quantity, partner, target, method[seed])
        if b.reached is not None:
            flags["baseline_reached"] = b.reached
        if quantity.kind == "difference":
            value, low, high = m.value - b.value, m.low - b.high, m.high - b.low
            if quantity.oriented:
                sides = [r for r in (method[seed], partner) if r.completed]
                if len({r.higher_is_better for r in sides}) > 1:
                    raise Missing(f"seed {seed}: the method's and the baseline's metrics point different ways")
                if sides and not sides[0].higher_is_better:  # lower is better: the gap is baseline - method
                    value, low, high = -value, -high, -low
        else:
            if min(m.low, b.low) < 0 or (not m.diverged and m.value <= 0) or b.value <= 0:
                raise Missing(f"seed {seed}: a ratio needs positive costs, got baseline {b.value} and method "
                              f"{m.value}")
            value, low, high = _div(b.value, m.value), _div(b.low, m.high), _div(b.high, m.low)
        for name, x in (("value", value), ("low", low), ("high", high)):
            if math.isnan(x):
                raise Missing(f"seed {seed}: the {name} of {quantity.name} is undefined (baseline {b.value}, "
                              f"method {m.value})")
        rows.append({"seed": seed, "method": m.value, "baseline": b.value, "value": value, "low": low,
                     "high": high, **flags})
    return rows


def accuracy_resolution(pm: float, pb: float, n: int) -> tuple[float, float]:
    """(step, shared sd) of a paired accuracy difference on one test set of `n` examples
    (see `resolution`): 1/n, and the largest sampling sd given the two accuracies."""
    q = min(pm, 1 - pb) + min(pb, 1 - pm)
    return 1 / n, math.sqrt(max(q - (pm - pb) ** 2, 0.0) / n)


def forgetting_resolution(method: Sequence[Record], baseline: Sequence[Record]) -> tuple[float, int] | None:
    """(shared sd, experiences) of a forgetting difference from the test images it was read on;
    None when the records do not say which images (then only the step enters the interval).

    Forgetting of experience j is its peak accuracy before the last phase minus its final
    accuracy, on the same n_j test images. Per image the paired difference of the two sides'
    forgetting is z = (A - B) - (C - D), with A, B the method's peak and final correctness and
    C, D the baseline's: its variance over the test distribution is E[z**2] - d**2. Only the
    four accuracies (a, b, c, d, averaged over seeds) are recorded, so E[z**2] is bounded above:
    a + b + c + d + 2 min(a, d) + 2 min(b, c) - 2 sum of the Frechet lower bounds
    max(0, x + y - 1) of the four cross pairs (for two accuracies this is `accuracy_resolution`'s q).
    Experiences with disjoint test images (split tasks) add variances; experiences on the same
    images (permuted tasks) add standard deviations, the largest their correlation allows.
    The peak phase is read as fixed, so the peak's own selection from noisy accuracies is not in it.
    """
    sides = [[r for r in records if r.completed and r.continual is not None] for records in (method, baseline)]
    if not all(sides):
        return None
    infos = {str(r.task_info.get("experiences")) for side in sides for r in side if r.task_info}
    experiences = (sides[0][0].task_info or {}).get("experiences")
    if len(infos) != 1 or not isinstance(experiences, list):
        return None
    t = len(experiences)
    if t < 2 or any(len(r.continual.matrix) != t for side in sides for r in side):
        return None

    def peak_final(side: list[Record], j: int) -> tuple[float, float]:
        peak = statistics.fmean(max(r.continual.matrix[l][j] for l in range(t - 1)) for r in side)
        return peak, statistics.fmean(r.continual.matrix[-1][j] for r in side)

    sds = []
    for j in range(t - 1):
        n_j = experiences[j].get("n_test")
        if not isinstance(n_j, int) or n_j <= 0:
            return None
        (a, b), (c, d) = peak_final(sides[0], j), peak_final(sides[1], j)
        crossing = sum(max(0.0, x + y - 1) for x, y in ((a, b), (a, c), (d, b), (d, c)))
        second_moment = a + b + c + d + 2 * min(a, d) + 2 * min(b, c) - 2 * crossing
        sds.append(math.sqrt(max(second_moment - ((a - b) - (c - d)) ** 2, 0.0) / n_j))
    disjoint = not any(e.get("permuted") for e in experiences)
    total = math.sqrt(sum(sd ** 2 for sd in sds)) if disjoint else sum(sds)
    return total / (t - 1), t - 1


# ------------------------------------------------- control: environment steps to a target return


def first_crossing(returns: Sequence[float], ends: Sequence[int], window: int,
                   target: float) -> tuple[float, float, float] | None:
    """(step, low, high): where the moving average of `window` episode returns first reaches `target`.

    The average is known at each episode's end; between two ends it is read as a straight
    line, so the step is interpolated between the end of the episode before (average a0 <
    target) and the end of the one that reached it (a1 >= target): e0 + (target - a0) /
    (a1 - a0) * (e1 - e0), within (e0, e1]. When the first full window already reaches it
    there is no earlier average: the step is that episode's end, within (the previous
    episode's end, it] (the window's floor: a T-maze agent that is right from its first
    trial scores 100 trials of 2 steps, 200).
    None when the average never reaches the target.
    """
    previous_average, previous_end = None, (ends[window - 2] if 2 <= window <= len(ends) else 0)
    for k in range(window - 1, len(returns)):
        average = statistics.fmean(returns[k - window + 1:k + 1])
        end = ends[k]
        if average >= target:
            if previous_average is None:
                return float(end), float(previous_end), float(end)
            step = previous_end + (target - previous_average) / (average - previous_average) * (end - previous_end)
            return step, float(previous_end), float(end)
        previous_average, previous_end = average, end
    return None


def _env_steps_to(record: Record, target: float | None) -> Reading:
    """Environment steps until the moving-average training return first reaches `target`,
    resolved to one episode (not to the curve's `eval_every`), from every episode's return."""
    control = record.control
    if control is None:
        raise Missing(f"{record.method} seed {record.seed}: the record of task {record.task} has no episode "
                      "returns: env_steps_ratio needs a control task (suite control)")
    if target is None:
        raise Missing("env_steps_ratio needs `target:` (the moving-average return to reach)")
    found = first_crossing(control.episode_returns, control.episode_end_steps, control.window, target)
    if found is None:
        spent = _spent(record, "env_steps")
        return Reading(spent, spent, math.inf, reached=False)
    step, low, high = found
    return Reading(step, low, high, reached=True)


QUANTITIES["env_steps_ratio"] = Quantity(
    "env_steps_ratio", "ratio", _env_steps_to,
    "baseline environment steps / method environment steps until the moving-average training return first "
    "reaches `target`, resolved to one episode and interpolated between episode ends (control records)",
    needs_target=True, to_target=True, worst=_worst_cost)


# ------------------------------------------------- control: a world that changes between phases


@dataclass(frozen=True)
class ControlPhases:
    """Moving-average returns (over the task's window of episodes) around the phase changes of
    an A-B-A control task (suites/tasks/control_continual.py), read from every episode's return."""

    phase1_end: float  # the last window of phase 1 (world A, just learned)
    phase2_end: float  # the last window of phase 2 (world B): the plasticity guard
    phase3_start: float  # the first window of phase 3 (world A again, after B)

    @property
    def forgetting(self) -> float:
        """The return on A's world lost over phase 2: just after phase 1 minus after phase 2."""
        return self.phase1_end - self.phase3_start


def control_phases(record: Record) -> ControlPhases:
    """Split `record`'s episodes by phase (an episode belongs to the phase it started in: the world
    changes only at an episode start) and average the windows around the changes."""
    control, info = record.control, (record.task_info or {}).get("config") or {}
    lengths = info.get("phase_steps")
    if control is None or not lengths or len(lengths) < 2:
        raise Missing(f"{record.method} seed {record.seed}: task {record.task} is not a control task whose world "
                      "changes between three phases (A, B, A: task grid_world_moving_goal, suite control)")
    boundaries = [sum(lengths[:i + 1]) for i in range(len(lengths))]
    phases: list[list[float]] = [[] for _ in range(len(boundaries) + 1)]
    start = 0
    for episode_return, end in zip(control.episode_returns, control.episode_end_steps):
        phases[sum(start >= b for b in boundaries)].append(episode_return)
        start = end
    window = control.window
    short = [i + 1 for i, returns in enumerate(phases[:3]) if len(returns) < window]
    if short:
        counts = ", ".join(f"phase {i}: {len(phases[i - 1])}" for i in short)
        raise Missing(f"{record.method} seed {record.seed}: fewer than {window} episodes ({counts}) within "
                      f"{record.spent('env_steps'):.0f} environment steps and phases of {lengths}: give the third "
                      "phase more of the budget")
    return ControlPhases(statistics.fmean(phases[0][-window:]), statistics.fmean(phases[1][-window:]),
                         statistics.fmean(phases[2][:window]))


def _worst_return(record: Record, partner: Record | None) -> Reading:
    """A diverged run earns nothing: return 0 (the control tasks here pay 0 or 1 per episode)."""
    return Reading(0.0, 0.0, 0.0, diverged=True)


def _control_forgetting(record: Record, target: float | None) -> Reading:
    return Reading.exact(control_phases(record).forgetting)


def _control_plasticity(record: Record, target: float | None) -> Reading:
    return Reading.exact(control_phases(record).phase2_end)


QUANTITIES["control_forgetting_gap"] = Quantity(
    "control_forgetting_gap", "difference", _control_forgetting,
    "method minus baseline forgetting in an A-B-A control task: the moving-average return on world A at the "
    "end of phase 1 minus at the start of phase 3, after world B (task grid_world_moving_goal)",
    worst=_worst_accuracy_drop)
QUANTITIES["control_plasticity_gap"] = Quantity(
    "control_plasticity_gap", "difference", _control_plasticity,
    "method minus baseline moving-average return at the end of phase 2 (world B) of an A-B-A control task: "
    "the guard beside control_forgetting_gap (a method that never leaves A forgets nothing and fails B)",
    worst=_worst_return)


# ------------------------------------------------- stability: loss spikes as a proxy

SPIKE_FACTOR = 1.5  # an interval's mean training loss this many times the lowest before it is a spike
LEARNED = 0.8  # a run whose lowest interval loss stays above this share of its first did not train


def _spike_rate(record: Record, target: float | None) -> Reading:
    """Fraction of evaluation intervals (after the first) whose mean training loss exceeds
    SPIKE_FACTOR x the lowest interval mean before it: a loss spike, read off the record's curve.
    A mean hides a spike shorter than an interval; the suite's eval_every sets the resolution."""
    losses = [float(p["train_loss"]) for p in record.curve or [] if p.get("train_loss") is not None]
    if len(losses) < 2:
        raise Missing(f"{record.method} seed {record.seed}: the curve has {len(losses)} training losses; a spike "
                      "rate needs two or more (lower eval_every)")
    if not all(math.isfinite(x) for x in losses):
        return Reading.exact(1.0)
    if min(losses) > LEARNED * losses[0]:  # a flat curve has no spikes, and says nothing about stability
        raise Missing(f"{record.method} seed {record.seed} did not train (lowest interval loss {min(losses):.3g}, "
                      f"first {losses[0]:.3g}): a run that does not learn is not evidence of stable training")
    spikes = sum(loss > SPIKE_FACTOR * min(losses[:i]) for i, loss in enumerate(losses) if i > 0)
    return Reading.exact(spikes / (len(losses) - 1))


def spike_rate_resolution(method: Sequence[Record]) -> tuple[float, float, str]:
    """(step, 0, note) of a spike rate: a count over a run's k intervals moves in steps of 1/k, so
    seeds that all read 0 spikes are evidence of a rate below about 1/k, not of a rate of 0."""
    counts = [sum(p.get("train_loss") is not None for p in r.curve or []) - 1 for r in method if r.completed]
    counts = [k for k in counts if k > 0]
    if not counts:
        return 0.0, 0.0, ""
    k = min(counts)
    return 1 / k, 0.0, f"a rate over {k} evaluation intervals per run: step 1/{k}"


def _worst_spike_rate(record: Record, partner: Record | None) -> Reading:
    """A diverged run is all spike: rate 1."""
    return Reading(1.0, 1.0, 1.0, diverged=True)


QUANTITIES["loss_spike_rate"] = Quantity(
    "loss_spike_rate", "value", _spike_rate,
    f"the method's fraction of evaluation intervals whose mean training loss jumps above {SPIKE_FACTOR}x the lowest "
    "before it; a diverged run counts 1 (a stability proxy)", worst=_worst_spike_rate,
    resolution=lambda method, baseline: spike_rate_resolution(method))
