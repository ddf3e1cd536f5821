"""`bench report SUITE|claims`: tables, figures and claim verdicts as HTML and Markdown.

A report is made from the results table (results/index.parquet, results/curves.parquet) and
the verdict files (results/claims/*.json), never from a run's memory, so it can be rebuilt at
any time from the records alone. It is written to reports/<target>/:

    index.html   self-contained: inline CSS, figures inlined as base64 PNG, nothing fetched
    report.md    the same content, linking the PNG files
    fig-*.png    the figures (harness/report/figures.py)
    claim-<id>.html, claim-<id>.md   `bench report claims` only: one page per claim verdict,
                 self-contained like index.html (harness/report/claims_page.py)

Honesty rules, the same as the terminal table's (whose numbers this reuses through
`harness.report.summary.summarise`, so the two never disagree): every seed's value is listed next
to the mean; cells that did not complete are listed with their error; unknown numbers show
as "—" or "null: reason", never as 0.

Sections: cells by status, results (every seed), one table per other group of `final.*`
numbers (shift, continual, lm-eval, control...), figures per task, the memory ledger, the
environment, and the claim verdicts (harness/report/claims_page.py). Both output formats are
rendered from one small document model (harness/report/document.py: `Section` of `Text`,
`Table` and `Image` blocks), so the HTML and the Markdown cannot drift apart.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.claim_files import CLAIMS_DIR
from harness.report.claims_page import (CLAIM_PAGE_PREFIX, CLAIMS_TARGET, claim_evidence, claim_notes, claim_page_name,
                                        claim_sections, claims_section, load_verdicts, sides_table)
from harness.report.document import Block, Image, Links, Section, Table, Text, render_html, render_markdown, slug
from harness.report.format import MISSING, count, missing, num, plain
from harness.report.suite_data import ReportError, SuiteData, read_suite_data
from harness.report.summary import MIB, Row
from harness.store import RECORD_NAME, Store, StoreError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATUSES = ("completed", "diverged", "failed", "unsupported")
FIGURE_PREFIX = "fig-"
LEDGER_PREFIX = "memory.ledger.bytes."
# The harness's own ledger categories, stacked in this order; method-declared ones follow, sorted.
LEDGER_ORDER = ("parameters", "gradients", "optimizer_state", "saved_activations", "autocast_weight_copies")


# --------------------------------------------------------------------------- derived tables


def ledger_mib(data: SuiteData) -> pd.DataFrame:
    """Mean MiB per ledger category over completed seeds, indexed by (task, method).

    The categories are whatever the records hold, so one a method declares appears on its
    own; a category absent from a method's records is 0 bytes for it (it keeps none).
    """
    done = data.completed()
    names = {c.removeprefix(LEDGER_PREFIX) for c in data.index.columns if c.startswith(LEDGER_PREFIX)}
    ordered = [c for c in LEDGER_ORDER if c in names] + sorted(names - set(LEDGER_ORDER))
    categories = [LEDGER_PREFIX + c for c in ordered]
    if done.empty or not categories:
        return pd.DataFrame()
    table = done[["task_label", "method", *categories]].groupby(["task_label", "method"]).mean() / MIB
    return table.rename(columns=lambda c: c.removeprefix(LEDGER_PREFIX)).fillna(0.0)


def cost_points(data: SuiteData, task: str) -> pd.DataFrame:
    """One row per completed seed of `task`: its test metric and its two costs."""
    done = data.completed(task)
    metric = data.metric(task)
    return pd.DataFrame({
        "method": done["method"],
        "seed": done["seed"],
        "test": data.column(f"final.test.{metric}", done),
        "ledger_mib": data.column("memory.ledger.total_bytes", done) / MIB,
        "train_seconds": data.column("timing.train_seconds", done),
    })


def per_seed_values(data: SuiteData) -> dict[tuple[str, str], str]:
    """Every seed of each (task, method): its test value, or its status when it has none."""
    out = {}
    for (task, method), group in data.index.groupby(["task_label", "method"]):
        values = data.column(f"final.test.{data.metric(task)}", group)
        parts = [f"s{plain(seed)}: {status if missing(value) else format(value, '.4f')}"
                 for seed, status, value in sorted(zip(group["seed"], group["status"], values),
                                                   key=lambda t: t[0])]
        out[(task, method)] = ", ".join(parts)
    return out


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class SuiteFigures:
    """Every figure of a suite report, by kind and task, before it becomes a PNG."""

    curves: dict[str, Figure]
    cost: dict[str, Figure]
    ledger: Figure | None

    def all(self) -> list[Figure]:
        return [*self.curves.values(), *self.cost.values(), *([self.ledger] if self.ledger else [])]


def _figures_module() -> ModuleType:
    """harness.report.figures, or a ReportError saying how to install matplotlib.

    Imported here rather than at the top for its cost alone: matplotlib takes about 0.5 s to
    import (CPU, `python -X importtime`), and `bench run` imports this package for the summary
    table on every run, while only `bench report` draws figures.
    """
    try:
        from harness.report import figures
    except ImportError as exc:
        raise ReportError(f"bench report draws its figures with matplotlib, which is not importable ({exc}). "
                          "Install it: pip install matplotlib (or pip install -e '.[dev]').") from exc
    return figures


def suite_figures(data: SuiteData) -> SuiteFigures:
    """Learning curves and accuracy-vs-cost per task, and the ledger breakdown."""
    figures = _figures_module()
    colours = figures.method_colours(list(data.index["method"].dropna()))
    curves, cost = {}, {}
    for task in data.tasks:
        metric = data.metric(task)
        points = data.curves[data.curves["task_label"] == task]
        if "val_metric" in points and points["val_metric"].notna().any():
            curves[task] = figures.learning_curves(points, task, metric, colours)
        if metric is not None:
            cost[task] = figures.accuracy_vs_cost(cost_points(data, task), task, metric,
                                                  data.higher_is_better(task), colours)
    ledger = ledger_mib(data)
    shown = ledger.loc[:, (ledger != 0).any()] if not ledger.empty else ledger
    return SuiteFigures(curves, cost, figures.ledger_breakdown(shown) if not shown.empty else None)


def _image(file: str, figure: Figure, caption: str) -> Image:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return Image(f"{FIGURE_PREFIX}{file}.png", buffer.getvalue(), caption)


# --------------------------------------------------------------------------- suite sections


def cells_section(data: SuiteData) -> Section:
    """How many cells ended in each status, and every cell that did not complete, with its error."""
    counts = data.index["status"].fillna("no status").value_counts()
    statuses = [*STATUSES, *sorted(set(counts.index) - set(STATUSES))]
    blocks: list[Block] = [
        Text(f"Suite `{data.name}`: {count(len(data.index), 'cell')} recorded under "
             f"`{data.results_dir / data.name}`."),
        Table(("status", "cells"), tuple((s, str(int(counts.get(s, 0)))) for s in statuses)),
    ]
    failed = data.index[data.index["status"] != "completed"].sort_values(["task_label", "method", "seed"])
    if failed.empty:
        blocks.append(Text("Every cell completed."))
        return Section("Cells", tuple(blocks))
    blocks.append(Text("Cells that did not complete (the record holds the traceback where there is one):"))
    blocks.append(Table(("task", "method", "seed", "status", "error", "record"), tuple(
        (str(r.task_label), str(r.method), str(plain(r.seed)), str(r.status),
         MISSING if missing(r.error) else str(r.error), f"`{data.results_dir / data.name / r.run_id / RECORD_NAME}`")
        for r in failed.itertuples())))
    return Section("Cells", tuple(blocks))


def _mean_std(row: Row) -> str:
    if row.test_mean is None:
        return MISSING
    return f"{row.test_mean:.4f}" + ("" if row.test_std is None else f" ± {row.test_std:.4f}")


def _measured(row: Row) -> str:
    return MISSING if row.measured_mib is None else f"{row.measured_mib:.0f} ({row.measured_kind})"


def _energy(row: Row) -> str:
    if row.energy_j is not None:
        return f"{row.energy_j:.1f}"
    return row.energy_note or MISSING


RESULT_COLUMNS = ("task", "method", "seeds completed", "metric", "test mean ± std", "every seed (test)", "steps",
                  "examples", "train s", "ms/step (median)", "GFLOP/step", "ledger MiB", "measured peak MiB",
                  "energy J")


def results_section(data: SuiteData) -> Section:
    """Per task x method: the test metric (mean, std and every seed) and every cost the record has."""
    seeds = per_seed_values(data)
    rows = tuple(
        (r.task, r.method, f"{r.completed}/{r.seeds}", r.metric or MISSING, _mean_std(r), seeds[(r.task, r.method)],
         num(r.steps, ".0f"), num(r.examples, ".0f"), num(r.train_seconds, ".1f"), num(r.step_ms, ".2f"),
         num(None if r.flops_per_step is None else r.flops_per_step / 1e9, ".3f"), num(r.ledger_mib, ".2f"),
         _measured(r), _energy(r))
        for r in data.rows)
    note = Text("Test metric of the validation-selected state: mean ± sample standard deviation over completed "
                "seeds, then every seed (`s<seed>: value`, or its status when it has no value). Costs are means "
                "over completed seeds: train s = wall seconds in training steps (evaluation excluded); ledger = "
                "exact bytes by category at the peak step; measured peak = CUDA max allocated where the cell ran "
                "on a GPU, else the process's peak RSS (interpreter and data included). "
                f"{MISSING} = unknown.")
    return Section("Results", (Table(RESULT_COLUMNS, rows), note))


# `final.*` keys the results table already shows, or that only do bookkeeping.
_FINAL_SHOWN = ("final.test.", "final.val.", "final.best_step", "final.metric")


def _mean_std_n(values: pd.Series) -> str:
    """`mean ± std (n)` of the known values, "—" when none is known."""
    known = values.dropna()
    if known.empty:
        return MISSING
    mean = float(known.mean())
    spec = ".0f" if abs(mean) >= 1e4 else ".4g"
    std = f" ± {float(known.std()):{spec}}" if len(known) > 1 else ""
    return f"{mean:{spec}}{std} ({len(known)})"


def further_metric_sections(data: SuiteData) -> list[Section]:
    """Every other number under the records' `final` (shift scores, continual metrics, lm-eval
    scores, control targets...), one table per first key, so a new kind of result shows up
    in the report the day a task starts recording it."""
    done = data.completed()
    numeric = {c: pd.to_numeric(done[c], errors="coerce") for c in done.columns
               if c.startswith("final.") and not c.startswith(_FINAL_SHOWN)}
    groups: dict[str, list[str]] = {}
    for column in sorted(c for c, values in numeric.items() if values.notna().any()):
        groups.setdefault(column.split(".")[1], []).append(column)
    sections = []
    for group, columns in groups.items():
        names = [c.removeprefix(f"final.{group}.") if c != f"final.{group}" else group for c in columns]
        rows = tuple((str(task), str(method), *(_mean_std_n(numeric[c][g.index]) for c in columns))
                     for (task, method), g in done.groupby(["task_label", "method"]))
        sections.append(Section(f"Further results: {group}", (
            Table(("task", "method", *names), rows),
            Text(f"`final.{group}.*` of the completed records: mean ± sample std (seeds with a value); "
                 f"{MISSING} = no record has it."))))
    return sections


# Figures drawn once per task: (section title, SuiteFigures field, caption, why a task has none).
_PER_TASK_FIGURES = (
    ("Learning curves", "curves",
     "validation metric against steps, examples, forward-equivalents and wall seconds; one thin line per seed "
     "and, where there are several, a thick line for their mean.",
     "no cell reached an evaluation, so there is no curve to draw."),
    ("Accuracy against cost", "cost",
     "test metric against the memory-ledger peak and against training time, one point per seed; the dashed "
     "line joins the Pareto front (runs no other run beats on both).",
     "no completed cell, so nothing to place against cost."),
)


def per_task_figure_sections(data: SuiteData, figures: SuiteFigures) -> list[Section]:
    """One figure per task and kind, or a sentence saying why a task has none (never just left out)."""
    sections = []
    for title, kind, caption, absent in _PER_TASK_FIGURES:
        by_task: dict[str, Figure] = getattr(figures, kind)
        sections.append(Section(title, tuple(
            _image(f"{kind}-{slug(task)}", by_task[task], f"{task}: {caption}") if task in by_task
            else Text(f"{task}: {absent}") for task in data.tasks)))
    return sections


def ledger_section(data: SuiteData, figures: SuiteFigures) -> Section:
    """The ledger breakdown as a figure and as the table of numbers behind it."""
    ledger = ledger_mib(data)
    if ledger.empty:
        return Section("Memory ledger", (Text("No completed cell, so no memory ledger to break down."),))
    zero = [c for c in ledger.columns if not (ledger[c] != 0).any()]
    table = Table(("task", "method", *ledger.columns, "total"), tuple(
        (task, method, *(f"{v:.3f}" for v in values), f"{sum(values):.3f}")
        for (task, method), values in zip(ledger.index, ledger.to_numpy())))
    note = ("MiB by category at the ledger's peak, mean over completed seeds; a category missing from a "
            "method's records is 0 for it." + (f" At zero for every method, so not in the figure: {', '.join(zero)}."
                                               if zero else ""))
    blocks: list[Block] = [table, Text(note)]
    if figures.ledger is not None:
        blocks.insert(0, _image("ledger", figures.ledger, "Memory ledger by category, stacked per method "
                                "(numbers in the table below)."))
    return Section("Memory ledger", tuple(blocks))


# Shown first, in this order, with these names; every other env.* field follows.
_ENV_FIELDS = {"env.python": "python", "env.packages.torch": "torch", "env.platform": "platform",
               "env.cpu_model": "CPU model", "env.cpu_count": "CPU cores", "threads": "torch threads per cell",
               "env.torch_threads": "torch threads (process default)", "env.gpu": "GPU",
               "env.cuda_version": "CUDA", "env.git_commit": "git commit"}


def _distinct(values: pd.Series) -> str:
    """Each distinct value with the number of cells that had it; "—" for unknown."""
    counts = values.map(lambda v: MISSING if missing(v) else str(plain(v))).value_counts()
    return "; ".join(f"{value} ({count(n, 'cell')})" for value, n in counts.items())


def environment_section(data: SuiteData) -> Section:
    """Distinct environments across the suite's records: two runs compare only if these match."""
    others = sorted(c for c in data.index.columns if c.startswith("env.") and c not in _ENV_FIELDS)
    names = {**_ENV_FIELDS, **{c: c.removeprefix("env.").replace("packages.", "package ") for c in others}}
    rows = tuple((label, _distinct(data.column(column))) for column, label in names.items())
    return Section("Environment", (Table(("field", "distinct values across cells"), rows),))


