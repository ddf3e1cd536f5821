"""`bench export mlflow|tensorboard`: every record as a run of an experiment tracker.

The records stay the truth; an export is a copy a researcher can browse in the tools they
already use, made from the records alone (like the report), and it can be repeated at any
time: a second export adds nothing.

What one record becomes (`tracked_run`, the same for both trackers):

- params: the cell's resolved config (record.config: task, task_config, method_config, budget,
  batch size, ...), flattened to dotted keys (`method_config.lr`), lists as JSON.
- metrics by step (the step is the curve point's `steps` counter): every number of the curve,
  `val_metric`, `train_loss`, `val_loss`, and the counters `examples`, `seconds` (timed
  training seconds), `forward_equivalents`, `flops`, `joules` where measured.
- final metrics, logged at the last step: `final.<split>.<score>` (the validation-selected
  state's scores), `counters.*`, `timing.*`, `memory.ledger.total_bytes` and each ledger
  category, the measured peaks (`memory.measured.*_bytes`), `energy.joules`, `flops.total` and
  `flops.per_step.<kind>`. Unknown numbers (null in the record) are left out, never logged as 0;
  the reason is kept as a tag where the record gives one (`energy.reason`, `flops.reason`).
- tags: bench.run_id, suite, task_label, task, method, seed, status, device, git_commit (from
  record.env), error (first line) for cells that did not complete.
- artifacts: record.json, and the model checkpoint (model.pt) when the run saved one.

MLflow (`export_mlflow`): one experiment per suite (`paradigm-bench/<suite>`), one run per record
tagged `bench.run_id`; a run is tagged `bench.exported=true` only once everything is logged, so
a run left half-written by a killed export is deleted and written again by the next one. The
default store is MLflow's own default, `sqlite:///mlflow.db` in the working directory (or
$MLFLOW_TRACKING_URI), with artifacts in `mlartifacts/` beside a SQLite file.

TensorBoard (`export_tensorboard`): one event directory per record,
`<logdir>/<suite>/<task_label>/<method>/seed<seed>-<run_id>/`, holding the scalars, the params as
TensorBoard hparams, the tags as text, and copies of record.json and model.pt. It is written
under a temporary name and renamed when complete, so a directory that exists is a finished
export and is skipped.

mlflow and tensorboard come with the `track` extra (`pip install "paradigm-bench[track]"`); they
are imported only when an export runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from harness.record import Record
from harness.store import RECORD_NAME, Store, StoreError, to_jsonable

TARGETS = ("mlflow", "tensorboard")
EXPERIMENT_PREFIX = "paradigm-bench/"
RUN_ID_TAG = "bench.run_id"
DONE_TAG = "bench.exported"  # set last: a run without it is a killed export's leftover
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"  # MLflow 3's own default (its file store is in maintenance mode)
DEFAULT_LOGDIR = "runs"  # torch.utils.tensorboard's default
_MLFLOW_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's limits per log_batch call
_MLFLOW_PARAM_LENGTH = 6000
_MLFLOW_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "unsupported": "KILLED"}
_MLFLOW_NAME = re.compile(r"[^\w\-. /]")  # characters MLflow refuses in a param, metric or tag key
_INSTALL = 'pip install "paradigm-bench[track]"'


class ExportError(RuntimeError):
    """Nothing to export, or a tracker that is not installed; the message says what to do."""


@dataclass(frozen=True)
class TrackedRun:
    """A record as a tracker sees it: params, tags, metrics by step, final metrics, files."""

    run_id: str
    suite: str
    name: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    curve: list[tuple[int, float, dict[str, float]]]  # (step, training seconds, metrics)
    final: dict[str, float]
    final_step: int
    artifacts: list[Path]
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass
class ExportSummary:
    target: str
    location: str
    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # run ids already in the tracker
    replaced: list[str] = field(default_factory=list)  # half-written by an earlier export, written again


# --------------------------------------------------------------------------- records -> runs


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], obj


def _number(value: Any) -> float | None:
    """A finite number to log; None for null, text, booleans and lists (never a made-up 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _millis(stamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _param(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def tracked_run(record: Record, store: Store) -> TrackedRun:
    """What a tracker logs for `record` (see the module docstring)."""
    data = to_jsonable(record.to_dict())
    params = {key: _param(value) for key, value in _leaves(data["config"])}
    tags = {RUN_ID_TAG: record.run_id, "suite": record.suite, "task_label": record.task_label, "task": record.task,
            "method": record.method, "seed": str(record.seed), "status": record.status,
            "budget": f"{record.budget.kind}={record.budget.value:g}"}
    if record.device:
        tags["device"] = str(record.device)
    if record.env.get("git_commit"):
        tags["git_commit"] = str(record.env["git_commit"])
    if record.error:
        tags["error"] = record.error.splitlines()[0][:500]

    curve = []
    for point in data.get("curve") or []:
        metrics = {key: v for key, raw in _leaves(point) if key != "steps" and (v := _number(raw)) is not None}
        step = int(point.get("steps") or 0)
        curve.append((step, float(point.get("seconds") or 0.0), metrics))
    final: dict[str, float] = {}
    for section in ("final", "counters", "timing", "memory", "energy", "flops"):
        for key, raw in _leaves(data.get(section) or {}, f"{section}."):
            if key.startswith("final.") and key.count(".") > 2:
                continue  # nested per-task detail (lm-eval tasks, shifts); record.json holds it
            value = _number(raw)
            if value is not None:
                final[key] = value
    for section in ("energy", "flops"):
        reason = (data.get(section) or {}).get("reason")
        if reason:
            tags[f"{section}.reason"] = str(reason)[:500]
    final_step = int(record.counters.steps) if record.counters is not None else (curve[-1][0] if curve else 0)

    artifacts = [store.record_path(record.suite, record.run_id)]
    model = store.model_state_path(record.suite, record.run_id)
    if model.is_file():
        artifacts.append(model)
    return TrackedRun(record.run_id, record.suite, f"{record.task_label}/{record.method}/seed{record.seed}",
                      record.status, params, tags, curve, final, final_step, artifacts,
                      _millis(record.started_at), _millis(record.finished_at))


def records_to_export(store: Store, suite: str | None) -> list[Record]:
    """Every readable record of `suite` (or of all suites); ExportError when there is none."""
    try:
        records = store.records(suite)
    except ValueError as exc:  # a suite name that cannot be a directory
        raise ExportError(str(exc)) from exc
    except StoreError as exc:
        raise ExportError(str(exc)) from exc
    if not records:
        where = store.root / suite if suite else store.root
        suites = sorted(p.parent.parent.name for p in store.root.glob(f"*/*/{RECORD_NAME}"))
        known = f" Suites with records there: {', '.join(sorted(set(suites)))}." if suites else ""
        raise ExportError(f"no records under {where}: run the suite first (bench run suite=NAME), or pass "
                          f"results_dir=DIR, the results_dir of that run.{known}")
    return records


# --------------------------------------------------------------------------- MLflow


def _mlflow_key(key: str) -> str:
    return _MLFLOW_NAME.sub("_", key)[:250]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _sqlite_artifacts(uri: str, experiment: str) -> str | None:
    """`mlartifacts/<experiment>` beside a SQLite store's file (else MLflow puts them in ./mlruns)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(unquote(uri[len("sqlite:///"):]))  # sqlite:////abs/path.db -> /abs/path.db
    return (db.resolve().parent / "mlartifacts" / experiment.replace("/", "_")).as_uri()


def _absolute_sqlite(uri: str) -> str:
    """`sqlite:///mlflow.db` (relative to the working directory) -> an absolute path, for the messages."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def export_mlflow(store: Store, suite: str | None = None, tracking_uri: str | None = None) -> ExportSummary:
    """Every record of `suite` (or all) as an MLflow run; runs already exported are skipped."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param
    except ImportError as exc:
        raise ExportError(f"bench export mlflow needs MLflow's client, which is not installed ({exc}): {_INSTALL}") from exc

    records = records_to_export(store, suite)
    uri = _absolute_sqlite(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI)
    client = MlflowClient(tracking_uri=uri)
    summary = ExportSummary("mlflow", uri)
    experiments: dict[str, str] = {}
    existing: dict[str, list[Any]] = {}  # bench run id -> the MLflow run
    for record in records:
        name = EXPERIMENT_PREFIX + record.suite
        if name not in experiments:
            found = client.get_experiment_by_name(name)
            experiments[name] = (found.experiment_id if found is not None
                                 else client.create_experiment(name, artifact_location=_sqlite_artifacts(uri, name)))
            for run in _all_runs(client, experiments[name]):
                existing.setdefault(run.data.tags.get(RUN_ID_TAG, ""), []).append(run)
        previous = existing.get(record.run_id, [])
        if any(run.data.tags.get(DONE_TAG) == "true" for run in previous):
            summary.skipped.append(record.run_id)
            continue
        for run in previous:  # a killed export's half-written run
            client.delete_run(run.info.run_id)
        (summary.replaced if previous else summary.exported).append(record.run_id)

        tracked = tracked_run(record, store)
        run = client.create_run(experiments[name], start_time=tracked.start_ms, run_name=tracked.name,
                                tags={_mlflow_key(k): v for k, v in tracked.tags.items()}
                                | ({"mlflow.source.git.commit": tracked.tags["git_commit"]}
                                   if "git_commit" in tracked.tags else {}))
        mlflow_id = run.info.run_id
        stamp = tracked.start_ms or 0
        metrics = [Metric(_mlflow_key(k), v, stamp + int(1000 * seconds), step)
                   for step, seconds, values in tracked.curve for k, v in values.items()]
        end = tracked.end_ms or stamp
        metrics += [Metric(_mlflow_key(k), v, end, tracked.final_step) for k, v in tracked.final.items()]
        params = [Param(_mlflow_key(k), v[:_MLFLOW_PARAM_LENGTH]) for k, v in tracked.params.items()]
        for chunk in _chunks(params, _MLFLOW_BATCH["params"]):
            client.log_batch(mlflow_id, params=chunk)
        for chunk in _chunks(metrics, _MLFLOW_BATCH["metrics"]):
            client.log_batch(mlflow_id, metrics=chunk)
        for path in tracked.artifacts:
            client.log_artifact(mlflow_id, str(path))
        client.set_tag(mlflow_id, DONE_TAG, "true")
        client.set_terminated(mlflow_id, _MLFLOW_STATUS.get(tracked.status, "FINISHED"), end_time=tracked.end_ms)
    return summary


def _all_runs(client: Any, experiment_id: str) -> Iterator[Any]:
    """Every run of an experiment, page by page (deleted runs are not listed)."""
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


# --------------------------------------------------------------------------- TensorBoard


def tensorboard_dir(logdir: Path, record: Record) -> Path:
    return Path(logdir) / record.suite / record.task_label / record.method / f"seed{record.seed}-{record.run_id}"


def export_tensorboard(store: Store, suite: str | None = None, logdir: str | Path | None = None) -> ExportSummary:
    """Every record of `suite` (or all) as a TensorBoard run; directories already there are skipped."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError as exc:
        raise ExportError(f"bench export tensorboard needs the tensorboard package, which is not installed "
                          f"({exc}): {_INSTALL}") from exc

    records = records_to_export(store, suite)
    root = Path(logdir or DEFAULT_LOGDIR)
    summary = ExportSummary("tensorboard", str(root.resolve()))
    for record in records:
        final_dir = tensorboard_dir(root, record)
        if final_dir.is_dir():
            summary.skipped.append(record.run_id)
            continue
        partial = final_dir.with_name(f".{final_dir.name}.partial")
        if partial.exists():  # a killed export's leftover
            shutil.rmtree(partial)
            summary.replaced.append(record.run_id)
        else:
            summary.exported.append(record.run_id)
        tracked = tracked_run(record, store)
        partial.mkdir(parents=True)
        start = (tracked.start_ms or 0) / 1000
        writer = SummaryWriter(log_dir=str(partial))
        try:
            for step, seconds, values in tracked.curve:
                for key, value in values.items():
                    writer.add_scalar(key, value, step, walltime=start + seconds)
            end = (tracked.end_ms or tracked.start_ms or 0) / 1000
            for key, value in tracked.final.items():
                writer.add_scalar(key, value, tracked.final_step, walltime=end)
            writer.add_text("tags", "\n".join(f"    {k}: {v}" for k, v in sorted(tracked.tags.items())),
                            tracked.final_step, walltime=end)
            final_metrics = {k: v for k, v in tracked.final.items() if k.startswith("final.")}
            for part in hparams(tracked.params, final_metrics):
                writer.file_writer.add_summary(part, walltime=end)
        finally:
            writer.close()
        for path in tracked.artifacts:
            shutil.copy2(path, partial / path.name)
        os.replace(partial, final_dir)
    return summary


EXPORTERS = {"mlflow": export_mlflow, "tensorboard": export_tensorboard}
