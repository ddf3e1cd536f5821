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
    other_statuses: str


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
            other_statuses=", ".join(f"{n} {s}" for s, n in sorted(others.items())),
        ))
    return sorted(rows, key=lambda r: (r.task, r.method))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for column in ("task", "method", "test metric (mean ± std)", "seeds", "steps", "examples", "train s", "not completed"):
        table.add_column(column, justify="left" if column in ("task", "method", "not completed") else "right")
    for row in rows:
        metric = "—"
        if row.test_mean is not None:
            std = f" ± {row.test_std:.4f}" if row.test_std is not None else ""
            metric = f"{row.metric} {row.test_mean:.4f}{std}"
        table.add_row(
            row.task, row.method, metric, f"{row.completed}/{row.seeds}", _fmt(row.steps, ".0f"),
            _fmt(row.examples, ".0f"), _fmt(row.train_seconds, ".1f"), row.other_statuses or "",
        )
    return table
