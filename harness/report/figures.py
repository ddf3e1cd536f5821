"""The report's figures: learning curves, accuracy against cost, the memory ledger, a claim's curves.

Each function takes plain tables (pandas) already read from the results store and returns a
matplotlib `Figure`; `harness/report/build.py` decides where the PNGs go. Figures are built with
`matplotlib.figure.Figure` and an Agg canvas, never through pyplot, so making a report neither
opens a window nor changes the caller's backend or pyplot state, and tests can inspect the
returned figures (labels, lines) directly.

Conventions every figure keeps, so that a reader can compare them:
- one colour per method, the same in every figure of a report (`method_colours`);
- every seed is drawn: a thin line or a point per seed, never only a mean;
- every axis says what it measures and in which unit;
- legends sit outside the axes, right of the panels, one entry per method (or method variant),
  and the figure widens to hold them, so a report with many variants keeps panels of the same
  size instead of drawing the legend over the data or squeezing the panels to slivers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# The budget axes of the learning curves, in the order of ARCHITECTURE.md, with their units.
CURVE_AXES: dict[str, str] = {
    "steps": "training steps (updates)",
    "examples": "training examples seen",
    "forward_equivalents": "forward-equivalents (full-model forward passes)",
    "seconds": "wall seconds in training steps",
}
LEDGER_AXIS = "memory-ledger peak (MiB)"
SECONDS_AXIS = CURVE_AXES["seconds"]
_PALETTE = "tab10"
LEGEND_CHARS = 36  # a legend label wraps onto a second line past this many characters
_INCH_PER_CHAR = 0.075  # about one character of the "small" legend font, with some margin


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per method name (sorted), so a method looks the same in every figure."""
    cmap = colormaps[_PALETTE]
    return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(set(methods)))}


def _figure(width: float, height: float, panels: int, columns: int) -> tuple[Figure, list[Axes]]:
    """A figure on an Agg canvas with `panels` axes laid out `columns` wide."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    rows = -(-panels // columns)
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(panels)]
    return fig, axes


def _legend_outside(fig: Figure, entries: Mapping[str, Artist], title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels; the figure grows by its width, so
    the panels keep the size they were given however many entries there are."""
    if not entries:
        return
    labels = [textwrap.fill(label, LEGEND_CHARS, subsequent_indent="  ") for label in entries]
    widest = max(len(line) for label in labels for line in label.splitlines())
    fig.set_figwidth(fig.get_figwidth() + 0.6 + _INCH_PER_CHAR * widest)
    rows_fit = max(1, int(fig.get_figheight() / 0.22))  # entries of the small font that fit one column
    lines = sum(label.count("\n") + 1 for label in labels)
    fig.legend(list(entries.values()), labels, loc="outside right upper", fontsize="small", title=title,
               ncols=1 if lines <= rows_fit else 2)
    if lines > rows_fit:  # a second column: the figure grows by its width too
        fig.set_figwidth(fig.get_figwidth() + 0.6 + _INCH_PER_CHAR * widest)


def _entries(axes: Sequence[Axes]) -> dict[str, Artist]:
    """The labelled artists of all panels, each label once (the first panel's artist wins)."""
    found: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            found.setdefault(label, handle)
    return found


def _no_data(ax: Axes, what: str) -> None:
    """Say on the panel that there is nothing to draw, instead of leaving it blank."""
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes, color="0.4")


# --------------------------------------------------------------------------- learning curves


def learning_curves(curves: pd.DataFrame, task: str, metric: str | None,
                    colours: Mapping[str, tuple[float, ...]]) -> Figure:
    """Validation metric against each budget axis (steps, examples, forward-equivalents, seconds).

    `curves` holds one task's rows of curves.parquet. Each run (seed) is its own thin line;
    where a method has several seeds, their mean at each evaluation step is drawn thicker
    (only at steps every seed reached, so a diverged seed does not bend the mean). The legend
    has one entry per method, beside the panels.
    """
    fig, axes = _figure(10, 7.5, len(CURVE_AXES), 2)
    ylabel = f"validation {metric or 'metric'}"
    points = curves.dropna(subset=["val_metric"])
    for ax, (column, xlabel) in zip(axes, CURVE_AXES.items()):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if column not in points or points[column].isna().all():
            _no_data(ax, f"{column} counter")
            continue
        for method, runs in points.groupby("method", sort=True):
            _draw_runs(ax, runs, column, method, colours[method])
    _legend_outside(fig, _entries(axes), "thin: each seed; thick: mean")
    fig.suptitle(f"{task}: {ylabel} against each budget axis")
    return fig


def _draw_runs(ax: Axes, runs: pd.DataFrame, column: str, method: str, colour: tuple[float, ...],
               y: str = "val_metric") -> None:
    """One thin line per seed of `y` against `column`, then the across-seed mean (when there are several)."""
    seeds = runs.groupby("run_id", sort=False)
    several = seeds.ngroups > 1
    for i, (_, run) in enumerate(seeds):
        run = run.sort_values("steps")
        label = method if i == 0 and not several else None
        ax.plot(run[column], run[y], color=colour, lw=0.9, alpha=0.55, label=label)
    if several:
        by_step = runs.groupby("steps")
        complete = by_step["run_id"].nunique() == seeds.ngroups
        mean = by_step[[column, y]].mean()[complete]
        ax.plot(mean[column], mean[y], color=colour, lw=2.4, label=f"{method} ({seeds.ngroups} seeds)")


# --------------------------------------------------------------------------- accuracy vs cost