def variants_section(data: SuiteData) -> list[Section]:
    """Every task setting and method variant with all the config values that tell it apart (the
    labels in the tables and figures keep only enough of them); nothing when there are none."""
    rows = data.index
    if "setting" not in rows or not (rows["setting"].astype(bool) | rows["variant"].astype(bool)).any():
        return []
    table = (rows[rows["setting"].astype(bool) | rows["variant"].astype(bool)]
             .groupby(["task_label", "method"], sort=True)
             .agg(cells=("run_id", "size"), setting=("setting", "first"), variant=("variant", "first")))
    return [Section("Variants", (
        Text("Where a task ran in several settings (profiles, budgets) or a method under several configs, each "
             "gets its own label, rows and figures. The labels keep only the values that tell them apart; "
             "here is every value that differs."),
        Table(("task", "method", "cells", "setting differs in", "method config differs in"), tuple(
            (str(task), str(method), str(int(r.cells)), r.setting or MISSING, r.variant or MISSING)
            for (task, method), r in table.iterrows())),
    ))]


def suite_sections(data: SuiteData, figures: SuiteFigures) -> list[Section]:
    return [cells_section(data), *variants_section(data), results_section(data), *further_metric_sections(data),
            *per_task_figure_sections(data, figures),
            ledger_section(data, figures), environment_section(data)]


