"""Memory at scale: the meta-device ledger equals a real run's, the 1B suite prints its table,
and the int8 memory claims can be verified."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from harness import claims as claims_mod
from harness.cli import main
from harness.config import resolve
from harness.plan import plan
from harness.registry import get_method
from harness.runner import build_task
from harness.loops.memory_only import measure
from harness.store import Store
from suites.tasks.language_models import decoder_parameter_count, decoder_preset

SMALL = {"task": "synthetic_lm", "vocab_size": 256, "seq_len": 64, "n_train": 16,
         "decoder": {"dim": 64, "depth": 1, "heads": 4, "kv_heads": 2, "context": 64}}


def _suite(tmp_path: Path, **task) -> str:
    suite = {"tasks": {"lm": {**SMALL, **task}}, "method": ["backprop", "zeroth_order", "evolution"],
             "method_options": {"zeroth_order": {"dtype": "bfloat16"},
                                "evolution": {"weights": "int8", "population": 2}},
             "seeds": 1, "budget": {"steps": 2}, "batch_size": 8, "device": "cpu", "threads": 1}
    path = tmp_path / "memory.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


@pytest.mark.parametrize("method,config", [("backprop", {"bf16": True}), ("backprop", {"bf16": True, "checkpoint": True}),
                                           ("evolution", {})])
def test_meta_ledger_equals_a_real_cpu_run(method: str, config: dict, tmp_path: Path) -> None:
    """Every category to the byte, except saved activations: CPU attention saves ~4% more than
    the fused GPU kernel the meta run stands for."""
    cell = next(c for c in plan(resolve([f"suite={_suite(tmp_path)}"])) if c.method.name == method)
    cls, task = get_method(method), build_task(cell)
    cfg = cls.Config(**{**vars(cell.method.config), **config})
    meta, real = (measure(cell, task, cls, cfg, torch.device(d), 2)["ledger"]["bytes"] for d in ("meta", "cpu"))
    assert set(meta) == set(real)
    for key in meta:
        if key == "saved_activations":
            assert meta[key] == pytest.approx(real[key], rel=0.06), key
        else:
            assert meta[key] == real[key], key


def test_memory_suite_prints_the_table(tmp_path: Path, capsys) -> None:
    suite = _suite(tmp_path, memory_only=True, variants={"backprop": [{"bf16": True}]})
    assert main(["run", f"suite={suite}", f"results_dir={tmp_path / 'results'}"]) == 0
    out = capsys.readouterr().out
    for text in ("amp/x", "80GB?", "backprop bf16", "zeroth_order bf16", "int8"):
        assert text in out, text
    (record,) = [r.to_dict() for r in Store(tmp_path / "results").records() if r.method == "backprop"]
    rows = {row["label"]: row for row in record["scale"]["rows"]}
    assert rows["backprop bf16"]["ledger"]["autocast_weight_copies"] > 0
    assert rows["backprop"]["ledger_total"] > rows["backprop bf16"]["ledger_total"]


def test_the_1b_shape_on_the_meta_device() -> None:
    """scale-1b's llama_1b is TinyLlama's 1.1B shape: MeZO holds it in bf16, 2 bytes a parameter."""
    cell = next(c for c in plan(resolve(["suite=scale-1b", "device=cpu"])) if c.method.name == "zeroth_order")
    task = build_task(cell)
    ledger = measure(cell, task, get_method("zeroth_order"), cell.method.config, torch.device("meta"), 1)["ledger"]
    count = decoder_parameter_count(decoder_preset("1b"), 32000)
    assert 1.0e9 < count < 1.2e9
    assert ledger["bytes"]["parameters"] == 2 * count
    assert ledger["bytes"]["gradients"] == 0 and ledger["bytes"]["saved_activations"] == 0


def test_int8_claims_are_verifiable(tmp_path: Path) -> None:
    """Both claims run end to end through the store to a verdict, on the suite's `tiny` profile
    (a claim's overrides cannot change the model: the profile is part of the claim's file)."""
    claims_dir = tmp_path / "claims"
    claims_dir.mkdir()
    for claim_id in ("int8-llm-memory", "int8-llm-fits-80gb"):
        body = yaml.safe_load(claims_mod.find_claim(claim_id).read_text())
        (claims_dir / f"{claim_id}.yaml").write_text(yaml.safe_dump({**body, "profile": "tiny"}))
    runner = claims_mod.ClaimCells(Store(tmp_path / "results"), [("device", "cpu")])
    documents = {claim_id: claims_mod.verify(claims_mod.load_claim(claims_dir / f"{claim_id}.yaml"), runner,
                                             claims_dir / f"{claim_id}.yaml")
                 for claim_id in ("int8-llm-memory", "int8-llm-fits-80gb")}
    for document in documents.values():
        assert document["verdict"] in ("supported", "refuted"), document["reason"]
        assert len(document["per_seed"]) == 3
    # the strong-baseline rule: backprop with and without bf16 autocast and checkpointing, the least kept
    assert len(documents["int8-llm-memory"]["baseline_used"]["variants_tried"]) == 4


def test_memory_claims_pin_the_es_chunk() -> None:
    """ES's peak is the activations of `chunk` members at once (3.5 GiB at chunk 1, 13 GiB at 8 on
    the 1B shape): a memory verdict that left it to the suite's default could change silently."""
    for claim_id in ("int8-llm-memory", "int8-llm-fits-80gb"):
        config = claims_mod.load_claim(claims_mod.find_claim(claim_id)).method.config
        assert config.get("weights") == "int8", claim_id
        assert 1 <= config.get("chunk", 0) <= config.get("population", 0), claim_id


def test_throughput_bench_runs_real_steps_and_chunk_never_changes_the_numbers(tmp_path: Path) -> None:
    """tests/bench/scale_1b_throughput.py on the suite's tiny profile: each row steps a real model
    (CPU seconds and peak RSS measured, the simulated peak beside it), and ES gives the same losses
    at every chunk (chunk changes memory and speed, never the numbers)."""
    out = tmp_path / "rows.json"
    script = Path(__file__).resolve().parent / "bench" / "scale_1b_throughput.py"
    done = subprocess.run([sys.executable, str(script), "--chunks", "1,2", "--methods", "evolution", "--steps", "2",
                           "--seq-len", "8", "--batch", "2", "--json", str(out), "profile=tiny"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["chunk"] for r in rows] == [1, 2]
    for r in rows:
        assert "error" not in r, r.get("error")
        assert r["step_cpu_seconds"] > 0 and r["peak_rss"] > 0 and r["meta_peak"] > 0
        assert r["time"]["probe_steps"] == 1 and len(r["cpu_seconds"]) == 2
    assert rows[0]["losses"] == rows[1]["losses"] and all(math.isfinite(x) for x in rows[0]["losses"])
    assert "| ES int8, chunk 1 |" in done.stdout
