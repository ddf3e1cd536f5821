"""The lm-eval bridge: exact scores, the `bench` model from lm-eval's own CLI, MMLU's message, HFLM.

The hub is off for every test (HF_*_OFFLINE); the data is the fixture corpus of
tests/lm_fixtures.py, and the model a tiny decoder trained here for a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("lm_eval", reason="lm-eval is not installed: pip install -e '.[dev]' (or '.[lm]')")

from lm_eval.api.instance import Instance  # noqa: E402

from harness.config import resolve_overrides  # noqa: E402
from harness.interface import TaskDataError  # noqa: E402
from harness.execute import execute  # noqa: E402
from harness.lm_eval_bridge import BenchLM, BenchRunError, hf_lm, run_lm_eval  # noqa: E402
from harness.plan import plan  # noqa: E402
from lm_fixtures import fetched  # noqa: E402
from suites.tasks import lm_eval_pack  # noqa: E402
from suites.tasks.language_models import DecoderConfig  # noqa: E402
from suites.tasks.text_lm import PACK_DIR, ShakespeareTask, TextLMConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 40
OFFLINE = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(data root, results dir, record) of a tiny shakespeare cell trained for 40 steps."""
    base = tmp_path_factory.mktemp("bridge")
    data = fetched(base / "data")
    results = base / "results"
    run = resolve_overrides([
        ("suite", "lm"), ("method", "backprop"), ("seeds", 1), ("budget.steps", 40), ("eval_every", 20),
        ("batch_size", 32), ("threads", 1), ("device", "cpu"), ("data_dir", str(data)),
        ("tasks.shakespeare.decoder", {"dim": 32, "depth": 1, "heads": 2, "context": 32}),
        ("tasks.shakespeare.lm_eval_limit", LIMIT), ("tasks.shakespeare.eval_bytes", 4096),
        ("tasks.shakespeare.test_bytes", 4096), ("method.lr", 0.01),
    ])
    cell = next(c for c in plan(run) if c.task.label == "shakespeare")
    outcome, typed = execute(cell, results)
    record = None if typed is None else typed.to_dict()
    assert record is not None and record["status"] == "completed", record
    return data, results, record


def tiny_task(data: Path) -> ShakespeareTask:
    return ShakespeareTask(TextLMConfig(data_dir=str(data), decoder=DecoderConfig(dim=32, depth=1, heads=2, context=32)))


def tiny_lm(data: Path, batch_size: int = 64) -> tuple[BenchLM, torch.nn.Module]:
    task = tiny_task(data)
    model = task.build_model(torch.Generator().manual_seed(0)).eval()
    return BenchLM(task=task, predict=lambda ids: model(ids), batch_size=batch_size), model


def request(kind: str, *args) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


def test_loglikelihood_is_the_models_own_log_probability(finished_run) -> None:
    data, _, _ = finished_run
    lm, model = tiny_lm(data)
    context, continuation = "KING.\nThe lord of", " my heart"
    (score, greedy), = lm.loglikelihood([request("loglikelihood", context, continuation)])
    ids = list((context + continuation).encode())
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([ids[:-1]])), dim=-1)[0]
    n = len(continuation)
    expected = sum(logp[len(ids) - 1 - n + i, ids[len(ids) - n + i]].item() for i in range(n))
    assert score == pytest.approx(expected, abs=1e-4)
    assert isinstance(greedy, bool)

    # rolling: a text within one window is scored after the newline prefix, every byte once
    text = "Thou art mine."
    (rolling,) = lm.loglikelihood_rolling([request("loglikelihood_rolling", text)])
    ids = [ord("\n"), *text.encode()]
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([ids[:-1]])), dim=-1)[0]
    assert rolling == pytest.approx(sum(logp[i, ids[i + 1]].item() for i in range(len(text))), abs=1e-4)


def test_batching_and_long_texts_do_not_change_scores(finished_run) -> None:
    data, _, _ = finished_run
    one, _ = tiny_lm(data, batch_size=1)
    many, _ = tiny_lm(data, batch_size=64)
    texts = [request("loglikelihood_rolling", "KING.\nThe good night comes to us all " * k) for k in (1, 3, 7)]
    assert many.loglikelihood_rolling(texts) == pytest.approx(one.loglikelihood_rolling(texts), abs=1e-4)
    pairs = [request("loglikelihood", "x" * k, "yz") for k in (1, 20, 200)]  # 200 > context: truncated left
    batched, single = many.loglikelihood(pairs), one.loglikelihood(pairs)
    # lm-eval's loglikelihood gives (log-probability, is_greedy) pairs: floats compared with a
    # tolerance, the greedy flags exactly (pytest 9's approx refuses a list of tuples)
    assert [logp for logp, _ in batched] == pytest.approx([logp for logp, _ in single], abs=1e-4)
    assert [greedy for _, greedy in batched] == [greedy for _, greedy in single]


