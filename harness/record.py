"""The run record: one typed form, one JSON shape (record.json), checked on every read.

A record is everything one cell left behind: who it was (run id, suite, task, method,
seed, the resolved config), where it ran (env, threads, worker), how it ended (status,
error, traceback) and, when it trained, what it measured and scored. `Record.to_dict()`
is exactly what is written to `<suite>/<run_id>/record.json`; `parse_record(data)` is
the only way back, and refuses (RecordError, naming the path inside the record, what was
expected and what to do) anything that is not a record this harness could have written.

Layout, by status:

- every record: schema, run_id, suite, task_label, task, method, seed, status, error,
  config, env, budget, threads, started_at, finished_at, final; worker when a launcher
  ran it; traceback when it failed.
- completed and diverged cells also: task_info, counters, curve, timing, memory,
  energy, flops. `final` is null for every status but completed.

`final` and one kind section, by task kind (the section tells the kind; at most one):

- supervised (classification, LM; no section): final = metric, best_step, val, test
  (metric dicts holding `final.metric`), shift (with shift.enabled); LM cells add
  higher_is_better, lm_eval and model_state (when saved).
- continual (`continual`: the accuracy matrices, per experience; its metrics once
  trained through): final.val/test hold average_accuracy, forgetting, bwt, fwt, accuracy.
- control (`control`: target, window, samples-to-target, every episode's return):
  final.val/test hold return, samples_to_target(_reason), episodes, window_full.
- memory-only (`scale`: one row per measured config): final.val/test hold ledger_gib.

Versioning: `schema` is RECORD_SCHEMA for what this module writes. Reading an older
schema runs its upgrade function (`upgrade_v1`: schema 1 -> 2) first; a newer schema is
refused with a message to upgrade the harness. A change to the shape bumps RECORD_SCHEMA
and adds an upgrade function for the previous number; records on disk are never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from harness.typed_json import decode, encode, what

RECORD_SCHEMA = 2
Status = Literal["completed", "diverged", "failed", "unsupported"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "diverged", "unsupported"})  # a resumed run skips these
Kind = Literal["supervised", "continual", "control", "memory"]
_FIX = ("Records are written by the harness only: move this record.json away (or delete its run directory) "
        "and run the cell again.")


class RecordError(ValueError):
    """A record of the wrong shape; `path` is where inside it (e.g. `record.final.test`)."""

    def __init__(self, path: str, problem: str, fix: str = _FIX) -> None:
        super().__init__(f"{path}: {problem}. {fix}")
        self.path = path


def _opt(key: str | None = None) -> Any:
    """An optional field: omitted from the JSON when None (absent in the JSON reads as None)."""
    return field(default=None, metadata={"omit": True, **({"key": key} if key else {})})


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Budget:
    kind: str
    value: float


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int


@dataclass(frozen=True)
class Counters:
    steps: int
    examples: int
    forward_equivalents: float
    seconds: float
    flops: float | None
    joules: float | None
    env_steps: int


@dataclass(frozen=True)
class Timing:
    train_seconds: float
    median_step_seconds: float | None
    median_from: str
    probe_steps: int
    probe_seconds: float
    eval_seconds: float
    phase_seconds: dict[str, float] | None = _opt()  # every second of the cell by phase (harness/loops/common.py)
    cell_seconds: float | None = _opt()  # their sum: the cell's wall time from setup to its last evaluation


@dataclass(frozen=True)
class Ledger:
    bytes: dict[str, int]
    total_bytes: int
    rule: str


@dataclass(frozen=True)
class Memory:
    ledger: Ledger
    measured: dict[str, Any]  # cuda_max_allocated_bytes, process_peak_rss_bytes, ... (harness/meter.py)
    ledger_source: str | None = _opt()  # memory-only cells: "meta device" or "cuda run"


@dataclass(frozen=True)
class Energy:
    joules: float | None
    source: str | None
    reason: str | None
    attribution: str | None
    window_seconds: float
    loop_joules: float | None
    window_too_short: bool | None


@dataclass(frozen=True)
class Flops:
    per_step: dict[str, float]
    steps_per_kind: dict[str, int]
    total: float | None
    reason: str | None


@dataclass(frozen=True)
class Shift:
    gap: float | None
    reason: str | None
    clean: float | None = _opt()
    shifted: dict[str, float | None] | None = _opt()
    mean_shifted: float | None = _opt()

    def _omitted(self) -> set[str]:  # the three scores are written together, or not at all
        return set() if self.shifted is not None else {"clean", "shifted", "mean_shifted"}


@dataclass(frozen=True)
class LMEval:
    tasks: dict[str, dict[str, float | None]]  # lm-eval task -> {acc, acc_stderr, bits_per_byte, ...}
    reason: str | None


@dataclass(frozen=True)
class Final:
    """The selected (or last) state's scores; val and test are metric dicts holding `metric`."""

    metric: str
    best_step: int
    val: dict[str, Any]
    test: dict[str, Any]
    SCORES: ClassVar[dict[str, Any]] = {}  # keys every val/test of this kind holds, and their types

    def score(self, split: str = "test") -> float | None:
        value = {"test": self.test, "val": self.val}[split].get(self.metric)
        return None if value is None else float(value)

    @classmethod
    def _check_json(cls, data: Mapping[str, Any], path: str, error: Callable[[str, str], Exception]) -> None:
        """val and test hold the metric and the scores every record of this kind holds."""
        metric = data.get("metric")
        if not isinstance(metric, str):
            return  # the field's own check names the problem
        for split in ("val", "test"):
            scores, where = data[split], f"{path}.{split}"
            if not isinstance(scores, Mapping) or metric not in scores:
                got = f"keys {sorted(map(str, scores))}" if isinstance(scores, Mapping) else what(scores)
                raise error(where, f"expected an object with the metric {metric!r}, got {got}")
            for key, tp in {metric: float | None, **cls.SCORES}.items():
                if key not in scores:
                    raise error(f"{where}.{key}", f"missing (a {cls.__name__} scores {', '.join(cls.SCORES)})")
                decode(scores[key], tp, f"{where}.{key}", error)


