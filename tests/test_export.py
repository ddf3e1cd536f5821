"""`bench export mlflow|tensorboard`: a trained tiny suite, exported, then read back with each
tracker's own reader (MLflow's client, TensorBoard's event accumulator); a second export adds
nothing, and a half-written run left by a killed export is written again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE

from harness.cli import main
from harness.export import DONE_TAG, EXPERIMENT_PREFIX, RUN_ID_TAG, export_mlflow, tensorboard_dir
from harness.record import Record
from harness.store import Store


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[Record]]:
    """Two seeds of the tiny suite (20 steps, 2 evaluations), one with a model checkpoint."""
    base = tmp_path_factory.mktemp("export")
    suite = base / "tiny.yaml"
    suite.write_text(TINY_SUITE.format(seeds=2, steps=20, eval_every=10))
    results = base / "results"
    assert main(["run", f"suite={suite}", f"results_dir={results}", "launcher.kind=local", "launcher.workers=1"]) == 0
    store = Store(results)
    records = store.records("tiny")
    assert len(records) == 2
    store.save_model_state("tiny", records[0].run_id, {"w": torch.zeros(3)})  # as an LM cell keeps one
    return results, records


def test_mlflow_client_lists_every_cell_with_its_metrics(trained, tmp_path: Path, capsys) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the [track] extra (mlflow-skinny) is not installed")
    results, records = trained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["export", "mlflow", "tiny", f"results_dir={results}", f"tracking_uri={uri}"]) == 0
    assert "2 runs exported, 0 already there" in capsys.readouterr().out

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_PREFIX + "tiny")
    runs = {run.data.tags[RUN_ID_TAG]: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {r.run_id for r in records}
    for record in records:
        run = runs[record.run_id]
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert run.info.status == "FINISHED" and tags[DONE_TAG] == "true"
        assert (tags["method"], tags["task"], tags["seed"], tags["status"]) == ("backprop", "digits",
                                                                                 str(record.seed), "completed")
        assert tags["git_commit"] == record.env["git_commit"]
        assert params["method_config.lr"] == "0.01" and params["budget.steps"] == "20.0"
        assert params["task_config.mlp.hidden"] == "[64]"
        assert metrics["final.test.accuracy"] == pytest.approx(record.final_metric("test"))
        assert metrics["memory.ledger.total_bytes"] == record.memory.ledger.total_bytes
        assert metrics["flops.total"] == pytest.approx(record.flops.total)
        assert "energy.joules" not in metrics and tags["energy.reason"]  # null on a CPU: not a 0
        history = sorted(client.get_metric_history(run.info.run_id, "val_metric"), key=lambda m: m.step)
        assert [m.step for m in history] == [p["steps"] for p in record.curve]
        assert [m.value for m in history] == pytest.approx([p["val_metric"] for p in record.curve])
        assert {m.step for m in client.get_metric_history(run.info.run_id, "examples")} == {10, 20}
        artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert artifacts == ({"record.json", "model.pt"} if record is records[0] else {"record.json"})

    assert main(["export", "mlflow", f"results_dir={results}", f"tracking_uri={uri}"]) == 0  # all suites
    assert "0 runs exported, 2 already there" in capsys.readouterr().out
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_mlflow_export_rewrites_a_half_written_run(trained, tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the [track] extra (mlflow-skinny) is not installed")
    results, records = trained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT_PREFIX + "tiny",  # artifacts in tmp, not ./mlruns
                                             artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_run(experiment_id, tags={RUN_ID_TAG: records[0].run_id})  # killed before it was finished
    summary = export_mlflow(Store(results), "tiny", uri)
    assert (summary.replaced, summary.exported) == ([records[0].run_id], [records[1].run_id])
    runs = client.search_runs([experiment_id])
    assert len(runs) == 2 and all(run.data.tags.get(DONE_TAG) == "true" for run in runs)


def test_tensorboard_reader_sees_every_cell_and_a_second_export_adds_nothing(trained, tmp_path: Path,
                                                                            capsys) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                            reason="the [track] extra (tensorboard) is not installed")
    results, records = trained
    logdir = tmp_path / "tb"
    assert main(["export", "tensorboard", "tiny", f"results_dir={results}", f"logdir={logdir}"]) == 0
    assert "2 runs exported" in capsys.readouterr().out
    for record in records:
        run_dir = tensorboard_dir(logdir, record)
        reader = event_accumulator.EventAccumulator(str(run_dir))
        reader.Reload()
        scalars = reader.Tags()["scalars"]
        assert {"val_metric", "train_loss", "examples", "seconds", "final.test.accuracy",
                "memory.ledger.total_bytes", "flops.total"} <= set(scalars)
        events = reader.Scalars("val_metric")
        assert [e.step for e in events] == [p["steps"] for p in record.curve]
        assert [e.value for e in events] == pytest.approx([p["val_metric"] for p in record.curve], rel=1e-6)
        (accuracy,) = reader.Scalars("final.test.accuracy")
        assert accuracy.value == pytest.approx(record.final_metric("test"), rel=1e-6)
        assert json.loads((run_dir / "record.json").read_text())["run_id"] == record.run_id
    before = sorted(p.relative_to(logdir) for p in logdir.rglob("*"))
    assert main(["export", "tensorboard", f"results_dir={results}", f"logdir={logdir}"]) == 0
    assert "0 runs exported, 2 already there" in capsys.readouterr().out
    assert sorted(p.relative_to(logdir) for p in logdir.rglob("*")) == before


def test_export_errors_say_what_to_do(tmp_path: Path, capsys) -> None:
    assert main(["export", "mlflow", "tiny", f"results_dir={tmp_path}"]) == 2
    assert "run the suite first" in capsys.readouterr().err
    assert main(["export", "tensorboard", "tracking_uri=x", f"results_dir={tmp_path}"]) == 2
    assert "logdir" in capsys.readouterr().err
