"""The end-of-run terminal table: method x task, mean +- std over seeds, from records.

Built from the stored records (never from the run's memory), so a resumed run prints
the same table as the one that trained everything.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class Row:
    task: str
    method: str
    metric: str | None
    seeds: int
    completed: int
    test_mean: float | None
    test_std: float | None
    steps: float | None
    examples: float | None
    train_seconds: float | None
    step_ms: float | None
    flops_per_step: float | None
    ledger_mib: float | None
    measured_mib: float | None
    measured_kind: str
    energy_j: float | None
    energy_note: str
    other_statuses: str


MIB = 2**20


def _measured_bytes(record: dict[str, Any]) -> tuple[float | None, str]:
    """The headline measured peak: CUDA max allocated on GPUs, the process peak RSS on CPUs."""
    measured = record.get("memory", {}).get("measured", {})
    if measured.get("cuda_max_allocated_bytes") is not None:
        return measured["cuda_max_allocated_bytes"], "cuda max allocated"
    return measured.get("process_peak_rss_bytes"), "process peak RSS"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarise(records: list[dict[str, Any]]) -> list[Row]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["task_label"], record["method"])].append(record)
    rows = []
    for (task, method), group in groups.items():
        done = [r for r in group if r.get("status") == "completed"]
        metric = done[0]["final"]["metric"] if done else None
        tests = [r["final"]["test"][metric] for r in done]
        others = defaultdict(int)
        for r in group:
            if r.get("status") != "completed":
                others[r.get("status")] += 1
        rows.append(Row(
            task=task,
            method=method,
            metric=metric,
            seeds=len(group),
            completed=len(done),
            test_mean=_mean(tests),
            test_std=statistics.stdev(tests) if len(tests) > 1 else None,
            steps=_mean([r["counters"]["steps"] for r in done]),
            examples=_mean([r["counters"]["examples"] for r in done]),
            train_seconds=_mean([r["timing"]["train_seconds"] for r in done]),
            step_ms=_mean([1e3 * r["timing"]["median_step_seconds"] for r in done
                           if r["timing"].get("median_step_seconds") is not None]),
            flops_per_step=_mean([r["flops"]["total"] / r["counters"]["steps"] for r in done
                                  if r.get("flops", {}).get("total") is not None]),
            ledger_mib=_mean([r["memory"]["ledger"]["total_bytes"] / MIB for r in done if "memory" in r]),
            measured_mib=_mean([_measured_bytes(r)[0] / MIB for r in done if _measured_bytes(r)[0] is not None]),
            measured_kind=next((_measured_bytes(r)[1] for r in done), ""),
            energy_j=_mean([r["energy"]["joules"] for r in done if r.get("energy", {}).get("joules") is not None]),
            energy_note=next((f"null: {r['energy']['reason']}" for r in done
                              if r.get("energy") and r["energy"].get("joules") is None), ""),
            other_statuses=", ".join(f"{n} {s}" for s, n in sorted(others.items())),
        ))
    return sorted(rows, key=lambda r: (r.task, r.method))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(rows: list[Row], title: str) -> list[Table]:
    """Two tables (results, then cost): mean over completed seeds, '—' where unknown."""
    metrics = sorted({r.metric for r in rows if r.metric})
    results = Table(title=f"{title}: test {', '.join(metrics) or 'metric'} of the validation-selected state")
    for column in ("task", "method", "test (mean ± std)", "seeds", "steps", "examples", "train s", "not completed"):
        results.add_column(column, justify="left" if column in ("task", "method", "not completed") else "right")
    for row in rows:
        metric = "—"
        if row.test_mean is not None:
            std = f" ± {row.test_std:.4f}" if row.test_std is not None else ""
            metric = f"{row.test_mean:.4f}{std}"
        results.add_row(row.task, row.method, metric, f"{row.completed}/{row.seeds}", _fmt(row.steps, ".0f"),
                        _fmt(row.examples, ".0f"), _fmt(row.train_seconds, ".1f"), row.other_statuses or "")

    kinds = sorted({r.measured_kind for r in rows if r.measured_kind})
    energy = sorted({r.energy_note for r in rows if r.energy_note})
    caption = "; ".join(([f"measured = {', '.join(kinds)}"] if kinds else []) + [f"energy {e}" for e in energy])
    cost = Table(title=f"{title}: cost per cell", caption=caption or None)
    for column in ("task", "method", "ms/step (median)", "GFLOP/step", "ledger MiB", "measured MiB", "energy J"):
        cost.add_column(column, justify="left" if column in ("task", "method") else "right")
    for row in rows:
        cost.add_row(row.task, row.method, _fmt(row.step_ms, ".2f"),
                     _fmt(None if row.flops_per_step is None else row.flops_per_step / 1e9, ".4f"),
                     _fmt(row.ledger_mib, ".2f"), _fmt(row.measured_mib, ".0f"), _fmt(row.energy_j, ".1f"))
    return [results, cost]