@dataclass(frozen=True)
class SupervisedFinal(Final):
    shift: Shift | None = _opt()
    higher_is_better: bool | None = _opt()  # LM cells; None: higher is better (accuracies)
    model_state: str | None = _opt()  # LM cells: model.pt beside record.json
    lm_eval: LMEval | None = _opt()  # LM cells


@dataclass(frozen=True)
class ContinualFinal(Final):
    shift: Shift | None = _opt()
    SCORES: ClassVar[dict[str, Any]] = {"average_accuracy": float, "forgetting": float | None, "bwt": float | None,
                                        "fwt": float | None, "accuracy": float}


@dataclass(frozen=True)
class ControlFinal(Final):
    SCORES: ClassVar[dict[str, Any]] = {"return": float | None, "samples_to_target": int | None,
                                        "samples_to_target_reason": str | None, "episodes": int, "window_full": bool}


@dataclass(frozen=True)
class MemoryFinal(Final):
    SCORES: ClassVar[dict[str, Any]] = {"ledger_gib": float}


@dataclass(frozen=True)
class Continual:
    scenario: str
    regime: str
    experiences: int
    budget_per_experience: dict[str, float]
    phase_end_steps: list[int]
    matrix: list[list[float]]  # test accuracy on experience j after phase i
    val_matrix: list[list[float]]
    random_init: list[float]
    val_random_init: list[float]
    selection: str
    average_accuracy: float | None = _opt()  # the four metrics: once every phase trained
    forgetting: float | None = _opt()
    bwt: float | None = _opt()
    fwt: float | None = _opt()

    def _omitted(self) -> set[str]:
        return {"average_accuracy", "forgetting", "bwt", "fwt"} if self.average_accuracy is None else set()


@dataclass(frozen=True)
class Control:
    target_return: float
    window: int
    samples_to_target: int | None
    samples_to_target_reason: str | None
    episodes: int
    episode_returns: list[float]
    episode_end_steps: list[int]
    agent: dict[str, Any]
    scoring: str


@dataclass(frozen=True)
class ScaleRow:
    label: str
    method: str
    config: dict[str, Any]
    ledger: dict[str, int]
    ledger_total: int
    meta_simulated_peak: int | None
    fits_80gb_ledger: bool
    fits_80gb_peak: bool | None
    flops_per_step: float | None
    cuda_max_allocated: int | None
    cuda_ledger_total: int | None
    cuda_error: str | None


@dataclass(frozen=True)
class Scale:
    rows: list[ScaleRow]
    gpu_bytes: float
    steps: int


_SECTIONS: dict[str, tuple[Kind, type[Final]]] = {
    "continual": ("continual", ContinualFinal), "control": ("control", ControlFinal), "scale": ("memory", MemoryFinal)}