# --------------------------------------------------------------------------- building


def write_report(out_dir: Path, title: str, intro: str, sections: list[Section],
                 pages: Sequence[Page] = ()) -> Path:
    """Write the figures, report.md and index.html into `out_dir`, and each of `pages` as
    STEM.html and STEM.md beside them; return index.html's path.

    Figures and pages of an earlier report (fig-*.png, claim-*.html/.md) are removed first, so a
    task or claim that is gone from the results does not leave a stale file behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in (f"{FIGURE_PREFIX}*.png", f"{CLAIM_PAGE_PREFIX}*.html", f"{CLAIM_PAGE_PREFIX}*.md"):
        for stale in out_dir.glob(pattern):
            stale.unlink()
    for page in (Page("report", title, intro, tuple(sections)), *pages):
        for section in page.sections:
            for block in section.blocks:
                if isinstance(block, Image):
                    (out_dir / block.file).write_bytes(block.png)
        (out_dir / f"{page.stem}.md").write_text(render_markdown(page.title, page.intro, page.sections),
                                                 encoding="utf-8")
        html_name = "index.html" if page.stem == "report" else f"{page.stem}.html"
        (out_dir / html_name).write_text(render_html(page.title, page.intro, page.sections), encoding="utf-8")
    return out_dir / "index.html"


@dataclass(frozen=True)
class Page:
    """One more page of a report, written as STEM.html and STEM.md (the main one is index.html, report.md)."""

    stem: str
    title: str
    intro: str
    sections: tuple[Section, ...]


def claim_pages(results_dir: Path, verdicts: list[dict[str, Any]], generated: str) -> list[Page]:
    """One page per readable verdict: its sections (harness/report/claims_page.py) and its curves figure."""
    store = Store(results_dir, read_only=True)
    has_records = any(results_dir.glob(f"*/*/{RECORD_NAME}"))
    index = store.read_index() if has_records else pd.DataFrame()
    curves = store.read_curves() if has_records else pd.DataFrame()
    pages = []
    for verdict in verdicts:
        if verdict.get("verdict") == "unreadable":
            continue
        stem = claim_page_name(verdict["claim"])
        evidence = claim_evidence(verdict, curves)
        if isinstance(evidence, str):
            block: Block = Text(evidence)
        else:
            figures = _figures_module()
            colours = figures.method_colours(list(evidence.points["side"].unique()))
            figure = figures.claim_curves(evidence.points, evidence.x, evidence.xlabel, evidence.panels, colours,
                                          evidence.title, evidence.target)
            block = _image(f"{stem}-curves", figure, f"{verdict['claim']}: " + ", ".join(evidence.panels.values())
                           + f" against {evidence.xlabel}, one thin line per seed and the mean thick, per side"
                           + (f"; dotted: the claim's target {evidence.target:g}" if evidence.target is not None
                              else "") + ".")
        sections = claim_sections(verdict, claim_notes(verdict, CLAIMS_DIR), block, sides_table(verdict, index))
        intro = (f"Generated {generated} from the verdict file `{results_dir / 'claims' / (verdict['claim'] + '.json')}`"
                 f" and the records it lists; rebuild with `bench report {CLAIMS_TARGET}`. All claims: `index.html`.")
        pages.append(Page(stem, f"claim: {verdict['claim']}", intro, tuple(sections)))
    return pages


def build_report(results_dir: Path, target: str, reports_dir: Path = Path("reports")) -> Path:
    """Build reports/<target>/ from the results table; return the path of its index.html.

    target: a suite name (its records, then every claim verdict) or "claims" (the verdicts
    alone). Raises ReportError when there is nothing to report or the suite is unknown.
    """
    results_dir = Path(results_dir)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    pages: list[Page] = []
    if target == CLAIMS_TARGET:
        verdicts = load_verdicts(results_dir)
        pages = claim_pages(results_dir, verdicts, generated)
        sections = [claims_section(results_dir)]
        if pages:
            sections.append(Section("Claim pages", (
                Text("Each claim's page: the statement, how it is operationalised and why, the verdict with its "
                     "interval and seeds, the robustness label, the caveats, the curves behind it and the "
                     "references."),
                Links(tuple((page.title.removeprefix("claim: "), page.stem) for page in pages)))))
    else:
        data = read_suite_data(results_dir, target)
        sections = [*suite_sections(data, suite_figures(data)), claims_section(results_dir, target)]
    intro = (f"Generated {generated} from the results table in `{results_dir}`, never from a run's memory; "
             f"rebuild with `bench report {target}`.")
    return write_report(Path(reports_dir) / target, f"paradigm-bench report: {target}", intro, sections, pages)


def cmd_report(args: argparse.Namespace) -> int:
    """`bench report TARGET`: print the report's path; 2 with a message when there is none."""
    try:
        path = build_report(Path(args.results_dir), args.target, Path(args.reports_dir))
    except (ReportError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: could not write the report under {args.reports_dir}: {exc.strerror or exc}. "
              "Choose another directory or fix its permissions.", file=sys.stderr)
        return 2
    print(path)
    return 0
