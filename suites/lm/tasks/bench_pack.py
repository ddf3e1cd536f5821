"""lm-eval hooks of the offline task pack: load the pack's data, and register the `bench` model.

lm-eval imports this file by path when it loads a task YAML of this folder (`!function
bench_pack.<name>`), so:

- each `custom_dataset` hook builds (on first use) and loads the pack's jsonl from the
  texts fetched by `bench data shakespeare`; the path is resolved here, at load time, from
  the task metadata (`data_dir`, or the record of `run=ID`) or the default data directory;
- `mmlu_offline` loads one MMLU subject written by `bench data mmlu` (the mmlu_offline_*.yaml
  tasks pass their subject as a dataset kwarg);
- importing `harness.lm_eval_bridge` registers the `bench` model with lm-eval, which is what
  lets plain `lm_eval --model bench --tasks suites/lm/tasks/<task>.yaml` work from a shell
  (lm-eval 0.4 has no entry-point group for third-party models; see the bridge's docstring).

The repository root is put on sys.path first, so the pack always runs the code of the
checkout it belongs to, even when another checkout is the installed one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import harness.lm_eval_bridge  # noqa: E402,F401  (registers the `bench` model)
from suites.tasks import lm_eval_pack  # noqa: E402
from suites.tasks import mmlu_offline as mmlu_data  # noqa: E402


def shakespeare_next_line(**metadata: Any) -> Any:
    return lm_eval_pack.load("shakespeare", "next_line", metadata)


def shakespeare_bpb(**metadata: Any) -> Any:
    return lm_eval_pack.load("shakespeare", "bpb", metadata)


def milton_next_line(**metadata: Any) -> Any:
    return lm_eval_pack.load("milton", "next_line", metadata)


def milton_bpb(**metadata: Any) -> Any:
    return lm_eval_pack.load("milton", "bpb", metadata)


def mmlu_offline(subject: str, **metadata: Any) -> Any:
    """One subject of MMLU's test set, as lm-eval's `mmlu` tasks see cais/mmlu (question, subject, choices, answer)."""
    import datasets

    rows = mmlu_data.load_subject(subject, lm_eval_pack.data_dir_for(metadata))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
