"""The typed record: every kind the runner writes round-trips, wrong shapes are refused by path.

The example records are made by the real runner (tiny cells: one thread, a few steps), so
this test follows the code that writes records; the LM record is a trimmed literal, since an
LM cell needs the corpus and lm-eval.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import registry
from harness.config import resolve
from harness.interface import Batch, StepStats
from harness.plan import plan
from harness.record import (RECORD_SCHEMA, ContinualFinal, ControlFinal, MemoryFinal, Record, RecordError,
                            SupervisedFinal, parse_record, upgrade_v1)
from harness.runner import run_cell
from harness.jsonable import to_jsonable
from methods.backprop import Backprop

DIGITS = ("tasks: {{mlp: {{task: {task}, model: mlp, mlp: {{hidden: [32]}}}}}}\nmethod: {method}\nseeds: 1\n"
          "budget: {{steps: {steps}}}\nbatch_size: 32\neval_every: 2\ndevice: cpu\nthreads: 1\n")
CONTROL = ("tasks: {maze: {task: t_maze}}\nmethod: dqn\nseeds: 1\nbudget: {env_steps: 60}\nbatch_size: 1\n"
           "eval_every: 20\ndevice: cpu\nthreads: 1\n")
MEMORY = ("tasks: {lm: {task: synthetic_lm, vocab_size: 256, seq_len: 32, n_train: 8, memory_only: true,\n"
          "  decoder: {dim: 32, depth: 1, heads: 2, kv_heads: 1, context: 32}}}\nmethod: zeroth_order\nseeds: 1\n"
          "budget: {steps: 1}\nbatch_size: 2\ndevice: cpu\nthreads: 1\n")


class _Diverges(Backprop):
    """Backprop whose third step reports a NaN loss (or, as `raises`, an exception)."""

    name = "diverges"

    def step(self, batch: Batch) -> StepStats:
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3 and self.name == "raises":
            raise RuntimeError("boom in step")
        stats = super().step(batch)
        return stats if self.steps < 3 else StepStats(loss=math.nan, examples=stats.examples,
                                                      forward_equivalents=stats.forward_equivalents)


def _run(directory: Path, text: str, *overrides: str) -> dict[str, Any]:
    path = directory / f"suite{len(list(directory.iterdir()))}.yaml"
    path.write_text(text)
    (cell,) = plan(resolve([f"suite={path}", *overrides]))
    record = to_jsonable(run_cell(cell))  # as Store.write stores it
    record["worker"] = {"host": "test", "pid": 1}  # as execute.execute adds it
    if record.get("curve"):
        record["curve"] = record["curve"][:2]
    return record


LM_RECORD: dict[str, Any] = {  # an LM cell of the tiny lm suite (tests/test_lm.py), 4 steps, curve trimmed
    "schema": 1, "run_id": "2292f94848255998", "suite": "lmtiny", "task_label": "shakespeare", "task": "shakespeare",
    "method": "backprop", "seed": 0, "status": "completed", "error": None,
    "config": {"batch_size": 32, "budget": {"steps": 4.0}, "device": "cpu", "eval_every": 2, "method": "backprop",
               "method_config": {"lr": 0.01}, "seed": 0, "suite": "lmtiny", "task": "shakespeare",
               "task_config": {"decoder": {"dim": 32, "depth": 1}, "lm_eval_tasks": ["shakespeare_next_line"]},
               "task_label": "shakespeare"},
    "env": {"python": "3.11.7", "packages": {"torch": "2.13.0+cpu"}}, "budget": {"kind": "steps", "value": 4.0},
    "threads": 1, "started_at": "2026-11-30T18:40:01+00:00", "finished_at": "2026-11-30T18:40:09+00:00",
    "worker": {"host": "vm", "pid": 12345},
    "task_info": {"windows_per_epoch": 5000, "unigram_test_bits_per_byte": 4.41},
    "counters": {"env_steps": 0, "examples": 128, "flops": 9.8e8, "forward_equivalents": 12.0, "joules": None,
                 "seconds": 0.2, "steps": 4},
    "curve": [{"env_steps": 0, "examples": 64, "flops": 4.9e8, "forward_equivalents": 6.0, "joules": None,
               "seconds": 0.1, "steps": 2, "train_loss": 5.5, "val_metric": 7.5}],
    "timing": {"eval_seconds": 6.1, "median_from": "unprobed steps", "median_step_seconds": 0.04,
               "probe_seconds": 0.08, "probe_steps": 1, "train_seconds": 0.2},
    "memory": {"ledger": {"bytes": {"parameters": 80000, "gradients": 80000}, "rule": "sum", "total_bytes": 160000},
               "measured": {"cuda_max_allocated_bytes": None, "process_peak_rss_bytes": 500000000}},
    "energy": {"attribution": "read around each step", "joules": None, "loop_joules": None, "reason": "no counter",
               "source": None, "window_seconds": 0.2, "window_too_short": None},
    "flops": {"per_step": {"update": 245000000}, "reason": None, "steps_per_kind": {"update": 4}, "total": 9.8e8},
    "final": {"metric": "bits_per_byte", "best_step": 4, "val": {"bits_per_byte": 7.166, "loss": 4.967},
              "test": {"bits_per_byte": 7.168, "loss": 4.968}, "higher_is_better": False, "model_state": "model.pt",
              "lm_eval": {"reason": None, "tasks": {"shakespeare_next_line": {"acc": 0.25, "acc_stderr": 0.25},
                                                     "shakespeare_bpb": {"bits_per_byte": 7.165}}}},
}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """One record (schema 1, as today's runner writes it) of every kind and status."""
    d = tmp_path_factory.mktemp("suites")
    registry.discover()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._METHODS, "diverges", _Diverges)
        mp.setitem(registry._METHODS, "raises", type("Raises", (_Diverges,), {"name": "raises"}))
        out = {
            "supervised": _run(d, DIGITS.format(task="digits", method="backprop", steps=4), "shift.enabled=true",
                               "shift.noise=[0.1]", "shift.rotation=[]", "shift.translation=[]"),
            "diverged": _run(d, DIGITS.format(task="digits", method="diverges", steps=4)),
            "failed": _run(d, DIGITS.format(task="digits", method="raises", steps=4)),
            "unsupported": _run(d, DIGITS.format(task="digits", method="dqn", steps=4)),
            "continual": _run(d, DIGITS.format(task="split_digits", method="backprop", steps=2)),
            "continual_diverged": _run(d, DIGITS.format(task="split_digits", method="diverges", steps=2)),
            "control": _run(d, CONTROL),
            "memory": _run(d, MEMORY),
            "lm": copy.deepcopy(LM_RECORD),
        }
    expected = {"supervised": "completed", "diverged": "diverged", "failed": "failed", "unsupported": "unsupported",
                "continual_diverged": "diverged"}
    for name, record in out.items():
        assert record["status"] == expected.get(name, "completed"), (name, record.get("traceback"))
    return out


