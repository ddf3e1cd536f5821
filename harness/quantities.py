"""What a claim measures, read off the records of a method and its baseline, seed by seed.

Each quantity says how to get one number per record, and whether the comparison is
a difference (method - baseline, e.g. an accuracy gap) or a ratio (baseline / method,
oriented so that "4x faster" and "10x less memory" read as 4 and 10).

A quantity whose number a record does not carry (energy on a CPU, forgetting of a
non-continual task) yields `Missing` with the reason; the claim is then
"not comparable", never computed from a stand-in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Missing(Exception):
    """The record lacks what the quantity needs; the message says what and why."""


@dataclass(frozen=True)
class Quantity:
    name: str
    kind: str  # "difference" (method - baseline), "ratio" (baseline / method), "value" (method alone)
    read: Callable[[dict[str, Any], float | None], float]
    description: str
    needs_target: bool = False
    to_target: bool = False  # reads the cost to reach `target` when one is given
    unavailable: str | None = None  # why no record can carry it yet (checked before any run)


def _test_metric(record: dict[str, Any], target: float | None) -> float:
    final = record.get("final") or {}
    return float(final["test"][final["metric"]])


def _meets(record: dict[str, Any], value: float | None, target: float) -> bool:
    """`value` is at least as good as `target`: >= for accuracies, <= for losses such as bits per byte.

    The direction is the record's `final.higher_is_better` (written by LM cells); records
    without it are accuracies.
    """
    if value is None:
        return False
    higher = (record.get("final") or {}).get("higher_is_better", True)
    return value >= target if higher else value <= target


def reached(record: dict[str, Any], target: float) -> bool:
    return any(_meets(record, p.get("val_metric"), target) for p in record["curve"])


def _first_reaching(record: dict[str, Any], target: float, axis: str) -> float:
    """The `axis` counter at the first evaluation whose validation metric reaches `target`.

    When the run never reaches it, the whole budget spent is returned: a lower bound on
    the true cost-to-target. `per_seed` flags such seeds, and the claim's verdict is
    downgraded wherever a bound rather than a value could have decided it.
    """
    for point in record["curve"]:
        if _meets(record, point.get("val_metric"), target):
            if point.get(axis) is None:
                raise Missing(f"the record's curve has no {axis} at the point that reached the target")
            return float(point[axis])
    return _spent(record, axis)


def _to_target(axis: str) -> Callable[[dict[str, Any], float | None], float]:
    def read(record: dict[str, Any], target: float | None) -> float:
        if target is None:
            return _spent(record, axis)
        return _first_reaching(record, target, axis)

    return read


def _spent(record: dict[str, Any], axis: str) -> float:
    value = record["counters"].get(axis)
    if value is None:
        why = (record.get("energy") or {}).get("reason") if axis == "joules" else (record.get("flops") or {}).get("reason")
        raise Missing(f"the record has no {axis} ({why or 'not measured'})")
    return float(value)


def _memory(view: str) -> Callable[[dict[str, Any], float | None], float]:
    def read(record: dict[str, Any], target: float | None) -> float:
        memory = record.get("memory") or {}
        if view == "ledger":
            return float(memory["ledger"]["total_bytes"])
        measured = memory.get("measured") or {}
        value = measured.get("cuda_max_allocated_bytes")
        if value is None and view == "peak":
            value = measured.get("meta_simulated_peak_bytes")
            if value is None:
                raise Missing("peak memory is CUDA max allocated on a GPU, or the meta device's simulated "
                              "allocator peak for memory-at-scale cells (suite scale-1b); this record has "
                              f"neither (it ran on {record['config'].get('device')}): use memory_*_ledger")
        if value is None:
            raise Missing("measured device memory exists only for cells run on a GPU (this record ran on "
                          f"{record['config'].get('device')}); use memory: ledger, or run on a GPU")
        return float(value)

    return read


def _forgetting(record: dict[str, Any], target: float | None) -> float:
    continual = record.get("continual")
    if not continual:
        raise Missing(f"the record of task {record.get('task')} has no accuracy matrix: forgetting needs a "
                      "continual task (suite continual)")
    if continual.get("forgetting") is None:
        raise Missing("the continual record has no forgetting (it did not train through every experience)")
    return float(continual["forgetting"])


def _shift_gap(record: dict[str, Any], target: float | None) -> float:
    shift = (record.get("final") or {}).get("shift")
    if not shift or shift.get("gap") is None:
        why = (shift or {}).get("reason") or "the suite ran without shift evaluation: set shift.enabled=true"
        raise Missing(f"the record has no shift gap ({why})")
    return float(shift["gap"])


QUANTITIES: dict[str, Quantity] = {q.name: q for q in [
    Quantity("accuracy_gap", "difference", _test_metric,
             "test metric of the method minus the baseline's (validation-selected states)"),
    Quantity("speedup", "ratio", _to_target("seconds"),
             "baseline training seconds / method training seconds, to `target` validation metric "
             "when one is given, else over the whole matched budget", to_target=True),
    Quantity("samples_ratio", "ratio", _to_target("examples"),
             "baseline examples / method examples to reach `target` (epochs-to-target is the same ratio)",
             needs_target=True, to_target=True),
    Quantity("flops_ratio", "ratio", _to_target("flops"), "baseline FLOPs / method FLOPs (to `target` if given)",
             to_target=True),
    Quantity("energy_ratio", "ratio", _to_target("joules"), "baseline joules / method joules (to `target` if given)",
             to_target=True),
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
             "method forgetting minus baseline forgetting (Chaudhry et al. 2018; continual suite records)"),
    Quantity("shift_gap", "difference", _shift_gap,
             "method clean-minus-shifted test accuracy gap minus the baseline's (needs shift.enabled)"),
]}


def per_seed(quantity: Quantity, method: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]],
             target: float | None) -> list[dict[str, Any]]:
    """[{seed, method, baseline, value, ...}] over the seeds both sides completed (raises Missing).

    For costs to a target, `method_reached` / `baseline_reached` say whether each side got
    there within the budget (if not, its figure is the whole budget: a lower bound).
    """
    rows = []
    for seed in sorted(method):
        m = quantity.read(method[seed], target)
        flags = {}
        if quantity.to_target and target is not None:
            flags = {"method_reached": reached(method[seed], target)}
            if quantity.kind != "value":
                flags["baseline_reached"] = reached(baseline[seed], target)
        if quantity.kind == "value":
            rows.append({"seed": seed, "method": m, "baseline": None, "value": m, **flags})
            continue
        b = quantity.read(baseline[seed], target)
        if quantity.kind == "difference":
            value = m - b
        elif m <= 0 or b <= 0 or not (math.isfinite(m) and math.isfinite(b)):
            raise Missing(f"seed {seed}: a ratio needs positive costs, got baseline {b} and method {m}")
        else:
            value = b / m
        rows.append({"seed": seed, "method": m, "baseline": b, "value": value, **flags})
    return rows
