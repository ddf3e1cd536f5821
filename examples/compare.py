"""Accuracy against training time, one point per seed and one marker per method, from the index.

    bench run suite=vision-vit profile=quick method=[backprop,forward_forward,local_learning]
    python examples/compare.py --results results --suite vision-vit --out compare.png

The same in a notebook:

    from harness import api
    index = api.load_index("results")
    figure = compare(index[index.suite == "vision-vit"])

Everything comes from the results index (`harness.api.load_index`): `final.metric` names each
record's score, `final.test.<metric>` is the test score of the validation-selected state and
`timing.train_seconds` the timed training seconds (evaluation excluded), so any suite's records
can be drawn this way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, not windows: runs on a server and in CI

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from harness import api


def scores(index: pd.DataFrame) -> pd.DataFrame:
    """One row per completed record: task_label, method, seed, metric, test score, training seconds."""
    done = index[index["status"] == "completed"].copy()
    done["metric"] = done["final.metric"]
    done["test"] = [row[f"final.test.{row['final.metric']}"] for _, row in done.iterrows()]
    done["seconds"] = done["timing.train_seconds"]
    return done[["task_label", "method", "seed", "metric", "test", "seconds"]].dropna(subset=["test", "seconds"])


def compare(index: pd.DataFrame) -> Figure:
    """One panel per task: each seed a small dot, each method's mean a large marker with its spread."""
    table = scores(index)
    if table.empty:
        raise SystemExit("no completed records with a test score and training seconds: run a suite first.")
    tasks = sorted(table["task_label"].unique())
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks) + 2, 4), squeeze=False,
                                layout="constrained")
    colours = dict(zip(sorted(table["method"].unique()), plt.get_cmap("tab10").colors))
    for ax, task in zip(axes[0], tasks):
        rows = table[table["task_label"] == task]
        for method, group in rows.groupby("method"):
            ax.scatter(group["seconds"], group["test"], s=12, alpha=0.5, color=colours[method])
            ax.errorbar(group["seconds"].mean(), group["test"].mean(), xerr=group["seconds"].std(ddof=0),
                        yerr=group["test"].std(ddof=0), fmt="o", ms=8, capsize=3, color=colours[method],
                        label=f"{method} ({len(group)} seeds)")
        ax.set(title=task, xlabel="training seconds", ylabel=f"test {rows['metric'].iloc[0]}")
        ax.grid(alpha=0.3)
    handles = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="outside right upper")  # beside the panels, never on them
    return figure


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="results directory (bench run's results_dir)")
    parser.add_argument("--suite", default=None, help="only this suite's records")
    parser.add_argument("--out", default="compare.png", help="where to write the figure")
    args = parser.parse_args(argv)
    index = api.load_index(args.results)
    if args.suite is not None:
        index = index[index["suite"] == args.suite]
    out = Path(args.out)
    compare(index).savefig(out, dpi=120)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
