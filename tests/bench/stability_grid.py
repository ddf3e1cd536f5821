"""The stability proxy over suites/stability.yaml's grid: per shape and method, the test accuracy,
the loss-spike rate of every seed (quantity loss_spike_rate, harness/quantities.py) and the
divergences, read from the records of a finished run.

    python -m harness.cli run suite=stability threads=1 results_dir=DIR
    PYTHONPATH=. python tests/bench/stability_grid.py DIR

Reports only; it asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from harness.quantities import QUANTITIES, Missing, read
from harness.store import Store


def rows(results: Path) -> list[str]:
    quantity = QUANTITIES["loss_spike_rate"]
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for record in Store(results).records("stability"):
        cells[(record.task_label, record.method)].append(record)
    out = ["| shape | method | seeds | test accuracy (mean) | spike rate per seed | diverged |", "|---|---|---|---|---|---|"]
    for (task, method), records in sorted(cells.items()):
        records.sort(key=lambda r: r.seed)
        accuracies = [r.final.score("test") for r in records if r.final and r.status == "completed"]
        spikes = []
        for r in records:
            try:
                spikes.append(f"{read(quantity, r, None).value:.2f}")
            except Missing as exc:
                spikes.append("did not train" if "did not train" in str(exc) else f"n/a ({exc})")
        diverged = sum(r.status == "diverged" for r in records)
        accuracy = f"{statistics.fmean(accuracies):.4f}" if accuracies else "n/a"
        out.append(f"| {task} | {method} | {len(records)} | {accuracy} | {', '.join(spikes)} | {diverged} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))))