KINDS = {"supervised": SupervisedFinal, "continual": ContinualFinal, "control": ControlFinal, "memory": MemoryFinal,
         "lm": SupervisedFinal, "diverged": None, "failed": None, "unsupported": None, "continual_diverged": None}


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_round_trips(records, name: str) -> None:
    data = records[name]
    record = parse_record(data)
    expected = upgrade_v1(data) if data["schema"] == 1 else data  # the LM fixture is a schema 1 literal
    assert data["schema"] in (1, RECORD_SCHEMA) and record.schema == RECORD_SCHEMA and record.to_dict() == expected
    assert parse_record(record.to_dict()) == record
    json.dumps(record.to_dict(), allow_nan=False)  # JSON-able as it stands
    if KINDS[name] is None:
        assert record.final is None and record.final_metric() is None
    else:
        assert isinstance(record.final, KINDS[name]) and record.final_metric() == data["final"]["test"][
            data["final"]["metric"]]


def test_accessors_answer_what_the_readers_ask(records) -> None:
    sup, lm, control, cont = (parse_record(records[n]) for n in ("supervised", "lm", "control", "continual"))
    assert sup.measured_peak() == (records["supervised"]["memory"]["measured"]["process_peak_rss_bytes"],
                                   "process peak RSS")
    assert sup.kind == "supervised" and sup.is_final and sup.higher_is_better and sup.final.shift.gap is not None
    assert lm.higher_is_better is False and lm.meets(7.0, 7.1) and not lm.meets(7.2, 7.1)
    assert lm.final.lm_eval.tasks["shakespeare_next_line"]["acc"] == 0.25
    assert control.kind == "control" and control.control.window > 0 and control.spent("env_steps") == 60
    assert cont.continual.forgetting == records["continual"]["continual"]["forgetting"]
    assert parse_record(records["continual_diverged"]).continual.forgetting is None
    assert parse_record(records["failed"]).is_final is False
    assert parse_record(records["unsupported"]).is_final and parse_record(records["memory"]).kind == "memory"


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