def test_generate_until_stops_at_the_stop_string(finished_run) -> None:
    _, results, record = finished_run
    lm = BenchLM(run=record["run_id"], results_dir=results)  # trained: it writes text-like bytes
    free, = lm.generate_until([request("generate_until", "KING.\n", {"until": [], "max_gen_toks": 12})])
    assert 0 < len(free) <= 12
    stop = free[len(free) // 2] if free else "\n"
    cut, = lm.generate_until([request("generate_until", "KING.\n", {"until": [stop], "max_gen_toks": 12})])
    assert stop not in cut and free.startswith(cut)


def test_finished_run_scores_the_same_in_process_and_from_its_saved_state(finished_run) -> None:
    data, results, record = finished_run
    in_process = record["final"]["lm_eval"]["tasks"]
    assert set(in_process) == {"shakespeare_next_line", "shakespeare_bpb"}
    assert in_process["shakespeare_next_line"]["acc_stderr"] > 0
    reloaded = BenchLM(run=record["run_id"], results_dir=results)
    again = run_lm_eval(reloaded, ["shakespeare_next_line", "shakespeare_bpb"], PACK_DIR, {"data_dir": str(data)},
                        LIMIT)
    for name, scores in in_process.items():
        for metric in ("acc", "acc_norm", "bits_per_byte"):
            if metric in scores:
                assert again[name][metric] == pytest.approx(scores[metric], abs=1e-9)


def _lm_eval_cli() -> list[str]:
    script = shutil.which("lm_eval")
    return [script] if script else [sys.executable, "-m", "lm_eval"]


@pytest.mark.slow
def test_lm_eval_command_line_runs_the_bench_model_and_matches(finished_run, tmp_path: Path) -> None:
    """Plain `lm_eval --model bench` from a shell, the pack's task YAML given by path."""
    data, results, record = finished_run
    expected = record["final"]["lm_eval"]["tasks"]["shakespeare_next_line"]
    out = tmp_path / "out"
    command = [*_lm_eval_cli(), "--model", "bench", "--model_args", f"run={record['run_id']},results_dir={results}",
               "--tasks", str(PACK_DIR / "shakespeare_next_line.yaml"), "--limit", str(LIMIT),
               "--metadata", json.dumps({"data_dir": str(data)}), "--output_path", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=OFFLINE,
                          cwd=tmp_path)  # not the repository: the pack finds the code it belongs to
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(next(out.rglob("results*.json")).read_text())["results"]["shakespeare_next_line"]
    assert result["acc,none"] == pytest.approx(expected["acc"], abs=1e-9)
    assert result["acc_stderr,none"] == pytest.approx(expected["acc_stderr"], abs=1e-9)


def test_wrapper_registers_bench_then_hands_over_to_lm_evals_cli(monkeypatch) -> None:
    """`python -m harness.lm_eval_cli ARGS` = lm-eval's own CLI with `bench` in its registry."""
    import lm_eval.__main__
    from lm_eval.api.registry import get_model

    from harness import lm_eval_cli

    seen = []
    monkeypatch.setattr(lm_eval.__main__, "cli_evaluate", lambda: seen.append(get_model("bench")))
    lm_eval_cli.main()
    assert seen == [BenchLM]


def test_unknown_run_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BenchRunError, match="results_dir"):
        BenchLM(run="0123456789abcdef", results_dir=tmp_path)


def test_mmlu_without_its_data_says_how_to_get_it(finished_run, tmp_path: Path, monkeypatch) -> None:
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    data, _, _ = finished_run
    task = ShakespeareTask(TextLMConfig(data_dir=str(data), lm_eval_tasks=("mmlu", "shakespeare_next_line")))
    with pytest.raises(TaskDataError, match=r"cais/mmlu.*not in the Hugging Face cache") as error:
        task.check_available()
    assert "load_dataset('cais/mmlu', 'all')" in str(error.value) and "drop mmlu" in str(error.value)
    (tmp_path / "hub" / "datasets--cais--mmlu" / "snapshots").mkdir(parents=True)
    lm_eval_pack.check_mmlu()  # present in the cache: no error


def test_hugging_face_model_through_lm_evals_own_hflm(finished_run) -> None:
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install "
                                       "'lm-eval[hf]'); the HFLM path is lm-eval's own")
    data, _, _ = finished_run
    config = transformers.GPT2Config(vocab_size=384, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    lm = hf_lm(transformers.GPT2LMHeadModel(config), transformers.ByT5Tokenizer(), batch_size=8)
    scores = run_lm_eval(lm, ["shakespeare_next_line"], PACK_DIR, {"data_dir": str(data)}, limit=8)
    assert 0.0 <= scores["shakespeare_next_line"]["acc"] <= 1.0