_MEASURED = ("task_info", "counters", "curve", "timing", "memory", "energy", "flops")


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Record:
    schema: int
    run_id: str
    suite: str
    task_label: str
    task: str
    method: str
    seed: int
    status: Status
    error: str | None
    config: dict[str, Any]  # the cell's identity (harness/plan.py Cell.identity)
    env: dict[str, Any]
    budget: Budget
    threads: int
    started_at: str
    finished_at: str
    final: SupervisedFinal | ContinualFinal | ControlFinal | MemoryFinal | None
    worker: Worker | None = _opt()
    traceback: str | None = _opt()
    task_info: dict[str, Any] | None = _opt()
    counters: Counters | None = _opt()
    curve: list[dict[str, Any]] | None = _opt()  # counters + train_loss, val_metric, ... per evaluation
    timing: Timing | None = _opt()
    memory: Memory | None = _opt()
    energy: Energy | None = _opt()
    flops: Flops | None = _opt()
    continual: Continual | None = _opt()
    control: Control | None = _opt()
    scale: Scale | None = _opt()

    def __post_init__(self) -> None:
        _check(self)

    @property
    def kind(self) -> Kind:
        return next((kind for name, (kind, _) in _SECTIONS.items() if getattr(self, name) is not None), "supervised")

    @property
    def is_final(self) -> bool:
        """Completed, diverged or unsupported: a resumed run does not train this cell again."""
        return self.status in FINAL_STATUSES

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def higher_is_better(self) -> bool:
        return not (isinstance(self.final, SupervisedFinal) and self.final.higher_is_better is False)

    @property
    def device(self) -> str | None:
        return self.config.get("device")

    def final_metric(self, split: str = "test") -> float | None:
        """`final[split][final.metric]`; None when the cell did not complete (or scored null)."""
        return None if self.final is None else self.final.score(split)

    def meets(self, value: float | None, target: float) -> bool:
        """`value` at least as good as `target`, in this record's metric direction."""
        return value is not None and (value >= target if self.higher_is_better else value <= target)

    def spent(self, axis: str) -> float | None:
        """A counter (steps, examples, seconds, flops, joules, env_steps, ...) at the end."""
        value = None if self.counters is None else getattr(self.counters, axis)
        return None if value is None else float(value)

    def measured_peak(self) -> tuple[int | None, str]:
        """The headline measured memory: CUDA max allocated on a GPU, else the process's peak RSS."""
        measured = {} if self.memory is None else self.memory.measured
        if measured.get("cuda_max_allocated_bytes") is not None:
            return measured["cuda_max_allocated_bytes"], "cuda max allocated"
        return measured.get("process_peak_rss_bytes"), "process peak RSS"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict written to record.json (the shape `parse_record` reads)."""
        return encode(self)


def _check(r: Record) -> None:
    if r.schema != RECORD_SCHEMA:
        raise RecordError("record.schema", f"a Record holds schema {RECORD_SCHEMA}, got {r.schema}; read older "
                          "records with parse_record, which upgrades them")
    sections = [name for name in _SECTIONS if getattr(r, name) is not None]
    if len(sections) > 1:
        raise RecordError("record", f"expected at most one kind section, got {' and '.join(sections)}")
    if r.status != "completed" and r.final is not None:
        raise RecordError("record.final", f"expected null for a {r.status} record, got an object")
    if r.status == "completed" and r.final is None:
        raise RecordError("record.final", "expected the final scores of a completed record, got null")
    if r.status != "completed" and r.error is None:
        raise RecordError("record.error", f"expected the reason a {r.status} record did not complete, got null")
    if r.status in ("completed", "diverged"):
        missing = [name for name in _MEASURED if getattr(r, name) is None]
        if missing:
            raise RecordError(f"record.{missing[0]}", f"missing: a {r.status} record holds {', '.join(_MEASURED)}")
    if r.final is not None:
        wanted = _SECTIONS[sections[0]][1] if sections else SupervisedFinal
        if not isinstance(r.final, wanted):
            raise RecordError("record.final", f"expected {wanted.__name__} for a {r.kind} record, "
                              f"got {type(r.final).__name__}")


# --------------------------------------------------------------------------- reading


def upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """Schema 1 (records before the typed record) -> schema 2.

    Schema 1 has schema 2's shape except that `final` is absent from failed and
    unsupported records (schema 2 writes null), and records from the first versions of
    the harness lack `counters.env_steps` (0: no environment steps) and the energy
    section's `attribution` and `loop_joules` (null: not recorded).
    """
    out = dict(data)
    out["schema"] = 2
    out.setdefault("final", None)
    if isinstance(out.get("counters"), Mapping):
        out["counters"] = {"env_steps": 0, **out["counters"]}
    if isinstance(out.get("energy"), Mapping):
        out["energy"] = {"attribution": None, "loop_joules": None, **out["energy"]}
    return out


UPGRADES: dict[int, Callable[[Mapping[str, Any]], dict[str, Any]]] = {1: upgrade_v1}


def parse_record(data: Mapping[str, Any] | Record) -> Record:
    """A record dict (as read from record.json) -> Record, upgrading older schemas first.

    Raises RecordError naming the path inside the record, what was expected, and what to do.
    """
    if isinstance(data, Record):  # already read and checked
        return data
    if not isinstance(data, Mapping):
        raise RecordError("record", f"expected a JSON object, got {what(data)}")
    schema = data.get("schema")
    if schema is None or isinstance(schema, bool) or not isinstance(schema, int):
        raise RecordError("record.schema", f"expected the record's schema number, got {what(schema)}")
    if schema > RECORD_SCHEMA:
        raise RecordError("record.schema", f"written by a newer paradigm-bench (schema {schema}); this one reads "
                          f"schemas 1 to {RECORD_SCHEMA}", "Upgrade the harness (git pull; pip install -e .).")
    if schema < 1:
        raise RecordError("record.schema", f"expected a schema from 1 to {RECORD_SCHEMA}, got {schema}")
    while schema < RECORD_SCHEMA:
        data, schema = UPGRADES[schema](data), schema + 1
    sections = [name for name in _SECTIONS if data.get(name) is not None]
    final_type = _SECTIONS[sections[0]][1] if len(sections) == 1 else SupervisedFinal
    return decode(data, Record, "record", RecordError, {"final": final_type | None})
