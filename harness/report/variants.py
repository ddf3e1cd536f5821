"""Variant labels: what tells apart the runs of one task label, or of one method, in a report.

One suite can hold a task under several settings (profiles, a claim's shorter budget) and a
method under several configs (a claim's baseline, a learning-rate sweep); `task_variants` and
`method_variants` label each record with the config values that differ inside its group,
shortened to the fewest keys that still tell them apart (`backprop (lr=0.003, +2)`), and
`variant_details` gives the full list for the report's variants table. Apart from
harness/report/build.py because these rules are a piece of their own, read and tested on
their own, with no part in laying out the report.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.format import plain, short


# Config fields that name a cell rather than set it up: never part of a variant label.
_CELL_NAMES = frozenset({"config.suite", "config.task_label", "config.task", "config.method", "config.seed"})
# The method's own settings; every other config field (task and its config, budget, batch size, evaluation
# interval, device, shift, pretraining) is the *setting* the method is trained in.
_METHOD_PREFIX = "config.method_config."
LABEL_CHARS = 40  # a variant label longer than this keeps only the keys that tell the variants apart


def _config_key(column: str) -> str:
    """`config.method_config.lr` -> `lr`, `config.budget.steps` -> `budget.steps`."""
    return column.removeprefix("config.").removeprefix("method_config.").removeprefix("task_config.")


def _short_keys(columns: list[str]) -> dict[str, str]:
    """Each column's last dotted part (`config.task_config.vit.depth` -> `depth`), or more of it
    where two columns would otherwise read alike."""
    names = {c: _config_key(c).split(".") for c in columns}
    out = {}
    for column, parts in names.items():
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != column and ".".join(q[-n:]) == tail for o, q in names.items()):
                break
        out[column] = tail
    return out


def _variant_labels(group: pd.DataFrame, columns: list[str]) -> dict[Any, str]:
    """Labels for the rows of `group` (one name, several configs) saying what tells them apart.

    Only the columns that differ inside the group count, under their short names, most telling
    first (the task, then the keys with the most distinct values); when the full list is longer
    than LABEL_CHARS, the label stops at the fewest keys that still tell every config apart and
    says how many it left out (`task=digits, +4`). The report's variants table lists them all.
    """
    varying = [c for c in columns if group[c].astype(str).nunique() > 1]
    if not varying:
        return {}
    distinct = {c: group[c].astype(str).nunique() for c in varying}
    varying.sort(key=lambda c: (c != "config.task", -distinct[c], c))
    names = _short_keys(varying)
    parts = {pos: [f"{names[c]}={short(plain(v))}" for c, v in row.items()] for pos, row in group[varying].iterrows()}
    configs = group[varying].astype(str).drop_duplicates().shape[0]
    for n in range(1, len(varying) + 1):
        labels = {pos: ", ".join(p[:n]) + (f", +{len(p) - n}" if len(p) > n else "") for pos, p in parts.items()}
        if n == len(varying) or (len(set(labels.values())) == configs
                                 and max(len(", ".join(p)) for p in parts.values()) > LABEL_CHARS):
            return labels
    return labels


def _config_columns(index: pd.DataFrame, setting_only: bool = False) -> list[str]:
    return [c for c in index.columns if c.startswith("config.") and c not in _CELL_NAMES
            and not (setting_only and c.startswith(_METHOD_PREFIX))]


def variant_details(index: pd.DataFrame, by: list[str], setting_only: bool = False) -> pd.Series:
    """For each row, every config value that differs inside its `by` group, in full ("" when none)."""
    config = _config_columns(index, setting_only)
    out = pd.Series("", index=index.index, dtype=object)
    for _, group in index.groupby(by):
        varying = [c for c in config if group[c].astype(str).nunique() > 1]
        for position, row in group[varying].iterrows() if varying else ():
            out[position] = ", ".join(f"{_config_key(c)}={short(plain(v))}" for c, v in row.items())
    return out


def task_variants(index: pd.DataFrame) -> pd.Series:
    """Each record's task label, plus the setting that tells its runs apart.

    Two profiles of a suite (quick on digits, full on Fashion-MNIST) or a claim's shorter budget
    train the same task label in different settings; drawn together, their curves share axes that
    fit neither and their legends list every differing key. A task label whose runs differ in
    setting (any config field but the method's own) becomes one label per setting, e.g.
    `mlp (task=digits, +3)`, so each gets its own rows, figures and axes.
    """
    labels = index["task_label"].astype(object).copy()
    setting = _config_columns(index, setting_only=True)
    for _, group in index.groupby("task_label"):
        for position, label in _variant_labels(group, setting).items():
            labels[position] = f"{group.loc[position, 'task_label']} ({label})"
    return labels


def method_variants(index: pd.DataFrame) -> pd.Series:
    """Each record's method name, plus the config values that tell its runs apart.

    One suite can hold a method under several configs (a claim's baseline and learning-rate
    sweep land in the suite they borrow); grouping by name alone would average them into one
    row. Where the runs of a (task, method) differ in config, each variant is labelled with
    the differing values, e.g. `backprop (lr=0.003, optimizer=adamw)`, shortened as
    `_variant_labels` says when there are many.
    """
    labels = index["method"].astype(object).copy()
    config = _config_columns(index)
    for (_, method), group in index.groupby(["task_label", "method"]):
        for position, label in _variant_labels(group, config).items():
            labels[position] = f"{method} ({label})"
    return labels