def pareto_front(costs: Sequence[float], values: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """Indices of the non-dominated points (lower cost and better value), by increasing cost.

    A point is dominated when another costs no more and scores at least as well, and is
    strictly better in one of the two. Ties (same cost and value) all stay on the front.
    """
    cost = np.asarray(costs, dtype=float)
    value = np.asarray(values, dtype=float) * (1.0 if higher_is_better else -1.0)
    front = []
    for i in range(len(cost)):
        no_worse = (cost <= cost[i]) & (value >= value[i])
        strictly = (cost < cost[i]) | (value > value[i])
        if not np.any(no_worse & strictly):
            front.append(i)
    return sorted(front, key=lambda i: (cost[i], -value[i]))


def accuracy_vs_cost(points: pd.DataFrame, task: str, metric: str, higher_is_better: bool,
                     colours: Mapping[str, tuple[float, ...]]) -> Figure:
    """Test metric against peak ledger memory and against training time, one point per seed.

    `points` has columns method, seed, test, ledger_mib, train_seconds (one row per completed
    run of `task`). The Pareto front over all methods is drawn on each panel: the runs no
    other run beats on both the metric and that cost.
    """
    fig, axes = _figure(10, 4.2, 2, 2)
    better = "higher" if higher_is_better else "lower"
    for ax, (column, xlabel) in zip(axes, (("ledger_mib", LEDGER_AXIS), ("train_seconds", SECONDS_AXIS))):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
        usable = points.dropna(subset=[column, "test"])
        if usable.empty:
            _no_data(ax, column)
            continue
        for method, runs in usable.groupby("method", sort=True):
            ax.scatter(runs[column], runs["test"], color=colours[method], s=36, label=method, zorder=3)
        front = usable.iloc[pareto_front(usable[column], usable["test"], higher_is_better)]
        ax.plot(front[column], front["test"], color="black", ls="--", lw=1.2, marker="o", mfc="none", ms=11,
                drawstyle="steps-post", zorder=2,
                label=f"Pareto front ({better} {metric}, lower cost)")
    _legend_outside(fig, _entries(axes), "one point a seed")
    fig.suptitle(f"{task}: test {metric} against cost")
    return fig


# --------------------------------------------------------------------------- ledger breakdown


def ledger_breakdown(ledger: pd.DataFrame) -> Figure:
    """Stacked bars of the memory-ledger categories (MiB), one bar per method, a panel per task.

    `ledger` is indexed by (task, method) with one column per ledger category, in MiB; the
    columns come from the records, so a category a method declares shows up on its own.
    """
    tasks = list(dict.fromkeys(ledger.index.get_level_values(0)))
    widest = max((len(ledger.loc[t]) for t in tasks), default=1)
    fig, axes = _figure(max(5.0, 1.2 + len(tasks) * (1.6 + 0.9 * widest)), 4.6, max(len(tasks), 1), max(len(tasks), 1))
    cmap = colormaps["Set2"]
    colours = {c: cmap(i % cmap.N) for i, c in enumerate(ledger.columns)}
    for ax, task in zip(axes, tasks):
        rows = ledger.loc[task]
        bottom = np.zeros(len(rows))
        for category in ledger.columns:
            heights = rows[category].fillna(0.0).to_numpy(dtype=float)
            ax.bar(rows.index, heights, bottom=bottom, color=colours[category], label=category, width=0.6)
            bottom += heights
        ax.set_xlim(-0.8, len(rows) - 0.2)  # a lone bar stays a bar, not a wall
        if len(rows) > 1:  # variant labels are long: slanted, wrapped, they stay apart
            ax.set_xticks(range(len(rows)), [textwrap.fill(str(m), 24) for m in rows.index], rotation=30,
                          ha="right", fontsize="small")
        ax.set_title(task)
        ax.set_xlabel("method")
        ax.set_ylabel("MiB (mean of completed seeds)")
        ax.grid(axis="y", alpha=0.3)
    if not tasks:
        axes[0].set_xlabel("method")
        axes[0].set_ylabel("MiB")
        _no_data(axes[0], "memory ledger")
    else:
        axes[-1].legend(fontsize="small", title="ledger category", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("memory ledger by category (exact bytes, machine-independent)")
    return fig


# --------------------------------------------------------------------------- a claim's curves


def claim_curves(points: pd.DataFrame, x: str, xlabel: str, panels: Mapping[str, str],
                 colours: Mapping[str, tuple[float, ...]], title: str, target: float | None = None) -> Figure:
    """The records behind one claim's verdict: each `panels` column (its label the value) against `x`.

    `points` holds curve rows with a `side` column (e.g. `method: active_inference`) and a
    `run_id` per seed; every seed is a thin line, and where a side has several, their mean
    at the evaluation steps every seed reached is drawn thick. `target` (the claim's
    validation target) is a dotted line on the first panel.
    """
    columns = min(len(panels), 3)
    fig, axes = _figure(max(5.0, 3.6 * columns), 3.0 * -(-len(panels) // columns) + 0.4, len(panels), columns)
    for ax, (column, ylabel) in zip(axes, panels.items()):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        usable = points.dropna(subset=[x, column]) if column in points and x in points else points.iloc[0:0]
        if usable.empty:
            _no_data(ax, column)
            continue
        for side, runs in usable.groupby("side", sort=True):
            _draw_runs(ax, runs, x, side, colours[side], y=column)
    if target is not None and axes:
        axes[0].axhline(target, color="black", ls=":", lw=1.4, label=f"target {target:g}")
    _legend_outside(fig, _entries(axes), "thin: each seed; thick: mean")
    fig.suptitle(textwrap.fill(title, 60), fontsize="medium", x=0.02, ha="left")
    return fig