_DELETE = object()
BROKEN = [  # (record, path to change, new value, the path the error names, words the message holds)
    ("supervised", "final.test", [0.5], "record.final.test", "expected an object with the metric 'accuracy', got a list"),
    ("supervised", "final.test", {"loss": 1.0}, "record.final.test", "the metric 'accuracy'"),
    ("supervised", "final.test.accuracy", "high", "record.final.test.accuracy", "expected a number or null"),
    ("supervised", "status", "done", "record.status", "one of 'completed'"),
    ("supervised", "counters", _DELETE, "record.counters", "missing"),
    ("supervised", "counters.steps", 2.5, "record.counters.steps", "expected an integer"),
    ("supervised", "final", None, "record.final", "completed record, got null"),
    ("supervised", "seed", "0", "record.seed", "expected an integer, got a string"),
    ("supervised", "extra_field", 1, "record.extra_field", "unknown field"),
    ("continual", "continual.matrix", [[0.5, "x"]], "record.continual.matrix[0][1]", "expected a number"),
    ("continual", "final.test.forgetting", _DELETE, "record.final.test.forgetting", "missing"),
    ("control", "control.episode_returns", {"a": 1}, "record.control.episode_returns", "expected a list"),
    ("memory", "scale.rows", [{"label": "x"}], "record.scale.rows[0].method", "missing"),
    ("lm", "final.lm_eval.tasks", [], "record.final.lm_eval.tasks", "expected an object"),
    ("unsupported", "error", None, "record.error", "reason"),
    ("failed", "final", {"metric": "accuracy", "best_step": 1, "val": {"accuracy": 1}, "test": {"accuracy": 1}},
     "record.final", "expected null for a failed record"),
    ("control", "control.window", _DELETE, "record.control.window", "missing"),
    ("supervised", "control", {}, "record.final.shift", "unknown field (a ControlFinal holds"),
]


@pytest.mark.parametrize("name,path,value,where,words", BROKEN, ids=[f"{b[0]}:{b[1]}" for b in BROKEN])
def test_wrong_shapes_are_refused_naming_the_field(records, name, path, value, where, words) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(_set(records[name], path, value))
    assert caught.value.path == where and str(caught.value).startswith(f"{where}: ")
    assert words in str(caught.value) and "run the cell again" in str(caught.value)


def test_a_bare_status_is_not_a_record() -> None:  # issue 21: it counted as a finished cell
    with pytest.raises(RecordError, match=r"record.schema: expected the record's schema number, got null"):
        parse_record({"status": "completed"})
    with pytest.raises(RecordError, match=r"^record.run_id: missing"):
        parse_record({"schema": 1, "status": "completed"})
    with pytest.raises(RecordError, match="expected a JSON object, got a list"):
        parse_record([])  # type: ignore[arg-type]


def test_schema_1_records_of_the_first_harness_are_upgraded(records) -> None:
    old = {**copy.deepcopy(records["supervised"]), "schema": 1}
    del old["counters"]["env_steps"], old["energy"]["loop_joules"], old["energy"]["attribution"]
    record = parse_record(old)
    assert record.counters.env_steps == 0 and record.energy.loop_joules is None
    unsupported = {k: v for k, v in records["unsupported"].items() if k != "final"} | {"schema": 1}  # as v1 wrote it
    assert parse_record(unsupported).to_dict()["final"] is None
    assert upgrade_v1(old)["schema"] == 2 and old["schema"] == 1  # the input is left as it was


def test_a_newer_schema_is_refused_with_what_to_do(records) -> None:
    data = {**records["supervised"], "schema": RECORD_SCHEMA + 1}
    with pytest.raises(RecordError, match=rf"written by a newer paradigm-bench \(schema {RECORD_SCHEMA + 1}\); "
                                          r".*Upgrade the harness"):
        parse_record(data)
    with pytest.raises(RecordError, match="expected a schema from 1"):
        parse_record({**records["supervised"], "schema": 0})


def test_a_record_built_in_code_is_checked_too(records) -> None:
    record = parse_record(records["diverged"])
    with pytest.raises(RecordError, match="record.final: expected the final scores of a completed record"):
        Record(**{**record.__dict__, "status": "completed"})


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)
FIELDS = ["status", "seed", "final", "final.test", "final.metric", "final.val.accuracy", "counters", "counters.steps",
          "curve", "memory.ledger", "continual", "control", "scale", "shift", "budget.value", "worker", "schema"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["supervised", "continual", "control", "memory", "lm", "unsupported"]),
       changes=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), min_size=1, max_size=3))
def test_any_json_in_a_few_fields_gives_a_record_or_a_record_error(records, name, changes) -> None:
    data = copy.deepcopy(records[name])
    for path, value in changes:
        parent = data
        for key in path.split(".")[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent[path.split(".")[-1]] = value
    try:
        record = parse_record(data)
    except RecordError:
        return
    assert isinstance(record, Record) and parse_record(record.to_dict()) == record
