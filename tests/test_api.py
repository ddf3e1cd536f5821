"""harness.api: the CLI's steps from Python, on a tiny suite: the same validation, the same store."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness import api
from harness.config import ConfigError
from harness.record import Record
from harness.registry import RegistryError
from harness.store import StoreError


def test_run_suite_returns_one_row_per_cell_and_resumes(tiny_suite, tmp_path: Path) -> None:
    results = tmp_path / "results"
    suite = tiny_suite(seeds=2, steps=20, eval_every=10)
    rows = api.run_suite(suite, results_dir=str(results), **{"method_options.backprop.lr": 0.02})
    assert list(rows["seed"]) == [0, 1] and set(rows["status"]) == {"completed"}
    assert set(rows["config.method_config.lr"]) == {0.02}
    assert rows["final.test.accuracy"].between(0.3, 1.0).all()  # 10 digit classes: well above chance
    written = {p: p.stat().st_mtime_ns for p in results.glob("*/*/record.json")}
    again = api.run_suite(suite, results_dir=str(results), **{"method_options.backprop.lr": 0.02})
    pd.testing.assert_frame_equal(rows, again)
    assert {p: p.stat().st_mtime_ns for p in results.glob("*/*/record.json")} == written, "nothing retrained"

    index = api.load_index(results)
    assert sorted(index["run_id"]) == sorted(rows["run_id"])
    record = api.load_record(results, rows["run_id"][0])
    assert isinstance(record, Record) and record.seed == 0 and record.completed
    assert record.final_metric("test") == pytest.approx(rows["final.test.accuracy"][0])
    curves = api.load_curves(results)
    assert set(curves["steps"]) == {10, 20}

    # examples/compare.py draws the comparison figure from the same DataFrame
    spec = importlib.util.spec_from_file_location("compare", Path(__file__).parent.parent / "examples" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    table = compare.scores(index)
    assert list(table["test"]) == pytest.approx(list(rows["final.test.accuracy"]))
    out = compare.main(["--results", str(results), "--out", str(tmp_path / "compare.png")])
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("overrides, error, words", [
    ({"budget": {"stepz": 3}}, ConfigError, "stepz"),
    ({"method": "backpropp"}, (ConfigError, RegistryError), "backprop"),
])
def test_run_suite_refuses_bad_input_before_training(tiny_suite, tmp_path: Path, overrides, error, words) -> None:
    with pytest.raises(error, match=words):
        api.run_suite(tiny_suite(), results_dir=str(tmp_path / "results"), **overrides)
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("record.json"))


def test_load_record_names_the_fix_for_an_unknown_run(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="results_dir"):
        api.load_record(tmp_path, "0123456789abcdef")


def test_verify_claim_runs_its_cells_and_writes_the_verdict(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "tiny-same.yaml").write_text(yaml.safe_dump({
        "id": "tiny-same", "source": "test", "statement": "backprop matches itself",
        "method": {"name": "backprop"}, "baseline": {"name": "backprop"}, "suite": "vision-vit", "task": "mlp",
        "quantity": "accuracy_gap", "relation": "within 0.5", "seeds": 3, "budget": {"steps": 20},
        "overrides": {"profile": "quick", "threads": 1}}))
    results = tmp_path / "results"
    document = api.verify_claim("tiny-same", claims_dir=claims, results_dir=str(results))
    assert document["verdict"] == "supported", document["reason"]
    assert [row["seed"] for row in document["per_seed"]] == [0, 1, 2]
    assert (results / "claims" / "tiny-same.json").is_file()
    assert len(api.load_index(results)) == 9  # 3 seeds x budgets x0.5, x1, x2; method and baseline are the same cells
    with pytest.raises(ConfigError, match="tiny-same"):
        api.verify_claim("tiny-sam", claims_dir=claims, results_dir=str(results))
