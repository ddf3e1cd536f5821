"""A suite's rows of the results tables, loaded and labelled for a report (`SuiteData`).

`read_index` refuses clearly when a results directory has nothing to report on;
`read_suite_data` takes one suite's rows of index.parquet and curves.parquet, drops the columns
only other suites fill, labels task and method variants (harness/report/variants.py) and
reuses the terminal table's summary (`summarise`), so the report's numbers are the terminal's.
Apart from harness/report/build.py, which lays out the sections, because every section reads
this one loaded form and none of them reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.index_table import ID_COLUMNS, INDEX_ID_COLUMNS
from harness.registry import RegistryError, did_you_mean, get_task
from harness.report.claims_page import CLAIMS_TARGET
from harness.report.format import missing, plain
from harness.report.summary import Row, summarise
from harness.report.variants import method_variants, task_variants, variant_details
from harness.store import INDEX_NAME, RECORD_NAME, Store


class ReportError(RuntimeError):
    """Nothing to report on, or an unknown target; the message says what to run instead."""


def index_records(index: pd.DataFrame) -> list[dict[str, Any]]:
    """Index rows back to nested records (nulls dropped): the shape `summarise` reads.

    The index is the flattened record (`final.test.accuracy` <- record["final"]["test"]
    ["accuracy"]), so this is its inverse; reusing `summarise` keeps the report's means
    identical to the terminal table's.
    """
    records = []
    for row in index.to_dict(orient="records"):
        record: dict[str, Any] = {}
        for key, value in row.items():
            if missing(value):
                continue
            *parents, leaf = key.split(".")
            node = record
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = plain(value)
        records.append(record)
    return records


def _no_results(results_dir: Path) -> ReportError:
    return ReportError(f"no results in {results_dir}: run `bench run suite=NAME results_dir={results_dir}` "
                       "first (`bench list suites` names the suites).")


def read_index(results_dir: Path) -> pd.DataFrame:
    """The results index, refusing clearly when there is nothing to report on.

    Checked before touching the Store, which would otherwise create an empty index in a
    directory that was a typo.
    """
    has_records = results_dir.is_dir() and (
        (results_dir / INDEX_NAME).exists() or any(results_dir.glob(f"*/*/{RECORD_NAME}")))
    if not has_records:
        raise _no_results(results_dir)
    index = Store(results_dir).read_index()
    if index.empty:
        raise _no_results(results_dir)
    return index


@dataclass(frozen=True)
class SuiteData:
    """One suite's rows of the two results tables, and the terminal table's summary of them."""

    name: str
    results_dir: Path
    index: pd.DataFrame
    curves: pd.DataFrame
    rows: list[Row]

    @property
    def tasks(self) -> list[str]:
        return sorted(self.index["task_label"].dropna().unique())

    def metric(self, task: str) -> str | None:
        """The task's headline metric, known once one of its cells has completed."""
        return next((r.metric for r in self.rows if r.task == task and r.metric), None)

    def higher_is_better(self, task: str) -> bool:
        """Which way the task's metric goes. Records do not store it, so the registered task
        class is asked; a task no longer registered is assumed higher-is-better."""
        names = self.index.loc[self.index["task_label"] == task, "task"].dropna().unique()
        try:
            return bool(get_task(str(names[0])).higher_is_better)
        except (IndexError, RegistryError, AttributeError):
            return True

    def column(self, name: str, rows: pd.DataFrame | None = None) -> pd.Series:
        """An index column, or nulls where no record has that field (final.* when all failed)."""
        rows = self.index if rows is None else rows
        return rows[name] if name in rows else pd.Series(np.nan, index=rows.index, dtype=float)

    def completed(self, task: str | None = None) -> pd.DataFrame:
        done = self.index[self.index["status"] == "completed"]
        return done if task is None else done[done["task_label"] == task]


def read_suite_data(results_dir: Path, suite: str) -> SuiteData:
    """A suite's records from the results table; an unknown suite gets a did-you-mean."""
    index = read_index(results_dir)
    suites = sorted(index["suite"].dropna().unique())
    if suite not in suites:
        raise ReportError(f"no records of suite {suite!r} in {results_dir}.{did_you_mean(suite, suites)} "
                          f"Suites with records: {', '.join(suites)}; or `bench report {CLAIMS_TARGET}`.")
    rows = _own_columns(index[index["suite"] == suite], INDEX_ID_COLUMNS)
    # settings (profiles, budgets) apart first, then the method variants within each
    rows["setting"] = variant_details(rows, ["task_label"], setting_only=True)
    rows["task_label"] = task_variants(rows)
    rows["variant"] = variant_details(rows, ["task_label", "method"])
    rows["method"] = method_variants(rows)
    curves = Store(results_dir).read_curves()
    curves = _own_columns(curves[curves["suite"] == suite], ID_COLUMNS)
    for column in ("task_label", "method"):  # the curves are labelled and coloured like their records
        curves[column] = curves["run_id"].map(dict(zip(rows["run_id"], rows[column])))
    return SuiteData(suite, results_dir, rows, curves, summarise(index_records(rows)))


def _own_columns(rows: pd.DataFrame, keep: tuple[str, ...]) -> pd.DataFrame:
    """Drop the columns only other suites' records fill (a ledger category, a package), so
    they do not show up in this suite's report as zeros or unknowns."""
    filled = [c for c in rows.columns if c in keep or rows[c].notna().any()]
    return rows[filled].reset_index(drop=True)
